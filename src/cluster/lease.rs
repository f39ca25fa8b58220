//! The leader lease in Redis (`SET NX PX`, renewed and released by Lua scripts that check the holder) and its fencing token.
//!
//! The token comes from an `INCR` at each acquisition, never below the token PostgreSQL
//! last saw (so it keeps rising even when Redis lost its data), and the new leader raises
//! PostgreSQL's fence to it before it routes anything.

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use super::link::Keys;

/// KEYS: lease, token counter. ARGV: node, lease ms, lowest acceptable token (PostgreSQL's).
/// Returns the new token, or 0 when the lease is held.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local floor = tonumber(ARGV[3])
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
if counter < floor then redis.call('SET', KEYS[2], floor) end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
";

/// KEYS: lease. ARGV: holder value, lease ms. 1 if still held and extended.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: lease. ARGV: holder value. 1 if it was ours and is now free.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// The lease value a holder writes: `node|token`.
pub fn value(node: &str, token: i64) -> String {
    format!("{node}|{token}")
}

/// Takes the lease if it is free: the new fencing token (above `floor`), or None.
pub async fn acquire(conn: &mut ConnectionManager, keys: &Keys, node: &str, lease_ms: u64, floor: i64) -> RedisResult<Option<i64>> {
    let token: i64 = Script::new(ACQUIRE).key(keys.lease()).key(keys.token()).arg(node).arg(lease_ms).arg(floor).invoke_async(conn).await?;
    Ok((token > 0).then_some(token))
}

/// Extends the lease if `node|token` still holds it.
pub async fn renew(conn: &mut ConnectionManager, keys: &Keys, value: &str, lease_ms: u64) -> RedisResult<bool> {
    let done: i64 = Script::new(RENEW).key(keys.lease()).arg(value).arg(lease_ms).invoke_async(conn).await?;
    Ok(done == 1)
}

/// Gives the lease up if `value` holds it (a clean shutdown or a step-down), so another node takes over at once.
pub async fn release(conn: &mut ConnectionManager, keys: &Keys, value: &str) -> RedisResult<bool> {
    let done: i64 = Script::new(RELEASE).key(keys.lease()).arg(value).invoke_async(conn).await?;
    Ok(done == 1)
}

/// The current holder: (node, token, milliseconds left), or None when the lease is free.
pub async fn current(conn: &mut ConnectionManager, keys: &Keys) -> RedisResult<Option<(String, i64, i64)>> {
    let (value, pttl): (Option<String>, i64) =
        redis::pipe().cmd("GET").arg(keys.lease()).cmd("PTTL").arg(keys.lease()).query_async(conn).await?;
    Ok(value.and_then(|v| {
        let (node, token) = v.rsplit_once('|')?;
        Some((node.to_string(), token.parse().ok()?, pttl.max(0)))
    }))
}

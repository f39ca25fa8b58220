//! Abuse limits at the edges: the client's address (behind trusted proxies), sockets per address, new chats per address per minute, and login attempts.
//!
//! Logins: a guesser must not be able to lock a night shift out. Failures are counted per (account,
//! address) pair: past the limit that pair alone is locked out (for a minute, doubling at each new
//! lockout up to an hour), so the right password from another address still gets in. Failures for an
//! account from anywhere slow it down: past a free allowance each attempt waits a growing delay
//! (capped) before its password is checked, but is never refused for it. The failures and the
//! lockouts are counted and kept in the database by the login handler (`login_failures`,
//! `login_lockouts`), so a guesser who spreads tries over every node of a cluster gets no more of them
//! than on one, and an admin's unlock (API or command line) reaches every node; this module only
//! decides, from those counts, with the time passed in ([`Guard::lockout_after`], [`Guard::delay_after`]).
//!
//! A prankster's script must not push real callers out of the queue, and a password guesser must
//! not get more than a few tries a minute. Limits are per *network* address: an IPv4 address, or
//! the /64 prefix of an IPv6 address (one home or phone gets a whole /64). Many real callers can
//! share one address (a school, a carrier's NAT), so the defaults are generous and every limit is
//! configurable; what is refused gets a calm, clear answer, never a silent drop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Default limits (see [`GuardSettings`]).
pub const SOCKETS_PER_IP: u32 = 200;
pub const CONTACTS_PER_IP_PER_MIN: u32 = 10;
pub const LOGINS_PER_IP_PER_MIN: u32 = 120;
pub const LOGINS_PER_ACCOUNT_PER_MIN: u32 = 5;
/// Failures for an account from anywhere (within [`ACCOUNT_WINDOW_MS`]) before its attempts are slowed down.
pub const ACCOUNT_FREE_FAILURES: usize = 10;
/// The first delay of a slowed account; it doubles at each further failure up to [`MAX_LOGIN_DELAY_MS`].
pub const LOGIN_DELAY_MS: u64 = 250;
pub const MAX_LOGIN_DELAY_MS: u64 = 8_000;
/// How long an account's failures count towards its delay.
pub const ACCOUNT_WINDOW_MS: i64 = 15 * 60_000;
/// A pair's first lockout; each new one within [`STRIKE_MEMORY_MS`] doubles, up to [`MAX_LOCKOUT_MS`].
pub const FIRST_LOCKOUT_MS: i64 = 60_000;
pub const MAX_LOCKOUT_MS: i64 = 3_600_000;
pub const STRIKE_MEMORY_MS: i64 = 24 * 3_600_000;
/// Failures of a pair count within this window.
pub const PAIR_WINDOW_MS: i64 = 60_000;

/// The edge limits, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed. Empty: the peer address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Open WebSockets per client network at most (0: no limit).
    pub sockets_per_ip: u32,
    /// New chats a client network may start per minute (0: no limit).
    pub contacts_per_ip_per_min: u32,
    /// Login attempts per client network per minute (0: no limit).
    pub logins_per_ip_per_min: u32,
    /// Failed logins for one account name from one address per minute before that address is locked
    /// out of that account for a while (0: no limit). Other addresses are not affected.
    pub logins_per_account_per_min: u32,
    /// The first delay of an account slowed down by failures from anywhere (0: no delays).
    pub login_delay_ms: u64,
    /// Second factor (TOTP) required for admins and supervisors (`--require-totp`).
    pub totp_required: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            trusted_proxies: Vec::new(),
            sockets_per_ip: SOCKETS_PER_IP,
            contacts_per_ip_per_min: CONTACTS_PER_IP_PER_MIN,
            logins_per_ip_per_min: LOGINS_PER_IP_PER_MIN,
            logins_per_account_per_min: LOGINS_PER_ACCOUNT_PER_MIN,
            login_delay_ms: LOGIN_DELAY_MS,
            totp_required: false,
        }
    }
}

/// What a refused request was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Sockets,
    Contacts,
    Logins,
}

/// The shared state of the limits.
pub struct Guard {
    settings: GuardSettings,
    sockets: Arc<Mutex<HashMap<IpAddr, u32>>>,
    contacts: Option<DefaultKeyedRateLimiter<IpAddr>>,
    logins_by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// What the database counted for a failed login (`store::users::Accounts::login_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    /// The pair's failures within [`PAIR_WINDOW_MS`] since its last lockout, this one included.
    pub pair: u32,
    /// The pair's last lockout remembered: its strikes and when it began.
    pub last_lockout: Option<(u32, i64)>,
}

/// A pair locked out after too many failures: until when, and how many times it has been so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub until_ms: i64,
    pub strikes: u32,
}

/// Held while a socket is open; gives its place back when dropped.
#[derive(Debug)]
pub struct SocketSlot {
    ip: IpAddr,
    sockets: Option<Arc<Mutex<HashMap<IpAddr, u32>>>>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let Some(sockets) = &self.sockets else { return };
        if let Ok(mut map) = sockets.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)))
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Guard {
        Guard {
            contacts: per_minute(settings.contacts_per_ip_per_min),
            logins_by_ip: per_minute(settings.logins_per_ip_per_min),
            sockets: Arc::default(),
            settings,
        }
    }

    /// The client's network: the peer address, or, when the peer is a trusted proxy, the last
    /// `X-Forwarded-For` hop that is not one of our proxies. IPv6 is cut to its /64.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        network(self.client_addr(peer, headers))
    }

    /// The client's own address (not cut to its network): for the audit log of staff actions.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = canonical(peer.ip());
        if !self.settings.trusted_proxies.iter().any(|p| canonical(*p) == peer_ip) {
            return peer_ip;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        hops.iter().rev().find(|hop| !self.settings.trusted_proxies.iter().any(|p| canonical(*p) == **hop)).copied().unwrap_or(peer_ip)
    }

    /// A place for one more socket from `ip`, or `Err(Over::Sockets)` when it has too many open.
    pub fn open_socket(&self, ip: IpAddr) -> Result<SocketSlot, Over> {
        if self.settings.sockets_per_ip == 0 {
            return Ok(SocketSlot { ip, sockets: None });
        }
        let mut map = self.sockets.lock().map_err(|_| Over::Sockets)?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.settings.sockets_per_ip {
            return Err(Over::Sockets);
        }
        *n += 1;
        Ok(SocketSlot { ip, sockets: Some(self.sockets.clone()) })
    }

    /// Open sockets from `ip` now.
    pub fn sockets_open(&self, ip: IpAddr) -> u32 {
        self.sockets.lock().map(|m| m.get(&ip).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Counts a new chat from `ip`; `Err(Over::Contacts)` when the network started too many this minute.
    pub fn new_contact(&self, ip: IpAddr) -> Result<(), Over> {
        match &self.contacts {
            Some(limiter) => limiter.check_key(&ip).map_err(|_| Over::Contacts),
            None => Ok(()),
        }
    }

    /// Counts a login attempt from `ip` (on this node): `Err(Over::Logins)` when the address is over its rate.
    pub fn login_attempt(&self, ip: IpAddr) -> Result<(), Over> {
        match &self.logins_by_ip {
            Some(limiter) => limiter.check_key(&ip).map_err(|_| Over::Logins),
            None => Ok(()),
        }
    }

    /// The delay an attempt for an account waits before its password is checked, given the account's
    /// failures from anywhere within [`ACCOUNT_WINDOW_MS`]: zero up to [`ACCOUNT_FREE_FAILURES`], then
    /// the first delay doubling at each further failure, capped.
    pub fn delay_after(&self, account_failures: u32) -> std::time::Duration {
        let base = self.settings.login_delay_ms;
        if base == 0 {
            return std::time::Duration::ZERO;
        }
        let over = usize::try_from(account_failures).unwrap_or(usize::MAX).saturating_sub(ACCOUNT_FREE_FAILURES);
        if over == 0 {
            return std::time::Duration::ZERO;
        }
        let factor = 1u64 << u32::try_from(over - 1).unwrap_or(16).min(16);
        std::time::Duration::from_millis(base.saturating_mul(factor).min(MAX_LOGIN_DELAY_MS.max(base)))
    }

    /// The lockout a pair has earned at `now` with a failure just counted: past
    /// `logins_per_account_per_min` failures of the pair within a minute (since its last lockout), a
    /// lockout one strike longer than its last (if that was within [`STRIKE_MEMORY_MS`]); the caller
    /// records it.
    pub fn lockout_after(&self, counted: Counted, now_ms: i64) -> Option<Lockout> {
        let limit = self.settings.logins_per_account_per_min;
        if limit == 0 || counted.pair <= limit {
            return None;
        }
        let earlier = match counted.last_lockout {
            Some((strikes, at)) if now_ms - at <= STRIKE_MEMORY_MS => strikes,
            _ => 0,
        };
        let strikes = earlier.saturating_add(1);
        let length = FIRST_LOCKOUT_MS.saturating_mul(1i64 << (strikes - 1).min(20)).min(MAX_LOCKOUT_MS);
        Some(Lockout { until_ms: now_ms + length, strikes })
    }

    /// Forgets rate-limit state that has fully refilled (called every minute, so the maps stay small under a flood).
    pub fn forget_idle(&self) {
        for limiter in [&self.contacts, &self.logins_by_ip].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Whether admins and supervisors must sign in with a second factor.
    pub fn totp_required(&self) -> bool {
        self.settings.totp_required
    }
}

/// Account names are compared case-insensitively, without surrounding blanks: `ion`, `ION` and ` Ion` are one account.
pub fn account_key(account: &str) -> String {
    account.trim().to_lowercase()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The unit limits apply to: an IPv4 address, or an IPv6 /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(trusted: &[&str]) -> Guard {
        Guard::new(GuardSettings {
            trusted_proxies: trusted.iter().filter_map(|p| p.parse().ok()).collect(),
            sockets_per_ip: 2,
            contacts_per_ip_per_min: 3,
            logins_per_ip_per_min: 10,
            logins_per_account_per_min: 2,
            login_delay_ms: 100,
            totp_required: false,
        })
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 40000)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let g = guard(&["10.0.0.1"]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.1"));
        assert_eq!(g.client_ip(peer("10.0.0.1"), &headers), "203.0.113.7".parse::<IpAddr>().unwrap());
        // From anyone else the header is the client's own claim: ignored.
        assert_eq!(g.client_ip(peer("198.51.100.9"), &headers), "198.51.100.9".parse::<IpAddr>().unwrap());
        // Garbage in the header: the proxy itself.
        headers.insert("x-forwarded-for", HeaderValue::from_static("not an ip"));
        assert_eq!(g.client_ip(peer("10.0.0.1"), &headers), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let g = guard(&[]);
        let a = g.client_ip(peer("2001:db8:1:2:aaaa::1"), &HeaderMap::new());
        let b = g.client_ip(peer("2001:db8:1:2:bbbb::2"), &HeaderMap::new());
        assert_eq!(a, b);
        let mapped = g.client_ip(peer("::ffff:192.0.2.1"), &HeaderMap::new());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn sockets_are_capped_and_given_back() {
        let g = guard(&[]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let one = g.open_socket(ip).expect("first");
        let _two = g.open_socket(ip).expect("second");
        assert_eq!(g.open_socket(ip).unwrap_err(), Over::Sockets);
        assert!(g.open_socket("192.0.2.2".parse().unwrap()).is_ok(), "another network is not affected");
        drop(one);
        assert_eq!(g.sockets_open(ip), 1);
        assert!(g.open_socket(ip).is_ok());
    }

    #[test]
    fn contacts_and_logins_are_rate_limited_per_key() {
        let g = guard(&[]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            g.new_contact(ip).expect("within the quota");
        }
        assert_eq!(g.new_contact(ip).unwrap_err(), Over::Contacts);
        assert!(g.new_contact("192.0.2.9".parse().unwrap()).is_ok());
        // Failures lock the (account, address) pair only, in any case (the database counts them per
        // pair, by the normalised name); other addresses and accounts go on.
        assert_eq!(account_key("ANA "), account_key("Ana"));
        let now = 1_000_000;
        for _ in 0..5 {
            g.login_attempt(ip).expect("no failures yet");
        }
        let pair = |n, last| Counted { pair: n, last_lockout: last };
        assert_eq!(g.lockout_after(pair(1, None), now), None);
        assert_eq!(g.lockout_after(pair(2, None), now), None, "two failures are within the quota");
        let lock = g.lockout_after(pair(3, None), now).expect("the third locks the pair");
        assert_eq!(lock, Lockout { until_ms: now + FIRST_LOCKOUT_MS, strikes: 1 });
        // Another address has its own count: its first failure is the pair's first.
        assert_eq!(g.lockout_after(pair(1, None), now), None, "another address has its own count");
        // A second lockout of the same pair lasts twice as long (its count starts again after a lockout).
        let remembered = Some((lock.strikes, now));
        for n in 1..=2 {
            assert_eq!(g.lockout_after(pair(n, remembered), now + 61_000), None);
        }
        assert_eq!(g.lockout_after(pair(3, remembered), now + 61_000).map(|l| l.until_ms), Some(now + 61_000 + 2 * FIRST_LOCKOUT_MS));
        // Doubling is capped at an hour, and a lockout older than a day is not remembered.
        let many = g.lockout_after(pair(3, Some((12, now))), now + 1).expect("locked");
        assert_eq!(many.until_ms - (now + 1), MAX_LOCKOUT_MS);
        let later = now + STRIKE_MEMORY_MS + 1;
        assert_eq!(g.lockout_after(pair(3, Some((5, now))), later), Some(Lockout { until_ms: later + FIRST_LOCKOUT_MS, strikes: 1 }));
        // The address limit counts every attempt.
        let many: IpAddr = "192.0.2.77".parse().unwrap();
        for _ in 0..10 {
            let _ = g.login_attempt(many);
        }
        assert_eq!(g.login_attempt(many).unwrap_err(), Over::Logins);
    }

    #[test]
    fn failures_from_anywhere_slow_the_account_down_with_growing_delays() {
        let g = guard(&[]);
        let delay = |failures: usize| g.delay_after(u32::try_from(failures).unwrap()).as_millis();
        for i in 0..=ACCOUNT_FREE_FAILURES {
            assert_eq!(delay(i), 0, "{i} failures are free");
        }
        let seen: Vec<u128> = (1..=8).map(|i| delay(ACCOUNT_FREE_FAILURES + i)).collect();
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 6400, 8000], "doubling, capped");
        assert_eq!(delay(ACCOUNT_FREE_FAILURES + 40), 8000, "still capped");
        let off = Guard::new(GuardSettings { login_delay_ms: 0, ..GuardSettings::default() });
        assert_eq!(off.delay_after(1000), std::time::Duration::ZERO, "delays turned off");
    }
}

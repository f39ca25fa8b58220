//! Abusive contacts: counsellors' flags, blocks of a caller's keyed identifier (never the identifier in clear), and the contacts a block refused.

use super::sealed::place::{BLOCK_LIFT_REASON, BLOCK_REASON, FLAG_REASON};
use super::{new_id, on_pool, on_writer, BeginWrite, Store, StoreResult};

fn opened_flag(store: &Store, mut f: FlagRecord) -> StoreResult<FlagRecord> {
    f.reason = store.open(FLAG_REASON, &f.id, &f.reason)?;
    Ok(f)
}

/// A block as read, its reasons opened.
pub(super) fn opened_block(store: &Store, mut b: BlockRecord) -> StoreResult<BlockRecord> {
    b.reason = store.open(BLOCK_REASON, &b.id, &b.reason)?;
    b.lift_reason = store.open_opt(BLOCK_LIFT_REASON, &b.id, b.lift_reason.as_deref())?;
    Ok(b)
}

pub(super) fn opened_blocks(store: &Store, list: Vec<BlockRecord>) -> StoreResult<Vec<BlockRecord>> {
    list.into_iter().map(|b| opened_block(store, b)).collect()
}

/// A counsellor's flag on a contact.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct FlagRecord {
    pub id: String,
    pub contact_id: String,
    pub helpline: String,
    pub flagged_by: String,
    pub reason: String,
    pub at: i64,
}

/// A block, as stored (`identifier_hash` stays in the store and the door checks: never shown).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockRecord {
    pub id: String,
    /// `address` (a chat's client network) or `number` (a call's caller number).
    pub kind: String,
    pub identifier_hash: String,
    /// `block` (refused calmly) or `senior` (routed to senior counsellors only).
    pub mode: String,
    pub helpline: String,
    pub contact_id: String,
    pub reason: String,
    pub reviewer: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub lifted_at: Option<i64>,
    pub lifted_by: Option<String>,
    pub lift_reason: Option<String>,
    /// Contacts this block refused so far.
    pub attempts: i64,
}

impl BlockRecord {
    /// In force at `now`: not lifted and not expired.
    pub fn active(&self, now: i64) -> bool {
        self.lifted_at.is_none() && self.expires_at > now
    }
}

/// A contact's caller identifier, as a block would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentifier {
    /// `address` or `number`.
    pub kind: &'static str,
    pub hash: String,
}

pub(super) const BLOCK_COLUMNS: &str = "b.id, b.kind, b.identifier_hash, b.mode, b.helpline, b.contact_id, b.reason, b.reviewer, \
     b.created_at, b.expires_at, b.lifted_at, b.lifted_by, b.lift_reason, \
     (SELECT COUNT(*) FROM blocked_attempts a WHERE a.block_id = b.id) AS attempts";

/// A view of the store: flags, blocks of a caller's keyed identifier, refused chats and calls ([`Store::abuse`]).
#[derive(Clone, Copy, Debug)]
pub struct Abuse<'a>(pub(super) &'a Store);

impl Abuse<'_> {
    /// Stores a flag; a contact already flagged keeps its first flag, which is returned.
    pub async fn flag_contact(self, f: &FlagRecord) -> StoreResult<FlagRecord> {
        let reason = self.0.seal(FLAG_REASON, &f.id, &f.reason)?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO contact_flags (id, contact_id, helpline, flagged_by, reason, at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (contact_id) DO NOTHING")
            .bind(&f.id).bind(&f.contact_id).bind(&f.helpline).bind(&f.flagged_by).bind(&reason).bind(f.at)
            .execute(pool).await.map(|_| ()))?;
        self.flag_of(&f.contact_id).await?.ok_or(super::StoreError::NotFound)
    }

    /// The flag on a contact, if any.
    pub async fn flag_of(self, contact_id: &str) -> StoreResult<Option<FlagRecord>> {
        let row: Option<FlagRecord> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, contact_id, helpline, flagged_by, reason, at FROM contact_flags WHERE contact_id = $1")
            .bind(contact_id).fetch_optional(pool).await)?;
        row.map(|f| opened_flag(self.0, f)).transpose()
    }

    /// Flags since `since`, newest first.
    pub async fn flags_since(self, since: i64) -> StoreResult<Vec<FlagRecord>> {
        let rows: Vec<FlagRecord> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, contact_id, helpline, flagged_by, reason, at FROM contact_flags WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT 500")
            .bind(since).fetch_all(pool).await)?;
        rows.into_iter().map(|f| opened_flag(self.0, f)).collect()
    }

    /// The keyed identifier of a contact's caller: a chat's client-network HMAC, or a call's number HMAC.
    /// None when there is none (a withheld number, a chat from before identifiers were kept).
    pub async fn caller_identifier(self, contact_id: &str) -> StoreResult<Option<CallerIdentifier>> {
        let row: Option<(String, Option<String>, Option<String>)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT c.channel, c.caller_hash, k.caller_hash FROM contacts c LEFT JOIN calls k ON k.contact_id = c.id
             WHERE c.id = $1")
            .bind(contact_id).fetch_optional(pool).await)?;
        Ok(row.and_then(|(channel, chat, call)| match channel.as_str() {
            "call" => call.map(|hash| CallerIdentifier { kind: "number", hash }),
            _ => chat.map(|hash| CallerIdentifier { kind: "address", hash }),
        }))
    }

    pub async fn create_block(self, b: &BlockRecord) -> StoreResult<()> {
        let reason = self.0.seal(BLOCK_REASON, &b.id, &b.reason)?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO caller_blocks (id, kind, identifier_hash, mode, helpline, contact_id, reason, reviewer, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&b.id).bind(&b.kind).bind(&b.identifier_hash).bind(&b.mode).bind(&b.helpline).bind(&b.contact_id)
            .bind(&reason).bind(&b.reviewer).bind(b.created_at).bind(b.expires_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn block(self, id: &str) -> StoreResult<Option<BlockRecord>> {
        let sql = format!("SELECT {BLOCK_COLUMNS} FROM caller_blocks b WHERE b.id = $1");
        let row: Option<BlockRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|b| opened_block(self.0, b)).transpose()
    }

    /// Blocks in force at `now` (or, with `all`, every block), newest first.
    pub async fn blocks(self, now: i64, all: bool) -> StoreResult<Vec<BlockRecord>> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM caller_blocks b
             WHERE $1 OR (b.lifted_at IS NULL AND b.expires_at > $2) ORDER BY b.created_at DESC, b.id DESC LIMIT 1000"
        );
        opened_blocks(self.0, on_pool!(self.0, pool => sqlx::query_as(&sql).bind(all).bind(now).fetch_all(pool).await)?)
    }

    /// The block in force for this identifier and helpline at `now`: a `block` before a `senior`, then the newest.
    pub async fn block_for(self, kind: &str, hash: &str, helpline: &str, now: i64) -> StoreResult<Option<BlockRecord>> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM caller_blocks b
             WHERE b.identifier_hash = $1 AND b.kind = $2 AND b.helpline = $3 AND b.lifted_at IS NULL AND b.expires_at > $4
             ORDER BY CASE WHEN b.mode = 'block' THEN 0 ELSE 1 END, b.created_at DESC, b.id DESC LIMIT 1"
        );
        let row: Option<BlockRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(hash).bind(kind).bind(helpline).bind(now)
            .fetch_optional(pool).await)?;
        row.map(|b| opened_block(self.0, b)).transpose()
    }

    /// Lifts a block early; false if it was already lifted.
    pub async fn lift_block(self, id: &str, by: &str, reason: Option<&str>, at: i64) -> StoreResult<bool> {
        let reason = self.0.seal_opt(BLOCK_LIFT_REASON, id, reason)?;
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE caller_blocks SET lifted_at = $1, lifted_by = $2, lift_reason = $3 WHERE id = $4 AND lifted_at IS NULL")
            .bind(at).bind(by).bind(reason).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Records a chat refused by a block.
    pub async fn record_blocked_chat(self, block_id: &str, at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO blocked_attempts (id, block_id, channel, call_id, at) VALUES ($1, $2, 'chat', NULL, $3)")
            .bind(new_id()).bind(block_id).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Records a call refused by a block, with the exchange's event (stored once by its id): false
    /// for a repeated event (nothing new stored).
    pub async fn record_blocked_call(
        self,
        block_id: &str,
        gateway_id: &str,
        event_id: &str,
        call_id: &str,
        received_at: i64,
        at: i64,
    ) -> StoreResult<bool> {
        let fresh = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let fresh = sqlx::query(
                "INSERT INTO telephony_events (gateway_id, event_id, received_at, kind, call_id, at)
                 VALUES ($1, $2, $3, 'call_blocked', $4, $5) ON CONFLICT (gateway_id, event_id) DO NOTHING")
                .bind(gateway_id).bind(event_id).bind(received_at).bind(call_id).bind(at)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if fresh {
                sqlx::query("INSERT INTO blocked_attempts (id, block_id, channel, call_id, at) VALUES ($1, $2, 'call', $3, $4)")
                    .bind(new_id()).bind(block_id).bind(call_id).bind(received_at).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(fresh)
        }.await)?;
        Ok(fresh)
    }
}

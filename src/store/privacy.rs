//! Reads for access requests (everything held on one contact) and for the break-glass reveal (which
//! contacts share a caller's keyed identifier). Identifiers are compared as stored: keyed hashes.

use super::abuse::{opened_blocks, BlockRecord, BLOCK_COLUMNS};
use super::forms::{opened_escalation, EscalationRecord, ESCALATION_COLUMNS};
use super::services::{PlacementRecord, PLACEMENT_COLUMNS};
use super::{on_pool, Store, StoreResult};

/// A contact that shares a caller identifier (the reveal's list).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct SameCaller {
    pub contact_id: String,
    pub channel: String,
    pub helpline: String,
    pub state: String,
    pub queued_at: i64,
    pub ended_at: Option<i64>,
    pub purged_at: Option<i64>,
}

/// At most this many contacts are listed for one identifier.
pub const SAME_CALLER_LIMIT: i64 = 200;

/// A view of the store: what is held about a contact or an identifier (access requests) ([`Store::privacy`]).
#[derive(Clone, Copy, Debug)]
pub struct Privacy<'a>(pub(super) &'a Store);

impl Privacy<'_> {
    pub async fn escalations_of_contact(self, contact_id: &str) -> StoreResult<Vec<EscalationRecord>> {
        let sql = format!("SELECT {ESCALATION_COLUMNS} FROM escalations WHERE contact_id = $1 ORDER BY created_at, id");
        let rows: Vec<EscalationRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_all(pool).await)?;
        rows.into_iter().map(|e| opened_escalation(self.0, e)).collect()
    }

    pub async fn placements_of_contact(self, contact_id: &str) -> StoreResult<Vec<PlacementRecord>> {
        let sql = format!("SELECT {PLACEMENT_COLUMNS} FROM placements WHERE contact_id = $1 ORDER BY created_at, id");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_all(pool).await)?)
    }

    /// Blocks made from this contact.
    pub async fn blocks_of_contact(self, contact_id: &str) -> StoreResult<Vec<BlockRecord>> {
        let sql = format!("SELECT {BLOCK_COLUMNS} FROM caller_blocks b WHERE b.contact_id = $1 ORDER BY b.created_at, b.id");
        opened_blocks(self.0, on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_all(pool).await)?)
    }

    /// Every block on an identifier (any helpline, in force or not), newest first.
    pub async fn blocks_on(self, kind: &str, hash: &str) -> StoreResult<Vec<BlockRecord>> {
        let sql = format!(
            "SELECT {BLOCK_COLUMNS} FROM caller_blocks b WHERE b.kind = $1 AND b.identifier_hash = $2
             ORDER BY b.created_at DESC, b.id DESC LIMIT 1000"
        );
        opened_blocks(self.0, on_pool!(self.0, pool => sqlx::query_as(&sql).bind(kind).bind(hash).fetch_all(pool).await)?)
    }

    /// Contacts whose caller has this identifier (`number`: the calls' number hash; `address`: the
    /// chats' network hash), newest first, at most [`SAME_CALLER_LIMIT`].
    pub async fn contacts_with_identifier(self, kind: &str, hash: &str) -> StoreResult<Vec<SameCaller>> {
        let sql = if kind == "number" {
            "SELECT c.id AS contact_id, c.channel, c.helpline, c.state, c.queued_at, c.ended_at, c.purged_at
             FROM calls k JOIN contacts c ON c.id = k.contact_id WHERE k.caller_hash = $1
             ORDER BY c.queued_at DESC, c.id DESC LIMIT $2"
        } else {
            "SELECT c.id AS contact_id, c.channel, c.helpline, c.state, c.queued_at, c.ended_at, c.purged_at
             FROM contacts c WHERE c.caller_hash = $1 AND c.channel <> 'call'
             ORDER BY c.queued_at DESC, c.id DESC LIMIT $2"
        };
        Ok(on_pool!(self.0, pool => sqlx::query_as(sql).bind(hash).bind(SAME_CALLER_LIMIT).fetch_all(pool).await)?)
    }
}

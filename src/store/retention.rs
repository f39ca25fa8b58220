//! Retention: the conversations of contacts that no case holds are deleted once they are older than
//! the retention period. The contact row stays (times, helpline, channel, outcome: reports and
//! roll-ups do not change), marked `purged_at`; its form, flags and call record stay too. Its callback
//! number and its survey mark (`survey_answered`: the contact's id, kept only to refuse a second answer)
//! go with the conversation, and so does the tie of a chat caller's return code to it.

use super::{on_pool, on_writer, BeginWrite, Store, StoreResult};

/// Which contacts are due: ended (or abandoned) before `cutoff`, not yet purged, linked to no case
/// (neither by `case_contacts` nor by a placement), and not the contact of a block still in force at
/// `now` (the block's review needs the conversation). `$1` = cutoff, `$2` = now.
const DUE: &str = "FROM contacts c
     WHERE c.state IN ('ended', 'abandoned') AND c.purged_at IS NULL AND COALESCE(c.ended_at, c.queued_at) < $1
       AND NOT EXISTS (SELECT 1 FROM case_contacts cc WHERE cc.contact_id = c.id)
       AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.contact_id = c.id AND p.case_id IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM caller_blocks b WHERE b.contact_id = c.id AND b.lifted_at IS NULL AND b.expires_at > $2)";

/// What one step of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeStep {
    /// Contacts whose conversation was deleted in this step.
    pub contacts: u64,
    /// Messages deleted in this step.
    pub messages: u64,
    /// Contacts still due after this step.
    pub remaining: u64,
}

/// A view of the store: what is due for purging, and the purge ([`Store::retention`]).
#[derive(Clone, Copy, Debug)]
pub struct Retention<'a>(pub(super) &'a Store);

impl Retention<'_> {
    /// How many contacts are due for retention (see [`DUE`]).
    pub async fn retention_due(self, cutoff: i64, now: i64) -> StoreResult<u64> {
        let sql = format!("SELECT COUNT(*) {DUE}");
        let (n,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(cutoff).bind(now).fetch_one(pool).await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes the conversations of up to `batch` due contacts, oldest first, in one write
    /// transaction (the due check is repeated inside it, so a contact linked to a case meanwhile is
    /// kept).
    pub async fn purge_step(self, cutoff: i64, now: i64, batch: i64) -> StoreResult<PurgeStep> {
        let pick = format!("SELECT c.id {DUE} ORDER BY c.queued_at, c.id LIMIT $3");
        let (contacts, messages) = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<(String,)> = sqlx::query_as(&pick).bind(cutoff).bind(now).bind(batch.max(1)).fetch_all(&mut *tx).await?;
            let mut messages = 0;
            for (id,) in &ids {
                messages += sqlx::query("DELETE FROM messages WHERE contact_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
                sqlx::query("DELETE FROM callback_numbers WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                // The mark that the caller answered the survey (its counts hold no contact: they stay).
                sqlx::query("DELETE FROM survey_answered WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM consults WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                // A return code's tie to this contact: the next counsellor no longer sees it.
                sqlx::query("DELETE FROM return_codes WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                // A messaging conversation's reply address and its outbox go with its messages.
                sqlx::query("UPDATE channel_conversations SET address = NULL WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM channel_outbox WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM channel_inbound WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("UPDATE handovers SET reason = NULL WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("UPDATE contacts SET purged_at = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((ids.len() as u64, messages))
        }.await)?;
        let remaining = self.retention_due(cutoff, now).await?;
        Ok(PurgeStep { contacts, messages, remaining })
    }

    /// When a contact's conversation was deleted by retention, if it was.
    pub async fn purged_at(self, contact_id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT purged_at FROM contacts WHERE id = $1")
            .bind(contact_id).fetch_optional(pool).await)?;
        Ok(row.and_then(|(p,)| p))
    }
}

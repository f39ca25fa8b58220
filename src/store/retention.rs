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
    /// How many contacts of `helpline` are due for retention (see [`DUE`]).
    pub async fn retention_due(self, helpline: &str, cutoff: i64, now: i64) -> StoreResult<u64> {
        let sql = format!("SELECT COUNT(*) {DUE}");
        let (n,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(cutoff).bind(now).bind(helpline).fetch_one(pool).await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes the conversations of up to `batch` due contacts of `helpline`, oldest first, in one write
    /// transaction (the due check is repeated inside it, so a contact linked to a case meanwhile is
    /// kept).
    pub async fn purge_step(self, helpline: &str, cutoff: i64, now: i64, batch: i64) -> StoreResult<PurgeStep> {
        let pick = format!("SELECT c.id {DUE} ORDER BY c.queued_at, c.id LIMIT $4");
        let (contacts, messages) = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<(String,)> = sqlx::query_as(&pick).bind(cutoff).bind(now).bind(helpline).bind(batch.max(1)).fetch_all(&mut *tx).await?;
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
        let remaining = self.retention_due(helpline, cutoff, now).await?;
        Ok(PurgeStep { contacts, messages, remaining })
    }

    /// When a contact's conversation was deleted by retention, if it was.
    pub async fn purged_at(self, contact_id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT purged_at FROM contacts WHERE id = $1")
            .bind(contact_id).fetch_optional(pool).await)?;
        Ok(row.and_then(|(p,)| p))
    }
}

/// A helpline's retention periods in days, one per class (None: kept). Also the body of
/// `GET`/`PUT /api/v1/helplines/{name}/retention` (every field given, null: kept; no other field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Periods {
    /// Conversations (messages); None: the server's `--retention-days`, if any.
    #[schema(minimum = 1, maximum = 36_500)]
    pub conversations_days: Option<u32>,
    /// Contact forms.
    #[schema(minimum = 1, maximum = 36_500)]
    pub forms_days: Option<u32>,
    /// Call records (without the number, which is never stored).
    #[schema(minimum = 1, maximum = 36_500)]
    pub calls_days: Option<u32>,
    /// Closed cases' content, counted from the case's last change.
    #[schema(minimum = 1, maximum = 36_500)]
    pub cases_days: Option<u32>,
}

/// Contacts of a helpline whose record of one class is due: ended before `$1`, of helpline `$2`, and
/// linked to no case (a case keeps what it holds until it is closed and its own period passes).
const CONTACTS_DUE: &str = "SELECT c.id FROM contacts c
     WHERE c.helpline = $2 AND c.state IN ('ended', 'abandoned') AND COALESCE(c.ended_at, c.queued_at) < $1
       AND NOT EXISTS (SELECT 1 FROM case_contacts cc WHERE cc.contact_id = c.id)
       AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.contact_id = c.id AND p.case_id IS NOT NULL)";

/// What deleting a closed case's content removes, in order (`$1`: the case).
const CASE_CONTENT: [&str; 8] = [
    "DELETE FROM case_people WHERE case_id = $1",
    "DELETE FROM case_entries WHERE case_id = $1",
    "DELETE FROM case_tasks WHERE case_id = $1",
    "DELETE FROM referrals WHERE case_id = $1",
    "DELETE FROM case_transfers WHERE case_id = $1",
    "DELETE FROM case_approvals WHERE case_id = $1",
    "DELETE FROM case_contacts WHERE case_id = $1",
    "UPDATE placements SET case_id = NULL WHERE case_id = $1",
];

fn days(v: Option<i64>) -> Option<u32> {
    v.and_then(|d| u32::try_from(d).ok())
}

impl Retention<'_> {
    /// The retention periods of `helpline` (all None when never set).
    pub async fn periods(self, helpline: &str) -> StoreResult<Periods> {
        type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let row: Option<Row> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT conversations_days, forms_days, calls_days, cases_days FROM retention_periods WHERE helpline = $1")
            .bind(helpline).fetch_optional(pool).await)?;
        Ok(row.map_or_else(Periods::default, |(a, b, c, d)| Periods {
            conversations_days: days(a),
            forms_days: days(b),
            calls_days: days(c),
            cases_days: days(d),
        }))
    }

    /// Every helpline with its retention periods (all None when never set), by name.
    pub async fn all_periods(self) -> StoreResult<Vec<(String, Periods)>> {
        type Row = (String, Option<i64>, Option<i64>, Option<i64>, Option<i64>);
        let rows: Vec<Row> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT h.name, r.conversations_days, r.forms_days, r.calls_days, r.cases_days
             FROM helplines h LEFT JOIN retention_periods r ON r.helpline = h.name ORDER BY h.name")
            .fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(h, a, b, c, d)| {
                (h, Periods { conversations_days: days(a), forms_days: days(b), calls_days: days(c), cases_days: days(d) })
            })
            .collect())
    }

    /// Sets the retention periods of `helpline` (which must exist: the caller checked).
    pub async fn set_periods(self, helpline: &str, p: &Periods, now: i64) -> StoreResult<()> {
        let v = |d: Option<u32>| d.map(i64::from);
        on_writer!(self.0, pool => sqlx::query(
            "INSERT INTO retention_periods (helpline, conversations_days, forms_days, calls_days, cases_days, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (helpline) DO UPDATE SET conversations_days = excluded.conversations_days, forms_days = excluded.forms_days,
               calls_days = excluded.calls_days, cases_days = excluded.cases_days, updated_at = excluded.updated_at")
            .bind(helpline).bind(v(p.conversations_days)).bind(v(p.forms_days)).bind(v(p.calls_days)).bind(v(p.cases_days)).bind(now)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Deletes the contact forms of up to `batch` due contacts of `helpline` (ended before `cutoff`,
    /// no case) in one write transaction; how many were deleted.
    pub async fn purge_forms_step(self, helpline: &str, cutoff: i64, batch: i64) -> StoreResult<u64> {
        self.delete_of_due("contact_forms", helpline, cutoff, batch).await
    }

    /// Deletes the call records of up to `batch` due contacts of `helpline` (ended before `cutoff`, no
    /// case) in one write transaction; how many were deleted.
    pub async fn purge_calls_step(self, helpline: &str, cutoff: i64, batch: i64) -> StoreResult<u64> {
        self.delete_of_due("calls", helpline, cutoff, batch).await
    }

    async fn delete_of_due(self, table: &str, helpline: &str, cutoff: i64, batch: i64) -> StoreResult<u64> {
        let sql = format!(
            "DELETE FROM {table} WHERE contact_id IN (SELECT x.contact_id FROM {table} x WHERE x.contact_id IN ({CONTACTS_DUE}) LIMIT $3)"
        );
        Ok(on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(&sql).bind(cutoff).bind(helpline).bind(batch.max(1)).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }.await)?)
    }

    /// Deletes the content of up to `batch` closed cases of `helpline` whose last change is before
    /// `cutoff` (open cases are never touched: legal hold), in one write transaction; the case row
    /// stays, marked `purged_at`. How many cases.
    pub async fn purge_cases_step(self, helpline: &str, cutoff: i64, now: i64, batch: i64) -> StoreResult<u64> {
        Ok(on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let ids: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM cases WHERE helpline = $1 AND stage = 'closed' AND purged_at IS NULL AND updated_at < $2
                 ORDER BY updated_at, id LIMIT $3")
                .bind(helpline).bind(cutoff).bind(batch.max(1)).fetch_all(&mut *tx).await?;
            for (id,) in &ids {
                for sql in CASE_CONTENT {
                    sqlx::query(sql).bind(id).execute(&mut *tx).await?;
                }
                sqlx::query("UPDATE cases SET purged_at = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(ids.len() as u64)
        }.await)?)
    }

    /// When a case's content was deleted by retention, if it was.
    pub async fn case_purged_at(self, case_id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(Option<i64>,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT purged_at FROM cases WHERE id = $1")
            .bind(case_id).fetch_optional(pool).await)?;
        Ok(row.and_then(|(p,)| p))
    }

    /// The last audit line that may be pruned for a retention of the audit log ending at `cutoff`:
    /// the line before the first one written at or after `cutoff` (the head is pruned, never a line in
    /// the middle), or the newest line when all are older. None: nothing to prune.
    pub async fn audit_prunable_through(self, cutoff: i64) -> StoreResult<Option<i64>> {
        let (first_kept, last): (Option<i64>, Option<i64>) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT (SELECT MIN(seq) FROM audit_log WHERE seq IS NOT NULL AND at >= $1), (SELECT MAX(seq) FROM audit_log WHERE seq IS NOT NULL)")
            .bind(cutoff).fetch_one(pool).await)?;
        let through = match (first_kept, last) {
            (Some(kept), _) => kept - 1,
            (None, Some(last)) => last,
            (None, None) => return Ok(None),
        };
        let (first,): (Option<i64>,) =
            on_pool!(self.0, pool => sqlx::query_as("SELECT MIN(seq) FROM audit_log WHERE seq IS NOT NULL").fetch_one(pool).await)?;
        Ok(first.filter(|f| *f <= through).map(|_| through))
    }
}

//! Contact forms (the counsellor's wrap-up of a contact) and escalations raised from contacts.

use super::rollup::InvalidateHour;
use super::sealed::place::ESCALATION_REASON;
use super::{both_engines, on_pool, on_writer, BeginWrite, Store, StoreResult};

/// An escalation as read, its reason opened.
pub(super) fn opened_escalation(store: &Store, mut e: EscalationRecord) -> StoreResult<EscalationRecord> {
    e.reason = store.open(ESCALATION_REASON, &e.id, &e.reason)?;
    Ok(e)
}

fn opened_escalations(store: &Store, list: Vec<EscalationRecord>) -> StoreResult<Vec<EscalationRecord>> {
    list.into_iter().map(|e| opened_escalation(store, e)).collect()
}

/// A contact's form as stored: `data` is the JSON of [`crate::casework::ContactForm`].
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FormRecord {
    pub contact_id: String,
    pub helpline: String,
    pub counsellor_id: String,
    pub data: String,
    pub risk: Option<String>,
    /// `draft` or `submitted`.
    pub status: String,
    pub updated_at: i64,
    pub submitted_at: Option<i64>,
}

/// An ended contact whose form is not submitted yet: an open wrap-up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Wrapup {
    pub contact_id: String,
    pub helpline: String,
    pub language: String,
    pub channel: String,
    pub ended_at: Option<i64>,
    /// `draft`, or None when nothing was saved yet.
    pub form_status: Option<String>,
}

/// An escalation as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct EscalationRecord {
    pub id: String,
    pub contact_id: String,
    pub helpline: String,
    pub kind: String,
    pub risk: String,
    pub reason: String,
    pub district: Option<String>,
    pub counsellor_id: String,
    pub created_at: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub broadcast_at: Option<i64>,
}

pub(super) const ESCALATION_COLUMNS: &str = "id, contact_id, helpline, kind, risk, reason, district, counsellor_id, created_at, \
     acknowledged_by, acknowledged_at, broadcast_at";

/// The priority a contact gets when its risk is imminent (the same as a supervisor's "to front").
pub const IMMINENT_PRIORITY: i64 = crate::routing::PRIORITY_FRONT as i64;

/// Raising a contact's stored priority inside a write transaction.
trait RaisePriority {
    /// Raises the contact's stored priority to [`IMMINENT_PRIORITY`] (never lowers it).
    async fn raise_priority(&mut self, contact: &str) -> Result<(), sqlx::Error>;
}

both_engines!(impl RaisePriority for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn raise_priority(&mut self, contact: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE contacts SET priority = $1 WHERE id = $2 AND priority < $1")
            .bind(IMMINENT_PRIORITY)
            .bind(contact)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
});

/// A view of the store: contact forms and escalations ([`Store::forms`]).
#[derive(Clone, Copy, Debug)]
pub struct Forms<'a>(pub(super) &'a Store);

impl Forms<'_> {
    /// Saves a form (draft or submitted); returns the risk it had before (to alert on a new `imminent`).
    pub async fn save_form(self, f: &FormRecord) -> StoreResult<Option<String>> {
        let data = self.0.seal_form(&f.contact_id, &f.data)?;
        let before = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let before: Option<(Option<String>,)> = sqlx::query_as("SELECT risk FROM contact_forms WHERE contact_id = $1")
                .bind(&f.contact_id).fetch_optional(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO contact_forms (contact_id, helpline, counsellor_id, data, risk, status, updated_at, submitted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (contact_id) DO UPDATE SET data = excluded.data, risk = excluded.risk,
                     status = excluded.status, updated_at = excluded.updated_at,
                     submitted_at = COALESCE(contact_forms.submitted_at, excluded.submitted_at)")
                .bind(&f.contact_id).bind(&f.helpline).bind(&f.counsellor_id).bind(&data).bind(&f.risk)
                .bind(&f.status).bind(f.updated_at).bind(f.submitted_at)
                .execute(&mut *tx).await?;
            if f.risk.as_deref() == Some("imminent") {
                tx.raise_priority(&f.contact_id).await?;
            }
            tx.invalidate_hour_of_contact(&f.contact_id).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(before.and_then(|b| b.0))
        }.await)?;
        Ok(before)
    }

    pub async fn form(self, contact_id: &str) -> StoreResult<Option<FormRecord>> {
        let row: Option<FormRecord> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT contact_id, helpline, counsellor_id, data, risk, status, updated_at, submitted_at
             FROM contact_forms WHERE contact_id = $1").bind(contact_id).fetch_optional(pool).await)?;
        row.map(|mut f| {
            f.data = self.0.open_form(&f.contact_id, &f.data)?;
            Ok(f)
        })
        .transpose()
    }

    /// A counsellor's ended contacts whose form is not submitted yet (their open wrap-ups), oldest first.
    pub async fn incomplete_forms(self, counsellor: &str) -> StoreResult<Vec<Wrapup>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT c.id AS contact_id, c.helpline, c.language, c.channel, c.ended_at, f.status AS form_status
             FROM contacts c LEFT JOIN contact_forms f ON f.contact_id = c.id
             WHERE c.counsellor_id = $1 AND c.state = 'ended' AND (f.status IS NULL OR f.status <> 'submitted')
             ORDER BY c.ended_at, c.id").bind(counsellor).fetch_all(pool).await)?)
    }

    /// Stores an escalation; an `imminent` one raises the contact's stored priority in the same transaction.
    pub async fn create_escalation(self, e: &EscalationRecord) -> StoreResult<()> {
        let reason = self.0.seal(ESCALATION_REASON, &e.id, &e.reason)?;
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO escalations (id, contact_id, helpline, kind, risk, reason, district, counsellor_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&e.id).bind(&e.contact_id).bind(&e.helpline).bind(&e.kind).bind(&e.risk).bind(&reason)
                .bind(&e.district).bind(&e.counsellor_id).bind(e.created_at)
                .execute(&mut *tx).await?;
            if e.risk == "imminent" {
                tx.raise_priority(&e.contact_id).await?;
            }
            tx.invalidate_hour_of_contact(&e.contact_id).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    pub async fn escalation(self, id: &str) -> StoreResult<Option<EscalationRecord>> {
        let sql = format!("SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = $1");
        let row: Option<EscalationRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|e| opened_escalation(self.0, e)).transpose()
    }

    /// Escalations not acknowledged yet, oldest first.
    pub async fn open_escalations(self) -> StoreResult<Vec<EscalationRecord>> {
        let sql = format!("SELECT {ESCALATION_COLUMNS} FROM escalations WHERE acknowledged_at IS NULL ORDER BY created_at, id");
        opened_escalations(self.0, on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// Marks an escalation acknowledged; false if it already was (by someone else, or before).
    pub async fn acknowledge_escalation(self, id: &str, by: &str, at: i64) -> StoreResult<bool> {
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE escalations SET acknowledged_by = $1, acknowledged_at = $2 WHERE id = $3 AND acknowledged_at IS NULL")
            .bind(by).bind(at).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Claims the escalations created before `before`, unacknowledged and not yet sent to every
    /// supervisor: marks them broadcast at `now` and returns them (each is claimed once).
    pub async fn claim_unacknowledged(self, before: i64, now: i64) -> StoreResult<Vec<EscalationRecord>> {
        let sql = format!(
            "UPDATE escalations SET broadcast_at = $1
             WHERE acknowledged_at IS NULL AND broadcast_at IS NULL AND created_at <= $2
             RETURNING {ESCALATION_COLUMNS}"
        );
        opened_escalations(self.0, on_pool!(self.0, pool => sqlx::query_as(&sql).bind(now).bind(before).fetch_all(pool).await)?)
    }

    /// Marks an escalation as already sent to every supervisor (an `imminent` one goes to all at once).
    pub async fn mark_broadcast(self, id: &str, at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE escalations SET broadcast_at = $1 WHERE id = $2 AND broadcast_at IS NULL")
            .bind(at).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{queued_chat, seeded, write_tx};

    /// `raise_priority` raises a contact's stored priority to the imminent one and never lowers it.
    #[tokio::test]
    async fn raising_a_priority_never_lowers_it() {
        let store = seeded().await;
        let (low, high) = (queued_chat(&store, 1).await, queued_chat(&store, 2).await);
        let mut tx = write_tx(&store).await;
        sqlx::query("UPDATE contacts SET priority = $1 WHERE id = $2")
            .bind(IMMINENT_PRIORITY + 1)
            .bind(&high)
            .execute(&mut *tx)
            .await
            .expect("set");
        tx.raise_priority(&low).await.expect("raise");
        tx.raise_priority(&high).await.expect("raise");
        tx.raise_priority("no such contact").await.expect("nothing to raise");
        tx.commit().await.expect("commit");
        let priority = |c: Option<crate::store::contacts::ContactRecord>| c.map(|c| c.priority);
        assert_eq!(priority(store.contacts().contact(&low).await.expect("read")), Some(IMMINENT_PRIORITY));
        assert_eq!(priority(store.contacts().contact(&high).await.expect("read")), Some(IMMINENT_PRIORITY + 1));
    }
}

//! Counsellors' handovers and consults (part of the [`Contacts`] view): a transfer a counsellor asked
//! for (cold, or warm until the briefed colleague accepts) and the consult messages between two
//! counsellors about a contact, which the caller never sees. The reason and the bodies are sealed at
//! rest ([`super::sealed`]); retention deletes them with the conversation.

use super::contacts::Contacts;
use super::sealed::place::{CONSULT_BODY, HANDOVER_REASON};
use super::{new_id, on_pool, StoreResult};

/// One transfer a counsellor asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRecord {
    pub id: String,
    pub contact_id: String,
    /// The counsellor who held the contact.
    pub from_id: String,
    /// The colleague it goes to (cold), or who is briefed (warm).
    pub to_id: Option<String>,
    /// The helpline whose queue it goes to, when it goes to a queue.
    pub helpline: Option<String>,
    pub reason: Option<String>,
    pub warm: bool,
    /// `pending` (warm, not yet answered), `done`, `declined`, `cancelled`, `failed`.
    pub state: String,
    pub created_at: i64,
}

/// One consult message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultRecord {
    pub id: String,
    pub contact_id: String,
    pub from_id: String,
    pub to_id: String,
    pub body: String,
    pub created_at: i64,
}

impl ConsultRecord {
    /// As counsellors see it (`from`: its sender's name).
    pub fn view(&self, from: String) -> crate::protocol::ConsultView {
        crate::protocol::ConsultView {
            contact_id: self.contact_id.clone(),
            from_counsellor_id: self.from_id.clone(),
            from,
            to_counsellor_id: self.to_id.clone(),
            text: self.body.clone(),
            at: crate::protocol::rfc3339(self.created_at),
        }
    }
}

type HandoverRow = (String, String, String, Option<String>, Option<String>, Option<String>, i64, String, i64);
const HANDOVER_COLUMNS: &str = "id, contact_id, from_id, to_id, helpline, reason, warm, state, created_at";

impl Contacts<'_> {
    fn handover_of(self, r: HandoverRow) -> StoreResult<HandoverRecord> {
        let reason = self.0.open_opt(HANDOVER_REASON, &r.0, r.5.as_deref())?;
        Ok(HandoverRecord {
            id: r.0,
            contact_id: r.1,
            from_id: r.2,
            to_id: r.3,
            helpline: r.4,
            reason,
            warm: r.6 != 0,
            state: r.7,
            created_at: r.8,
        })
    }

    /// Stores a new handover (its `id` is made here) and returns it.
    pub async fn add_handover(self, mut h: HandoverRecord) -> StoreResult<HandoverRecord> {
        h.id = new_id();
        let reason = self.0.seal_opt(HANDOVER_REASON, &h.id, h.reason.as_deref())?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO handovers (id, contact_id, from_id, to_id, helpline, reason, warm, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&h.id).bind(&h.contact_id).bind(&h.from_id).bind(&h.to_id).bind(&h.helpline).bind(&reason)
            .bind(i64::from(h.warm)).bind(&h.state).bind(h.created_at).execute(pool).await.map(|_| ()))?;
        Ok(h)
    }

    /// Moves handover `id` from state `from` to `to`; false when it was not in `from` (someone else answered first).
    pub async fn decide_handover(self, id: &str, from: &str, to: &str, at: i64) -> StoreResult<bool> {
        let done = on_pool!(self.0, pool => sqlx::query("UPDATE handovers SET state = $1, decided_at = $2 WHERE id = $3 AND state = $4")
            .bind(to).bind(at).bind(id).bind(from).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The handovers of a contact, oldest first.
    pub async fn handovers(self, contact: &str) -> StoreResult<Vec<HandoverRecord>> {
        let sql = format!("SELECT {HANDOVER_COLUMNS} FROM handovers WHERE contact_id = $1 ORDER BY created_at, id");
        let rows: Vec<HandoverRow> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact).fetch_all(pool).await)?;
        rows.into_iter().map(|r| self.handover_of(r)).collect()
    }

    /// Stores a consult message (its `id` is made here) and returns it.
    pub async fn add_consult(self, mut c: ConsultRecord) -> StoreResult<ConsultRecord> {
        c.id = new_id();
        let body = self.0.seal(CONSULT_BODY, &c.id, &c.body)?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO consults (id, contact_id, from_id, to_id, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&c.id).bind(&c.contact_id).bind(&c.from_id).bind(&c.to_id).bind(&body).bind(c.created_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(c)
    }

    /// The consult messages about a contact, oldest first.
    pub async fn consults(self, contact: &str) -> StoreResult<Vec<ConsultRecord>> {
        let rows: Vec<(String, String, String, String, String, i64)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, contact_id, from_id, to_id, body, created_at FROM consults WHERE contact_id = $1 ORDER BY created_at, id")
            .bind(contact).fetch_all(pool).await)?;
        rows.into_iter()
            .map(|r| {
                let body = self.0.open(CONSULT_BODY, &r.0, &r.4)?;
                Ok(ConsultRecord { id: r.0, contact_id: r.1, from_id: r.2, to_id: r.3, body, created_at: r.5 })
            })
            .collect()
    }
}

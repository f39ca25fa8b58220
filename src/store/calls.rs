//! Call records (contacts with channel `call`) and the exchanges' event log: each event stored once, in one transaction with its effect.

use super::contacts::NewContactRecord;
use super::{both_engines, new_id, on_pool, on_writer, BeginWrite, Store, StoreResult};

/// A call as recorded. Times are the exchange's (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct CallRecord {
    pub contact_id: String,
    pub gateway_id: Option<String>,
    pub call_id: String,
    pub dialled: Option<String>,
    /// The number's keyed hash: links one number's calls, so it never leaves the server (not serialized).
    #[serde(skip)]
    pub caller_hash: Option<String>,
    pub caller_last2: Option<String>,
    pub offered_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub ended_by: Option<String>,
    pub outcome: Option<String>,
    pub wait_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub offline: bool,
}

const CALL_COLUMNS: &str = "contact_id, gateway_id, call_id, dialled, caller_hash, caller_last2, offered_at, \
     answered_at, ended_at, ended_by, outcome, wait_ms, talk_ms, offline";

/// A caller who hangs up within this long of reaching the queue is `abandoned_short`.
pub const SHORT_ABANDON_MS: i64 = 5_000;

/// A call's outcome once it has ended: answered (or transferred) if the counsellor's leg picked
/// up; `missed` if a counsellor accepted but their phone never picked up; otherwise abandoned in
/// the queue, `abandoned_short` under [`SHORT_ABANDON_MS`].
pub fn outcome(offered_at: i64, accepted: bool, answered_at: Option<i64>, ended_at: i64, transferred: bool) -> &'static str {
    match answered_at {
        Some(_) if transferred => "transferred",
        Some(_) => "answered",
        None if accepted => "missed",
        None if ended_at.saturating_sub(offered_at) < SHORT_ABANDON_MS => "abandoned_short",
        None => "abandoned",
    }
}

/// A call reaching a queue: its contact row and what the exchange told us.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub contact: NewContactRecord,
    pub gateway_id: String,
    pub call_id: String,
    pub dialled: String,
    pub caller_hash: Option<String>,
    pub caller_last2: Option<String>,
    pub offered_at: i64,
    /// A configuration problem to log on the contact (e.g. an unknown dialled number).
    pub config_error: Option<String>,
    /// For senior counsellors only (the number is under a `senior` block); stored with the contact.
    pub senior_only: bool,
}

/// An earlier contact's submitted form, for a repeat caller's offer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EarlierForm {
    pub contact_id: String,
    pub helpline: String,
    pub queued_at: i64,
    /// The form's JSON.
    pub data: String,
    pub risk: Option<String>,
}

/// What the exchange said happened to a known call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent<'a> {
    Answered,
    Ended { by: &'a str },
    Abandoned,
}

impl CallEvent<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            CallEvent::Answered => "call_answered",
            CallEvent::Ended { .. } => "call_ended",
            CallEvent::Abandoned => "call_abandoned",
        }
    }
}

/// The call's contact as the event found it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallContact {
    pub contact_id: String,
    /// The contact's state: `queued`, `active`, `ended` or `abandoned`.
    pub state: String,
    pub counsellor_id: Option<String>,
}

/// What storing an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    /// Stored now, with its effect.
    New(T),
    /// This event id was stored before (or the call was offered before): nothing changed.
    Repeat,
    /// No call with this call_id: the event is stored as an orphan.
    Orphan,
}

/// A line in a contact's event log, written inside a write transaction.
trait CallLog {
    /// Appends a line (no counsellor) to `contact`'s event log.
    async fn log(&mut self, contact: &str, at: i64, kind: &str, detail: Option<&str>) -> Result<(), sqlx::Error>;
}

both_engines!(impl CallLog for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn log(&mut self, contact: &str, at: i64, kind: &str, detail: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO contact_events (id, contact_id, at, kind, counsellor_id, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id()).bind(contact).bind(at).bind(kind).bind(None::<String>).bind(detail)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
});

/// `INSERT` of an event id, doing nothing when it is there already.
const EVENT_SQL: &str = "INSERT INTO telephony_events (gateway_id, event_id, received_at, kind, call_id, at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (gateway_id, event_id) DO NOTHING";

/// A view of the store: phone calls: their records and events ([`Store::calls`]).
#[derive(Clone, Copy, Debug)]
pub struct Calls<'a>(pub(super) &'a Store);

impl Calls<'_> {
    /// Stores a `call_offered` (event id, contact, call, log) in one transaction.
    pub async fn record_call_offered(self, event_id: &str, received_at: i64, c: &NewCall) -> StoreResult<Stored<()>> {
        let x = &c.contact;
        let stored = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let fresh = sqlx::query(EVENT_SQL).bind(&c.gateway_id).bind(event_id).bind(received_at)
                .bind("call_offered").bind(&c.call_id).bind(c.offered_at)
                .execute(&mut *tx).await?.rows_affected() == 1;
            let known: Option<(String,)> = sqlx::query_as("SELECT contact_id FROM calls WHERE gateway_id = $1 AND call_id = $2")
                .bind(&c.gateway_id).bind(&c.call_id).fetch_optional(&mut *tx).await?;
            if !fresh || known.is_some() {
                tx.commit().await?;
                return Ok::<_, sqlx::Error>(Stored::Repeat);
            }
            sqlx::query("INSERT INTO contacts (id, channel, helpline, language, priority, state, resume_token_hash, queued_at, senior_only)
                         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8)")
                .bind(&x.id).bind(&x.channel).bind(&x.helpline).bind(&x.language).bind(x.priority)
                .bind(&x.resume_token_hash).bind(x.queued_at).bind(c.senior_only).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO calls (contact_id, gateway_id, call_id, dialled, caller_hash, caller_last2, offered_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&x.id).bind(&c.gateway_id).bind(&c.call_id).bind(&c.dialled).bind(&c.caller_hash)
                .bind(&c.caller_last2).bind(c.offered_at).execute(&mut *tx).await?;
            tx.log(&x.id, x.queued_at, "queued", None).await?;
            if let Some(problem) = &c.config_error {
                tx.log(&x.id, x.queued_at, "config_error", Some(problem.as_str())).await?;
            }
            tx.commit().await?;
            Ok(Stored::New(()))
        }.await)?;
        Ok(stored)
    }

    /// Stores an event about a call (`call_answered`, `call_ended`, `call_abandoned`) and its effect on
    /// the call record (times, outcome, durations) in one transaction. Late and out-of-order events
    /// are recorded: the first answer and end times count, and the outcome is worked out again.
    pub async fn record_call_event(
        self,
        gateway_id: &str,
        event_id: &str,
        received_at: i64,
        call_id: &str,
        at: i64,
        event: CallEvent<'_>,
    ) -> StoreResult<Stored<CallContact>> {
        let stored = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let fresh = sqlx::query(EVENT_SQL).bind(gateway_id).bind(event_id).bind(received_at)
                .bind(event.kind()).bind(call_id).bind(at).execute(&mut *tx).await?.rows_affected() == 1;
            if !fresh {
                tx.commit().await?;
                return Ok::<_, sqlx::Error>(Stored::Repeat);
            }
            let found: Option<CallContact> = sqlx::query_as(
                "SELECT c.id AS contact_id, c.state, c.counsellor_id FROM calls k JOIN contacts c ON c.id = k.contact_id
                 WHERE k.gateway_id = $1 AND k.call_id = $2")
                .bind(gateway_id).bind(call_id).fetch_optional(&mut *tx).await?;
            let Some(contact) = found else {
                sqlx::query("UPDATE telephony_events SET orphan = TRUE WHERE gateway_id = $1 AND event_id = $2")
                    .bind(gateway_id).bind(event_id).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Stored::Orphan);
            };
            let id = &contact.contact_id;
            match event {
                CallEvent::Answered => {
                    sqlx::query("UPDATE calls SET answered_at = COALESCE(answered_at, $1) WHERE contact_id = $2")
                        .bind(at).bind(id).execute(&mut *tx).await?;
                }
                CallEvent::Ended { by } => {
                    sqlx::query("UPDATE calls SET ended_at = COALESCE(ended_at, $1), ended_by = COALESCE(ended_by, $2) WHERE contact_id = $3")
                        .bind(at).bind(by).bind(id).execute(&mut *tx).await?;
                }
                CallEvent::Abandoned => {
                    sqlx::query("UPDATE calls SET ended_at = COALESCE(ended_at, $1), ended_by = COALESCE(ended_by, 'caller') WHERE contact_id = $2")
                        .bind(at).bind(id).execute(&mut *tx).await?;
                }
            }
            let (offered_at, answered_at, ended_at): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT offered_at, answered_at, ended_at FROM calls WHERE contact_id = $1")
                .bind(id).fetch_one(&mut *tx).await?;
            if let Some(ended_at) = ended_at {
                let (accepted, transferred): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM contacts WHERE id = $1 AND answered_at IS NOT NULL),
                            (SELECT COUNT(*) FROM contact_events WHERE contact_id = $1 AND kind = 'transferred')")
                    .bind(id).fetch_one(&mut *tx).await?;
                let outcome = outcome(offered_at, accepted > 0, answered_at, ended_at, transferred > 0);
                let wait = answered_at.unwrap_or(ended_at).saturating_sub(offered_at).max(0);
                let talk = answered_at.map(|a| ended_at.saturating_sub(a).max(0));
                sqlx::query("UPDATE calls SET outcome = $1, wait_ms = $2, talk_ms = $3 WHERE contact_id = $4")
                    .bind(outcome).bind(wait).bind(talk).bind(id).execute(&mut *tx).await?;
            }
            let detail = match event {
                CallEvent::Ended { by } => Some(by),
                _ => None,
            };
            tx.log(id, received_at, event.kind(), detail).await?;
            tx.commit().await?;
            Ok(Stored::New(contact))
        }.await)?;
        Ok(stored)
    }

    /// Stores a call a counsellor handled outside the system (contact, call record, log line) in one transaction.
    pub async fn record_offline_call(self, x: &NewContactRecord, call: &CallRecord, counsellor: &str, recorded_at: i64) -> StoreResult<()> {
        let state = if call.answered_at.is_some() { "ended" } else { "abandoned" };
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO contacts (id, channel, helpline, language, priority, state, resume_token_hash, queued_at,
                             answered_at, ended_at, counsellor_id, end_reason)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'offline')")
                .bind(&x.id).bind(&x.channel).bind(&x.helpline).bind(&x.language).bind(x.priority).bind(state)
                .bind(&x.resume_token_hash).bind(x.queued_at).bind(call.answered_at).bind(call.ended_at)
                .bind(call.answered_at.map(|_| counsellor)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO calls (contact_id, call_id, caller_hash, caller_last2, offered_at, answered_at, ended_at,
                             ended_by, outcome, wait_ms, talk_ms, offline)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE)")
                .bind(&x.id).bind(&call.call_id).bind(&call.caller_hash).bind(&call.caller_last2).bind(call.offered_at)
                .bind(call.answered_at).bind(call.ended_at).bind(&call.ended_by).bind(&call.outcome)
                .bind(call.wait_ms).bind(call.talk_ms).execute(&mut *tx).await?;
            tx.log(&x.id, recorded_at, "recorded_offline", Some(counsellor)).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// A call's record, by its contact id.
    pub async fn call_record(self, contact_id: &str) -> StoreResult<Option<CallRecord>> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE contact_id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact_id).fetch_optional(pool).await)?)
    }

    /// Calls still waiting or in conversation (what a restarted router must know about them).
    pub async fn open_calls(self) -> StoreResult<Vec<CallRecord>> {
        let sql = format!(
            "SELECT {} FROM calls k JOIN contacts c ON c.id = k.contact_id WHERE c.state IN ('queued', 'active')",
            CALL_COLUMNS.split(", ").map(|c| format!("k.{c}")).collect::<Vec<_>>().join(", ")
        );
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// A call's caller history, worked out from stored data only (so the same after a restart):
    /// how many other calls came from the same number hash in the `window_ms` before this one, and
    /// the submitted forms of the latest `limit` of them on this call's helpline, newest first.
    pub async fn caller_history(self, contact_id: &str, window_ms: i64, limit: i64) -> StoreResult<(i64, Vec<EarlierForm>)> {
        let (count,): (i64,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM calls k JOIN calls e ON e.caller_hash = k.caller_hash
             WHERE k.contact_id = $1 AND e.contact_id <> k.contact_id
               AND e.offered_at >= k.offered_at - $2 AND e.offered_at <= k.offered_at")
            .bind(contact_id).bind(window_ms).fetch_one(pool).await)?;
        if count == 0 {
            return Ok((0, Vec::new()));
        }
        let forms: Vec<EarlierForm> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT c.id AS contact_id, c.helpline, c.queued_at, f.data, f.risk
             FROM calls k
             JOIN contacts me ON me.id = k.contact_id
             JOIN calls e ON e.caller_hash = k.caller_hash AND e.contact_id <> k.contact_id
             JOIN contacts c ON c.id = e.contact_id AND c.helpline = me.helpline
             JOIN contact_forms f ON f.contact_id = c.id AND f.status = 'submitted'
             WHERE k.contact_id = $1 AND e.offered_at >= k.offered_at - $2 AND e.offered_at <= k.offered_at
             ORDER BY e.offered_at DESC, c.id DESC LIMIT $3")
            .bind(contact_id).bind(window_ms).bind(limit).fetch_all(pool).await)?;
        // The forms' free-text fields are sealed at rest: opened here, as every read of a form is.
        let forms = forms
            .into_iter()
            .map(|mut f| {
                f.data = self.0.open_form(&f.contact_id, &f.data)?;
                Ok(f)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((count, forms))
    }

    /// Events an exchange sent for calls this server did not know (for operators), oldest first: (gateway, event id, kind, call id).
    pub async fn orphan_events(self) -> StoreResult<Vec<(String, String, String, String)>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT gateway_id, event_id, kind, call_id FROM telephony_events WHERE orphan = TRUE ORDER BY received_at")
            .fetch_all(pool).await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::{outcome, CallLog};
    use crate::store::test_support::{queued_chat, seeded, write_tx};

    /// `log` appends a line without a counsellor to the contact's event log, in the caller's transaction.
    #[tokio::test]
    async fn a_call_log_line_has_no_counsellor() {
        let store = seeded().await;
        let contact = queued_chat(&store, 1).await;
        let mut tx = write_tx(&store).await;
        tx.log(&contact, 5, "call_ended", Some("caller")).await.expect("log");
        tx.log(&contact, 6, "recorded_offline", None).await.expect("log");
        tx.commit().await.expect("commit");
        let lines: Vec<_> = store
            .contacts()
            .contact_events(&contact)
            .await
            .expect("read")
            .into_iter()
            .map(|e| (e.at, e.kind, e.counsellor_id, e.detail))
            .collect();
        assert_eq!(
            lines[1..],
            [(5, "call_ended".to_string(), None, Some("caller".to_string())), (6, "recorded_offline".to_string(), None, None)]
        );
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(0, true, Some(4_000), 60_000, false), "answered");
        assert_eq!(outcome(0, true, Some(4_000), 60_000, true), "transferred");
        assert_eq!(outcome(0, true, None, 30_000, false), "missed");
        assert_eq!(outcome(0, false, None, 3_000, false), "abandoned_short");
        assert_eq!(outcome(0, false, None, 4_999, false), "abandoned_short");
        assert_eq!(outcome(0, false, None, 5_000, false), "abandoned");
    }
}

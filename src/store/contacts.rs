//! Contacts (chats, later calls): their lifecycle times, offers and the event log, written in one transaction per routing step.

use super::cluster::{Fenced, LeaderTx};
use super::commands::ApplyCommandChange;
use super::rollup::InvalidateHour;
use super::{both_engines, new_id, on_pool, on_writer, BeginWrite, Store, StoreError, StoreResult};

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ContactRecord {
    pub id: String,
    pub channel: String,
    pub helpline: String,
    pub language: String,
    pub priority: i64,
    /// `queued`, `active`, `ended` or `abandoned`.
    pub state: String,
    pub queued_at: i64,
    pub first_offered_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub counsellor_id: Option<String>,
    pub end_reason: Option<String>,
    /// Routed only to senior counsellors (the caller is under a `senior` block).
    pub senior_only: bool,
}

impl ContactRecord {
    pub fn is_open(&self) -> bool {
        self.state == "queued" || self.state == "active"
    }
}

/// A new contact entering a queue.
#[derive(Debug, Clone)]
pub struct NewContactRecord {
    pub id: String,
    pub channel: String,
    pub helpline: String,
    pub language: String,
    pub priority: i64,
    pub resume_token_hash: String,
    pub queued_at: i64,
}

/// A new contact waiting to be stored with its group ([`Contacts::create_contact_from`]).
pub(crate) struct Created {
    record: NewContactRecord,
    caller_hash: Option<String>,
    senior_only: bool,
}

/// The group commit of new contacts: those waiting for the next group, and the lock held while a
/// group is committed.
#[derive(Default)]
pub(crate) struct Creations {
    pub(crate) pending: std::sync::Mutex<Vec<(Created, tokio::sync::oneshot::Sender<StoreResult<()>>)>>,
    pub(crate) committing: tokio::sync::Mutex<()>,
    /// Groups committed (tests).
    pub(crate) groups: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Creations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creations").finish_non_exhaustive()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Most contact-event lines in one `INSERT` (6 parameters each).
const EVENTS_PER_INSERT: usize = 128;

/// A line of a contact's event log, to be written with the rest of its transaction's lines.
struct Event<'a> {
    id: String,
    contact: &'a str,
    at: i64,
    kind: String,
    counsellor: Option<&'a str>,
    detail: Option<String>,
}

impl<'a> Event<'a> {
    fn new(contact: &'a str, at: i64, kind: impl Into<String>, counsellor: Option<&'a str>, detail: Option<&str>) -> Event<'a> {
        Event { id: new_id(), contact, at, kind: kind.into(), counsellor, detail: detail.map(str::to_string) }
    }
}

/// The event kind of a caller who left with the widget's quick exit (`end` with `quick_exit`): the
/// relay then tells the counsellor `contact_ended` `quick_exit` instead of `caller_ended`.
pub const QUICK_EXIT: &str = "quick_exit";

/// One durable consequence of a routing step. A step's changes are committed together,
/// before anybody is told about them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Offered {
        contact: String,
        counsellor: String,
        at: i64,
        expires_at: i64,
        as_backup: bool,
    },
    /// The ringing offer of `contact` to `counsellor` ended with `outcome` (`declined`, `expired`, `revoked`).
    OfferClosed {
        contact: String,
        counsellor: String,
        outcome: &'static str,
        at: i64,
    },
    Assigned {
        contact: String,
        counsellor: String,
        at: i64,
    },
    Ended {
        contact: String,
        at: i64,
        reason: &'static str,
        abandoned: bool,
    },
    /// A line in the contact's event log (SLA events, caller drops, resumes, …).
    Event {
        contact: String,
        at: i64,
        kind: &'static str,
        counsellor: Option<String>,
        detail: Option<String>,
    },
    CounsellorStatus {
        counsellor: String,
        status: &'static str,
        reason: Option<&'static str>,
        at: i64,
    },
    /// A counsellor went away for `reason` (one of her helplines' away reasons).
    Away {
        counsellor: String,
        reason: String,
        at: i64,
    },
    /// The counsellor's slot of `contact` (just ended) is in wrap-up until `until` at the latest.
    WrapUp {
        contact: String,
        counsellor: String,
        until: i64,
        at: i64,
    },
    /// The counsellor's wrap-up of `contact` ended (`reason`: `ready` or `limit`): its handle time runs to `at`.
    WrapUpEnded {
        contact: String,
        counsellor: String,
        reason: &'static str,
        at: i64,
    },
    /// The caller answered the triage question; a yes raised the contact's priority to `priority`.
    Triaged {
        contact: String,
        danger: bool,
        priority: i64,
        at: i64,
    },
    /// A supervisor moved a conversation: to counsellor `to`, or (None) back into `helpline`'s queue.
    Transferred {
        contact: String,
        from: String,
        to: Option<String>,
        helpline: String,
        at: i64,
    },
    /// A command to a telephone exchange (stored with the step that caused it), or stale ones superseded.
    Command(super::commands::CommandChange),
    /// The caller left a message or asked for a callback instead of waiting: the contact is now of
    /// `channel` (`message`, `callback`) and waits from `queued_at` (when the line opens: its own
    /// answer clock); `at` is when she chose it.
    Deferred {
        contact: String,
        at: i64,
        channel: &'static str,
        queued_at: i64,
    },
    /// The callback is done (its contact ended): its number is deleted.
    ForgetCallback {
        contact: String,
    },
}

/// A line of a contact's event log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ContactEvent {
    pub at: i64,
    pub kind: String,
    pub counsellor_id: Option<String>,
    pub detail: Option<String>,
}

const CONTACT_COLUMNS: &str = "id, channel, helpline, language, priority, state, queued_at, first_offered_at, \
     answered_at, ended_at, counsellor_id, end_reason, senior_only";

/// Writing contact-event lines inside a write transaction.
trait WriteEvents {
    /// Writes `events`: a few multi-row `INSERT`s, not a statement per line (every statement is a round
    /// trip to the database's thread).
    async fn write_events(&mut self, events: &[Event<'_>]) -> Result<(), sqlx::Error>;
}

both_engines!(impl WriteEvents for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn write_events(&mut self, events: &[Event<'_>]) -> Result<(), sqlx::Error> {
        for part in events.chunks(EVENTS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO contact_events (id, contact_id, at, kind, counsellor_id, detail) ");
            q.push_values(part, |mut b, e| {
                b.push_bind(&e.id).push_bind(e.contact).push_bind(e.at).push_bind(&e.kind).push_bind(e.counsellor).push_bind(e.detail.as_deref());
            });
            q.build().execute(&mut *self).await?;
        }
        Ok(())
    }
});

/// Writing a routing step's changes: implemented only for the leader's write transactions ([`Fenced`],
/// which only [`Store::begin_leader_write`] opens, after the fence check).
trait WriteChanges {
    async fn write_changes(&mut self, changes: &[Change]) -> Result<(), sqlx::Error>;
}

both_engines!(impl WriteChanges for Fenced<sqlx::Sqlite>, Fenced<sqlx::Postgres> {
    async fn write_changes(&mut self, changes: &[Change]) -> Result<(), sqlx::Error> {
        let tx = &mut **self;
        // Each change's line in the contacts' event logs, written together after the changes.
        let mut events: Vec<Event> = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Offered { contact, counsellor, at, expires_at, as_backup } => {
                    sqlx::query("INSERT INTO offers (id, contact_id, counsellor_id, offered_at, expires_at, as_backup)
                                 VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(new_id()).bind(contact).bind(counsellor).bind(at).bind(expires_at).bind(as_backup)
                        .execute(&mut *tx).await?;
                    sqlx::query("UPDATE contacts SET first_offered_at = $1 WHERE id = $2 AND first_offered_at IS NULL")
                        .bind(at).bind(contact).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, "offered", Some(counsellor), as_backup.then_some("backup")));
                }
                Change::OfferClosed { contact, counsellor, outcome, at } => {
                    sqlx::query("UPDATE offers SET outcome = $1, responded_at = $2
                                 WHERE contact_id = $3 AND counsellor_id = $4 AND outcome IS NULL")
                        .bind(outcome).bind(at).bind(contact).bind(counsellor).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, format!("offer_{outcome}"), Some(counsellor), None));
                }
                Change::Assigned { contact, counsellor, at } => {
                    sqlx::query("UPDATE offers SET outcome = 'accepted', responded_at = $1
                                 WHERE contact_id = $2 AND counsellor_id = $3 AND outcome IS NULL")
                        .bind(at).bind(contact).bind(counsellor).execute(&mut *tx).await?;
                    // `answered_at` is the first answer: a contact transferred back to a queue and
                    // answered again keeps it (ASA and service level count the caller's first wait).
                    sqlx::query("UPDATE contacts SET state = 'active', answered_at = COALESCE(answered_at, $1), counsellor_id = $2 WHERE id = $3")
                        .bind(at).bind(counsellor).bind(contact).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, "answered", Some(counsellor), None));
                }
                Change::Ended { contact, at, reason, abandoned } => {
                    let state = if *abandoned { "abandoned" } else { "ended" };
                    sqlx::query("UPDATE offers SET outcome = 'revoked', responded_at = $1 WHERE contact_id = $2 AND outcome IS NULL")
                        .bind(at).bind(contact).execute(&mut *tx).await?;
                    sqlx::query("UPDATE contacts SET state = $1, ended_at = $2, end_reason = $3 WHERE id = $4")
                        .bind(state).bind(at).bind(reason).bind(contact).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, state, None, Some(reason)));
                }
                Change::Event { contact, at, kind, counsellor, detail } => {
                    events.push(Event::new(contact, *at, *kind, counsellor.as_deref(), detail.as_deref()));
                }
                Change::Transferred { contact, from, to, helpline, at } => {
                    match to {
                        Some(to) => {
                            sqlx::query("UPDATE contacts SET counsellor_id = $1 WHERE id = $2")
                                .bind(to).bind(contact).execute(&mut *tx).await?;
                        }
                        None => {
                            sqlx::query("UPDATE contacts SET state = 'queued', counsellor_id = NULL, helpline = $1 WHERE id = $2")
                                .bind(helpline).bind(contact).execute(&mut *tx).await?;
                        }
                    }
                    let detail = format!("{from} -> {}", to.as_deref().unwrap_or(helpline));
                    events.push(Event::new(contact, *at, "transferred", to.as_deref(), Some(&detail)));
                }
                Change::Command(command) => {
                    tx.apply_command_change(command).await?;
                }
                Change::Deferred { contact, at, channel, queued_at } => {
                    sqlx::query("UPDATE contacts SET channel = $1, queued_at = $2 WHERE id = $3")
                        .bind(channel).bind(queued_at).bind(contact).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, format!("left_{channel}"), None, Some(&queued_at.to_string())));
                }
                Change::ForgetCallback { contact } => {
                    sqlx::query("DELETE FROM callback_numbers WHERE contact_id = $1").bind(contact).execute(&mut *tx).await?;
                }
                Change::Away { counsellor, reason, at } => {
                    sqlx::query("UPDATE users SET status = 'away' WHERE id = $1").bind(counsellor).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO status_changes (id, user_id, at, status, reason, away_reason) VALUES ($1, $2, $3, 'away', NULL, $4)")
                        .bind(new_id()).bind(counsellor).bind(at).bind(reason).execute(&mut *tx).await?;
                }
                Change::WrapUp { contact, counsellor, until, at } => {
                    sqlx::query("UPDATE contacts SET wrapup_until = $1 WHERE id = $2")
                        .bind(until).bind(contact).execute(&mut *tx).await?;
                    let limit = (until - at).max(0).to_string();
                    events.push(Event::new(contact, *at, "wrap_up", Some(counsellor), Some(&limit)));
                }
                Change::WrapUpEnded { contact, counsellor, reason, at } => {
                    // Handle time changes: a rolled-up hour of this contact is counted again.
                    tx.invalidate_hour_of_contact(contact).await?;
                    sqlx::query("UPDATE contacts SET wrapup_ended_at = $1 WHERE id = $2 AND ended_at IS NOT NULL")
                        .bind(at).bind(contact).execute(&mut *tx).await?;
                    events.push(Event::new(contact, *at, "wrap_up_ended", Some(counsellor), Some(reason)));
                }
                Change::Triaged { contact, danger, priority, at } => {
                    if *danger {
                        sqlx::query("UPDATE contacts SET priority = $1 WHERE id = $2 AND priority < $1")
                            .bind(priority).bind(contact).execute(&mut *tx).await?;
                    }
                    events.push(Event::new(contact, *at, "triage", None, Some(if *danger { "yes" } else { "no" })));
                }
                Change::CounsellorStatus { counsellor, status, reason, at } => {
                    sqlx::query("UPDATE users SET status = $1 WHERE id = $2")
                        .bind(status).bind(counsellor).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO status_changes (id, user_id, at, status, reason) VALUES ($1, $2, $3, $4, $5)")
                        .bind(new_id()).bind(counsellor).bind(at).bind(status).bind(reason).execute(&mut *tx).await?;
                }
            }
        }
        tx.write_events(&events).await
    }
});

/// A view of the store: contacts and their event log; a routing step's changes ([`Store::contacts`]).
#[derive(Clone, Copy, Debug)]
pub struct Contacts<'a>(pub(super) &'a Store);

impl Contacts<'_> {
    /// Stores a new queued contact and its `queued` event.
    pub async fn create_contact(self, c: &NewContactRecord) -> StoreResult<()> {
        self.create_contact_from(c, None, false).await
    }

    /// Stores a new queued contact with its caller's keyed identifier (a chat's client-network
    /// HMAC) and whether only seniors may take it, and its `queued` event.
    ///
    /// Contacts are stored in groups (group commit): the first to arrive while no group is being
    /// committed commits every contact waiting then, in one transaction, and tells each its outcome; the
    /// ones arriving meanwhile wait and form the next group. At 1,000 new chats a second that is a few
    /// dozen transactions instead of a thousand, and routing steps queue for the one writer
    /// ([`super::Pool::Sqlite`]) behind at most one group of new contacts. A group that fails fails each of
    /// its contacts (each caller is asked to try again).
    pub async fn create_contact_from(self, c: &NewContactRecord, caller_hash: Option<&str>, senior_only: bool) -> StoreResult<()> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let row = Created { record: c.clone(), caller_hash: caller_hash.map(str::to_string), senior_only };
        lock(&self.0.creations.pending).push((row, tx));
        let _committing = self.0.creations.committing.lock().await;
        // The group before ours may have taken this contact: its outcome is here already (or, if that
        // group's commit was abandoned midway, its sender is gone: not stored as far as anyone knows).
        match rx.try_recv() {
            Ok(result) => return result,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(StoreError::GroupFailed("its group was not committed".into()))
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        let group = std::mem::take(&mut *lock(&self.0.creations.pending));
        self.0.creations.groups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let result = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            for (row, _) in &group {
                let c = &row.record;
                sqlx::query("INSERT INTO contacts (id, channel, helpline, language, priority, state, resume_token_hash, queued_at,
                                 caller_hash, senior_only)
                             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9)")
                    .bind(&c.id).bind(&c.channel).bind(&c.helpline).bind(&c.language).bind(c.priority)
                    .bind(&c.resume_token_hash).bind(c.queued_at).bind(&row.caller_hash).bind(row.senior_only)
                    .execute(&mut *tx).await?;
            }
            let queued: Vec<Event> = group.iter().map(|(row, _)| Event::new(&row.record.id, row.record.queued_at, "queued", None, None)).collect();
            tx.write_events(&queued).await?;
            tx.commit().await
        }.await).map_err(StoreError::from);
        self.0.note_write(&result);
        let shared = result.as_ref().map_err(|e| e.to_string()).map(|_| ());
        for (_, tx) in group {
            let _ = tx.send(shared.clone().map_err(StoreError::GroupFailed));
        }
        rx.try_recv().unwrap_or_else(|_| result.and(Err(StoreError::GroupFailed("not in its group".into()))))
    }

    pub async fn contact(self, id: &str) -> StoreResult<Option<ContactRecord>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?)
    }

    /// The contact whose resume token hashes to `hash`.
    pub async fn contact_by_token_hash(self, hash: &str) -> StoreResult<Option<ContactRecord>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE resume_token_hash = $1");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(hash).fetch_optional(pool).await)?)
    }

    /// Contacts still waiting or in conversation, oldest first: what a restarted router restores.
    pub async fn open_contacts(self) -> StoreResult<Vec<ContactRecord>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE state IN ('queued', 'active') ORDER BY queued_at, id");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_all(pool).await)?)
    }

    /// The wrap-ups not yet over (`wrapup_until` set, `wrapup_ended_at` not): (contact, counsellor,
    /// until), what a restarted router restores.
    pub async fn open_wrapups(self) -> StoreResult<Vec<(String, String, i64)>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, counsellor_id, wrapup_until FROM contacts
             WHERE wrapup_until IS NOT NULL AND wrapup_ended_at IS NULL AND counsellor_id IS NOT NULL
             ORDER BY wrapup_until, id").fetch_all(pool).await)?)
    }

    /// The contacts answered since `since`: (helpline, queued_at, answered_at) in answer order, what
    /// a restarted router seeds its estimated waits from.
    pub async fn recent_answers(self, since: i64) -> StoreResult<Vec<(String, i64, i64)>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT helpline, queued_at, answered_at FROM contacts
             WHERE answered_at IS NOT NULL AND answered_at >= $1 ORDER BY answered_at, id")
            .bind(since).fetch_all(pool).await)?)
    }

    /// A counsellor's open conversations, oldest first.
    pub async fn active_contacts_of(self, counsellor: &str) -> StoreResult<Vec<ContactRecord>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE state = 'active' AND counsellor_id = $1 ORDER BY answered_at, id");
        Ok(on_pool!(self.0, pool => sqlx::query_as(&sql).bind(counsellor).fetch_all(pool).await)?)
    }

    /// The contact's event log, in order.
    pub async fn contact_events(self, contact: &str) -> StoreResult<Vec<ContactEvent>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT at, kind, counsellor_id, detail FROM contact_events WHERE contact_id = $1 ORDER BY at, id")
            .bind(contact).fetch_all(pool).await)?)
    }

    /// Commits a routing step's changes in one transaction.
    pub async fn apply_changes(self, changes: &[Change]) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let result = self.apply_changes_once(changes).await;
        self.0.note_write(&result);
        result
    }

    /// One leader's write transaction ([`Store::begin_leader_write`]: fenced in cluster mode).
    async fn apply_changes_once(self, changes: &[Change]) -> StoreResult<()> {
        let mut tx = self.0.begin_leader_write().await?;
        match &mut tx {
            LeaderTx::Sqlite(t) => t.write_changes(changes).await?,
            LeaderTx::Postgres(t) => t.write_changes(changes).await?,
        }
        tx.commit().await
    }
}

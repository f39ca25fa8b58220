//! The conversation relay: one task that stores chat messages in group commits, acknowledges them, and delivers them in seq order.
//!
//! It is the only writer of messages and the only sender of conversation frames
//! (`message`, `connected`, `assigned`, `contact_ended`, `resumed`), so everything a
//! party sees of a conversation arrives in one order, and a history read here is
//! never overtaken by a live message.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::chat::hub::{ConnId, Hub, Outbox, Outgoing, Role};
use crate::protocol::{rfc3339, ConversationSummary, ErrorCode, MessageView, Party, ServerEvent};
use crate::store::contacts::ContactRecord;
use crate::store::messages::{NewMessage, NextSeqs, StoredMessage};
use crate::store::users::User;
use crate::store::Store;

/// Most messages committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Requests to the relay task.
#[derive(Debug)]
pub enum RelayCommand {
    /// A caller started a contact on this socket.
    Open { contact: String, outbox: Outbox, done: oneshot::Sender<()> },
    /// A caller came back: send `resumed` and every message after `last_seq`, then attach the socket.
    Resume { contact: ContactRecord, last_seq: i64, outbox: Outbox, done: oneshot::Sender<ResumeOutcome> },
    /// A counsellor connected: send `hello` and an `assigned` (with history) per open conversation, then attach.
    CounsellorSync { user: User, status: crate::protocol::CounsellorStatus, outbox: Outbox, done: oneshot::Sender<()> },
    /// Store a message, ack it to `outbox`, deliver it to the other party.
    Post { contact: String, party: Party, sender_id: Option<String>, client_id: String, text: String, outbox: Outbox },
    /// Pass a typing indicator to the other party.
    Typing { contact: String, party: Party, sender_id: Option<String>, active: bool },
    /// The router assigned a contact (committed): tell the caller and give the counsellor the history.
    Assigned { contact: String, counsellor: String },
    /// The contact ended (committed).
    Ended { contact: String, reason: &'static str },
    /// The caller's connection dropped or came back.
    CallerPresence { contact: String, online: bool },
    /// A supervisor moved the conversation (committed): to counsellor `to`, or back into `helpline`'s queue.
    Transferred { contact: String, from: String, to: Option<String>, helpline: String },
    /// A supervisor watches a conversation silently: history now, then every message.
    Monitor { contact: String, outbox: Outbox, done: oneshot::Sender<bool> },
    /// Stop watching.
    Unmonitor { contact: String, conn: ConnId },
    /// A message only the counsellor (and monitoring supervisors) see.
    Whisper { contact: String, from_name: String, text: String, outbox: Outbox, done: oneshot::Sender<bool> },
    /// A supervisor joins the conversation: the caller sees a second person join, and the supervisor may write.
    Join { contact: String, supervisor: String, name: String, outbox: Outbox, done: oneshot::Sender<bool> },
    /// Cluster mode, on a new leader: a supervisor socket of a surviving node watched (monitor) or
    /// joined (`joined`: the supervisor) this conversation with the last leader: it goes on, silently.
    Rewatch { contact: String, outbox: Outbox, joined: Option<String>, after: Option<i64> },
    /// Cluster mode, on a new leader: a node's sockets register again; each is sent the messages
    /// committed after the newest it was sent, then attached (see [`Rejoining`]).
    Rejoin { sockets: Vec<Rejoining>, done: oneshot::Sender<()> },
}

/// Cluster mode: a socket of a surviving node registering with a new leader ([`RelayCommand::Rejoin`]).
#[derive(Debug)]
pub struct Rejoining {
    pub outbox: Outbox,
    pub role: Role,
    /// The newest message seq it was sent, per conversation (its node's record; none: unknown).
    pub seen: Vec<(String, i64)>,
}

/// What became of a caller's resume (crosses the cluster link as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeOutcome {
    /// `resumed` and the missed messages went out; the socket is attached.
    Resumed,
    /// The contact is not open (ended): the token is spent.
    NotOpen,
    /// The history could not be read (database away): nothing changed; try again.
    Unavailable,
}

/// A cheap handle to the relay task: this process's, or (cluster mode) the leader's, wherever it runs.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    route: RelayRoute,
}

#[derive(Clone, Debug)]
enum RelayRoute {
    Local(mpsc::Sender<RelayCommand>),
    Cluster(std::sync::Arc<dyn crate::chat::forward::Forward>),
}

impl RelayHandle {
    /// Cluster mode: commands go to the leader's relay task (local channel or Redis).
    pub fn clustered(link: std::sync::Arc<dyn crate::chat::forward::Forward>) -> RelayHandle {
        RelayHandle { route: RelayRoute::Cluster(link) }
    }

    /// The relay task's queue, when it runs in this process.
    pub fn local_sender(&self) -> Option<mpsc::Sender<RelayCommand>> {
        match &self.route {
            RelayRoute::Local(tx) => Some(tx.clone()),
            RelayRoute::Cluster(_) => None,
        }
    }

    /// Sends a command; false if the relay has stopped (shutdown).
    pub async fn send(&self, cmd: RelayCommand) -> bool {
        match &self.route {
            RelayRoute::Local(tx) => tx.send(cmd).await.is_ok(),
            RelayRoute::Cluster(link) => link.relay(cmd).await,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Conversation {
    counsellor: Option<String>,
    /// Supervisors who joined and may write.
    joined: Vec<String>,
    /// Supervisor sockets watching (monitor or join).
    watchers: Vec<Outbox>,
}

impl Conversation {
    fn may_write(&self, sender: Option<&str>) -> bool {
        let Some(sender) = sender else { return false };
        self.counsellor.as_deref() == Some(sender) || self.joined.iter().any(|j| j == sender)
    }
}

struct Relay {
    store: Store,
    hub: std::sync::Arc<Hub>,
    clock: Clock,
    open: HashMap<String, Conversation>,
    names: HashMap<String, String>,
    /// The next seq of each open conversation written to (see [`NextSeqs`]).
    seqs: NextSeqs,
    /// Messages whose commit was reported as failed (contact, sender, client id): committed or not, nobody knows.
    unsure: std::collections::HashSet<(String, &'static str, String)>,
}

/// Most failed messages remembered in [`Relay::unsure`].
const MAX_UNSURE: usize = 10_000;

fn unsure_key(m: &NewMessage) -> (String, &'static str, String) {
    (m.contact_id.clone(), m.sender, m.client_id.clone())
}

/// Messages admitted and not yet committed, with the socket each came from.
#[derive(Default)]
struct Batch {
    messages: Vec<NewMessage>,
    outboxes: Vec<Outbox>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Starts the relay task with the open conversations restored from the database.
pub async fn spawn(
    store: Store,
    hub: std::sync::Arc<Hub>,
    clock: Clock,
) -> Result<(RelayHandle, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let mut open = HashMap::new();
    for c in store.open_contacts().await? {
        open.insert(c.id.clone(), Conversation { counsellor: c.counsellor_id.clone(), ..Default::default() });
    }
    let (tx, rx) = mpsc::channel(4096);
    let relay = Relay { store, hub, clock, open, names: HashMap::new(), seqs: NextSeqs::default(), unsure: Default::default() };
    let task = tokio::spawn(relay.run(rx));
    Ok((RelayHandle { route: RelayRoute::Local(tx) }, task))
}

impl Relay {
    async fn run(mut self, mut rx: mpsc::Receiver<RelayCommand>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        // Ends when every handle is dropped; what was queued is still written.
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            let mut batch = Batch::default();
            for cmd in commands.drain(..) {
                match cmd {
                    RelayCommand::Post { contact, party, sender_id, client_id, text, outbox } => {
                        if let Some(message) = self.admit(contact, party, sender_id, client_id, text, &outbox) {
                            batch.messages.push(message);
                            batch.outboxes.push(outbox);
                        }
                    }
                    other => {
                        self.flush(&mut batch).await;
                        self.handle(other).await;
                    }
                }
            }
            self.flush(&mut batch).await;
        }
    }

    /// Checks that the sender may post to this conversation; refuses with an error frame otherwise.
    fn admit(
        &self,
        contact: String,
        party: Party,
        sender_id: Option<String>,
        client_id: String,
        text: String,
        outbox: &Outbox,
    ) -> Option<NewMessage> {
        let allowed = match (self.open.get(&contact), party) {
            (Some(_), Party::Caller) => true,
            (Some(conv), Party::Counsellor) => conv.may_write(sender_id.as_deref()),
            _ => false,
        };
        if !allowed {
            outbox.send(&ServerEvent::error_about(
                ErrorCode::UnknownContact,
                "no open conversation of yours with that contact",
                client_id,
            ));
            return None;
        }
        Some(NewMessage { contact_id: contact, sender: party.as_str(), sender_id, client_id, body: text, at: self.clock.now_ms() })
    }

    /// Commits a batch, then acks and delivers each message in seq order.
    async fn flush(&mut self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut result = self.store.store_messages(&batch.messages, &mut self.seqs).await;
        if result.is_ok() {
            crate::chat::counters::METRICS.commit("messages", started.elapsed());
            crate::chat::counters::METRICS.messages.inc_by(batch.messages.len() as u64);
        }
        // One retry after a short pause covers a busy database; after that the senders are told
        // nothing was stored, and they send again with the same client ids. The failed try may have
        // committed with its answer lost: a repeat found by the retry (or later) is delivered then.
        if result.is_err() {
            self.remember_unsure(&batch.messages);
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = self.store.store_messages(&batch.messages, &mut self.seqs).await;
        }
        // Fault injection for the failover tests: `FAILPOINTS=relay-after-commit=return(TEXT)` kills
        // the process right after committing a batch with a message containing TEXT, before anyone
        // hears of it (a leader dying between its commit and sending on).
        // Only test builds have the point (`fail::has_failpoints` is a constant: this is compiled out).
        if fail::has_failpoints() && result.is_ok() {
            if let Some(Some(text)) = fail::eval("relay-after-commit", |arg| arg) {
                if batch.messages.iter().any(|m| m.body.contains(&text)) {
                    tracing::error!("fault injection: dying after a commit, before acknowledging or delivering it");
                    std::process::abort();
                }
            }
        }
        let messages = std::mem::take(&mut batch.messages);
        let outboxes = std::mem::take(&mut batch.outboxes);
        match result {
            Ok(stored) => {
                for ((message, outbox), s) in messages.iter().zip(outboxes).zip(stored) {
                    outbox.send(&ServerEvent::Ack {
                        contact_id: s.message.contact_id.clone(),
                        client_id: s.message.client_id.clone(),
                        seq: s.message.seq,
                    });
                    // A repeat is not delivered again, unless its first try was reported as failed:
                    // that transaction may have committed with its answer lost, and then nobody has seen it.
                    let unsure = !self.unsure.is_empty() && self.unsure.remove(&unsure_key(message));
                    if !s.duplicate || unsure {
                        self.deliver(&s.message, Some(outbox.id));
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, n = messages.len(), "storing messages failed");
                for (message, outbox) in messages.into_iter().zip(outboxes) {
                    outbox.send(&ServerEvent::error_about(
                        ErrorCode::Unavailable,
                        "the message was not stored; send it again",
                        message.client_id,
                    ));
                }
            }
        }
    }

    /// Remembers messages whose commit was reported as failed (see [`Relay::unsure`]).
    fn remember_unsure(&mut self, messages: &[NewMessage]) {
        if self.unsure.len() + messages.len() > MAX_UNSURE {
            self.unsure.clear();
        }
        self.unsure.extend(messages.iter().map(unsure_key));
    }

    /// Sends a stored message to both parties' sockets, except the one it came from.
    fn deliver(&self, m: &StoredMessage, origin: Option<ConnId>) {
        let frame = Outgoing::Frame(ServerEvent::Message(view(m)).to_json().into());
        self.hub.to_caller(&m.contact_id, frame.clone(), origin);
        let Some(conv) = self.open.get(&m.contact_id) else { return };
        if let Some(counsellor) = &conv.counsellor {
            self.hub.to_counsellor(counsellor, frame.clone(), origin);
        }
        for w in conv.watchers.iter().filter(|w| Some(w.id) != origin) {
            w.push(frame.clone());
        }
    }

    async fn handle(&mut self, cmd: RelayCommand) {
        match cmd {
            RelayCommand::Post { .. } => {}
            RelayCommand::Open { contact, outbox, done } => {
                self.open.entry(contact.clone()).or_default();
                self.hub.attach_caller(&contact, outbox);
                let _ = done.send(());
            }
            RelayCommand::Resume { contact, last_seq, outbox, done } => {
                let ok = self.resume(contact, last_seq, outbox).await;
                let _ = done.send(ok);
            }
            RelayCommand::CounsellorSync { user, status, outbox, done } => {
                self.counsellor_sync(user, status, outbox).await;
                let _ = done.send(());
            }
            RelayCommand::Typing { contact, party, sender_id, active } => {
                let Some(conv) = self.open.get(&contact) else { return };
                let frame = ServerEvent::Typing { contact_id: contact.clone(), from: party, active };
                match party {
                    Party::Caller => {
                        if let Some(c) = &conv.counsellor {
                            self.hub.event_to_counsellor(c, &frame);
                        }
                    }
                    _ => {
                        if conv.counsellor.is_some() && conv.counsellor == sender_id {
                            self.hub.event_to_caller(&contact, &frame);
                        }
                    }
                }
            }
            RelayCommand::Assigned { contact, counsellor } => self.assigned(contact, counsellor).await,
            RelayCommand::Ended { contact, reason } => {
                let conv = self.open.remove(&contact).unwrap_or_default();
                self.seqs.forget(&contact);
                let frame = ServerEvent::ContactEnded { contact_id: contact.clone(), reason: reason.to_string() };
                self.hub.to_caller(
                    &contact,
                    Outgoing::Ended { contact_id: contact.clone(), frame: frame.to_json().into() },
                    None,
                );
                if let Some(c) = conv.counsellor {
                    self.hub.event_to_counsellor(&c, &frame);
                }
                for w in &conv.watchers {
                    w.send(&frame);
                }
            }
            RelayCommand::Transferred { contact, from, to, helpline } => self.transferred(contact, from, to, helpline).await,
            RelayCommand::Monitor { contact, outbox, done } => {
                let ok = self.watch(&contact, outbox).await;
                let _ = done.send(ok);
            }
            RelayCommand::Unmonitor { contact, conn } => {
                if let Some(conv) = self.open.get_mut(&contact) {
                    conv.watchers.retain(|w| w.id != conn);
                }
            }
            RelayCommand::Whisper { contact, from_name, text, outbox, done } => {
                let ok = self.whisper(&contact, from_name, text, &outbox).await;
                let _ = done.send(ok);
            }
            RelayCommand::Join { contact, supervisor, name, outbox, done } => {
                let ok = self.join(contact, supervisor, name, outbox).await;
                let _ = done.send(ok);
            }
            RelayCommand::Rejoin { sockets, done } => {
                self.rejoin(sockets).await;
                let _ = done.send(());
            }
            RelayCommand::Rewatch { contact, outbox, joined, after } => match self.open.get_mut(&contact) {
                Some(_) => {
                    if let Some(after) = after {
                        self.catch_up(&contact, after, &outbox).await;
                    }
                    let Some(conv) = self.open.get_mut(&contact) else { return };
                    if !conv.watchers.iter().any(|w| w.id == outbox.id) {
                        conv.watchers.push(outbox);
                    }
                    if let Some(supervisor) = joined.filter(|s| !conv.joined.contains(s)) {
                        conv.joined.push(supervisor);
                    }
                }
                // It ended while no leader could tell the watcher.
                None => {
                    if let Ok(Some(record)) = self.store.contact(&contact).await.map(|r| r.filter(|r| !r.is_open())) {
                        let reason = record.end_reason.unwrap_or_else(|| "ended".into());
                        outbox.send(&ServerEvent::ContactEnded { contact_id: contact, reason });
                    }
                }
            },
            RelayCommand::CallerPresence { contact, online } => {
                if let Some(c) = self.open.get(&contact).and_then(|c| c.counsellor.clone()) {
                    self.hub.event_to_counsellor(&c, &ServerEvent::CallerPresence { contact_id: contact, online });
                }
            }
        }
    }

    async fn transferred(&mut self, contact: String, from: String, to: Option<String>, helpline: String) {
        let ended = ServerEvent::ContactEnded { contact_id: contact.clone(), reason: "transferred".into() };
        self.hub.event_to_counsellor(&from, &ended);
        let Some(conv) = self.open.get_mut(&contact) else { return };
        conv.counsellor = to.clone();
        match to {
            Some(to) => self.assigned(contact, to).await,
            None => {
                let frame = ServerEvent::Transferred { contact_id: contact.clone(), helpline };
                self.hub.event_to_caller(&contact, &frame);
            }
        }
    }

    /// Cluster mode, on a new leader: sends each rejoining socket the messages of its open
    /// conversations committed after the newest it was sent (the last leader may have died between
    /// a commit and sending it on), then attaches it: one step, so no new message comes between.
    async fn rejoin(&mut self, sockets: Vec<Rejoining>) {
        let plans: Vec<Vec<(String, i64)>> = sockets
            .iter()
            .map(|s| {
                s.seen
                    .iter()
                    .filter(|(contact, _)| match (&s.role, self.open.get(contact)) {
                        (_, None) => false,
                        (Role::Caller { contact: mine }, Some(_)) => mine == contact,
                        (Role::Counsellor { user }, Some(conv)) => conv.counsellor.as_deref() == Some(user.as_str()),
                    })
                    .cloned()
                    .collect()
            })
            .collect();
        let mut wanted: Vec<String> = plans.iter().flatten().map(|(c, _)| c.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let latest = if wanted.is_empty() {
            HashMap::new()
        } else {
            match self.store.latest_seqs(&wanted).await {
                Ok(latest) => latest,
                Err(err) => {
                    tracing::error!(error = %err, conversations = wanted.len(), "reading the newest messages for rejoining sockets failed");
                    HashMap::new()
                }
            }
        };
        for (socket, plan) in sockets.into_iter().zip(plans) {
            for (contact, after) in plan {
                if latest.get(&contact).is_some_and(|newest| *newest > after) {
                    self.catch_up(&contact, after, &socket.outbox).await;
                }
            }
            match socket.role {
                Role::Caller { contact } => {
                    self.hub.attach_caller(&contact, socket.outbox);
                }
                Role::Counsellor { user } => {
                    self.hub.attach_counsellor(&user, socket.outbox);
                }
            }
        }
    }

    /// Sends `outbox` the messages of `contact` after seq `after`, as one item.
    async fn catch_up(&self, contact: &str, after: i64, outbox: &Outbox) {
        match self.store.messages_after(contact, after).await {
            Ok(missed) if !missed.is_empty() => {
                tracing::info!(contact, after, missed = missed.len(), "sending a rejoining socket the messages it missed");
                outbox.push(Outgoing::Frames(missed.iter().map(|m| ServerEvent::Message(view(m)).to_json().into()).collect()));
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, contact, "reading the messages a rejoining socket missed failed"),
        }
    }

    /// Adds a supervisor socket as a watcher; sends the conversation so far.
    async fn watch(&mut self, contact: &str, outbox: Outbox) -> bool {
        if !self.open.contains_key(contact) {
            return false;
        }
        let history = match self.store.messages_after(contact, 0).await {
            Ok(h) => h,
            Err(err) => {
                tracing::error!(error = %err, "loading history for a monitor failed");
                return false;
            }
        };
        let Some(conv) = self.open.get_mut(contact) else { return false };
        let counsellor = conv.counsellor.clone();
        conv.watchers.retain(|w| !w.is_closed());
        if !conv.watchers.iter().any(|w| w.id == outbox.id) {
            conv.watchers.push(outbox.clone());
        }
        let counsellor = match counsellor {
            Some(id) => Some(self.display_name(&id).await),
            None => None,
        };
        outbox.send(&ServerEvent::Monitoring {
            contact_id: contact.to_string(),
            counsellor,
            history: history.iter().map(view).collect(),
        });
        true
    }

    async fn whisper(&mut self, contact: &str, from_name: String, text: String, outbox: &Outbox) -> bool {
        let Some(counsellor) = self.open.get(contact).and_then(|c| c.counsellor.clone()) else {
            return false;
        };
        let at = self.clock.now_ms();
        let change = crate::store::contacts::Change::Event {
            contact: contact.to_string(),
            at,
            kind: "whisper",
            counsellor: Some(counsellor.clone()),
            detail: Some(format!("{from_name}: {text}")),
        };
        if let Err(err) = self.store.apply_changes(&[change]).await {
            tracing::error!(error = %err, "storing a whisper failed");
            return false;
        }
        let frame = ServerEvent::Whisper { contact_id: contact.to_string(), from: from_name, text, at: rfc3339(at) };
        self.hub.event_to_counsellor(&counsellor, &frame);
        if let Some(conv) = self.open.get(contact) {
            for w in conv.watchers.iter().filter(|w| w.id != outbox.id) {
                w.send(&frame);
            }
        }
        true
    }

    /// A supervisor joins: watcher and writer, announced to both parties by a stored system message.
    async fn join(&mut self, contact: String, supervisor: String, name: String, outbox: Outbox) -> bool {
        if !self.watch(&contact, outbox).await {
            return false;
        }
        if let Some(conv) = self.open.get_mut(&contact) {
            if !conv.joined.contains(&supervisor) {
                conv.joined.push(supervisor.clone());
            }
        }
        let notice = NewMessage {
            contact_id: contact.clone(),
            sender: "system",
            sender_id: Some(supervisor.clone()),
            client_id: format!("join-{supervisor}-{}", self.clock.now_ms()),
            body: format!("{name} joined the conversation"),
            at: self.clock.now_ms(),
        };
        match self.store.store_messages(&[notice], &mut self.seqs).await {
            Ok(stored) => {
                for s in stored {
                    self.deliver(&s.message, None);
                }
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "storing a join notice failed");
                false
            }
        }
    }

    async fn resume(&mut self, contact: ContactRecord, last_seq: i64, outbox: Outbox) -> ResumeOutcome {
        let Some(conv) = self.open.get(&contact.id).cloned() else {
            return ResumeOutcome::NotOpen;
        };
        let missed = match self.store.messages_after(&contact.id, last_seq.max(0)).await {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(error = %err, "loading messages for resume failed");
                return ResumeOutcome::Unavailable;
            }
        };
        let counsellor = match &conv.counsellor {
            Some(id) => Some(self.display_name(id).await),
            None => None,
        };
        outbox.send(&ServerEvent::Resumed {
            contact_id: contact.id.clone(),
            state: if conv.counsellor.is_some() { "active".into() } else { "queued".into() },
            position: None,
            counsellor,
        });
        if !missed.is_empty() {
            outbox.push(Outgoing::Frames(missed.iter().map(|m| ServerEvent::Message(view(m)).to_json().into()).collect()));
        }
        self.hub.attach_caller(&contact.id, outbox);
        ResumeOutcome::Resumed
    }

    async fn counsellor_sync(&mut self, user: User, status: crate::protocol::CounsellorStatus, outbox: Outbox) {
        self.names.insert(user.id.clone(), user.display_name.clone());
        let mine: Vec<String> = self
            .open
            .iter()
            .filter(|(_, c)| c.counsellor.as_deref() == Some(user.id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        let mut assigned = Vec::new();
        let mut summaries = Vec::new();
        for id in mine {
            match self.assigned_frame(&id).await {
                Some((summary, frame)) => {
                    summaries.push(summary);
                    assigned.push(frame);
                }
                None => tracing::warn!(contact = %id, "open conversation missing from the database"),
            }
        }
        summaries.sort_by(|a, b| a.answered_at.cmp(&b.answered_at));
        outbox.send(&ServerEvent::Hello {
            user_id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            status,
            capacity: user.capacity,
            helplines: user.helplines.clone(),
            backup_helplines: user.backup_helplines.clone(),
            languages: user.languages.clone(),
            conversations: summaries,
        });
        for frame in &assigned {
            outbox.send(frame);
        }
        self.hub.attach_counsellor(&user.id, outbox);
    }

    async fn assigned(&mut self, contact: String, counsellor: String) {
        self.open.entry(contact.clone()).or_default().counsellor = Some(counsellor.clone());
        let name = self.display_name(&counsellor).await;
        self.hub.event_to_caller(&contact, &ServerEvent::Connected { contact_id: contact.clone(), counsellor: name });
        match self.assigned_frame(&contact).await {
            Some((_, frame)) => self.hub.event_to_counsellor(&counsellor, &frame),
            None => tracing::error!(contact = %contact, "assigned contact missing from the database"),
        }
    }

    /// The `assigned` frame for a conversation, with its whole history.
    async fn assigned_frame(&self, contact: &str) -> Option<(ConversationSummary, ServerEvent)> {
        let record = self.store.contact(contact).await.ok().flatten()?;
        let history = self.store.messages_after(contact, 0).await.ok()?;
        let caller_online = self.hub.caller_online(contact);
        let answered_at = record.answered_at.unwrap_or(record.queued_at);
        let summary = ConversationSummary {
            contact_id: record.id.clone(),
            helpline: record.helpline.clone(),
            language: record.language.clone(),
            queued_at: rfc3339(record.queued_at),
            answered_at: record.answered_at.map(rfc3339),
            caller_online,
            channel: record.channel.clone(),
        };
        let frame = ServerEvent::Assigned {
            contact_id: record.id,
            helpline: record.helpline,
            language: record.language,
            queued_at: rfc3339(record.queued_at),
            answered_at: rfc3339(answered_at),
            caller_online,
            history: history.iter().map(view).collect(),
            channel: record.channel,
        };
        Some((summary, frame))
    }

    async fn display_name(&mut self, user: &str) -> String {
        if let Some(n) = self.names.get(user) {
            return n.clone();
        }
        let name = match self.store.user(user).await {
            Ok(Some(u)) => u.display_name,
            _ => "Counsellor".to_string(),
        };
        self.names.insert(user.to_string(), name.clone());
        name
    }
}

/// A stored message as clients see it.
pub fn view(m: &StoredMessage) -> MessageView {
    MessageView {
        contact_id: m.contact_id.clone(),
        seq: m.seq,
        from: Party::parse(&m.sender),
        text: m.body.clone(),
        at: rfc3339(m.at),
        client_id: m.client_id.clone(),
    }
}

//! The relay's actor: the I/O around the conversation rules ([`super::conversations`]).
//!
//! It takes every command waiting, asks the rules what each means, commits the messages admitted
//! meanwhile in one transaction (group commit), then sends what the rules say, in order. It also
//! does the reads the frames need (histories, contact records, display names), in this task, so a
//! history is never overtaken by a live message.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

use super::conversations::{Conversations, Member, NextSeqs, Post, Socket, SocketId, Tell, To};
use super::{view, Rejoining, RelayCommand, RelayHandle, ResumeOutcome, MAX_BATCH};
use crate::chat::hub::{Hub, Outbox, Outgoing, Role};
use crate::clock::Clock;
use crate::protocol::{rfc3339, ConversationSummary, HandoverNote, ServerEvent};
use crate::store::contacts::ContactRecord;
use crate::store::messages::{NewMessage, Stored, StoredMessage, Written};
use crate::store::users::User;
use crate::store::{Store, StoreError, StoreResult};

impl Socket for Outbox {
    fn id(&self) -> SocketId {
        self.id
    }
    fn is_closed(&self) -> bool {
        Outbox::is_closed(self)
    }
}

struct Relay {
    store: Store,
    hub: std::sync::Arc<Hub>,
    clock: Clock,
    conversations: Conversations<Outbox>,
    /// Display names read so far (a read cache of accounts).
    names: HashMap<String, String>,
    /// Test builds: messages refused once by the `relay-refuse-once` fault point.
    refused_once: std::collections::HashSet<String>,
}

/// Starts the relay task with the open conversations restored from the database.
pub async fn spawn(
    store: Store,
    hub: std::sync::Arc<Hub>,
    clock: Clock,
) -> Result<(RelayHandle, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let open = store.contacts().open_contacts().await?.into_iter().map(|c| (c.id, c.counsellor_id));
    let (tx, rx) = mpsc::channel(4096);
    let relay =
        Relay { store, hub, clock, conversations: Conversations::new(open), names: HashMap::new(), refused_once: Default::default() };
    let task = tokio::spawn(relay.run(rx));
    Ok((RelayHandle::local(tx), task))
}

/// Stores a batch of messages in one transaction (group commit), numbered by the rules
/// ([`NextSeqs::number`]), and returns what each is stored as: its seq, or the earlier copy of a
/// repeat. The last seq of a conversation new to `seqs` is read first; a write that finds a repeat
/// of a stored message stores nothing and names the stored copies, and the batch, numbered again
/// around them, is written again. `seqs` learns the next seqs on commit, and forgets the batch's
/// conversations when it fails (the commit may have gone through).
pub async fn store_messages(store: &Store, seqs: &mut NextSeqs, batch: &[NewMessage]) -> StoreResult<Vec<Stored>> {
    let result = number_and_write(store, seqs, batch).await;
    if result.is_err() {
        seqs.failed(batch);
    }
    result
}

async fn number_and_write(store: &Store, seqs: &mut NextSeqs, batch: &[NewMessage]) -> StoreResult<Vec<Stored>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let unknown = seqs.unknown(batch);
    let last = if unknown.is_empty() { HashMap::new() } else { store.messages().last_seqs(&unknown).await? };
    let mut earlier: Vec<StoredMessage> = Vec::new();
    // Twice at most: the second numbering leaves out every repeat the first write found.
    for _ in 0..2 {
        let numbered = seqs.number(batch, &last, &earlier);
        match store.messages().write_messages(&numbered.rows()).await? {
            Written::All => {
                seqs.committed(&numbered);
                return Ok(numbered.into_stored());
            }
            Written::Repeats(copies) => earlier = copies,
        }
    }
    Err(StoreError::Conflict("messages stored meanwhile by another writer".into()))
}

impl Relay {
    async fn run(mut self, mut rx: mpsc::Receiver<RelayCommand>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        // Ends when every handle is dropped; what was queued is still written.
        while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
            for cmd in commands.drain(..) {
                match cmd {
                    RelayCommand::Post { contact, party, sender_id, client_id, text, outbox, take_by } => {
                        if self.refuse_once(&client_id, &text) {
                            outbox.answer(&client_id, &ServerEvent::overloaded(client_id.clone(), 500));
                            continue;
                        }
                        let post = Post { contact, party, sender_id, client_id, text, take_by };
                        if let Some(refused) = self.conversations.post(self.clock.now_ms(), post, outbox) {
                            self.tell(refused);
                        }
                    }
                    other => {
                        self.flush().await;
                        self.handle(other).await;
                    }
                }
            }
            self.flush().await;
        }
    }

    /// Fault injection for the browser test of the resend rule: `FAILPOINTS=relay-refuse-once=return(TEXT)`
    /// refuses a message containing TEXT as `overloaded` the first time its client id comes (its
    /// resend is stored). Test builds only (`fail::has_failpoints` is a constant: compiled out).
    fn refuse_once(&mut self, client_id: &str, text: &str) -> bool {
        if !fail::has_failpoints() {
            return false;
        }
        match fail::eval("relay-refuse-once", |arg| arg) {
            Some(Some(marker)) if text.contains(&marker) => self.refused_once.insert(client_id.to_string()),
            _ => false,
        }
    }

    /// Commits the messages admitted since the last commit, then acks and delivers each in seq order.
    async fn flush(&mut self) {
        let Some(batch) = self.conversations.take_batch() else { return };
        // Fault injection for the "never silent" tests: `FAILPOINTS=relay-before-commit=1*return(MS)`
        // holds the first commit MS milliseconds (a database writer that stalls). Test builds only.
        if fail::has_failpoints() {
            if let Some(Some(ms)) = fail::eval("relay-before-commit", |arg| arg) {
                if let Ok(ms) = ms.parse::<u64>() {
                    tracing::warn!(ms, "fault injection: holding a commit of messages");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        let started = std::time::Instant::now();
        let mut result = store_messages(&self.store, self.conversations.seqs(), batch.rows()).await;
        if result.is_ok() {
            crate::chat::counters::METRICS.commit("messages", started.elapsed());
            crate::chat::counters::METRICS.messages.inc_by(batch.rows().len() as u64);
        }
        // One retry after a short pause covers a busy database; after that the senders are told
        // nothing was stored, and they send again with the same client ids. The failed try may have
        // committed with its answer lost: a repeat found by the retry (or later) is delivered then.
        if result.is_err() {
            self.conversations.commit_failed(&batch);
            tokio::time::sleep(Duration::from_millis(200)).await;
            result = store_messages(&self.store, self.conversations.seqs(), batch.rows()).await;
        }
        // Fault injection for the failover tests: `FAILPOINTS=relay-after-commit=return(TEXT)` kills
        // the process right after committing a batch with a message containing TEXT, before anyone
        // hears of it (a leader dying between its commit and sending on).
        // Only test builds have the point (`fail::has_failpoints` is a constant: this is compiled out).
        if fail::has_failpoints() && result.is_ok() {
            if let Some(Some(text)) = fail::eval("relay-after-commit", |arg| arg) {
                if batch.rows().iter().any(|m| m.body.contains(&text)) {
                    tracing::error!("fault injection: dying after a commit, before acknowledging or delivering it");
                    std::process::abort();
                }
            }
        }
        let stored = match result {
            Ok(stored) => Some(stored),
            Err(err) => {
                tracing::error!(error = %err, n = batch.rows().len(), "storing messages failed");
                None
            }
        };
        for tell in self.conversations.committed(batch, stored) {
            self.tell(tell);
        }
    }

    /// Sends a frame where the rules said, in order.
    fn tell(&self, tell: Tell<Outbox>) {
        let text: Utf8Bytes = tell.frame.to_json().into();
        for to in tell.to {
            match to {
                To::Caller { contact, except } => self.hub.tell_caller(&contact, &tell.frame, &text, false, except),
                To::CallerEnding { contact } => self.hub.tell_caller(&contact, &tell.frame, &text, true, None),
                To::Counsellor { user, except } => self.hub.to_counsellor(&user, Outgoing::Frame(text.clone()), except),
                To::Socket(outbox) => {
                    // An ack or a refusal answers the message its socket sent: the session crosses it off.
                    if let ServerEvent::Error { code: crate::protocol::ErrorCode::Overloaded, .. } = &tell.frame {
                        crate::chat::counters::METRICS.refused("taken_late", 1);
                    }
                    let item = match &tell.frame {
                        ServerEvent::Ack { client_id, .. } | ServerEvent::Error { reference: Some(client_id), .. } => {
                            Outgoing::Answer { client_id: client_id.clone(), frame: text.clone() }
                        }
                        _ => Outgoing::Frame(text.clone()),
                    };
                    outbox.push(item);
                }
            }
        }
    }

    async fn handle(&mut self, cmd: RelayCommand) {
        match cmd {
            RelayCommand::Post { .. } => {}
            RelayCommand::Open { contact, outbox, done } => {
                self.conversations.open(&contact);
                if let Some(outbox) = outbox {
                    self.hub.attach_caller(&contact, outbox);
                }
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
                if let Some(tell) = self.conversations.typing(&contact, party, sender_id.as_deref(), active) {
                    self.tell(tell);
                }
            }
            RelayCommand::Assigned { contact, counsellor } => self.assigned(contact, counsellor).await,
            RelayCommand::Ended { contact, reason } => {
                let reason = self.end_reason(&contact, reason).await;
                let tell = self.conversations.ended(&contact, &reason);
                self.tell(tell);
            }
            RelayCommand::Transferred { contact, from, to, helpline } => {
                let (tells, assign) = self.conversations.transferred(&contact, &from, to.as_deref(), &helpline);
                for tell in tells {
                    self.tell(tell);
                }
                if let Some(to) = assign {
                    self.assigned(contact, to).await;
                }
            }
            RelayCommand::Monitor { contact, outbox, done } => {
                let ok = self.watch(&contact, outbox).await;
                let _ = done.send(ok);
            }
            RelayCommand::Unmonitor { contact, conn } => self.conversations.unwatch(&contact, conn),
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
            RelayCommand::Rewatch { contact, outbox, joined, after } => {
                if self.conversations.is_open(&contact) {
                    if let Some(after) = after {
                        self.catch_up(&contact, after, &outbox).await;
                    }
                    self.conversations.rewatch(&contact, outbox, joined);
                } else if let Ok(Some(record)) = self.store.contacts().contact(&contact).await.map(|r| r.filter(|r| !r.is_open())) {
                    // It ended while no leader could tell the watcher.
                    let reason = record.end_reason.unwrap_or_else(|| "ended".into());
                    outbox.send(&ServerEvent::ContactEnded { contact_id: contact, reason });
                }
            }
            RelayCommand::CallerPresence { contact, online } => {
                if let Some(tell) = self.conversations.caller_presence(&contact, online) {
                    self.tell(tell);
                }
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
                let member = match &s.role {
                    Role::Caller { contact } => Member::Caller(contact),
                    Role::Counsellor { user } => Member::Counsellor(user),
                };
                self.conversations.missed(member, &s.seen)
            })
            .collect();
        let mut wanted: Vec<String> = plans.iter().flatten().map(|(c, _)| c.clone()).collect();
        wanted.sort();
        wanted.dedup();
        let latest = if wanted.is_empty() {
            HashMap::new()
        } else {
            match self.store.messages().latest_seqs(&wanted).await {
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
        match self.store.messages().messages_after(contact, after).await {
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
        if !self.conversations.is_open(contact) {
            return false;
        }
        let history = match self.store.messages().messages_after(contact, 0).await {
            Ok(h) => h,
            Err(err) => {
                tracing::error!(error = %err, "loading history for a monitor failed");
                return false;
            }
        };
        let Some(counsellor) = self.conversations.watch(contact, outbox.clone()) else { return false };
        let counsellor = match counsellor {
            Some(id) => Some(self.display_name(&id).await),
            None => None,
        };
        outbox.send(&ServerEvent::Monitoring { contact_id: contact.to_string(), counsellor, history: history.iter().map(view).collect() });
        true
    }

    async fn whisper(&mut self, contact: &str, from_name: String, text: String, outbox: &Outbox) -> bool {
        let Some(counsellor) = self.conversations.counsellor_of(contact).map(str::to_string) else {
            return false;
        };
        let at = self.clock.now_ms();
        let change = crate::store::contacts::Change::Event {
            contact: contact.to_string(),
            at,
            kind: "whisper",
            counsellor: Some(counsellor),
            detail: Some(format!("{from_name}: {text}")),
        };
        if let Err(err) = self.store.contacts().apply_changes(&[change]).await {
            tracing::error!(error = %err, "storing a whisper failed");
            return false;
        }
        let frame = ServerEvent::Whisper { contact_id: contact.to_string(), from: from_name, text, at: rfc3339(at) };
        if let Some(tell) = self.conversations.whisper(contact, frame, outbox.id) {
            self.tell(tell);
        }
        true
    }

    /// A supervisor joins: watcher and writer, announced to both parties by a stored system message.
    async fn join(&mut self, contact: String, supervisor: String, name: String, outbox: Outbox) -> bool {
        if !self.watch(&contact, outbox).await {
            return false;
        }
        self.conversations.join(&contact, &supervisor);
        let notice = Conversations::<Outbox>::join_notice(self.clock.now_ms(), &contact, &supervisor, &name);
        match store_messages(&self.store, self.conversations.seqs(), &[notice]).await {
            Ok(stored) => {
                for tell in self.conversations.deliveries(&stored) {
                    self.tell(tell);
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
        let Some(counsellor) = self.conversations.counsellor(&contact.id).map(|c| c.map(str::to_string)) else {
            return ResumeOutcome::NotOpen;
        };
        let missed = match self.store.messages().messages_after(&contact.id, last_seq.max(0)).await {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(error = %err, "loading messages for resume failed");
                return ResumeOutcome::Unavailable;
            }
        };
        let state = if counsellor.is_some() { "active" } else { "queued" };
        let counsellor = match &counsellor {
            Some(id) => Some(self.display_name(id).await),
            None => None,
        };
        outbox.send(&ServerEvent::Resumed { contact_id: contact.id.clone(), state: state.into(), position: None, counsellor });
        if !missed.is_empty() {
            outbox.push(Outgoing::Frames(missed.iter().map(|m| ServerEvent::Message(view(m)).to_json().into()).collect()));
        }
        self.hub.replace_caller(&contact.id, outbox);
        ResumeOutcome::Resumed
    }

    async fn counsellor_sync(&mut self, user: User, status: crate::protocol::CounsellorStatus, outbox: Outbox) {
        self.names.insert(user.id.clone(), user.display_name.clone());
        let mut assigned = Vec::new();
        let mut summaries = Vec::new();
        for id in self.conversations.conversations_of(&user.id) {
            match self.assigned_frame(&id).await {
                Some((summary, frame)) => {
                    summaries.push(summary);
                    assigned.push(frame);
                }
                None => tracing::warn!(contact = %id, "open conversation missing from the database"),
            }
        }
        summaries.sort_by(|a, b| a.answered_at.cmp(&b.answered_at));
        let away_reasons = match self.store.directory().helplines().await {
            Ok(helplines) => away_reasons_of(&user.helplines, &user.backup_helplines, &helplines),
            Err(err) => {
                tracing::warn!(error = %err, "loading the helplines' away reasons failed");
                Vec::new()
            }
        };
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
            away_reasons,
        });
        for frame in &assigned {
            outbox.send(frame);
        }
        self.hub.attach_counsellor(&user.id, outbox);
    }

    /// The router assigned the conversation (or a supervisor transferred it): the caller hears who,
    /// the counsellor gets the conversation with its history.
    async fn assigned(&mut self, contact: String, counsellor: String) {
        self.conversations.assigned(&contact, &counsellor);
        let name = self.display_name(&counsellor).await;
        self.hub.event_to_caller(&contact, &ServerEvent::Connected { contact_id: contact.clone(), counsellor: name });
        match self.assigned_frame(&contact).await {
            Some((_, frame)) => self.hub.event_to_counsellor(&counsellor, &frame),
            None => tracing::error!(contact = %contact, "assigned contact missing from the database"),
        }
    }

    /// The `assigned` frame for a conversation, with its whole history.
    async fn assigned_frame(&self, contact: &str) -> Option<(ConversationSummary, ServerEvent)> {
        let record = self.store.contacts().contact(contact).await.ok().flatten()?;
        let history = self.store.messages().messages_after(contact, 0).await.ok()?;
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
            handover: self.handover_note(contact, record.counsellor_id.as_deref()).await,
            channel: record.channel,
        };
        Some((summary, frame))
    }

    /// What the counsellor who now holds `contact` reads of its last handover by a colleague: who,
    /// why, and (warm) their consult. None when it was not handed over to her (or cannot be read).
    async fn handover_note(&self, contact: &str, holder: Option<&str>) -> Option<HandoverNote> {
        let contacts = self.store.contacts();
        let handovers = contacts.handovers(contact).await.ok()?;
        let h = handovers.into_iter().rev().find(|h| h.state == "done")?;
        if Some(h.from_id.as_str()) == holder {
            return None;
        }
        let from = self.stored_name(&h.from_id).await;
        let mut consult = Vec::new();
        if let (true, Some(to)) = (h.warm, h.to_id.as_deref()) {
            let to_name = self.stored_name(to).await;
            let pair = |c: &crate::store::handovers::ConsultRecord| {
                (c.from_id == h.from_id && c.to_id == to) || (c.from_id == to && c.to_id == h.from_id)
            };
            for c in contacts.consults(contact).await.ok()?.iter().filter(|c| pair(c)) {
                consult.push(c.view(if c.from_id == h.from_id { from.clone() } else { to_name.clone() }));
            }
        }
        Some(HandoverNote { from_counsellor_id: h.from_id, from, reason: h.reason, warm: h.warm, consult })
    }

    /// What the counsellor is told: `quick_exit` for a caller who left by quick exit (stored as an event
    /// of the contact by her session), otherwise the engine's reason.
    async fn end_reason(&self, contact: &str, reason: String) -> String {
        if reason != "caller_ended" {
            return reason;
        }
        match self.store.contacts().contact_events(contact).await {
            Ok(events) if events.iter().any(|e| e.kind == crate::store::contacts::QUICK_EXIT) => crate::store::contacts::QUICK_EXIT.into(),
            Ok(_) => reason,
            Err(err) => {
                tracing::warn!(error = %err, "reading a contact's events failed; told as caller_ended");
                reason
            }
        }
    }

    /// A counsellor's display name, from the cache when there (without filling it).
    async fn stored_name(&self, user: &str) -> String {
        if let Some(n) = self.names.get(user) {
            return n.clone();
        }
        match self.store.accounts().user(user).await {
            Ok(Some(u)) => u.display_name,
            _ => "Counsellor".to_string(),
        }
    }

    async fn display_name(&mut self, user: &str) -> String {
        let name = self.stored_name(user).await;
        self.names.insert(user.to_string(), name.clone());
        name
    }
}

/// The away reasons `user` may give: those of the helplines she serves (first-line, then backup), in
/// their order, each once (the `hello` frame's `away_reasons`; the engine checks the same lists).
fn away_reasons_of(first: &[String], backup: &[String], helplines: &[crate::store::helplines::Helpline]) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    for name in first.iter().chain(backup) {
        for reason in helplines.iter().filter(|h| &h.name == name).flat_map(|h| &h.away_reasons) {
            if !reasons.contains(reason) {
                reasons.push(reason.clone());
            }
        }
    }
    reasons
}

#[cfg(test)]
mod away_reason_tests {
    use super::*;
    use crate::store::helplines::Helpline;

    #[test]
    fn the_reasons_of_every_helpline_served_in_order_without_repeats() {
        let mut children = Helpline::with_defaults("children", "Children", &["ro"]);
        children.away_reasons = vec!["break".into(), "lunch".into()];
        let mut violence = Helpline::with_defaults("family_violence", "Violence", &["ro"]);
        violence.away_reasons = vec!["debrief".into(), "break".into()];
        let other = Helpline::with_defaults("disability", "Disability", &["ro"]);
        let (first, backup) = (vec!["children".to_string()], vec!["family_violence".to_string()]);
        assert_eq!(away_reasons_of(&first, &backup, &[other, violence, children]), ["break", "lunch", "debrief"]);
        assert!(away_reasons_of(&[], &[], &[]).is_empty());
    }
}

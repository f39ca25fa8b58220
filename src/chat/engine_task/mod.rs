//! The one task that owns the routing engine: feeds it inputs with the time, commits its outputs, then tells people.
//!
//! Order of every batch: take the commands waiting → `engine.handle(now, input)` for each → the
//! batch's changes (with the exchange commands its calls need) committed in one transaction →
//! offers, positions and status frames sent, and conversation events handed to the relay. Nobody
//! hears of a step before it is stored. What outputs mean as records and frames is in
//! [`translate`], without I/O; this file is the loop and the I/O around it.

mod later;
pub mod translate;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::chat::counters::METRICS;
use crate::chat::exchange::CallInfo;
use crate::chat::forward::{Local, Side, Translate};
use crate::chat::hub::Hub;
use crate::chat::relay::{RelayCommand, RelayHandle};
use crate::clock::Clock;
use crate::protocol::{EarlierContact, ServerEvent};
use crate::routing::{ContactId, CounsellorId, CounsellorProfile, Engine, Input, NewContact, Output, Refusal, Snapshot, Status};
use crate::store::commands::CommandChange;
use crate::store::contacts::Change;
use crate::store::helplines::Helpline;
use crate::store::Store;

pub use translate::{
    contact_key, contact_str, counsellor_key, counsellor_status, counsellor_str, engine_config, parse_uuid, profile_of, status_of,
};
use translate::{CallStep, Facts, Notice};

/// Requests to the engine task: plain data but for `S`'s reply channels (see
/// [`crate::chat::forward::Side`]); the variants a session sends cross nodes as they are (serde),
/// the others (`#[serde(skip)]`) are the leader's own.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "S::Reply<()>: Serialize, S::Reply<Result<(), InterveneError>>: Serialize, S::Reply<Option<i64>>: Serialize",
    deserialize = "S::Reply<()>: serde::de::DeserializeOwned, S::Reply<Result<(), InterveneError>>: serde::de::DeserializeOwned, \
                   S::Reply<Option<i64>>: serde::de::DeserializeOwned"
))]
pub enum EngineCommand<S: Side = Local> {
    /// A plain engine input.
    Input(Input),
    /// A new contact (already stored) of channel `channel` (its kind, see [`crate::chat::channel`]):
    /// queue it, then send the caller `queued` before anything else.
    StartContact {
        contact: NewContact,
        resume_token: String,
        #[serde(default = "web_chat")]
        channel: String,
        done: S::Reply<()>,
        /// A chat caller who gave a known return code: her earlier contacts, for her offers (audited
        /// when shown, as a repeat phone caller's).
        #[serde(default)]
        earlier: Vec<EarlierContact>,
    },
    /// A caller's first socket came back or last socket dropped.
    CallerPresence { contact: ContactId, online: bool },
    /// A counsellor's first socket opened: their profile, and the status they last chose.
    CounsellorOnline { profile: CounsellorProfile, status: Status },
    /// A supervisor's intervention (`SetStatus`, `SetPriority`, `OfferTo`, `Transfer`): the reply says
    /// whether it was carried out (and stored).
    Intervene { input: Input, reply: S::Reply<Result<(), InterveneError>> },
    /// A new call (already stored): queue it; `done` once queued.
    StartCall { contact: NewContact, call: CallInfo, done: S::Reply<()> },
    /// A helpline's opening hours changed (already stored): new contacts are told by these.
    SetHours { helpline: String, hours: crate::routing::hours::Hours },
    /// A helpline's waiting settings changed (already stored): wrap-up limit, away reasons, triage
    /// question (`triage_priority` None: not asked). They apply from then on.
    SetWaiting { helpline: String, wrapup_limit_ms: i64, away_reasons: Vec<String>, triage_priority: Option<i32> },
    /// The caller of waiting `contact` leaves a message (`callback`: asks to be called back) instead
    /// of waiting: it leaves the queue and comes back when the line opens. `done`: when it is routed
    /// (once stored), or None if the contact is not waiting.
    Leave { contact: ContactId, callback: bool, done: S::Reply<Option<i64>> },
    /// A copy of the engine's state (the leader's own: the board is built where the engine runs).
    #[serde(skip)]
    Snapshot(S::Reply<Snapshot>),
    /// Cluster mode, after a leader change: sockets that stayed open on their nodes are connected
    /// again, silently (no frames, no events): callers of these contacts, counsellors with their
    /// profile and the status they last chose.
    #[serde(skip)]
    Reattach { callers: Vec<ContactId>, counsellors: Vec<(CounsellorProfile, Status)> },
}

impl<S: Side> EngineCommand<S> {
    /// The same command on side `B`, its reply channels translated by `t`; None for the leader's
    /// own commands, which never leave it.
    pub fn translate<B: Side>(self, t: &mut impl Translate<S, B>) -> Option<EngineCommand<B>> {
        Some(match self {
            EngineCommand::Input(input) => EngineCommand::Input(input),
            EngineCommand::StartContact { contact, resume_token, channel, done, earlier } => {
                EngineCommand::StartContact { contact, resume_token, channel, done: t.reply(done), earlier }
            }
            EngineCommand::CallerPresence { contact, online } => EngineCommand::CallerPresence { contact, online },
            EngineCommand::CounsellorOnline { profile, status } => EngineCommand::CounsellorOnline { profile, status },
            EngineCommand::Intervene { input, reply } => EngineCommand::Intervene { input, reply: t.reply(reply) },
            EngineCommand::StartCall { contact, call, done } => EngineCommand::StartCall { contact, call, done: t.reply(done) },
            EngineCommand::SetHours { helpline, hours } => EngineCommand::SetHours { helpline, hours },
            EngineCommand::SetWaiting { helpline, wrapup_limit_ms, away_reasons, triage_priority } => {
                EngineCommand::SetWaiting { helpline, wrapup_limit_ms, away_reasons, triage_priority }
            }
            EngineCommand::Leave { contact, callback, done } => EngineCommand::Leave { contact, callback, done: t.reply(done) },
            EngineCommand::Snapshot(_) | EngineCommand::Reattach { .. } => return None,
        })
    }
}

/// The channel of a `StartContact` from a node that does not say (a release before channels).
fn web_chat() -> String {
    crate::chat::channel::WebChat::KIND.to_string()
}

/// A cheap handle to the engine task: this process's, or (cluster mode) the leader's, wherever it runs.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    route: EngineRoute,
}

#[derive(Clone, Debug)]
enum EngineRoute {
    Local(mpsc::Sender<EngineCommand>),
    Cluster(Arc<dyn crate::chat::forward::Forward>),
}

impl EngineHandle {
    /// Cluster mode: commands go to the leader's engine task (local channel or Redis).
    pub fn clustered(link: Arc<dyn crate::chat::forward::Forward>) -> EngineHandle {
        EngineHandle { route: EngineRoute::Cluster(link) }
    }

    /// The engine task's queue, when it runs in this process.
    pub fn local_sender(&self) -> Option<mpsc::Sender<EngineCommand>> {
        match &self.route {
            EngineRoute::Local(tx) => Some(tx.clone()),
            EngineRoute::Cluster(_) => None,
        }
    }

    /// Sends a command; false if the engine task has stopped.
    pub async fn send(&self, cmd: EngineCommand) -> bool {
        match &self.route {
            EngineRoute::Local(tx) => tx.send(cmd).await.is_ok(),
            EngineRoute::Cluster(link) => link.engine(cmd).await,
        }
    }

    pub async fn input(&self, input: Input) -> bool {
        self.send(EngineCommand::Input(input)).await
    }

    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(EngineCommand::Snapshot(tx)).await;
        rx.await.ok()
    }
}

struct EngineTask {
    engine: Engine,
    /// Contacts offered at least once and not yet answered or ended: (helpline, queued_at), for the metrics.
    offered: std::collections::HashMap<ContactId, (String, i64)>,
    /// Open calls: where their `connect` and `cancel` go.
    calls: std::collections::HashMap<ContactId, CallInfo>,
    /// Open chats of callers who gave a known return code: their earlier contacts, for their offers.
    returning: std::collections::HashMap<ContactId, Vec<EarlierContact>>,
    store: Store,
    hub: Arc<Hub>,
    relay: RelayHandle,
    clock: Clock,
    /// Tells the task when the server is stopping (no handle left).
    handles: mpsc::WeakSender<EngineCommand>,
    /// Hours, messages and callbacks, the estimated wait ([`later`]).
    later: later::Later,
}

/// Builds the engine from the database (waiting contacts with their original arrival
/// times, open conversations with their counsellors) and starts its task.
pub async fn spawn(
    store: Store,
    hub: Arc<Hub>,
    relay: RelayHandle,
    clock: Clock,
    helplines: &[Helpline],
) -> Result<(EngineHandle, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    // The settings as stored now: a cluster's new leader may start long after its node read them.
    let stored = store.directory().helplines().await?;
    let helplines = if stored.is_empty() { helplines } else { stored.as_slice() };
    let mut engine = Engine::new(engine_config(helplines));
    let now = clock.now_ms();
    let open = store.contacts().open_contacts().await?;
    let (mut queued, mut active) = (0, 0);
    for c in &open {
        hub.channels.bind(&c.id, &c.channel);
    }
    for input in open.iter().filter(|c| !later::deferred(c, now)).filter_map(|c| translate::restore(c, now, &hub.channels)) {
        match input {
            Input::ContactRestoredAssigned { .. } => active += 1,
            _ => queued += 1,
        }
        // Nobody is connected yet, so restoring makes no offers; SLA outputs are re-derived later.
        let _ = engine.handle(now, input);
    }
    if queued + active > 0 {
        tracing::info!(queued, active, "restored open contacts");
    }
    // Counsellors' slots in wrap-up and away reasons; wrap-ups over while the server was down end as
    // of their limit, stored before anything else is routed.
    let (wrapups, away) = (store.contacts().open_wrapups().await?, store.accounts().away_now().await?);
    let (inputs, over) = translate::restore_counsellors(now, &wrapups, &away);
    if !inputs.is_empty() || !over.is_empty() {
        tracing::info!(counsellors = inputs.len(), wrapups_over = over.len(), "restored wrap-ups and away reasons");
    }
    for input in inputs {
        let _ = engine.handle(now, input);
    }
    store.contacts().apply_changes(&over).await?;
    let mut calls = std::collections::HashMap::new();
    for c in store.calls().open_calls().await? {
        if let (Some(key), Some(gateway_id)) = (contact_key(&c.contact_id), c.gateway_id) {
            // The repeat count and earlier contacts come from the database, as on the first offer.
            let (repeat, earlier) = crate::chat::exchange::caller_history(&store, &c.contact_id).await;
            calls.insert(key, CallInfo { gateway_id, call_id: c.call_id, caller_last2: c.caller_last2, repeat, earlier });
        }
    }
    let later = later::Later::load(&store, helplines, &open, now, &hub.channels).await?;
    let (tx, rx) = mpsc::channel(4096);
    let task = EngineTask {
        engine,
        offered: Default::default(),
        calls,
        returning: Default::default(),
        store,
        hub,
        relay,
        clock,
        handles: tx.downgrade(),
        later,
    };
    let join = tokio::spawn(task.run(rx));
    Ok((EngineHandle { route: EngineRoute::Local(tx) }, join))
}

/// Most commands handled in one batch (one commit).
pub const MAX_BATCH: usize = 256;
/// Longest pause between attempts to commit a routing step while the database is away.
pub const COMMIT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Why an intervention was not carried out (crosses the cluster link as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterveneError {
    /// The engine refused it.
    Refused(Refusal),
    /// The database did not take the step: nothing happened that anyone was told of.
    NotStored,
}

/// What a batch of steps does once its changes are committed, in order.
enum After {
    /// A frame to a counsellor.
    Announce(String, ServerEvent),
    /// Carry out an engine output (frames, relay commands, metrics).
    Notify(i64, Output),
    Relay(RelayCommand),
    /// A frame to a caller.
    ToCaller(String, ServerEvent),
    Reply(oneshot::Sender<Result<(), InterveneError>>, Result<(), InterveneError>),
    /// A `Leave`'s answer: when the message or callback is routed (None if not stored).
    Left(oneshot::Sender<Option<i64>>, i64),
}

/// The changes and follow-ups of the steps handled since the last commit.
#[derive(Default)]
struct Batch {
    changes: Vec<Change>,
    after: Vec<After>,
    /// Waiting contacts whose queue position changed in one of the steps: each caller hears its
    /// position once per batch, after the rest (see [`EngineTask::flush`]).
    moved: BTreeSet<ContactId>,
}

impl Batch {
    /// Adds a step: its extra changes and announcements, then its outputs' changes and notifications.
    fn step(&mut self, now: i64, outputs: Vec<Output>, changes: Vec<Change>, announce: Vec<(String, ServerEvent)>) {
        self.changes.extend(changes);
        self.changes.extend(outputs.iter().filter_map(|o| translate::change_of(now, o)));
        self.after.extend(announce.into_iter().map(|(user, frame)| After::Announce(user, frame)));
        for output in outputs {
            match output {
                Output::Positions { positions } => self.moved.extend(positions.into_iter().map(|(contact, _)| contact)),
                other => self.after.push(After::Notify(now, other)),
            }
        }
    }

    /// The outputs of the batch's steps, with the time of each, in order.
    fn outputs(&self) -> impl Iterator<Item = (i64, &Output)> {
        self.after.iter().filter_map(|a| match a {
            After::Notify(now, output) => Some((*now, output)),
            _ => None,
        })
    }
}

impl EngineTask {
    /// Takes every command waiting (up to [`MAX_BATCH`]), handles them in order, commits all their
    /// changes in one transaction (group commit), then tells people, in order.
    async fn run(mut self, mut rx: mpsc::Receiver<EngineCommand>) {
        let mut commands = Vec::with_capacity(MAX_BATCH);
        loop {
            let deadline = later::earliest(self.engine.next_deadline(), self.later.next_release()).map(|ms| self.clock.instant_at(ms));
            tokio::select! {
                n = rx.recv_many(&mut commands, MAX_BATCH) => if n == 0 { break },
                _ = sleep_until_opt(deadline) => commands.push(EngineCommand::Input(Input::Tick)),
            }
            let mut batch = Batch::default();
            self.release_due(&mut batch);
            for cmd in commands.drain(..) {
                self.command(cmd, &mut batch);
            }
            if !self.flush(batch).await && self.store.is_fenced() {
                // Cluster mode: the engine now holds steps the database does not (or a newer leader
                // exists). It stops; its node steps down, and the next leader rebuilds from the database.
                tracing::error!("a routing step was not stored: the engine stops and this node gives up the lead");
                break;
            }
        }
        tracing::debug!("engine task stopped");
    }

    /// Steps the engine with one command; its changes and what follows go into the batch.
    fn command(&mut self, cmd: EngineCommand, batch: &mut Batch) {
        match cmd {
            EngineCommand::Input(input) => {
                let (mut changes, mut announce) = self.status_change(&input, None);
                let now = self.clock.now_ms();
                let away = matches!(input, Input::SetAway { .. }).then(|| input.clone());
                let outputs = self.engine.handle(now, input);
                if let Some(away) = away {
                    let known = matches!(&away, Input::SetAway { counsellor, .. } if self.engine.counsellor(*counsellor).is_some());
                    let (c, a) = translate::away_change(&away, &outputs, known, now);
                    changes.extend(c);
                    announce.extend(a);
                }
                batch.step(now, outputs, changes, announce);
            }
            EngineCommand::Intervene { input, reply } => {
                let (changes, announce) = self.status_change(&input, Some("supervisor"));
                let now = self.clock.now_ms();
                let outputs = self.engine.handle(now, input);
                let refused = outputs.iter().find_map(|o| match o {
                    Output::Refused { refusal, .. } => Some(InterveneError::Refused(*refusal)),
                    _ => None,
                });
                batch.step(now, outputs, changes, announce);
                batch.after.push(After::Reply(reply, refused.map_or(Ok(()), Err)));
            }
            EngineCommand::StartContact { contact, resume_token, channel, done, earlier } => {
                let id = contact.id;
                if !earlier.is_empty() {
                    self.returning.insert(id, earlier);
                }
                self.hub.channels.bind(&contact_str(id), &channel);
                let now = self.clock.now_ms();
                let outputs = self.engine.handle(now, Input::ContactQueued(contact));
                let position = self.engine.position(id).unwrap_or(1);
                let estimated_wait_s = self.estimate(id, position, now);
                // The contact row is committed already: the caller hears `queued` first, at once,
                // then, if nobody will answer soon, why and what she may do instead.
                self.hub.event_to_caller(
                    &contact_str(id),
                    &ServerEvent::Queued { contact_id: contact_str(id), resume_token, position, estimated_wait_s },
                );
                self.tell_if_unavailable(id, now);
                let _ = done.send(());
                // The caller just got its position in `queued`: no `position` frame repeating it.
                let outputs = outputs
                    .into_iter()
                    .filter_map(|o| match o {
                        Output::Positions { positions } => {
                            let rest: Vec<_> = positions.into_iter().filter(|(c, _)| *c != id).collect();
                            (!rest.is_empty()).then_some(Output::Positions { positions: rest })
                        }
                        other => Some(other),
                    })
                    .collect();
                batch.step(now, outputs, Vec::new(), Vec::new());
            }
            EngineCommand::CallerPresence { contact, online } => {
                let now = self.clock.now_ms();
                let input = if online { Input::CallerConnected { contact } } else { Input::CallerDisconnected { contact } };
                let known = self.engine.position(contact).is_some() || self.engine.assigned_counsellor(contact).is_some();
                let changes = if known { vec![translate::presence_event(contact, online, now)] } else { Vec::new() };
                let outputs = self.engine.handle(now, input);
                batch.step(now, outputs, changes, Vec::new());
                if known {
                    batch.after.push(After::Relay(RelayCommand::CallerPresence { contact: contact_str(contact), online }));
                }
                if let (true, Some(position)) = (online, self.engine.position(contact)) {
                    let estimated_wait_s = self.estimate(contact, position, now);
                    let frame = ServerEvent::Position { contact_id: contact_str(contact), position, estimated_wait_s };
                    batch.after.push(After::ToCaller(contact_str(contact), frame));
                }
            }
            EngineCommand::CounsellorOnline { profile, status } => self.counsellor_online(profile, status, batch),
            EngineCommand::Reattach { callers, counsellors } => {
                let now = self.clock.now_ms();
                for contact in callers {
                    let outputs = self.engine.handle(now, Input::CallerConnected { contact });
                    batch.step(now, outputs, Vec::new(), Vec::new());
                }
                for (profile, status) in counsellors {
                    self.counsellor_online(profile, status, batch);
                }
            }
            EngineCommand::Snapshot(reply) => {
                let _ = reply.send(self.engine.snapshot());
            }
            EngineCommand::StartCall { contact, call, done } => {
                let now = self.clock.now_ms();
                self.hub.channels.bind(&contact_str(contact.id), crate::chat::exchange::Phone::KIND);
                self.calls.insert(contact.id, call);
                let outputs = self.engine.handle(now, Input::ContactQueued(contact));
                let _ = done.send(());
                batch.step(now, outputs, Vec::new(), Vec::new());
            }
            EngineCommand::SetHours { helpline, hours } => self.later.set_hours(&helpline, &hours),
            EngineCommand::SetWaiting { helpline, wrapup_limit_ms, away_reasons, triage_priority } => {
                self.engine.set_waiting(&helpline, wrapup_limit_ms, away_reasons, triage_priority);
            }
            EngineCommand::Leave { contact, callback, done } => self.leave(contact, callback, done, batch),
        }
    }

    /// A counsellor's first socket: their profile, connected, with the status they last chose.
    fn counsellor_online(&mut self, profile: CounsellorProfile, status: Status, batch: &mut Batch) {
        let id = profile.id;
        let now = self.clock.now_ms();
        let mut outputs = self.engine.handle(now, Input::UpsertCounsellor(profile));
        outputs.extend(self.engine.handle(now, Input::CounsellorConnected { counsellor: id }));
        outputs.extend(self.engine.handle(now, Input::SetStatus { counsellor: id, status }));
        batch.step(now, outputs, Vec::new(), Vec::new());
    }

    /// For a `SetStatus` that changes something: the durable change and the confirmation frame.
    fn status_change(&self, input: &Input, reason: Option<&'static str>) -> (Vec<Change>, Vec<(String, ServerEvent)>) {
        let Input::SetStatus { counsellor, .. } = input else { return (Vec::new(), Vec::new()) };
        let before = self.engine.counsellor(*counsellor).map(|c| c.status);
        translate::status_change(before, input, reason, self.clock.now_ms())
    }

    /// Commits the batch's changes in one transaction, then carries out its follow-ups in order.
    /// While the database is away this waits (see [`EngineTask::commit`]); at shutdown nobody is told anything (interventions hear `NotStored`).
    /// Commands to telephone exchanges are part of the same transaction and are handed over first.
    /// False when the batch's changes were not stored.
    async fn flush(&mut self, mut batch: Batch) -> bool {
        let commands = self.call_commands(&batch).await;
        batch.changes.extend(commands.iter().cloned().map(Change::Command));
        let forget = self.callbacks_done(&batch);
        batch.changes.extend(forget);
        let stored = self.commit(&batch.changes).await;
        if stored {
            self.deliver(commands).await;
        }
        for after in batch.after {
            match after {
                After::Reply(reply, result) => {
                    let _ = reply.send(if stored { result } else { Err(InterveneError::NotStored) });
                }
                After::Left(reply, at) => {
                    let _ = reply.send(stored.then_some(at));
                }
                _ if !stored => {}
                After::Announce(user, frame) => self.hub.event_to_counsellor(&user, &frame),
                After::Notify(now, output) => self.notify(now, output).await,
                After::Relay(cmd) => {
                    self.relay.send(cmd).await;
                }
                After::ToCaller(contact, frame) => self.hub.event_to_caller(&contact, &frame),
            }
        }
        // Positions last, as they stand after the whole batch, to those still waiting: when the
        // queue is long and moves fast (every assignment moves everyone behind), one frame per
        // caller per batch instead of one per step (each step of a batch of 200 moved thousands).
        if stored {
            let now = self.clock.now_ms();
            for contact in batch.moved {
                if let Some(position) = self.engine.position(contact) {
                    let id = contact_str(contact);
                    let estimated_wait_s = self.estimate(contact, position, now);
                    self.hub.event_to_caller(&id, &ServerEvent::Position { contact_id: id.clone(), position, estimated_wait_s });
                }
            }
        }
        stored
    }

    /// Commits, retrying until the database takes it; false only if the server stops first.
    ///
    /// The engine has already taken these steps in memory, so giving up would leave it and the
    /// database telling different stories (an `accept` assigned in memory but never announced: a
    /// caller waiting for ever). So the task waits for the database, however long it is away, and
    /// the commands behind it wait in its queue; nobody is told anything until it is stored.
    async fn commit(&self, changes: &[Change]) -> bool {
        let mut delay = Duration::from_millis(50);
        for attempt in 1u64.. {
            let started = std::time::Instant::now();
            match self.store.contacts().apply_changes(changes).await {
                Ok(()) => {
                    if !changes.is_empty() {
                        METRICS.commit("routing", started.elapsed());
                    }
                    if attempt > 1 {
                        tracing::warn!(attempt, "routing step stored after the database came back");
                    }
                    return true;
                }
                Err(crate::store::StoreError::Fenced) => {
                    tracing::error!("routing step refused: a newer leader holds the lease; nothing of it is announced");
                    return false;
                }
                Err(err) => {
                    if attempt.is_power_of_two() {
                        tracing::error!(error = %err, attempt, "committing a routing step failed; retrying");
                    }
                    if self.stopping() {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(COMMIT_RETRY_MAX);
                }
            }
        }
        tracing::error!(n = changes.len(), "server stopping: routing step not stored, nobody told; a restart restores from the database");
        false
    }

    /// True once every handle to this task is gone (the server is shutting down).
    fn stopping(&self) -> bool {
        self.handles.strong_count() == 0
    }

    /// A committed output: the metrics and what the task keeps, the audits an offer's history
    /// needs, then its frames and conversation events (see [`translate::notices`]).
    async fn notify(&mut self, now: i64, output: Output) {
        self.account(&output);
        let (earlier, helpline) = match &output {
            Output::Offer { contact, counsellor, helpline, .. } => match (self.calls.get(contact), self.returning.get(contact)) {
                (Some(call), _) => (self.disclose_earlier(&call.earlier, "call", *contact, *counsellor, helpline, now).await, None),
                (None, Some(earlier)) => {
                    (self.disclose_earlier(earlier, "chat (return code)", *contact, *counsellor, helpline, now).await, None)
                }
                (None, None) => (Vec::new(), None),
            },
            Output::SlaAtRisk { contact, .. } | Output::SlaBreached { contact, .. } => {
                (Vec::new(), self.engine.helpline_of(*contact).map(str::to_string))
            }
            _ => (Vec::new(), None),
        };
        let (call, channel) = match &output {
            Output::Offer { contact, .. } => (self.calls.get(contact), self.hub.channels.of(&contact_str(*contact)).kind()),
            _ => (None, crate::chat::channel::WebChat::KIND),
        };
        let counsellor_helplines = match &output {
            Output::StatusChanged { counsellor, .. } => self
                .engine
                .counsellor(*counsellor)
                .map(|c| c.helplines.iter().chain(&c.backup_helplines).cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for notice in translate::notices(now, output, Facts { channel, call, earlier, helpline, counsellor_helplines }) {
            match notice {
                Notice::Counsellor(user, frame) => self.hub.event_to_counsellor(&user, &frame),
                Notice::Supervisors(audience, frame) => self.hub.event_to_audience(&audience, &frame),
                Notice::Relay(cmd) => {
                    self.relay.send(cmd).await;
                }
            }
        }
    }

    /// The metrics of an output, and what the task keeps of offers and calls.
    fn account(&mut self, output: &Output) {
        match output {
            Output::Offer { contact, helpline, queued_at, .. } => {
                METRICS.offer(helpline);
                self.offered.insert(*contact, (helpline.clone(), *queued_at));
            }
            Output::Assigned { contact, answered_at, .. } => {
                if let Some((helpline, queued_at)) = self.offered.remove(contact) {
                    METRICS.answer(&helpline, answered_at - queued_at);
                    self.later.answered(&helpline, queued_at, *answered_at);
                }
            }
            Output::Ended { contact, helpline, abandoned, .. } => {
                self.calls.remove(contact);
                self.returning.remove(contact);
                self.offered.remove(contact);
                if *abandoned {
                    METRICS.abandon(helpline);
                }
            }
            _ => {}
        }
    }

    /// The commands to telephone exchanges a batch's outputs call for, in order, to be committed in
    /// the batch's transaction: each output's contact's channel says what it means at the caller's
    /// end ([`crate::chat::channel::ContactChannel::exchange_step`]: a call's steps, see
    /// [`translate::call_step`]); a `connect` reads the counsellor's extension first.
    async fn call_commands(&self, batch: &Batch) -> Vec<CommandChange> {
        let mut out = Vec::new();
        for (now, output) in batch.outputs() {
            let Some(contact) = translate::contact_of(output) else { continue };
            let Some(step) = self.hub.channels.of(&contact_str(contact)).exchange_step(output) else { continue };
            let Some(call) = self.calls.get(&contact) else { continue };
            let extension = match step {
                CallStep::Connect(counsellor) => self.extension(counsellor).await,
                _ => None,
            };
            match (translate::call_command(call, contact, now, step, extension), step) {
                (Some(change), _) => out.push(change),
                (None, CallStep::Connect(counsellor)) => {
                    tracing::error!(counsellor = %counsellor_str(counsellor), call_id = %call.call_id, "call assigned to a counsellor without an extension");
                }
                (None, _) => {}
            }
        }
        out
    }

    async fn extension(&self, counsellor: CounsellorId) -> Option<String> {
        match self.store.accounts().user(&counsellor_str(counsellor)).await {
            Ok(user) => user.and_then(|u| u.extension).filter(|e| !e.trim().is_empty()),
            Err(err) => {
                tracing::error!(error = %err, "reading a counsellor's extension failed");
                None
            }
        }
    }

    /// Hands the committed commands to their exchanges, leaving out any a later one in the same
    /// batch made stale.
    async fn deliver(&self, changes: Vec<CommandChange>) {
        let now = self.clock.now_ms();
        for (i, change) in changes.iter().enumerate() {
            let CommandChange::Issue(c) = change else { continue };
            if changes[i + 1..].iter().any(|later| later.supersedes(&c.gateway_id, &c.call_id, c.kind)) {
                continue;
            }
            crate::chat::exchange::deliver(&self.store, &self.hub, now, &c.gateway_id, &c.id).await;
        }
    }

    /// The earlier contacts of a repeat caller (a call's number, a chat's return code) this offer may
    /// show: those of the offer's helpline, each audited as a read of its form by the counsellor
    /// offered the contact. If the audit cannot be written, none are shown.
    async fn disclose_earlier(
        &self,
        earlier: &[EarlierContact],
        what: &str,
        contact: ContactId,
        counsellor: CounsellorId,
        helpline: &str,
        now: i64,
    ) -> Vec<EarlierContact> {
        let shown: Vec<EarlierContact> = earlier.iter().filter(|e| e.helpline == helpline).cloned().collect();
        let reader = counsellor_str(counsellor);
        let detail = format!("shown in the offer of {what} {}", contact_str(contact));
        let source = if what == "call" { "call offer" } else { "chat offer" };
        for e in &shown {
            if let Err(err) = self.store.audit_log().audit_from(now, &reader, "form_read", Some(&e.contact_id), Some(&detail), source).await
            {
                tracing::error!(error = %err, "auditing a repeat caller's history failed; the offer shows none");
                return Vec::new();
            }
        }
        shown
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_tells_each_moved_caller_once_and_keeps_every_other_output_in_order() {
        let (a, b) = (ContactId(1), ContactId(2));
        let mut batch = Batch::default();
        // Three steps of one batch: the queue moves twice, and an offer in between.
        batch.step(0, vec![Output::Positions { positions: vec![(a, 3), (b, 4)] }], Vec::new(), Vec::new());
        batch.step(
            1,
            vec![Output::Ended {
                contact: ContactId(9),
                helpline: "children".into(),
                counsellor: None,
                reason: crate::routing::EndReason::CallerEnded,
                abandoned: true,
            }],
            Vec::new(),
            Vec::new(),
        );
        batch.step(2, vec![Output::Positions { positions: vec![(a, 2), (b, 3)] }], Vec::new(), Vec::new());
        assert_eq!(batch.moved, BTreeSet::from([a, b]), "each moved contact once, however often it moved");
        assert_eq!(batch.after.len(), 1, "the positions are not among the step-by-step notifications");
        assert!(matches!(batch.after[0], After::Notify(1, Output::Ended { .. })));
        assert_eq!(batch.outputs().map(|(now, _)| now).collect::<Vec<_>>(), vec![1]);
    }
}

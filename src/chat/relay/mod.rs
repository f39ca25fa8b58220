//! The conversation relay: one task that stores chat messages in group commits, acknowledges them, and delivers them in seq order.
//!
//! It is the only writer of messages and the only sender of conversation frames
//! (`message`, `connected`, `assigned`, `contact_ended`, `resumed`), so everything a
//! party sees of a conversation arrives in one order, and a history read here is
//! never overtaken by a live message.
//!
//! Two parts: the conversation rules without I/O ([`conversations`]: who may write, watchers,
//! what a batch of messages turns into) and the actor around them ([`actor`]: receives commands,
//! asks the rules, commits, sends).

pub mod actor;
pub mod conversations;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::chat::forward::{Local, Side, Translate};
use crate::chat::hub::{ConnId, Role};
use crate::protocol::{CounsellorStatus, Party};
use crate::store::contacts::ContactRecord;
use crate::store::users::User;

pub use actor::spawn;
pub use conversations::view;

/// Most messages committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Requests to the relay task: plain data but for `S`'s sockets and reply channels (see
/// [`crate::chat::forward::Side`]); the variants a session sends cross nodes as they are (serde),
/// the others (`#[serde(skip)]`) are the leader's own.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "S::Socket: Serialize, S::Reply<()>: Serialize, S::Reply<bool>: Serialize, S::Reply<ResumeOutcome>: Serialize",
    deserialize = "S::Socket: serde::de::DeserializeOwned, S::Reply<()>: serde::de::DeserializeOwned, \
                   S::Reply<bool>: serde::de::DeserializeOwned, S::Reply<ResumeOutcome>: serde::de::DeserializeOwned"
))]
pub enum RelayCommand<S: Side = Local> {
    /// A caller started a contact on this socket (None: a channel whose caller holds no socket,
    /// `chat::channel::inbound`).
    Open { contact: String, outbox: Option<S::Socket>, done: S::Reply<()> },
    /// A caller came back: send `resumed` and every message after `last_seq`, then attach the socket.
    Resume { contact: ContactRecord, last_seq: i64, outbox: S::Socket, done: S::Reply<ResumeOutcome> },
    /// A counsellor connected: send `hello` and an `assigned` (with history) per open conversation, then attach.
    /// (Named `AgentSync` between nodes, as releases before the rename call it.)
    #[serde(rename = "AgentSync")]
    CounsellorSync { user: User, status: CounsellorStatus, outbox: S::Socket, done: S::Reply<()> },
    /// Store a message, ack it to `outbox`, deliver it to the other party. `take_by` (ms): after
    /// this the relay refuses it (`overloaded`) instead of storing it, as its socket is about to
    /// refuse it itself ([`crate::chat::promise`]).
    Post {
        contact: String,
        party: Party,
        sender_id: Option<String>,
        client_id: String,
        text: String,
        outbox: S::Socket,
        #[serde(default = "never")]
        take_by: i64,
    },
    /// Pass a typing indicator to the other party.
    Typing { contact: String, party: Party, sender_id: Option<String>, active: bool },
    /// A supervisor watches a conversation silently: history now, then every message.
    Monitor { contact: String, outbox: S::Socket, done: S::Reply<bool> },
    /// Stop watching.
    Unmonitor { contact: String, conn: ConnId },
    /// A message only the counsellor (and monitoring supervisors) see.
    Whisper { contact: String, from_name: String, text: String, outbox: S::Socket, done: S::Reply<bool> },
    /// A supervisor joins the conversation: the caller sees a second person join, and the supervisor may write.
    Join { contact: String, supervisor: String, name: String, outbox: S::Socket, done: S::Reply<bool> },
    /// The router assigned a contact (committed): tell the caller and give the counsellor the history.
    #[serde(skip)]
    Assigned { contact: String, counsellor: String },
    /// The contact ended (committed).
    #[serde(skip)]
    Ended { contact: String, reason: String },
    /// The caller's connection dropped or came back.
    #[serde(skip)]
    CallerPresence { contact: String, online: bool },
    /// A supervisor moved the conversation (committed): to counsellor `to`, or back into `helpline`'s queue.
    #[serde(skip)]
    Transferred { contact: String, from: String, to: Option<String>, helpline: String },
    /// Cluster mode, on a new leader: a supervisor socket of a surviving node watched (monitor) or
    /// joined (`joined`: the supervisor) this conversation with the last leader: it goes on, silently.
    #[serde(skip)]
    Rewatch { contact: String, outbox: S::Socket, joined: Option<String>, after: Option<i64> },
    /// Cluster mode, on a new leader: a node's sockets register again; each is sent the messages
    /// committed after the newest it was sent, then attached (see [`Rejoining`]).
    #[serde(skip)]
    Rejoin { sockets: Vec<Rejoining<S>>, done: S::Reply<()> },
}

impl<S: Side> RelayCommand<S> {
    /// The same command on side `B`, its sockets and reply channels translated by `t`; None for
    /// the leader's own commands, which never leave it.
    pub fn translate<B: Side>(self, t: &mut impl Translate<S, B>) -> Option<RelayCommand<B>> {
        Some(match self {
            RelayCommand::Open { contact, outbox, done } => {
                RelayCommand::Open { contact, outbox: outbox.map(|o| t.socket(o)), done: t.reply(done) }
            }
            RelayCommand::Resume { contact, last_seq, outbox, done } => {
                RelayCommand::Resume { contact, last_seq, outbox: t.socket(outbox), done: t.reply(done) }
            }
            RelayCommand::CounsellorSync { user, status, outbox, done } => {
                RelayCommand::CounsellorSync { user, status, outbox: t.socket(outbox), done: t.reply(done) }
            }
            RelayCommand::Post { contact, party, sender_id, client_id, text, outbox, take_by } => {
                RelayCommand::Post { contact, party, sender_id, client_id, text, outbox: t.socket(outbox), take_by }
            }
            RelayCommand::Typing { contact, party, sender_id, active } => RelayCommand::Typing { contact, party, sender_id, active },
            RelayCommand::Monitor { contact, outbox, done } => {
                RelayCommand::Monitor { contact, outbox: t.socket(outbox), done: t.reply(done) }
            }
            RelayCommand::Unmonitor { contact, conn } => RelayCommand::Unmonitor { contact, conn },
            RelayCommand::Whisper { contact, from_name, text, outbox, done } => {
                RelayCommand::Whisper { contact, from_name, text, outbox: t.socket(outbox), done: t.reply(done) }
            }
            RelayCommand::Join { contact, supervisor, name, outbox, done } => {
                RelayCommand::Join { contact, supervisor, name, outbox: t.socket(outbox), done: t.reply(done) }
            }
            // Conversation events come from the leader's own engine task; rewatches and rejoins
            // are the leader's own, after a rejoin.
            RelayCommand::Assigned { .. }
            | RelayCommand::Ended { .. }
            | RelayCommand::CallerPresence { .. }
            | RelayCommand::Transferred { .. }
            | RelayCommand::Rewatch { .. }
            | RelayCommand::Rejoin { .. } => return None,
        })
    }
}

/// A `take_by` that never passes.
pub fn never() -> i64 {
    i64::MAX
}

/// Whether the relay took a message ([`RelayHandle::post`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// On its way: its answer (ack or refusal) comes to the sender's socket.
    Sent,
    /// The relay's queue is full: refuse it now (`overloaded`); it was not taken.
    Full,
    /// The relay has stopped (shutdown): refuse it now; it was not taken.
    Stopped,
}

/// Cluster mode: a socket of a surviving node registering with a new leader ([`RelayCommand::Rejoin`]).
#[derive(Debug)]
pub struct Rejoining<S: Side = Local> {
    pub outbox: S::Socket,
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

    fn local(tx: mpsc::Sender<RelayCommand>) -> RelayHandle {
        RelayHandle { route: RelayRoute::Local(tx) }
    }

    /// The relay task's queue, when it runs in this process.
    pub fn local_sender(&self) -> Option<mpsc::Sender<RelayCommand>> {
        match &self.route {
            RelayRoute::Local(tx) => Some(tx.clone()),
            RelayRoute::Cluster(_) => None,
        }
    }

    /// Hands a message to the relay without waiting for room in its queue: a socket that read a
    /// message must answer it in time ([`crate::chat::promise`]), so a full queue is a refusal
    /// now, not a wait. (Cluster mode: it goes to the leader's stream, which waits for nobody.)
    pub async fn post(&self, cmd: RelayCommand) -> Posted {
        match &self.route {
            RelayRoute::Local(tx) => match tx.try_send(cmd) {
                Ok(()) => Posted::Sent,
                Err(mpsc::error::TrySendError::Full(_)) => Posted::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Posted::Stopped,
            },
            RelayRoute::Cluster(link) => {
                if link.relay(cmd).await {
                    Posted::Sent
                } else {
                    Posted::Stopped
                }
            }
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

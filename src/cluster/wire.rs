//! What crosses Redis between nodes: engine and relay commands forwarded to the leader, and items for another node's sockets.
//!
//! The routing engine's types stay free of serde; these mirror the part of them that
//! sessions send. Sockets travel as (node, socket id); reply channels as request ids.

use serde::{Deserialize, Serialize};

use crate::chat::engine_task::{contact_key, contact_str, counsellor_key, counsellor_str, status_of};
use crate::chat::hub::{ConnId, Role, Seen, Watch};
use crate::protocol::{CounsellorStatus, Party};
use crate::routing::{Channel, ContactId, CounsellorProfile, Input, NewContact, Refusal, TransferTarget};
use crate::store::contacts::ContactRecord;
use crate::store::users::User;

/// A command on the leader's command stream.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per command: a repeat (a retried XADD) is handled once.
    pub id: String,
    /// The node that sent it (where replies and frames go).
    pub from: String,
    pub cmd: Wire,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Wire {
    Engine(WireEngine),
    Relay(WireRelay),
    /// A socket of the sending node was detached from a caller's contact or a counsellor's account.
    Detach { caller: bool, key: String, conn: ConnId },
    /// The sending node's live sockets, registered again with the leader holding `token` (after a
    /// leader change): the sockets stay open. Idempotent. `watches`: the conversations its
    /// supervisor sockets monitor or joined (absent from nodes that predate it).
    Rejoin {
        token: i64,
        sockets: Vec<(ConnId, Role)>,
        #[serde(default)]
        watches: Vec<Watch>,
        /// The newest message each socket was sent, per conversation: the new leader sends what
        /// came after (a dying leader may have committed messages it never sent on).
        #[serde(default)]
        seen: Vec<Seen>,
    },
}

/// A socket held by the sending node.
pub type Socket = ConnId;
/// A reply expected by the sending node.
pub type ReplyId = u64;

#[derive(Debug, Serialize, Deserialize)]
pub enum WireEngine {
    Input(WireInput),
    StartContact { contact: WireContact, resume_token: String, done: ReplyId },
    CallerPresence { contact: String, online: bool },
    CounsellorOnline { profile: WireProfile, status: CounsellorStatus },
    Intervene { input: WireInput, reply: ReplyId },
    StartCall {
        contact: WireContact,
        gateway_id: String,
        call_id: String,
        caller_last2: Option<String>,
        repeat: i64,
        #[serde(default)]
        earlier: Vec<crate::protocol::EarlierContact>,
        done: ReplyId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WireRelay {
    Open { contact: String, outbox: Socket, done: ReplyId },
    Resume { contact: ContactRecord, last_seq: i64, outbox: Socket, done: ReplyId },
    #[serde(rename = "AgentSync")]
    CounsellorSync { user: User, status: CounsellorStatus, outbox: Socket, done: ReplyId },
    Post { contact: String, party: Party, sender_id: Option<String>, client_id: String, text: String, outbox: Socket },
    Typing { contact: String, party: Party, sender_id: Option<String>, active: bool },
    Monitor { contact: String, outbox: Socket, done: ReplyId },
    Unmonitor { contact: String, conn: ConnId },
    Whisper { contact: String, from_name: String, text: String, outbox: Socket, done: ReplyId },
    Join { contact: String, supervisor: String, name: String, outbox: Socket, done: ReplyId },
}

/// The engine inputs a session or a supervisor sends (never `Tick` or restores: those are the leader's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireInput {
    RemoveCounsellor { counsellor: String },
    CounsellorConnected { counsellor: String },
    CounsellorDisconnected { counsellor: String },
    SetStatus { counsellor: String, status: CounsellorStatus },
    Accept { counsellor: String, contact: String },
    Decline { counsellor: String, contact: String },
    EndByCounsellor { counsellor: String, contact: String },
    EndByCaller { contact: String },
    CallerDisconnected { contact: String },
    CallerConnected { contact: String },
    SetPriority { contact: String, priority: i32 },
    OfferTo { contact: String, counsellor: String },
    TransferToCounsellor { contact: String, counsellor: String },
    TransferToHelpline { contact: String, helpline: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireContact {
    pub id: String,
    pub call: bool,
    pub helpline: String,
    pub language: String,
    pub priority: i32,
    pub queued_at: i64,
    pub caller_connected: bool,
    /// For senior counsellors only (a `senior` block); absent from nodes that predate it.
    #[serde(default)]
    pub senior_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireProfile {
    pub id: String,
    pub helplines: Vec<String>,
    pub backup_helplines: Vec<String>,
    pub languages: Vec<String>,
    pub capacity: u32,
    pub takes_calls: bool,
    #[serde(default)]
    pub senior: bool,
}

/// A reply to a forwarded command: an intervention's outcome.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum WireIntervene {
    Done,
    UnknownContact,
    NotWaiting,
    NotAssigned,
    TargetUnavailable,
    NotStored,
}

/// An item for a socket of the node whose stream it is on, or a reply to one of its commands.
#[derive(Debug, Serialize, Deserialize)]
pub enum NodeItem {
    Frame { conn: ConnId, text: String },
    Frames { conn: ConnId, texts: Vec<String> },
    Ended { conn: ConnId, contact: String, text: String },
    Close { conn: ConnId, code: u16 },
    /// `answered` false: the command was dropped without an answer (`value` is then null, as is a unit answer).
    Reply { req: ReplyId, answered: bool, value: serde_json::Value },
    /// The leader holding `token` asks this node to register its live sockets with it ([`Wire::Rejoin`]).
    Rejoin { token: i64 },
    /// A frame for this node's supervisors who may see `helpline` (None: all of them).
    Supervisors { helpline: Option<String>, text: String },
    /// The leader's whole supervisor board (a `Dashboard`, JSON): each supervisor gets the part they may see.
    Board { json: String },
    /// Exchange `gateway` has commands no socket took where they were committed: hand its pending
    /// commands to its socket here, if any (a wake-up: the commands themselves are in PostgreSQL).
    GatewayWake { gateway: String },
}

fn counsellor_status(s: crate::routing::Status) -> CounsellorStatus {
    crate::chat::engine_task::counsellor_status(s)
}

impl WireInput {
    /// The wire form of an input a session sends; None for the leader's own inputs.
    pub fn from_input(input: &Input) -> Option<WireInput> {
        let c = |id: &crate::routing::CounsellorId| counsellor_str(*id);
        let k = |id: &ContactId| contact_str(*id);
        Some(match input {
            Input::RemoveCounsellor { counsellor } => WireInput::RemoveCounsellor { counsellor: c(counsellor) },
            Input::CounsellorConnected { counsellor } => WireInput::CounsellorConnected { counsellor: c(counsellor) },
            Input::CounsellorDisconnected { counsellor } => WireInput::CounsellorDisconnected { counsellor: c(counsellor) },
            Input::SetStatus { counsellor, status } => {
                WireInput::SetStatus { counsellor: c(counsellor), status: counsellor_status(*status) }
            }
            Input::Accept { counsellor, contact } => WireInput::Accept { counsellor: c(counsellor), contact: k(contact) },
            Input::Decline { counsellor, contact } => WireInput::Decline { counsellor: c(counsellor), contact: k(contact) },
            Input::EndByCounsellor { counsellor, contact } => {
                WireInput::EndByCounsellor { counsellor: c(counsellor), contact: k(contact) }
            }
            Input::EndByCaller { contact } => WireInput::EndByCaller { contact: k(contact) },
            Input::CallerDisconnected { contact } => WireInput::CallerDisconnected { contact: k(contact) },
            Input::CallerConnected { contact } => WireInput::CallerConnected { contact: k(contact) },
            Input::SetPriority { contact, priority } => WireInput::SetPriority { contact: k(contact), priority: *priority },
            Input::OfferTo { contact, counsellor } => WireInput::OfferTo { contact: k(contact), counsellor: c(counsellor) },
            Input::Transfer { contact, to: TransferTarget::Counsellor(to) } => {
                WireInput::TransferToCounsellor { contact: k(contact), counsellor: c(to) }
            }
            Input::Transfer { contact, to: TransferTarget::Helpline(h) } => {
                WireInput::TransferToHelpline { contact: k(contact), helpline: h.clone() }
            }
            Input::UpsertCounsellor(_) | Input::ContactQueued(_) | Input::ContactRestoredAssigned { .. } | Input::Tick => {
                return None
            }
        })
    }

    /// Back to the engine's input; None when an id does not parse (refused as data).
    pub fn into_input(self) -> Option<Input> {
        let c = |s: &str| counsellor_key(s);
        let k = |s: &str| contact_key(s);
        Some(match self {
            WireInput::RemoveCounsellor { counsellor } => Input::RemoveCounsellor { counsellor: c(&counsellor)? },
            WireInput::CounsellorConnected { counsellor } => Input::CounsellorConnected { counsellor: c(&counsellor)? },
            WireInput::CounsellorDisconnected { counsellor } => Input::CounsellorDisconnected { counsellor: c(&counsellor)? },
            WireInput::SetStatus { counsellor, status } => {
                Input::SetStatus { counsellor: c(&counsellor)?, status: status_of(status) }
            }
            WireInput::Accept { counsellor, contact } => Input::Accept { counsellor: c(&counsellor)?, contact: k(&contact)? },
            WireInput::Decline { counsellor, contact } => Input::Decline { counsellor: c(&counsellor)?, contact: k(&contact)? },
            WireInput::EndByCounsellor { counsellor, contact } => {
                Input::EndByCounsellor { counsellor: c(&counsellor)?, contact: k(&contact)? }
            }
            WireInput::EndByCaller { contact } => Input::EndByCaller { contact: k(&contact)? },
            WireInput::CallerDisconnected { contact } => Input::CallerDisconnected { contact: k(&contact)? },
            WireInput::CallerConnected { contact } => Input::CallerConnected { contact: k(&contact)? },
            WireInput::SetPriority { contact, priority } => Input::SetPriority { contact: k(&contact)?, priority },
            WireInput::OfferTo { contact, counsellor } => Input::OfferTo { contact: k(&contact)?, counsellor: c(&counsellor)? },
            WireInput::TransferToCounsellor { contact, counsellor } => {
                Input::Transfer { contact: k(&contact)?, to: TransferTarget::Counsellor(c(&counsellor)?) }
            }
            WireInput::TransferToHelpline { contact, helpline } => {
                Input::Transfer { contact: k(&contact)?, to: TransferTarget::Helpline(helpline) }
            }
        })
    }
}

impl WireContact {
    pub fn from_contact(c: &NewContact) -> WireContact {
        WireContact {
            id: contact_str(c.id),
            call: c.channel == Channel::Call,
            helpline: c.helpline.clone(),
            language: c.language.clone(),
            priority: c.priority,
            queued_at: c.queued_at,
            caller_connected: c.caller_connected,
            senior_only: c.senior_only,
        }
    }

    pub fn into_contact(self) -> Option<NewContact> {
        Some(NewContact {
            id: contact_key(&self.id)?,
            channel: if self.call { Channel::Call } else { Channel::Chat },
            helpline: self.helpline,
            language: self.language,
            priority: self.priority,
            queued_at: self.queued_at,
            caller_connected: self.caller_connected,
            senior_only: self.senior_only,
        })
    }
}

impl WireProfile {
    pub fn from_profile(p: &CounsellorProfile) -> WireProfile {
        WireProfile {
            id: counsellor_str(p.id),
            helplines: p.helplines.iter().cloned().collect(),
            backup_helplines: p.backup_helplines.iter().cloned().collect(),
            languages: p.languages.iter().cloned().collect(),
            capacity: p.capacity,
            takes_calls: p.takes_calls,
            senior: p.senior,
        }
    }

    pub fn into_profile(self) -> Option<CounsellorProfile> {
        Some(CounsellorProfile {
            id: counsellor_key(&self.id)?,
            helplines: self.helplines.into_iter().collect(),
            backup_helplines: self.backup_helplines.into_iter().collect(),
            languages: self.languages.into_iter().collect(),
            capacity: self.capacity,
            takes_calls: self.takes_calls,
            senior: self.senior,
        })
    }
}

impl WireIntervene {
    pub fn from_result(r: Result<(), crate::chat::engine_task::InterveneError>) -> WireIntervene {
        use crate::chat::engine_task::InterveneError as E;
        match r {
            Ok(()) => WireIntervene::Done,
            Err(E::Refused(Refusal::UnknownContact)) => WireIntervene::UnknownContact,
            Err(E::Refused(Refusal::NotWaiting)) => WireIntervene::NotWaiting,
            Err(E::Refused(Refusal::NotAssigned)) => WireIntervene::NotAssigned,
            Err(E::Refused(Refusal::TargetUnavailable)) => WireIntervene::TargetUnavailable,
            Err(E::NotStored) => WireIntervene::NotStored,
        }
    }

    pub fn into_result(self) -> Result<(), crate::chat::engine_task::InterveneError> {
        use crate::chat::engine_task::InterveneError as E;
        match self {
            WireIntervene::Done => Ok(()),
            WireIntervene::UnknownContact => Err(E::Refused(Refusal::UnknownContact)),
            WireIntervene::NotWaiting => Err(E::Refused(Refusal::NotWaiting)),
            WireIntervene::NotAssigned => Err(E::Refused(Refusal::NotAssigned)),
            WireIntervene::TargetUnavailable => Err(E::Refused(Refusal::TargetUnavailable)),
            WireIntervene::NotStored => Err(E::NotStored),
        }
    }
}

//! The WebSocket protocol: every frame a client or the server sends, as serde-tagged enums (`{"type": …}`), and their decoding.
//!
//! `docs/protocol.md` shows each message with an example; the tests at the bottom
//! keep the list of known `type` names in step with the enums.

pub mod asyncapi;
pub mod board;
pub mod figures;

/// Close codes the server uses.
pub mod close {
    /// Kept sending faster than the rate limit.
    pub const RATE_LIMITED: u16 = 4029;
    /// Server restarting: reconnect and resume.
    pub const RESTART: u16 = 1012;
    /// The socket fell too far behind; reconnect and resume.
    pub const TOO_SLOW: u16 = 4008;
    /// The account was disabled or logged out.
    pub const REVOKED: u16 = 4003;
    /// Silent for too long.
    pub const IDLE: u16 = 4000;
    /// An exchange's socket left a command unacknowledged too long (it may be half-open): the
    /// command goes to another of its sockets; reconnect.
    pub const UNACKNOWLEDGED: u16 = 4010;
    /// A frame over 64 KiB (the hard limit; between 16 and 64 KiB a frame gets a `too_large` error instead).
    pub const TOO_BIG: u16 = 1009;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// Another socket resumed this caller's contact: one live caller socket per contact.
    pub const REPLACED: u16 = 4009;
}

use serde::{Deserialize, Serialize};

/// Largest text frame accepted from a client (bytes).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Longest chat message text accepted (characters).
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client id accepted (bytes).
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// Frames a caller (the chat widget) sends on `/ws/caller`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallerRequest {
    /// Open a new contact in a helpline's queue. `return_code`: the anonymous code she was given at the
    /// end of an earlier chat (her next counsellor then sees that chat's summary); answered with
    /// `return_code` (`known` or not) before `queued`.
    Start {
        helpline: String,
        language: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_code: Option<String>,
    },
    /// Come back after a drop: the token from `queued`, and the last seq the widget has shown.
    Resume {
        resume_token: String,
        #[serde(default)]
        last_seq: i64,
    },
    /// Send a chat message. `client_id` is the widget's own id for it: a repeat is stored once.
    Message { client_id: String, text: String },
    /// The caller is typing (`active: false` when they stop).
    Typing {
        #[serde(default = "yes")]
        active: bool,
    },
    /// The caller leaves: the contact ends (waiting: abandoned). `quick_exit`: she left with the
    /// widget's quick exit (the counsellor's `contact_ended` then says `quick_exit`).
    End {
        #[serde(default)]
        quick_exit: bool,
    },
    /// Application-level keepalive; answered with `pong`.
    Ping {},
    /// Instead of waiting (after `unavailable`): leave a message, read by a counsellor when the line
    /// opens. Answered with `left`; the chat on this socket is over.
    LeaveMessage { text: String },
    /// Instead of waiting (after `unavailable`): ask to be called back at `phone` when the line opens,
    /// with an optional note. Answered with `left`; the number is deleted once the callback is done.
    Callback {
        phone: String,
        #[serde(default)]
        text: Option<String>,
    },
    /// The caller's answer to the helpline's triage question ("Are you in danger right now?"):
    /// `yes` raises the contact's priority at once and alerts the helpline's supervisors.
    Triage { answer: TriageAnswer },
}

/// An answer to the triage question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriageAnswer {
    Yes,
    No,
}

/// Frames a counsellor's console sends on `/ws/agent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CounsellorRequest {
    /// Set one's own status: `available`, `away` or `offline`; `away` may give a `reason`, one of
    /// the helplines' away reasons (unknown: `unknown_away_reason`).
    Status {
        status: CounsellorStatus,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The after-contact work of `contact_id` is done: its slot leaves wrap-up and takes offers again.
    Ready {
        contact_id: String,
    },
    Accept {
        contact_id: String,
    },
    Decline {
        contact_id: String,
    },
    /// Close a conversation.
    End {
        contact_id: String,
    },
    Message {
        contact_id: String,
        client_id: String,
        text: String,
    },
    Typing {
        contact_id: String,
        #[serde(default = "yes")]
        active: bool,
    },
    Ping {},
    /// Escalate a contact you handle: `kind` is `emergency_placement`, `child_protection` or
    /// `emergency_services`; `risk` one of `none`…`imminent`. Answered with `escalated`.
    Escalate {
        contact_id: String,
        kind: String,
        risk: String,
        reason: String,
        /// The person's district, to suggest services near them first.
        #[serde(default)]
        district: Option<String>,
    },
    /// Put the caller of your own active phone call on hold (the exchange gets `hold`).
    CallHold {
        contact_id: String,
    },
    /// Take the caller of your own active phone call off hold (the exchange gets `unhold`).
    CallResume {
        contact_id: String,
    },
    /// Hang up your own active phone call (the exchange gets `hangup`; its `call_ended` closes the record).
    CallHangup {
        contact_id: String,
    },
    /// Flag a contact you handled as abusive (a supervisor may then block the caller, or route them
    /// to senior counsellors). Answered with `flagged`.
    FlagAbusive {
        contact_id: String,
        reason: String,
    },
    /// Hand over a conversation you hold: to a colleague (`counsellor_id`) or to a helpline's queue
    /// (`helpline`); `reason` is what the receiving counsellor reads. Cold (default): it moves at
    /// once. Warm (`warm: true`): `counsellor_id` names the colleague you brief (`consult`) and who
    /// answers `transfer_accept` or `transfer_decline`; it goes to her, or to `helpline`'s queue when
    /// that is given too. Answered with `handover` frames.
    Transfer {
        contact_id: String,
        #[serde(default)]
        counsellor_id: Option<String>,
        #[serde(default)]
        helpline: Option<String>,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        warm: bool,
    },
    /// Accept the warm transfer of `contact_id` you were asked to take.
    TransferAccept {
        contact_id: String,
    },
    /// Decline the warm transfer of `contact_id`: it stays with the counsellor who asked.
    TransferDecline {
        contact_id: String,
    },
    /// Take back your warm transfer of `contact_id` before it is answered.
    TransferCancel {
        contact_id: String,
    },
    /// A message to a colleague about a contact you hold (or the answer to the one who consulted
    /// you about it): the caller never sees it. Answered with `consult` (to both).
    Consult {
        contact_id: String,
        counsellor_id: String,
        text: String,
    },
}

fn yes() -> bool {
    true
}

fn chat() -> String {
    "chat".into()
}

/// A repeat caller: `contacts` earlier contacts from the same number in the last `days` days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Repeat {
    pub contacts: i64,
    pub days: i64,
}

/// An earlier contact of a repeat caller on the same helpline, as shown in a call's offer: from its
/// submitted contact form (the summary shortened to [`EARLIER_SUMMARY_CHARS`] characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EarlierContact {
    pub contact_id: String,
    pub helpline: String,
    /// When the contact started (RFC 3339).
    pub at: String,
    pub categories: Vec<String>,
    pub risk: Option<String>,
    pub outcome: Option<String>,
    pub summary: Option<String>,
}

/// Longest summary of an earlier contact shown in an offer (characters).
pub const EARLIER_SUMMARY_CHARS: usize = 280;
/// Most earlier contacts shown in an offer.
pub const EARLIER_CONTACTS: usize = 3;

/// A time from a telephone exchange: RFC 3339 (`"2026-11-23T10:00:00.250Z"`) or milliseconds
/// since the Unix epoch. Sent back as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At(pub i64);

impl Serialize for At {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(At(ms)),
            Raw::Text(t) => parse_rfc3339(&t).map(At).ok_or_else(|| serde::de::Error::custom(format!("{t:?} is not an RFC 3339 time"))),
        }
    }
}

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub fn parse_rfc3339(t: &str) -> Option<i64> {
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Who hung up a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallParty {
    Caller,
    Counsellor,
    /// The exchange itself (a timeout, a transfer out, a fault).
    System,
}

impl CallParty {
    pub fn as_str(self) -> &'static str {
        match self {
            CallParty::Caller => "caller",
            CallParty::Counsellor => "counsellor",
            CallParty::System => "system",
        }
    }
}

/// Events a telephone exchange's adapter sends, on `/ws/telephony` or to `POST /api/v1/telephony/events`.
/// `event_id` is the exchange's own id: a repeated one is acknowledged again and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TelephonyEvent {
    /// A call reached the exchange's queue. `caller` is the number (hashed at once, never stored);
    /// `language` the IVR's choice, if any.
    CallOffered {
        event_id: String,
        call_id: String,
        dialled: String,
        #[serde(default)]
        caller: Option<String>,
        #[serde(default)]
        language: Option<String>,
        /// The caller's key press at the IVR's triage question ("Are you in danger right now? Press
        /// 1 for yes, 2 for no"), where the helpline asks it: `1` raises the call's priority and
        /// alerts supervisors; anything else, or none, changes nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        triage_digit: Option<String>,
        at: At,
    },
    /// The counsellor's phone leg picked up: the conversation starts.
    CallAnswered { event_id: String, call_id: String, at: At },
    /// The call ended (`by`: `caller`, `counsellor` or `system`).
    CallEnded { event_id: String, call_id: String, by: CallParty, at: At },
    /// The caller hung up while waiting.
    CallAbandoned { event_id: String, call_id: String, at: At },
    /// Keepalive; answered with `pong`.
    Ping {},
    /// The exchange carried out (or took charge of) command `command_id`: it is never sent again.
    CommandAck { command_id: String },
}

impl TelephonyEvent {
    /// The `event_id` of an event that is stored (and answered `ack`); `None` for a ping or a command's ack.
    #[must_use]
    pub fn event_id(&self) -> Option<&str> {
        match self {
            TelephonyEvent::CallOffered { event_id, .. }
            | TelephonyEvent::CallAnswered { event_id, .. }
            | TelephonyEvent::CallEnded { event_id, .. }
            | TelephonyEvent::CallAbandoned { event_id, .. } => Some(event_id),
            TelephonyEvent::Ping {} | TelephonyEvent::CommandAck { .. } => None,
        }
    }
}

impl KnownTypes for TelephonyEvent {
    const TYPES: &'static [&'static str] = &["call_offered", "call_answered", "call_ended", "call_abandoned", "ping", "command_ack"];
}

/// What the server sends an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TelephonyCommand {
    /// Event `event_id` is stored (sent again for a repeat).
    Ack {
        event_id: String,
    },
    /// Bridge the call to this counsellor's extension (they accepted it). Every command carries a
    /// `command_id`: it is sent until the exchange answers `command_ack {command_id}`.
    Connect {
        command_id: String,
        call_id: String,
        counsellor: String,
        extension: String,
    },
    /// Stop ringing for this call: the counsellor it was offered to did not take it in time.
    Cancel {
        command_id: String,
        call_id: String,
    },
    /// Put the caller on hold (the counsellor pressed Hold).
    Hold {
        command_id: String,
        call_id: String,
    },
    /// Take the caller off hold.
    Unhold {
        command_id: String,
        call_id: String,
    },
    /// Hang up the call (the counsellor pressed Hang up); the exchange then sends `call_ended {by: "counsellor"}`.
    Hangup {
        command_id: String,
        call_id: String,
    },
    /// Do not queue this call (`reason`: `blocked`, the caller's number is blocked for this helpline):
    /// the exchange plays its calm announcement and ends the call.
    Reject {
        call_id: String,
        reason: String,
    },
    Pong {},
    /// An event was refused or is about an unknown call. `code` is stable.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        reference: Option<String>,
        /// `overloaded`: send the same event again (same `event_id`) after this many milliseconds.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
}

impl TelephonyCommand {
    /// The refusal of event `event_id`, read but not handled in time ([`ErrorCode::Overloaded`]):
    /// the exchange sends it again after `retry_after_ms` (events are idempotent by `event_id`; the
    /// first copy may still be acknowledged late).
    pub fn overloaded(event_id: impl Into<String>, retry_after_ms: u64) -> TelephonyCommand {
        TelephonyCommand::Error {
            code: ErrorCode::Overloaded,
            message: "the service is very busy: send the event again".into(),
            reference: Some(event_id.into()),
            retry_after_ms: Some(retry_after_ms),
        }
    }
    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"encoding"}"#.into())
    }

    /// The `type` of a command frame (`connect`, `cancel`, `hold`, `unhold`, `hangup`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            TelephonyCommand::Ack { .. } => "ack",
            TelephonyCommand::Connect { .. } => "connect",
            TelephonyCommand::Cancel { .. } => "cancel",
            TelephonyCommand::Hold { .. } => "hold",
            TelephonyCommand::Unhold { .. } => "unhold",
            TelephonyCommand::Hangup { .. } => "hangup",
            TelephonyCommand::Reject { .. } => "reject",
            TelephonyCommand::Pong {} => "pong",
            TelephonyCommand::Error { .. } => "error",
        }
    }
}

/// Frames a supervisor's dashboard sends on `/ws/supervisor`. Every intervention is audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SupervisorRequest {
    /// Set a counsellor's status (the counsellor is told it was a supervisor).
    SetStatus {
        counsellor_id: String,
        status: CounsellorStatus,
    },
    /// Move a waiting contact to the front of its queue.
    ToFront {
        contact_id: String,
    },
    /// Ring a waiting contact for a named counsellor.
    OfferTo {
        contact_id: String,
        counsellor_id: String,
    },
    /// Move a conversation to another counsellor, or back into a helpline's queue (give exactly one).
    Transfer {
        contact_id: String,
        counsellor_id: Option<String>,
        helpline: Option<String>,
    },
    /// Watch a conversation silently.
    Monitor {
        contact_id: String,
    },
    Unmonitor {
        contact_id: String,
    },
    /// A message only the counsellor sees.
    Whisper {
        contact_id: String,
        text: String,
    },
    /// Join the conversation: the caller sees you join, and you may write (`message`).
    Join {
        contact_id: String,
    },
    /// Write in a conversation you joined.
    Message {
        contact_id: String,
        client_id: String,
        text: String,
    },
    Ping {},
    /// Acknowledge an escalation alert (stops it going to every supervisor after 2 minutes).
    Acknowledge {
        escalation_id: String,
    },
}

impl KnownTypes for SupervisorRequest {
    const TYPES: &'static [&'static str] =
        &["set_status", "to_front", "offer_to", "transfer", "monitor", "unmonitor", "whisper", "join", "message", "ping", "acknowledge"];
}

/// A counsellor's chosen status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounsellorStatus {
    Available,
    Away,
    Offline,
}

impl CounsellorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CounsellorStatus::Available => "available",
            CounsellorStatus::Away => "away",
            CounsellorStatus::Offline => "offline",
        }
    }
    pub fn parse(s: &str) -> Option<CounsellorStatus> {
        match s {
            "available" => Some(CounsellorStatus::Available),
            "away" => Some(CounsellorStatus::Away),
            "offline" => Some(CounsellorStatus::Offline),
            _ => None,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Caller,
    Counsellor,
    System,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Counsellor => "counsellor",
            Party::System => "system",
        }
    }
    pub fn parse(s: &str) -> Party {
        match s {
            "caller" => Party::Caller,
            "counsellor" => Party::Counsellor,
            _ => Party::System,
        }
    }
}

/// A stored message as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub contact_id: String,
    pub seq: i64,
    pub from: Party,
    pub text: String,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    /// The sender's idempotency key, so a sender can match its own pending messages.
    pub client_id: String,
    /// A `system` message the server wrote, as a code and its words' parts, so that each page says it
    /// in its own language (`text` stays the English, for clients that do not know the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
}

/// What a server-made `system` message says, for the pages to put in their own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notice {
    /// `joined`: a supervisor joined the conversation.
    pub kind: String,
    /// Who (the supervisor's display name).
    pub name: String,
}

/// A counsellor's transfer of a contact, as the two counsellors it concerns see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandoverView {
    pub contact_id: String,
    /// `pending`, `done`, `declined`, `cancelled` or `failed`.
    pub state: String,
    pub warm: bool,
    /// Who holds (held) the contact.
    pub from_counsellor_id: String,
    pub from: String,
    /// The colleague it goes to (cold) or who is briefed (warm).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_counsellor_id: Option<String>,
    /// The helpline whose queue it goes to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub helpline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

/// A consult message between two counsellors about a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsultView {
    pub contact_id: String,
    pub from_counsellor_id: String,
    pub from: String,
    pub to_counsellor_id: String,
    pub text: String,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
}

/// What the counsellor who receives a handed-over contact reads in its `assigned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HandoverNote {
    pub from_counsellor_id: String,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub warm: bool,
    /// The consult between the one who handed it over and the briefed colleague, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub consult: Vec<ConsultView>,
}

/// An open conversation, as listed in a counsellor's `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub contact_id: String,
    pub helpline: String,
    pub language: String,
    pub queued_at: String,
    pub answered_at: Option<String>,
    /// Whether the caller's socket is connected now.
    pub caller_online: bool,
    /// `chat` or `call` (a phone call: the console shows Hold, Resume and Hang up).
    #[serde(default = "chat")]
    pub channel: String,
}

/// An escalation as supervisors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EscalationView {
    pub escalation_id: String,
    pub contact_id: String,
    pub helpline: String,
    pub kind: String,
    pub risk: String,
    pub reason: String,
    pub district: Option<String>,
    pub counsellor_id: String,
    pub at: String,
    /// Sent to every supervisor (imminent risk, or not acknowledged in time), not only the helpline's.
    pub everyone: bool,
    /// The helpline's display name (`helpline` is its code); None when it is not known any more.
    #[serde(default)]
    pub helpline_name: Option<String>,
    /// The escalating counsellor's display name (`counsellor_id` is the account); None when unknown.
    #[serde(default)]
    pub counsellor_name: Option<String>,
}

/// What a caller told `unavailable` may do: `wait`, `leave_message`, `callback`, or call an
/// `other_line` (`number`; `helpline` when it is another of the helplines, `name` to show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallerOption {
    pub option: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub helpline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub number: Option<String>,
}

impl CallerOption {
    pub fn plain(option: &str) -> CallerOption {
        CallerOption { option: option.into(), helpline: None, name: None, number: None }
    }
}

/// A placement service with a free place, as suggested to a counsellor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceSuggestion {
    pub service_id: String,
    pub name: String,
    pub kind: String,
    pub district: String,
    pub address: String,
    pub phone: String,
    pub admission_24_7: bool,
    pub free: i64,
}

/// Frames the server sends, to callers, counsellors and supervisors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    // ----- to callers
    /// The return code given with `start`: `known` when it is one we gave (her earlier chats are
    /// shown to her counsellor), false otherwise (nothing is kept of it).
    ReturnCode {
        known: bool,
    },
    /// The contact is stored and waiting. Keep `resume_token` (in memory) to resume after a drop.
    Queued {
        contact_id: String,
        resume_token: String,
        position: u32,
        /// Expected wait in seconds, from the place and recent answer times; absent with no basis.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        estimated_wait_s: Option<u32>,
    },
    /// The caller's place in the queue changed.
    Position {
        contact_id: String,
        position: u32,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        estimated_wait_s: Option<u32>,
    },
    /// Right after `queued`: nobody will answer soon. `reason`: `closed` (outside opening hours, or
    /// a holiday; `opens_at` says when it opens) or `nobody_on_shift`. The contact stays queued: the
    /// caller may wait, or choose another of `options`.
    Unavailable {
        contact_id: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        opens_at: Option<String>,
        options: Vec<CallerOption>,
    },
    /// Answer to `leave_message` or `callback` (`kind`): stored; a counsellor gets it as a contact
    /// from `routed_at` (when the line opens). The chat on this socket is over.
    Left {
        contact_id: String,
        kind: String,
        routed_at: String,
    },
    /// A counsellor accepted: the conversation starts.
    Connected {
        contact_id: String,
        counsellor: String,
    },
    /// The chat cannot be taken (`reason`: `unavailable`); `message` says so calmly, in the chat's
    /// language, and names the emergency number. Not an error: nothing the caller did wrong is implied.
    Closed {
        reason: String,
        message: String,
    },
    /// Answer to `resume`: the contact's state now. Missed messages follow as `message` frames.
    Resumed {
        contact_id: String,
        /// `queued` or `active`.
        state: String,
        position: Option<u32>,
        counsellor: Option<String>,
    },

    // ----- to counsellors
    /// First frame on every counsellor connection: who you are, your status, your open conversations.
    Hello {
        user_id: String,
        username: String,
        display_name: String,
        status: CounsellorStatus,
        capacity: i64,
        helplines: Vec<String>,
        backup_helplines: Vec<String>,
        languages: Vec<String>,
        conversations: Vec<ConversationSummary>,
        /// The away reasons you may give (`status` with `reason`): those of the helplines you serve,
        /// first-line and backup, in order, without repeats.
        #[serde(default)]
        away_reasons: Vec<String>,
    },
    /// A contact is ringing for you: `accept` or `decline` within `expires_in_ms`.
    Offer {
        contact_id: String,
        helpline: String,
        language: String,
        waited_ms: i64,
        expires_in_ms: i64,
        /// True when offered to you as a backup counsellor of this helpline.
        backup: bool,
        /// `chat` or `call` (a call: accepting it rings your extension).
        #[serde(default = "chat")]
        channel: String,
        /// A call's caller number, last two digits (never more).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        caller_last2: Option<String>,
        /// A call from a number that reached the helplines before: how often, over how many days.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repeat: Option<Repeat>,
        /// A repeat caller's last contacts on this helpline (at most 3, newest first), from their
        /// submitted forms; each one shown is audited as a read of that form.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        earlier: Vec<EarlierContact>,
        /// Whether the caller is connected now (false only where the helpline rings callers who
        /// dropped; elsewhere they are not offered until they are back).
        #[serde(default = "yes")]
        caller_online: bool,
    },
    /// The conversation `contact_id` ended and its slot is in wrap-up: no offer fills it until you
    /// send `ready`, submit its contact form, or `ends_in_ms` passes.
    WrapUp {
        contact_id: String,
        ends_in_ms: i64,
    },
    /// The wrap-up of `contact_id` ended (`reason`: `ready` or `limit`): the slot takes offers again.
    WrapUpEnded {
        contact_id: String,
        reason: String,
    },
    /// Your `call_hold`, `call_resume` or `call_hangup` is stored and on its way to the exchange
    /// (`action`: `hold`, `resume` or `hangup`).
    CallControl {
        contact_id: String,
        action: String,
    },
    /// The offer stopped ringing: `expired`, `contact_gone` or `unavailable`.
    OfferRevoked {
        contact_id: String,
        reason: String,
    },
    /// The conversation is yours; `history` holds every message so far, in seq order.
    Assigned {
        contact_id: String,
        helpline: String,
        language: String,
        queued_at: String,
        answered_at: String,
        caller_online: bool,
        history: Vec<MessageView>,
        /// `chat` or `call`.
        #[serde(default = "chat")]
        channel: String,
        /// It was handed over to you by a colleague: who, why, and the consult between you (warm).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        handover: Option<HandoverNote>,
    },
    /// A counsellor's transfer, to both counsellors it concerns, each time its state changes:
    /// `pending` (warm: waiting for the briefed colleague), `done`, `declined`, `cancelled`, `failed`.
    Handover(HandoverView),
    /// A consult message between two counsellors about a contact (the caller never sees it): to
    /// both of them.
    Consult(ConsultView),
    /// Your status changed (by you, or by the router: `reason` says why).
    Status {
        status: CounsellorStatus,
        reason: Option<String>,
    },
    /// The caller's connection dropped (`online: false`) or came back.
    CallerPresence {
        contact_id: String,
        online: bool,
    },
    /// A supervisor's message for you only (the caller never sees it).
    Whisper {
        contact_id: String,
        from: String,
        text: String,
        at: String,
    },
    /// A messaging contact's conversation (SMS, a messaging app; docs/channels.md), sent with `assigned`
    /// and when it changes: its channel, its last activity either way, and whether the sender wrote before
    /// (the same keyed hash of the address, on any channel or as a caller's number).
    ChannelInfo {
        contact_id: String,
        channel: String,
        /// RFC 3339.
        last_activity: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        repeat: Option<Repeat>,
    },
    /// What became of your message `seq` of a messaging contact at the provider: `sent` (the
    /// provider took it), `delivered`, `read` (where the provider reports it), `retrying` (the
    /// provider could not be reached; sent again later) or `failed` (finally: `detail` says why).
    Delivery {
        contact_id: String,
        seq: i64,
        state: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        detail: Option<String>,
    },

    // ----- to supervisors
    /// The live board: sent on connect and every second.
    Dashboard(Box<board::Dashboard>),
    /// Something a supervisor should see now: `wait_10s`, `wait_15s`, `counsellor_away`, `service_level_low`.
    Alert {
        kind: String,
        helpline: Option<String>,
        contact_id: Option<String>,
        counsellor_id: Option<String>,
        message: String,
        at: String,
    },
    /// Your intervention was carried out (and audited).
    Done {
        request: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        reference: Option<String>,
    },
    /// An escalation from a counsellor, for the supervisors of its helpline at once (and for every
    /// supervisor when `imminent`, or when nobody acknowledged it within 2 minutes: `everyone`).
    Escalation(EscalationView),
    /// To the counsellor: the escalation is stored and supervisors are alerted; for an emergency
    /// placement, the services with a free place that fit, the person's district first.
    Escalated {
        escalation_id: String,
        contact_id: String,
        kind: String,
        risk: String,
        suggestions: Vec<ServiceSuggestion>,
    },
    /// To the counsellor: your flag is stored and the helpline's supervisors are alerted.
    Flagged {
        flag_id: String,
        contact_id: String,
    },
    /// You are watching this conversation: its history; every new message follows as `message`.
    Monitoring {
        contact_id: String,
        counsellor: Option<String>,
        history: Vec<MessageView>,
    },

    // ----- to callers, on a transfer
    /// A supervisor moved you to another helpline's queue: you are waiting again (`position` follows).
    Transferred {
        contact_id: String,
        helpline: String,
    },

    // ----- to both
    /// A chat message, stored under `seq`.
    Message(MessageView),
    /// Your message `client_id` is committed to the database as `seq`.
    Ack {
        contact_id: String,
        client_id: String,
        seq: i64,
    },
    /// The other side is typing.
    Typing {
        contact_id: String,
        from: Party,
        active: bool,
    },
    /// The contact ended: `caller_ended`, `counsellor_ended` or `caller_lost`.
    ContactEnded {
        contact_id: String,
        reason: String,
    },
    /// The server is going away: reconnect (and resume) in a moment.
    Reconnect {
        reason: String,
    },
    Pong {},
    /// Something you sent was refused. `code` is stable; `message` is for people.
    Error {
        code: ErrorCode,
        message: String,
        /// The `client_id` or `contact_id` the error is about, when there is one.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        reference: Option<String>,
        /// `overloaded`: send the same frame again (same `client_id`) after this many milliseconds.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
}

impl ServerEvent {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerEvent {
        ServerEvent::Error { code, message: message.into(), reference: None, retry_after_ms: None }
    }
    pub fn error_about(code: ErrorCode, message: impl Into<String>, reference: impl Into<String>) -> ServerEvent {
        ServerEvent::Error { code, message: message.into(), reference: Some(reference.into()), retry_after_ms: None }
    }
    /// The refusal of a message the server read but could not take in time (queues full, or the
    /// database too slow): nothing is lost if the client sends it again, with the same
    /// `client_id`, after `retry_after_ms` (a copy that was stored after all is acknowledged, not stored twice).
    pub fn overloaded(client_id: impl Into<String>, retry_after_ms: u64) -> ServerEvent {
        ServerEvent::Error {
            code: ErrorCode::Overloaded,
            message: "the service is very busy: your message is waiting to be sent again".into(),
            reference: Some(client_id.into()),
            retry_after_ms: Some(retry_after_ms),
        }
    }
    /// The refusal of message `client_id`, sent over the socket's frame rate: nothing was stored;
    /// send it again (same `client_id`) after `retry_after_ms`.
    pub fn rate_limited(client_id: impl Into<String>, retry_after_ms: u64) -> ServerEvent {
        ServerEvent::Error {
            code: ErrorCode::RateLimited,
            message: "too many frames; slow down: send it again in a moment".into(),
            reference: Some(client_id.into()),
            retry_after_ms: Some(retry_after_ms),
        }
    }
    /// The refusal of a message not answered in time: `unavailable` while the database is known
    /// not to answer (nothing is stored until it is back), else [`ServerEvent::overloaded`]; both
    /// say when to send it again.
    pub fn not_taken(client_id: impl Into<String>, database_answering: bool, retry_after_ms: u64) -> ServerEvent {
        if database_answering {
            return ServerEvent::overloaded(client_id, retry_after_ms);
        }
        ServerEvent::Error {
            code: ErrorCode::Unavailable,
            message: "the service cannot store anything right now; nothing was lost: send it again in a moment".into(),
            reference: Some(client_id.into()),
            retry_after_ms: Some(retry_after_ms),
        }
    }
    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail (no maps with non-string keys, no custom Serialize).
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"encoding"}"#.into())
    }
}

/// Stable error codes of `error` frames (and of HTTP error bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON (or not a JSON object), or is binary.
    BadJson,
    /// The `type` is missing or not one this endpoint knows.
    UnknownType,
    /// A field is missing, of the wrong type, unknown, or out of range.
    BadField,
    /// The frame or text is larger than allowed.
    TooLarge,
    /// Not allowed in this state or for this user (e.g. `message` before `start`).
    NotAllowed,
    /// No such contact, or not yours.
    UnknownContact,
    /// The offer is no longer ringing for you.
    NoSuchOffer,
    /// The resume token is not valid (unknown, or the contact has ended).
    BadToken,
    /// No such helpline, or the language is not served by it.
    UnknownHelpline,
    /// Too many frames too fast.
    RateLimited,
    /// Authentication missing or invalid (HTTP 401).
    Unauthorized,
    /// Authenticated but not permitted (HTTP 403).
    Forbidden,
    /// Not found (HTTP 404).
    NotFound,
    /// Already exists (HTTP 409).
    Conflict,
    /// The server is busy or shutting down; try again.
    Unavailable,
    /// A message was read but not taken in time (queues full, or the database too slow): send it
    /// again with the same `client_id` after `retry_after_ms`; nothing was lost.
    Overloaded,
    /// A telephony event names a `call_id` this server does not know (stored as an orphan).
    UnknownCall,
    /// Something failed on the server; nothing was acknowledged.
    Internal,
    /// A contact form misses required fields or has unknown values: every field's error is named (HTTP 422).
    InvalidForm,
    /// The service has no free place (HTTP 409); the next suggestion comes with the error.
    ServiceFull,
    /// A case stage change out of order (HTTP 409); the allowed next stages come with the error.
    StageOrder,
    /// The password was right; now the second factor: send the login again with `totp_code` (HTTP 401).
    TotpRequired,
    /// The password was right, but this account must set up a second factor first (HTTP 401):
    /// `POST /api/v1/auth/totp/enrol`, then the login again with the app's code as `totp_code`.
    TotpEnrolmentRequired,
    /// The new password does not meet the password rule; the message says why (HTTP 422).
    WeakPassword,
    /// An away reason that none of your helplines allows; the message names the allowed ones.
    UnknownAwayReason,
    /// A helpline's settings out of range or malformed (wrap-up limit, away reasons, triage priority);
    /// the message names the field and what it may be (HTTP 422).
    InvalidSettings,
    /// A staff page language that is not one of `ro`, `ru`, `uk`, `en` (HTTP 422).
    UnknownLocale,
    /// An account's field out of its rule (an empty or malformed username, a bad role, capacity,
    /// language, extension or district); `field` names it and the message says what it may be (HTTP 422).
    InvalidAccount,
    /// The change would leave no enabled admin: the last one may be neither disabled nor demoted (HTTP 409).
    LastAdmin,
    /// A password reset code that is unknown, already used or expired (HTTP 422): ask an admin for a new one.
    InvalidResetCode,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

/// The `type` names each request enum knows, for telling `unknown_type` from `bad_field`.
pub trait KnownTypes {
    const TYPES: &'static [&'static str];
}

impl KnownTypes for CallerRequest {
    const TYPES: &'static [&'static str] = &["start", "resume", "message", "typing", "end", "ping", "leave_message", "callback", "triage"];
}

impl KnownTypes for CounsellorRequest {
    const TYPES: &'static [&'static str] = &[
        "status",
        "accept",
        "decline",
        "end",
        "message",
        "typing",
        "ping",
        "escalate",
        "call_hold",
        "call_resume",
        "call_hangup",
        "flag_abusive",
        "ready",
        "transfer",
        "transfer_accept",
        "transfer_decline",
        "transfer_cancel",
        "consult",
    ];
}

/// Decodes a client's text frame into a request, with a stable error code when it cannot.
pub fn decode<T: serde::de::DeserializeOwned + KnownTypes>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(DecodeError { code: ErrorCode::TooLarge, message: format!("frames are limited to {MAX_FRAME_BYTES} bytes") });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DecodeError { code: ErrorCode::BadJson, message: format!("not JSON: {e}") })?;
    let Some(obj) = value.as_object() else {
        return Err(DecodeError { code: ErrorCode::BadJson, message: "expected a JSON object".into() });
    };
    match obj.get("type").and_then(|t| t.as_str()) {
        None => {
            return Err(DecodeError { code: ErrorCode::UnknownType, message: "missing \"type\"".into() });
        }
        Some(t) if !T::TYPES.contains(&t) => {
            return Err(DecodeError {
                code: ErrorCode::UnknownType,
                message: format!("unknown type {t:?}; expected one of {}", T::TYPES.join(", ")),
            });
        }
        Some(_) => {}
    }
    serde_json::from_value(value).map_err(|e| DecodeError { code: ErrorCode::BadField, message: e.to_string() })
}

/// A CSV field (reports): quoted if needed, and spreadsheet formulas defused (a leading `=`, `+`, `-`, `@`).
pub fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_string() };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Validates a chat message's text and client id; returns the trimmed text.
pub fn check_message(client_id: &str, text: &str) -> Result<(), DecodeError> {
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(DecodeError { code: ErrorCode::BadField, message: format!("client_id must be 1 to {MAX_CLIENT_ID_BYTES} bytes") });
    }
    if text.trim().is_empty() {
        return Err(DecodeError { code: ErrorCode::BadField, message: "text is empty".into() });
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(DecodeError { code: ErrorCode::TooLarge, message: format!("text is limited to {MAX_TEXT_CHARS} characters") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of<T: Serialize>(v: &T) -> String {
        serde_json::to_value(v).unwrap()["type"].as_str().unwrap().to_string()
    }

    #[test]
    fn caller_type_list_matches_the_enum() {
        let all = [
            CallerRequest::Start { helpline: "children".into(), language: None, return_code: None },
            CallerRequest::Resume { resume_token: "t".into(), last_seq: 0 },
            CallerRequest::Message { client_id: "c".into(), text: "x".into() },
            CallerRequest::Typing { active: true },
            CallerRequest::End { quick_exit: false },
            CallerRequest::Ping {},
            CallerRequest::LeaveMessage { text: "x".into() },
            CallerRequest::Callback { phone: "+37360000000".into(), text: None },
            CallerRequest::Triage { answer: TriageAnswer::Yes },
        ];
        let names: Vec<String> = all.iter().map(type_of).collect();
        assert_eq!(names, CallerRequest::TYPES);
    }

    #[test]
    fn counsellor_type_list_matches_the_enum() {
        let all = [
            CounsellorRequest::Status { status: CounsellorStatus::Available, reason: None },
            CounsellorRequest::Accept { contact_id: "c".into() },
            CounsellorRequest::Decline { contact_id: "c".into() },
            CounsellorRequest::End { contact_id: "c".into() },
            CounsellorRequest::Message { contact_id: "c".into(), client_id: "c".into(), text: "x".into() },
            CounsellorRequest::Typing { contact_id: "c".into(), active: true },
            CounsellorRequest::Ping {},
            CounsellorRequest::Escalate { contact_id: "c".into(), kind: "k".into(), risk: "r".into(), reason: "x".into(), district: None },
            CounsellorRequest::CallHold { contact_id: "c".into() },
            CounsellorRequest::CallResume { contact_id: "c".into() },
            CounsellorRequest::CallHangup { contact_id: "c".into() },
            CounsellorRequest::FlagAbusive { contact_id: "c".into(), reason: "x".into() },
            CounsellorRequest::Ready { contact_id: "c".into() },
            CounsellorRequest::Transfer { contact_id: "c".into(), counsellor_id: None, helpline: None, reason: None, warm: false },
            CounsellorRequest::TransferAccept { contact_id: "c".into() },
            CounsellorRequest::TransferDecline { contact_id: "c".into() },
            CounsellorRequest::TransferCancel { contact_id: "c".into() },
            CounsellorRequest::Consult { contact_id: "c".into(), counsellor_id: "c".into(), text: "x".into() },
        ];
        let names: Vec<String> = all.iter().map(type_of).collect();
        assert_eq!(names, CounsellorRequest::TYPES);
    }

    #[test]
    fn supervisor_type_list_matches_the_enum() {
        let c = || "c".to_string();
        let all = [
            SupervisorRequest::SetStatus { counsellor_id: c(), status: CounsellorStatus::Away },
            SupervisorRequest::ToFront { contact_id: c() },
            SupervisorRequest::OfferTo { contact_id: c(), counsellor_id: c() },
            SupervisorRequest::Transfer { contact_id: c(), counsellor_id: None, helpline: None },
            SupervisorRequest::Monitor { contact_id: c() },
            SupervisorRequest::Unmonitor { contact_id: c() },
            SupervisorRequest::Whisper { contact_id: c(), text: c() },
            SupervisorRequest::Join { contact_id: c() },
            SupervisorRequest::Message { contact_id: c(), client_id: c(), text: c() },
            SupervisorRequest::Ping {},
            SupervisorRequest::Acknowledge { escalation_id: c() },
        ];
        let names: Vec<String> = all.iter().map(type_of).collect();
        assert_eq!(names, SupervisorRequest::TYPES);
    }

    #[test]
    fn telephony_type_list_matches_the_enum() {
        let c = || "c".to_string();
        let all = [
            TelephonyEvent::CallOffered {
                event_id: c(),
                call_id: c(),
                dialled: c(),
                caller: None,
                language: None,
                triage_digit: None,
                at: At(0),
            },
            TelephonyEvent::CallAnswered { event_id: c(), call_id: c(), at: At(0) },
            TelephonyEvent::CallEnded { event_id: c(), call_id: c(), by: CallParty::Caller, at: At(0) },
            TelephonyEvent::CallAbandoned { event_id: c(), call_id: c(), at: At(0) },
            TelephonyEvent::Ping {},
            TelephonyEvent::CommandAck { command_id: c() },
        ];
        let names: Vec<String> = all.iter().map(type_of).collect();
        assert_eq!(names, TelephonyEvent::TYPES);
    }

    #[test]
    fn telephony_times_are_rfc3339_or_milliseconds() {
        let ev = |at: &str| decode::<TelephonyEvent>(&format!(r#"{{"type":"call_abandoned","event_id":"e","call_id":"c","at":{at}}}"#));
        let ms = |ev: Result<TelephonyEvent, DecodeError>| match ev {
            Ok(TelephonyEvent::CallAbandoned { at, .. }) => Some(at.0),
            _ => None,
        };
        assert_eq!(ms(ev("1500")), Some(1500));
        assert_eq!(ms(ev(r#""1970-01-01T00:00:01.500Z""#)), Some(1500));
        assert_eq!(ev(r#""yesterday""#).unwrap_err().code, ErrorCode::BadField);
        let bad_by = decode::<TelephonyEvent>(r#"{"type":"call_ended","event_id":"e","call_id":"c","by":"cat","at":1}"#);
        assert_eq!(bad_by.unwrap_err().code, ErrorCode::BadField);
    }

    #[test]
    fn decode_errors_have_stable_codes() {
        let code = |s: &str| decode::<CallerRequest>(s).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(code(r#"{"helpline":"children"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"launch"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"start"}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"start","helpline":7}"#), ErrorCode::BadField);
        assert_eq!(code(r#"{"type":"end","extra":1}"#), ErrorCode::BadField);
        let big = format!(r#"{{"type":"message","client_id":"a","text":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(code(&big), ErrorCode::TooLarge);
        assert_eq!(
            decode::<CallerRequest>(r#"{"type":"resume","resume_token":"abc"}"#).unwrap(),
            CallerRequest::Resume { resume_token: "abc".into(), last_seq: 0 }
        );
    }

    #[test]
    fn message_checks() {
        assert!(check_message("a", "hello").is_ok());
        assert_eq!(check_message("", "hello").unwrap_err().code, ErrorCode::BadField);
        assert_eq!(check_message("a", "   ").unwrap_err().code, ErrorCode::BadField);
        assert_eq!(check_message("a", &"é".repeat(MAX_TEXT_CHARS + 1)).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn server_events_are_flat_tagged_json() {
        let ev = ServerEvent::Ack { contact_id: "c1".into(), client_id: "m1".into(), seq: 3 };
        assert_eq!(ev.to_json(), r#"{"type":"ack","contact_id":"c1","client_id":"m1","seq":3}"#);
        let msg = ServerEvent::Message(MessageView {
            contact_id: "c1".into(),
            seq: 1,
            from: Party::Caller,
            text: "hi".into(),
            at: rfc3339(0),
            client_id: "m1".into(),
            notice: None,
        });
        assert_eq!(
            msg.to_json(),
            r#"{"type":"message","contact_id":"c1","seq":1,"from":"caller","text":"hi","at":"1970-01-01T00:00:00Z","client_id":"m1"}"#
        );
        let err = ServerEvent::error(ErrorCode::BadJson, "x");
        assert_eq!(err.to_json(), r#"{"type":"error","code":"bad_json","message":"x"}"#);
    }
}

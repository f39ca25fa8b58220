//! The engine's vocabulary: identifiers, time, configuration, and the closed sets of inputs and outputs.
//!
//! Nothing here knows about tokio, sockets or databases: the server converts to and from these
//! types at its edges. The inputs (and what they carry) derive serde, and nothing else of it, so
//! that in cluster mode a command crosses to the leader's engine as it is.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The engine never reads a clock: every call
/// to [`super::Engine::handle`] is given `now`, and stored arrival times are
/// plain timestamps, so a restarted server can hand back the original ones.
pub type Millis = i64;

/// A contact (a chat or a call) as the engine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContactId(pub u128);

/// A counsellor's account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CounsellorId(pub u128);

/// A helpline's short name (`children`, `disability`, `family_violence`).
pub type Helpline = String;
/// A language code (`ro`, `ru`, `uk`, `en`).
pub type Language = String;

/// The routing rules a contact follows, by how it reaches the helpline: calls are audio in the
/// telephone exchange; chats are text relayed here. A kind of contact the server adds (a messaging
/// app, `chat::channel`) names the rules it follows with one of these; the engine's rules that
/// depend on them are the methods below, each an exhaustive match, so a new variant must say
/// which of them it follows (and gets its own slots in the index, `index::ch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub enum Channel {
    #[default]
    Chat,
    Call,
}

impl Channel {
    /// Only counsellors who can take it (an extension: `CounsellorProfile::takes_calls`) are offered it.
    pub const fn needs_line(self) -> bool {
        match self {
            Channel::Call => true,
            Channel::Chat => false,
        }
    }

    /// It holds its counsellor (ringing or in conversation): they get no other contact of a kind
    /// that holds, and no other contact at all unless its helpline allows chats while on a call
    /// (`HelplineConfig::chat_while_on_call`).
    pub const fn holds_counsellor(self) -> bool {
        match self {
            Channel::Call => true,
            Channel::Chat => false,
        }
    }

    /// It ranks above contacts of equal priority that do not, unless its helpline says otherwise
    /// (`HelplineConfig::calls_first`).
    pub const fn ranks_first(self) -> bool {
        match self {
            Channel::Call => true,
            Channel::Chat => false,
        }
    }
}

/// What a counsellor chose (or was set to): only `Available` counsellors get offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    Available,
    Away,
    Offline,
}

/// Per-helpline timings, all in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelplineConfig {
    pub name: Helpline,
    /// Ring-no-answer: an offer not accepted within this is revoked (default 8 s).
    pub ring_timeout_ms: Millis,
    /// From this wait on, backup counsellors of this helpline are eligible too (default 10 s).
    pub backup_after_ms: Millis,
    /// Wait at which [`Output::SlaAtRisk`] is emitted (default 10 s).
    pub sla_at_risk_ms: Millis,
    /// Wait at which [`Output::SlaBreached`] is emitted: the answer target (default 15 s).
    pub sla_target_ms: Millis,
    /// How long a dropped caller has to come back before the contact is abandoned (default 120 s).
    pub caller_grace_ms: Millis,
    /// Whether a counsellor on a call may still be offered this helpline's chats (default false).
    pub chat_while_on_call: bool,
    /// Whether this helpline's calls go ahead of its chats of equal priority (default true).
    pub calls_first: bool,
    /// After a contact in conversation ends, its counsellor's slot stays in wrap-up until they say
    /// they are ready (or submit the contact form), or this long at most (default 60 s; 0: no wrap-up).
    /// See [`super::wrapup`].
    pub wrapup_limit_ms: Millis,
    /// The reasons a counsellor of this helpline may give for being away (default
    /// [`super::away::DEFAULT_AWAY_REASONS`]). See [`super::away`].
    pub away_reasons: Vec<String>,
    /// The triage question ("Are you in danger right now?"): `Some(priority)` when this helpline
    /// asks it, a yes raising a waiting contact to at least that priority (default `None`: not
    /// asked, answers ignored). See [`super::triage`].
    pub triage_priority: Option<i32>,
    /// Whether a waiting caller whose connection dropped is still offered (default false: she keeps
    /// her place but rings nobody until she is back). See [`super::presence`].
    pub ring_offline_callers: bool,
}

impl HelplineConfig {
    /// The defaults named in the product's promise: 8 s ring, backups and "at risk" at 10 s, 15 s target, 120 s grace.
    pub fn with_defaults(name: impl Into<Helpline>) -> Self {
        Self {
            name: name.into(),
            ring_timeout_ms: 8_000,
            backup_after_ms: 10_000,
            sla_at_risk_ms: 10_000,
            sla_target_ms: 15_000,
            caller_grace_ms: 120_000,
            chat_while_on_call: false,
            calls_first: true,
            wrapup_limit_ms: super::wrapup::DEFAULT_WRAPUP_LIMIT_MS,
            away_reasons: super::away::default_away_reasons(),
            triage_priority: None,
            ring_offline_callers: false,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub helplines: Vec<HelplineConfig>,
    /// Consecutive expired offers after which a counsellor is set `Away` (default 2).
    pub misses_before_away: u32,
}

/// A counsellor's profile: what they serve and how much they can carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounsellorProfile {
    pub id: CounsellorId,
    /// Helplines this counsellor serves first-line.
    pub helplines: BTreeSet<Helpline>,
    /// Helplines this counsellor backs up: eligible once a contact has waited `backup_after_ms`.
    pub backup_helplines: BTreeSet<Helpline>,
    pub languages: BTreeSet<Language>,
    /// Concurrent contacts (chats) at most; default 3.
    pub capacity: u32,
    /// Whether they can take calls (their account has a phone extension). Without one they are
    /// never offered a call.
    pub takes_calls: bool,
    /// A senior counsellor: the only kind offered `senior_only` contacts.
    pub senior: bool,
}

/// A new contact joining its helpline's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewContact {
    pub id: ContactId,
    /// A chat or a call. A counsellor with a call (in conversation or ringing) gets no other call
    /// and, unless the chat's helpline says `chat_while_on_call`, no new chat.
    pub channel: Channel,
    pub helpline: Helpline,
    pub language: Language,
    /// Higher is served first; 0 is normal.
    pub priority: i32,
    /// When the contact entered the queue. On a restart this is the original time,
    /// earlier than `now`; the answer clock (SLA events, backup overflow) runs from it.
    pub queued_at: Millis,
    /// Whether the caller is connected now (false for contacts restored after a restart:
    /// their grace period starts at `now`).
    pub caller_connected: bool,
    /// Offered only to senior counsellors (a supervisor routed this caller to them instead of
    /// blocking). With no senior free it waits, and the usual SLA events fire.
    pub senior_only: bool,
}

/// Why a contact ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller ended it (while waiting this counts as abandoned).
    CallerEnded,
    /// The counsellor closed the conversation.
    CounsellorEnded,
    /// The caller dropped and did not come back within the grace period.
    CallerLost,
}

/// Why an offer was taken back from a counsellor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// Not accepted within the ring timeout.
    Expired,
    /// The contact ended (caller left) while the offer was ringing.
    ContactGone,
    /// The counsellor went away, offline or disconnected while it was ringing.
    CounsellorUnavailable,
    /// A supervisor moved the contact to another counsellor.
    Moved,
    /// The waiting caller's connection dropped: she keeps her place but rings nobody until she is
    /// back (see [`super::presence`]). Not a miss.
    CallerAway,
}

/// Where a supervisor transfers an assigned contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferTarget {
    /// Straight to this counsellor (who must be connected and have room).
    Counsellor(CounsellorId),
    /// Back into this helpline's queue, ahead of new contacts ([`PRIORITY_TRANSFER`]).
    Helpline(Helpline),
}

/// Priority a contact transferred to another helpline's queue gets (at least).
pub const PRIORITY_TRANSFER: i32 = 50;
/// Priority of a contact a supervisor moved to the front of its queue.
pub const PRIORITY_FRONT: i32 = 100;

/// Why a supervisor's request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// The contact is not known (ended, or never existed).
    UnknownContact,
    /// The contact is not waiting (already answered).
    NotWaiting,
    /// The contact is not in conversation.
    NotAssigned,
    /// The named counsellor is unknown, removed, disconnected, not available, ringing, or full.
    TargetUnavailable,
    /// A counsellor's handover of a contact she does not hold (in conversation with her).
    NotHeld,
}

/// Why a status was changed by the engine rather than by the counsellor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusReason {
    /// `misses_before_away` offers in a row expired.
    MissedOffers,
}

/// A request the engine refuses; the server maps it to an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// No offer of this contact is ringing for this counsellor (expired, revoked, never made).
    NoSuchOffer,
    /// The contact is not one the engine knows (ended, or never existed).
    UnknownContact,
    /// The contact is not assigned to this counsellor.
    NotAssigned,
    /// The counsellor is not known to the engine (never upserted, or removed).
    UnknownCounsellor,
}

/// Why a counsellor's wrap-up of a contact ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrapUpEnd {
    /// The counsellor said she is ready (the `ready` frame, or the contact form submitted).
    Ready,
    /// The helpline's wrap-up limit passed.
    Limit,
}

/// Everything that can happen to the engine. A closed set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// Add or update a counsellor's profile (on connect, or when an admin changes it).
    /// Keeps their status, connection, assignments and idle time.
    UpsertCounsellor(CounsellorProfile),
    /// A counsellor's account was disabled or deleted: offers revoked, they get no more.
    /// Their open contacts stay assigned to them until ended.
    RemoveCounsellor {
        counsellor: CounsellorId,
    },
    /// A counsellor's first socket opened / last socket closed. Only connected counsellors get offers;
    /// a ringing offer to one who disconnects is revoked at once.
    CounsellorConnected {
        counsellor: CounsellorId,
    },
    CounsellorDisconnected {
        counsellor: CounsellorId,
    },
    /// The counsellor set their status. Becoming `Available` starts their idle time and resets misses.
    SetStatus {
        counsellor: CounsellorId,
        status: Status,
    },
    /// A contact joins its queue (new, or restored after a restart).
    ContactQueued(NewContact),
    /// Restore, after a restart, a contact that was already assigned (in conversation).
    ContactRestoredAssigned {
        contact: NewContact,
        counsellor: CounsellorId,
        answered_at: Millis,
    },
    /// Restore, after a restart, what the database keeps of a counsellor (who has not connected yet):
    /// away for a reason since a time (`away`), and her slots in wrap-up (the ended contact, and when
    /// its wrap-up ends at the latest). A counsellor the engine does not know is added without a
    /// profile (hers comes with [`Input::UpsertCounsellor`] when she connects, which keeps both).
    RestoreCounsellor {
        counsellor: CounsellorId,
        away: Option<(String, Millis)>,
        wrapups: Vec<(ContactId, Millis)>,
    },
    /// The counsellor accepts a ringing offer.
    Accept {
        counsellor: CounsellorId,
        contact: ContactId,
    },
    /// The counsellor declines a ringing offer: it goes to the next counsellor at once.
    Decline {
        counsellor: CounsellorId,
        contact: ContactId,
    },
    /// The counsellor ends an assigned contact.
    EndByCounsellor {
        counsellor: CounsellorId,
        contact: ContactId,
    },
    /// The caller ends (waiting: abandoned; in conversation: ended).
    EndByCaller {
        contact: ContactId,
    },
    /// The caller's last socket dropped: the grace clock starts.
    CallerDisconnected {
        contact: ContactId,
    },
    /// The caller came back (resumed) within the grace period.
    CallerConnected {
        contact: ContactId,
    },
    /// Set a contact's priority (escalation, imminent risk, supervisor): a waiting contact moves in its
    /// queue; a contact in conversation keeps its counsellor and takes the priority back to a queue if
    /// it is transferred there.
    SetPriority {
        contact: ContactId,
        priority: i32,
    },
    /// A supervisor moves a waiting contact to a named counsellor: it rings for them only
    /// (helpline and language are the supervisor's call) until they answer, decline or miss it;
    /// then normal routing resumes.
    OfferTo {
        contact: ContactId,
        counsellor: CounsellorId,
    },
    /// A supervisor transfers a contact in conversation to another counsellor or helpline.
    Transfer {
        contact: ContactId,
        to: TransferTarget,
    },
    /// A counsellor hands over a contact she holds (in conversation with her) to a colleague or a
    /// helpline's queue, as [`Input::Transfer`] moves it; refused ([`Refusal::NotHeld`]) otherwise.
    HandOver {
        by: CounsellorId,
        contact: ContactId,
        to: TransferTarget,
    },
    /// The counsellor is done with the after-contact work of `contact` (she said she is ready, or
    /// submitted its form): its slot leaves wrap-up. Ignored when it is not in wrap-up.
    Ready {
        counsellor: CounsellorId,
        contact: ContactId,
    },
    /// The counsellor goes away for a reason (one of her helplines' `away_reasons`); an unknown
    /// reason is refused ([`Output::AwayRefused`]) and changes nothing.
    SetAway {
        counsellor: CounsellorId,
        reason: String,
    },
    /// The caller's answer to the triage question (from the widget, or the exchange's IVR digit):
    /// `danger` raises a waiting contact's priority at once (see [`super::triage`]).
    Triage {
        contact: ContactId,
        danger: bool,
    },
    /// Time passed; the server sends this at [`super::Engine::next_deadline`].
    Tick,
}

/// Everything the engine asks the world to do, in the order it must be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Ring this counsellor with this contact until `expires_at`.
    Offer {
        contact: ContactId,
        counsellor: CounsellorId,
        helpline: Helpline,
        language: Language,
        queued_at: Millis,
        expires_at: Millis,
        /// True when the counsellor is eligible only as a backup for this helpline.
        as_backup: bool,
        /// Whether the caller is connected now (false only where the helpline rings offline callers).
        caller_online: bool,
    },
    /// Stop ringing this counsellor.
    OfferRevoked { contact: ContactId, counsellor: CounsellorId, reason: RevokeReason },
    /// The counsellor declined; recorded for reports (no message needed to the counsellor).
    OfferDeclined { contact: ContactId, counsellor: CounsellorId },
    /// The contact is now in conversation with this counsellor.
    Assigned { contact: ContactId, counsellor: CounsellorId, answered_at: Millis },
    /// The engine changed a counsellor's status (e.g. away after missed offers).
    StatusChanged { counsellor: CounsellorId, status: Status, reason: StatusReason },
    /// Waiting contacts whose queue position changed: (contact, 1-based position in its helpline's queue).
    Positions { positions: Vec<(ContactId, u32)> },
    /// The contact has waited `sla_at_risk_ms` without an answer.
    SlaAtRisk { contact: ContactId, waited_ms: Millis },
    /// The contact has waited `sla_target_ms` without an answer.
    SlaBreached { contact: ContactId, waited_ms: Millis },
    /// The contact's wait passed `backup_after_ms`: backup counsellors are now eligible.
    BackupOverflow { contact: ContactId },
    /// The contact ended. `counsellor` is set if it was in conversation;
    /// `abandoned` when it ended while still waiting.
    Ended {
        contact: ContactId,
        /// The helpline whose contact it was (a contact never offered is known by nobody else once ended).
        helpline: Helpline,
        counsellor: Option<CounsellorId>,
        reason: EndReason,
        abandoned: bool,
    },
    /// A contact in conversation moved: to counsellor `to`, or (`to: None`) back into `helpline`'s queue.
    Transferred { contact: ContactId, from: CounsellorId, to: Option<CounsellorId>, helpline: Helpline },
    /// A supervisor's request (`OfferTo`, `Transfer`) was refused.
    Refused { contact: ContactId, refusal: Refusal },
    /// The counsellor's slot of `contact` (which just ended) is in wrap-up until `until` at most.
    WrapUp { counsellor: CounsellorId, contact: ContactId, until: Millis },
    /// The wrap-up of `contact` ended: the slot takes offers again.
    WrapUpEnded { counsellor: CounsellorId, contact: ContactId, reason: WrapUpEnd },
    /// The counsellor's away reason is not one her helplines allow: nothing changed.
    AwayRefused { counsellor: CounsellorId, reason: String },
    /// The caller answered the triage question of `helpline`; a `danger` answer set the priority to
    /// `priority` (supervisors of the helpline are alerted).
    Triaged { contact: ContactId, helpline: Helpline, danger: bool, priority: i32 },
    /// A counsellor's request was refused.
    Rejected { counsellor: CounsellorId, contact: ContactId, rejection: Rejection },
}

//! Read-only views of the engine's state, for the server, supervisors and debugging.

use std::collections::BTreeSet;

use super::types::{ContactId, CounsellorId, Helpline, Language, Millis, Status};

/// A counsellor as the engine sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounsellorView {
    pub id: CounsellorId,
    pub status: Status,
    /// Since when the counsellor has had this status and connection state.
    pub status_since: Millis,
    /// At least one socket open.
    pub connected: bool,
    /// Removed by an admin: gets no offers (open contacts stay until ended).
    pub removed: bool,
    pub capacity: u32,
    /// Assigned contacts, by id.
    pub active: Vec<ContactId>,
    /// The contact currently ringing for this counsellor, if any.
    pub ringing: Option<ContactId>,
    /// Ties between equally loaded counsellors go to the earliest `idle_since`.
    pub idle_since: Millis,
    /// Offers in a row that expired unanswered.
    pub consecutive_misses: u32,
    pub helplines: BTreeSet<Helpline>,
    pub backup_helplines: BTreeSet<Helpline>,
    pub languages: BTreeSet<Language>,
    /// Slots in wrap-up: the contact that ended, and when its wrap-up ends at the latest.
    pub wrapping_up: Vec<(ContactId, Millis)>,
    /// Why they are away (while away, when they or the engine gave a reason).
    pub away_reason: Option<String>,
}

/// A contact waiting in its helpline's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingView {
    pub contact: ContactId,
    pub helpline: Helpline,
    pub language: Language,
    pub priority: i32,
    pub queued_at: Millis,
    /// 1-based position in its helpline's queue.
    pub position: u32,
    /// The counsellor this contact is ringing for, if any.
    pub offered_to: Option<CounsellorId>,
    pub caller_connected: bool,
}

/// A contact in conversation with a counsellor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedView {
    pub contact: ContactId,
    pub counsellor: CounsellorId,
    pub helpline: Helpline,
    pub language: Language,
    /// Raised by an escalation or imminent risk during the conversation (see `Input::SetPriority`).
    pub priority: i32,
    pub queued_at: Millis,
    pub answered_at: Millis,
    pub caller_connected: bool,
}

/// The whole state: `waiting` by (helpline, position), `assigned` by contact id, `counsellors` by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub waiting: Vec<WaitingView>,
    pub assigned: Vec<AssignedView>,
    pub counsellors: Vec<CounsellorView>,
}

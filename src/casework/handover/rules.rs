//! The rules of a counsellor's handover and consult, without I/O: what a `transfer` asks for and
//! whether she may ask it, who may answer a warm transfer and how its state moves, and who may write
//! in a consult. The service ([`super`]) applies them with the store, the hub and the engine.

use crate::protocol::ErrorCode;
use crate::routing::{CounsellorView, Status};

/// Where a handed-over contact goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Straight to this colleague.
    Colleague(String),
    /// Into this helpline's queue (ahead of new contacts).
    Queue(String),
}

/// A checked `transfer`: where it goes, and (warm) the colleague who is briefed and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub destination: Destination,
    pub briefed: Option<String>,
}

impl Plan {
    pub fn warm(&self) -> bool {
        self.briefed.is_some()
    }
}

/// Why a counsellor's transfer, answer or consult is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The contact is not in conversation with her (waiting, ended, another's, or unknown).
    NotHeld,
    /// Neither or both of colleague and helpline (cold), or no colleague (warm).
    BadTarget,
    /// She named herself.
    ToSelf,
    /// A warm transfer of this contact is already waiting for an answer.
    AlreadyPending,
    /// No warm transfer of this contact is waiting for an answer.
    NotPending,
    /// The warm transfer waits for someone else's answer (or, to cancel, is someone else's).
    NotYours,
}

impl Refusal {
    /// The stable error code and the message for people.
    pub fn code(self) -> (ErrorCode, &'static str) {
        match self {
            Refusal::NotHeld => (ErrorCode::UnknownContact, "no conversation of yours with that contact"),
            Refusal::BadTarget => {
                (ErrorCode::BadField, "name a colleague (counsellor_id) or a helpline; a warm transfer names the colleague you brief")
            }
            Refusal::ToSelf => (ErrorCode::BadField, "that is you"),
            Refusal::AlreadyPending => (ErrorCode::Conflict, "a warm transfer of this contact is already waiting for an answer"),
            Refusal::NotPending => (ErrorCode::NotAllowed, "no warm transfer of this contact is waiting for an answer"),
            Refusal::NotYours => (ErrorCode::NotAllowed, "that transfer is not yours to answer"),
        }
    }
}

/// Checks a counsellor's `transfer` of a contact: she (`me`) must hold it (`holder`: who is in
/// conversation with it, None when it is not in conversation), no warm transfer of it may be
/// pending, and the target must be clear: cold names exactly one of a colleague and a helpline; warm
/// names the colleague she briefs, and may name a helpline whose queue it goes to.
pub fn plan(
    me: &str,
    holder: Option<&str>,
    pending: bool,
    colleague: Option<&str>,
    helpline: Option<&str>,
    warm: bool,
) -> Result<Plan, Refusal> {
    if holder != Some(me) {
        return Err(Refusal::NotHeld);
    }
    if colleague == Some(me) {
        return Err(Refusal::ToSelf);
    }
    if pending {
        return Err(Refusal::AlreadyPending);
    }
    match (colleague, helpline, warm) {
        (Some(c), None, false) => Ok(Plan { destination: Destination::Colleague(c.into()), briefed: None }),
        (None, Some(h), false) => Ok(Plan { destination: Destination::Queue(h.into()), briefed: None }),
        (Some(c), None, true) => Ok(Plan { destination: Destination::Colleague(c.into()), briefed: Some(c.into()) }),
        (Some(c), Some(h), true) => Ok(Plan { destination: Destination::Queue(h.into()), briefed: Some(c.into()) }),
        _ => Err(Refusal::BadTarget),
    }
}

/// The state of a handover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Warm, waiting for the briefed colleague.
    Pending,
    /// Carried out (or, an instant before, on its way to the router).
    Done,
    Declined,
    Cancelled,
    /// The router refused it (the contact ended, the colleague went offline or is full): nothing moved.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Done => "done",
            State::Declined => "declined",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Pending, State::Done, State::Declined, State::Cancelled, State::Failed].into_iter().find(|x| x.as_str() == s)
    }
}

/// An answer to a warm transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
    Cancel,
}

/// A warm transfer's next state when `by` answers: only a pending one moves; the briefed colleague
/// (`to`) accepts or declines, the one who asked (`from`) cancels.
pub fn answer(state: State, from: &str, to: &str, by: &str, answer: Answer) -> Result<State, Refusal> {
    if state != State::Pending {
        return Err(Refusal::NotPending);
    }
    match answer {
        Answer::Accept if by == to => Ok(State::Done),
        Answer::Decline if by == to => Ok(State::Declined),
        Answer::Cancel if by == from => Ok(State::Cancelled),
        _ => Err(Refusal::NotYours),
    }
}

/// Whether `me` may write a consult to `to` about a contact held by `holder`: the holder writes to
/// any colleague; a colleague writes only back to the holder, and only once the holder consulted her
/// about it (`asked`: the colleagues the holder wrote to or briefed about it).
pub fn may_consult(me: &str, to: &str, holder: Option<&str>, asked: &[&str]) -> Result<(), Refusal> {
    if me == to {
        return Err(Refusal::ToSelf);
    }
    match holder {
        Some(h) if h == me => Ok(()),
        Some(h) if h == to && asked.contains(&me) => Ok(()),
        _ => Err(Refusal::NotHeld),
    }
}

/// Whether a colleague (as the router sees her) could take a contact of `helpline` in `language`
/// now: connected, available, not removed, with a free slot (a slot in wrap-up counts as taken), and
/// serving the helpline (first-line or backup) in that language. The router checks the same (and
/// seniority) when the transfer is carried out; this only fills the console's picker.
pub fn could_take(c: &CounsellorView, helpline: &str, language: &str) -> bool {
    let busy = c.active.len() + c.wrapping_up.len();
    c.connected
        && !c.removed
        && c.status == Status::Available
        && busy < c.capacity as usize
        && (c.helplines.contains(helpline) || c.backup_helplines.contains(helpline))
        && c.languages.contains(language)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{ContactId, CounsellorId};

    fn view() -> CounsellorView {
        CounsellorView {
            id: CounsellorId(7),
            status: Status::Available,
            status_since: 0,
            connected: true,
            removed: false,
            capacity: 2,
            active: vec![ContactId(1)],
            ringing: None,
            idle_since: 0,
            consecutive_misses: 0,
            helplines: ["children".to_string()].into(),
            backup_helplines: ["disability".to_string()].into(),
            languages: ["ro".to_string(), "ru".to_string()].into(),
            wrapping_up: Vec::new(),
            away_reason: None,
        }
    }

    #[test]
    fn a_colleague_could_take_a_contact_of_her_helplines_and_languages_with_a_free_slot() {
        let c = view();
        assert!(could_take(&c, "children", "ro"));
        assert!(could_take(&c, "disability", "ru"), "backup helplines count");
        assert!(!could_take(&c, "family_violence", "ro"));
        assert!(!could_take(&c, "children", "uk"));
        assert!(!could_take(&CounsellorView { connected: false, ..view() }, "children", "ro"));
        assert!(!could_take(&CounsellorView { removed: true, ..view() }, "children", "ro"));
        assert!(!could_take(&CounsellorView { status: Status::Away, ..view() }, "children", "ro"));
        assert!(could_take(&CounsellorView { ringing: Some(ContactId(2)), ..view() }, "children", "ro"), "a ringing offer takes no slot");
        assert!(!could_take(&CounsellorView { active: vec![ContactId(1), ContactId(2)], ..view() }, "children", "ro"));
        assert!(!could_take(&CounsellorView { wrapping_up: vec![(ContactId(3), 9)], ..view() }, "children", "ro"));
    }
    use proptest::prelude::*;

    #[test]
    fn a_transfer_names_one_target_of_a_contact_she_holds() {
        let ok = |c, h, warm| plan("ana", Some("ana"), false, c, h, warm);
        assert_eq!(ok(Some("ion"), None, false).unwrap(), Plan { destination: Destination::Colleague("ion".into()), briefed: None });
        assert_eq!(ok(None, Some("fv"), false).unwrap().destination, Destination::Queue("fv".into()));
        let warm = ok(Some("ion"), Some("fv"), true).unwrap();
        assert_eq!((warm.destination, warm.briefed.as_deref()), (Destination::Queue("fv".into()), Some("ion")));
        assert!(ok(Some("ion"), None, true).unwrap().warm());
        assert_eq!(ok(None, None, false), Err(Refusal::BadTarget));
        assert_eq!(ok(Some("ion"), Some("fv"), false), Err(Refusal::BadTarget));
        assert_eq!(ok(None, Some("fv"), true), Err(Refusal::BadTarget));
        assert_eq!(ok(Some("ana"), None, false), Err(Refusal::ToSelf));
        assert_eq!(plan("ana", Some("ion"), false, Some("dan"), None, false), Err(Refusal::NotHeld));
        assert_eq!(plan("ana", None, false, Some("dan"), None, false), Err(Refusal::NotHeld));
        assert_eq!(plan("ana", Some("ana"), true, Some("dan"), None, false), Err(Refusal::AlreadyPending));
    }

    #[test]
    fn a_warm_transfer_is_answered_once_by_the_right_person() {
        let p = State::Pending;
        assert_eq!(answer(p, "ana", "ion", "ion", Answer::Accept), Ok(State::Done));
        assert_eq!(answer(p, "ana", "ion", "ion", Answer::Decline), Ok(State::Declined));
        assert_eq!(answer(p, "ana", "ion", "ana", Answer::Cancel), Ok(State::Cancelled));
        assert_eq!(answer(p, "ana", "ion", "ana", Answer::Accept), Err(Refusal::NotYours));
        assert_eq!(answer(p, "ana", "ion", "ion", Answer::Cancel), Err(Refusal::NotYours));
        assert_eq!(answer(p, "ana", "ion", "dan", Answer::Decline), Err(Refusal::NotYours));
        assert_eq!(answer(State::Done, "ana", "ion", "ion", Answer::Accept), Err(Refusal::NotPending));
        for s in [State::Pending, State::Done, State::Declined, State::Cancelled, State::Failed] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_colleague_answers_only_the_holder_who_asked_her() {
        assert_eq!(may_consult("ana", "ion", Some("ana"), &[]), Ok(()));
        assert_eq!(may_consult("ion", "ana", Some("ana"), &["ion"]), Ok(()));
        assert_eq!(may_consult("ion", "ana", Some("ana"), &[]), Err(Refusal::NotHeld));
        assert_eq!(may_consult("ion", "dan", Some("ana"), &["ion"]), Err(Refusal::NotHeld));
        assert_eq!(may_consult("ana", "ion", None, &["ion"]), Err(Refusal::NotHeld));
        assert_eq!(may_consult("ana", "ana", Some("ana"), &[]), Err(Refusal::ToSelf));
    }

    proptest! {
        /// Whatever answers come in whatever order, a warm transfer leaves `pending` at most once,
        /// and it is done only when the briefed colleague accepted first.
        #[test]
        fn answers_settle_a_warm_transfer_once(answers in proptest::collection::vec((0usize..3, 0usize..3), 0..12)) {
            let people = ["ana", "ion", "dan"];
            let kinds = [Answer::Accept, Answer::Decline, Answer::Cancel];
            let mut state = State::Pending;
            let mut moves = 0;
            let mut first = None;
            for (who, kind) in answers {
                if let Ok(next) = answer(state, "ana", "ion", people[who], kinds[kind]) {
                    moves += 1;
                    first.get_or_insert((people[who], kinds[kind]));
                    state = next;
                }
            }
            prop_assert!(moves <= 1);
            prop_assert_eq!(state == State::Done, first == Some(("ion", Answer::Accept)));
        }

        /// Only the holder starts a consult; anyone else writes only back to the holder who asked her.
        #[test]
        fn consults_go_through_the_holder(me in 0usize..4, to in 0usize..4, holder in 0usize..5, asked in proptest::collection::vec(0usize..4, 0..3)) {
            let people = ["ana", "ion", "dan", "eva"];
            let holder = people.get(holder).copied();
            let asked: Vec<&str> = asked.into_iter().map(|i| people[i]).collect();
            if may_consult(people[me], people[to], holder, &asked).is_ok() {
                prop_assert!(me != to);
                prop_assert!(holder == Some(people[me]) || (holder == Some(people[to]) && asked.contains(&people[me])));
            }
        }
    }
}

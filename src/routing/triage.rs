//! Triage before the queue: a helpline may ask a waiting caller one question ("Are you in danger
//! right now?") before a counsellor answers.
//!
//! A helpline asks it when `HelplineConfig::triage_priority` is set (default
//! [`PRIORITY_DANGER`] where configured). The answer comes from the widget (the caller's `triage`
//! frame) or from the exchange's IVR digit (the call event's `triage_digit`); either becomes
//! [`super::Input::Triage`]. A yes raises the contact's priority to at least the helpline's
//! triage priority at once (a waiting contact moves up its queue; one in conversation keeps its
//! counsellor and takes the priority back to a queue if transferred), and the engine says so
//! ([`Output::Triaged`]), so the server alerts the helpline's supervisors. A no is recorded and
//! changes nothing. Only the first answer counts; later ones, and answers to a helpline that does
//! not ask, are ignored (the engine says nothing).

use super::{ContactId, Engine, Output};

/// The priority a triage yes gives by default: above a transfer (50), below a supervisor's move
/// to the front (100).
pub const PRIORITY_DANGER: i32 = 90;

/// The highest priority a triage yes may give: a supervisor's move to the front ([`super::PRIORITY_FRONT`]).
pub const MAX_TRIAGE_PRIORITY: i32 = super::PRIORITY_FRONT;

/// Checks a helpline's triage priority: a yes must raise a contact (1) and never above a
/// supervisor's move to the front ([`MAX_TRIAGE_PRIORITY`]).
pub fn check_priority(priority: i64) -> Result<i32, String> {
    i32::try_from(priority)
        .ok()
        .filter(|p| (1..=MAX_TRIAGE_PRIORITY).contains(p))
        .ok_or_else(|| format!("triage_priority: from 1 to {MAX_TRIAGE_PRIORITY} (or null: not asked), got {priority}"))
}

/// What the telephone exchange's IVR digit means: `1` yes (in danger), `2` no, anything else no answer.
#[must_use]
pub fn danger_from_digit(digit: &str) -> Option<bool> {
    match digit.trim() {
        "1" => Some(true),
        "2" => Some(false),
        _ => None,
    }
}

/// The priority after an answer: a yes raises it to at least `triage` (never lowers it).
#[must_use]
pub fn priority_after(priority: i32, danger: bool, triage: i32) -> i32 {
    if danger {
        priority.max(triage)
    } else {
        priority
    }
}

impl Engine {
    /// [`super::Input::Triage`]: the answer of a known contact of a helpline that asks.
    pub(super) fn triage(&mut self, contact: ContactId, danger: bool, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.get(&contact).filter(|x| !x.triaged) else {
            return;
        };
        let Some(triage) = self.helplines.get(&x.info.helpline).and_then(|h| h.triage_priority) else {
            return;
        };
        let priority = priority_after(x.info.priority, danger, triage);
        let helpline = x.info.helpline.clone();
        self.xmut(contact, |x| {
            x.info.priority = priority;
            x.triaged = true;
        });
        out.push(Output::Triaged { contact, helpline, danger, priority });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yes_raises_the_priority_and_a_no_keeps_it() {
        assert_eq!(priority_after(0, true, PRIORITY_DANGER), PRIORITY_DANGER);
        assert_eq!(priority_after(100, true, PRIORITY_DANGER), 100, "never lowered");
        assert_eq!(priority_after(3, false, PRIORITY_DANGER), 3);
        assert_eq!(danger_from_digit("1"), Some(true));
        assert_eq!(danger_from_digit(" 2"), Some(false));
        assert_eq!(danger_from_digit("9"), None);
        assert_eq!(danger_from_digit(""), None);
        assert_eq!(check_priority(90), Ok(90));
        assert_eq!(check_priority(100), Ok(100));
        assert!(check_priority(0).is_err());
        assert!(check_priority(101).is_err());
        assert!(check_priority(i64::MAX).is_err());
    }
}

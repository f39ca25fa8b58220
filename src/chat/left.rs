//! Closed, or nobody on shift: what the caller is offered instead of waiting, and the contacts a
//! caller leaves for later (a message, a callback request).
//!
//! Right after `queued`, the engine task asks the routing rule ([`crate::routing::shift`]) whether
//! anyone will answer soon; if not, the caller hears `unavailable` with her [`options`]: wait (she
//! stays queued), leave a message, ask for a callback, or call another line (112, the other
//! helplines). A message or a callback request ([`Left`], a channel of its own) is the same contact,
//! taken out of the queue and queued again when the line opens ([`routed_at`]), with its answer
//! clock starting then; the counsellor who answers it finds the message in its history (and the
//! number to call back through `GET /api/v1/contacts/{id}/callback`). Its caller has no socket any
//! more: what the counsellor writes is kept with the contact.
//!
//! The rules here are plain functions without I/O.

use crate::chat::channel::{ContactChannel, ToCaller};
use crate::chat::hub::Outbox;
use crate::protocol::{rfc3339, CallerOption, ServerEvent};
use crate::routing::hours::{next_open, Schedule};
use crate::routing::shift::Unavailable;
use crate::routing::Millis;

/// The emergency number every `unavailable` frame names first.
pub const EMERGENCY_NUMBER: &str = "112";

/// A contact the caller left for later: a message (`message`) or a callback request (`callback`).
/// Its caller is not on a socket any more; it is always "present" (it never runs out of grace).
#[derive(Debug, Clone, Copy)]
pub struct Left {
    kind: &'static str,
}

impl Left {
    pub const MESSAGE: Left = Left { kind: "message" };
    pub const CALLBACK: Left = Left { kind: "callback" };

    /// The kind for a caller's choice (`leave_message` → `message`).
    pub const fn of(callback: bool) -> Left {
        if callback {
            Left::CALLBACK
        } else {
            Left::MESSAGE
        }
    }

    pub const fn kind_str(self) -> &'static str {
        self.kind
    }
}

impl ContactChannel for Left {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn rules(&self) -> crate::routing::Channel {
        crate::routing::Channel::Chat
    }
    fn present_after_restart(&self) -> bool {
        true
    }
    fn deliver(&self, _frame: ToCaller<'_>, _sockets: &[Outbox]) {
        // The caller left: nobody to tell. What the counsellor writes is stored with the contact.
    }
    fn present(&self, _contact: &str, _sockets: usize) -> bool {
        true
    }
}

/// Another line a caller may call instead: another helpline (with the number that reaches it, when
/// the dialled-number map has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherLine {
    pub helpline: String,
    pub name: String,
    pub number: Option<String>,
}

/// The choices of a caller of `helpline` told `unavailable`: wait, leave a message, ask for a
/// callback, call 112, call one of the other helplines.
pub fn options(helpline: &str, others: &[OtherLine]) -> Vec<CallerOption> {
    let mut out: Vec<CallerOption> = ["wait", "leave_message", "callback"].into_iter().map(CallerOption::plain).collect();
    out.push(CallerOption {
        option: "other_line".into(),
        helpline: None,
        name: Some("Emergency".into()),
        number: Some(EMERGENCY_NUMBER.into()),
    });
    out.extend(others.iter().filter(|o| o.helpline != helpline).map(|o| CallerOption {
        option: "other_line".into(),
        helpline: Some(o.helpline.clone()),
        name: Some(o.name.clone()),
        number: o.number.clone(),
    }));
    out
}

/// The `unavailable` frame for contact `contact_id` (`opens_at` for a closed line).
pub fn unavailable_frame(contact_id: String, why: Unavailable, now: Millis, hours: &Schedule, options: Vec<CallerOption>) -> ServerEvent {
    let opens_at = match why {
        Unavailable::Closed => next_open(now, hours).map(rfc3339),
        Unavailable::NobodyOnShift => None,
    };
    ServerEvent::Unavailable { contact_id, reason: why.as_str().into(), opens_at, options }
}

/// When a message or callback left at `now` is routed: at once while the line is open (it waits
/// for whoever comes on shift), else when it next opens.
pub fn routed_at(now: Millis, hours: &Schedule) -> Millis {
    next_open(now, hours).unwrap_or(now).max(now)
}

/// Longest note or message a caller may leave (characters), as for a chat message.
pub const MAX_LEFT_CHARS: usize = crate::protocol::MAX_TEXT_CHARS;

/// A callback number as typed: digits with an optional leading `+`; spaces, dots, dashes and
/// brackets are dropped. 6 to 15 digits (E.164). The number kept is the cleaned one.
pub fn check_phone(typed: &str) -> Result<String, &'static str> {
    let t = typed.trim();
    let (plus, rest) = match t.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", t),
    };
    let mut digits = String::with_capacity(rest.len());
    for ch in rest.chars() {
        match ch {
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err("a phone number has digits only (and a leading +)"),
        }
    }
    if !(6..=15).contains(&digits.len()) {
        return Err("a phone number has 6 to 15 digits");
    }
    Ok(format!("{plus}{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::hours::{Hours, Span};

    #[test]
    fn phone_numbers_are_cleaned_or_refused() {
        assert_eq!(check_phone(" +373 (60) 123-456 ").as_deref(), Ok("+37360123456"));
        assert_eq!(check_phone("060123456").as_deref(), Ok("060123456"));
        assert!(check_phone("12345").is_err());
        assert!(check_phone("+3736012345678901").is_err());
        assert!(check_phone("call me").is_err());
        assert!(check_phone("++37360123456").is_err());
        assert!(check_phone("").is_err());
    }

    #[test]
    fn options_name_112_and_the_other_helplines_only() {
        let others = vec![
            OtherLine { helpline: "children".into(), name: "Children".into(), number: Some("116111".into()) },
            OtherLine { helpline: "disability".into(), name: "Disability".into(), number: None },
        ];
        let o = options("children", &others);
        let kinds: Vec<&str> = o.iter().map(|c| c.option.as_str()).collect();
        assert_eq!(kinds, ["wait", "leave_message", "callback", "other_line", "other_line"]);
        assert_eq!(o[3].number.as_deref(), Some("112"));
        assert_eq!(o[4].helpline.as_deref(), Some("disability"));
    }

    #[test]
    fn a_message_left_while_closed_is_routed_when_the_line_opens() {
        let weekly = vec![Span { day: "tue".into(), open: "08:00".into(), close: "20:00".into() }];
        let s = Hours { time_zone: "UTC".into(), weekly, holidays: vec![] }.schedule().unwrap();
        let night: Millis = "2026-12-08T03:00:00Z".parse::<jiff::Timestamp>().unwrap().as_millisecond();
        let opens: Millis = "2026-12-08T08:00:00Z".parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert_eq!(routed_at(night, &s), opens);
        assert_eq!(routed_at(opens + 5, &s), opens + 5, "open (nobody on shift): at once");
        let frame = unavailable_frame("c".into(), Unavailable::Closed, night, &s, vec![]);
        assert!(matches!(frame, ServerEvent::Unavailable { opens_at: Some(ref t), .. } if t.starts_with("2026-12-08T08:00:00")));
        let frame = unavailable_frame("c".into(), Unavailable::NobodyOnShift, opens, &s, vec![]);
        assert!(matches!(frame, ServerEvent::Unavailable { opens_at: None, ref reason, .. } if reason == "nobody_on_shift"));
    }
}

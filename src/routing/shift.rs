//! Closed, or nobody on shift: whether a caller who has just started a contact is told at once that
//! no one will answer soon, and why. A pure rule over the engine's state, the helpline's hours and
//! the time passed in; the engine task asks it right after queueing a new contact.

use serde::{Deserialize, Serialize};

use super::hours::{is_open, Schedule};
use super::types::{ContactId, Millis, NewContact, Status};
use super::Engine;

/// Why a new contact will not be answered soon (the `unavailable` frame's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// Outside the helpline's opening hours (or on one of its holidays).
    Closed,
    /// Open, but no counsellor who could take it is on shift.
    NobodyOnShift,
}

impl Unavailable {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unavailable::Closed => "closed",
            Unavailable::NobodyOnShift => "nobody_on_shift",
        }
    }
}

/// The rule: closed hours first; open with nobody on shift second; otherwise nothing to say.
pub const fn unavailable(open: bool, on_shift: bool) -> Option<Unavailable> {
    match (open, on_shift) {
        (false, _) => Some(Unavailable::Closed),
        (true, false) => Some(Unavailable::NobodyOnShift),
        (true, true) => None,
    }
}

impl Engine {
    /// Whether a counsellor who could take waiting `contact` is on shift: not removed, connected,
    /// available, serving its helpline (first line or as a backup), speaking its language, able to
    /// take its channel (a call needs an extension) and senior if it must be. A counsellor busy
    /// with other contacts or ringing counts: she is on shift and will be free. A contact pinned to
    /// a counsellor counts that counsellor only. False for a contact that is not waiting.
    pub fn on_shift_for(&self, contact: ContactId) -> bool {
        let Some(x) = self.contacts.get(&contact) else { return false };
        let Some(w) = x.waiting() else { return false };
        self.counsellors.values().any(|c| {
            let p = &c.profile;
            !c.removed
                && c.connected
                && c.status == Status::Available
                && w.pinned.is_none_or(|pinned| pinned == p.id)
                && (p.helplines.contains(&x.info.helpline) || p.backup_helplines.contains(&x.info.helpline))
                && p.languages.contains(&x.info.language)
                && (!x.info.channel.needs_line() || p.takes_calls)
                && (!x.info.senior_only || p.senior)
        })
    }

    /// A waiting contact as it was queued (its priority as it is now); None if it is not waiting.
    pub fn waiting_contact(&self, contact: ContactId) -> Option<NewContact> {
        let x = self.contacts.get(&contact)?;
        x.waiting()?;
        Some(x.info.clone())
    }

    /// What a caller who just started waiting `contact` is told at `now`, under her helpline's
    /// `hours` (see [`unavailable`]); None while the contact is not waiting (it was answered, or ended).
    pub fn unavailable(&self, now: Millis, contact: ContactId, hours: &Schedule) -> Option<Unavailable> {
        self.contacts.get(&contact)?.waiting()?;
        unavailable(is_open(now, hours), self.on_shift_for(contact))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routing::hours::{Hours, Span};
    use crate::routing::{
        Channel, ContactId as X, CounsellorId as C, CounsellorProfile, EngineConfig, HelplineConfig, Input, NewContact, Output,
    };

    const T0: Millis = 1_796_000_000_000;

    fn engine() -> Engine {
        Engine::new(EngineConfig { helplines: vec![HelplineConfig::with_defaults("children")], misses_before_away: 2 })
    }

    fn counsellor(e: &mut Engine, now: Millis, id: u128, language: &str, status: Status) -> Vec<Output> {
        let profile = CounsellorProfile {
            id: C(id),
            helplines: BTreeSet::from(["children".to_string()]),
            backup_helplines: BTreeSet::new(),
            languages: BTreeSet::from([language.to_string()]),
            capacity: 3,
            takes_calls: false,
            senior: false,
        };
        e.handle(now, Input::UpsertCounsellor(profile));
        e.handle(now, Input::CounsellorConnected { counsellor: C(id) });
        e.handle(now, Input::SetStatus { counsellor: C(id), status })
    }

    fn chat(e: &mut Engine, now: Millis, id: u128) {
        let contact = NewContact {
            id: X(id),
            channel: Channel::Chat,
            helpline: "children".into(),
            language: "ro".into(),
            priority: 0,
            queued_at: now,
            caller_connected: true,
            senior_only: false,
        };
        e.handle(now, Input::ContactQueued(contact));
    }

    fn office() -> Schedule {
        let weekly = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| Span { day: (*d).into(), open: "08:00".into(), close: "20:00".into() })
            .collect();
        Hours { time_zone: "Europe/Chisinau".into(), weekly, holidays: vec!["2026-12-25".into()] }.schedule().unwrap()
    }

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn the_rule() {
        assert_eq!(unavailable(false, true), Some(Unavailable::Closed));
        assert_eq!(unavailable(false, false), Some(Unavailable::Closed));
        assert_eq!(unavailable(true, false), Some(Unavailable::NobodyOnShift));
        assert_eq!(unavailable(true, true), None);
    }

    #[test]
    fn nobody_on_shift_until_an_eligible_counsellor_is_available_and_connected() {
        let mut e = engine();
        let always = Schedule::always_open();
        chat(&mut e, T0, 1);
        assert_eq!(e.unavailable(T0, X(1), &always), Some(Unavailable::NobodyOnShift));
        // One speaks another language; one is away: nobody on shift for her.
        counsellor(&mut e, T0, 7, "ru", Status::Available);
        counsellor(&mut e, T0, 8, "ro", Status::Away);
        assert_eq!(e.unavailable(T0, X(1), &always), Some(Unavailable::NobodyOnShift));
        // Available: she is offered at once, and someone is on shift.
        let out = e.handle(T0 + 1, Input::SetStatus { counsellor: C(8), status: Status::Available });
        assert!(out.iter().any(|o| matches!(o, Output::Offer { .. })));
        assert_eq!(e.unavailable(T0 + 1, X(1), &always), None);
        // A second caller while the only counsellor is ringing: she is on shift, so no `unavailable`.
        chat(&mut e, T0 + 2, 2);
        assert_eq!(e.unavailable(T0 + 2, X(2), &always), None);
        // Her socket closed: nobody again.
        e.handle(T0 + 3, Input::CounsellorDisconnected { counsellor: C(8) });
        assert_eq!(e.unavailable(T0 + 3, X(2), &always), Some(Unavailable::NobodyOnShift));
    }

    #[test]
    fn closed_outside_hours_and_on_a_holiday_even_with_someone_on_shift() {
        let mut e = engine();
        let (night, day, holiday) = (at("2026-12-08T01:00:00Z"), at("2026-12-08T10:00:00Z"), at("2026-12-25T10:00:00Z"));
        counsellor(&mut e, night, 8, "ro", Status::Available);
        // Contact 1 rings for her; contact 2 waits behind it, with her on shift.
        chat(&mut e, night, 1);
        chat(&mut e, night, 2);
        assert!(e.on_shift_for(X(2)));
        assert_eq!(e.unavailable(night, X(2), &office()), Some(Unavailable::Closed));
        assert_eq!(e.unavailable(day, X(2), &office()), None);
        assert_eq!(e.unavailable(holiday, X(2), &office()), Some(Unavailable::Closed));
        assert_eq!(e.unavailable(day, X(99), &office()), None, "unknown contact: nothing to say");
    }
}

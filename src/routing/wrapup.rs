//! Wrap-up: the after-contact work of a conversation.
//!
//! When a contact in conversation ends (whoever ended it), its counsellor's slot does not take a
//! new offer at once: it stays in wrap-up until she says she is ready ([`Input::Ready`]: the
//! console's `ready` frame, or the contact form submitted), or until the helpline's
//! `wrapup_limit_ms` passes (default [`DEFAULT_WRAPUP_LIMIT_MS`]; 0 turns wrap-up off). A slot in
//! wrap-up counts against her capacity exactly like a conversation (`Counsellor::has_room`), so
//! no offer fills it. The engine says when a wrap-up starts ([`Output::WrapUp`]) and ends
//! ([`Output::WrapUpEnded`]); handle time in reports runs to the wrap-up's end.
//!
//! Wrap-ups are counsellor state: each is indexed as a timer `(until, counsellor, contact)` in
//! `Index::wrapups`, derived from the counsellor like the free lists are.

#[cfg(doc)]
use super::Input;
use super::{ContactId, CounsellorId, Engine, Millis, Output, WrapUpEnd};

/// The wrap-up limit of a helpline that does not set one: 60 s.
pub const DEFAULT_WRAPUP_LIMIT_MS: Millis = 60_000;

/// The longest wrap-up limit a helpline may set: an hour.
pub const MAX_WRAPUP_LIMIT_MS: Millis = 3_600_000;

/// Checks a helpline's wrap-up limit: 0 (no wrap-up) to [`MAX_WRAPUP_LIMIT_MS`].
pub fn check_limit(limit_ms: Millis) -> Result<Millis, String> {
    if (0..=MAX_WRAPUP_LIMIT_MS).contains(&limit_ms) {
        Ok(limit_ms)
    } else {
        Err(format!("wrapup_limit_ms: from 0 (no wrap-up) to {MAX_WRAPUP_LIMIT_MS} (an hour), got {limit_ms}"))
    }
}

impl Engine {
    /// After `contact` ended in conversation with `counsellor`: its slot goes into wrap-up for at
    /// most its helpline's limit (none with a limit of 0).
    pub(super) fn start_wrapup(
        &mut self,
        now: Millis,
        counsellor: CounsellorId,
        contact: ContactId,
        helpline: &str,
        out: &mut Vec<Output>,
    ) {
        let limit = self.timings(helpline).wrapup;
        if limit <= 0 {
            return;
        }
        let until = now.saturating_add(limit);
        if self.cmut(counsellor, |c| c.wrapups.insert(contact, until)).is_some() {
            out.push(Output::WrapUp { counsellor, contact, until });
        }
    }

    /// [`Input::Ready`]: the slot of `contact` leaves wrap-up (nothing if it is not in wrap-up).
    pub(super) fn ready(&mut self, counsellor: CounsellorId, contact: ContactId, out: &mut Vec<Output>) {
        if self.cmut(counsellor, |c| c.wrapups.remove(&contact)).flatten().is_some() {
            out.push(Output::WrapUpEnded { counsellor, contact, reason: WrapUpEnd::Ready });
        }
    }

    /// End every wrap-up whose limit passed at or before `now`, earliest first.
    pub(super) fn end_due_wrapups(&mut self, now: Millis, out: &mut Vec<Output>) {
        let last = (now, CounsellorId(u128::MAX), ContactId(u128::MAX));
        let due: Vec<(Millis, CounsellorId, ContactId)> = self.ix.wrapups.range(..=last).copied().collect();
        for (_, counsellor, contact) in due {
            self.cmut(counsellor, |c| c.wrapups.remove(&contact));
            out.push(Output::WrapUpEnded { counsellor, contact, reason: WrapUpEnd::Limit });
        }
    }

    /// When the next wrap-up ends by its limit.
    pub(super) fn next_wrapup_end(&self) -> Option<Millis> {
        self.ix.wrapups.first().map(|&(at, _, _)| at)
    }
}

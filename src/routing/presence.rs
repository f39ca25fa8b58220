//! Offline callers wait without ringing.
//!
//! A waiting caller whose connection dropped (a web chat's socket gone) keeps her place in the
//! queue and her answer clock, but rings nobody until she is back within the grace period: an
//! offer ringing when she drops is taken back at once ([`RevokeReason::CallerAway`], not a miss
//! for the counsellor), and she is not offered again until [`super::Input::CallerConnected`].
//! Whether a caller is connected is the channel's rule (`chat::channel::ContactChannel::present`:
//! a web chat's socket, a phone caller on the line); the engine only hears the changes. A
//! helpline may still ring offline callers (`HelplineConfig::ring_offline_callers`); the offer
//! then says the caller is offline (`Output::Offer::caller_online`), and an offer of an offline
//! caller that rings out is not counted as the counsellor's miss either, so gone callers never
//! set a counsellor away.

use super::{Contact, ContactId, Engine, Output, RevokeReason};

impl Engine {
    /// Whether waiting contact `x` may ring anyone now, by its caller's presence.
    pub(super) fn may_ring(&self, x: &Contact) -> bool {
        x.info.caller_connected || !self.timings(&x.info.helpline).hold_offline
    }

    /// The caller of `contact` dropped: a ringing offer of it is taken back if she may not ring.
    pub(super) fn caller_gone(&mut self, contact: ContactId, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.get(&contact) else {
            return;
        };
        if self.may_ring(x) {
            return;
        }
        if let Some(r) = x.waiting().and_then(|w| w.offer) {
            self.revoke_ring(r.counsellor, RevokeReason::CallerAway, out);
        }
    }
}

//! The engine task's part in hours, messages and callbacks, and the estimated wait: what it keeps
//! (each helpline's hours, the other lines a caller may call, recent answer times, the messages and
//! callbacks waiting for the line to open) and the steps it takes with them. The rules are pure
//! (`routing::hours`, `routing::shift`, `routing::estimate`, `chat::left`); this is their I/O.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;

use super::{contact_str, translate, After, Batch, EngineTask};
use crate::chat::channel::Channels;
use crate::chat::left::{self, Left, OtherLine};
use crate::routing::estimate::AnswerTimes;
use crate::routing::hours::{Hours, Schedule};
use crate::routing::{ContactId, Input, Millis, NewContact, Output};
use crate::store::contacts::{Change, ContactRecord};
use crate::store::helplines::Helpline;
use crate::store::{Store, StoreResult};

/// Whether a stored open contact is a message or callback waiting for the line to open (routed later).
pub(super) fn deferred(c: &ContactRecord, now: Millis) -> bool {
    c.state == "queued" && c.queued_at > now && (c.channel == Left::MESSAGE.kind_str() || c.channel == Left::CALLBACK.kind_str())
}

/// The earlier of two optional deadlines.
pub(super) fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the engine task keeps for hours, messages, callbacks and estimates.
#[derive(Debug, Default)]
pub(super) struct Later {
    /// Helplines with hours set; the others are open 24/7.
    hours: HashMap<String, Schedule>,
    /// Every helpline, with the number that reaches it (for `unavailable`'s other lines).
    others: Vec<OtherLine>,
    answers: AnswerTimes,
    /// Messages and callbacks not yet routed, by when they are (their answer clock starts then).
    waiting: BTreeMap<(Millis, ContactId), NewContact>,
}

impl Later {
    /// Reads the hours and the dialled-number map, and takes the stored messages and callbacks whose
    /// time has not come (the others are restored into the engine like any waiting contact).
    pub(super) async fn load(
        store: &Store,
        helplines: &[Helpline],
        open: &[ContactRecord],
        now: Millis,
        channels: &Channels,
    ) -> StoreResult<Later> {
        let mut later = Later::default();
        for (helpline, hours) in store.directory().all_hours().await? {
            later.set_hours(&helpline, &hours);
        }
        let numbers = store.directory().dialled_numbers().await?;
        later.others = helplines
            .iter()
            .map(|h| OtherLine {
                helpline: h.name.clone(),
                name: h.display_name.clone(),
                number: numbers
                    .iter()
                    .find(|(n, to)| to == &h.name && n != crate::store::helplines::DEFAULT_NUMBER)
                    .map(|(n, _)| n.clone()),
            })
            .collect();
        // The estimates' basis: the answers of the last hour, as stored (no restart without one).
        let answers = store.contacts().recent_answers(now - crate::routing::estimate::WINDOW_MS).await?;
        later.answers = AnswerTimes::seeded(now, answers);
        for c in open.iter().filter(|c| deferred(c, now)) {
            if let Some(Input::ContactQueued(contact)) = translate::restore(c, now, channels) {
                later.waiting.insert((contact.queued_at, contact.id), contact);
            }
        }
        Ok(later)
    }

    /// New hours for a helpline (already checked when stored; hours that no longer compile are
    /// taken as 24/7, with an error logged).
    pub(super) fn set_hours(&mut self, helpline: &str, hours: &Hours) {
        match hours.schedule() {
            Ok(s) => {
                self.hours.insert(helpline.to_string(), s);
            }
            Err(err) => {
                tracing::error!(helpline, error = %err, "stored opening hours do not compile; the line is taken as open 24/7");
                self.hours.remove(helpline);
            }
        }
    }

    fn schedule(&self, helpline: &str) -> &Schedule {
        match self.hours.get(helpline) {
            Some(s) => s,
            None => always_open(),
        }
    }

    /// A contact of `helpline` queued at `queued_at` was answered at `answered_at`.
    pub(super) fn answered(&mut self, helpline: &str, queued_at: Millis, answered_at: Millis) {
        self.answers.record(helpline, queued_at, answered_at);
    }

    /// When the next message or callback is due to be routed.
    pub(super) fn next_release(&self) -> Option<Millis> {
        self.waiting.keys().next().map(|(at, _)| *at)
    }
}

/// The hours of a helpline with none set: open every hour of every day.
fn always_open() -> &'static Schedule {
    static ALWAYS: std::sync::OnceLock<Schedule> = std::sync::OnceLock::new();
    ALWAYS.get_or_init(Schedule::always_open)
}

impl EngineTask {
    /// Queues the messages and callbacks whose time has come (the line opened), each with its answer
    /// clock starting at that time.
    pub(super) fn release_due(&mut self, batch: &mut Batch) {
        let now = self.clock.now_ms();
        while let Some(entry) = self.later.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let contact = entry.remove();
            let outputs = self.engine.handle(now, Input::ContactQueued(contact));
            batch.step(now, outputs, Vec::new(), Vec::new());
        }
    }

    /// The estimated wait of waiting `contact` at `position` (None without a basis).
    pub(super) fn estimate(&self, contact: ContactId, position: u32, now: Millis) -> Option<u32> {
        let helpline = self.engine.helpline_of(contact)?;
        self.later.answers.estimate_s(helpline, position, now)
    }

    /// Right after `queued`: if the line is closed or nobody is on shift for this contact, its caller
    /// hears `unavailable` with her options (the contact stays queued).
    pub(super) fn tell_if_unavailable(&self, contact: ContactId, now: Millis) {
        let Some(helpline) = self.engine.helpline_of(contact) else { return };
        let schedule = self.later.schedule(helpline);
        let Some(why) = self.engine.unavailable(now, contact, schedule) else { return };
        let options = left::options(helpline, &self.later.others);
        let id = contact_str(contact);
        let frame = left::unavailable_frame(id.clone(), why, now, schedule, options);
        self.hub.event_to_caller(&id, &frame);
    }

    /// The caller of waiting `contact` leaves a message or asks for a callback: it leaves the queue
    /// without ending (no abandonment is recorded, nothing is announced) and waits here until the
    /// line opens; it is stored as of its new channel with its new arrival time.
    pub(super) fn leave(&mut self, contact: ContactId, callback: bool, done: oneshot::Sender<Option<i64>>, batch: &mut Batch) {
        let now = self.clock.now_ms();
        let Some(mut info) = self.engine.waiting_contact(contact) else {
            let _ = done.send(None);
            return;
        };
        let at = left::routed_at(now, self.later.schedule(&info.helpline));
        let outputs: Vec<Output> = self
            .engine
            .handle(now, Input::EndByCaller { contact })
            .into_iter()
            .filter(|o| !matches!(o, Output::Ended { contact: c, .. } if *c == contact))
            .collect();
        self.offered.remove(&contact);
        let kind = Left::of(callback);
        self.hub.channels.bind(&contact_str(contact), kind.kind_str());
        info.queued_at = at;
        info.caller_connected = true;
        info.channel = crate::chat::channel::ContactChannel::rules(&kind);
        self.later.waiting.insert((at, contact), info);
        let change = Change::Deferred { contact: contact_str(contact), at: now, channel: kind.kind_str(), queued_at: at };
        batch.step(now, outputs, vec![change], Vec::new());
        batch.after.push(After::Left(done, at));
    }

    /// The callback numbers a batch's ends make needless: deleted in the same transaction.
    pub(super) fn callbacks_done(&self, batch: &Batch) -> Vec<Change> {
        batch
            .outputs()
            .filter_map(|(_, o)| match o {
                Output::Ended { contact, .. } => Some(contact_str(*contact)),
                _ => None,
            })
            .filter(|id| self.hub.channels.of(id).kind() == Left::CALLBACK.kind_str())
            .map(|contact| Change::ForgetCallback { contact })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earlier_deadline() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(5), None), Some(5));
        assert_eq!(earliest(None, Some(7)), Some(7));
        assert_eq!(earliest(Some(9), Some(7)), Some(7));
    }
}

//! The engine's indexes: derived entirely from the contacts' and counsellors' state, and kept
//! in step with it by [`super::Engine`], which removes an object's entries before changing it
//! and adds them back after (see `Engine::xmut` and `Engine::cmut`).
//!
//! Each entry is a pure function of one object's state (and the immutable configuration), so
//! removing "what the object would index now" before a change removes exactly what was added.

use std::collections::{BTreeMap, BTreeSet};

use super::{Channel, Contact, ContactId, Counsellor, CounsellorId, Helpline, Language, Millis, TimerKind, Timings};

/// Queue order: priority descending, then channel rank (calls first where the helpline says so),
/// then FIFO, then id.
pub(super) type QueueKey = (std::cmp::Reverse<i32>, u8, Millis, ContactId);
/// Free counsellors, best first: fewest active, longest idle, smallest id.
pub(super) type FreeKey = (usize, Millis, CounsellorId);
/// A waiting contact's place in its helpline's queue, with the position last reported for it
/// (0 = never reported, or not since it last (re)joined a queue).
pub(super) type QueueSlot = (Helpline, QueueKey, u32);

type ByHelplineLanguage<K> = BTreeMap<Helpline, BTreeMap<Language, BTreeSet<K>>>;
/// One map per kind of contact: `[chat, call, senior-only chat, senior-only call]` (see [`slot`]).
/// A senior counsellor is indexed under all four, others under the first two.
type PerChannel<T> = [T; 4];

/// The slot of a channel in a [`PerChannel`] array.
pub(super) fn ch(channel: Channel) -> usize {
    match channel {
        Channel::Chat => 0,
        Channel::Call => 1,
    }
}

/// The slot of a kind of contact (channel, and whether only seniors may take it) in a [`PerChannel`] array.
pub(super) fn slot(channel: Channel, senior_only: bool) -> usize {
    ch(channel) + if senior_only { 2 } else { 0 }
}

const CHANNELS: [Channel; 2] = [Channel::Chat, Channel::Call];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Index {
    /// Waiting contacts of each helpline in queue order, with the position last reported.
    /// After every `handle`, the stored position is the contact's current position.
    pub(super) queues: BTreeMap<Helpline, BTreeMap<QueueKey, u32>>,
    /// Helplines whose queue changed since positions were last reported, with the smallest key
    /// that joined or left (positions ahead of it are unchanged).
    pub(super) dirty: BTreeMap<Helpline, QueueKey>,
    /// Waiting contacts with no offer ringing and not pinned, by slot (channel, senior-only), helpline and language.
    pub(super) unoffered: PerChannel<ByHelplineLanguage<QueueKey>>,
    /// Waiting contacts with no offer ringing, pinned by a supervisor to a counsellor.
    pub(super) pinned: BTreeMap<CounsellorId, BTreeSet<QueueKey>>,
    /// Every pending timer: (due, kind, contact), in firing order.
    pub(super) timers: BTreeSet<(Millis, TimerKind, ContactId)>,
    /// Retry cooldowns of un-offered waiting contacts: (ready at, contact, counsellor who was tried).
    pub(super) cooldowns: BTreeSet<(Millis, ContactId, CounsellorId)>,
    /// Free counsellors (see `Counsellor::is_free`) who may ring with a contact of that slot
    /// (see `Counsellor::takes`; senior-only slots: seniors only), by slot, first-line helpline and language.
    pub(super) free_first: PerChannel<ByHelplineLanguage<FreeKey>>,
    /// Free counsellors by slot, backup helpline (not also first-line) and language.
    pub(super) free_backup: PerChannel<ByHelplineLanguage<FreeKey>>,
    /// Number of free counsellors.
    pub(super) free_count: usize,
    /// Slots in wrap-up, by when they end at the latest: (until, counsellor, ended contact).
    pub(super) wrapups: BTreeSet<(Millis, CounsellorId, ContactId)>,
    /// Configuration: helplines whose chats may go to a counsellor on a call.
    pub(super) chat_on_call: BTreeSet<Helpline>,
}

fn nested_insert<K: Ord>(m: &mut ByHelplineLanguage<K>, h: &str, l: &str, k: K) {
    let by_lang = match m.get_mut(h) {
        Some(by_lang) => by_lang,
        None => m.entry(h.to_owned()).or_default(),
    };
    match by_lang.get_mut(l) {
        Some(set) => {
            set.insert(k);
        }
        None => {
            by_lang.insert(l.to_owned(), BTreeSet::from([k]));
        }
    }
}

/// Remove `k`, dropping sets and maps that become empty (so a present set is never empty).
fn nested_remove<K: Ord>(m: &mut ByHelplineLanguage<K>, h: &str, l: &str, k: &K) {
    let Some(by_lang) = m.get_mut(h) else { return };
    let Some(set) = by_lang.get_mut(l) else {
        return;
    };
    set.remove(k);
    if set.is_empty() {
        by_lang.remove(l);
        if by_lang.is_empty() {
            m.remove(h);
        }
    }
}

pub(super) fn nested_get<'a, K>(m: &'a ByHelplineLanguage<K>, h: &str, l: &str) -> Option<&'a BTreeSet<K>> {
    m.get(h)?.get(l)
}

impl Index {
    fn mark_dirty(&mut self, h: &str, key: QueueKey) {
        match self.dirty.get_mut(h) {
            Some(k) => *k = (*k).min(key),
            None => {
                self.dirty.insert(h.to_owned(), key);
            }
        }
    }

    /// Add a contact's entries. `old` is its queue slot before the change (from
    /// [`Index::remove_contact`]): a contact staying at the same place keeps its reported position
    /// and does not make its helpline dirty; one that moved, joined or left does.
    pub(super) fn add_contact(&mut self, tm: Timings, x: &Contact, old: Option<QueueSlot>) {
        let id = x.info.id;
        if let Some(g) = x.grace_until {
            self.timers.insert((g, TimerKind::Grace, id));
        }
        let Some(w) = x.waiting() else {
            if let Some((h, k, _)) = old {
                self.mark_dirty(&h, k);
            }
            return;
        };
        let q = x.info.queued_at;
        if !w.backup_done {
            self.timers.insert((q.saturating_add(tm.backup_after), TimerKind::Backup, id));
        }
        if !w.at_risk_done {
            self.timers.insert((q.saturating_add(tm.at_risk), TimerKind::AtRisk, id));
        }
        if !w.breached_done {
            self.timers.insert((q.saturating_add(tm.target), TimerKind::Breached, id));
        }
        let key = x.queue_key();
        let h = x.info.helpline.as_str();
        let reported = match old {
            Some((oh, ok, p)) if oh == h && ok == key => p,
            Some((oh, ok, p)) => {
                self.mark_dirty(&oh, ok);
                self.mark_dirty(h, key);
                p
            }
            None => {
                self.mark_dirty(h, key);
                0
            }
        };
        match self.queues.get_mut(h) {
            Some(queue) => {
                queue.insert(key, reported);
            }
            None => {
                self.queues.insert(h.to_owned(), BTreeMap::from([(key, reported)]));
            }
        }
        match w.offer {
            Some(r) => {
                self.timers.insert((r.expires_at, TimerKind::Expiry, id));
            }
            None => {
                for (&cid, &at) in &w.tried {
                    self.cooldowns.insert((at.saturating_add(tm.ring_timeout), id, cid));
                }
                // A caller who is gone rings nobody until she is back (see `presence`).
                if !x.info.caller_connected && tm.hold_offline {
                    return;
                }
                match w.pinned {
                    Some(p) => {
                        self.pinned.entry(p).or_default().insert(key);
                    }
                    None => nested_insert(&mut self.unoffered[slot(x.info.channel, x.info.senior_only)], h, &x.info.language, key),
                }
            }
        }
    }

    /// Remove a contact's entries (as [`Index::add_contact`] made them from the same state);
    /// returns its queue slot if it was waiting. Marks nothing dirty: the caller passes the slot
    /// on to `add_contact`, or to [`Index::left_queue`] when the contact is gone.
    pub(super) fn remove_contact(&mut self, tm: Timings, x: &Contact) -> Option<QueueSlot> {
        let id = x.info.id;
        if let Some(g) = x.grace_until {
            self.timers.remove(&(g, TimerKind::Grace, id));
        }
        let w = x.waiting()?;
        let q = x.info.queued_at;
        if !w.backup_done {
            self.timers.remove(&(q.saturating_add(tm.backup_after), TimerKind::Backup, id));
        }
        if !w.at_risk_done {
            self.timers.remove(&(q.saturating_add(tm.at_risk), TimerKind::AtRisk, id));
        }
        if !w.breached_done {
            self.timers.remove(&(q.saturating_add(tm.target), TimerKind::Breached, id));
        }
        let key = x.queue_key();
        let h = x.info.helpline.as_str();
        match w.offer {
            Some(r) => {
                self.timers.remove(&(r.expires_at, TimerKind::Expiry, id));
            }
            None => {
                for (&cid, &at) in &w.tried {
                    self.cooldowns.remove(&(at.saturating_add(tm.ring_timeout), id, cid));
                }
                match w.pinned {
                    _ if !x.info.caller_connected && tm.hold_offline => {}
                    Some(p) => {
                        if let Some(set) = self.pinned.get_mut(&p) {
                            set.remove(&key);
                            if set.is_empty() {
                                self.pinned.remove(&p);
                            }
                        }
                    }
                    None => nested_remove(&mut self.unoffered[slot(x.info.channel, x.info.senior_only)], h, &x.info.language, &key),
                }
            }
        }
        let queue = self.queues.get_mut(h)?;
        let reported = queue.remove(&key);
        if queue.is_empty() {
            self.queues.remove(h);
        }
        reported.map(|p| (h.to_owned(), key, p))
    }

    /// A contact removed with [`Index::remove_contact`] is gone for good: its queue changed.
    pub(super) fn left_queue(&mut self, old: Option<QueueSlot>) {
        if let Some((h, k, _)) = old {
            self.mark_dirty(&h, k);
        }
    }

    /// Calls `f(slot, backup, helpline, language)` for every free-counsellor entry of `c`.
    fn counsellor_entries(chat_on_call: &BTreeSet<Helpline>, c: &Counsellor, mut f: impl FnMut(usize, bool, &str, &str)) {
        let p = &c.profile;
        for (channel, senior_only) in CHANNELS.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            if senior_only && !p.senior {
                continue;
            }
            let first = p.helplines.iter().map(|h| (false, h));
            let backup = p.backup_helplines.difference(&p.helplines).map(|h| (true, h));
            for (is_backup, h) in first.chain(backup) {
                if !c.takes(channel, chat_on_call.contains(h)) {
                    continue;
                }
                for l in &p.languages {
                    f(slot(channel, senior_only), is_backup, h, l);
                }
            }
        }
    }

    /// Add a counsellor's entries (none unless free).
    pub(super) fn add_counsellor(&mut self, c: &Counsellor) {
        for (&x, &until) in &c.wrapups {
            self.wrapups.insert((until, c.profile.id, x));
        }
        if !c.is_free() {
            return;
        }
        self.free_count += 1;
        let key = c.free_key();
        let (first, backup) = (&mut self.free_first, &mut self.free_backup);
        Self::counsellor_entries(&self.chat_on_call, c, |k, is_backup, h, l| {
            let m = if is_backup { &mut backup[k] } else { &mut first[k] };
            nested_insert(m, h, l, key);
        });
    }

    /// Remove a counsellor's entries (as [`Index::add_counsellor`] made them from the same state).
    pub(super) fn remove_counsellor(&mut self, c: &Counsellor) {
        for (&x, &until) in &c.wrapups {
            self.wrapups.remove(&(until, c.profile.id, x));
        }
        if !c.is_free() {
            return;
        }
        self.free_count = self.free_count.saturating_sub(1);
        let key = c.free_key();
        let (first, backup) = (&mut self.free_first, &mut self.free_backup);
        Self::counsellor_entries(&self.chat_on_call, c, |k, is_backup, h, l| {
            let m = if is_backup { &mut backup[k] } else { &mut first[k] };
            nested_remove(m, h, l, &key);
        });
    }

    /// Whether some free counsellor takes (slot, h, l), first-line or as a backup.
    pub(super) fn has_free(&self, k: usize, h: &str, l: &str) -> bool {
        nested_get(&self.free_first[k], h, l).is_some() || nested_get(&self.free_backup[k], h, l).is_some()
    }
}

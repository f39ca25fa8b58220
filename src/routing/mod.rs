//! The routing engine: a pure state machine that decides which counsellor is offered which contact, and when.
//!
//! No tokio, no I/O, no clock: `handle(now, input)` returns the outputs to carry out,
//! `next_deadline()` says when to call again with `Input::Tick`.
//!
//! Every `handle` runs the same steps: (1) timers due at `now` (offer expiry, SLA and
//! backup thresholds, caller grace ends) in time order, (2) the input itself, (3) timers
//! made due by the input (e.g. a restored contact queued long ago), (4) dispatch of
//! waiting contacts to eligible counsellors, (5) changed queue positions.
//!
//! # Cost
//!
//! The engine is incremental: it keeps indexes ([`index::Index`]) that every state change
//! updates — the waiting queue of each helpline in order, un-offered waiting contacts by
//! (helpline, language), free counsellors by (helpline, language) ordered best first, and
//! every pending timer — so a step costs O(log n) per contact or counsellor it touches, plus
//! the positions it reports (a contact joining or leaving a queue moves everyone behind it).
//! Behaviour is that of the straightforward full-scan engine kept in `reference.rs`; the
//! equivalence property tests compare the two step by step.

pub mod away;
pub mod estimate;
pub mod hours;
mod index;
pub mod presence;
pub mod shift;
pub mod triage;
mod types;
mod views;
pub mod wrapup;

pub use types::*;
pub use views::*;

#[cfg(test)]
mod equivalence;
#[cfg(test)]
mod reference;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod waiting_tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use index::{FreeKey, Index, QueueKey};

/// The per-helpline timings the engine uses, with nonsensical values clamped.
#[derive(Debug, Clone, Copy)]
struct Timings {
    ring_timeout: Millis,
    backup_after: Millis,
    at_risk: Millis,
    target: Millis,
    grace: Millis,
    /// The wrap-up limit (0: none).
    wrapup: Millis,
    /// Whether waiting callers who dropped ring nobody until they are back.
    hold_offline: bool,
}

impl Timings {
    fn from_config(c: &HelplineConfig) -> Self {
        Self {
            // An offer must ring for at least 1 ms, or a re-offer would be due at once, forever.
            ring_timeout: c.ring_timeout_ms.max(1),
            backup_after: c.backup_after_ms,
            at_risk: c.sla_at_risk_ms,
            target: c.sla_target_ms,
            grace: c.caller_grace_ms.max(0),
            wrapup: c.wrapup_limit_ms.max(0),
            hold_offline: !c.ring_offline_callers,
        }
    }
}

/// A counsellor's state.
#[derive(Debug, Clone)]
struct Counsellor {
    profile: CounsellorProfile,
    status: Status,
    status_since: Millis,
    connected: bool,
    removed: bool,
    active: BTreeSet<ContactId>,
    /// The calls among `active`.
    calls: BTreeSet<ContactId>,
    ringing: Option<ContactId>,
    idle_since: Millis,
    misses: u32,
    /// Slots in wrap-up: the ended contact, and when its wrap-up ends at the latest.
    wrapups: BTreeMap<ContactId, Millis>,
    /// Why they are away (while `Away`).
    away_reason: Option<String>,
}

impl Counsellor {
    fn new(profile: CounsellorProfile, now: Millis) -> Self {
        Self {
            profile,
            status: Status::Offline,
            status_since: now,
            connected: false,
            removed: false,
            active: BTreeSet::new(),
            calls: BTreeSet::new(),
            ringing: None,
            idle_since: now,
            misses: 0,
            wrapups: BTreeMap::new(),
            away_reason: None,
        }
    }

    /// A slot is free: neither in conversation nor in wrap-up.
    fn has_room(&self) -> bool {
        ((self.active.len() + self.wrapups.len()) as u64) < u64::from(self.profile.capacity)
    }

    /// Whether this counsellor could be rung now (by some contact): the dispatch candidates.
    fn is_free(&self) -> bool {
        self.ringing.is_none() && !self.removed && self.connected && self.status == Status::Available && self.has_room()
    }

    /// Whether they may ring with a contact of `channel` (room and status aside), by the channel's
    /// rules ([`Channel::needs_line`], [`Channel::holds_counsellor`]): a call needs an extension and no
    /// call already; a chat needs no call, unless `chat_on_call` (its helpline's setting).
    fn takes(&self, channel: Channel, chat_on_call: bool) -> bool {
        let held = !self.calls.is_empty();
        (!channel.needs_line() || self.profile.takes_calls) && (!held || (!channel.holds_counsellor() && chat_on_call))
    }

    /// Takes contact `id` of `channel` into conversation.
    fn take(&mut self, id: ContactId, channel: Channel) {
        self.active.insert(id);
        if channel.holds_counsellor() {
            self.calls.insert(id);
        }
    }

    /// Lets go of contact `id` (ended or moved).
    fn release(&mut self, id: ContactId) {
        self.active.remove(&id);
        self.calls.remove(&id);
    }

    /// Best first: fewest active, longest idle, smallest id.
    fn free_key(&self) -> FreeKey {
        (self.active.len(), self.idle_since, self.profile.id)
    }

    fn view(&self) -> CounsellorView {
        CounsellorView {
            id: self.profile.id,
            status: self.status,
            status_since: self.status_since,
            connected: self.connected,
            removed: self.removed,
            capacity: self.profile.capacity,
            active: self.active.iter().copied().collect(),
            ringing: self.ringing,
            idle_since: self.idle_since,
            consecutive_misses: self.misses,
            helplines: self.profile.helplines.clone(),
            backup_helplines: self.profile.backup_helplines.clone(),
            languages: self.profile.languages.clone(),
            wrapping_up: self.wrapups.iter().map(|(&x, &until)| (x, until)).collect(),
            away_reason: self.away_reason.clone(),
        }
    }
}

/// An offer ringing for a counsellor.
#[derive(Debug, Clone, Copy)]
struct Ring {
    counsellor: CounsellorId,
    expires_at: Millis,
}

/// State of a contact still in its queue.
#[derive(Debug, Clone, Default)]
struct Waiting {
    offer: Option<Ring>,
    /// Counsellors who declined or let an offer expire, with when.
    tried: BTreeMap<CounsellorId, Millis>,
    /// A supervisor moved this contact to this counsellor: only they are rung, until they answer,
    /// decline or miss it.
    pinned: Option<CounsellorId>,
    backup_done: bool,
    at_risk_done: bool,
    breached_done: bool,
}

#[derive(Debug, Clone)]
enum Stage {
    Waiting(Waiting),
    Assigned { counsellor: CounsellorId, answered_at: Millis },
}

/// A known (not ended) contact.
#[derive(Debug, Clone)]
struct Contact {
    info: NewContact,
    /// Place of its channel in its helpline's queue order: 0 for calls of a `calls_first`
    /// helpline, 1 otherwise.
    rank: u8,
    /// When the disconnected caller's grace period ends.
    grace_until: Option<Millis>,
    stage: Stage,
    /// The caller answered the triage question (only the first answer counts).
    triaged: bool,
}

impl Contact {
    fn waiting(&self) -> Option<&Waiting> {
        match &self.stage {
            Stage::Waiting(w) => Some(w),
            Stage::Assigned { .. } => None,
        }
    }

    fn waiting_mut(&mut self) -> Option<&mut Waiting> {
        match &mut self.stage {
            Stage::Waiting(w) => Some(w),
            Stage::Assigned { .. } => None,
        }
    }

    fn assigned_to(&self) -> Option<CounsellorId> {
        match self.stage {
            Stage::Assigned { counsellor, .. } => Some(counsellor),
            Stage::Waiting(_) => None,
        }
    }

    /// Global queue order: priority descending, then channel rank, then FIFO, then id.
    fn queue_key(&self) -> QueueKey {
        (Reverse(self.info.priority), self.rank, self.info.queued_at, self.info.id)
    }
}

/// Kinds of timer events; the order is the tie-break between events due at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Expiry,
    AtRisk,
    Backup,
    Breached,
    Grace,
}

/// The queue rank of a contact of `channel` in `helpline` (calls first unless the helpline says otherwise).
fn rank_of(helplines: &BTreeMap<Helpline, HelplineConfig>, helpline: &str, channel: Channel) -> u8 {
    let calls_first = helplines.get(helpline).is_none_or(|c| c.calls_first);
    u8::from(!(channel.ranks_first() && calls_first))
}

/// The timings of `helpline` (defaults for a helpline not configured).
fn timings_of(helplines: &BTreeMap<Helpline, HelplineConfig>, helpline: &str) -> Timings {
    match helplines.get(helpline) {
        Some(c) => Timings::from_config(c),
        None => Timings::from_config(&HelplineConfig::with_defaults(String::new())),
    }
}

/// The helplines whose chats may go to a counsellor on a call.
fn chat_on_call(helplines: &BTreeMap<Helpline, HelplineConfig>) -> BTreeSet<Helpline> {
    helplines.values().filter(|c| c.chat_while_on_call).map(|c| c.name.clone()).collect()
}

/// The routing engine. See the module docs and [`Engine::handle`].
#[derive(Debug, Clone)]
pub struct Engine {
    helplines: BTreeMap<Helpline, HelplineConfig>,
    misses_before_away: u32,
    /// The latest `now` seen.
    now: Millis,
    counsellors: BTreeMap<CounsellorId, Counsellor>,
    contacts: BTreeMap<ContactId, Contact>,
    /// Derived from `counsellors` and `contacts`; changed only through `cmut`, `xmut` and the
    /// insert/remove helpers. Holds the positions last reported in an [`Output::Positions`].
    ix: Index,
}

impl Engine {
    /// An engine with no counsellors and no contacts. For duplicate helpline names the first config wins.
    #[must_use]
    pub fn new(config: EngineConfig) -> Self {
        let mut helplines = BTreeMap::new();
        for h in config.helplines {
            helplines.entry(h.name.clone()).or_insert(h);
        }
        let ix = Index { chat_on_call: chat_on_call(&helplines), ..Index::default() };
        Self {
            helplines,
            misses_before_away: config.misses_before_away,
            now: Millis::MIN,
            counsellors: BTreeMap::new(),
            contacts: BTreeMap::new(),
            ix,
        }
    }

    /// A helpline's waiting settings changed (already stored): the wrap-up limit applies to wrap-ups
    /// that start from now on (one running keeps its end), the away reasons to reasons given from now
    /// on (a counsellor away keeps hers), the triage question to answers from now on (`None`: not
    /// asked). A helpline not configured is added with the defaults for the rest.
    pub fn set_waiting(&mut self, helpline: &str, wrapup_limit_ms: Millis, away_reasons: Vec<String>, triage_priority: Option<i32>) {
        let h = self.helplines.entry(helpline.to_string()).or_insert_with(|| HelplineConfig::with_defaults(helpline));
        h.wrapup_limit_ms = wrapup_limit_ms;
        h.away_reasons = away_reasons;
        h.triage_priority = triage_priority;
    }

    /// A helpline's settings as the engine uses them (None: not configured, the defaults apply).
    #[must_use]
    pub fn helpline_config(&self, helpline: &str) -> Option<&HelplineConfig> {
        self.helplines.get(helpline)
    }

    /// Apply one input at time `now` (ms since Unix epoch; if it is earlier than a
    /// previous `now`, the previous one is used). Returns the outputs in the order they
    /// must be carried out: direct effects, then new offers, then changed positions.
    ///
    /// Timers due at `now` are processed on every call, not only on [`Input::Tick`]:
    /// an `Accept` arriving at or after the offer's `expires_at` finds it already revoked.
    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Output> {
        let now = now.max(self.now);
        self.now = now;
        let mut out = Vec::new();
        self.run_timers(now, &mut out);
        self.apply(now, input, &mut out);
        self.run_timers(now, &mut out);
        self.dispatch(now, &mut out);
        self.report_positions(&mut out);
        out
    }

    /// Earliest time at which something is due (offer expiry, SLA threshold, backup
    /// overflow, caller grace end, retry cooldown). `None` when nothing is pending.
    /// Always later than the last `now` handled.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Millis> {
        let timer = self.ix.timers.first().map(|&(at, _, _)| at);
        // Cooldowns already over do not count (they wait for a counsellor, not for time).
        let after_now = (self.now, ContactId(u128::MAX), CounsellorId(u128::MAX));
        let cooldown = self.ix.cooldowns.range((Bound::Excluded(after_now), Bound::Unbounded)).next().map(|&(at, _, _)| at);
        [timer, cooldown, self.next_wrapup_end()].into_iter().flatten().min()
    }

    /// 1-based position of a waiting contact in its helpline's queue; `None` if not waiting.
    #[must_use]
    pub fn position(&self, contact: ContactId) -> Option<u32> {
        let x = self.contacts.get(&contact)?;
        x.waiting()?;
        let p = *self.ix.queues.get(x.info.helpline.as_str())?.get(&x.queue_key())?;
        Some(p)
    }

    /// The helpline a known contact is in (waiting or in conversation).
    #[must_use]
    pub fn helpline_of(&self, contact: ContactId) -> Option<&str> {
        self.contacts.get(&contact).map(|x| x.info.helpline.as_str())
    }

    /// The counsellor an assigned contact is with; `None` if waiting or unknown.
    #[must_use]
    pub fn assigned_counsellor(&self, contact: ContactId) -> Option<CounsellorId> {
        self.contacts.get(&contact)?.assigned_to()
    }

    /// A counsellor's state, including removed ones; `None` if never known.
    #[must_use]
    pub fn counsellor(&self, id: CounsellorId) -> Option<CounsellorView> {
        self.counsellors.get(&id).map(Counsellor::view)
    }

    /// Everything, for supervisors and debugging: waiting by (helpline, position),
    /// assigned by contact id, counsellors by id.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let waiting = self
            .ix
            .queues
            .values()
            .flat_map(|queue| queue.iter())
            .filter_map(|(&(_, _, _, id), &position)| {
                let x = self.contacts.get(&id)?;
                let w = x.waiting()?;
                Some(WaitingView {
                    contact: id,
                    helpline: x.info.helpline.clone(),
                    language: x.info.language.clone(),
                    priority: x.info.priority,
                    queued_at: x.info.queued_at,
                    position,
                    offered_to: w.offer.map(|r| r.counsellor),
                    caller_connected: x.info.caller_connected,
                })
            })
            .collect();
        let assigned = self
            .contacts
            .values()
            .filter_map(|x| match x.stage {
                Stage::Assigned { counsellor, answered_at } => Some(AssignedView {
                    contact: x.info.id,
                    counsellor,
                    helpline: x.info.helpline.clone(),
                    language: x.info.language.clone(),
                    priority: x.info.priority,
                    queued_at: x.info.queued_at,
                    answered_at,
                    caller_connected: x.info.caller_connected,
                }),
                Stage::Waiting(_) => None,
            })
            .collect();
        let counsellors = self.counsellors.values().map(Counsellor::view).collect();
        Snapshot { waiting, assigned, counsellors }
    }

    // ----- configuration and state changes ---------------------------------------------

    fn timings(&self, helpline: &str) -> Timings {
        timings_of(&self.helplines, helpline)
    }

    /// Change a contact (no-op if unknown), keeping the indexes in step.
    fn xmut<R>(&mut self, id: ContactId, f: impl FnOnce(&mut Contact) -> R) -> Option<R> {
        let x = self.contacts.get_mut(&id)?;
        let old = self.ix.remove_contact(timings_of(&self.helplines, &x.info.helpline), x);
        let r = f(x);
        self.ix.add_contact(timings_of(&self.helplines, &x.info.helpline), x, old);
        Some(r)
    }

    /// Change a waiting contact's queue state (no-op unless waiting).
    fn wmut(&mut self, id: ContactId, f: impl FnOnce(&mut Waiting)) {
        self.xmut(id, |x| {
            if let Some(w) = x.waiting_mut() {
                f(w);
            }
        });
    }

    /// Change a counsellor (no-op if unknown), keeping the indexes in step.
    fn cmut<R>(&mut self, id: CounsellorId, f: impl FnOnce(&mut Counsellor) -> R) -> Option<R> {
        let c = self.counsellors.get_mut(&id)?;
        self.ix.remove_counsellor(c);
        let r = f(c);
        self.ix.add_counsellor(c);
        Some(r)
    }

    fn insert_counsellor(&mut self, c: Counsellor) {
        let id = c.profile.id;
        if let Some(old) = self.counsellors.get(&id) {
            self.ix.remove_counsellor(old);
        }
        self.ix.add_counsellor(&c);
        self.counsellors.insert(id, c);
    }

    fn insert_contact(&mut self, x: Contact) {
        let id = x.info.id;
        let tm = self.timings(&x.info.helpline);
        let old = match self.contacts.get(&id) {
            Some(old) => self.ix.remove_contact(timings_of(&self.helplines, &old.info.helpline), old),
            None => None,
        };
        self.ix.left_queue(old);
        self.ix.add_contact(tm, &x, None);
        self.contacts.insert(id, x);
    }

    fn remove_contact(&mut self, id: ContactId) -> Option<Contact> {
        let x = self.contacts.remove(&id)?;
        let old = self.ix.remove_contact(self.timings(&x.info.helpline), &x);
        self.ix.left_queue(old);
        Some(x)
    }

    /// Report the positions that changed since the last report: only in helplines whose queue
    /// changed, and there only from the first place that changed.
    fn report_positions(&mut self, out: &mut Vec<Output>) {
        if self.ix.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.ix.dirty);
        let mut changed: Vec<(ContactId, u32)> = Vec::new();
        for (h, from) in dirty {
            let Some(queue) = self.ix.queues.get_mut(&h) else {
                continue;
            };
            // Everyone ahead of `from` kept their place, and their reported position is current.
            let mut n = queue.range(..from).next_back().map_or(0, |(_, &p)| p);
            for (&(_, _, _, id), reported) in queue.range_mut(from..) {
                n = n.saturating_add(1);
                if *reported != n {
                    *reported = n;
                    changed.push((id, n));
                }
            }
        }
        if !changed.is_empty() {
            out.push(Output::Positions { positions: changed });
        }
    }

    // ----- eligibility and dispatch ------------------------------------------------

    /// Whether `c` may ring with `x` at `now`, ignoring whether `c` is already ringing and
    /// the tried rule. `Some(as_backup)` when eligible.
    fn eligible(&self, c: &Counsellor, x: &Contact, now: Millis) -> Option<bool> {
        if c.removed || !c.connected || c.status != Status::Available || !c.has_room() {
            return None;
        }
        if !self.takes(c, x) {
            return None;
        }
        if x.waiting().is_some() && !self.may_ring(x) {
            return None;
        }
        if let Some(pinned) = x.waiting().and_then(|w| w.pinned) {
            return (pinned == c.profile.id).then_some(false);
        }
        if !c.profile.languages.contains(&x.info.language) {
            return None;
        }
        if c.profile.helplines.contains(&x.info.helpline) {
            return Some(false);
        }
        let waited = now.saturating_sub(x.info.queued_at);
        if c.profile.backup_helplines.contains(&x.info.helpline) && waited >= self.timings(&x.info.helpline).backup_after {
            return Some(true);
        }
        None
    }

    /// Whether `c` may take `x`'s channel now (see `Counsellor::takes`), and, for a senior-only
    /// contact, whether `c` is senior.
    fn takes(&self, c: &Counsellor, x: &Contact) -> bool {
        (!x.info.senior_only || c.profile.senior) && c.takes(x.info.channel, self.ix.chat_on_call.contains(&x.info.helpline))
    }

    /// The best free counsellor to ring with waiting contact `x` at `now`: the best (fewest
    /// active, longest idle, smallest id) eligible one not yet tried, else the best whose retry
    /// cooldown is over. `Some((counsellor, as_backup))`.
    fn best_counsellor(&self, x: &Contact, w: &Waiting, now: Millis, tm: Timings) -> Option<(CounsellorId, bool)> {
        let cooled = |at: Millis| now >= at.saturating_add(tm.ring_timeout);
        if let Some(p) = w.pinned {
            let c = self.counsellors.get(&p)?;
            if !c.is_free() || !self.takes(c, x) {
                return None;
            }
            return match w.tried.get(&p) {
                Some(&at) if !cooled(at) => None,
                _ => Some((p, false)),
            };
        }
        let (h, l) = (x.info.helpline.as_str(), x.info.language.as_str());
        let k = index::slot(x.info.channel, x.info.senior_only);
        let waited = now.saturating_sub(x.info.queued_at);
        let first = index::nested_get(&self.ix.free_first[k], h, l);
        let backup = if waited >= tm.backup_after { index::nested_get(&self.ix.free_backup[k], h, l) } else { None };
        let mut untried: Option<(FreeKey, bool)> = None;
        let mut retry: Option<(FreeKey, bool)> = None;
        for (set, as_backup) in [(first, false), (backup, true)] {
            // In key order: the first untried one is this set's best; tried ones before it
            // (at most |tried|) are the retry candidates.
            for &key in set.into_iter().flatten() {
                match w.tried.get(&key.2) {
                    None => {
                        if untried.is_none_or(|(k, _)| key < k) {
                            untried = Some((key, as_backup));
                        }
                        break;
                    }
                    Some(&at) if cooled(at) => {
                        if retry.is_none_or(|(k, _)| key < k) {
                            retry = Some((key, as_backup));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        untried.or(retry).map(|((_, _, cid), as_backup)| (cid, as_backup))
    }

    /// Offer every waiting, un-ringing contact (in global order) to its best eligible counsellor.
    ///
    /// Only contacts some free counsellor could take are visited: un-offered contacts of the
    /// (helpline, language) pairs a free counsellor serves, and contacts pinned to a free
    /// counsellor, merged in global queue order; it stops when no counsellor is free.
    fn dispatch(&mut self, now: Millis, out: &mut Vec<Output>) {
        enum Source {
            Pair(usize, Helpline, Language),
            Pinned(CounsellorId),
        }
        if self.ix.free_count == 0 {
            return;
        }
        let mut sources: Vec<Source> = Vec::new();
        for (k, unoffered) in self.ix.unoffered.iter().enumerate() {
            for (h, by_lang) in unoffered {
                for l in by_lang.keys() {
                    if self.ix.has_free(k, h, l) {
                        sources.push(Source::Pair(k, h.clone(), l.clone()));
                    }
                }
            }
        }
        for p in self.ix.pinned.keys() {
            if self.counsellors.get(p).is_some_and(Counsellor::is_free) {
                sources.push(Source::Pinned(*p));
            }
        }
        // The next un-visited contact of each source, merged: key -> source.
        let mut heads: BTreeMap<QueueKey, usize> = BTreeMap::new();
        let next_of = |ix: &Index, s: &Source, after: Option<QueueKey>| -> Option<QueueKey> {
            let set = match s {
                Source::Pair(k, h, l) => index::nested_get(&ix.unoffered[*k], h, l)?,
                Source::Pinned(p) => ix.pinned.get(p)?,
            };
            match after {
                None => set.first().copied(),
                Some(k) => set.range((Bound::Excluded(k), Bound::Unbounded)).next().copied(),
            }
        };
        for (i, s) in sources.iter().enumerate() {
            if let Some(k) = next_of(&self.ix, s, None) {
                heads.insert(k, i);
            }
        }
        while self.ix.free_count > 0 {
            let Some((key, i)) = heads.pop_first() else {
                break;
            };
            let source = &sources[i];
            // A source nobody free can serve any more is dropped.
            let live = match source {
                Source::Pair(k, h, l) => self.ix.has_free(*k, h, l),
                Source::Pinned(p) => self.counsellors.get(p).is_some_and(Counsellor::is_free),
            };
            if !live {
                continue;
            }
            if let Some(k) = next_of(&self.ix, source, Some(key)) {
                heads.insert(k, i);
            }
            self.try_offer(now, key.3, out);
        }
    }

    /// Ring the best eligible free counsellor with waiting contact `id`, if there is one.
    fn try_offer(&mut self, now: Millis, id: ContactId, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.get(&id) else {
            return;
        };
        let Some(w) = x.waiting() else { return };
        if w.offer.is_some() || !self.may_ring(x) {
            return;
        }
        let tm = self.timings(&x.info.helpline);
        let Some((cid, as_backup)) = self.best_counsellor(x, w, now, tm) else {
            return;
        };
        let expires_at = now.saturating_add(tm.ring_timeout);
        let offer = Output::Offer {
            contact: id,
            counsellor: cid,
            helpline: x.info.helpline.clone(),
            language: x.info.language.clone(),
            queued_at: x.info.queued_at,
            expires_at,
            as_backup,
            caller_online: x.info.caller_connected,
        };
        self.wmut(id, |w| {
            w.offer = Some(Ring { counsellor: cid, expires_at });
        });
        self.cmut(cid, |c| c.ringing = Some(id));
        out.push(offer);
    }

    /// Take back the offer ringing for `cid`, if any, without marking it tried.
    fn revoke_ring(&mut self, cid: CounsellorId, reason: RevokeReason, out: &mut Vec<Output>) {
        let Some(Some(xid)) = self.cmut(cid, |c| c.ringing.take()) else {
            return;
        };
        self.wmut(xid, |w| w.offer = None);
        out.push(Output::OfferRevoked { contact: xid, counsellor: cid, reason });
    }

    /// Revoke `cid`'s ringing offer if they are no longer eligible to hold it.
    fn recheck_ring(&mut self, cid: CounsellorId, now: Millis, out: &mut Vec<Output>) {
        let Some(c) = self.counsellors.get(&cid) else {
            return;
        };
        let Some(xid) = c.ringing else { return };
        let still = self.contacts.get(&xid).is_some_and(|x| self.eligible(c, x, now).is_some());
        if !still {
            self.revoke_ring(cid, RevokeReason::CounsellorUnavailable, out);
        }
    }

    // ----- timers ---------------------------------------------------------------------

    /// Process every timer due at or before `now`, earliest first.
    fn run_timers(&mut self, now: Millis, out: &mut Vec<Output>) {
        let last = (now, TimerKind::Grace, ContactId(u128::MAX));
        let due: Vec<(Millis, TimerKind, ContactId)> = self.ix.timers.range(..=last).copied().collect();
        for (at, kind, id) in due {
            self.fire(now, at, kind, id, out);
        }
        self.end_due_wrapups(now, out);
    }

    /// Process one due timer, if it is still pending (an earlier one may have ended the contact).
    fn fire(&mut self, now: Millis, at: Millis, kind: TimerKind, id: ContactId, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.get(&id) else {
            return;
        };
        let waited = now.saturating_sub(x.info.queued_at);
        if kind == TimerKind::Grace {
            if x.grace_until == Some(at) {
                self.end_contact(now, id, EndReason::CallerLost, out);
            }
            return;
        }
        let Some(w) = x.waiting() else { return };
        match kind {
            TimerKind::Backup if !w.backup_done => {
                self.wmut(id, |w| w.backup_done = true);
                out.push(Output::BackupOverflow { contact: id });
            }
            TimerKind::AtRisk if !w.at_risk_done => {
                self.wmut(id, |w| w.at_risk_done = true);
                out.push(Output::SlaAtRisk { contact: id, waited_ms: waited });
            }
            TimerKind::Breached if !w.breached_done => {
                self.wmut(id, |w| w.breached_done = true);
                out.push(Output::SlaBreached { contact: id, waited_ms: waited });
            }
            TimerKind::Expiry => {
                let Some(r) = w.offer else { return };
                if r.expires_at != at {
                    return;
                }
                // An offer of a caller who is gone is no counsellor's miss (see `presence`).
                let miss = u32::from(x.info.caller_connected);
                self.wmut(id, |w| {
                    w.offer = None;
                    w.pinned = None;
                    w.tried.insert(r.counsellor, at);
                });
                out.push(Output::OfferRevoked { contact: id, counsellor: r.counsellor, reason: RevokeReason::Expired });
                let limit = self.misses_before_away;
                let away = self.cmut(r.counsellor, |c| {
                    if c.ringing == Some(id) {
                        c.ringing = None;
                    }
                    c.misses = c.misses.saturating_add(miss);
                    if miss > 0 && limit > 0 && c.misses >= limit && c.status != Status::Away {
                        c.status = Status::Away;
                        c.status_since = at;
                        c.away_reason = Some(away::MISSED_OFFERS.to_string());
                        true
                    } else {
                        false
                    }
                });
                if away == Some(true) {
                    out.push(Output::StatusChanged { counsellor: r.counsellor, status: Status::Away, reason: StatusReason::MissedOffers });
                }
            }
            _ => {}
        }
    }

    // ----- inputs ---------------------------------------------------------------------

    fn apply(&mut self, now: Millis, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::UpsertCounsellor(profile) => {
                let id = profile.id;
                if self.counsellors.contains_key(&id) {
                    self.cmut(id, |c| {
                        c.profile = profile;
                        c.removed = false;
                    });
                    self.recheck_ring(id, now, out);
                } else {
                    self.insert_counsellor(Counsellor::new(profile, now));
                }
            }
            Input::RemoveCounsellor { counsellor } => {
                if self.cmut(counsellor, |c| c.removed = true).is_some() {
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::CounsellorConnected { counsellor } => {
                self.cmut(counsellor, |c| {
                    if !c.connected {
                        c.connected = true;
                        c.status_since = now;
                    }
                });
            }
            Input::CounsellorDisconnected { counsellor } => {
                let known = self.cmut(counsellor, |c| {
                    if c.connected {
                        c.status_since = now;
                    }
                    c.connected = false;
                });
                if known.is_some() {
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::SetStatus { counsellor, status } => {
                let Some(c) = self.counsellors.get(&counsellor) else {
                    return;
                };
                if c.status == status {
                    return;
                }
                self.cmut(counsellor, |c| {
                    c.status = status;
                    c.status_since = now;
                    c.away_reason = None;
                    if status == Status::Available {
                        c.misses = 0;
                        c.idle_since = now;
                    }
                });
                if status != Status::Available {
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::ContactQueued(info) => {
                if self.contacts.contains_key(&info.id) {
                    return;
                }
                let grace_until = (!info.caller_connected).then(|| now.saturating_add(self.timings(&info.helpline).grace));
                self.insert_contact(Contact {
                    rank: rank_of(&self.helplines, &info.helpline, info.channel),
                    info,
                    grace_until,
                    triaged: false,
                    stage: Stage::Waiting(Waiting::default()),
                });
            }
            Input::ContactRestoredAssigned { contact, counsellor, answered_at } => {
                self.restore_assigned(now, contact, counsellor, answered_at, out)
            }
            Input::RestoreCounsellor { counsellor, away, wrapups } => {
                self.restore_counsellor(now, counsellor, away, wrapups, out);
            }
            Input::Accept { counsellor, contact } => self.accept(now, counsellor, contact, out),
            Input::Decline { counsellor, contact } => self.decline(now, counsellor, contact, out),
            Input::EndByCounsellor { counsellor, contact } => {
                let reject = |rejection| Output::Rejected { counsellor, contact, rejection };
                if !self.counsellors.contains_key(&counsellor) {
                    out.push(reject(Rejection::UnknownCounsellor));
                    return;
                }
                match self.contacts.get(&contact) {
                    None => out.push(reject(Rejection::UnknownContact)),
                    Some(x) if x.assigned_to() != Some(counsellor) => {
                        out.push(reject(Rejection::NotAssigned));
                    }
                    Some(_) => self.end_contact(now, contact, EndReason::CounsellorEnded, out),
                }
            }
            Input::EndByCaller { contact } => {
                self.end_contact(now, contact, EndReason::CallerEnded, out);
            }
            Input::CallerDisconnected { contact } => {
                let Some(x) = self.contacts.get(&contact) else {
                    return;
                };
                let grace = self.timings(&x.info.helpline).grace;
                self.xmut(contact, |x| {
                    x.info.caller_connected = false;
                    if x.grace_until.is_none() {
                        x.grace_until = Some(now.saturating_add(grace));
                    }
                });
                self.caller_gone(contact, out);
            }
            Input::CallerConnected { contact } => {
                self.xmut(contact, |x| {
                    x.info.caller_connected = true;
                    x.grace_until = None;
                });
            }
            Input::SetPriority { contact, priority } => {
                // A contact in conversation keeps it: it applies if the contact goes back to a queue.
                self.xmut(contact, |x| x.info.priority = priority);
            }
            Input::OfferTo { contact, counsellor } => self.offer_to(contact, counsellor, out),
            Input::Transfer { contact, to } => self.transfer(now, None, contact, to, out),
            Input::HandOver { by, contact, to } => self.transfer(now, Some(by), contact, to, out),
            Input::Ready { counsellor, contact } => self.ready(counsellor, contact, out),
            Input::SetAway { counsellor, reason } => self.set_away(now, counsellor, reason, out),
            Input::Triage { contact, danger } => self.triage(contact, danger, out),
            Input::Tick => {}
        }
    }

    /// Pin a waiting contact to a named counsellor (a supervisor's move); dispatch rings them.
    fn offer_to(&mut self, xid: ContactId, cid: CounsellorId, out: &mut Vec<Output>) {
        let refuse = |refusal| Output::Refused { contact: xid, refusal };
        let Some(x) = self.contacts.get(&xid) else {
            out.push(refuse(Refusal::UnknownContact));
            return;
        };
        let Some(w) = x.waiting() else {
            out.push(refuse(Refusal::NotWaiting));
            return;
        };
        let ringing_target = w.offer.is_some_and(|r| r.counsellor == cid);
        let target_ok = self.counsellors.get(&cid).is_some_and(|c| {
            !c.removed
                && c.connected
                && c.status == Status::Available
                && (c.ringing.is_none() || c.ringing == Some(xid))
                && c.has_room()
                && self.takes(c, x)
        });
        if !target_ok {
            out.push(refuse(Refusal::TargetUnavailable));
            return;
        }
        if ringing_target {
            return;
        }
        if let Some(r) = w.offer {
            self.revoke_ring(r.counsellor, RevokeReason::Moved, out);
        }
        self.wmut(xid, |w| {
            w.pinned = Some(cid);
            w.tried.remove(&cid);
        });
    }

    /// Move a contact in conversation to another counsellor, or back into a helpline's queue.
    /// `by`: the counsellor who asks (a counsellor's own handover), who must hold it.
    fn transfer(&mut self, now: Millis, by: Option<CounsellorId>, xid: ContactId, to: TransferTarget, out: &mut Vec<Output>) {
        let refuse = |refusal| Output::Refused { contact: xid, refusal };
        let Some(x) = self.contacts.get(&xid) else {
            out.push(refuse(Refusal::UnknownContact));
            return;
        };
        let Stage::Assigned { counsellor: from, answered_at } = x.stage else {
            out.push(refuse(if by.is_some() { Refusal::NotHeld } else { Refusal::NotAssigned }));
            return;
        };
        if by.is_some_and(|b| b != from) {
            out.push(refuse(Refusal::NotHeld));
            return;
        }
        match to {
            TransferTarget::Counsellor(cid) => {
                let ok = cid != from
                    && self.counsellors.get(&cid).is_some_and(|c| !c.removed && c.connected && c.has_room() && self.takes(c, x));
                if !ok {
                    out.push(refuse(Refusal::TargetUnavailable));
                    return;
                }
                let helpline = x.info.helpline.clone();
                let channel = x.info.channel;
                self.cmut(from, |c| {
                    c.release(xid);
                    c.idle_since = now;
                });
                self.cmut(cid, |c| {
                    c.take(xid, channel);
                    c.idle_since = now;
                });
                self.xmut(xid, |x| x.stage = Stage::Assigned { counsellor: cid, answered_at });
                out.push(Output::Transferred { contact: xid, from, to: Some(cid), helpline });
                // Taking the contact may have filled the new counsellor's last slot.
                self.recheck_ring(cid, now, out);
            }
            TransferTarget::Helpline(helpline) => {
                let rank = rank_of(&self.helplines, &helpline, x.info.channel);
                self.cmut(from, |c| {
                    c.release(xid);
                    c.idle_since = now;
                });
                self.xmut(xid, |x| {
                    x.rank = rank;
                    x.info.helpline = helpline.clone();
                    x.info.queued_at = now;
                    x.info.priority = x.info.priority.max(PRIORITY_TRANSFER);
                    x.stage = Stage::Waiting(Waiting::default());
                });
                out.push(Output::Transferred { contact: xid, from, to: None, helpline });
            }
        }
    }

    fn restore_assigned(&mut self, now: Millis, info: NewContact, cid: CounsellorId, answered_at: Millis, out: &mut Vec<Output>) {
        if self.contacts.contains_key(&info.id) {
            return;
        }
        let id = info.id;
        let grace_until = (!info.caller_connected).then(|| now.saturating_add(self.timings(&info.helpline).grace));
        self.known_counsellor(cid, now);
        let channel = info.channel;
        self.cmut(cid, |c| {
            c.take(id, channel);
            c.idle_since = c.idle_since.max(answered_at.min(now));
        });
        self.insert_contact(Contact {
            rank: rank_of(&self.helplines, &info.helpline, channel),
            info,
            grace_until,
            triaged: false,
            stage: Stage::Assigned { counsellor: cid, answered_at },
        });
        // The restored contact may have filled the counsellor's last slot.
        self.recheck_ring(cid, now, out);
    }

    /// Adds a counsellor the engine does not know yet, without a profile (restored state comes
    /// before she connects; [`Input::UpsertCounsellor`] gives her profile and keeps the rest).
    fn known_counsellor(&mut self, cid: CounsellorId, now: Millis) {
        if self.counsellors.contains_key(&cid) {
            return;
        }
        let empty = CounsellorProfile {
            id: cid,
            helplines: BTreeSet::new(),
            backup_helplines: BTreeSet::new(),
            languages: BTreeSet::new(),
            capacity: 0,
            takes_calls: false,
            senior: false,
        };
        self.insert_counsellor(Counsellor::new(empty, now));
    }

    /// [`Input::RestoreCounsellor`]: away with its reason and since when (never after `now`), and
    /// the slots in wrap-up (a wrap-up already due ends at this step, by its limit).
    fn restore_counsellor(
        &mut self,
        now: Millis,
        cid: CounsellorId,
        away: Option<(String, Millis)>,
        wrapups: Vec<(ContactId, Millis)>,
        out: &mut Vec<Output>,
    ) {
        self.known_counsellor(cid, now);
        self.cmut(cid, |c| {
            if let Some((reason, since)) = away {
                c.status = Status::Away;
                c.status_since = since.min(now);
                c.away_reason = Some(reason);
            }
            for (contact, until) in wrapups {
                if !c.active.contains(&contact) {
                    c.wrapups.insert(contact, until);
                }
            }
        });
        // A restored wrap-up may have filled the slot her ringing offer needs.
        self.recheck_ring(cid, now, out);
    }

    /// `Ok(())` when `cid`'s offer of `xid` is ringing; otherwise the rejection (or `Err(None)`
    /// for a repeated accept of a contact already assigned to `cid`, which is ignored).
    fn check_offer(&self, cid: CounsellorId, xid: ContactId) -> Result<(), Option<Rejection>> {
        match self.counsellors.get(&cid) {
            Some(c) if !c.removed => {}
            _ => return Err(Some(Rejection::UnknownCounsellor)),
        }
        let Some(x) = self.contacts.get(&xid) else {
            return Err(Some(Rejection::UnknownContact));
        };
        match &x.stage {
            Stage::Waiting(w) if w.offer.is_some_and(|r| r.counsellor == cid) => Ok(()),
            Stage::Assigned { counsellor, .. } if *counsellor == cid => Err(None),
            _ => Err(Some(Rejection::NoSuchOffer)),
        }
    }

    fn accept(&mut self, now: Millis, cid: CounsellorId, xid: ContactId, out: &mut Vec<Output>) {
        match self.check_offer(cid, xid) {
            Ok(()) => {}
            Err(None) => return,
            Err(Some(rejection)) => {
                out.push(Output::Rejected { counsellor: cid, contact: xid, rejection });
                return;
            }
        }
        let Some(channel) = self.xmut(xid, |x| {
            x.stage = Stage::Assigned { counsellor: cid, answered_at: now };
            x.info.channel
        }) else {
            return;
        };
        self.cmut(cid, |c| {
            c.ringing = None;
            c.take(xid, channel);
            c.misses = 0;
            c.idle_since = now;
        });
        out.push(Output::Assigned { contact: xid, counsellor: cid, answered_at: now });
    }

    fn decline(&mut self, now: Millis, cid: CounsellorId, xid: ContactId, out: &mut Vec<Output>) {
        if let Err(e) = self.check_offer(cid, xid) {
            out.push(Output::Rejected { counsellor: cid, contact: xid, rejection: e.unwrap_or(Rejection::NoSuchOffer) });
            return;
        }
        self.wmut(xid, |w| {
            w.offer = None;
            w.pinned = None;
            w.tried.insert(cid, now);
        });
        self.cmut(cid, |c| {
            c.ringing = None;
            c.misses = 0;
        });
        out.push(Output::OfferDeclined { contact: xid, counsellor: cid });
    }

    /// End and forget a contact (no-op if unknown): revoke its offer, free its counsellor's slot.
    fn end_contact(&mut self, now: Millis, id: ContactId, reason: EndReason, out: &mut Vec<Output>) {
        let Some(x) = self.remove_contact(id) else {
            return;
        };
        match x.stage {
            Stage::Waiting(w) => {
                if let Some(r) = w.offer {
                    self.cmut(r.counsellor, |c| {
                        if c.ringing == Some(id) {
                            c.ringing = None;
                        }
                    });
                    out.push(Output::OfferRevoked { contact: id, counsellor: r.counsellor, reason: RevokeReason::ContactGone });
                }
                out.push(Output::Ended { contact: id, helpline: x.info.helpline.clone(), counsellor: None, reason, abandoned: true });
            }
            Stage::Assigned { counsellor, .. } => {
                self.cmut(counsellor, |c| {
                    c.release(id);
                    c.idle_since = now;
                });
                out.push(Output::Ended {
                    contact: id,
                    helpline: x.info.helpline.clone(),
                    counsellor: Some(counsellor),
                    reason,
                    abandoned: false,
                });
                self.start_wrapup(now, counsellor, id, &x.info.helpline, out);
            }
        }
    }

    /// Whether the indexes are exactly what the state implies (for tests).
    #[cfg(test)]
    fn index_consistent(&self) -> Result<(), String> {
        let mut fresh = Index { chat_on_call: chat_on_call(&self.helplines), ..Index::default() };
        for c in self.counsellors.values() {
            fresh.add_counsellor(c);
        }
        for x in self.contacts.values() {
            fresh.add_contact(self.timings(&x.info.helpline), x, None);
        }
        let strip = |ix: &Index| {
            let mut ix = ix.clone();
            ix.dirty.clear();
            for q in ix.queues.values_mut() {
                for p in q.values_mut() {
                    *p = 0;
                }
            }
            ix
        };
        if strip(&fresh) != strip(&self.ix) {
            return Err(format!("index out of step:\nfresh {fresh:#?}\nkept {:#?}", self.ix));
        }
        if !self.ix.dirty.is_empty() {
            return Err("dirty helplines left after a step".into());
        }
        // Reported positions are the current ones.
        for q in self.ix.queues.values() {
            for (n, p) in q.values().enumerate() {
                if u64::from(*p) != n as u64 + 1 {
                    return Err(format!("stale reported position {p}, current {}", n + 1));
                }
            }
        }
        Ok(())
    }
}

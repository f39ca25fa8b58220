//! The original, straightforward engine (full scans on every step), kept as a reference model:
//! the equivalence property tests check that the incremental [`super::Engine`] produces exactly
//! the same outputs, snapshots, positions and deadlines over random input sequences.
//!
//! Do not optimise this file: its value is in being obviously correct.

#![allow(dead_code)]

use super::types::*;
use super::views::*;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

/// The per-helpline timings the engine uses, with nonsensical values clamped.
#[derive(Debug, Clone, Copy)]
struct Timings {
    ring_timeout: Millis,
    backup_after: Millis,
    at_risk: Millis,
    target: Millis,
    grace: Millis,
    wrapup: Millis,
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
    ringing: Option<ContactId>,
    idle_since: Millis,
    misses: u32,
    /// Slots in wrap-up: ended contact -> until.
    wrapups: BTreeMap<ContactId, Millis>,
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
            ringing: None,
            idle_since: now,
            misses: 0,
            wrapups: BTreeMap::new(),
            away_reason: None,
        }
    }

    /// Conversations and wrap-ups together below capacity.
    fn has_room(&self) -> bool {
        ((self.active.len() + self.wrapups.len()) as u64) < u64::from(self.profile.capacity)
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
            wrapping_up: self.wrapups.iter().map(|(&x, &u)| (x, u)).collect(),
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

    /// Global queue order: priority descending, then calls before chats (unless the helpline
    /// is configured otherwise), then FIFO, then id.
    fn queue_key(&self, helplines: &BTreeMap<Helpline, HelplineConfig>) -> (Reverse<i32>, u8, Millis, ContactId) {
        let calls_first = helplines.get(&self.info.helpline).is_none_or(|c| c.calls_first);
        let rank = if self.info.channel == Channel::Call && calls_first { 0 } else { 1 };
        (Reverse(self.info.priority), rank, self.info.queued_at, self.info.id)
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

/// The routing engine. See the module docs and [`Engine::handle`].
#[derive(Debug, Clone)]
pub struct Engine {
    helplines: BTreeMap<Helpline, HelplineConfig>,
    misses_before_away: u32,
    /// The latest `now` seen.
    now: Millis,
    counsellors: BTreeMap<CounsellorId, Counsellor>,
    contacts: BTreeMap<ContactId, Contact>,
    /// Positions last reported in an [`Output::Positions`].
    reported: BTreeMap<ContactId, u32>,
}

impl Engine {
    /// An engine with no counsellors and no contacts. For duplicate helpline names the first config wins.
    #[must_use]
    pub fn new(config: EngineConfig) -> Self {
        let mut helplines = BTreeMap::new();
        for h in config.helplines {
            helplines.entry(h.name.clone()).or_insert(h);
        }
        Self {
            helplines,
            misses_before_away: config.misses_before_away,
            now: Millis::MIN,
            counsellors: BTreeMap::new(),
            contacts: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
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
        let mut best: Option<Millis> = None;
        let mut consider = |t: Millis| {
            best = Some(best.map_or(t, |b| b.min(t)));
        };
        for x in self.contacts.values() {
            if let Some(g) = x.grace_until {
                consider(g);
            }
            let Some(w) = x.waiting() else { continue };
            let tm = self.timings(&x.info.helpline);
            let q = x.info.queued_at;
            if !w.backup_done {
                consider(q.saturating_add(tm.backup_after));
            }
            if !w.at_risk_done {
                consider(q.saturating_add(tm.at_risk));
            }
            if !w.breached_done {
                consider(q.saturating_add(tm.target));
            }
            match w.offer {
                Some(r) => consider(r.expires_at),
                None => {
                    for &at in w.tried.values() {
                        let ready = at.saturating_add(tm.ring_timeout);
                        if ready > self.now {
                            consider(ready);
                        }
                    }
                }
            }
        }
        for c in self.counsellors.values() {
            for &until in c.wrapups.values() {
                consider(until);
            }
        }
        best
    }

    /// 1-based position of a waiting contact in its helpline's queue; `None` if not waiting.
    #[must_use]
    pub fn position(&self, contact: ContactId) -> Option<u32> {
        let x = self.contacts.get(&contact)?;
        x.waiting()?;
        let key = x.queue_key(&self.helplines);
        let ahead = self
            .contacts
            .values()
            .filter(|y| y.waiting().is_some() && y.info.helpline == x.info.helpline && y.queue_key(&self.helplines) < key)
            .count();
        Some(u32::try_from(ahead).unwrap_or(u32::MAX - 1) + 1)
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
        let positions = self.positions();
        let mut waiting: Vec<WaitingView> = positions
            .iter()
            .filter_map(|(id, &(_, position))| {
                let x = self.contacts.get(id)?;
                let w = x.waiting()?;
                Some(WaitingView {
                    contact: *id,
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
        waiting.sort_by(|a, b| (&a.helpline, a.position).cmp(&(&b.helpline, b.position)));
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

    // ----- configuration and order -------------------------------------------------

    fn timings(&self, helpline: &str) -> Timings {
        match self.helplines.get(helpline) {
            Some(c) => Timings::from_config(c),
            None => Timings::from_config(&HelplineConfig::with_defaults(String::new())),
        }
    }

    /// Waiting contacts in global order (priority desc, `queued_at` asc, id asc).
    fn waiting_order(&self) -> Vec<ContactId> {
        let mut keys: Vec<_> = self.contacts.values().filter(|x| x.waiting().is_some()).map(|x| x.queue_key(&self.helplines)).collect();
        keys.sort();
        keys.into_iter().map(|(_, _, _, id)| id).collect()
    }

    /// Current position of every waiting contact, with its helpline.
    fn positions(&self) -> BTreeMap<ContactId, (Helpline, u32)> {
        let mut counters: BTreeMap<&str, u32> = BTreeMap::new();
        let mut result = BTreeMap::new();
        for id in self.waiting_order() {
            if let Some(x) = self.contacts.get(&id) {
                let n = counters.entry(x.info.helpline.as_str()).or_insert(0);
                *n = n.saturating_add(1);
                result.insert(id, (x.info.helpline.clone(), *n));
            }
        }
        result
    }

    fn report_positions(&mut self, out: &mut Vec<Output>) {
        let current = self.positions();
        let mut changed: Vec<(&Helpline, u32, ContactId)> =
            current.iter().filter(|(id, (_, p))| self.reported.get(id) != Some(p)).map(|(id, (h, p))| (h, *p, *id)).collect();
        changed.sort();
        if !changed.is_empty() {
            out.push(Output::Positions { positions: changed.into_iter().map(|(_, p, id)| (id, p)).collect() });
        }
        self.reported = current.into_iter().map(|(id, (_, p))| (id, p)).collect();
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
        if x.waiting().is_some() && !x.info.caller_connected && self.timings(&x.info.helpline).hold_offline {
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

    /// Whether `c` may take a contact of `x`'s channel: a senior-only contact needs a senior; a call
    /// needs an extension and no call in conversation; a chat needs no call in conversation, unless
    /// its helpline allows it.
    fn takes(&self, c: &Counsellor, x: &Contact) -> bool {
        if x.info.senior_only && !c.profile.senior {
            return false;
        }
        let on_call = c.active.iter().any(|id| self.contacts.get(id).is_some_and(|y| y.info.channel == Channel::Call));
        match x.info.channel {
            Channel::Call => c.profile.takes_calls && !on_call,
            Channel::Chat => !on_call || self.helplines.get(&x.info.helpline).is_some_and(|h| h.chat_while_on_call),
        }
    }

    /// Offer every waiting, un-ringing contact (in global order) to its best eligible counsellor.
    fn dispatch(&mut self, now: Millis, out: &mut Vec<Output>) {
        /// Best first: fewest active, longest idle, smallest id.
        type Key = (usize, Millis, CounsellorId);
        // Counsellors who could take an offer of some contact now.
        let mut free: Vec<CounsellorId> = self
            .counsellors
            .iter()
            .filter(|(_, c)| c.ringing.is_none() && !c.removed && c.connected && c.status == Status::Available && c.has_room())
            .map(|(id, _)| *id)
            .collect();
        for id in self.waiting_order() {
            if free.is_empty() {
                break;
            }
            let Some(x) = self.contacts.get(&id) else {
                continue;
            };
            let Some(w) = x.waiting() else { continue };
            if w.offer.is_some() {
                continue;
            }
            let tm = self.timings(&x.info.helpline);
            let mut untried: Option<(Key, bool)> = None;
            let mut retry: Option<(Key, bool)> = None;
            for cid in &free {
                let Some(c) = self.counsellors.get(cid) else {
                    continue;
                };
                let Some(as_backup) = self.eligible(c, x, now) else {
                    continue;
                };
                let key = (c.active.len(), c.idle_since, *cid);
                let slot = match w.tried.get(cid) {
                    None => &mut untried,
                    Some(&at) if now >= at.saturating_add(tm.ring_timeout) => &mut retry,
                    Some(_) => continue,
                };
                if slot.as_ref().is_none_or(|(k, _)| key < *k) {
                    *slot = Some((key, as_backup));
                }
            }
            let Some(((_, _, cid), as_backup)) = untried.or(retry) else {
                continue;
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
            if let Some(w) = self.contacts.get_mut(&id).and_then(Contact::waiting_mut) {
                w.offer = Some(Ring { counsellor: cid, expires_at });
            }
            if let Some(c) = self.counsellors.get_mut(&cid) {
                c.ringing = Some(id);
            }
            free.retain(|f| *f != cid);
            out.push(offer);
        }
    }

    /// Take back the offer ringing for `cid`, if any, without marking it tried.
    fn revoke_ring(&mut self, cid: CounsellorId, reason: RevokeReason, out: &mut Vec<Output>) {
        let Some(c) = self.counsellors.get_mut(&cid) else {
            return;
        };
        let Some(xid) = c.ringing.take() else { return };
        if let Some(w) = self.contacts.get_mut(&xid).and_then(Contact::waiting_mut) {
            w.offer = None;
        }
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
        let mut due: Vec<(Millis, TimerKind, ContactId)> = Vec::new();
        for x in self.contacts.values() {
            let id = x.info.id;
            if let Some(g) = x.grace_until {
                if g <= now {
                    due.push((g, TimerKind::Grace, id));
                }
            }
            let Some(w) = x.waiting() else { continue };
            let tm = self.timings(&x.info.helpline);
            let q = x.info.queued_at;
            let mut check = |done: bool, at: Millis, kind: TimerKind| {
                if !done && at <= now {
                    due.push((at, kind, id));
                }
            };
            check(w.backup_done, q.saturating_add(tm.backup_after), TimerKind::Backup);
            check(w.at_risk_done, q.saturating_add(tm.at_risk), TimerKind::AtRisk);
            check(w.breached_done, q.saturating_add(tm.target), TimerKind::Breached);
            if let Some(r) = w.offer {
                check(false, r.expires_at, TimerKind::Expiry);
            }
        }
        due.sort();
        for (at, kind, id) in due {
            self.fire(now, at, kind, id, out);
        }
        let mut ends: Vec<(Millis, CounsellorId, ContactId)> = Vec::new();
        for c in self.counsellors.values() {
            for (&x, &until) in &c.wrapups {
                if until <= now {
                    ends.push((until, c.profile.id, x));
                }
            }
        }
        ends.sort();
        for (_, cid, x) in ends {
            if let Some(c) = self.counsellors.get_mut(&cid) {
                c.wrapups.remove(&x);
            }
            out.push(Output::WrapUpEnded { counsellor: cid, contact: x, reason: WrapUpEnd::Limit });
        }
    }

    /// Process one due timer, if it is still pending (an earlier one may have ended the contact).
    fn fire(&mut self, now: Millis, at: Millis, kind: TimerKind, id: ContactId, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.get_mut(&id) else {
            return;
        };
        let waited = now.saturating_sub(x.info.queued_at);
        if kind == TimerKind::Grace {
            if x.grace_until == Some(at) {
                self.end_contact(now, id, EndReason::CallerLost, out);
            }
            return;
        }
        let Some(w) = x.waiting_mut() else { return };
        match kind {
            TimerKind::Backup if !w.backup_done => {
                w.backup_done = true;
                out.push(Output::BackupOverflow { contact: id });
            }
            TimerKind::AtRisk if !w.at_risk_done => {
                w.at_risk_done = true;
                out.push(Output::SlaAtRisk { contact: id, waited_ms: waited });
            }
            TimerKind::Breached if !w.breached_done => {
                w.breached_done = true;
                out.push(Output::SlaBreached { contact: id, waited_ms: waited });
            }
            TimerKind::Expiry => {
                let Some(r) = w.offer else { return };
                if r.expires_at != at {
                    return;
                }
                w.offer = None;
                w.pinned = None;
                w.tried.insert(r.counsellor, at);
                let gone = !x.info.caller_connected;
                out.push(Output::OfferRevoked { contact: id, counsellor: r.counsellor, reason: RevokeReason::Expired });
                let limit = self.misses_before_away;
                if let Some(c) = self.counsellors.get_mut(&r.counsellor) {
                    if c.ringing == Some(id) {
                        c.ringing = None;
                    }
                    // A gone caller's offer ringing out is not the counsellor's miss.
                    if gone {
                        return;
                    }
                    c.misses = c.misses.saturating_add(1);
                    if limit > 0 && c.misses >= limit && c.status != Status::Away {
                        c.status = Status::Away;
                        c.status_since = at;
                        c.away_reason = Some("missed_offers".into());
                        out.push(Output::StatusChanged {
                            counsellor: r.counsellor,
                            status: Status::Away,
                            reason: StatusReason::MissedOffers,
                        });
                    }
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
                match self.counsellors.get_mut(&id) {
                    Some(c) => {
                        c.profile = profile;
                        c.removed = false;
                        self.recheck_ring(id, now, out);
                    }
                    None => {
                        self.counsellors.insert(id, Counsellor::new(profile, now));
                    }
                }
            }
            Input::RemoveCounsellor { counsellor } => {
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    c.removed = true;
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::CounsellorConnected { counsellor } => {
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    if !c.connected {
                        c.connected = true;
                        c.status_since = now;
                    }
                }
            }
            Input::CounsellorDisconnected { counsellor } => {
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    if c.connected {
                        c.status_since = now;
                    }
                    c.connected = false;
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::SetStatus { counsellor, status } => {
                let Some(c) = self.counsellors.get_mut(&counsellor) else {
                    return;
                };
                if c.status == status {
                    return;
                }
                c.status = status;
                c.status_since = now;
                c.away_reason = None;
                if status == Status::Available {
                    c.misses = 0;
                    c.idle_since = now;
                } else {
                    self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
                }
            }
            Input::ContactQueued(info) => {
                if self.contacts.contains_key(&info.id) {
                    return;
                }
                let grace_until = (!info.caller_connected).then(|| now.saturating_add(self.timings(&info.helpline).grace));
                self.contacts.insert(info.id, Contact { info, grace_until, triaged: false, stage: Stage::Waiting(Waiting::default()) });
            }
            Input::ContactRestoredAssigned { contact, counsellor, answered_at } => {
                self.restore_assigned(now, contact, counsellor, answered_at, out)
            }
            Input::RestoreCounsellor { counsellor, away, wrapups } => {
                let c = self.known(counsellor, now);
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
                self.recheck_ring(counsellor, now, out);
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
                let hold = self.timings(&x.info.helpline).hold_offline;
                let mut ringing = None;
                if let Some(x) = self.contacts.get_mut(&contact) {
                    x.info.caller_connected = false;
                    if x.grace_until.is_none() {
                        x.grace_until = Some(now.saturating_add(grace));
                    }
                    if hold {
                        ringing = x.waiting().and_then(|w| w.offer).map(|r| r.counsellor);
                    }
                }
                if let Some(cid) = ringing {
                    self.revoke_ring(cid, RevokeReason::CallerAway, out);
                }
            }
            Input::CallerConnected { contact } => {
                if let Some(x) = self.contacts.get_mut(&contact) {
                    x.info.caller_connected = true;
                    x.grace_until = None;
                }
            }
            Input::SetPriority { contact, priority } => {
                if let Some(x) = self.contacts.get_mut(&contact) {
                    x.info.priority = priority;
                }
            }
            Input::OfferTo { contact, counsellor } => self.offer_to(contact, counsellor, out),
            Input::Transfer { contact, to } => self.transfer(now, None, contact, to, out),
            Input::HandOver { by, contact, to } => self.transfer(now, Some(by), contact, to, out),
            Input::Ready { counsellor, contact } => {
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    if c.wrapups.remove(&contact).is_some() {
                        out.push(Output::WrapUpEnded { counsellor, contact, reason: WrapUpEnd::Ready });
                    }
                }
            }
            Input::SetAway { counsellor, reason } => {
                let Some(c) = self.counsellors.get(&counsellor) else {
                    return;
                };
                // Any helpline she serves (first-line or backup) may allow it; one not configured
                // allows the defaults; so does serving none.
                let defaults = ["break", "training", "supervision", "admin"];
                let hs: BTreeSet<&String> = c.profile.helplines.iter().chain(&c.profile.backup_helplines).collect();
                let ok = if hs.is_empty() {
                    defaults.contains(&reason.as_str())
                } else {
                    hs.iter().any(|h| match self.helplines.get(*h) {
                        Some(cfg) => cfg.away_reasons.contains(&reason),
                        None => defaults.contains(&reason.as_str()),
                    })
                };
                if !ok {
                    out.push(Output::AwayRefused { counsellor, reason });
                    return;
                }
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    if c.status != Status::Away {
                        c.status = Status::Away;
                        c.status_since = now;
                    }
                    c.away_reason = Some(reason);
                }
                self.revoke_ring(counsellor, RevokeReason::CounsellorUnavailable, out);
            }
            Input::Triage { contact, danger } => {
                let Some(x) = self.contacts.get_mut(&contact) else {
                    return;
                };
                if x.triaged {
                    return;
                }
                let Some(p) = self.helplines.get(&x.info.helpline).and_then(|h| h.triage_priority) else {
                    return;
                };
                x.triaged = true;
                if danger && x.info.priority < p {
                    x.info.priority = p;
                }
                out.push(Output::Triaged { contact, helpline: x.info.helpline.clone(), danger, priority: x.info.priority });
            }
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
        if let Some(w) = self.contacts.get_mut(&xid).and_then(Contact::waiting_mut) {
            w.pinned = Some(cid);
            w.tried.remove(&cid);
        }
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
                if let Some(c) = self.counsellors.get_mut(&from) {
                    c.active.remove(&xid);
                    c.idle_since = now;
                }
                if let Some(c) = self.counsellors.get_mut(&cid) {
                    c.active.insert(xid);
                    c.idle_since = now;
                }
                let helpline = x.info.helpline.clone();
                if let Some(x) = self.contacts.get_mut(&xid) {
                    x.stage = Stage::Assigned { counsellor: cid, answered_at };
                }
                out.push(Output::Transferred { contact: xid, from, to: Some(cid), helpline });
                // Taking the contact may have filled the new counsellor's last slot.
                self.recheck_ring(cid, now, out);
            }
            TransferTarget::Helpline(helpline) => {
                if let Some(c) = self.counsellors.get_mut(&from) {
                    c.active.remove(&xid);
                    c.idle_since = now;
                }
                if let Some(x) = self.contacts.get_mut(&xid) {
                    x.info.helpline = helpline.clone();
                    x.info.queued_at = now;
                    x.info.priority = x.info.priority.max(PRIORITY_TRANSFER);
                    x.stage = Stage::Waiting(Waiting::default());
                }
                out.push(Output::Transferred { contact: xid, from, to: None, helpline });
            }
        }
    }

    /// The counsellor, added without a profile if unknown.
    fn known(&mut self, cid: CounsellorId, now: Millis) -> &mut Counsellor {
        self.counsellors.entry(cid).or_insert_with(|| {
            let empty = CounsellorProfile {
                id: cid,
                helplines: BTreeSet::new(),
                backup_helplines: BTreeSet::new(),
                languages: BTreeSet::new(),
                capacity: 0,
                takes_calls: false,
                senior: false,
            };
            Counsellor::new(empty, now)
        })
    }

    fn restore_assigned(&mut self, now: Millis, info: NewContact, cid: CounsellorId, answered_at: Millis, out: &mut Vec<Output>) {
        if self.contacts.contains_key(&info.id) {
            return;
        }
        let id = info.id;
        let grace_until = (!info.caller_connected).then(|| now.saturating_add(self.timings(&info.helpline).grace));
        let c = self.known(cid, now);
        c.active.insert(id);
        c.idle_since = c.idle_since.max(answered_at.min(now));
        self.contacts.insert(id, Contact { info, grace_until, triaged: false, stage: Stage::Assigned { counsellor: cid, answered_at } });
        // The restored contact may have filled the counsellor's last slot.
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
        if let Some(x) = self.contacts.get_mut(&xid) {
            x.stage = Stage::Assigned { counsellor: cid, answered_at: now };
        }
        if let Some(c) = self.counsellors.get_mut(&cid) {
            c.ringing = None;
            c.active.insert(xid);
            c.misses = 0;
            c.idle_since = now;
        }
        out.push(Output::Assigned { contact: xid, counsellor: cid, answered_at: now });
    }

    fn decline(&mut self, now: Millis, cid: CounsellorId, xid: ContactId, out: &mut Vec<Output>) {
        if let Err(e) = self.check_offer(cid, xid) {
            out.push(Output::Rejected { counsellor: cid, contact: xid, rejection: e.unwrap_or(Rejection::NoSuchOffer) });
            return;
        }
        if let Some(w) = self.contacts.get_mut(&xid).and_then(Contact::waiting_mut) {
            w.offer = None;
            w.pinned = None;
            w.tried.insert(cid, now);
        }
        if let Some(c) = self.counsellors.get_mut(&cid) {
            c.ringing = None;
            c.misses = 0;
        }
        out.push(Output::OfferDeclined { contact: xid, counsellor: cid });
    }

    /// End and forget a contact (no-op if unknown): revoke its offer, free its counsellor's slot.
    fn end_contact(&mut self, now: Millis, id: ContactId, reason: EndReason, out: &mut Vec<Output>) {
        let Some(x) = self.contacts.remove(&id) else {
            return;
        };
        self.reported.remove(&id);
        match x.stage {
            Stage::Waiting(w) => {
                if let Some(r) = w.offer {
                    if let Some(c) = self.counsellors.get_mut(&r.counsellor) {
                        if c.ringing == Some(id) {
                            c.ringing = None;
                        }
                    }
                    out.push(Output::OfferRevoked { contact: id, counsellor: r.counsellor, reason: RevokeReason::ContactGone });
                }
                out.push(Output::Ended { contact: id, helpline: x.info.helpline.clone(), counsellor: None, reason, abandoned: true });
            }
            Stage::Assigned { counsellor, .. } => {
                if let Some(c) = self.counsellors.get_mut(&counsellor) {
                    c.active.remove(&id);
                    c.idle_since = now;
                }
                out.push(Output::Ended {
                    contact: id,
                    helpline: x.info.helpline.clone(),
                    counsellor: Some(counsellor),
                    reason,
                    abandoned: false,
                });
                let limit = self.timings(&x.info.helpline).wrapup;
                if limit > 0 {
                    if let Some(c) = self.counsellors.get_mut(&counsellor) {
                        let until = now.saturating_add(limit);
                        c.wrapups.insert(id, until);
                        out.push(Output::WrapUp { counsellor, contact: id, until });
                    }
                }
            }
        }
    }
}

//! Contact-centre figures (service level, ASA, abandonment, AHT, occupancy): their definitions, pure
//! (no database, no clock), used by the store's reads (`store::figures`, `store::rollup`), the live
//! supervisor board, the reports, the staffing estimates and the simulator alike.
//!
//! Every figure is defined once, here: [`Tally::add`] classifies one contact (answered, in target,
//! abandoned, short, waiting…), [`Tally::figures`] turns the counts into the ratios (the board's
//! [`Figures`]), and [`occupancy_series`] turns conversations and status changes into busy and staffed
//! time. `docs/metrics.md` states the same definitions in words and formulas; keep the three in step.
//! The SQL that counts the same way over the database (`store::figures::TALLY_SQL`) stays in the store.

use std::collections::{BTreeMap, BTreeSet};

/// A contact abandoned less than this long after it was queued is a *short abandon*: counted apart,
/// left out of service level and abandonment rate (a misdial, or a caller who changed their mind).
pub const SHORT_ABANDON_MS: i64 = 5_000;
/// The answer target when a helpline has none configured (the promise: 15 seconds).
pub const DEFAULT_TARGET_MS: i64 = 15_000;
/// Conversations whose contact was queued up to this long before a window starts still count toward
/// that window's occupancy for their part inside it (a chat open across the window's start).
pub const OCCUPANCY_LOOKBACK_MS: i64 = 24 * 3_600_000;

pub use super::board::Figures;

/// One contact's times, as the figures need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactTimes {
    pub queued_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// When the counsellor's wrap-up of it ended (ready, form submitted, or the limit): handle time
    /// runs to it (None: no wrap-up, or not ended yet: to `ended_at`).
    pub wrapup_ended_at: Option<i64>,
    /// Ended while waiting (state `abandoned`).
    pub abandoned: bool,
    /// The answer target of the contact's helpline (`sla_target_ms`).
    pub target_ms: i64,
}

/// What the classification depends on besides the contact itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The moment the figures describe: contacts still waiting or in conversation are judged as of then.
    pub as_of_ms: i64,
    pub short_abandon_ms: i64,
}

impl Rules {
    pub fn as_of(as_of_ms: i64) -> Rules {
        Rules { as_of_ms, short_abandon_ms: SHORT_ABANDON_MS }
    }
}

/// Counts and sums for one group of contacts. [`Tally::add`] is the single place a contact is classified;
/// the store's SQL twin of it (`store::figures::TALLY_SQL`) hands its counts in through
/// `store::figures::TallyCounts::tally`, the only other place a tally is built.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub(crate) offered: i64,
    pub(crate) answered: i64,
    pub(crate) answered_in_target: i64,
    pub(crate) abandoned: i64,
    pub(crate) abandoned_short: i64,
    pub(crate) waiting: i64,
    pub(crate) waiting_in_target: i64,
    pub(crate) in_conversation: i64,
    pub(crate) handled: i64,
    pub(crate) answer_ms_sum: i128,
    pub(crate) handle_ms_sum: i128,
    /// Answer times, kept only when percentiles are wanted.
    pub(crate) answer_times: Option<Vec<i64>>,
}

impl Tally {
    /// A tally without percentiles (cheaper: nothing is kept per contact).
    pub fn new() -> Tally {
        Tally::default()
    }

    /// A tally that keeps answer times for the percentiles.
    pub fn with_percentiles() -> Tally {
        Tally { answer_times: Some(Vec::new()), ..Tally::default() }
    }

    /// Classifies one contact (see `docs/metrics.md`).
    pub fn add(&mut self, c: &ContactTimes, rules: &Rules) {
        self.offered += 1;
        let ended_unanswered = c.answered_at.is_none() && c.ended_at.is_some();
        if c.abandoned || ended_unanswered {
            // Ended while waiting. (The store always marks these `abandoned`; an ended,
            // never-answered contact is treated the same way if one ever appears.)
            self.abandoned += 1;
            if let Some(end) = c.ended_at {
                if end - c.queued_at < rules.short_abandon_ms {
                    self.abandoned_short += 1;
                }
            }
        } else if let Some(answered) = c.answered_at {
            self.answered += 1;
            let wait = (answered - c.queued_at).max(0);
            self.answer_ms_sum += i128::from(wait);
            if wait <= c.target_ms {
                self.answered_in_target += 1;
            }
            if let Some(times) = &mut self.answer_times {
                times.push(wait);
            }
            match c.ended_at {
                Some(end) => {
                    self.handled += 1;
                    // Handle time includes the wrap-up (docs/metrics.md).
                    self.handle_ms_sum += i128::from((c.wrapup_ended_at.unwrap_or(end) - answered).max(0));
                }
                None => self.in_conversation += 1,
            }
        } else {
            self.waiting += 1;
            if rules.as_of_ms - c.queued_at <= c.target_ms {
                self.waiting_in_target += 1;
            }
        }
    }

    /// The figures of everything added so far (occupancy is left None: it is not a per-contact figure).
    pub fn figures(&self) -> Figures {
        let ratio = |num: i64, den: i64| (den > 0).then(|| num as f64 / den as f64);
        let mean = |sum: i128, n: i64| (n > 0).then(|| sum as f64 / n as f64);
        let (p50, p90, p99) = match &self.answer_times {
            Some(times) if !times.is_empty() => {
                let mut sorted = times.clone();
                sorted.sort_unstable();
                (percentile(&sorted, 50.0), percentile(&sorted, 90.0), percentile(&sorted, 99.0))
            }
            _ => (None, None, None),
        };
        Figures {
            offered: self.offered,
            answered: self.answered,
            answered_in_target: self.answered_in_target,
            abandoned: self.abandoned,
            abandoned_short: self.abandoned_short,
            service_level: ratio(self.answered_in_target, self.offered - self.abandoned_short - self.waiting_in_target),
            asa_ms: mean(self.answer_ms_sum, self.answered),
            abandonment_rate: ratio(self.abandoned - self.abandoned_short, self.answered + self.abandoned - self.abandoned_short),
            aht_ms: mean(self.handle_ms_sum, self.handled),
            occupancy: None,
            waiting: self.waiting,
            waiting_in_target: self.waiting_in_target,
            in_conversation: self.in_conversation,
            handled: self.handled,
            answer_p50_ms: p50,
            answer_p90_ms: p90,
            answer_p99_ms: p99,
        }
    }
}

/// Nearest-rank percentile of an ascending slice: the smallest value with at least `p` % of values at or below it.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The figures of a set of contacts: the one function the live view, reports, staffing and simulator share.
pub fn compute(rows: &[ContactTimes], rules: &Rules) -> Figures {
    let mut tally = Tally::with_percentiles();
    for row in rows {
        tally.add(row, rules);
    }
    tally.figures()
}

// ----- occupancy ---------------------------------------------------------------------------

/// A conversation: a counsellor with a contact from `answered_at` to `ended_at` (None: still open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub counsellor: String,
    pub answered_at: i64,
    pub ended_at: Option<i64>,
}

/// A counsellor's status change: `available` true when they became available, false for away or offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub counsellor: String,
    pub at: i64,
    pub available: bool,
}

/// Busy and staffed time in one bucket, summed over counsellors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub busy_ms: i64,
    pub staffed_ms: i64,
}

impl Occupancy {
    /// busy ÷ staffed; None when nobody was staffed.
    pub fn ratio(&self) -> Option<f64> {
        (self.staffed_ms > 0).then(|| self.busy_ms as f64 / self.staffed_ms as f64)
    }
}

/// Occupancy per bucket `[bounds[i], bounds[i+1])`, time after `as_of_ms` left out.
///
/// Per counsellor: *busy* = the union of their conversations' intervals (several chats at once
/// count once); *available* = the intervals in which their last status change says `available`
/// (before their first known change: not available); *staffed* = available ∪ busy (a counsellor
/// finishing a chat after going away is still working). Occupancy of a bucket =
/// Σ busy ∩ bucket ÷ Σ staffed ∩ bucket over counsellors. `changes` should hold, per counsellor,
/// the last change before the first bound as well as those inside the range.
pub fn occupancy_series(conversations: &[Conversation], changes: &[StatusChange], bounds: &[i64], as_of_ms: i64) -> Vec<Occupancy> {
    let mut out = vec![Occupancy::default(); bounds.len().saturating_sub(1)];
    for per_bucket in occupancy_by_counsellor(conversations, changes, bounds, as_of_ms).values() {
        for (o, c) in out.iter_mut().zip(per_bucket) {
            o.busy_ms += c.busy_ms;
            o.staffed_ms += c.staffed_ms;
        }
    }
    out
}

/// [`occupancy_series`] per counsellor (its sum over counsellors is the series): what the hourly
/// roll-ups store, since both sums are additive over counsellors and over time.
pub fn occupancy_by_counsellor(
    conversations: &[Conversation],
    changes: &[StatusChange],
    bounds: &[i64],
    as_of_ms: i64,
) -> BTreeMap<String, Vec<Occupancy>> {
    let buckets = bounds.len().saturating_sub(1);
    let mut result = BTreeMap::new();
    if buckets == 0 {
        return result;
    }
    let horizon = bounds[buckets].min(as_of_ms);
    let mut busy: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for c in conversations {
        let end = c.ended_at.unwrap_or(as_of_ms).min(as_of_ms);
        if end > c.answered_at {
            busy.entry(c.counsellor.as_str()).or_default().push((c.answered_at, end));
        }
    }
    let mut by_counsellor: BTreeMap<&str, Vec<&StatusChange>> = BTreeMap::new();
    for s in changes {
        by_counsellor.entry(s.counsellor.as_str()).or_default().push(s);
    }
    let mut available: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (who, mut list) in by_counsellor {
        list.sort_by_key(|s| s.at);
        let mut since: Option<i64> = None;
        let spans = available.entry(who).or_default();
        for s in list {
            match (since, s.available) {
                (None, true) => since = Some(s.at),
                (Some(start), false) => {
                    spans.push((start, s.at));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(start) = since {
            spans.push((start, horizon.max(start)));
        }
    }
    let who: BTreeSet<&str> = busy.keys().chain(available.keys()).copied().collect();
    for w in who {
        let busy_spans = merge(busy.remove(w).unwrap_or_default());
        let mut staffed = available.remove(w).unwrap_or_default();
        staffed.extend_from_slice(&busy_spans);
        let staffed = merge(staffed);
        let mut out = vec![Occupancy::default(); buckets];
        spread(&busy_spans, bounds, horizon, &mut out, |o, d| o.busy_ms += d);
        spread(&staffed, bounds, horizon, &mut out, |o, d| o.staffed_ms += d);
        result.insert(w.to_string(), out);
    }
    result
}

/// Sorts and merges overlapping or touching intervals.
pub(crate) fn merge(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Adds each interval's overlap with each bucket (up to `horizon`) through `add`.
fn spread(spans: &[(i64, i64)], bounds: &[i64], horizon: i64, out: &mut [Occupancy], add: impl Fn(&mut Occupancy, i64)) {
    let first = bounds[0];
    for &(s, e) in spans {
        let (s, e) = (s.max(first), e.min(horizon));
        if e <= s {
            continue;
        }
        // The bucket holding `s`: the last bound ≤ s.
        let mut i = bounds.partition_point(|&b| b <= s).saturating_sub(1);
        while i < out.len() && bounds[i] < e {
            let overlap = e.min(bounds[i + 1]) - s.max(bounds[i]);
            if overlap > 0 {
                add(&mut out[i], overlap);
            }
            i += 1;
        }
    }
}

impl Tally {
    /// Adds another tally's counts (answer times too, when both keep them).
    pub fn merge(&mut self, o: &Tally) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.answered_in_target += o.answered_in_target;
        self.abandoned += o.abandoned;
        self.abandoned_short += o.abandoned_short;
        self.waiting += o.waiting;
        self.waiting_in_target += o.waiting_in_target;
        self.in_conversation += o.in_conversation;
        self.handled += o.handled;
        self.answer_ms_sum += o.answer_ms_sum;
        self.handle_ms_sum += o.handle_ms_sum;
        match (&mut self.answer_times, &o.answer_times) {
            (Some(mine), Some(theirs)) => mine.extend_from_slice(theirs),
            (Some(_), None) => self.answer_times = None,
            _ => {}
        }
    }
}

// ----- wrap-up and away time -----------------------------------------------------------------

/// Wrap-ups: how many ended, their total and mean length (a wrap-up runs from its contact's end to
/// `wrapup_ended_at`: ready, form submitted, or the helpline's limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WrapUps {
    pub count: i64,
    pub total_ms: i64,
    /// None with no wrap-up.
    pub mean_ms: Option<f64>,
}

impl WrapUps {
    /// Adds one wrap-up: from the contact's end to the wrap-up's end.
    pub fn add(&mut self, ended_at: i64, wrapup_ended_at: i64) {
        self.count += 1;
        self.total_ms += (wrapup_ended_at - ended_at).max(0);
        self.mean_ms = Some(self.total_ms as f64 / self.count as f64);
    }
}

/// A counsellor's status change with its reason, for away time: `reason` is what she was away for
/// (her away reason; else who set her away: `missed_offers`, `supervisor`; else `unspecified`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwayChange {
    pub counsellor: String,
    pub at: i64,
    /// Away (with its reason), or not away (None: available or offline).
    pub reason: Option<String>,
}

/// Time away in `[from, to)` per (counsellor, reason), from status changes in time order (each
/// counsellor's last one before `from` included): a counsellor is away from a change to away until her
/// next change; the last span runs to `as_of` (and never past `to`).
pub fn away_time(changes: &[AwayChange], from: i64, to: i64, as_of: i64) -> BTreeMap<(String, String), i64> {
    let mut by: BTreeMap<&str, Vec<&AwayChange>> = BTreeMap::new();
    for c in changes {
        by.entry(c.counsellor.as_str()).or_default().push(c);
    }
    let end_of_all = to.min(as_of);
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (who, mut list) in by {
        list.sort_by_key(|c| c.at);
        for (i, c) in list.iter().enumerate() {
            let Some(reason) = &c.reason else { continue };
            let until = list.get(i + 1).map_or(end_of_all, |next| next.at.min(end_of_all));
            let span = until.min(to) - c.at.max(from);
            if span > 0 {
                *out.entry((who.to_string(), reason.clone())).or_default() += span;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(q: i64, a: Option<i64>, e: Option<i64>, abandoned: bool) -> ContactTimes {
        ContactTimes { queued_at: q, answered_at: a, ended_at: e, wrapup_ended_at: None, abandoned, target_ms: 15_000 }
    }

    #[test]
    fn every_figure_on_a_hand_computed_set() {
        let now = 1_000_000;
        let rows = [
            contact(0, Some(2_000), Some(62_000), false),   // answered in 2 s, handled 60 s
            contact(0, Some(15_000), Some(45_000), false),  // exactly on target: in target; handled 30 s
            contact(0, Some(15_001), Some(105_001), false), // 1 ms late; handled 90 s
            contact(0, Some(40_000), None, false),          // answered late, still in conversation
            contact(0, None, Some(4_999), true),            // short abandon
            contact(0, None, Some(5_000), true),            // 5 s exactly: not short
            contact(0, None, Some(30_000), true),           // abandoned after the target
            contact(now - 20_000, None, None, false),       // waiting, past target: a miss already
            contact(now - 3_000, None, None, false),        // waiting within target: not yet decided
        ];
        let f = compute(&rows, &Rules::as_of(now));
        assert_eq!(f.offered, 9);
        assert_eq!(f.answered, 4);
        assert_eq!(f.answered_in_target, 2);
        assert_eq!(f.abandoned, 3);
        assert_eq!(f.abandoned_short, 1);
        assert_eq!(f.waiting, 2);
        assert_eq!(f.waiting_in_target, 1);
        assert_eq!(f.in_conversation, 1);
        assert_eq!(f.handled, 3);
        // SL = 2 / (9 − 1 short − 1 waiting within target) = 2/7
        assert_eq!(f.service_level, Some(2.0 / 7.0));
        // ASA = (2 000 + 15 000 + 15 001 + 40 000) / 4
        assert_eq!(f.asa_ms, Some(72_001.0 / 4.0));
        // abandonment = (3 − 1) / (4 + 3 − 1) = 2/6
        assert_eq!(f.abandonment_rate, Some(2.0 / 6.0));
        // AHT = (60 000 + 30 000 + 90 000) / 3
        assert_eq!(f.aht_ms, Some(60_000.0));
        // answer times sorted: 2 000, 15 000, 15 001, 40 000 → p50 rank 2, p90 rank 4, p99 rank 4
        assert_eq!(f.answer_p50_ms, Some(15_000));
        assert_eq!(f.answer_p90_ms, Some(40_000));
        assert_eq!(f.answer_p99_ms, Some(40_000));
        assert_eq!(f.occupancy, None);
    }

    #[test]
    fn nothing_offered_gives_no_ratios() {
        let f = compute(&[], &Rules::as_of(0));
        assert_eq!(f, Figures::default());
        // Only short abandons: no denominator either.
        let f = compute(&[contact(0, None, Some(1_000), true)], &Rules::as_of(10_000));
        assert_eq!((f.offered, f.abandoned_short), (1, 1));
        assert_eq!((f.service_level, f.abandonment_rate), (None, None));
    }

    #[test]
    fn the_target_is_per_contact() {
        let mut strict = contact(0, Some(10_000), Some(20_000), false);
        strict.target_ms = 5_000;
        let f = compute(&[strict, contact(0, Some(10_000), Some(20_000), false)], &Rules::as_of(50_000));
        assert_eq!(f.answered_in_target, 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    /// Tallies merged give the figures of all their contacts together, percentiles included while
    /// both keep answer times (and none once one of them does not).
    #[test]
    fn merged_tallies_are_the_tally_of_all_their_contacts() {
        let rules = Rules::as_of(1_000_000);
        let rows = [
            contact(0, Some(2_000), Some(62_000), false),
            contact(0, None, Some(4_000), true),
            contact(0, Some(20_000), None, false),
            contact(0, None, Some(30_000), true),
        ];
        let (mut left, mut right) = (Tally::with_percentiles(), Tally::with_percentiles());
        for r in &rows[..2] {
            left.add(r, &rules);
        }
        for r in &rows[2..] {
            right.add(r, &rules);
        }
        left.merge(&right);
        assert_eq!(format!("{:?}", left.figures()), format!("{:?}", compute(&rows, &rules)));
        let mut without = Tally::new();
        without.add(&rows[0], &rules);
        left.merge(&without);
        assert_eq!(left.figures().answer_p50_ms, None, "a tally without answer times leaves the percentiles unknown");
        assert_eq!(left.figures().answered, 3);
    }

    #[test]
    fn intervals_merge_when_they_overlap_or_touch() {
        assert_eq!(merge(vec![(5, 7), (0, 2), (2, 3), (6, 9), (20, 21)]), vec![(0, 3), (5, 9), (20, 21)]);
        assert_eq!(merge(Vec::new()), Vec::<(i64, i64)>::new());
    }

    fn conv(who: &str, a: i64, e: Option<i64>) -> Conversation {
        Conversation { counsellor: who.into(), answered_at: a, ended_at: e }
    }
    fn status(who: &str, at: i64, available: bool) -> StatusChange {
        StatusChange { counsellor: who.into(), at, available }
    }

    #[test]
    fn occupancy_counts_overlapping_chats_once_and_work_after_going_away() {
        // ana: available 0..100; chats 10..30 and 20..40 (overlap: busy 10..40 = 30), then 90..120
        // after going away at 100 (staffed extends to 120). Window 0..200, as of 200.
        let convs = [conv("ana", 10, Some(30)), conv("ana", 20, Some(40)), conv("ana", 90, Some(120))];
        let changes = [status("ana", 0, true), status("ana", 100, false)];
        let o = occupancy_series(&convs, &changes, &[0, 200], 200);
        assert_eq!(o[0], Occupancy { busy_ms: 60, staffed_ms: 120 });
        assert_eq!(o[0].ratio(), Some(0.5));
        // The same in two buckets: 0..100 busy 30+10 of staffed 100; 100..200 busy 20 of staffed 20.
        let o = occupancy_series(&convs, &changes, &[0, 100, 200], 200);
        assert_eq!(o, vec![Occupancy { busy_ms: 40, staffed_ms: 100 }, Occupancy { busy_ms: 20, staffed_ms: 20 }]);
    }

    #[test]
    fn occupancy_open_intervals_stop_at_as_of_and_status_before_the_window_counts() {
        // ion became available before the window; his chat is still open. Window 100..300, as of 200.
        let convs = [conv("ion", 150, None)];
        let changes = [status("ion", 50, true)];
        let o = occupancy_series(&convs, &changes, &[100, 300], 200);
        assert_eq!(o[0], Occupancy { busy_ms: 50, staffed_ms: 100 });
        // Nobody staffed: None.
        assert_eq!(occupancy_series(&[], &[], &[0, 10], 10)[0].ratio(), None);
    }
    #[test]
    fn away_time_is_counted_by_reason_inside_the_window_until_the_next_change() {
        let ch = |who: &str, at: i64, reason: Option<&str>| AwayChange { counsellor: who.into(), at, reason: reason.map(str::to_string) };
        let changes = vec![
            ch("ana", -50, Some("break")), // away before the window: counted from its start
            ch("ana", 100, None),          // available
            ch("ana", 300, Some("training")),
            ch("ana", 400, Some("break")),         // another reason without coming back first
            ch("ion", 500, Some("missed_offers")), // still away: counted to as_of
        ];
        let t = away_time(&changes, 0, 1_000, 800);
        assert_eq!(t.get(&("ana".into(), "break".into())), Some(&(100 + 400)), "0..100 and 400..800");
        assert_eq!(t.get(&("ana".into(), "training".into())), Some(&100));
        assert_eq!(t.get(&("ion".into(), "missed_offers".into())), Some(&300));
        assert_eq!(t.len(), 3);
        assert!(away_time(&changes, 900, 1_000, 800).is_empty(), "nothing after as_of");
        let mut w = WrapUps::default();
        assert_eq!(w.mean_ms, None);
        w.add(1_000, 31_000);
        w.add(2_000, 12_000);
        assert_eq!((w.count, w.total_ms, w.mean_ms), (2, 40_000, Some(20_000.0)));
    }
}

//! Contact-centre figures (service level, ASA, abandonment, AHT, occupancy): one definition, used by the
//! live supervisor view, the reports, the staffing estimates and the simulator alike.
//!
//! Every figure is defined once, here: [`Tally::add`] classifies one contact (answered, in target,
//! abandoned, short, waiting…), [`Tally::figures`] turns the counts into the ratios, and
//! [`occupancy_series`] turns conversations and status changes into busy and staffed time.
//! `docs/metrics.md` states the same definitions in words and formulas; keep the three in step.
//!
//! Over the database, a year of contacts is too many rows to ship to Rust in under a second, so
//! [`TALLY_SQL`] does `Tally::add`'s counting in one grouped, indexed query (each CASE is one branch
//! of `add`), and the ratios still come from `Tally::figures`. The integration suite checks the SQL
//! and the Rust classification agree on random contacts, on SQLite and PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};


use crate::store::{on_pool, BeginWrite, Pool, Store, StoreResult};

/// A contact abandoned less than this long after it was queued is a *short abandon*: counted apart,
/// left out of service level and abandonment rate (a misdial, or a caller who changed their mind).
pub const SHORT_ABANDON_MS: i64 = 5_000;
/// The answer target when a helpline has none configured (the promise: 15 seconds).
pub const DEFAULT_TARGET_MS: i64 = 15_000;
/// Conversations whose contact was queued up to this long before a window starts still count toward
/// that window's occupancy for their part inside it (a chat open across the window's start).
pub const OCCUPANCY_LOOKBACK_MS: i64 = 24 * 3_600_000;

pub use crate::protocol::board::Figures;

/// One contact's times, as the figures need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactTimes {
    pub queued_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
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

/// Counts and sums for one group of contacts. [`Tally::add`] is the single place a contact is classified.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    offered: i64,
    answered: i64,
    answered_in_target: i64,
    abandoned: i64,
    abandoned_short: i64,
    waiting: i64,
    waiting_in_target: i64,
    in_conversation: i64,
    handled: i64,
    answer_ms_sum: i128,
    handle_ms_sum: i128,
    /// Answer times, kept only when percentiles are wanted.
    answer_times: Option<Vec<i64>>,
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
                    self.handle_ms_sum += i128::from((end - answered).max(0));
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
            service_level: ratio(
                self.answered_in_target,
                self.offered - self.abandoned_short - self.waiting_in_target,
            ),
            asa_ms: mean(self.answer_ms_sum, self.answered),
            abandonment_rate: ratio(
                self.abandoned - self.abandoned_short,
                self.answered + self.abandoned - self.abandoned_short,
            ),
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
pub fn occupancy_series(
    conversations: &[Conversation],
    changes: &[StatusChange],
    bounds: &[i64],
    as_of_ms: i64,
) -> Vec<Occupancy> {
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

// ----- from the database --------------------------------------------------------------------

/// One transaction that every read of a report, or of a roll-up, goes through, so that they all see one
/// state of the database: a roll-up committing meanwhile cannot make a report count a contact twice (in
/// the roll-up and live) or not at all, and a late change cannot slip between a roll-up's read and its write.
pub enum Reading {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs the same code on the connection of a [`Reading`]: `on_reading!(reading, conn => expr)`, where
/// `conn` is `&mut SqliteConnection` or `&mut PgConnection` (use it as `&mut *conn`).
macro_rules! on_reading {
    ($reading:expr, $conn:ident => $body:expr) => {
        match $reading {
            $crate::store::figures::Reading::Sqlite(tx) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
            $crate::store::figures::Reading::Postgres(tx) => {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
        }
    };
}
pub(crate) use on_reading;

impl Reading {
    /// A read-only snapshot: on PostgreSQL `REPEATABLE READ READ ONLY` (one snapshot for every statement);
    /// on SQLite (WAL) a deferred transaction, whose snapshot is taken by its first read and kept to its end.
    pub async fn snapshot(store: &Store) -> StoreResult<Reading> {
        Ok(match &store.pool {
            Pool::Sqlite { read: pool, .. } => Reading::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => {
                Reading::Postgres(pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
            }
        })
    }

    /// A write transaction (SQLite: `BEGIN IMMEDIATE`, so nobody else writes until it ends).
    pub async fn write(store: &Store) -> StoreResult<Reading> {
        Ok(match &store.pool {
            Pool::Sqlite { write: pool, .. } => Reading::Sqlite(pool.begin_write().await?),
            Pool::Postgres(pool) => Reading::Postgres(pool.begin_write().await?),
        })
    }

    pub fn backend(&self) -> crate::store::Backend {
        match self {
            Reading::Sqlite(_) => crate::store::Backend::Sqlite,
            Reading::Postgres(_) => crate::store::Backend::Postgres,
        }
    }

    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Reading::Sqlite(tx) => tx.commit().await?,
            Reading::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A contact row: what the pure functions need, with the dimensions reports break figures down by.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub helpline: String,
    pub channel: String,
    pub language: String,
    pub state: String,
    pub queued_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub counsellor_id: Option<String>,
}

impl ContactRow {
    pub fn times(&self, target_ms: i64) -> ContactTimes {
        ContactTimes {
            queued_at: self.queued_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            abandoned: self.state == "abandoned",
            target_ms,
        }
    }
}

/// Contacts queued in `[$1, $2)`, as rows (staffing, tests, and the check that SQL and Rust agree).
pub const CONTACTS_SQL: &str = "SELECT helpline, channel, language, state, queued_at, answered_at, ended_at, counsellor_id \
     FROM contacts WHERE queued_at >= $1 AND queued_at < $2";

/// Contacts queued in `[from_ms, to_ms)`, as rows.
pub async fn fetch_contacts(store: &Store, from_ms: i64, to_ms: i64) -> StoreResult<Vec<ContactRow>> {
    Ok(on_pool!(store, pool => sqlx::query_as(CONTACTS_SQL).bind(from_ms).bind(to_ms).fetch_all(pool).await)?)
}

/// The sums of [`TALLY_SQL`] (each CASE is one branch of `Tally::add`), over contacts `c` joined with
/// their helpline `h`; $5 = short abandon (ms), $6 = as of (ms). Transfers and escalations are counted
/// per contact from `contact_events` and `escalations`.
macro_rules! tally_sums {
    () => {
        "COUNT(*) AS offered,
  CAST(SUM(CASE WHEN c.state = 'abandoned' OR (c.answered_at IS NULL AND c.ended_at IS NOT NULL) THEN 1 ELSE 0 END) AS BIGINT) AS abandoned,
  CAST(SUM(CASE WHEN (c.state = 'abandoned' OR (c.answered_at IS NULL AND c.ended_at IS NOT NULL))
                 AND c.ended_at - c.queued_at < $5 THEN 1 ELSE 0 END) AS BIGINT) AS abandoned_short,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NOT NULL
                 AND c.answered_at - c.queued_at <= h.sla_target_ms THEN 1 ELSE 0 END) AS BIGINT) AS answered_in_target,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at > c.queued_at
                 THEN c.answered_at - c.queued_at ELSE 0 END) AS BIGINT) AS answer_ms_sum,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL
                 THEN 1 ELSE 0 END) AS BIGINT) AS handled,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NOT NULL AND c.ended_at > c.answered_at
                 THEN c.ended_at - c.answered_at ELSE 0 END) AS BIGINT) AS handle_ms_sum,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NULL AND c.ended_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS waiting,
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NULL AND c.ended_at IS NULL
                 AND $6 - c.queued_at <= h.sla_target_ms THEN 1 ELSE 0 END) AS BIGINT) AS waiting_in_target,
  CAST(SUM((SELECT COUNT(*) FROM contact_events e WHERE e.contact_id = c.id AND e.kind = 'transferred')) AS BIGINT) AS transfers,
  CAST(SUM((SELECT COUNT(*) FROM escalations x WHERE x.contact_id = c.id)) AS BIGINT) AS escalations"
    };
}

/// [`Tally::add`] in SQL, for a year of contacts without shipping a million rows to Rust: one line per
/// (bucket, helpline, channel, language) with the tally's counts and sums. Bucket = (queued_at − $1) / $2;
/// window `[$3, $4)`; $5 = short abandon (ms); $6 = as of (ms); the target is the helpline's `sla_target_ms`.
/// Each CASE is one branch of `Tally::add`; `tests/it/reports.rs` checks both give the same figures
/// on random contacts, on SQLite and PostgreSQL. Uses the `contacts_queued_at` index.
pub const TALLY_SQL: &str = concat!(
    "SELECT (c.queued_at - $1) / $2 AS bucket, c.helpline, c.channel, c.language, ",
    tally_sums!(),
    " FROM contacts c JOIN helplines h ON h.name = c.helpline
WHERE c.queued_at >= $3 AND c.queued_at < $4 /*AND ranges*/
GROUP BY 1, 2, 3, 4"
);

/// [`TALLY_SQL`] per (bucket, helpline, category of the contact's submitted form), on SQLite: a contact
/// with several categories counts once in each.
pub const CATEGORY_TALLY_SQL_SQLITE: &str = concat!(
    "SELECT (c.queued_at - $1) / $2 AS bucket, c.helpline, CAST(cat.value AS TEXT) AS category, ",
    tally_sums!(),
    " FROM contacts c JOIN helplines h ON h.name = c.helpline
JOIN contact_forms f ON f.contact_id = c.id AND f.status = 'submitted'
JOIN json_each(f.data, '$.categories') AS cat
WHERE c.queued_at >= $3 AND c.queued_at < $4 /*AND ranges*/
GROUP BY 1, 2, 3"
);

/// [`CATEGORY_TALLY_SQL_SQLITE`] in PostgreSQL's JSON dialect (the one query the two engines write apart).
pub const CATEGORY_TALLY_SQL_POSTGRES: &str = concat!(
    "SELECT (c.queued_at - $1) / $2 AS bucket, c.helpline, cat.value AS category, ",
    tally_sums!(),
    " FROM contacts c JOIN helplines h ON h.name = c.helpline
JOIN contact_forms f ON f.contact_id = c.id AND f.status = 'submitted'
CROSS JOIN LATERAL jsonb_array_elements_text(COALESCE(f.data::jsonb -> 'categories', '[]'::jsonb)) AS cat(value)
WHERE c.queued_at >= $3 AND c.queued_at < $4 /*AND ranges*/
GROUP BY 1, 2, 3"
);

/// `sql` (one of the tally queries above) restricted to contacts queued in one of `ranges` (sorted,
/// disjoint; computed numbers, never request text, so they go in as literals), with `[$3, $4)` their hull.
/// Several ranges are a table `r` driving the query: for each range, one index range scan of
/// `contacts_queued_at`. The join order is forced, as each planner chose otherwise and visited every
/// contact of the hull once per range (a year by day at +05:30 has 365 cut hours: 365 million rows,
/// 60–400 s): SQLite's `CROSS JOIN` keeps its left table the outer loop, PostgreSQL's `LATERAL`
/// subquery (with `OFFSET 0`, so it is not flattened) is scanned once per range. The hull stays as a
/// filter (`+c.queued_at`: no index is chosen for it).
fn within_ranges(sql: &str, ranges: &[(i64, i64)], backend: crate::store::Backend) -> String {
    if ranges.len() <= 1 {
        return sql.to_string();
    }
    let driven = match backend {
        crate::store::Backend::Sqlite => sql
            .replacen(CONTACTS_OF_HELPLINES, "FROM r CROSS JOIN contacts c CROSS JOIN helplines h", 1)
            .replacen(IN_HULL, "WHERE h.name = c.helpline AND c.queued_at >= r.a AND c.queued_at < r.b AND +c.queued_at >= $3 AND +c.queued_at < $4", 1)
            // and the forms after their contacts (else each range scans every submitted form)
            .replace("\nJOIN ", "\nCROSS JOIN "),
        crate::store::Backend::Postgres => sql.replacen(
            CONTACTS_OF_HELPLINES,
            "FROM r CROSS JOIN LATERAL (SELECT * FROM contacts WHERE queued_at >= r.a AND queued_at < r.b OFFSET 0) c
             JOIN helplines h ON h.name = c.helpline",
            1,
        ),
    };
    format!("{} {driven}", ranges_table(ranges))
}

/// `WITH r(a, b) AS (VALUES …)`: sorted ranges as a table (computed numbers, never request text).
fn ranges_table(ranges: &[(i64, i64)]) -> String {
    let rows = ranges.iter().map(|(a, b)| format!("(CAST({a} AS BIGINT), CAST({b} AS BIGINT))")).collect::<Vec<_>>().join(", ");
    format!("WITH r(a, b) AS (VALUES {rows})")
}

/// What [`within_ranges`] rewrites in each tally query (a unit test checks every query holds both).
const CONTACTS_OF_HELPLINES: &str = "FROM contacts c JOIN helplines h ON h.name = c.helpline";
const IN_HULL: &str = "WHERE c.queued_at >= $3 AND c.queued_at < $4";

/// The hull of sorted ranges (`(0, 0)` when there are none).
fn hull(ranges: &[(i64, i64)]) -> (i64, i64) {
    match (ranges.first(), ranges.last()) {
        (Some(first), Some(last)) => (first.0, last.1),
        _ => (0, 0),
    }
}

/// The counts and sums of one line of [`TALLY_SQL`] (or of a roll-up).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct TallyCounts {
    pub offered: i64,
    pub abandoned: i64,
    pub abandoned_short: i64,
    pub answered: i64,
    pub answered_in_target: i64,
    pub answer_ms_sum: i64,
    pub handled: i64,
    pub handle_ms_sum: i64,
    pub waiting: i64,
    pub waiting_in_target: i64,
    pub transfers: i64,
    pub escalations: i64,
}

impl TallyCounts {
    /// Adds `sign` × another line's counts (a roll-up read with a minus sign is taken away).
    pub fn add(&mut self, o: &TallyCounts, sign: i64) {
        self.offered += sign * o.offered;
        self.abandoned += sign * o.abandoned;
        self.abandoned_short += sign * o.abandoned_short;
        self.answered += sign * o.answered;
        self.answered_in_target += sign * o.answered_in_target;
        self.answer_ms_sum += sign * o.answer_ms_sum;
        self.handled += sign * o.handled;
        self.handle_ms_sum += sign * o.handle_ms_sum;
        self.waiting += sign * o.waiting;
        self.waiting_in_target += sign * o.waiting_in_target;
        self.transfers += sign * o.transfers;
        self.escalations += sign * o.escalations;
    }

    /// The tally these counts stand for (no percentiles: the answer times stay in the database).
    pub fn tally(&self) -> Tally {
        Tally {
            offered: self.offered,
            answered: self.answered,
            answered_in_target: self.answered_in_target,
            abandoned: self.abandoned,
            abandoned_short: self.abandoned_short,
            waiting: self.waiting,
            waiting_in_target: self.waiting_in_target,
            in_conversation: self.answered - self.handled,
            handled: self.handled,
            answer_ms_sum: i128::from(self.answer_ms_sum),
            handle_ms_sum: i128::from(self.handle_ms_sum),
            answer_times: None,
        }
    }

    /// Nothing in these counts can still change: no contact waiting or in conversation.
    pub fn settled(&self) -> bool {
        self.waiting == 0 && self.answered == self.handled
    }
}

/// One line of [`TALLY_SQL`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TallyRow {
    pub bucket: i64,
    pub helpline: String,
    pub channel: String,
    pub language: String,
    #[sqlx(flatten)]
    pub counts: TallyCounts,
}

impl TallyRow {
    /// The tally this line stands for.
    pub fn tally(&self) -> Tally {
        self.counts.tally()
    }
}

/// One line of the category tally.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CategoryRow {
    pub bucket: i64,
    pub helpline: String,
    pub category: String,
    #[sqlx(flatten)]
    pub counts: TallyCounts,
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

/// Tallies of contacts queued in `[from_ms, to_ms)` per (bucket, helpline, channel, language), buckets of
/// `bucket_ms` counted from `origin_ms` (≤ `from_ms`).
pub async fn fetch_tallies(
    store: &Store,
    origin_ms: i64,
    bucket_ms: i64,
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> StoreResult<Vec<TallyRow>> {
    let mut reading = Reading::snapshot(store).await?;
    let rows = fetch_tallies_in(&mut reading, origin_ms, bucket_ms, &[(from_ms, to_ms)], as_of_ms).await?;
    reading.commit().await?;
    Ok(rows)
}

/// [`fetch_tallies`] over contacts queued in any of `ranges` (sorted, disjoint), in one query, inside `reading`.
pub async fn fetch_tallies_in(
    reading: &mut Reading,
    origin_ms: i64,
    bucket_ms: i64,
    ranges: &[(i64, i64)],
    as_of_ms: i64,
) -> StoreResult<Vec<TallyRow>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let (from_ms, to_ms) = hull(ranges);
    let sql = within_ranges(TALLY_SQL, ranges, reading.backend());
    Ok(on_reading!(reading, conn => sqlx::query_as(&sql)
        .bind(origin_ms).bind(bucket_ms.max(1)).bind(from_ms).bind(to_ms)
        .bind(SHORT_ABANDON_MS).bind(as_of_ms)
        .fetch_all(&mut *conn).await)?)
}

/// Like [`fetch_tallies`], per (bucket, helpline, category of the submitted contact form).
pub async fn fetch_category_tallies(
    store: &Store,
    origin_ms: i64,
    bucket_ms: i64,
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> StoreResult<Vec<CategoryRow>> {
    let mut reading = Reading::snapshot(store).await?;
    let rows = fetch_category_tallies_in(&mut reading, origin_ms, bucket_ms, &[(from_ms, to_ms)], as_of_ms).await?;
    reading.commit().await?;
    Ok(rows)
}

/// [`fetch_category_tallies`] over contacts queued in any of `ranges`, in one query, inside `reading`.
pub async fn fetch_category_tallies_in(
    reading: &mut Reading,
    origin_ms: i64,
    bucket_ms: i64,
    ranges: &[(i64, i64)],
    as_of_ms: i64,
) -> StoreResult<Vec<CategoryRow>> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let (from_ms, to_ms) = hull(ranges);
    let base = match reading.backend() {
        crate::store::Backend::Sqlite => CATEGORY_TALLY_SQL_SQLITE,
        crate::store::Backend::Postgres => CATEGORY_TALLY_SQL_POSTGRES,
    };
    let sql = within_ranges(base, ranges, reading.backend());
    Ok(on_reading!(reading, conn => sqlx::query_as(&sql)
        .bind(origin_ms).bind(bucket_ms.max(1)).bind(from_ms).bind(to_ms)
        .bind(SHORT_ABANDON_MS).bind(as_of_ms)
        .fetch_all(&mut *conn).await)?)
}

/// Conversations overlapping `[$2, $3)` whose contact was queued from $1 (= $2 − [`OCCUPANCY_LOOKBACK_MS`]) on.
pub const CONVERSATIONS_SQL: &str = "SELECT counsellor_id, answered_at, ended_at FROM contacts \
     WHERE queued_at >= $1 AND queued_at < $3 AND answered_at IS NOT NULL AND counsellor_id IS NOT NULL \
       AND answered_at < $3 AND (ended_at IS NULL OR ended_at > $2)";

/// What occupancy needs, read from the database.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    pub conversations: Vec<Conversation>,
    /// Status changes in `[from, to)` plus each counsellor's last one before `from`.
    pub status_changes: Vec<StatusChange>,
    /// First-line counsellors per helpline name (whom a helpline's occupancy is about).
    pub staff: HashMap<String, BTreeSet<String>>,
}

/// Reads conversations, status changes and staff for occupancy over `[from_ms, to_ms)`.
pub async fn fetch_presence(store: &Store, from_ms: i64, to_ms: i64) -> StoreResult<Presence> {
    let mut reading = Reading::snapshot(store).await?;
    let mut presence = fetch_presence_in(&mut reading, from_ms, to_ms).await?;
    reading.commit().await?;
    presence.staff = fetch_staff(store).await?;
    Ok(presence)
}

/// [`CONVERSATIONS_SQL`] for each of several ranges (sorted, disjoint), driven by them as the tally
/// queries are ([`within_ranges`]): `DISTINCT`, as a conversation of more than a day can overlap two.
fn conversations_over_ranges(ranges: &[(i64, i64)], backend: crate::store::Backend) -> String {
    let overlaps = format!(
        "queued_at >= r.a - {OCCUPANCY_LOOKBACK_MS} AND queued_at < r.b AND answered_at IS NOT NULL AND counsellor_id IS NOT NULL \
         AND answered_at < r.b AND (ended_at IS NULL OR ended_at > r.a)"
    );
    let from = match backend {
        crate::store::Backend::Sqlite => format!("FROM r CROSS JOIN contacts WHERE {overlaps}"),
        crate::store::Backend::Postgres => format!(
            "FROM r CROSS JOIN LATERAL (SELECT id, counsellor_id, answered_at, ended_at FROM contacts WHERE {overlaps} OFFSET 0) c"
        ),
    };
    format!("{} SELECT DISTINCT id, counsellor_id, answered_at, ended_at {from}", ranges_table(ranges))
}

/// [`fetch_presence`] inside `reading`, without the staff.
pub async fn fetch_presence_in(reading: &mut Reading, from_ms: i64, to_ms: i64) -> StoreResult<Presence> {
    fetch_presence_over(reading, &[(from_ms, to_ms)]).await
}

/// [`fetch_presence_in`] for several ranges (sorted, disjoint) in one read: the conversations overlapping
/// any of them, the status changes over their hull and each counsellor's last one before it.
pub async fn fetch_presence_over(reading: &mut Reading, ranges: &[(i64, i64)]) -> StoreResult<Presence> {
    let (from_ms, to_ms) = hull(ranges);
    let rows: Vec<(String, i64, Option<i64>)> = if ranges.len() <= 1 {
        on_reading!(reading, conn => sqlx::query_as(CONVERSATIONS_SQL)
            .bind(from_ms.saturating_sub(OCCUPANCY_LOOKBACK_MS)).bind(from_ms).bind(to_ms)
            .fetch_all(&mut *conn).await)?
    } else {
        let sql = conversations_over_ranges(ranges, reading.backend());
        let rows: Vec<(String, String, i64, Option<i64>)> =
            on_reading!(reading, conn => sqlx::query_as(&sql).fetch_all(&mut *conn).await)?;
        rows.into_iter().map(|(_, counsellor, answered_at, ended_at)| (counsellor, answered_at, ended_at)).collect()
    };
    let conversations =
        rows.into_iter().map(|(counsellor, answered_at, ended_at)| Conversation { counsellor, answered_at, ended_at }).collect();
    let inside: Vec<(String, i64, String)> = on_reading!(reading, conn => sqlx::query_as(
        "SELECT user_id, at, status FROM status_changes WHERE at >= $1 AND at < $2 ORDER BY at, id")
        .bind(from_ms).bind(to_ms).fetch_all(&mut *conn).await)?;
    let before: Vec<(String, i64, String)> = on_reading!(reading, conn => sqlx::query_as(
        "SELECT s.user_id, s.at, s.status FROM status_changes s
         WHERE s.at < $1 AND s.at = (SELECT MAX(t.at) FROM status_changes t WHERE t.user_id = s.user_id AND t.at < $1)
         ORDER BY s.at, s.id")
        .bind(from_ms).fetch_all(&mut *conn).await)?;
    let status_changes = before
        .into_iter()
        .chain(inside)
        .map(|(counsellor, at, status)| StatusChange { counsellor, at, available: status == "available" })
        .collect();
    Ok(Presence { conversations, status_changes, staff: HashMap::new() })
}

/// First-line counsellors per helpline name (whom a helpline's occupancy is about).
pub async fn fetch_staff(store: &Store) -> StoreResult<HashMap<String, BTreeSet<String>>> {
    let mut staff: HashMap<String, BTreeSet<String>> = HashMap::new();
    for u in store.users().await? {
        for h in &u.helplines {
            staff.entry(h.clone()).or_default().insert(u.id.clone());
        }
    }
    Ok(staff)
}

impl Presence {
    /// Occupancy per bucket: of every counsellor, or with a helpline of its first-line counsellors
    /// (all their conversations count, on any helpline: a shared counsellor is busy either way).
    pub fn occupancy(&self, helpline: Option<&str>, bounds: &[i64], as_of_ms: i64) -> Vec<Occupancy> {
        let Some(h) = helpline else {
            return occupancy_series(&self.conversations, &self.status_changes, bounds, as_of_ms);
        };
        let empty = BTreeSet::new();
        let staff = self.staff.get(h).unwrap_or(&empty);
        let conversations: Vec<Conversation> =
            self.conversations.iter().filter(|c| staff.contains(&c.counsellor)).cloned().collect();
        let changes: Vec<StatusChange> =
            self.status_changes.iter().filter(|s| staff.contains(&s.counsellor)).cloned().collect();
        occupancy_series(&conversations, &changes, bounds, as_of_ms)
    }
}

/// Figures for contacts that entered the queue in `[from_ms, to_ms)`, for one helpline or all,
/// judged as of now (wall clock).
pub async fn figures(store: &Store, helpline: Option<&str>, from_ms: i64, to_ms: i64) -> StoreResult<Figures> {
    figures_at(store, helpline, from_ms, to_ms, crate::clock::Clock::new().now_ms()).await
}

/// [`figures`], judged as of `as_of_ms` (contacts still waiting or in conversation are judged at that moment).
/// Percentiles are left None (they would need every answer time out of the database).
pub async fn figures_at(
    store: &Store,
    helpline: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> StoreResult<Figures> {
    let (per_helpline, all) = figures_split_at(store, helpline.as_slice(), from_ms, to_ms, as_of_ms).await?;
    Ok(per_helpline.into_iter().next().unwrap_or(all))
}

/// [`figures_at`] for each of `helplines` and for all of them, from one read of the window (a
/// supervisor board needs every helpline's figures each second: one query pair, not one per helpline).
pub async fn figures_split_at(
    store: &Store,
    helplines: &[&str],
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> StoreResult<(Vec<Figures>, Figures)> {
    let mut reading = Reading::snapshot(store).await?;
    let rows = fetch_tallies_in(&mut reading, from_ms, to_ms - from_ms, &[(from_ms, to_ms)], as_of_ms).await?;
    let mut presence = fetch_presence_in(&mut reading, from_ms, to_ms).await?;
    reading.commit().await?;
    presence.staff = fetch_staff(store).await?;
    let figures_of = |helpline: Option<&str>| {
        let mut tally = Tally::new();
        for row in rows.iter().filter(|row| helpline.is_none_or(|h| row.helpline == h)) {
            tally.merge(&row.tally());
        }
        let mut f = tally.figures();
        f.occupancy = presence.occupancy(helpline, &[from_ms, to_ms], as_of_ms)[0].ratio();
        f
    };
    Ok((helplines.iter().map(|h| figures_of(Some(h))).collect(), figures_of(None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tally_query_is_driven_by_its_ranges_on_both_engines() {
        use crate::store::Backend;
        let ranges = [(0, 10), (20, 30)];
        for sql in [TALLY_SQL, CATEGORY_TALLY_SQL_SQLITE, CATEGORY_TALLY_SQL_POSTGRES] {
            assert!(sql.contains(CONTACTS_OF_HELPLINES) && sql.contains(IN_HULL), "{sql}");
            assert_eq!(within_ranges(sql, &ranges[..1], Backend::Sqlite), sql, "one range needs no table");
            let lite = within_ranges(sql, &ranges, Backend::Sqlite);
            assert!(lite.starts_with("WITH r(a, b) AS (VALUES (CAST(0 AS BIGINT), CAST(10 AS BIGINT)), (CAST(20"), "{lite}");
            assert!(lite.contains("FROM r CROSS JOIN contacts c CROSS JOIN helplines h"), "{lite}");
            assert!(lite.contains("c.queued_at >= r.a AND c.queued_at < r.b AND +c.queued_at >= $3"), "{lite}");
            assert!(!lite.contains(CONTACTS_OF_HELPLINES) && !lite.contains("\nJOIN "), "{lite}");
            let pg = within_ranges(sql, &ranges, Backend::Postgres);
            assert!(pg.contains("CROSS JOIN LATERAL (SELECT * FROM contacts WHERE queued_at >= r.a AND queued_at < r.b OFFSET 0) c"), "{pg}");
            assert!(!pg.contains(CONTACTS_OF_HELPLINES), "{pg}");
        }
    }

    fn contact(q: i64, a: Option<i64>, e: Option<i64>, abandoned: bool) -> ContactTimes {
        ContactTimes { queued_at: q, answered_at: a, ended_at: e, abandoned, target_ms: 15_000 }
    }

    #[test]
    fn every_figure_on_a_hand_computed_set() {
        let now = 1_000_000;
        let rows = [
            contact(0, Some(2_000), Some(62_000), false),       // answered in 2 s, handled 60 s
            contact(0, Some(15_000), Some(45_000), false),      // exactly on target: in target; handled 30 s
            contact(0, Some(15_001), Some(105_001), false),     // 1 ms late; handled 90 s
            contact(0, Some(40_000), None, false),              // answered late, still in conversation
            contact(0, None, Some(4_999), true),                // short abandon
            contact(0, None, Some(5_000), true),                // 5 s exactly: not short
            contact(0, None, Some(30_000), true),               // abandoned after the target
            contact(now - 20_000, None, None, false),           // waiting, past target: a miss already
            contact(now - 3_000, None, None, false),            // waiting within target: not yet decided
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
}

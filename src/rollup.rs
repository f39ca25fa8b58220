//! Hourly roll-ups behind reports: each settled hour is summed once, so a year of contacts reports in well under a second.
//!
//! An hour `[h, h + 1 h)` (UTC) is *settled* when it ended at least [`SETTLE_MS`] ago, no contact queued in
//! it is still waiting or in conversation, and no conversation overlapping it is still open. Then the live
//! queries can no longer change their answer for it, and [`roll_up`] stores that answer: the lines of
//! [`metrics::TALLY_SQL`] and of the category tally for the hour, and [`metrics::occupancy_by_counsellor`]
//! for the hour. A report ([`crate::reports`]) reads rolled-up hours from these tables and computes the rest
//! (the partial hours at its edges, recent hours, hours with an open contact) live, with the same SQL.
//!
//! What can still change a settled hour is written in the same transaction as its roll-up is dropped
//! ([`invalidate_hour_of_contact!`]): a contact form saved later (its categories), a late escalation. A
//! helpline's answer target changing drops every roll-up ([`crate::store::Store::clear_rollups`]).
//!
//! Over the hours, a daily layer: a UTC day whose 24 hours are all rolled up is summed once more per day
//! ([`roll_up`] does it after the hours, from the hourly rows), so a report by day (UTC) over a year reads
//! 365 rows per group instead of 8,760. A day's rows exist only while all its hours' rows do: dropping an
//! hour drops its day in the same transaction, and the day is summed again once the hour is back.

use std::collections::{BTreeMap, BTreeSet};

use crate::metrics::{self, on_reading, CategoryRow, Occupancy, Reading, TallyCounts, TallyRow};
use crate::store::{on_pool, BeginWrite, Store, StoreResult};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// An hour is rolled up once it ended this long ago; the last hour stays live.
pub const SETTLE_MS: i64 = HOUR_MS;

/// What one [`roll_up`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Hours rolled up by this call.
    pub rolled: usize,
    /// Hours looked at but left live because something in them is still open.
    pub open: usize,
    /// Settled-looking hours not looked at yet (call again).
    pub remaining: usize,
    /// Days summed from their 24 rolled-up hours by this call.
    pub days: usize,
}

/// The hourly layer's tables; `report_rollup_hours` first (see [`roll_up_days`] on locking).
pub(crate) const HOUR_TABLES: [&str; 4] = ["report_rollup_hours", "report_hour_tallies", "report_hour_categories", "report_hour_occupancy"];
/// The daily layer's tables.
pub(crate) const DAY_TABLES: [&str; 4] = ["report_rollup_days", "report_day_tallies", "report_day_categories", "report_day_occupancy"];

/// Drops the roll-up of the hour a contact was queued in, and of its day, inside a write transaction `$tx`,
/// so the next roll-up recounts them. Used by every late change to what reports count (forms, escalations).
/// The hour goes first: a concurrent [`roll_up_days`] either sees it gone or holds it until its day is
/// written, and then this drops that day.
///
/// It first takes the lock of the contact's day ([`DayLock`]), which a roll-up of that day holds from before
/// its read to its commit: a roll-up either sees this change (it commits first) or its rows are dropped here
/// after it commits; a change can never land between a roll-up's read and its write.
macro_rules! invalidate_hour_of_contact {
    ($tx:ident, $contact:expr) => {
        $crate::rollup::DayLock::lock_day_of_contact(&mut *$tx, $contact).await?;
        for (tables, key, len) in
            [($crate::rollup::HOUR_TABLES, "hour", $crate::rollup::HOUR_MS), ($crate::rollup::DAY_TABLES, "day", $crate::rollup::DAY_MS)]
        {
            for table in tables {
                let sql = format!(
                    "DELETE FROM {table} WHERE {key} = (SELECT queued_at - queued_at % {len} FROM contacts WHERE id = $1)"
                );
                sqlx::query(&sql).bind($contact).execute(&mut *$tx).await?;
            }
        }
    };
}
pub(crate) use invalidate_hour_of_contact;

/// PostgreSQL advisory lock class of the roll-up locks ("ROLL"); key = the UTC day's number, or [`ALL_DAYS`].
const LOCK_CLASS: i32 = 0x524f_4c4c;
/// The key every roll-up holds shared and [`Store::clear_rollups`] takes alone.
const ALL_DAYS: i32 = -1;

/// The roll-up locks, in a write transaction. On PostgreSQL, transaction-scoped advisory locks: a roll-up
/// holds its UTC day's lock (and [`ALL_DAYS`] shared) from before its read to its commit, a late change
/// takes the lock of its contact's day, dropping every roll-up takes [`ALL_DAYS`] alone. On SQLite
/// nothing: write transactions begin `IMMEDIATE`, so they are serial already.
pub(crate) trait DayLock {
    /// The lock of the UTC day the contact was queued in (nothing if there is no such contact).
    async fn lock_day_of_contact(&mut self, contact: &str) -> Result<(), sqlx::Error>;
    /// A roll-up's locks on UTC day `day` (ms).
    async fn lock_day(&mut self, day: i64) -> Result<(), sqlx::Error>;
    /// Every day at once (no roll-up runs until the transaction ends).
    async fn lock_all_days(&mut self) -> Result<(), sqlx::Error>;
}

impl DayLock for sqlx::SqliteConnection {
    async fn lock_day_of_contact(&mut self, _contact: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
    async fn lock_day(&mut self, _day: i64) -> Result<(), sqlx::Error> {
        Ok(())
    }
    async fn lock_all_days(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl DayLock for sqlx::PgConnection {
    async fn lock_day_of_contact(&mut self, contact: &str) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "SELECT pg_advisory_xact_lock($1, CAST(queued_at / {DAY_MS} AS INTEGER)) FROM contacts WHERE id = $2"
        ))
        .bind(LOCK_CLASS)
        .bind(contact)
        .execute(self)
        .await?;
        Ok(())
    }
    async fn lock_day(&mut self, day: i64) -> Result<(), sqlx::Error> {
        let key = i32::try_from(day.div_euclid(DAY_MS)).unwrap_or(i32::MAX);
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2), pg_advisory_xact_lock($1, $3)")
            .bind(LOCK_CLASS)
            .bind(ALL_DAYS)
            .bind(key)
            .execute(self)
            .await?;
        Ok(())
    }
    async fn lock_all_days(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(LOCK_CLASS).bind(ALL_DAYS).execute(self).await?;
        Ok(())
    }
}

/// Consecutive units from which [`unit_filter`] writes a range instead of listing them: two days of
/// hours. A month by hour is one range; the edge hours of local days (runs of at most 23) stay in the
/// `IN` list: at −09:30, 730 runs of 9–10 hours as an `OR` of ranges made the planners test every row
/// against every range (2.8 s on SQLite, 4.6 s on PostgreSQL for a year by day).
const RUN_AS_RANGE: usize = 48;

/// `col IN (…)` for the units in `units` (sorted hour or day starts; computed numbers, never request
/// text), runs of [`RUN_AS_RANGE`] or more consecutive units as ranges; `FALSE`-like `1 = 0` for none.
fn unit_filter(col: &str, units: &[i64], len: i64) -> String {
    let mut terms = Vec::new();
    let mut singles = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let mut j = i;
        while j + 1 < units.len() && units[j + 1] == units[j] + len {
            j += 1;
        }
        if j - i + 1 >= RUN_AS_RANGE {
            terms.push(format!("({col} >= {} AND {col} < {})", units[i], units[j] + len));
        } else {
            singles.extend(units[i..=j].iter().map(|u| u.to_string()));
        }
        i = j + 1;
    }
    if !singles.is_empty() {
        terms.push(format!("{col} IN ({})", singles.join(", ")));
    }
    if terms.is_empty() {
        return "1 = 0".to_string();
    }
    format!("({})", terms.join(" OR "))
}

fn floor_hour(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

/// Rolls up at most `max_hours` settled hours that are not rolled up yet, oldest first, one day per
/// transaction, then every day whose 24 hours are rolled up ([`roll_up_days`]). Safe to run from several
/// places at once (each hour's and day's rows are replaced as a whole).
pub async fn roll_up(store: &Store, now_ms: i64, max_hours: usize) -> StoreResult<Progress> {
    roll_up_pausing(store, now_ms, max_hours, None).await
}

/// For tests: where [`roll_up_pausing`] stops, between reading a day's hours and writing their roll-up.
#[doc(hidden)]
pub struct Pause {
    /// The UTC day (start, ms) to stop at.
    pub day: i64,
    /// Notified when the roll-up of `day` has read its hours.
    pub reached: std::sync::Arc<tokio::sync::Notify>,
    /// The roll-up waits for this before it writes.
    pub resume: std::sync::Arc<tokio::sync::Notify>,
}

/// [`roll_up`], stopping at `pause` (tests: a late change sent while a roll-up is between read and write).
#[doc(hidden)]
pub async fn roll_up_pausing(store: &Store, now_ms: i64, max_hours: usize, pause: Option<&Pause>) -> StoreResult<Progress> {
    let end = floor_hour(now_ms - SETTLE_MS);
    let first: (Option<i64>, Option<i64>) = on_pool!(store, pool => sqlx::query_as(
        "SELECT (SELECT MIN(queued_at) FROM contacts), (SELECT MIN(at) FROM status_changes)")
        .fetch_one(pool).await)?;
    let Some(first) = [first.0, first.1].into_iter().flatten().min().map(floor_hour) else {
        return Ok(Progress::default());
    };
    if first >= end {
        return Ok(Progress::default());
    }
    let mut progress = roll_up_hours(store, first, end, now_ms, max_hours, pause).await?;
    progress.days = roll_up_days(store, now_ms).await?;
    Ok(progress)
}

async fn roll_up_hours(
    store: &Store,
    first: i64,
    end: i64,
    now_ms: i64,
    max_hours: usize,
    pause: Option<&Pause>,
) -> StoreResult<Progress> {
    let done: Vec<(i64,)> = on_pool!(store, pool => sqlx::query_as(
        "SELECT hour FROM report_rollup_hours WHERE hour >= $1 AND hour < $2")
        .bind(first).bind(end).fetch_all(pool).await)?;
    let done: BTreeSet<i64> = done.into_iter().map(|r| r.0).collect();
    let todo: Vec<i64> = (0..(end - first) / HOUR_MS).map(|i| first + i * HOUR_MS).filter(|h| !done.contains(h)).collect();
    let mut progress = Progress { remaining: todo.len(), ..Progress::default() };
    let mut by_day: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for h in todo.into_iter().take(max_hours) {
        by_day.entry(h.div_euclid(DAY_MS) * DAY_MS).or_default().push(h);
    }
    for (day, hours) in by_day {
        let chunk = roll_up_day(store, day, &hours, now_ms, pause.filter(|p| p.day == day)).await?;
        progress.rolled += chunk.rolled;
        progress.open += chunk.open;
        progress.remaining -= hours.len();
    }
    Ok(progress)
}

/// Sums every day whose 24 hours are rolled up but which is not rolled up itself, from the hourly rows,
/// a month of days per transaction. Returns the number of days written.
///
/// In the transaction, the day's lock is taken first ([`DayLock`]), then its 24 `report_rollup_hours` rows
/// counted: if one was dropped meanwhile, the day is skipped, and a drop that comes later waits for this
/// transaction and then drops the day too.
pub async fn roll_up_days(store: &Store, now_ms: i64) -> StoreResult<usize> {
    let complete: Vec<(i64,)> = on_pool!(store, pool => sqlx::query_as(&format!(
        "SELECT hour - hour % {DAY_MS} FROM report_rollup_hours GROUP BY hour - hour % {DAY_MS} HAVING COUNT(*) = 24"))
        .fetch_all(pool).await)?;
    let done: Vec<(i64,)> = on_pool!(store, pool => sqlx::query_as("SELECT day FROM report_rollup_days").fetch_all(pool).await)?;
    let done: BTreeSet<i64> = done.into_iter().map(|r| r.0).collect();
    let todo: Vec<i64> = complete.into_iter().map(|r| r.0).filter(|d| !done.contains(d)).collect();
    const COUNTS: &str =
        "offered, abandoned, abandoned_short, answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations";
    const SUMS: &str = "CAST(SUM(offered) AS BIGINT), CAST(SUM(abandoned) AS BIGINT), CAST(SUM(abandoned_short) AS BIGINT),
        CAST(SUM(answered) AS BIGINT), CAST(SUM(answered_in_target) AS BIGINT), CAST(SUM(answer_ms_sum) AS BIGINT),
        CAST(SUM(handled) AS BIGINT), CAST(SUM(handle_ms_sum) AS BIGINT), CAST(SUM(transfers) AS BIGINT),
        CAST(SUM(escalations) AS BIGINT)";
    let inserts = [
        format!(
            "INSERT INTO report_day_tallies (day, helpline, channel, language, {COUNTS})
             SELECT $1, helpline, channel, language, {SUMS} FROM report_hour_tallies WHERE hour >= $1 AND hour < $2
             GROUP BY helpline, channel, language"
        ),
        format!(
            "INSERT INTO report_day_categories (day, helpline, category, {COUNTS})
             SELECT $1, helpline, category, {SUMS} FROM report_hour_categories WHERE hour >= $1 AND hour < $2
             GROUP BY helpline, category"
        ),
        "INSERT INTO report_day_occupancy (day, counsellor_id, busy_ms, staffed_ms)
         SELECT $1, counsellor_id, CAST(SUM(busy_ms) AS BIGINT), CAST(SUM(staffed_ms) AS BIGINT)
         FROM report_hour_occupancy WHERE hour >= $1 AND hour < $2 GROUP BY counsellor_id"
            .to_string(),
    ];
    let mut written = 0;
    for days in todo.chunks(31) {
        written += on_pool!(store, pool => async {
            let mut tx = pool.begin_write().await?;
            let mut written = 0;
            for &day in days {
                DayLock::lock_day(&mut *tx, day).await?;
                let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM report_rollup_hours WHERE hour >= $1 AND hour < $2")
                    .bind(day).bind(day + DAY_MS).fetch_one(&mut *tx).await?;
                if held != 24 {
                    continue;
                }
                for table in DAY_TABLES {
                    sqlx::query(&format!("DELETE FROM {table} WHERE day = $1")).bind(day).execute(&mut *tx).await?;
                }
                for sql in &inserts {
                    sqlx::query(sql).bind(day).bind(day + DAY_MS).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO report_rollup_days (day, rolled_at) VALUES ($1, $2)")
                    .bind(day).bind(now_ms).execute(&mut *tx).await?;
                written += 1;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(written)
        }.await)?;
    }
    if written > 0 {
        tracing::debug!(days = written, "report days rolled up");
    }
    Ok(written)
}

/// Binds the settled counts of a tally line (waiting ones are 0 in a settled hour).
macro_rules! push_counts {
    ($b:ident, $c:expr) => {
        $b.push_bind($c.offered)
            .push_bind($c.abandoned)
            .push_bind($c.abandoned_short)
            .push_bind($c.answered)
            .push_bind($c.answered_in_target)
            .push_bind($c.answer_ms_sum)
            .push_bind($c.handled)
            .push_bind($c.handle_ms_sum)
            .push_bind($c.transfers)
            .push_bind($c.escalations)
    };
}

/// Everything the live queries say about the hours of one day, then the settled ones written at once: the
/// read and the write in one write transaction that holds the day's lock ([`DayLock`]) throughout, so a late
/// change to one of these hours either is read here or drops the rows written here once this commits.
async fn roll_up_day(store: &Store, day: i64, hours: &[i64], now_ms: i64, pause: Option<&Pause>) -> StoreResult<Progress> {
    let to = day + DAY_MS;
    let mut tx = Reading::write(store).await?;
    on_reading!(&mut tx, conn => DayLock::lock_day(&mut *conn, day).await)?;
    let tallies = metrics::fetch_tallies_in(&mut tx, day, HOUR_MS, &[(day, to)], now_ms).await?;
    let categories = metrics::fetch_category_tallies_in(&mut tx, day, HOUR_MS, &[(day, to)], now_ms).await?;
    let presence = metrics::fetch_presence_in(&mut tx, day, to).await?;
    if let Some(p) = pause {
        p.reached.notify_one();
        p.resume.notified().await;
    }
    let bounds: Vec<i64> = (0..=24).map(|i| day + i * HOUR_MS).collect();
    let occupancy = metrics::occupancy_by_counsellor(&presence.conversations, &presence.status_changes, &bounds, now_ms);

    let hour_of = |bucket: i64| day + bucket * HOUR_MS;
    let mut open: BTreeSet<i64> = tallies.iter().filter(|r| !r.counts.settled()).map(|r| hour_of(r.bucket)).collect();
    for c in presence.conversations.iter().filter(|c| c.ended_at.is_none()) {
        // An open conversation makes every hour from its answer on unsettled.
        open.extend(hours.iter().copied().filter(|h| h + HOUR_MS > c.answered_at));
    }
    let settled: Vec<i64> = hours.iter().copied().filter(|h| !open.contains(h)).collect();
    if settled.is_empty() {
        tx.commit().await?;
        return Ok(Progress { open: hours.len(), ..Progress::default() });
    }
    let tally_rows: Vec<&TallyRow> = tallies.iter().filter(|r| settled.contains(&hour_of(r.bucket))).collect();
    let category_rows: Vec<&CategoryRow> = categories.iter().filter(|r| settled.contains(&hour_of(r.bucket))).collect();
    let mut occupancy_rows: Vec<(i64, &str, Occupancy)> = Vec::new();
    for (who, per_hour) in &occupancy {
        for (i, o) in per_hour.iter().enumerate() {
            let h = day + i as i64 * HOUR_MS;
            if (o.busy_ms > 0 || o.staffed_ms > 0) && settled.contains(&h) {
                occupancy_rows.push((h, who.as_str(), *o));
            }
        }
    }
    let (lo, hi) = (settled[0], settled[settled.len() - 1]);
    // One statement per table for all the hours (re-rolling a month is 4 deletes a day, not 96).
    let which = unit_filter("hour", &settled, HOUR_MS);
    on_reading!(&mut tx, conn => async {
        for table in HOUR_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE {which}")).execute(&mut *conn).await?;
        }
        for part in tally_rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO report_hour_tallies (hour, helpline, channel, language, offered, abandoned, abandoned_short,
                 answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) ");
            q.push_values(part, |mut b, r| {
                b.push_bind(hour_of(r.bucket)).push_bind(&r.helpline).push_bind(&r.channel).push_bind(&r.language);
                push_counts!(b, r.counts);
            });
            q.build().execute(&mut *conn).await?;
        }
        for part in category_rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO report_hour_categories (hour, helpline, category, offered, abandoned, abandoned_short,
                 answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) ");
            q.push_values(part, |mut b, r| {
                b.push_bind(hour_of(r.bucket)).push_bind(&r.helpline).push_bind(&r.category);
                push_counts!(b, r.counts);
            });
            q.build().execute(&mut *conn).await?;
        }
        for part in occupancy_rows.chunks(1000) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO report_hour_occupancy (hour, counsellor_id, busy_ms, staffed_ms) ");
            q.push_values(part, |mut b, (h, who, o)| {
                b.push_bind(*h).push_bind(*who).push_bind(o.busy_ms).push_bind(o.staffed_ms);
            });
            q.build().execute(&mut *conn).await?;
        }
        let mut q = sqlx::QueryBuilder::new("INSERT INTO report_rollup_hours (hour, rolled_at) ");
        q.push_values(&settled, |mut b, h| {
            b.push_bind(*h).push_bind(now_ms);
        });
        q.build().execute(&mut *conn).await?;
        Ok::<_, sqlx::Error>(())
    }.await)?;
    tx.commit().await?;
    tracing::debug!(from = lo, to = hi + HOUR_MS, hours = settled.len(), "report hours rolled up");
    Ok(Progress { rolled: settled.len(), open: hours.len() - settled.len(), ..Progress::default() })
}

/// `helpline rollup`: rolls up every settled hour, a month at a time, printing progress to stderr.
pub async fn run_to_completion(store: &Store) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (mut rolled, mut days) = (0, 0);
    let open = loop {
        let now = crate::clock::Clock::new().now_ms();
        let p = roll_up(store, now, 24 * 31).await?;
        rolled += p.rolled;
        days += p.days;
        eprintln!(
            "rolled up {rolled} hours, {} to go ({:.1} s)",
            p.remaining,
            started.elapsed().as_secs_f64()
        );
        if p.remaining == 0 || p.rolled == 0 {
            break p.open;
        }
    };
    println!(
        "report roll-ups: {rolled} hours and {days} days rolled up; {open} hours left live (a contact in them is still open)"
    );
    Ok(())
}

/// The sums of the roll-up columns, decoded as [`TallyCounts`].
const ROLLED_SUMS: &str = "CAST(SUM(offered) AS BIGINT) AS offered, CAST(SUM(abandoned) AS BIGINT) AS abandoned,
 CAST(SUM(abandoned_short) AS BIGINT) AS abandoned_short, CAST(SUM(answered) AS BIGINT) AS answered,
 CAST(SUM(answered_in_target) AS BIGINT) AS answered_in_target, CAST(SUM(answer_ms_sum) AS BIGINT) AS answer_ms_sum,
 CAST(SUM(handled) AS BIGINT) AS handled, CAST(SUM(handle_ms_sum) AS BIGINT) AS handle_ms_sum,
 CAST(0 AS BIGINT) AS waiting, CAST(0 AS BIGINT) AS waiting_in_target,
 CAST(SUM(transfers) AS BIGINT) AS transfers, CAST(SUM(escalations) AS BIGINT) AS escalations";

/// What the roll-ups hold for the report's range, in its buckets.
#[derive(Default)]
pub struct Rolled {
    /// The hours counted from the roll-ups (the rest of the range is computed live).
    pub hours: BTreeSet<i64>,
    pub tallies: Vec<TallyRow>,
    pub categories: Vec<CategoryRow>,
    /// (bucket, busy_ms, staffed_ms), summed over the counsellors asked for.
    pub occupancy: Vec<(i64, i64, i64)>,
}

/// Whose figures a report reads: one helpline's contacts or all; the occupancy of some counsellors or all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub helpline: Option<&'a str>,
    /// None: every counsellor.
    pub staff: Option<&'a BTreeSet<String>>,
}

/// Reads, inside `reading`, what the roll-ups hold for a report whose buckets are `bounds` (its range cut
/// into buckets of `bucket_ms` counted from `origin`, the first and last cut to the range).
///
/// Every rolled-up hour that lies whole inside one bucket counts from the roll-ups (`Rolled::hours`); the
/// rest (hours not rolled up, and hours a bucket bound cuts, at offsets that are not whole hours) the caller
/// computes live. By day, at any UTC offset, a local day is read from the UTC day holding most of it:
/// local day `[D + s, D + s + 24 h)` = UTC day D − its hours before `D + s` + the next day's hours before
/// `D + 24 h + s` (or, when s > 12 h, UTC day D + 24 h − its hours from `D + 24 h + s` + D's hours from
/// `D + s`). All sums are additive, so this is exact; lines that net to nothing are dropped, as the live
/// queries would not give them.
pub async fn rolled(reading: &mut Reading, origin: i64, bucket_ms: i64, bounds: &[i64], scope: Scope<'_>) -> StoreResult<Rolled> {
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(Rolled::default());
    };
    let (a, b) = (ceil_to(from, HOUR_MS), floor_hour(to));
    if a >= b {
        return Ok(Rolled::default());
    }
    let by_day = bucket_ms == DAY_MS;
    let (ra, rb) = if by_day { (a.div_euclid(DAY_MS) * DAY_MS, ceil_to(b, DAY_MS)) } else { (a, b) };
    let rolled_hours: Vec<(i64,)> = on_reading!(reading, conn => sqlx::query_as(
        "SELECT hour FROM report_rollup_hours WHERE hour >= $1 AND hour < $2").bind(ra).bind(rb).fetch_all(&mut *conn).await)?;
    let rolled_hours: BTreeSet<i64> = rolled_hours.into_iter().map(|r| r.0).collect();
    // A bucket bound strictly inside the hour: the hour is split between two buckets.
    let cut = |h: i64| {
        let i = bounds.partition_point(|x| *x <= h);
        i < bounds.len() && bounds[i] < h + HOUR_MS
    };
    let covered: BTreeSet<i64> = rolled_hours.range(a..b).copied().filter(|h| !cut(*h)).collect();
    let mut plus_hours = covered.clone();
    let mut minus_hours: Vec<i64> = Vec::new();
    let mut days: Vec<i64> = Vec::new();
    // Local days start `s` into UTC days; `e0` is the UTC day holding the first one's start.
    let s = origin.rem_euclid(DAY_MS);
    let e0 = origin - s;
    // The whole hours of a UTC day before the local day's start (part A, bucket k − 1) and after it (B, k).
    let (na, b_start) = (floor_hour(s) / HOUR_MS, ceil_to(s, HOUR_MS));
    let nb = (DAY_MS - b_start) / HOUR_MS;
    let (part, shift) = if nb >= na { ((b_start, DAY_MS), 0) } else { ((0, floor_hour(s)), -1) };
    if by_day {
        let rolled_days: Vec<(i64,)> = on_reading!(reading, conn => sqlx::query_as(
            "SELECT day FROM report_rollup_days WHERE day >= $1 AND day < $2 ORDER BY day").bind(ra).bind(rb).fetch_all(&mut *conn).await)?;
        for (day,) in rolled_days {
            let all: Vec<i64> = (0..24).map(|i| day + i * HOUR_MS).collect();
            let inside = |h: &i64| (part.0..part.1).contains(&(h - day));
            // Its hours in the bucket must all count from the roll-ups, and every hour be rolled up.
            if !all.iter().all(|h| rolled_hours.contains(h)) || !all.iter().filter(|h| inside(h)).all(|h| covered.contains(h)) {
                continue;
            }
            days.push(day);
            for h in all {
                if inside(&h) {
                    plus_hours.remove(&h);
                } else {
                    minus_hours.push(h);
                }
            }
        }
    }
    let mut net = Net::default();
    let plus_hours: Vec<i64> = plus_hours.into_iter().collect();
    let reads = [
        ("hour", format!("(hour - {origin}) / {bucket_ms}"), unit_filter("hour", &plus_hours, HOUR_MS), 1, plus_hours.is_empty()),
        (
            "day",
            format!("(day - {e0}) / {DAY_MS} + {shift}"),
            unit_filter("day", &days, DAY_MS),
            1,
            days.is_empty(),
        ),
        (
            "hour",
            format!("(hour - hour % {DAY_MS} - {e0}) / {DAY_MS} + {shift}"),
            unit_filter("hour", &minus_hours, HOUR_MS),
            -1,
            minus_hours.is_empty(),
        ),
    ];
    for (layer, bucket, within, sign, empty) in reads {
        if !empty {
            read_layer(reading, layer, &bucket, &within, sign, scope, &mut net).await?;
        }
    }
    Ok(net.finish(covered))
}

/// Roll-up lines summed with their signs, per line key.
#[derive(Default)]
struct Net {
    tallies: BTreeMap<(i64, String, String, String), TallyCounts>,
    categories: BTreeMap<(i64, String, String), TallyCounts>,
    occupancy: BTreeMap<i64, (i64, i64)>,
}

impl Net {
    /// The lines that still count contacts (a line netting to none would not come from the live queries).
    fn finish(self, hours: BTreeSet<i64>) -> Rolled {
        let tallies = self
            .tallies
            .into_iter()
            .filter(|(_, c)| c.offered != 0)
            .map(|((bucket, helpline, channel, language), counts)| TallyRow { bucket, helpline, channel, language, counts })
            .collect();
        let categories = self
            .categories
            .into_iter()
            .filter(|(_, c)| c.offered != 0)
            .map(|((bucket, helpline, category), counts)| CategoryRow { bucket, helpline, category, counts })
            .collect();
        let occupancy = self.occupancy.into_iter().map(|(b, (busy, staffed))| (b, busy, staffed)).collect();
        Rolled { hours, tallies, categories, occupancy }
    }
}

/// `t` rounded up to a multiple of `len`.
fn ceil_to(t: i64, len: i64) -> i64 {
    let floor = t.div_euclid(len) * len;
    if floor == t {
        t
    } else {
        floor + len
    }
}

/// Adds `sign` × the rows of one layer (`hour` or `day`: tables `report_{layer}_*`) matching `within`, in
/// buckets given by the SQL expression `bucket`, to `net`.
async fn read_layer(
    reading: &mut Reading,
    layer: &str,
    bucket: &str,
    within: &str,
    sign: i64,
    scope: Scope<'_>,
    net: &mut Net,
) -> StoreResult<()> {
    // Numbers computed here, not text from a request: they go into the SQL as literals.
    let helpline = if scope.helpline.is_some() { " AND helpline = $1" } else { "" };
    let tally_sql = format!(
        "SELECT {bucket} AS bucket, helpline, channel, language, {ROLLED_SUMS}
         FROM report_{layer}_tallies WHERE {within}{helpline} GROUP BY 1, 2, 3, 4"
    );
    let category_sql = format!(
        "SELECT {bucket} AS bucket, helpline, category, {ROLLED_SUMS}
         FROM report_{layer}_categories WHERE {within}{helpline} GROUP BY 1, 2, 3"
    );
    let tallies: Vec<TallyRow> = on_reading!(reading, conn => {
        let mut q = sqlx::query_as(&tally_sql);
        if let Some(h) = scope.helpline {
            q = q.bind(h);
        }
        q.fetch_all(&mut *conn).await
    })?;
    let categories: Vec<CategoryRow> = on_reading!(reading, conn => {
        let mut q = sqlx::query_as(&category_sql);
        if let Some(h) = scope.helpline {
            q = q.bind(h);
        }
        q.fetch_all(&mut *conn).await
    })?;
    for r in tallies {
        net.tallies.entry((r.bucket, r.helpline, r.channel, r.language)).or_default().add(&r.counts, sign);
    }
    for r in categories {
        net.categories.entry((r.bucket, r.helpline, r.category)).or_default().add(&r.counts, sign);
    }
    let staff: Vec<&String> = scope.staff.map(|s| s.iter().collect()).unwrap_or_default();
    if scope.staff.is_some() && staff.is_empty() {
        return Ok(());
    }
    let among = if scope.staff.is_some() {
        let marks = (1..=staff.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        format!(" AND counsellor_id IN ({marks})")
    } else {
        String::new()
    };
    let occupancy_sql = format!(
        "SELECT {bucket} AS bucket, CAST(SUM(busy_ms) AS BIGINT), CAST(SUM(staffed_ms) AS BIGINT)
         FROM report_{layer}_occupancy WHERE {within}{among} GROUP BY 1"
    );
    let occupancy: Vec<(i64, i64, i64)> = on_reading!(reading, conn => {
        let mut q = sqlx::query_as(&occupancy_sql);
        for who in &staff {
            q = q.bind(*who);
        }
        q.fetch_all(&mut *conn).await
    })?;
    for (bucket, busy, staffed) in occupancy {
        let o = net.occupancy.entry(bucket).or_default();
        o.0 += sign * busy;
        o.1 += sign * staffed;
    }
    Ok(())
}

/// The parts of `[from, to)` not covered by the rolled-up `hours`, in order.
pub fn live_ranges(from: i64, to: i64, hours: &BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    for &h in hours.range(from..to) {
        if h > at {
            out.push((at, h));
        }
        at = at.max(h + HOUR_MS);
    }
    if at < to {
        out.push((at, to));
    }
    out
}

impl Store {
    /// Drops every roll-up (a helpline's answer target changed): hours are recounted in the background.
    pub async fn clear_rollups(&self) -> StoreResult<()> {
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            DayLock::lock_all_days(&mut *tx).await?;
            for table in HOUR_TABLES.into_iter().chain(DAY_TABLES) {
                sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_filters_list_short_runs_and_write_long_ones_as_ranges() {
        let h = |i: i64| i * HOUR_MS;
        assert_eq!(unit_filter("hour", &[], HOUR_MS), "1 = 0");
        // Ten-hour runs (the edge hours of local days at -09:30) stay a list.
        let edges: Vec<i64> = (0..3).flat_map(|d| (0..10).map(move |i| h(24 * d + i))).collect();
        let f = unit_filter("hour", &edges, HOUR_MS);
        assert!(f.starts_with("(hour IN (0, 3600000, ") && !f.contains(">="), "{f}");
        // Two days of hours and more: one range, with the singles beside it.
        let mut month: Vec<i64> = (0..48).map(h).collect();
        month.push(h(50));
        assert_eq!(unit_filter("hour", &month, HOUR_MS), format!("((hour >= 0 AND hour < {}) OR hour IN ({}))", h(48), h(50)));
    }

    #[test]
    fn live_ranges_are_the_gaps_between_rolled_hours() {
        let h = |i: i64| i * HOUR_MS;
        let rolled: BTreeSet<i64> = [h(1), h(2), h(4)].into_iter().collect();
        assert_eq!(live_ranges(h(0) + 5, h(6), &rolled), vec![(5, h(1)), (h(3), h(4)), (h(5), h(6))]);
        assert_eq!(live_ranges(h(1), h(3), &rolled), vec![]);
        assert_eq!(live_ranges(h(1), h(3) + 7, &rolled), vec![(h(3), h(3) + 7)]);
        assert_eq!(live_ranges(h(7), h(9), &rolled), vec![(h(7), h(9))]);
    }

    #[test]
    fn counts_with_someone_waiting_or_talking_are_not_settled() {
        let c = TallyCounts { offered: 2, answered: 1, handled: 1, ..TallyCounts::default() };
        assert!(c.settled());
        assert!(!TallyCounts { waiting: 1, ..c.clone() }.settled());
        assert!(!TallyCounts { handled: 0, ..c }.settled());
    }
}

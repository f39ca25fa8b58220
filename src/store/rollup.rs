//! Hourly roll-ups behind reports: each settled hour is summed once, so a year of contacts reports in well under a second.
//!
//! An hour `[h, h + 1 h)` (UTC) is *settled* when it ended at least [`SETTLE_MS`] ago, no contact queued in
//! it is still waiting or in conversation, and no conversation overlapping it is still open. Then the live
//! queries can no longer change their answer for it, and [`roll_up`] stores that answer: the lines of
//! [`figures::TALLY_SQL`] and of the category tally for the hour, and [`protocol::figures::occupancy_by_counsellor`]
//! for the hour. A report ([`crate::supervision::reports`]) reads rolled-up hours from these tables and computes the rest
//! (the partial hours at its edges, recent hours, hours with an open contact) live, with the same SQL.
//!
//! What can still change a settled hour is written in the same transaction as its roll-up is dropped
//! ([`InvalidateHour::invalidate_hour_of_contact`]): a contact form saved later (its categories), a late escalation. A
//! helpline's answer target changing drops every roll-up ([`Rollups::clear_rollups`]).
//!
//! Beside each hour, its four quarters ([`QUARTER_TABLES`]), written and dropped with it: every UTC offset in
//! use is a whole number of quarters, so where a local day's start cuts an hour (+05:30, +05:45, −09:30)
//! the hour is read from its quarters instead of being computed live.
//!
//! Over the hours, a daily layer: a UTC day whose 24 hours are all rolled up is summed once more per day
//! ([`roll_up`] does it after the hours, from the hourly rows), so a report by day (UTC) over a year reads
//! 365 rows per group instead of 8,760. A day's rows exist only while all its hours' rows do: dropping an
//! hour drops its day in the same transaction, and the day is summed again once the hour is back.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol;
use crate::protocol::figures::Occupancy;
use crate::store::figures::{self, on_reading, CategoryRow, Reading, TallyCounts, TallyRow};
use crate::store::{both_engines, on_pool, on_writer, BeginWrite, Store, StoreResult};

pub const HOUR_MS: i64 = 3_600_000;
/// Rolled-up hours are also stored by quarter: every UTC offset in use is a whole number of quarters.
pub const QUARTER_MS: i64 = HOUR_MS / 4;
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
/// The quarter-hour layer's tables: the quarters of every rolled-up hour (listed in `report_rollup_hours`).
pub(crate) const QUARTER_TABLES: [&str; 3] = ["report_quarter_tallies", "report_quarter_categories", "report_quarter_occupancy"];
/// The daily layer's tables.
pub(crate) const DAY_TABLES: [&str; 4] = ["report_rollup_days", "report_day_tallies", "report_day_categories", "report_day_occupancy"];

/// Drops the roll-up of the hour a contact was queued in, and of its day, inside a write transaction,
/// so the next roll-up recounts them. Used by every late change to what reports count (forms, escalations).
/// The hour goes first: a concurrent [`roll_up_days`] either sees it gone or holds it until its day is
/// written, and then this drops that day.
///
/// It first takes the lock of the contact's day ([`DayLock`]), which a roll-up of that day holds from before
/// its read to its commit: a roll-up either sees this change (it commits first) or its rows are dropped here
/// after it commits; a change can never land between a roll-up's read and its write.
pub(crate) trait InvalidateHour {
    /// Drops the roll-up of the hour (its quarters) and the day `contact` was queued in.
    async fn invalidate_hour_of_contact(&mut self, contact: &str) -> Result<(), sqlx::Error>;
}

both_engines!(impl InvalidateHour for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn invalidate_hour_of_contact(&mut self, contact: &str) -> Result<(), sqlx::Error> {
        self.lock_day_of_contact(contact).await?;
        // Each layer's rows from the start of the contact's hour (or day) to its end: one row per table
        // for the hour and day layers, the hour's four for the quarter layer.
        for (tables, key, len) in [(&HOUR_TABLES[..], "hour", HOUR_MS), (&QUARTER_TABLES[..], "quarter", HOUR_MS), (&DAY_TABLES[..], "day", DAY_MS)] {
            for table in tables {
                let sql = format!(
                    "DELETE FROM {table} WHERE {key} >= (SELECT queued_at - queued_at % {len} FROM contacts WHERE id = $1)
                     AND {key} < (SELECT queued_at - queued_at % {len} + {len} FROM contacts WHERE id = $1)"
                );
                sqlx::query(&sql).bind(contact).execute(&mut *self).await?;
            }
        }
        Ok(())
    }
});

/// PostgreSQL advisory lock class of the roll-up locks ("ROLL"); key = the UTC day's number, or [`ALL_DAYS`].
const LOCK_CLASS: i32 = 0x524f_4c4c;
/// The key every roll-up holds shared and [`Rollups::clear_rollups`] takes alone.
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
        sqlx::query(&format!("SELECT pg_advisory_xact_lock($1, CAST(queued_at / {DAY_MS} AS INTEGER)) FROM contacts WHERE id = $2"))
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

async fn roll_up_hours(store: &Store, first: i64, end: i64, now_ms: i64, max_hours: usize, pause: Option<&Pause>) -> StoreResult<Progress> {
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
        written += on_writer!(store, pool => async {
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

/// Binds the settled counts of a tally line (waiting ones are 0 in a settled hour), in the column order of
/// the roll-up tables' `INSERT`s.
fn push_counts<'args, DB>(b: &mut sqlx::query_builder::Separated<'_, 'args, DB, &'static str>, c: &TallyCounts)
where
    DB: sqlx::Database,
    i64: 'args + sqlx::Encode<'args, DB> + sqlx::Type<DB>,
{
    b.push_bind(c.offered)
        .push_bind(c.abandoned)
        .push_bind(c.abandoned_short)
        .push_bind(c.answered)
        .push_bind(c.answered_in_target)
        .push_bind(c.answer_ms_sum)
        .push_bind(c.handled)
        .push_bind(c.handle_ms_sum)
        .push_bind(c.transfers)
        .push_bind(c.escalations);
}

/// Everything the live queries say about the quarters of one day, then the settled hours written at once,
/// by quarter and by hour (the sums of their quarters): the read and the write in one write transaction
/// that holds the day's lock ([`DayLock`]) throughout, so a late change to one of these hours either is
/// read here or drops the rows written here once this commits.
async fn roll_up_day(store: &Store, day: i64, hours: &[i64], now_ms: i64, pause: Option<&Pause>) -> StoreResult<Progress> {
    let to = day + DAY_MS;
    let mut tx = Reading::write(store).await?;
    on_reading!(&mut tx, conn => DayLock::lock_day(&mut *conn, day).await)?;
    let tallies = figures::fetch_tallies_in(&mut tx, day, QUARTER_MS, &[(day, to)], now_ms).await?;
    let categories = figures::fetch_category_tallies_in(&mut tx, day, QUARTER_MS, &[(day, to)], now_ms).await?;
    let presence = figures::fetch_presence_in(&mut tx, day, to).await?;
    if let Some(p) = pause {
        p.reached.notify_one();
        p.resume.notified().await;
    }
    let bounds: Vec<i64> = (0..=DAY_MS / QUARTER_MS).map(|i| day + i * QUARTER_MS).collect();
    let occupancy = protocol::figures::occupancy_by_counsellor(&presence.conversations, &presence.status_changes, &bounds, now_ms);

    let quarter_of = |bucket: i64| day + bucket * QUARTER_MS;
    let mut open: BTreeSet<i64> = tallies.iter().filter(|r| !r.counts.settled()).map(|r| floor_hour(quarter_of(r.bucket))).collect();
    for c in presence.conversations.iter().filter(|c| c.ended_at.is_none()) {
        // An open conversation makes every hour from its answer on unsettled.
        open.extend(hours.iter().copied().filter(|h| h + HOUR_MS > c.answered_at));
    }
    let settled: BTreeSet<i64> = hours.iter().copied().filter(|h| !open.contains(h)).collect();
    if settled.is_empty() {
        tx.commit().await?;
        return Ok(Progress { open: hours.len(), ..Progress::default() });
    }
    let is_settled = |quarter: i64| settled.contains(&floor_hour(quarter));
    // Quarter lines keyed (quarter, line key); hour lines summed from them.
    let quarter_tallies: BTreeMap<(i64, &str, &str, &str), &TallyCounts> = tallies
        .iter()
        .filter(|r| is_settled(quarter_of(r.bucket)))
        .map(|r| ((quarter_of(r.bucket), r.helpline.as_str(), r.channel.as_str(), r.language.as_str()), &r.counts))
        .collect();
    let quarter_categories: BTreeMap<(i64, &str, &str), &TallyCounts> = categories
        .iter()
        .filter(|r| is_settled(quarter_of(r.bucket)))
        .map(|r| ((quarter_of(r.bucket), r.helpline.as_str(), r.category.as_str()), &r.counts))
        .collect();
    let mut quarter_occupancy: BTreeMap<(i64, &str), Occupancy> = BTreeMap::new();
    for (who, per_quarter) in &occupancy {
        for (i, o) in per_quarter.iter().enumerate() {
            let q = day + i as i64 * QUARTER_MS;
            if (o.busy_ms > 0 || o.staffed_ms > 0) && is_settled(q) {
                quarter_occupancy.insert((q, who.as_str()), *o);
            }
        }
    }
    let mut hour_tallies: BTreeMap<(i64, &str, &str, &str), TallyCounts> = BTreeMap::new();
    for ((q, helpline, channel, language), counts) in &quarter_tallies {
        hour_tallies.entry((floor_hour(*q), helpline, channel, language)).or_default().add(counts, 1);
    }
    let mut hour_categories: BTreeMap<(i64, &str, &str), TallyCounts> = BTreeMap::new();
    for ((q, helpline, category), counts) in &quarter_categories {
        hour_categories.entry((floor_hour(*q), helpline, category)).or_default().add(counts, 1);
    }
    let mut hour_occupancy: BTreeMap<(i64, &str), Occupancy> = BTreeMap::new();
    for ((q, who), o) in &quarter_occupancy {
        let h = hour_occupancy.entry((floor_hour(*q), who)).or_default();
        h.busy_ms += o.busy_ms;
        h.staffed_ms += o.staffed_ms;
    }
    let settled: Vec<i64> = settled.into_iter().collect();
    let quarters: Vec<i64> = settled.iter().flat_map(|h| (0..4).map(move |i| h + i * QUARTER_MS)).collect();
    let (lo, hi) = (settled[0], settled[settled.len() - 1]);
    // One statement per table for all the hours (re-rolling a month is 7 deletes a day, not 7 × 24).
    let which_hours = unit_filter("hour", &settled, HOUR_MS);
    let which_quarters = unit_filter("quarter", &quarters, QUARTER_MS);
    on_reading!(&mut tx, conn => async {
        for table in HOUR_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE {which_hours}")).execute(&mut *conn).await?;
        }
        for table in QUARTER_TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE {which_quarters}")).execute(&mut *conn).await?;
        }
        for (unit, rows) in [("hour", hour_tallies.iter().map(|(k, c)| (*k, c)).collect::<Vec<_>>()),
                             ("quarter", quarter_tallies.iter().map(|(k, c)| (*k, *c)).collect())] {
            for part in rows.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO report_{unit}_tallies ({unit}, helpline, channel, language, offered, abandoned, abandoned_short,
                     answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) "));
                q.push_values(part, |mut b, ((at, helpline, channel, language), counts)| {
                    b.push_bind(*at).push_bind(*helpline).push_bind(*channel).push_bind(*language);
                    push_counts(&mut b, counts);
                });
                q.build().execute(&mut *conn).await?;
            }
        }
        for (unit, rows) in [("hour", hour_categories.iter().map(|(k, c)| (*k, c)).collect::<Vec<_>>()),
                             ("quarter", quarter_categories.iter().map(|(k, c)| (*k, *c)).collect())] {
            for part in rows.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO report_{unit}_categories ({unit}, helpline, category, offered, abandoned, abandoned_short,
                     answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) "));
                q.push_values(part, |mut b, ((at, helpline, category), counts)| {
                    b.push_bind(*at).push_bind(*helpline).push_bind(*category);
                    push_counts(&mut b, counts);
                });
                q.build().execute(&mut *conn).await?;
            }
        }
        for (unit, rows) in [("hour", hour_occupancy.into_iter().collect::<Vec<_>>()), ("quarter", quarter_occupancy.into_iter().collect())] {
            for part in rows.chunks(1000) {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO report_{unit}_occupancy ({unit}, counsellor_id, busy_ms, staffed_ms) "));
                q.push_values(part, |mut b, ((at, who), o)| {
                    b.push_bind(*at).push_bind(*who).push_bind(o.busy_ms).push_bind(o.staffed_ms);
                });
                q.build().execute(&mut *conn).await?;
            }
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
        eprintln!("rolled up {rolled} hours, {} to go ({:.1} s)", p.remaining, started.elapsed().as_secs_f64());
        if p.remaining == 0 || p.rolled == 0 {
            break p.open;
        }
    };
    println!("report roll-ups: {rolled} hours and {days} days rolled up; {open} hours left live (a contact in them is still open)");
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
    /// The parts of the range counted from the roll-ups (sorted, disjoint `[start, end)`; the rest of the
    /// range is computed live).
    pub covered: Vec<(i64, i64)>,
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
/// Every rolled-up hour that lies whole inside one bucket counts from the hourly roll-ups; a rolled-up hour
/// that a bucket bound or the range's edge cuts at a whole quarter (at offsets like +05:30 or +05:45, every
/// local day's start) counts from its quarters, each in its bucket; the rest (hours not rolled up, cuts
/// inside a quarter) the caller computes live ([`Rolled::covered`] says what is counted here). By day, at
/// any UTC offset, a local day is read from the UTC day holding most of it: local day `[D + s, D + s + 24 h)`
/// = UTC day D − its hours before `D + s` + the next day's hours before `D + 24 h + s` (or, when s > 12 h,
/// UTC day D + 24 h − its hours from `D + 24 h + s` + D's hours from `D + s`); an hour cut by `D + s` is
/// taken away whole and its quarters added to their days. All sums are additive, so this is exact; lines
/// that net to nothing are dropped, as the live queries would not give them.
pub async fn rolled(reading: &mut Reading, origin: i64, bucket_ms: i64, bounds: &[i64], scope: Scope<'_>) -> StoreResult<Rolled> {
    let (Some(&from), Some(&to)) = (bounds.first(), bounds.last()) else {
        return Ok(Rolled::default());
    };
    // The whole hours in the range, and every hour it touches.
    let (a, b) = (ceil_to(from, HOUR_MS), floor_hour(to));
    let (touched_from, touched_to) = (floor_hour(from), ceil_to(to, HOUR_MS));
    if touched_from >= touched_to {
        return Ok(Rolled::default());
    }
    let by_day = bucket_ms == DAY_MS && a < b;
    let (ra, rb) = if by_day { (a.div_euclid(DAY_MS) * DAY_MS, ceil_to(b, DAY_MS)) } else { (a, b) };
    let rolled_hours: Vec<(i64,)> = on_reading!(reading, conn => sqlx::query_as(
        "SELECT hour FROM report_rollup_hours WHERE hour >= $1 AND hour < $2")
        .bind(ra.min(touched_from)).bind(rb.max(touched_to)).fetch_all(&mut *conn).await)?;
    let rolled_hours: BTreeSet<i64> = rolled_hours.into_iter().map(|r| r.0).collect();
    // A bucket bound strictly inside the hour: the hour is split between two buckets.
    let cut = |h: i64| {
        let i = bounds.partition_point(|x| *x <= h);
        i < bounds.len() && bounds[i] < h + HOUR_MS
    };
    let covered: BTreeSet<i64> = rolled_hours.range(a..b).copied().filter(|h| !cut(*h)).collect();
    // The other rolled-up hours the range touches, where every cut (bucket bounds, the range's edges) falls
    // on a quarter: their quarters in the range.
    let mut quarters: Vec<i64> = Vec::new();
    for &h in rolled_hours.range(touched_from..touched_to).filter(|h| !covered.contains(h)) {
        let (lo, hi) = (h.max(from), (h + HOUR_MS).min(to));
        let inside = bounds.iter().filter(|x| **x > lo && **x < hi);
        if [lo, hi].iter().chain(inside).all(|x| x.rem_euclid(QUARTER_MS) == 0) {
            quarters.extend((lo..hi).step_by(QUARTER_MS as usize));
        }
    }
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
        ("quarter", format!("(quarter - {origin}) / {bucket_ms}"), unit_filter("quarter", &quarters, QUARTER_MS), 1, quarters.is_empty()),
        ("day", format!("(day - {e0}) / {DAY_MS} + {shift}"), unit_filter("day", &days, DAY_MS), 1, days.is_empty()),
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
    let spans = covered.iter().map(|h| (*h, HOUR_MS)).chain(quarters.iter().map(|q| (*q, QUARTER_MS)));
    Ok(net.finish(merge_spans(spans)))
}

/// Spans `(start, len)` as sorted, disjoint `[start, end)` ranges, touching ones joined.
fn merge_spans(spans: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    protocol::figures::merge(spans.map(|(at, len)| (at, at + len)).collect())
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
    fn finish(self, covered: Vec<(i64, i64)>) -> Rolled {
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
        Rolled { covered, tallies, categories, occupancy }
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

/// The parts of `[from, to)` not `covered` (sorted, disjoint ranges), in order.
pub fn live_ranges(from: i64, to: i64, covered: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    for &(a, z) in covered.iter().filter(|(a, z)| *z > from && *a < to) {
        if a > at {
            out.push((at, a));
        }
        at = at.max(z);
    }
    if at < to {
        out.push((at, to));
    }
    out
}

/// A view of the store: the report roll-ups' tables ([`Store::rollups`]).
#[derive(Clone, Copy, Debug)]
pub struct Rollups<'a>(pub(super) &'a Store);

impl Rollups<'_> {
    /// Drops every roll-up (a helpline's answer target changed): hours are recounted in the background.
    pub async fn clear_rollups(self) -> StoreResult<()> {
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            DayLock::lock_all_days(&mut *tx).await?;
            for table in HOUR_TABLES.into_iter().chain(QUARTER_TABLES).chain(DAY_TABLES) {
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
    use crate::store::test_support::{queued_chat, seeded, write_tx};

    /// `push_counts` binds a line's counts in the roll-up tables' column order; `invalidate_hour_of_contact`
    /// then drops the rows of the contact's hour (and quarters) and day, and only those.
    #[tokio::test]
    async fn counts_are_bound_in_column_order_and_a_late_change_drops_its_hour_and_day() {
        let store = seeded().await;
        let h = |i: i64| i * HOUR_MS;
        let contact = queued_chat(&store, h(2) + 5 * 60_000).await;
        let counts = TallyCounts {
            offered: 1,
            abandoned: 2,
            abandoned_short: 3,
            answered: 4,
            answered_in_target: 5,
            answer_ms_sum: 6,
            handled: 7,
            handle_ms_sum: 8,
            waiting: 0,
            waiting_in_target: 0,
            transfers: 11,
            escalations: 12,
        };
        let mut tx = write_tx(&store).await;
        for (unit, rows) in [("hour", vec![h(1), h(2), h(3)]), ("quarter", vec![h(2), h(2) + QUARTER_MS, h(3)])] {
            let mut q = sqlx::QueryBuilder::new(format!(
                "INSERT INTO report_{unit}_tallies ({unit}, helpline, channel, language, offered, abandoned, abandoned_short,
                 answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) "
            ));
            q.push_values(&rows, |mut b, at| {
                b.push_bind(*at).push_bind("children").push_bind("chat").push_bind("ro");
                push_counts(&mut b, &counts);
            });
            q.build().execute(&mut *tx).await.expect("insert");
        }
        for (table, key, at) in [
            ("report_rollup_hours", "hour", h(1)),
            ("report_rollup_hours", "hour", h(2)),
            ("report_rollup_days", "day", 0),
            ("report_rollup_days", "day", DAY_MS),
        ] {
            sqlx::query(&format!("INSERT INTO {table} ({key}, rolled_at) VALUES ($1, 0)"))
                .bind(at)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        let read: Vec<TallyCounts> = on_pool!(store, pool => sqlx::query_as(
            "SELECT offered, abandoned, abandoned_short, answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum,
                    0 AS waiting, 0 AS waiting_in_target, transfers, escalations FROM report_hour_tallies WHERE hour = $1")
            .bind(h(2)).fetch_all(pool).await)
        .expect("read");
        assert_eq!(read, vec![counts]);

        let mut tx = write_tx(&store).await;
        tx.invalidate_hour_of_contact(&contact).await.expect("invalidate");
        tx.invalidate_hour_of_contact("no such contact").await.expect("nothing to drop");
        tx.commit().await.expect("commit");
        let units = |sql: &'static str| {
            let store = store.clone();
            async move {
                let rows: Vec<(i64,)> = on_pool!(store, pool => sqlx::query_as(sql).fetch_all(pool).await).expect("read");
                rows.into_iter().map(|r| r.0).collect::<Vec<_>>()
            }
        };
        assert_eq!(units("SELECT hour FROM report_hour_tallies ORDER BY hour").await, vec![h(1), h(3)]);
        assert_eq!(units("SELECT quarter FROM report_quarter_tallies ORDER BY quarter").await, vec![h(3)]);
        assert_eq!(units("SELECT hour FROM report_rollup_hours ORDER BY hour").await, vec![h(1)]);
        assert_eq!(units("SELECT day FROM report_rollup_days ORDER BY day").await, vec![DAY_MS]);
    }

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
    fn live_ranges_are_the_gaps_between_rolled_hours_and_quarters() {
        let h = |i: i64| i * HOUR_MS;
        let q = QUARTER_MS;
        let rolled = merge_spans([(h(1), HOUR_MS), (h(2), HOUR_MS), (h(4), HOUR_MS)].into_iter());
        assert_eq!(rolled, vec![(h(1), h(3)), (h(4), h(5))]);
        assert_eq!(live_ranges(h(0) + 5, h(6), &rolled), vec![(5, h(1)), (h(3), h(4)), (h(5), h(6))]);
        assert_eq!(live_ranges(h(1), h(3), &rolled), vec![]);
        assert_eq!(live_ranges(h(1), h(3) + 7, &rolled), vec![(h(3), h(3) + 7)]);
        assert_eq!(live_ranges(h(7), h(9), &rolled), vec![(h(7), h(9))]);
        // The quarters of a cut hour join the hours around them.
        let with_quarters = merge_spans([(h(1), HOUR_MS), (h(2) + q, q), (h(2) + 2 * q, q), (h(2), q)].into_iter());
        assert_eq!(with_quarters, vec![(h(1), h(2) + 3 * q)]);
        assert_eq!(live_ranges(h(1), h(3), &with_quarters), vec![(h(2) + 3 * q, h(3))]);
    }

    #[test]
    fn counts_with_someone_waiting_or_talking_are_not_settled() {
        let c = TallyCounts { offered: 2, answered: 1, handled: 1, ..TallyCounts::default() };
        assert!(c.settled());
        assert!(!TallyCounts { waiting: 1, ..c.clone() }.settled());
        assert!(!TallyCounts { handled: 0, ..c }.settled());
    }
}

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

use std::collections::{BTreeMap, BTreeSet};

use crate::metrics::{self, CategoryRow, Occupancy, TallyRow};
use crate::store::{on_pool, BeginWrite, Store, StoreResult};

pub const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
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
}

/// Drops the roll-up of the hour a contact was queued in, inside a write transaction `$tx`, so the next
/// roll-up recounts it. Used by every late change to what reports count (forms, escalations).
macro_rules! invalidate_hour_of_contact {
    ($tx:ident, $contact:expr) => {
        for table in ["report_rollup_hours", "report_hour_tallies", "report_hour_categories", "report_hour_occupancy"] {
            let sql = format!(
                "DELETE FROM {table} WHERE hour = (SELECT queued_at - queued_at % {} FROM contacts WHERE id = $1)",
                $crate::rollup::HOUR_MS
            );
            sqlx::query(&sql).bind($contact).execute(&mut *$tx).await?;
        }
    };
}
pub(crate) use invalidate_hour_of_contact;

fn floor_hour(t: i64) -> i64 {
    t.div_euclid(HOUR_MS) * HOUR_MS
}

/// Rolls up at most `max_hours` settled hours that are not rolled up yet, oldest first, one day per
/// transaction. Safe to run from several places at once (each hour's rows are replaced as a whole).
pub async fn roll_up(store: &Store, now_ms: i64, max_hours: usize) -> StoreResult<Progress> {
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
        let chunk = roll_up_day(store, day, &hours, now_ms).await?;
        progress.rolled += chunk.rolled;
        progress.open += chunk.open;
        progress.remaining -= hours.len();
    }
    Ok(progress)
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

/// Everything the live queries say about the hours of one day, then the settled ones written at once.
async fn roll_up_day(store: &Store, day: i64, hours: &[i64], now_ms: i64) -> StoreResult<Progress> {
    let to = day + DAY_MS;
    let tallies = metrics::fetch_tallies(store, day, HOUR_MS, day, to, now_ms).await?;
    let categories = metrics::fetch_category_tallies(store, day, HOUR_MS, day, to, now_ms).await?;
    let presence = metrics::fetch_presence(store, day, to).await?;
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
    on_pool!(store, pool => async {
        let mut tx = pool.begin_write().await?;
        for table in ["report_rollup_hours", "report_hour_tallies", "report_hour_categories", "report_hour_occupancy"] {
            for h in &settled {
                sqlx::query(&format!("DELETE FROM {table} WHERE hour = $1")).bind(h).execute(&mut *tx).await?;
            }
        }
        for part in tally_rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO report_hour_tallies (hour, helpline, channel, language, offered, abandoned, abandoned_short,
                 answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) ");
            q.push_values(part, |mut b, r| {
                b.push_bind(hour_of(r.bucket)).push_bind(&r.helpline).push_bind(&r.channel).push_bind(&r.language);
                push_counts!(b, r.counts);
            });
            q.build().execute(&mut *tx).await?;
        }
        for part in category_rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO report_hour_categories (hour, helpline, category, offered, abandoned, abandoned_short,
                 answered, answered_in_target, answer_ms_sum, handled, handle_ms_sum, transfers, escalations) ");
            q.push_values(part, |mut b, r| {
                b.push_bind(hour_of(r.bucket)).push_bind(&r.helpline).push_bind(&r.category);
                push_counts!(b, r.counts);
            });
            q.build().execute(&mut *tx).await?;
        }
        for part in occupancy_rows.chunks(1000) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO report_hour_occupancy (hour, counsellor_id, busy_ms, staffed_ms) ");
            q.push_values(part, |mut b, (h, who, o)| {
                b.push_bind(*h).push_bind(*who).push_bind(o.busy_ms).push_bind(o.staffed_ms);
            });
            q.build().execute(&mut *tx).await?;
        }
        let mut q = sqlx::QueryBuilder::new("INSERT INTO report_rollup_hours (hour, rolled_at) ");
        q.push_values(&settled, |mut b, h| {
            b.push_bind(*h).push_bind(now_ms);
        });
        q.build().execute(&mut *tx).await?;
        tx.commit().await
    }.await)?;
    tracing::debug!(from = lo, to = hi + HOUR_MS, hours = settled.len(), "report hours rolled up");
    Ok(Progress { rolled: settled.len(), open: hours.len() - settled.len(), remaining: 0 })
}


/// `helpline rollup`: rolls up every settled hour, a month at a time, printing progress to stderr.
pub async fn run_to_completion(store: &Store) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut rolled = 0;
    let open = loop {
        let now = crate::clock::Clock::new().now_ms();
        let p = roll_up(store, now, 24 * 31).await?;
        rolled += p.rolled;
        eprintln!(
            "rolled up {rolled} hours, {} to go ({:.1} s)",
            p.remaining,
            started.elapsed().as_secs_f64()
        );
        if p.remaining == 0 || p.rolled == 0 {
            break p.open;
        }
    };
    println!("report roll-ups: {rolled} hours rolled up; {open} hours left live (a contact in them is still open)");
    Ok(())
}

/// The sums of the roll-up columns, decoded as [`TallyCounts`].
const ROLLED_SUMS: &str = "CAST(SUM(offered) AS BIGINT) AS offered, CAST(SUM(abandoned) AS BIGINT) AS abandoned,
 CAST(SUM(abandoned_short) AS BIGINT) AS abandoned_short, CAST(SUM(answered) AS BIGINT) AS answered,
 CAST(SUM(answered_in_target) AS BIGINT) AS answered_in_target, CAST(SUM(answer_ms_sum) AS BIGINT) AS answer_ms_sum,
 CAST(SUM(handled) AS BIGINT) AS handled, CAST(SUM(handle_ms_sum) AS BIGINT) AS handle_ms_sum,
 CAST(0 AS BIGINT) AS waiting, CAST(0 AS BIGINT) AS waiting_in_target,
 CAST(SUM(transfers) AS BIGINT) AS transfers, CAST(SUM(escalations) AS BIGINT) AS escalations";

/// What the roll-ups hold for whole hours in `[from, to)`, in report buckets of `bucket_ms` from `origin`.
#[derive(Default)]
pub struct Rolled {
    /// The rolled-up hours (the rest of the range is computed live).
    pub hours: BTreeSet<i64>,
    pub tallies: Vec<TallyRow>,
    pub categories: Vec<CategoryRow>,
    /// (bucket, counsellor, busy_ms, staffed_ms)
    pub occupancy: Vec<(i64, String, i64, i64)>,
}

/// Reads the roll-ups of the whole hours in `[from, to)`.
pub async fn rolled(store: &Store, origin: i64, bucket_ms: i64, from: i64, to: i64) -> StoreResult<Rolled> {
    let (a, b) = (from.div_euclid(HOUR_MS) * HOUR_MS + if from % HOUR_MS == 0 { 0 } else { HOUR_MS }, floor_hour(to));
    if a >= b {
        return Ok(Rolled { hours: BTreeSet::new(), tallies: vec![], categories: vec![], occupancy: vec![] });
    }
    let bucket_ms = bucket_ms.max(1);
    let hours: Vec<(i64,)> = on_pool!(store, pool => sqlx::query_as(
        "SELECT hour FROM report_rollup_hours WHERE hour >= $1 AND hour < $2").bind(a).bind(b).fetch_all(pool).await)?;
    let tally_sql = format!(
        "SELECT (hour - $1) / $2 AS bucket, helpline, channel, language, {ROLLED_SUMS}
         FROM report_hour_tallies WHERE hour >= $3 AND hour < $4 GROUP BY 1, 2, 3, 4"
    );
    let tallies = on_pool!(store, pool => sqlx::query_as(&tally_sql)
        .bind(origin).bind(bucket_ms).bind(a).bind(b).fetch_all(pool).await)?;
    let category_sql = format!(
        "SELECT (hour - $1) / $2 AS bucket, helpline, category, {ROLLED_SUMS}
         FROM report_hour_categories WHERE hour >= $3 AND hour < $4 GROUP BY 1, 2, 3"
    );
    let categories = on_pool!(store, pool => sqlx::query_as(&category_sql)
        .bind(origin).bind(bucket_ms).bind(a).bind(b).fetch_all(pool).await)?;
    let occupancy = on_pool!(store, pool => sqlx::query_as(
        "SELECT (hour - $1) / $2 AS bucket, counsellor_id, CAST(SUM(busy_ms) AS BIGINT), CAST(SUM(staffed_ms) AS BIGINT)
         FROM report_hour_occupancy WHERE hour >= $3 AND hour < $4 GROUP BY 1, 2")
        .bind(origin).bind(bucket_ms).bind(a).bind(b).fetch_all(pool).await)?;
    Ok(Rolled { hours: hours.into_iter().map(|r| r.0).collect(), tallies, categories, occupancy })
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
            for table in ["report_rollup_hours", "report_hour_tallies", "report_hour_categories", "report_hour_occupancy"] {
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
    use crate::metrics::TallyCounts;

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

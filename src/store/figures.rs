//! The figures' reads (service level, ASA, abandonment, AHT, occupancy): the SQL that gathers what
//! their definitions need. The definitions themselves are pure and live in the protocol leaf
//! ([`crate::protocol::figures`]: `Tally::add`, `Tally::figures`, `occupancy_series`), shared with the
//! supervisor board, the reports, the staffing estimates and the simulator.
//!
//! Over the database, a year of contacts is too many rows to ship to Rust in under a second, so
//! [`TALLY_SQL`] does `Tally::add`'s counting in one grouped, indexed query (each CASE is one branch
//! of `add`), and the ratios still come from `Tally::figures`. The integration suite checks the SQL
//! and the Rust classification agree on random contacts, on SQLite and PostgreSQL.

use std::collections::{BTreeSet, HashMap};

use crate::protocol::figures::{
    occupancy_series, AwayChange, ContactTimes, Conversation, Figures, Occupancy, StatusChange, Tally, OCCUPANCY_LOOKBACK_MS,
    SHORT_ABANDON_MS,
};
use crate::store::{on_pool, BeginWrite, Pool, Store, StoreResult};

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
            Pool::Postgres(pool) => Reading::Postgres(pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?),
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
    pub wrapup_ended_at: Option<i64>,
}

impl ContactRow {
    pub fn times(&self, target_ms: i64) -> ContactTimes {
        ContactTimes {
            queued_at: self.queued_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            wrapup_ended_at: self.wrapup_ended_at,
            abandoned: self.state == "abandoned",
            target_ms,
        }
    }
}

/// Contacts queued in `[$1, $2)`, as rows (staffing, tests, and the check that SQL and Rust agree).
pub const CONTACTS_SQL: &str =
    "SELECT helpline, channel, language, state, queued_at, answered_at, ended_at, counsellor_id, wrapup_ended_at \
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
  CAST(SUM(CASE WHEN c.state <> 'abandoned' AND c.answered_at IS NOT NULL AND c.ended_at IS NOT NULL
                 AND COALESCE(c.wrapup_ended_at, c.ended_at) > c.answered_at
                 THEN COALESCE(c.wrapup_ended_at, c.ended_at) - c.answered_at ELSE 0 END) AS BIGINT) AS handle_ms_sum,
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
            .replacen(
                IN_HULL,
                "WHERE h.name = c.helpline AND c.queued_at >= r.a AND c.queued_at < r.b AND +c.queued_at >= $3 AND +c.queued_at < $4",
                1,
            )
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
        crate::store::Backend::Postgres => {
            format!("FROM r CROSS JOIN LATERAL (SELECT id, counsellor_id, answered_at, ended_at FROM contacts WHERE {overlaps} OFFSET 0) c")
        }
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
        let rows: Vec<(String, String, i64, Option<i64>)> = on_reading!(reading, conn => sqlx::query_as(&sql).fetch_all(&mut *conn).await)?;
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
    for u in store.accounts().users().await? {
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
        let conversations: Vec<Conversation> = self.conversations.iter().filter(|c| staff.contains(&c.counsellor)).cloned().collect();
        let changes: Vec<StatusChange> = self.status_changes.iter().filter(|s| staff.contains(&s.counsellor)).cloned().collect();
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
pub async fn figures_at(store: &Store, helpline: Option<&str>, from_ms: i64, to_ms: i64, as_of_ms: i64) -> StoreResult<Figures> {
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

/// Wrap-ups that ended in `[from_ms, to_ms)` (of contacts queued from [`OCCUPANCY_LOOKBACK_MS`] before
/// `from_ms`): (helpline, counsellor, the contact's end, the wrap-up's end).
pub async fn fetch_wrapups(store: &Store, from_ms: i64, to_ms: i64) -> StoreResult<Vec<(String, String, i64, i64)>> {
    Ok(on_pool!(store, pool => sqlx::query_as(
        "SELECT helpline, counsellor_id, ended_at, wrapup_ended_at FROM contacts
         WHERE queued_at >= $1 AND queued_at < $3 AND wrapup_ended_at >= $2 AND wrapup_ended_at < $3
           AND ended_at IS NOT NULL AND counsellor_id IS NOT NULL
         ORDER BY wrapup_ended_at, id")
        .bind(from_ms.saturating_sub(OCCUPANCY_LOOKBACK_MS)).bind(from_ms).bind(to_ms).fetch_all(pool).await)?)
}

/// Status changes in `[from_ms, to_ms)`, and each counsellor's last one before `from_ms`, with what
/// she was away for ([`AwayChange::reason`]: her away reason, else who set her away, else `unspecified`).
pub async fn fetch_away_changes(store: &Store, from_ms: i64, to_ms: i64) -> StoreResult<Vec<AwayChange>> {
    const REASON: &str = "CASE WHEN s.status = 'away' THEN COALESCE(s.away_reason, s.reason, 'unspecified') ELSE NULL END";
    let sql = format!(
        "SELECT s.user_id, s.at, {REASON} FROM status_changes s
         WHERE (s.at >= $1 AND s.at < $2)
            OR (s.at < $1 AND s.at = (SELECT MAX(t.at) FROM status_changes t WHERE t.user_id = s.user_id AND t.at < $1))
         ORDER BY s.at, s.id"
    );
    let rows: Vec<(String, i64, Option<String>)> =
        on_pool!(store, pool => sqlx::query_as(&sql).bind(from_ms).bind(to_ms).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|(counsellor, at, reason)| AwayChange { counsellor, at, reason }).collect())
}

/// Messages and callbacks left for later (`leave_message`, `callback`) and not yet answered — waiting
/// for the line to open or in the queue — by helpline and kind (`message`, `callback`).
pub async fn left_waiting(store: &Store) -> StoreResult<Vec<(String, String, i64)>> {
    Ok(on_pool!(store, pool => sqlx::query_as(
        "SELECT helpline, channel, COUNT(*) FROM contacts
         WHERE state = 'queued' AND channel IN ('message', 'callback') GROUP BY helpline, channel")
        .fetch_all(pool).await)?)
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
            assert!(
                pg.contains("CROSS JOIN LATERAL (SELECT * FROM contacts WHERE queued_at >= r.a AND queued_at < r.b OFFSET 0) c"),
                "{pg}"
            );
            assert!(!pg.contains(CONTACTS_OF_HELPLINES), "{pg}");
        }
    }
}

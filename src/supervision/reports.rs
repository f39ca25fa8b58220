//! `GET /api/v1/reports/summary`: figures by hour or day, channel, language and category, with transfers and escalations, as JSON or CSV.
//!
//! Settled hours come from the roll-ups ([`crate::supervision::rollup`]: by day, hour, or quarter hour where a local
//! day's start or the range's edge cuts an hour), the rest of the range from the same queries run live;
//! both give the same lines, so a report does not depend on which hours are rolled up.
//!
//! The figures are those of [`crate::protocol::figures`], read by [`crate::store::figures`]: one grouped query ([`figures::TALLY_SQL`], the SQL
//! twin of [`Tally::add`]) gives the counts per (bucket, helpline, channel, language); they are
//! summed into bucket, channel and language tallies whose ratios come from [`Tally::figures`];
//! occupancy per bucket comes from [`crate::protocol::figures::occupancy_series`]. Its total is the same as
//! `figures::figures` for the same window.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::protocol::csv_field;
use crate::protocol::figures::{away_time, occupancy_by_counsellor, AwayChange, Figures, Occupancy, Tally, WrapUps, SHORT_ABANDON_MS};
use crate::state::access::Staff;
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::figures::{self, CategoryRow, TallyRow};
use crate::store::rollup;
use crate::store::users::Role;

/// The longest range a report may cover.
pub const MAX_RANGE_MS: i64 = 366 * DAY_MS;
/// The longest range a report by hour may cover: 31 days, 744 buckets (a year by hour would be 8,784
/// buckets and tens of megabytes of JSON; ask by day, or for one month at a time).
pub const MAX_HOURLY_RANGE_MS: i64 = 31 * DAY_MS;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The report route, with its OpenAPI description (tag `supervision`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summary))
}

/// Bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Hour,
    Day,
}

impl By {
    fn ms(self) -> i64 {
        match self {
            By::Hour => HOUR_MS,
            By::Day => DAY_MS,
        }
    }
}

/// Figures of one group, with their breakdown by channel, language and category.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Breakdown {
    pub figures: Figures,
    /// Transfers of these contacts to another counsellor or helpline.
    pub transfers: i64,
    /// Escalations raised on these contacts.
    pub escalations: i64,
    pub by_channel: BTreeMap<String, Figures>,
    pub by_language: BTreeMap<String, Figures>,
    /// Per category of the submitted contact form (a contact with two categories counts in both;
    /// contacts without a submitted form are in none).
    pub by_category: BTreeMap<String, Figures>,
}

/// One hour or day (the first and last are cut to the requested range).
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Bucket {
    pub start: i64,
    pub end: i64,
    pub start_time: String,
    pub end_time: String,
    #[serde(flatten)]
    pub breakdown: Breakdown,
}

/// The report.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Summary {
    pub helpline: Option<String>,
    pub from: i64,
    pub to: i64,
    pub from_time: String,
    pub to_time: String,
    pub by: By,
    pub utc_offset: String,
    /// Contacts still waiting or in conversation are judged as of this moment.
    pub as_of: i64,
    pub short_abandon_ms: i64,
    /// The answer target (ms) per helpline included.
    pub targets: BTreeMap<String, i64>,
    pub total: Breakdown,
    pub buckets: Vec<Bucket>,
    /// The callers' survey answers per helpline, of the UTC days the range touches (answers are
    /// counted by day only: docs/web-agent.md, "The survey"). Not in the CSV.
    pub surveys: BTreeMap<String, SurveyTally>,
    /// Wrap-up, away time and the messages and callbacks left, over the whole range.
    pub work: Work,
}

/// A counsellor's time away for one reason over the report's range.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct AwayRow {
    pub counsellor_id: String,
    pub display_name: String,
    /// Her away reason (`break`, `training`, …), else who set her away (`missed_offers`,
    /// `supervisor`), else `unspecified`.
    pub reason: String,
    pub away_ms: i64,
}

/// Messages or callbacks left for later (`leave_message`, `callback`), counted like any contact from
/// when they were routed (when the line opened: their own answer clock).
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct LeftFigures {
    pub left: i64,
    pub answered: i64,
    /// Ended unanswered (the caller came back and ended it, or it was never answered before retention).
    pub abandoned: i64,
    /// Not answered yet (as of the report).
    pub waiting: i64,
    /// Mean time from routing to answer, ms (None: none answered).
    pub mean_answer_ms: Option<f64>,
}

impl LeftFigures {
    fn of(f: Option<&Figures>) -> LeftFigures {
        f.map_or_else(LeftFigures::default, |f| LeftFigures {
            left: f.offered,
            answered: f.answered,
            abandoned: f.abandoned,
            waiting: f.waiting,
            mean_answer_ms: f.asa_ms,
        })
    }
}

/// What a report says besides the contacts' figures, over its whole range (`docs/metrics.md`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct Work {
    /// Wrap-ups that ended in the range, of the report's contacts (AHT includes them).
    pub wrap_up: WrapUps,
    /// The same by helpline.
    pub wrap_up_by_helpline: BTreeMap<String, WrapUps>,
    /// Time away by reason (ms): of the report's helpline's first-line counsellors, or everyone's.
    pub away_by_reason: BTreeMap<String, i64>,
    /// Time away by helpline, then reason (ms): a counsellor's time counts for each helpline she serves first-line.
    pub away_by_helpline: BTreeMap<String, BTreeMap<String, i64>>,
    /// Time away per counsellor and reason, by counsellor then reason.
    pub away_by_counsellor: Vec<AwayRow>,
    pub messages: LeftFigures,
    pub callbacks: LeftFigures,
}

/// A helpline's survey answers: how many answered, and the count of each choice per question.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ToSchema)]
pub struct SurveyTally {
    pub answered: i64,
    /// "Did this chat help you?": `yes`, `somewhat`, `no`.
    pub helped: BTreeMap<String, i64>,
    /// "Would you contact us again?": `yes`, `maybe`, `no`.
    pub again: BTreeMap<String, i64>,
}

/// Sums survey counts per helpline.
pub fn survey_tallies(rows: &[crate::store::surveys::SurveyCount]) -> BTreeMap<String, SurveyTally> {
    let mut out: BTreeMap<String, SurveyTally> = BTreeMap::new();
    for r in rows {
        let t = out.entry(r.helpline.clone()).or_default();
        let per = match r.question.as_str() {
            "answered" => {
                t.answered += r.n;
                continue;
            }
            "helped" => &mut t.helped,
            "again" => &mut t.again,
            _ => continue,
        };
        *per.entry(r.answer.clone()).or_default() += r.n;
    }
    out
}

/// The validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRequest {
    pub helpline: Option<String>,
    pub from: i64,
    pub to: i64,
    pub by: By,
    pub offset: UtcOffset,
    pub csv: bool,
}

/// Parses a time given as milliseconds since the epoch or as RFC 3339.
pub fn parse_time(field: &str, s: &str) -> Result<i64, AppError> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        if (0..=253_402_300_799_999).contains(&ms) {
            return Ok(ms);
        }
        return Err(AppError::bad_field(format!("{field}: {ms} ms is outside years 1970 to 9999")));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        AppError::bad_field(format!("{field}: expected RFC 3339 (2026-11-23T00:00:00Z) or milliseconds since the epoch, got {s:?}"))
    })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).ok().filter(|ms| *ms >= 0).ok_or_else(|| AppError::bad_field(format!("{field}: {s:?} is before 1970")))
}

/// Parses `Z`, `UTC`, `+02:00`, `-05:30` or `+0200`.
pub fn parse_offset(s: &str) -> Result<UtcOffset, AppError> {
    let bad = || AppError::bad_field(format!("utc_offset: expected Z or ±HH:MM, got {s:?}"));
    let t = s.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") || t.is_empty() {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') | Some(b' ') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let h: i8 = digits[..2].parse().map_err(|_| bad())?;
    let m: i8 = digits[2..].parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

/// Formats milliseconds as RFC 3339 at `offset`.
pub fn format_time(ms: i64, offset: UtcOffset) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Formats an offset as `+HH:MM`.
pub fn format_offset(offset: UtcOffset) -> String {
    let (h, m, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// Validates the query (`helpline`, `from`, `to`, `by`, `format`, `utc_offset`); `known` are the helpline names.
pub fn parse_request(q: &HashMap<String, String>, known: &[String], now_ms: i64) -> Result<SummaryRequest, AppError> {
    for key in q.keys() {
        if !matches!(key.as_str(), "helpline" | "from" | "to" | "by" | "format" | "utc_offset") {
            return Err(AppError::bad_field(format!("unknown parameter {key:?}; known: helpline, from, to, by, format, utc_offset")));
        }
    }
    let helpline = match q.get("helpline").map(|s| s.trim()).filter(|s| !s.is_empty() && *s != "all") {
        None => None,
        Some(h) if known.iter().any(|k| k == h) => Some(h.to_string()),
        Some(h) => return Err(AppError::bad_field(format!("helpline: unknown helpline {h:?}; known: {}", known.join(", ")))),
    };
    let to = match q.get("to") {
        Some(s) => parse_time("to", s)?,
        None => now_ms,
    };
    let from = match q.get("from") {
        Some(s) => parse_time("from", s)?,
        None => to - DAY_MS,
    };
    if from >= to {
        return Err(AppError::bad_field(format!("from must be before to (from {from} ms, to {to} ms)")));
    }
    if to - from > MAX_RANGE_MS {
        return Err(AppError::bad_field(format!(
            "range: at most 366 days per report, asked for {:.1} days",
            (to - from) as f64 / DAY_MS as f64
        )));
    }
    let by = match q.get("by").map(String::as_str) {
        None | Some("day") => By::Day,
        Some("hour") => By::Hour,
        Some(other) => return Err(AppError::bad_field(format!("by: expected hour or day, got {other:?}"))),
    };
    if by == By::Hour && to - from > MAX_HOURLY_RANGE_MS {
        return Err(AppError::bad_field(format!(
            "range: at most {} days per report by hour, asked for {:.1} days (ask by=day, or a month at a time)",
            MAX_HOURLY_RANGE_MS / DAY_MS,
            (to - from) as f64 / DAY_MS as f64
        )));
    }
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(AppError::bad_field(format!("format: expected json or csv, got {other:?}"))),
    };
    let offset = match q.get("utc_offset") {
        Some(s) => parse_offset(s)?,
        None => UtcOffset::UTC,
    };
    Ok(SummaryRequest { helpline, from, to, by, offset, csv })
}

/// The start of the hour or day (at `offset`) holding `t`.
pub fn bucket_origin(t: i64, by: By, offset: UtcOffset) -> i64 {
    let len = by.ms();
    let off = i64::from(offset.whole_seconds()) * 1000;
    (t + off).div_euclid(len) * len - off
}

/// Bucket bounds: `from`, then every hour or day boundary (at `offset`) after it, then `to`.
pub fn bucket_bounds(from: i64, to: i64, by: By, offset: UtcOffset) -> Vec<i64> {
    let mut bounds = vec![from];
    let mut next = bucket_origin(from, by, offset) + by.ms();
    while next < to {
        bounds.push(next);
        next += by.ms();
    }
    bounds.push(to);
    bounds
}

/// Accumulates one group and its channel, language and category breakdowns.
#[derive(Default)]
struct GroupTally {
    all: Tally,
    transfers: i64,
    escalations: i64,
    channel: BTreeMap<String, Tally>,
    language: BTreeMap<String, Tally>,
    category: BTreeMap<String, Tally>,
    occupancy: Occupancy,
}

impl GroupTally {
    fn add(&mut self, row: &TallyRow) {
        let tally = row.tally();
        self.all.merge(&tally);
        self.transfers += row.counts.transfers;
        self.escalations += row.counts.escalations;
        self.channel.entry(row.channel.clone()).or_default().merge(&tally);
        self.language.entry(row.language.clone()).or_default().merge(&tally);
    }

    fn add_category(&mut self, row: &CategoryRow) {
        self.category.entry(row.category.clone()).or_default().merge(&row.counts.tally());
    }

    fn add_occupancy(&mut self, o: &Occupancy) {
        self.occupancy.busy_ms += o.busy_ms;
        self.occupancy.staffed_ms += o.staffed_ms;
    }

    fn finish(&self) -> Breakdown {
        let mut figures = self.all.figures();
        figures.occupancy = self.occupancy.ratio();
        let map = |m: &BTreeMap<String, Tally>| m.iter().map(|(k, t)| (k.clone(), t.figures())).collect();
        Breakdown {
            figures,
            transfers: self.transfers,
            escalations: self.escalations,
            by_channel: map(&self.channel),
            by_language: map(&self.language),
            by_category: map(&self.category),
        }
    }
}

/// What a report is made of, read from the database: the roll-ups of whole settled hours and days
/// ([`crate::supervision::rollup`]) and, for the rest of the range, the same queries run live.
pub struct ReportData {
    /// Tally lines (of the report's helpline, or of all).
    pub tallies: Vec<TallyRow>,
    pub categories: Vec<CategoryRow>,
    /// Busy and staffed time per bucket, summed over the counsellors the report is about (a helpline's
    /// first-line counsellors, or everyone).
    pub occupancy: Vec<Occupancy>,
    pub targets: BTreeMap<String, i64>,
    pub as_of_ms: i64,
    /// The survey counts of the UTC days the range touches.
    pub surveys: Vec<crate::store::surveys::SurveyCount>,
    /// Wrap-ups that ended in the range: (helpline, counsellor, contact ended, wrap-up ended).
    pub wrapups: Vec<(String, String, i64, i64)>,
    /// Status changes in the range, with each counsellor's last one before it, for away time.
    pub away: Vec<AwayChange>,
    /// First-line counsellors per helpline, and every account's display name.
    pub staff: HashMap<String, BTreeSet<String>>,
    pub names: HashMap<String, String>,
}

/// Reads a report's data: roll-ups where the hours are settled, grouped queries for the rest, every read in
/// one snapshot ([`figures::Reading`]): a roll-up committing meanwhile cannot make the report count a
/// contact twice (rolled up and live) or not at all.
pub async fn fetch(store: &crate::store::Store, req: &SummaryRequest, as_of_ms: i64) -> Result<ReportData, AppError> {
    let origin = bucket_origin(req.from, req.by, req.offset);
    let len = req.by.ms();
    let bounds = bucket_bounds(req.from, req.to, req.by, req.offset);
    // A helpline's occupancy is that of its first-line counsellors (all their conversations count).
    let staff = match req.helpline.as_deref() {
        Some(h) => Some(figures::fetch_staff(store).await?.remove(h).unwrap_or_default()),
        None => None,
    };
    let targets = store
        .directory()
        .helplines()
        .await?
        .into_iter()
        .filter(|h| req.helpline.as_deref().is_none_or(|x| x == h.name))
        .map(|h| (h.name, h.sla_target_ms))
        .collect();
    let scope = rollup::Scope { helpline: req.helpline.as_deref(), staff: staff.as_ref() };
    let mut occupancy = vec![Occupancy::default(); bounds.len() - 1];
    let mut add_occupancy = |bucket: usize, busy_ms: i64, staffed_ms: i64| {
        if let Some(o) = occupancy.get_mut(bucket) {
            o.busy_ms += busy_ms;
            o.staffed_ms += staffed_ms;
        }
    };
    let started = std::time::Instant::now();
    let mut reading = figures::Reading::snapshot(store).await?;
    // Roll-ups are whole UTC hours and days: at any offset, the hours a bucket holds whole come from them.
    let rolled = rollup::rolled(&mut reading, origin, len, &bounds, scope).await?;
    for (bucket, busy_ms, staffed_ms) in &rolled.occupancy {
        add_occupancy(usize::try_from(*bucket).unwrap_or(usize::MAX), *busy_ms, *staffed_ms);
    }
    let (mut tallies, mut categories) = (rolled.tallies, rolled.categories);
    let in_scope = |h: &str| scope.helpline.is_none_or(|x| x == h);
    let live = rollup::live_ranges(req.from, req.to, &rolled.covered);
    let rolled_at = started.elapsed();
    tallies
        .extend(figures::fetch_tallies_in(&mut reading, origin, len, &live, as_of_ms).await?.into_iter().filter(|r| in_scope(&r.helpline)));
    categories.extend(
        figures::fetch_category_tallies_in(&mut reading, origin, len, &live, as_of_ms).await?.into_iter().filter(|r| in_scope(&r.helpline)),
    );
    let tallied_at = started.elapsed();
    // The live ranges' occupancy from ONE presence read (at an offset that is not a whole hour there is
    // a cut hour per day: one read each was a scan each): the conversations overlapping any of them, an
    // index range scan per range; the spans between them were counted from the roll-ups and are skipped.
    if !live.is_empty() {
        let presence = figures::fetch_presence_over(&mut reading, &live).await?;
        let (inner, counted) = live_segments(&live, &bounds);
        let series = occupancy_by_counsellor(&presence.conversations, &presence.status_changes, &inner, as_of_ms);
        for (_, per_bucket) in series.iter().filter(|(who, _)| scope.staff.is_none_or(|s| s.contains(*who))) {
            for (i, o) in per_bucket.iter().enumerate().filter(|(i, _)| counted[*i]) {
                let bucket = bounds.partition_point(|b| *b <= inner[i]).saturating_sub(1);
                add_occupancy(bucket, o.busy_ms, o.staffed_ms);
            }
        }
    }
    reading.commit().await?;
    let wrapups = figures::fetch_wrapups(store, req.from, req.to).await?;
    let away = figures::fetch_away_changes(store, req.from, req.to).await?;
    let names = store.accounts().users().await?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let all_staff = figures::fetch_staff(store).await?;
    tracing::debug!(
        rolled_ms = rolled_at.as_millis() as u64,
        live_ranges = live.len(),
        live_tallies_ms = (tallied_at - rolled_at).as_millis() as u64,
        live_occupancy_ms = (started.elapsed() - tallied_at).as_millis() as u64,
        "report read"
    );
    let surveys = store.surveys().counts(req.helpline.as_deref(), crate::chat::survey::day_of(req.from), req.to).await?;
    Ok(ReportData { tallies, categories, occupancy, targets, as_of_ms, surveys, wrapups, away, staff: all_staff, names })
}

/// Builds the report: SQL bucket `k` is `[bounds[k], bounds[k+1])`.
/// The points cutting the live ranges `live` (sorted, disjoint) at every bucket bound inside them,
/// and for each segment between two consecutive points whether it lies in a live range (true) or
/// in the gap between two of them (false).
fn live_segments(live: &[(i64, i64)], bounds: &[i64]) -> (Vec<i64>, Vec<bool>) {
    let (mut points, mut counted): (Vec<i64>, Vec<bool>) = (Vec::new(), Vec::new());
    for &(a, z) in live {
        match points.last() {
            None => points.push(a),
            Some(&end) if end == a => {}
            Some(_) => {
                counted.push(false);
                points.push(a);
            }
        }
        for b in bounds.iter().copied().filter(|b| *b > a && *b < z).chain(std::iter::once(z)) {
            counted.push(true);
            points.push(b);
        }
    }
    (points, counted)
}

pub fn build(data: &ReportData, req: &SummaryRequest) -> Summary {
    let helpline = req.helpline.as_deref();
    let bounds = bucket_bounds(req.from, req.to, req.by, req.offset);
    let mut total = GroupTally::default();
    let mut buckets: Vec<GroupTally> = (1..bounds.len()).map(|_| GroupTally::default()).collect();
    let bucket = |b: i64| usize::try_from(b).ok();
    for row in data.tallies.iter().filter(|r| helpline.is_none_or(|h| r.helpline == h)) {
        total.add(row);
        if let Some(b) = bucket(row.bucket).and_then(|i| buckets.get_mut(i)) {
            b.add(row);
        }
    }
    for row in data.categories.iter().filter(|r| helpline.is_none_or(|h| r.helpline == h)) {
        total.add_category(row);
        if let Some(b) = bucket(row.bucket).and_then(|i| buckets.get_mut(i)) {
            b.add_category(row);
        }
    }
    for (b, o) in buckets.iter_mut().zip(&data.occupancy) {
        b.add_occupancy(o);
        total.add_occupancy(o);
    }
    let buckets = buckets
        .iter()
        .enumerate()
        .map(|(i, t)| Bucket {
            start: bounds[i],
            end: bounds[i + 1],
            start_time: format_time(bounds[i], req.offset),
            end_time: format_time(bounds[i + 1], req.offset),
            breakdown: t.finish(),
        })
        .collect();
    let total = total.finish();
    let work = work(data, req, &total);
    Summary {
        helpline: req.helpline.clone(),
        from: req.from,
        to: req.to,
        from_time: format_time(req.from, req.offset),
        to_time: format_time(req.to, req.offset),
        by: req.by,
        utc_offset: format_offset(req.offset),
        as_of: data.as_of_ms,
        short_abandon_ms: SHORT_ABANDON_MS,
        targets: data.targets.clone(),
        total,
        buckets,
        surveys: survey_tallies(&data.surveys),
        work,
    }
}

/// The report's [`Work`]: wrap-ups and away time over the range, in the report's scope (a helpline's
/// contacts and first-line counsellors, or all), and the messages and callbacks from its channel figures.
fn work(data: &ReportData, req: &SummaryRequest, total: &Breakdown) -> Work {
    let in_scope = |h: &str| req.helpline.as_deref().is_none_or(|x| x == h);
    let mut w = Work::default();
    for (helpline, _, ended_at, wrapup_ended_at) in data.wrapups.iter().filter(|r| in_scope(&r.0)) {
        w.wrap_up.add(*ended_at, *wrapup_ended_at);
        w.wrap_up_by_helpline.entry(helpline.clone()).or_default().add(*ended_at, *wrapup_ended_at);
    }
    let staff_of =
        |who: &str| -> Vec<&String> { data.staff.iter().filter(|(h, s)| in_scope(h) && s.contains(who)).map(|(h, _)| h).collect() };
    for ((who, reason), ms) in away_time(&data.away, req.from, req.to, data.as_of_ms) {
        let helplines = staff_of(&who);
        if req.helpline.is_some() && helplines.is_empty() {
            continue;
        }
        for h in helplines {
            *w.away_by_helpline.entry(h.clone()).or_default().entry(reason.clone()).or_default() += ms;
        }
        *w.away_by_reason.entry(reason.clone()).or_default() += ms;
        let display_name = data.names.get(&who).cloned().unwrap_or_else(|| who.clone());
        w.away_by_counsellor.push(AwayRow { counsellor_id: who, display_name, reason, away_ms: ms });
    }
    w.messages = LeftFigures::of(total.by_channel.get(crate::chat::left::Left::MESSAGE.kind_str()));
    w.callbacks = LeftFigures::of(total.by_channel.get(crate::chat::left::Left::CALLBACK.kind_str()));
    w
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str = "scope,start,end,dimension,value,offered,answered,answered_in_target,abandoned,\
abandoned_short,waiting,service_level,asa_ms,abandonment_rate,aht_ms,occupancy,transfers,escalations";

/// The report as CSV: one line per bucket (dimension `all`) and per channel and language in it,
/// then the same for the total (scope `total`).
pub fn to_csv(s: &Summary) -> String {
    let mut out = String::with_capacity(256 * (s.buckets.len() + 1) * 4);
    out.push_str(CSV_HEADER);
    out.push('\n');
    let mut group = |scope: &str, start: &str, end: &str, b: &Breakdown| {
        let counts = format!("{},{}", b.transfers, b.escalations);
        line(&mut out, scope, start, end, "all", "", &b.figures, &counts);
        for (dimension, map) in [("channel", &b.by_channel), ("language", &b.by_language), ("category", &b.by_category)] {
            for (k, f) in map {
                line(&mut out, scope, start, end, dimension, k, f, ",");
            }
        }
    };
    for b in &s.buckets {
        group("bucket", &b.start_time, &b.end_time, &b.breakdown);
    }
    group("total", &s.from_time, &s.to_time, &s.total);
    out
}

/// One CSV line; `counts` are the transfers and escalations columns (empty for a breakdown line).
#[allow(clippy::too_many_arguments)]
fn line(out: &mut String, scope: &str, start: &str, end: &str, dimension: &str, value: &str, f: &Figures, counts: &str) {
    use std::fmt::Write;
    let num = |v: Option<f64>| v.map(|x| format!("{}", (x * 1e6).round() / 1e6)).unwrap_or_default();
    let _ = writeln!(
        out,
        "{scope},{start},{end},{dimension},{},{},{},{},{},{},{},{},{},{},{},{},{counts}",
        csv_field(value),
        f.offered,
        f.answered,
        f.answered_in_target,
        f.abandoned,
        f.abandoned_short,
        f.waiting,
        num(f.service_level),
        num(f.asa_ms),
        num(f.abandonment_rate),
        num(f.aht_ms),
        num(f.occupancy),
    );
}

/// `GET /api/v1/reports/summary?helpline=&from=&to=&by=hour|day&format=json|csv&utc_offset=+02:00`.
/// `GET /api/v1/reports/summary`: figures by hour or day, channel, language and category, as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/reports/summary", tag = "supervision", security(("bearer" = [])),
    params(
        ("helpline" = Option<String>, Query, description = "one helpline (default: all for admins and supervisors of all; a supervisor's one helpline)"),
        ("from" = Option<String>, Query, description = "RFC 3339 or ms since the epoch (default: a day before `to`)"),
        ("to" = Option<String>, Query, description = "RFC 3339 or ms since the epoch (default: now); at most 366 days after `from` (31 by hour)"),
        ("by" = Option<String>, Query, pattern = "^(day|hour)?$", description = "`day` (default) or `hour`"),
        ("format" = Option<String>, Query, pattern = "^(json|csv)?$", description = "`json` (default) or `csv`"),
        ("utc_offset" = Option<String>, Query, pattern = "^(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$", description = "buckets at this offset: `Z` or ±HH:MM (default Z)"),
    ),
    responses(
        (status = 200, description = "the report", content(
            (Summary = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`bad_field`: an unknown or bad parameter, or too long a range", body = ErrorBody),
        (status = 403, description = "reports are for supervisors and admins, of the helplines they supervise (a supervisor of several names one)", body = ErrorBody),
    ))]
async fn summary(
    State(state): State<AppState>,
    staff: Staff,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("reports are for supervisors and admins"));
    }
    let Query(mut q) = query.map_err(|e| AppError::bad_field(format!("bad query string: {e}")))?;
    if let Some(h) = staff.report_helpline(&state, "report_read", q.get("helpline").map(String::as_str)).await? {
        q.insert("helpline".into(), h);
    }
    let known: Vec<String> = state.store.directory().helplines().await?.into_iter().map(|h| h.name).collect();
    let now = state.clock.now_ms();
    let req = parse_request(&q, &known, now)?;
    let data = fetch(&state.store, &req, now).await?;
    let csv = req.csv;
    let summary = tokio::task::spawn_blocking(move || build(&data, &req)).await.map_err(|_| AppError::internal())?;
    if csv {
        let name = format!(
            "helpline-report-{}-{}.csv",
            summary.helpline.as_deref().unwrap_or("all"),
            summary.from_time.get(..10).unwrap_or("from")
        );
        let body = to_csv(&summary);
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            ],
            body,
        )
            .into_response())
    } else {
        Ok(Json(summary).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn known() -> Vec<String> {
        vec!["children".into(), "disability".into(), "family_violence".into()]
    }

    #[test]
    fn times_parse_as_ms_or_rfc3339() {
        assert_eq!(parse_time("from", "0").unwrap(), 0);
        assert_eq!(parse_time("from", "2026-11-23T00:00:00Z").unwrap(), 1_795_392_000_000);
        assert_eq!(parse_time("from", "2026-11-23T02:00:00+02:00").unwrap(), 1_795_392_000_000);
        assert!(parse_time("from", "yesterday").is_err());
        assert!(parse_time("from", "-5").is_err());
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let now = 1_795_392_000_000;
        let err = |pairs: &[(&str, &str)]| parse_request(&q(pairs), &known(), now).unwrap_err().message;
        assert!(err(&[("helpline", "pizza")]).contains("helpline"));
        assert!(err(&[("from", "10"), ("to", "10")]).contains("before"));
        assert!(err(&[("from", "0"), ("to", "31708800001")]).contains("366 days"));
        assert!(err(&[("from", "0"), ("to", "2678400001"), ("by", "hour")]).contains("31 days per report by hour"));
        assert!(parse_request(&q(&[("from", "0"), ("to", "2678400000"), ("by", "hour")]), &known(), now).is_ok());
        assert!(err(&[("by", "week")]).contains("by"));
        assert!(err(&[("format", "xml")]).contains("format"));
        assert!(err(&[("utc_offset", "CET")]).contains("utc_offset"));
        assert!(err(&[("form", "1")]).contains("unknown parameter"));
        // 366 days exactly is allowed.
        assert!(parse_request(&q(&[("from", "0"), ("to", "31622400000")]), &known(), now).is_ok());
    }

    #[test]
    fn live_ranges_are_cut_at_bucket_bounds_with_the_gaps_between_them_skipped() {
        let (points, counted) = live_segments(&[(0, 10), (10, 20), (30, 40)], &[0, 5, 15, 35, 50]);
        assert_eq!(points, vec![0, 5, 10, 15, 20, 30, 35, 40]);
        assert_eq!(counted, vec![true, true, true, true, false, true, true]);
        assert_eq!(live_segments(&[], &[0, 5]), (vec![], vec![]));
    }

    #[test]
    fn buckets_follow_the_offset_and_are_cut_to_the_range() {
        let day = DAY_MS;
        let b = bucket_bounds(day / 2, 2 * day + 1, By::Day, UtcOffset::UTC);
        assert_eq!(b, vec![day / 2, day, 2 * day, 2 * day + 1]);
        // At +02:00 a day starts at 22:00 UTC.
        let plus2 = parse_offset("+02:00").unwrap();
        let b = bucket_bounds(0, day, By::Day, plus2);
        assert_eq!(b, vec![0, day - 2 * HOUR_MS, day]);
        assert_eq!(format_time(day - 2 * HOUR_MS, plus2), "1970-01-02T00:00:00+02:00");
        assert_eq!(bucket_bounds(0, 3 * HOUR_MS, By::Hour, UtcOffset::UTC).len(), 4);
        assert_eq!(format_offset(parse_offset("-05:30").unwrap()), "-05:30");
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("ro"), "ro");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }
}

//! Opening hours: when a helpline answers, as a pure rule with the time passed in.
//!
//! A helpline's [`Hours`] are a time zone (IANA name, e.g. `Europe/Chisinau`), opening spans per
//! weekday in that zone's local time, and holidays (whole local days closed). No spans at all means
//! open every hour of every day (a 24/7 line): with no holidays either, it is never closed. The zone
//! database is bundled into the binary (`jiff` with `tzdb-bundle-always`): nothing is read from the
//! system or the network, so a rule gives the same answer on every machine.
//!
//! [`Hours::schedule`] checks and compiles them once; [`is_open`] and [`next_open`] then answer for any
//! instant. Local times follow the zone's rules on that day, daylight saving time included: a line
//! open 08:00–20:00 opens at 08:00 local time on the day the clocks change as on any other.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::types::Millis;

/// One opening span on a weekday, in local time: from `open` up to (not including) `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`.
    #[schema(pattern = "^(mon|tue|wed|thu|fri|sat|sun)$")]
    pub day: String,
    /// `HH:MM`, 00:00 to 23:59.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub open: String,
    /// `HH:MM`, after `open`; `24:00` is the end of the day.
    #[schema(pattern = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
    pub close: String,
}

/// A local date, `YYYY-MM-DD` (for the OpenAPI document: [`Hours::holidays`] items).
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
pub struct HolidayDate(#[allow(dead_code)] String);

/// A helpline's opening hours as configured (and stored, and sent over REST).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// IANA time zone name, e.g. `Europe/Chisinau`.
    pub time_zone: String,
    /// Opening spans; none at all means open every hour of every day (24/7).
    #[serde(default)]
    pub weekly: Vec<Span>,
    /// Local days the line is closed all day, `YYYY-MM-DD`.
    #[serde(default)]
    #[schema(value_type = Vec<HolidayDate>)]
    pub holidays: Vec<String>,
}

impl Default for Hours {
    /// Open all the time (24/7), in UTC.
    fn default() -> Self {
        Hours { time_zone: "UTC".into(), weekly: Vec::new(), holidays: Vec::new() }
    }
}

/// Why hours were refused (the REST answer's message names the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoursError {
    UnknownTimeZone(String),
    BadDay(String),
    BadTime(String),
    /// `close` not after `open`.
    EmptySpan {
        day: String,
        open: String,
        close: String,
    },
    BadHoliday(String),
    /// More spans or holidays than a helpline needs (`MAX_SPANS`, `MAX_HOLIDAYS`).
    TooMany,
}

impl std::fmt::Display for HoursError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoursError::UnknownTimeZone(z) => write!(f, "unknown time zone {z:?} (an IANA name such as Europe/Chisinau)"),
            HoursError::BadDay(d) => write!(f, "unknown day {d:?} (mon, tue, wed, thu, fri, sat or sun)"),
            HoursError::BadTime(t) => write!(f, "bad time {t:?} (HH:MM, 00:00 to 24:00)"),
            HoursError::EmptySpan { day, open, close } => write!(f, "{day} {open}-{close}: close must be after open"),
            HoursError::BadHoliday(h) => write!(f, "bad holiday {h:?} (YYYY-MM-DD)"),
            HoursError::TooMany => write!(f, "at most {MAX_SPANS} spans and {MAX_HOLIDAYS} holidays"),
        }
    }
}

/// Most spans a helpline's week may have.
pub const MAX_SPANS: usize = 70;
/// Most holidays a helpline may list.
pub const MAX_HOLIDAYS: usize = 400;

const DAY_MS: i64 = 86_400_000;

/// Hours checked and compiled: the zone, each weekday's spans (milliseconds of the local day, sorted),
/// the holidays. Build it with [`Hours::schedule`].
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    tz: TimeZone,
    /// Monday first; `(open, close)` in milliseconds since local midnight.
    week: [Vec<(i64, i64)>; 7],
    holidays: BTreeSet<Date>,
    always: bool,
}

impl Schedule {
    /// Open every hour of every day.
    pub fn always_open() -> Schedule {
        Schedule { tz: TimeZone::UTC, week: Default::default(), holidays: BTreeSet::new(), always: true }
    }

    /// A line with no spans and no holidays: never closed.
    pub fn is_24_7(&self) -> bool {
        self.always && self.holidays.is_empty()
    }
}

fn weekday(day: &str) -> Option<usize> {
    Some(match day {
        "mon" => 0,
        "tue" => 1,
        "wed" => 2,
        "thu" => 3,
        "fri" => 4,
        "sat" => 5,
        "sun" => 6,
        _ => return None,
    })
}

fn index_of(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

/// `HH:MM` → milliseconds since midnight (`24:00` allowed).
fn time_ms(t: &str) -> Result<i64, HoursError> {
    let bad = || HoursError::BadTime(t.to_string());
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..=59).contains(&m) || !(0..=24).contains(&h) || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok((h * 60 + m) * 60_000)
}

impl Hours {
    /// Checks the hours and compiles them: a known zone, known days, `HH:MM` times with `close`
    /// after `open`, `YYYY-MM-DD` holidays.
    pub fn schedule(&self) -> Result<Schedule, HoursError> {
        if self.weekly.len() > MAX_SPANS || self.holidays.len() > MAX_HOLIDAYS {
            return Err(HoursError::TooMany);
        }
        let tz = TimeZone::get(&self.time_zone).map_err(|_| HoursError::UnknownTimeZone(self.time_zone.clone()))?;
        let mut week: [Vec<(i64, i64)>; 7] = Default::default();
        for s in &self.weekly {
            let d = weekday(&s.day).ok_or_else(|| HoursError::BadDay(s.day.clone()))?;
            let (open, close) = (time_ms(&s.open)?, time_ms(&s.close)?);
            if open == DAY_MS {
                return Err(HoursError::BadTime(s.open.clone()));
            }
            if close <= open {
                return Err(HoursError::EmptySpan { day: s.day.clone(), open: s.open.clone(), close: s.close.clone() });
            }
            week[d].push((open, close));
        }
        for spans in &mut week {
            spans.sort_unstable();
        }
        let holidays = self
            .holidays
            .iter()
            .map(|h| h.parse::<Date>().map_err(|_| HoursError::BadHoliday(h.clone())))
            .collect::<Result<BTreeSet<Date>, _>>()?;
        Ok(Schedule { tz, week, holidays, always: self.weekly.is_empty() })
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Spans as typed on a command line: days (a day, a range within the week, or a list of them) and
/// times, `mon-fri 08:00-20:00`, `sat,sun 10:00-14:00` → one [`Span`] per day (checked later by
/// [`Hours::schedule`]).
pub fn spans(text: &str) -> Result<Vec<Span>, String> {
    let bad = || format!("{text:?}: expected days and times, e.g. `mon-fri 08:00-20:00`");
    let (days, times) = text.trim().split_once(' ').ok_or_else(bad)?;
    let (open, close) = times.trim().split_once('-').ok_or_else(bad)?;
    let index = |d: &str| weekday(d.trim()).ok_or_else(|| format!("unknown day {d:?} (mon … sun)"));
    let mut out = Vec::new();
    for part in days.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (index(a)?, index(b)?),
            None => (index(part)?, index(part)?),
        };
        if to < from {
            return Err(format!("{part:?}: a range of days runs forward within the week (mon-fri)"));
        }
        out.extend(DAYS[from..=to].iter().map(|d| Span { day: (*d).into(), open: open.trim().into(), close: close.trim().into() }));
    }
    Ok(out)
}

/// The local date and milliseconds since local midnight of instant `at`; None outside jiff's range.
fn local(at: Millis, tz: &TimeZone) -> Option<(Date, i64)> {
    let dt = Timestamp::from_millisecond(at).ok()?.to_zoned(tz.clone()).datetime();
    let t = dt.time();
    let ms = ((i64::from(t.hour()) * 60 + i64::from(t.minute())) * 60 + i64::from(t.second())) * 1000 + i64::from(t.millisecond());
    Some((dt.date(), ms))
}

/// The instant of local time `ms` after midnight on `date` (a time skipped by a clock change is
/// taken as the instant the clocks jumped over it, later the same day); None outside jiff's range.
fn instant(date: Date, ms: i64, tz: &TimeZone) -> Option<Millis> {
    let midnight = DateTime::from(date);
    let dt = midnight.checked_add(jiff::SignedDuration::from_millis(ms)).ok()?;
    let ambiguous = tz.to_ambiguous_zoned(dt);
    let gap = matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. });
    let later = ambiguous.compatible().ok()?.timestamp();
    // In a gap, `compatible` is as far past the jump as the time was: the jump itself comes first.
    let t = if gap { tz.preceding(later).next().map_or(later, |jump| jump.timestamp()) } else { later };
    Some(t.as_millisecond())
}

/// Whether the line is open at instant `at` (milliseconds since the epoch).
pub fn is_open(at: Millis, hours: &Schedule) -> bool {
    if hours.is_24_7() {
        return true;
    }
    let Some((date, ms)) = local(at, &hours.tz) else { return true };
    if hours.holidays.contains(&date) {
        return false;
    }
    hours.always || hours.week[index_of(date.weekday())].iter().any(|&(open, close)| open <= ms && ms < close)
}

/// The first instant at or after `at` when the line is open: `at` itself while open. None if it
/// does not open within the next two years (not possible for valid hours with a span).
pub fn next_open(at: Millis, hours: &Schedule) -> Option<Millis> {
    if is_open(at, hours) {
        return Some(at);
    }
    let (today, now_ms) = local(at, &hours.tz)?;
    let mut date = today;
    for _ in 0..(2 * 366 + MAX_HOLIDAYS) {
        if !hours.holidays.contains(&date) {
            let spans: &[(i64, i64)] = if hours.always { &[(0, DAY_MS)] } else { &hours.week[index_of(date.weekday())] };
            for &(open, close) in spans {
                let from = if date == today { open.max(now_ms) } else { open };
                if from < close {
                    if let Some(t) = instant(date, from, &hours.tz).filter(|&t| t >= at) {
                        return Some(t);
                    }
                }
            }
        }
        date = date.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span(day: &str, open: &str, close: &str) -> Span {
        Span { day: day.into(), open: open.into(), close: close.into() }
    }

    /// Weekdays 08:00–20:00 in Chișinău (EET/EEST), Christmas closed.
    fn chisinau() -> Schedule {
        let weekly = ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| span(d, "08:00", "20:00")).collect();
        Hours { time_zone: "Europe/Chisinau".into(), weekly, holidays: vec!["2026-12-25".into()] }.schedule().unwrap()
    }

    fn at(s: &str) -> Millis {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_24_7_line_is_never_closed() {
        let s = Hours::default().schedule().unwrap();
        assert!(s.is_24_7());
        for t in [0, at("2026-12-25T03:00:00Z"), at("2027-03-28T01:30:00Z")] {
            assert!(is_open(t, &s));
            assert_eq!(next_open(t, &s), Some(t));
        }
    }

    #[test]
    fn weekday_hours_in_local_time() {
        let s = chisinau();
        // Tuesday 8 December 2026: EET is UTC+2, so 08:00 local is 06:00Z.
        assert!(!is_open(at("2026-12-08T05:59:59Z"), &s));
        assert!(is_open(at("2026-12-08T06:00:00Z"), &s));
        assert!(is_open(at("2026-12-08T17:59:59Z"), &s));
        assert!(!is_open(at("2026-12-08T18:00:00Z"), &s), "close is not included");
        assert_eq!(next_open(at("2026-12-08T01:00:00Z"), &s), Some(at("2026-12-08T06:00:00Z")));
        assert_eq!(next_open(at("2026-12-08T19:00:00Z"), &s), Some(at("2026-12-09T06:00:00Z")), "after closing: tomorrow");
        // Friday evening → Monday morning.
        assert_eq!(next_open(at("2026-12-11T18:30:00Z"), &s), Some(at("2026-12-14T06:00:00Z")));
    }

    #[test]
    fn a_holiday_is_closed_all_day_and_the_line_opens_the_next_working_day() {
        let s = chisinau();
        // Friday 25 December 2026 at noon local: a holiday.
        assert!(!is_open(at("2026-12-25T10:00:00Z"), &s));
        // Thursday evening → not Friday (holiday) → Monday 28th.
        assert_eq!(next_open(at("2026-12-24T19:00:00Z"), &s), Some(at("2026-12-28T06:00:00Z")));
        // A 24/7 line with a holiday is closed that day only, opening at local midnight after it.
        let h = Hours { time_zone: "Europe/Chisinau".into(), weekly: vec![], holidays: vec!["2026-12-25".into()] };
        let s = h.schedule().unwrap();
        assert!(!s.is_24_7());
        assert!(is_open(at("2026-12-24T21:59:59Z"), &s));
        assert!(!is_open(at("2026-12-24T22:00:00Z"), &s));
        assert_eq!(next_open(at("2026-12-25T12:00:00Z"), &s), Some(at("2026-12-25T22:00:00Z")));
    }

    #[test]
    fn the_clock_change_moves_opening_in_utc_not_in_local_time() {
        let s = chisinau();
        // Clocks go forward on Sunday 29 March 2026 (03:00 EET → 04:00 EEST): Friday the 27th opens
        // at 06:00Z (UTC+2), Monday the 30th at 05:00Z (UTC+3).
        assert_eq!(next_open(at("2026-03-27T00:00:00Z"), &s), Some(at("2026-03-27T06:00:00Z")));
        assert_eq!(next_open(at("2026-03-27T19:00:00Z"), &s), Some(at("2026-03-30T05:00:00Z")));
        assert!(is_open(at("2026-03-30T05:00:00Z"), &s));
        assert!(!is_open(at("2026-03-30T17:00:00Z"), &s), "20:00 EEST is 17:00Z");
        // And back on Sunday 25 October 2026.
        assert_eq!(next_open(at("2026-10-23T18:00:00Z"), &s), Some(at("2026-10-26T06:00:00Z")));
    }

    #[test]
    fn a_span_starting_in_the_hour_the_clocks_skip_opens_when_they_land() {
        // Sunday 29 March 2026 in Bucharest: 03:00–04:00 local does not exist (01:00Z the clocks jump).
        let h = Hours { time_zone: "Europe/Bucharest".into(), weekly: vec![span("sun", "03:30", "06:00")], holidays: vec![] };
        let s = h.schedule().unwrap();
        let t = next_open(at("2026-03-28T12:00:00Z"), &s).unwrap();
        assert!(is_open(t, &s));
        assert_eq!(t, at("2026-03-29T01:00:00Z"), "04:00 EEST, when the clocks land");
        assert!(!is_open(t - 1, &s));
    }

    #[test]
    fn bad_hours_are_refused_with_what_is_wrong() {
        let bad = |weekly: Vec<Span>, zone: &str, holidays: Vec<&str>| {
            Hours { time_zone: zone.into(), weekly, holidays: holidays.into_iter().map(String::from).collect() }.schedule().unwrap_err()
        };
        assert_eq!(bad(vec![], "Mars/Olympus", vec![]), HoursError::UnknownTimeZone("Mars/Olympus".into()));
        assert_eq!(bad(vec![span("monday", "08:00", "09:00")], "UTC", vec![]), HoursError::BadDay("monday".into()));
        assert_eq!(bad(vec![span("mon", "8:00", "09:00")], "UTC", vec![]), HoursError::BadTime("8:00".into()));
        assert_eq!(bad(vec![span("mon", "08:00", "24:30")], "UTC", vec![]), HoursError::BadTime("24:30".into()));
        assert!(matches!(bad(vec![span("mon", "09:00", "09:00")], "UTC", vec![]), HoursError::EmptySpan { .. }));
        assert_eq!(bad(vec![], "UTC", vec!["25.12.2026"]), HoursError::BadHoliday("25.12.2026".into()));
        assert!(Hours { time_zone: "UTC".into(), weekly: vec![span("sun", "00:00", "24:00")], holidays: vec![] }.schedule().is_ok());
    }

    #[test]
    fn spans_as_typed() {
        let v = spans("mon-wed,sat 08:00-20:00").unwrap();
        let days: Vec<&str> = v.iter().map(|s| s.day.as_str()).collect();
        assert_eq!(days, ["mon", "tue", "wed", "sat"]);
        assert!(v.iter().all(|s| s.open == "08:00" && s.close == "20:00"));
        assert!(spans("fri-mon 08:00-20:00").is_err());
        assert!(spans("someday 08:00-20:00").is_err());
        assert!(spans("mon").is_err());
    }

    proptest! {
        /// `next_open` is at or after the instant, open, and nothing between is open.
        #[test]
        fn next_open_is_the_first_open_instant(
            t in 1_700_000_000_000i64..1_900_000_000_000i64,
            opens in 0u32..23, len in 1u32..10, holiday_days in proptest::collection::vec(0i64..30, 0..4),
        ) {
            let close = (opens + len).min(24);
            let weekly = ["mon", "wed", "sat"].iter().map(|d| span(d, &format!("{opens:02}:00"), &format!("{close:02}:00"))).collect();
            let day0 = Timestamp::from_millisecond(t).unwrap().to_zoned(TimeZone::get("Europe/Chisinau").unwrap()).date();
            let holidays = holiday_days.iter().map(|d| day0.checked_add(jiff::Span::new().days(*d)).unwrap().to_string()).collect();
            let s = Hours { time_zone: "Europe/Chisinau".into(), weekly, holidays }.schedule().unwrap();
            let n = next_open(t, &s).unwrap();
            prop_assert!(n >= t);
            prop_assert!(is_open(n, &s));
            // Sampled every 10 minutes before it: closed.
            let mut probe = t;
            while probe < n {
                prop_assert!(!is_open(probe, &s));
                probe += 600_000;
            }
        }
    }
}

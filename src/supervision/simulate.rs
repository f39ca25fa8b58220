//! `helpline simulate`: replays an arrival pattern through the real routing engine in virtual time against a roster.
//!
//! No database and no clock: arrivals (from a CSV file, or Poisson at `--rate-per-hour` with
//! exponential handle times) go into [`routing::Engine`] at their virtual times; counsellors accept
//! every offer `--answer-delay-s` after it rings and end each conversation after its handle time;
//! callers with a patience give up when it runs out. After each conversation the counsellor's slot is in
//! wrap-up until she says she is ready (`--wrapup-s` after the end) or the helpline's wrap-up limit
//! passes (60 s by default); handle time includes it. The engine's own deadlines are honoured by
//! sending `Tick` at `next_deadline()`, exactly as the server's engine task does.
//! The report uses the same figures as the server ([`figures::compute`], [`figures::occupancy_series`]).
//! With opening hours (`--open`, `--time-zone`, `--holiday`), a contact arriving while the line is
//! closed leaves a message and is routed when it opens ([`simulate_with_hours`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::protocol::figures::{self, Conversation, Figures, StatusChange};
use crate::routing::hours::{next_open, spans, Hours, Schedule};
use crate::routing::{
    Channel, ContactId, CounsellorId, CounsellorProfile, Engine, EngineConfig, HelplineConfig, Input, NewContact, Output, RevokeReason,
    Status,
};

/// Options of `helpline simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Arrivals CSV with a header: `offset_s` or `queued_at_ms`, `helpline`, `language`, `handle_s`
    /// (and optionally `patience_s`). Without it, arrivals are generated (Poisson).
    #[arg(long)]
    pub arrivals: Option<PathBuf>,
    /// Generated arrivals per hour (Poisson).
    #[arg(long, default_value_t = 30.0)]
    pub rate_per_hour: f64,
    /// Mean handle time of generated contacts, in seconds (exponential).
    #[arg(long, default_value_t = 720.0)]
    pub aht_s: f64,
    /// Hours of generated arrivals (168 = a week).
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Seed of the generator (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Helpline of generated contacts.
    #[arg(long, default_value = "children")]
    pub helpline: String,
    /// Language of generated contacts.
    #[arg(long, default_value = "ro")]
    pub language: String,
    /// Counsellors on the roster (when no --roster file is given).
    #[arg(long, default_value_t = 10)]
    pub counsellors: u32,
    /// Concurrent chats per counsellor.
    #[arg(long, default_value_t = 1)]
    pub capacity: u32,
    /// Helplines every rostered counsellor serves, comma-separated.
    #[arg(long, default_value = "children,disability,family_violence")]
    pub helplines: String,
    /// Languages every rostered counsellor speaks, comma-separated.
    #[arg(long, default_value = "ro,ru,uk,en")]
    pub languages: String,
    /// Roster CSV with a header: `name`, `helplines`, `languages`, `capacity` (and optionally
    /// `backup_helplines`); lists inside a field are separated by `;`.
    #[arg(long)]
    pub roster: Option<PathBuf>,
    /// Seconds from an offer ringing to the counsellor accepting it (the ring timeout is 8 s).
    #[arg(long, default_value_t = 2.0)]
    pub answer_delay_s: f64,
    /// Mean patience of generated callers in seconds (exponential): they abandon when it runs out.
    /// Without it nobody abandons. (In an arrivals file: the `patience_s` column, fixed per contact.)
    #[arg(long)]
    pub patience_s: Option<f64>,
    /// Opening hours, as for `helpline hours set`: spans such as `mon-fri 08:00-20:00` (repeat for
    /// more). A contact arriving while closed leaves a message, routed when the line opens (its wait
    /// counts from then); without `--open` the line is open 24/7.
    #[arg(long = "open")]
    pub open: Vec<String>,
    /// The opening hours' IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// A local day closed all day, `YYYY-MM-DD` (repeat for more).
    #[arg(long = "holiday")]
    pub holidays: Vec<String>,
    /// Seconds of after-contact work: the counsellor says she is ready this long after each
    /// conversation ends (the helpline's wrap-up limit, 60 s, ends it sooner). 0: ready at once.
    #[arg(long, default_value_t = 0.0)]
    pub wrapup_s: f64,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A contact arriving.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub at_ms: i64,
    pub helpline: String,
    pub language: String,
    pub handle_ms: i64,
    pub patience_ms: Option<i64>,
}

/// A counsellor on the roster (available and connected for the whole run).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub helplines: Vec<String>,
    pub backup_helplines: Vec<String>,
    pub languages: Vec<String>,
    pub capacity: u32,
}

/// What happened to one contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimContact {
    pub helpline: String,
    pub queued_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// When the counsellor's wrap-up of it ended.
    pub wrapup_ended_at: Option<i64>,
    pub abandoned: bool,
    pub counsellor: Option<usize>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub start_ms: i64,
    pub end_ms: i64,
    pub figures: Figures,
    pub by_helpline: BTreeMap<String, Figures>,
    /// Offers that rang out (answer delay ≥ ring timeout, or a counsellor was full).
    pub offers_expired: u64,
    /// Times the engine set a counsellor away after missed offers (the simulator sets them back at once).
    pub set_away: u64,
    /// Contacts that arrived while the line was closed and left a message, routed when it opened.
    pub left_for_later: u64,
    pub engine_steps: u64,
    #[serde(skip)]
    pub contacts: Vec<SimContact>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(usize),
    Accept(usize, usize),
    Finish(usize),
    GiveUp(usize),
    Back(usize),
    /// The counsellor is done with the wrap-up of a contact.
    Ready(usize, usize),
}

/// Runs `arrivals` (any order) against `roster` through the routing engine; `progress(now, last_arrival)`
/// is called every few thousand steps.
pub fn simulate(
    arrivals: &[Arrival],
    roster: &[Member],
    helplines: &[HelplineConfig],
    answer_delay_ms: i64,
    progress: &mut dyn FnMut(i64, i64),
) -> Outcome {
    simulate_with(arrivals, roster, helplines, answer_delay_ms, None, 0, progress)
}

/// [`simulate`] with opening hours: a contact arriving while the line is closed leaves a message
/// (as a caller told `unavailable` may), routed when the line opens, with its wait counted from then;
/// it does not abandon.
pub fn simulate_with_hours(
    arrivals: &[Arrival],
    roster: &[Member],
    helplines: &[HelplineConfig],
    answer_delay_ms: i64,
    hours: Option<&Schedule>,
    progress: &mut dyn FnMut(i64, i64),
) -> Outcome {
    simulate_with(arrivals, roster, helplines, answer_delay_ms, hours, 0, progress)
}

/// [`simulate`], the counsellors saying they are ready `wrapup_ms` after each conversation ends (the
/// helpline's wrap-up limit ends a wrap-up sooner).
pub fn simulate_with_wrapup(
    arrivals: &[Arrival],
    roster: &[Member],
    helplines: &[HelplineConfig],
    answer_delay_ms: i64,
    wrapup_ms: i64,
    progress: &mut dyn FnMut(i64, i64),
) -> Outcome {
    simulate_with(arrivals, roster, helplines, answer_delay_ms, None, wrapup_ms, progress)
}

/// [`simulate`] with opening hours ([`simulate_with_hours`]) and wrap-up ([`simulate_with_wrapup`]).
pub fn simulate_with(
    arrivals: &[Arrival],
    roster: &[Member],
    helplines: &[HelplineConfig],
    answer_delay_ms: i64,
    hours: Option<&Schedule>,
    wrapup_ms: i64,
    progress: &mut dyn FnMut(i64, i64),
) -> Outcome {
    let mut engine = Engine::new(EngineConfig { helplines: helplines.to_vec(), misses_before_away: 2 });
    let start = arrivals.iter().map(|a| a.at_ms).min().unwrap_or(0);
    let last_arrival = arrivals.iter().map(|a| a.at_ms).max().unwrap_or(0);
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let cid = |i: usize| CounsellorId(i as u128 + 1);
    let xid = |i: usize| ContactId(i as u128 + 1);
    let mut steps = 0u64;
    for (i, m) in roster.iter().enumerate() {
        let profile = CounsellorProfile {
            id: cid(i),
            helplines: set(&m.helplines),
            backup_helplines: set(&m.backup_helplines),
            languages: set(&m.languages),
            capacity: m.capacity,
            takes_calls: false,
            senior: false,
        };
        engine.handle(start, Input::UpsertCounsellor(profile));
        engine.handle(start, Input::CounsellorConnected { counsellor: cid(i) });
        engine.handle(start, Input::SetStatus { counsellor: cid(i), status: Status::Available });
        steps += 3;
    }
    let mut contacts: Vec<SimContact> =
        arrivals.iter().map(|a| SimContact { helpline: a.helpline.clone(), queued_at: a.at_ms, ..SimContact::default() }).collect();
    let mut queue: BinaryHeap<Reverse<(i64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<(i64, u64, Event)>>, at: i64, e: Event| {
        seq += 1;
        queue.push(Reverse((at, seq, e)));
    };
    let mut deferred = vec![false; arrivals.len()];
    for (i, a) in arrivals.iter().enumerate() {
        let at = hours.and_then(|h| next_open(a.at_ms, h)).unwrap_or(a.at_ms).max(a.at_ms);
        if at > a.at_ms {
            deferred[i] = true;
            contacts[i].queued_at = at;
        }
        push(&mut queue, at, Event::Arrive(i));
    }
    let left_for_later = deferred.iter().filter(|d| **d).count() as u64;
    let (mut offers_expired, mut set_away) = (0u64, 0u64);
    let mut now = start;
    loop {
        let next_event = queue.peek().map(|Reverse((t, _, _))| *t);
        let deadline = engine.next_deadline();
        let (t, input) = match (next_event, deadline) {
            (None, None) => break,
            (Some(t), Some(d)) if d < t => (d, Input::Tick),
            (None, Some(d)) => (d, Input::Tick),
            (Some(_), _) => {
                let Some(Reverse((t, _, e))) = queue.pop() else { break };
                let input = match e {
                    Event::Arrive(i) => {
                        let a = &arrivals[i];
                        if let (Some(p), false) = (a.patience_ms, deferred[i]) {
                            push(&mut queue, t + p, Event::GiveUp(i));
                        }
                        Input::ContactQueued(NewContact {
                            id: xid(i),
                            channel: Channel::Chat,
                            helpline: a.helpline.clone(),
                            language: a.language.clone(),
                            priority: 0,
                            queued_at: t,
                            caller_connected: true,
                            senior_only: false,
                        })
                    }
                    Event::Accept(i, c) => Input::Accept { counsellor: cid(c), contact: xid(i) },
                    Event::Finish(i) => match contacts[i].counsellor {
                        Some(c) => Input::EndByCounsellor { counsellor: cid(c), contact: xid(i) },
                        None => continue,
                    },
                    Event::GiveUp(i) => {
                        if contacts[i].answered_at.is_some() || contacts[i].ended_at.is_some() {
                            continue;
                        }
                        Input::EndByCaller { contact: xid(i) }
                    }
                    Event::Back(c) => Input::SetStatus { counsellor: cid(c), status: Status::Available },
                    Event::Ready(i, c) => Input::Ready { counsellor: cid(c), contact: xid(i) },
                };
                (t, input)
            }
        };
        now = now.max(t);
        steps += 1;
        if steps.is_multiple_of(4096) {
            progress(now, last_arrival);
        }
        for out in engine.handle(t, input) {
            match out {
                Output::Offer { contact, counsellor, .. } => {
                    let (i, c) = (contact.0 as usize - 1, counsellor.0 as usize - 1);
                    push(&mut queue, t + answer_delay_ms, Event::Accept(i, c));
                }
                Output::Assigned { contact, counsellor, answered_at } => {
                    let i = contact.0 as usize - 1;
                    contacts[i].answered_at = Some(answered_at);
                    contacts[i].counsellor = Some(counsellor.0 as usize - 1);
                    push(&mut queue, answered_at + arrivals[i].handle_ms, Event::Finish(i));
                }
                Output::Ended { contact, abandoned, .. } => {
                    let i = contact.0 as usize - 1;
                    contacts[i].ended_at = Some(t);
                    contacts[i].abandoned = abandoned;
                }
                Output::WrapUp { counsellor, contact, .. } => {
                    push(&mut queue, t + wrapup_ms, Event::Ready(contact.0 as usize - 1, counsellor.0 as usize - 1));
                }
                Output::WrapUpEnded { contact, .. } => contacts[contact.0 as usize - 1].wrapup_ended_at = Some(t),
                Output::OfferRevoked { reason: RevokeReason::Expired, .. } => offers_expired += 1,
                Output::StatusChanged { counsellor, status: Status::Away, .. } => {
                    set_away += 1;
                    push(&mut queue, t, Event::Back(counsellor.0 as usize - 1));
                }
                _ => {}
            }
        }
    }
    let end = now.max(last_arrival);
    let target_of = |h: &str| helplines.iter().find(|c| c.name == h).map_or(figures::DEFAULT_TARGET_MS, |c| c.sla_target_ms);
    let times = |c: &SimContact| figures::ContactTimes {
        queued_at: c.queued_at,
        answered_at: c.answered_at,
        ended_at: c.ended_at,
        wrapup_ended_at: c.wrapup_ended_at,
        abandoned: c.abandoned,
        target_ms: target_of(&c.helpline),
    };
    let rules = figures::Rules::as_of(end);
    let all: Vec<_> = contacts.iter().map(times).collect();
    let mut figures = figures::compute(&all, &rules);
    // Occupancy: everyone available from the start to the end of the run.
    let conversations: Vec<Conversation> = contacts
        .iter()
        .filter_map(|c| Some(Conversation { counsellor: c.counsellor?.to_string(), answered_at: c.answered_at?, ended_at: c.ended_at }))
        .collect();
    let changes: Vec<StatusChange> =
        (0..roster.len()).map(|i| StatusChange { counsellor: i.to_string(), at: start, available: true }).collect();
    figures.occupancy = figures::occupancy_series(&conversations, &changes, &[start, end.max(start + 1)], end)[0].ratio();
    let mut by_helpline = BTreeMap::new();
    let names: BTreeSet<&str> = contacts.iter().map(|c| c.helpline.as_str()).collect();
    for h in names {
        let rows: Vec<_> = contacts.iter().filter(|c| c.helpline == h).map(times).collect();
        by_helpline.insert(h.to_string(), figures::compute(&rows, &rules));
    }
    Outcome { start_ms: start, end_ms: end, figures, by_helpline, offers_expired, set_away, left_for_later, engine_steps: steps, contacts }
}

/// Poisson arrivals at `rate_per_hour` over `hours`, exponential handle times (mean `aht_s`) and,
/// if given, exponential patience (mean `patience_s`).
pub fn generate(
    rate_per_hour: f64,
    hours: f64,
    aht_s: f64,
    patience_s: Option<f64>,
    helpline: &str,
    language: &str,
    seed: u64,
) -> Vec<Arrival> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut exp = move |mean: f64| -> f64 { -mean * (1.0 - rng.gen::<f64>()).ln() };
    let horizon_s = hours * 3600.0;
    let mut out = Vec::new();
    if rate_per_hour <= 0.0 {
        return out;
    }
    let mut t = 0.0;
    loop {
        t += exp(3600.0 / rate_per_hour);
        if t >= horizon_s {
            break;
        }
        out.push(Arrival {
            at_ms: (t * 1000.0).round() as i64,
            helpline: helpline.to_string(),
            language: language.to_string(),
            handle_ms: ((exp(aht_s) * 1000.0).round() as i64).max(1),
            patience_ms: patience_s.map(|p| (exp(p) * 1000.0).round() as i64),
        });
    }
    out
}

fn columns(header: &str) -> BTreeMap<String, usize> {
    header.split(',').enumerate().map(|(i, c)| (c.trim().to_ascii_lowercase(), i)).collect()
}

fn seconds(field: &str, what: &str, line: usize) -> anyhow::Result<i64> {
    let v: f64 = field.trim().parse().with_context(|| format!("line {line}: {what} {field:?} is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        bail!("line {line}: {what} must be a non-negative number, got {v}");
    }
    Ok((v * 1000.0).round() as i64)
}

/// Parses an arrivals CSV (see [`SimulateArgs::arrivals`]).
pub fn parse_arrivals(text: &str) -> anyhow::Result<Vec<Arrival>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else { bail!("the arrivals file is empty") };
    let cols = columns(header);
    let need = |name: &str| cols.get(name).copied().with_context(|| format!("the arrivals header has no {name:?} column"));
    let (helpline, language, handle) = (need("helpline")?, need("language")?, need("handle_s")?);
    let (offset, absolute, patience) = (cols.get("offset_s"), cols.get("queued_at_ms"), cols.get("patience_s"));
    if offset.is_none() && absolute.is_none() {
        bail!("the arrivals header needs an offset_s or a queued_at_ms column");
    }
    let mut out = Vec::new();
    for (n, line) in lines {
        let n = n + 1;
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().with_context(|| format!("line {n}: too few fields"));
        let at_ms = match (absolute, offset) {
            (Some(&i), _) => get(i)?.parse::<i64>().with_context(|| format!("line {n}: bad queued_at_ms"))?,
            (None, Some(&i)) => seconds(get(i)?, "offset_s", n)?,
            (None, None) => unreachable!(),
        };
        let patience_ms = match patience.map(|&i| get(i)).transpose()? {
            Some(p) if !p.is_empty() => Some(seconds(p, "patience_s", n)?),
            _ => None,
        };
        out.push(Arrival {
            at_ms,
            helpline: get(helpline)?.to_string(),
            language: get(language)?.to_string(),
            handle_ms: seconds(get(handle)?, "handle_s", n)?.max(1),
            patience_ms,
        });
    }
    Ok(out)
}

fn list(s: &str, sep: char) -> Vec<String> {
    s.split(sep).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// Parses a roster CSV (see [`SimulateArgs::roster`]).
pub fn parse_roster(text: &str) -> anyhow::Result<Vec<Member>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else { bail!("the roster file is empty") };
    let cols = columns(header);
    let need = |name: &str| cols.get(name).copied().with_context(|| format!("the roster header has no {name:?} column"));
    let (name, helplines, languages, capacity) = (need("name")?, need("helplines")?, need("languages")?, need("capacity")?);
    let backup = cols.get("backup_helplines").copied();
    let mut out = Vec::new();
    for (n, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let cap: u32 = get(capacity).parse().with_context(|| format!("line {}: bad capacity", n + 1))?;
        out.push(Member {
            name: get(name).to_string(),
            helplines: list(get(helplines), ';'),
            backup_helplines: backup.map(|i| list(get(i), ';')).unwrap_or_default(),
            languages: list(get(languages), ';'),
            capacity: cap,
        });
    }
    Ok(out)
}

/// The three helplines' engine settings (the product defaults).
pub fn default_helplines() -> Vec<HelplineConfig> {
    crate::chat::engine_task::engine_config(&crate::store::defaults::default_helplines()).helplines
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{:.2} %", x * 100.0))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{:.1} s", x / 1000.0))
}

/// Runs the simulation and prints its report (no database is opened).
pub async fn run(_database: &str, args: SimulateArgs) -> anyhow::Result<()> {
    let helplines = default_helplines();
    let generated = args.arrivals.is_none();
    let arrivals = match &args.arrivals {
        Some(path) => parse_arrivals(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)?,
        None => {
            if !(args.rate_per_hour >= 0.0 && args.hours > 0.0 && args.aht_s > 0.0) {
                bail!("--rate-per-hour must be ≥ 0, --hours and --aht-s > 0");
            }
            generate(args.rate_per_hour, args.hours, args.aht_s, args.patience_s, &args.helpline, &args.language, args.seed)
        }
    };
    let roster = match &args.roster {
        Some(path) => parse_roster(&std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)?,
        None => (0..args.counsellors)
            .map(|i| Member {
                name: format!("counsellor-{}", i + 1),
                helplines: list(&args.helplines, ','),
                backup_helplines: Vec::new(),
                languages: list(&args.languages, ','),
                capacity: args.capacity,
            })
            .collect(),
    };
    for a in &arrivals {
        if !helplines.iter().any(|h| h.name == a.helpline) {
            bail!("unknown helpline {:?} in the arrivals", a.helpline);
        }
    }
    if !(0.0..=3600.0).contains(&args.answer_delay_s) {
        bail!("--answer-delay-s must be between 0 and 3600");
    }
    let answer_delay_ms = (args.answer_delay_s * 1000.0).round() as i64;
    if helplines.iter().any(|h| answer_delay_ms >= h.ring_timeout_ms) {
        eprintln!("warning: the answer delay is not shorter than the 8 s ring timeout: offers will ring out");
    }
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let mut progress = |now: i64, horizon: i64| {
        if last.elapsed().as_secs_f64() >= 1.0 {
            last = std::time::Instant::now();
            let share = if horizon > 0 { now as f64 / horizon as f64 * 100.0 } else { 100.0 };
            eprint!("\rsimulated {:.1} h ({share:.0} %)", now as f64 / 3_600_000.0);
            let _ = std::io::stderr().flush();
        }
    };
    let hours = if args.open.is_empty() && args.holidays.is_empty() {
        None
    } else {
        let mut weekly = Vec::new();
        for text in &args.open {
            weekly.extend(spans(text).map_err(anyhow::Error::msg)?);
        }
        let hours = Hours { time_zone: args.time_zone.clone(), weekly, holidays: args.holidays.clone() };
        Some(hours.schedule().map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    if !(0.0..=3600.0).contains(&args.wrapup_s) {
        bail!("--wrapup-s must be between 0 and 3600");
    }
    let wrapup_ms = (args.wrapup_s * 1000.0).round() as i64;
    let outcome = tokio::task::block_in_place(|| {
        simulate_with(&arrivals, &roster, &helplines, answer_delay_ms, hours.as_ref(), wrapup_ms, &mut progress)
    });
    if started.elapsed().as_secs_f64() >= 1.0 {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    let f = &outcome.figures;
    let slots: u32 = roster.iter().map(|m| m.capacity).sum();
    println!(
        "simulated {:.1} h in {:.2} s: {} contacts, {} counsellors ({} chat slots), answer delay {:.1} s, {}",
        (outcome.end_ms - outcome.start_ms) as f64 / 3_600_000.0,
        started.elapsed().as_secs_f64(),
        f.offered,
        roster.len(),
        slots,
        args.answer_delay_s,
        if arrivals.iter().any(|a| a.patience_ms.is_some()) { "callers may abandon" } else { "no abandonment" },
    );
    println!("service level (answered within target): {}", pct(f.service_level));
    if generated && args.patience_s.is_none() {
        let sl = crate::supervision::staffing::service_level(slots, args.rate_per_hour * args.aht_s / 3600.0, args.aht_s, 15.0);
        println!("  Erlang C for the same λ, AHT and {slots} servers: {:.2} %", sl * 100.0);
    }
    println!(
        "ASA: {}   waits of answered contacts: p50 {}  p90 {}  p99 {}",
        secs(f.asa_ms),
        secs(f.answer_p50_ms.map(|v| v as f64)),
        secs(f.answer_p90_ms.map(|v| v as f64)),
        secs(f.answer_p99_ms.map(|v| v as f64))
    );
    println!(
        "answered {}, abandoned {} (short {}), abandonment rate {}, still waiting {}",
        f.answered,
        f.abandoned,
        f.abandoned_short,
        pct(f.abandonment_rate),
        f.waiting
    );
    println!("AHT (with wrap-up, {:.0} s after each end at most): {}   occupancy: {}", args.wrapup_s, secs(f.aht_ms), pct(f.occupancy));
    if hours.is_some() {
        println!("arrived while closed and left a message (routed when the line opened): {}", outcome.left_for_later);
    }
    if outcome.offers_expired > 0 || outcome.set_away > 0 {
        println!("offers rung out: {}; counsellors set away (and back): {}", outcome.offers_expired, outcome.set_away);
    }
    if outcome.by_helpline.len() > 1 {
        for (h, f) in &outcome.by_helpline {
            println!(
                "  {h}: {} offered, SL {}, ASA {}, abandonment {}",
                f.offered,
                pct(f.service_level),
                secs(f.asa_ms),
                pct(f.abandonment_rate)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(helpline: &str, capacity: u32, n: u32) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                name: format!("c{i}"),
                helplines: vec![helpline.into()],
                backup_helplines: vec![],
                languages: vec!["ro".into()],
                capacity,
            })
            .collect()
    }

    /// Poisson arrivals, capacity 1, no abandonment, no answer delay: the engine is an M/M/m FIFO queue,
    /// so over a long run its service level approaches Erlang C's. Check figure from
    /// /work/shared/domain/helplines.md: λ = 30/h, AHT 12 min, m = 10 → SL(15 s) = 90.68 %.
    #[test]
    fn long_poisson_run_matches_erlang_c() {
        let arrivals = generate(30.0, 2_000.0, 720.0, None, "children", "ro", 42);
        assert!(arrivals.len() > 55_000, "{}", arrivals.len());
        let out = simulate(&arrivals, &one("children", 1, 10), &default_helplines(), 0, &mut |_, _| {});
        let f = &out.figures;
        assert_eq!((f.offered, f.answered, f.abandoned, f.waiting), (arrivals.len() as i64, arrivals.len() as i64, 0, 0));
        let erlang = crate::supervision::staffing::service_level(10, 6.0, 720.0, 15.0);
        let sl = f.service_level.unwrap();
        assert!((sl - erlang).abs() < 0.02, "simulated SL {sl:.4}, Erlang C {erlang:.4}");
        // ASA: Erlang C gives P_wait·AHT/(m − A).
        let asa = crate::supervision::staffing::asa_s(10, 6.0, 720.0) * 1000.0;
        let got = f.asa_ms.unwrap();
        assert!((got - asa).abs() < 0.15 * asa, "simulated ASA {got:.0} ms, Erlang C {asa:.0} ms");
        // Occupancy ≈ A/m = 0.6.
        assert!((f.occupancy.unwrap() - 0.6).abs() < 0.03, "{:?}", f.occupancy);
        assert_eq!(out.offers_expired, 0);
    }

    /// A scripted stretch of a day, one counsellor (capacity 1) who answers 2 s after an offer rings:
    /// - 00:00:00 #1, handle 60 s: offered at once, answered at 2 s (wait 2 s), ends at 62 s;
    /// - 00:00:10 #2, handle 30 s: waits for #1, offered at 62 s, answered at 64 s (wait 54 s), ends at 94 s;
    /// - 00:00:20 #3, patience 3 s: abandons at 23 s (short);
    /// - 00:00:30 #4, patience 20 s: abandons at 50 s;
    /// - 12:00:00 #5, handle 100 s: answered at 12:00:02, ends at 12:01:42.
    ///
    /// So offered 5, answered 3 (2 within 15 s), abandoned 2 (1 short); SL = 2 / (5 − 1) = 50 %;
    /// ASA = (2 + 54 + 2) / 3 s; abandonment = (2 − 1) / (3 + 2 − 1) = 25 %; AHT = (60 + 30 + 100) / 3 s;
    /// occupancy = 190 s busy of 43 302 s staffed.
    #[test]
    fn scripted_day_matches_hand_computed_figures() {
        let csv = "offset_s,helpline,language,handle_s,patience_s\n\
                   0,children,ro,60,\n10,children,ro,30,\n20,children,ro,60,3\n30,children,ro,60,20\n43200,children,ro,100,\n";
        let arrivals = parse_arrivals(csv).unwrap();
        assert_eq!(arrivals.len(), 5);
        let out = simulate(&arrivals, &one("children", 1, 1), &default_helplines(), 2_000, &mut |_, _| {});
        let f = &out.figures;
        assert_eq!((f.offered, f.answered, f.answered_in_target, f.abandoned, f.abandoned_short), (5, 3, 2, 2, 1));
        assert_eq!(f.service_level, Some(0.5));
        assert_eq!(f.asa_ms, Some(58_000.0 / 3.0));
        assert_eq!(f.abandonment_rate, Some(0.25));
        assert_eq!(f.aht_ms, Some(190_000.0 / 3.0));
        assert_eq!(f.occupancy, Some(190.0 / 43_302.0));
        assert_eq!((f.answer_p50_ms, f.answer_p90_ms), (Some(2_000), Some(54_000)));
        let c = &out.contacts;
        assert_eq!((c[1].answered_at, c[1].ended_at), (Some(64_000), Some(94_000)));
        assert_eq!((c[2].ended_at, c[2].abandoned), (Some(23_000), true));
        assert_eq!(out.end_ms, 43_302_000);
    }

    #[test]
    fn a_week_of_traffic_runs_and_is_deterministic() {
        // 168 h at 120/h, 3 chats per counsellor, callers who give up after 60 s on average.
        let arrivals = generate(120.0, 168.0, 600.0, Some(60.0), "children", "ro", 3);
        let roster = one("children", 3, 9);
        let a = simulate(&arrivals, &roster, &default_helplines(), 1_000, &mut |_, _| {});
        let b = simulate(&arrivals, &roster, &default_helplines(), 1_000, &mut |_, _| {});
        assert_eq!(a.figures, b.figures);
        assert!(a.figures.offered > 19_000);
        assert!(a.figures.abandoned > 0 && a.figures.answered > a.figures.abandoned);
    }

    #[test]
    fn files_are_checked() {
        assert!(parse_arrivals("helpline,language,handle_s\nchildren,ro,1\n").is_err());
        assert!(parse_arrivals("offset_s,helpline,language,handle_s\nsoon,children,ro,1\n").is_err());
        let a = parse_arrivals("queued_at_ms,helpline,language,handle_s\n1500,disability,ru,2.5\n").unwrap();
        assert_eq!(a[0], Arrival { at_ms: 1500, helpline: "disability".into(), language: "ru".into(), handle_ms: 2500, patience_ms: None });
        let r = parse_roster("name,helplines,languages,capacity\nana,children;disability,ro;ru,3\n").unwrap();
        assert_eq!(r[0].helplines, vec!["children", "disability"]);
        assert_eq!(r[0].capacity, 3);
    }

    #[test]
    fn arrivals_while_closed_wait_for_the_opening_and_count_from_it() {
        let day = 86_400_000i64;
        let hours = Hours { time_zone: "UTC".into(), weekly: spans("mon-sun 08:00-20:00").unwrap(), holidays: vec![] };
        let s = hours.schedule().unwrap();
        // 2026-12-08 (a Tuesday) 03:00Z and 09:00Z: the first comes while closed.
        let base = 1_796_774_400_000i64 - 1_796_774_400_000i64.rem_euclid(day);
        let arrivals = vec![
            Arrival {
                at_ms: base + 3 * 3_600_000,
                helpline: "children".into(),
                language: "ro".into(),
                handle_ms: 60_000,
                patience_ms: Some(1_000),
            },
            Arrival {
                at_ms: base + 9 * 3_600_000,
                helpline: "children".into(),
                language: "ro".into(),
                handle_ms: 60_000,
                patience_ms: None,
            },
        ];
        let out = simulate_with_hours(&arrivals, &one("children", 1, 1), &default_helplines(), 2_000, Some(&s), &mut |_, _| {});
        assert_eq!(out.left_for_later, 1);
        assert_eq!(out.contacts[0].queued_at, base + 8 * 3_600_000, "routed at the opening");
        assert_eq!(out.contacts[0].answered_at, Some(base + 8 * 3_600_000 + 2_000), "answered then, not abandoned overnight");
        assert!(!out.contacts[0].abandoned);
        let open = simulate(&arrivals, &one("children", 1, 1), &default_helplines(), 2_000, &mut |_, _| {});
        assert_eq!(open.left_for_later, 0);
        assert!(open.contacts[0].abandoned, "24/7 she waits at once, and gives up after her 1 s patience");
    }
}

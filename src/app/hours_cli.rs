//! `helpline hours set|show`: a helpline's opening hours from the command line (admins' tool,
//! audited as `cli`). A running server reads hours at its start; to change them live use
//! `PUT /api/v1/helplines/{name}/hours`, which also tells the router at once.
//!
//! `helpline settings set|show`: the rest of a helpline's day — wrap-up limit, away reasons, triage
//! question — checked by the same rules as `PUT /api/v1/helplines/{name}/settings` (audited as `cli`;
//! a running server takes them at its next start, the REST route at once).

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::routing::hours::{is_open, next_open, spans, Hours};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum HoursCommand {
    /// Set a helpline's hours (replacing them). Without `--open` the line is open every hour of every
    /// day (24/7), apart from any `--holiday`.
    Set(HoursSet),
    /// Show a helpline's hours, and whether it is open now.
    Show { helpline: String },
}

#[derive(Args, Debug)]
pub struct HoursSet {
    pub helpline: String,
    /// IANA time zone, e.g. Europe/Chisinau.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// An opening span: days and times, e.g. `mon-fri 08:00-20:00`, `sat,sun 10:00-14:00`,
    /// `sun 00:00-24:00`. Repeat for more.
    #[arg(long = "open")]
    pub open: Vec<String>,
    /// A local day closed all day, `YYYY-MM-DD`. Repeat for more.
    #[arg(long = "holiday")]
    pub holidays: Vec<String>,
}

pub async fn run(store: &Store, cmd: HoursCommand) -> anyhow::Result<()> {
    crate::store::defaults::seed_helplines(store).await?;
    let now = Clock::new().now_ms();
    match cmd {
        HoursCommand::Set(args) => {
            if store.directory().helpline(&args.helpline).await?.is_none() {
                bail!("unknown helpline {:?}", args.helpline);
            }
            let mut weekly = Vec::new();
            for text in &args.open {
                weekly.extend(spans(text).map_err(anyhow::Error::msg)?);
            }
            let hours = Hours { time_zone: args.time_zone, weekly, holidays: args.holidays };
            hours.schedule().map_err(|e| anyhow::anyhow!("{e}"))?;
            store.directory().set_hours(&args.helpline, &hours, now).await?;
            let detail = serde_json::to_string(&hours)?;
            store.audit_log().audit_from(now, "cli", "hours_set", Some(&args.helpline), Some(&detail), "cli").await?;
            print(&args.helpline, &hours, now)?;
            println!("(a running server takes these at its next start; PUT /api/v1/helplines/{}/hours changes them live)", args.helpline);
        }
        HoursCommand::Show { helpline } => {
            if store.directory().helpline(&helpline).await?.is_none() {
                bail!("unknown helpline {helpline:?}");
            }
            let hours = store.directory().hours(&helpline).await?.unwrap_or_default();
            print(&helpline, &hours, now)?;
        }
    }
    Ok(())
}

fn print(helpline: &str, hours: &Hours, now: i64) -> anyhow::Result<()> {
    let s = hours.schedule().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{helpline}: time zone {}", hours.time_zone);
    if hours.weekly.is_empty() {
        println!("  open every hour of every day");
    }
    for span in &hours.weekly {
        println!("  {} {}-{}", span.day, span.open, span.close);
    }
    for day in &hours.holidays {
        println!("  closed {day}");
    }
    if is_open(now, &s) {
        println!("  open now");
    } else if let Some(at) = next_open(now, &s) {
        println!("  closed now; opens {}", crate::protocol::rfc3339(at));
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Change a helpline's wrap-up limit, away reasons or triage question (what is not given stays).
    Set(SettingsSet),
    /// Show a helpline's wrap-up limit, away reasons and triage question.
    Show { helpline: String },
}

#[derive(Args, Debug)]
pub struct SettingsSet {
    pub helpline: String,
    /// After a conversation ends, its slot stays in wrap-up this many seconds at most (0: no wrap-up;
    /// at most 3600) unless the counsellor is ready sooner.
    #[arg(long = "wrapup-limit-s")]
    pub wrapup_limit_s: Option<i64>,
    /// An away reason its counsellors may give (a code: lowercase letters, digits, `_`). Repeat for
    /// more; given, they replace the list.
    #[arg(long = "away-reason")]
    pub away_reasons: Vec<String>,
    /// Ask the triage question ("Are you in danger right now?"); a yes gives this priority (1 to 100; 90 is usual).
    #[arg(long = "triage-priority", conflicts_with = "no_triage")]
    pub triage_priority: Option<i64>,
    /// Do not ask the triage question.
    #[arg(long = "no-triage")]
    pub no_triage: bool,
}

pub async fn settings(store: &Store, cmd: SettingsCommand) -> anyhow::Result<()> {
    use crate::supervision::hours::{check_settings, settings_of, store_settings};
    crate::store::defaults::seed_helplines(store).await?;
    let now = Clock::new().now_ms();
    match cmd {
        SettingsCommand::Set(args) => {
            let Some(h) = store.directory().helpline(&args.helpline).await? else {
                bail!("unknown helpline {:?}", args.helpline);
            };
            let mut asked = settings_of(&h);
            if let Some(s) = args.wrapup_limit_s {
                asked.wrapup_limit_ms = s.saturating_mul(1000);
            }
            if !args.away_reasons.is_empty() {
                asked.away_reasons = args.away_reasons;
            }
            if args.no_triage {
                asked.triage_priority = None;
            } else if let Some(p) = args.triage_priority {
                asked.triage_priority = Some(p);
            }
            let checked = check_settings(&asked).map_err(anyhow::Error::msg)?;
            let detail = serde_json::to_string(&checked)?;
            store.audit_log().audit_from(now, "cli", "helpline_settings_set", Some(&args.helpline), Some(&detail), "cli").await?;
            store_settings(store, None, &args.helpline, &checked).await?;
            print_settings(&args.helpline, &checked);
            println!(
                "(a running server takes these at its next start; PUT /api/v1/helplines/{}/settings changes them live)",
                args.helpline
            );
        }
        SettingsCommand::Show { helpline } => {
            let Some(h) = store.directory().helpline(&helpline).await? else {
                bail!("unknown helpline {helpline:?}");
            };
            print_settings(&helpline, &settings_of(&h));
        }
    }
    Ok(())
}

fn print_settings(helpline: &str, s: &crate::supervision::hours::WaitingSettings) {
    println!("{helpline}:");
    match s.wrapup_limit_ms {
        0 => println!("  wrap-up: none"),
        ms => println!("  wrap-up: at most {} s", ms / 1000),
    }
    println!("  away reasons: {}", s.away_reasons.join(", "));
    match s.triage_priority {
        Some(p) => println!("  triage question: asked; a yes gives priority {p}"),
        None => println!("  triage question: not asked"),
    }
}

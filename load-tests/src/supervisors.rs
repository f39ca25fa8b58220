//! `supervisors`: S supervisor sockets watching the board while `relay` runs.
//!
//! The relay steps run twice on the same server: first with nobody watching (the baseline), then
//! with S supervisors connected. Measured in the second run:
//! - **staleness**: a probe caller opens a contact every `probe_every` (it waits: every relay
//!   counsellor is full); time from its `queued` frame to the first `dashboard` that lists it, per
//!   supervisor — how far the board lags behind the real state;
//! - **board age**: the `dashboard`'s own `at` → when it was read (building and sending it);
//! - the **extra server CPU**: the same relay step's server CPU with and without the supervisors.
//!
//! Checked: every probe seen by every supervisor (`unseen_by_supervisors`), no error frames, and the
//! relay's own checks (nothing lost or doubled).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use helpline::protocol::ServerEvent;
use helpline::store::users::Role;
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::relay::{self, RelayOpts};
use crate::report::Report;
use crate::stats::Hist;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct SupervisorOpts {
    pub supervisors: usize,
    pub relay: RelayOpts,
    /// A probe contact is opened this often while the relay runs.
    pub probe_every: Duration,
    /// How long a probe contact waits before its caller leaves.
    pub probe_hold: Duration,
}

impl Default for SupervisorOpts {
    fn default() -> Self {
        SupervisorOpts {
            supervisors: 100,
            relay: RelayOpts::default(),
            probe_every: Duration::from_millis(500),
            probe_hold: Duration::from_secs(3),
        }
    }
}

/// Probe contact id → when its caller read `queued`.
type Probes = Arc<Mutex<HashMap<String, Instant>>>;

#[derive(Default)]
struct WatchOut {
    staleness: Hist,
    board_age: Hist,
    seen: usize,
    dashboards: u64,
    errors: u64,
    first_error: Option<String>,
}

fn parse_at(at: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))
}

async fn watch_board(mut ws: Ws, probes: Probes, mut stop: watch::Receiver<bool>) -> WatchOut {
    let mut out = WatchOut::default();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            other => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("supervisor socket ended: {other:?}"));
                break;
            }
        };
        let now = Instant::now();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            out.errors += 1;
            continue;
        };
        match v["type"].as_str() {
            Some("dashboard") => {
                out.dashboards += 1;
                if let Some(at) = v["at"].as_str().and_then(parse_at) {
                    let age = SystemTime::now().duration_since(at).unwrap_or_default();
                    out.board_age.record(age);
                }
                let known = probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for h in v["helplines"].as_array().into_iter().flatten() {
                    for w in h["waiting"].as_array().into_iter().flatten() {
                        let Some(id) = w["contact_id"].as_str() else { continue };
                        if let Some(t) = known.get(id) {
                            if seen.insert(id.to_string()) {
                                out.staleness.record(now.saturating_duration_since(*t));
                            }
                        }
                    }
                }
            }
            Some("error") => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("error frame: {text}"));
            }
            _ => {}
        }
    }
    out.seen = seen.len();
    let _ = ws.close(None).await;
    out
}

/// Opens a probe contact every `every` until `stop`; returns (probes opened, errors, first error).
async fn probe(
    addr: std::net::SocketAddr,
    probes: Probes,
    every: Duration,
    hold: Duration,
    mut stop: watch::Receiver<bool>,
) -> (u64, u64, Option<String>) {
    let (mut opened, mut errors, mut first) = (0u64, 0u64, None);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let r = async {
            let mut ws = client::connect(addr, "/ws/caller", None).await?;
            client::send_json(&mut ws, &json!({"type": "start", "helpline": "children", "language": "ro"})).await?;
            let id = client::expect(&mut ws, Duration::from_secs(30), |e| match e {
                ServerEvent::Queued { contact_id, .. } => Some(contact_id.clone()),
                _ => None,
            })
            .await?;
            Ok::<_, anyhow::Error>((id, ws))
        }
        .await;
        match r {
            Ok((id, mut ws)) => {
                probes.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Instant::now());
                opened += 1;
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    let _ = client::send_json(&mut ws, &json!({"type": "end"})).await;
                    let _ = ws.close(None).await;
                });
            }
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| format!("probe: {e:#}"));
            }
        }
    }
    (opened, errors, first)
}

/// Runs the relay steps without, then with, S supervisors watching. Returns the baseline reports
/// (scenario `relay`) followed by one `supervisors` report per step.
pub async fn run(target: &Target, opts: &SupervisorOpts) -> anyhow::Result<Vec<Report>> {
    let base = relay::run(target, &opts.relay).await.context("relay without supervisors")?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let accounts = target.accounts(&format!("sup-{}-", &run[..8]), opts.supervisors, 1, Role::Supervisor).await?;
    let sockets: Vec<anyhow::Result<Ws>> = stream::iter(accounts.iter().enumerate())
        .map(|(i, a)| async move { target.staff_socket(a, "/ws/supervisor", opts.relay.sources.pick(i)).await })
        .buffered(32)
        .collect()
        .await;
    let sockets: Vec<Ws> = sockets.into_iter().collect::<anyhow::Result<_>>().context("connecting supervisors")?;
    let probes: Probes = Arc::default();
    let (stop_watch, stop_watch_rx) = watch::channel(false);
    let watchers: Vec<_> = sockets.into_iter().map(|ws| tokio::spawn(watch_board(ws, probes.clone(), stop_watch_rx.clone()))).collect();
    let ready = Arc::new(Notify::new());
    let mut ropts = opts.relay.clone();
    ropts.ready = Some(ready.clone());
    let (stop_probe, stop_probe_rx) = watch::channel(false);
    let prober = {
        let (probes, every, hold) = (probes.clone(), opts.probe_every, opts.probe_hold);
        let target_addr = target.addr;
        async move {
            ready.notified().await;
            probe(target_addr, probes, every, hold, stop_probe_rx).await
        }
    };
    let prober = tokio::spawn(prober);
    let with = relay::run(target, &ropts).await.context("relay with supervisors")?;
    let _ = stop_probe.send(true);
    let (probed, probe_errors, probe_error) = prober.await.context("probe task")?;
    // The last probe must have had time to reach one board (sent every second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_watch.send(true);
    let mut staleness = Hist::new();
    let mut board_age = Hist::new();
    let (mut seen, mut dashboards, mut errors, mut first_error) = (0usize, 0u64, probe_errors, probe_error);
    for w in watchers {
        let o = w.await.context("watcher task")?;
        staleness.add(&o.staleness);
        board_age.add(&o.board_age);
        seen += o.seen;
        dashboards += o.dashboards;
        errors += o.errors;
        if first_error.is_none() {
            first_error = o.first_error;
        }
    }
    let expected = probed as usize * opts.supervisors;
    let mut reports = base.clone();
    for (b, mut r) in base.iter().zip(with) {
        r.scenario = "supervisors".into();
        r.param("supervisors", opts.supervisors);
        r.latencies.insert("state -> board".into(), staleness.summary());
        r.latencies.insert("board age on receipt".into(), board_age.summary());
        r.count("probes", probed);
        r.count("dashboards", dashboards);
        r.count("unseen_by_supervisors", expected.saturating_sub(seen) as u64);
        *r.counters.entry("errors".into()).or_default() += errors;
        if let (Some(with), Some(without)) = (&r.server, &b.server) {
            r.figures.insert("server_cpu_without_pct".into(), without.cpu_pct);
            r.figures.insert("extra_server_cpu_points".into(), with.cpu_pct - without.cpu_pct);
            if without.cpu_pct > 0.0 {
                r.figures.insert("extra_server_cpu_rel_pct".into(), 100.0 * (with.cpu_pct - without.cpu_pct) / without.cpu_pct);
            }
        }
        if let Some(e) = &first_error {
            r.notes.push(format!("first supervisor/probe error: {e}"));
        }
        r.notes.push("staleness and board age are run-wide (all steps); CPU is per step, against the same step without supervisors".into());
        reports.push(r);
    }
    Ok(reports)
}

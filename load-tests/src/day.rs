//! `day`: a mixed day faster than real time — chats on `/ws/caller` and phone calls through a
//! telephone exchange's socket (`/ws/telephony`, see docs/telephony.md), arrivals following a daily
//! profile with an evening peak and a spike, callers who give up, counsellors who escalate.
//!
//! Each simulated hour lasts `hour` of real time; contacts arrive as a Poisson process at
//! `peak_rate × PROFILE[h]` per real second. Human times are given in real (compressed)
//! milliseconds: counsellors accept after `accept_delay`, handle a contact for an exponential time
//! of mean `handle`, escalate a share `escalate` of them; a caller's patience is exponential with
//! mean `patience` (a chat caller then sends `end`, the exchange `call_abandoned`).
//!
//! Measured end to end: answer time (chat: `start` sent → `connected` read by the caller; call:
//! `call_offered` sent → `connect` read by the exchange), service level (answered within
//! `sl_target` / offered) per hour and for the day, abandonment. Checked: every exchange event
//! acknowledged, every command acknowledged, no counsellor over capacity or on two calls, no error
//! frames other than the races a real day has (an accept of an offer the caller just left).
//! At the end a supervisor reads the server's own figures for the day (`dashboard` → `overall.today`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use futures_util::stream::{self, StreamExt};
use helpline::protocol::{ErrorCode, ServerEvent, TelephonyCommand};
use helpline::store::users::Role;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Sources, Ws};
use crate::relay::writer;
use crate::report::Report;
use crate::stats::Hist;
use crate::target::Target;

/// Relative arrival rate per hour of the day (1.0 = the peak): quiet night, a daytime plateau, the
/// evening peak (after school, after work) and a spike at 21h (a story on the evening news).
pub const PROFILE: [f64; 24] =
    [0.15, 0.1, 0.08, 0.06, 0.06, 0.08, 0.15, 0.25, 0.35, 0.4, 0.45, 0.45, 0.5, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 0.9, 1.6, 0.7, 0.35];

#[derive(Debug, Clone)]
pub struct DayOpts {
    pub counsellors: usize,
    /// Chats at once per counsellor (a call takes the whole counsellor).
    pub capacity: i64,
    /// Real time per simulated hour.
    pub hour: Duration,
    /// Simulated hours to run, from hour `first_hour`.
    pub hours: usize,
    pub first_hour: usize,
    /// Contacts per real second at the profile's 1.0.
    pub peak_rate: f64,
    /// Share of contacts that are phone calls.
    pub call_share: f64,
    pub accept_delay: (Duration, Duration),
    pub handle: Duration,
    pub patience: Duration,
    pub escalate: f64,
    /// Answered within this counts for the service level.
    pub sl_target: Duration,
    pub sources: Sources,
    /// Longest wait after the last arrival for every contact to finish.
    pub drain: Duration,
}

impl Default for DayOpts {
    fn default() -> Self {
        DayOpts {
            counsellors: 30,
            capacity: 2,
            hour: Duration::from_secs(2),
            hours: 24,
            first_hour: 0,
            peak_rate: 6.0,
            call_share: 0.4,
            accept_delay: (Duration::from_millis(200), Duration::from_millis(1500)),
            handle: Duration::from_secs(4),
            patience: Duration::from_secs(8),
            escalate: 0.05,
            sl_target: Duration::from_millis(1500),
            sources: Sources(vec![]),
            drain: Duration::from_secs(60),
        }
    }
}

/// What happened to one contact.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    hour: usize,
    call: bool,
    /// Answer time, or None when the caller gave up.
    answered: Option<Duration>,
}

#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    races: AtomicU64,
    over_capacity: AtomicU64,
    escalations: AtomicU64,
    escalated: AtomicU64,
    events_sent: AtomicU64,
    commands: AtomicU64,
    offers: AtomicU64,
}

struct Shared {
    counters: Counters,
    first_error: Mutex<Option<String>>,
    /// Event ids sent and not yet acknowledged by the server.
    unacked_events: Mutex<HashSet<String>>,
    /// Call id → who waits for its `connect`.
    calls: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Shared {
    fn error(&self, e: impl Into<String>) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(e.into());
        }
    }
}

fn exp(rng: &mut impl Rng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    mean.mul_f64(-u.ln())
}

fn uniform(rng: &mut impl Rng, (a, b): (Duration, Duration)) -> Duration {
    if b > a {
        a + (b - a).mul_f64(rng.gen::<f64>())
    } else {
        a
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The counsellor: accept each offer after a human delay; escalate some; end chats after the handle time.
async fn counsellor(ws: Ws, capacity: i64, opts: DayOpts, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (sink, mut rx) = ws.split();
    let (tx, wrx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(writer(sink, wrx));
    let _ = tx.send(json!({"type": "status", "status": "available"}).to_string());
    // Open conversations: contact id → is a call.
    let mut active: HashMap<String, bool> = HashMap::new();
    loop {
        let m = tokio::select! {
            m = rx.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            other => {
                shared.error(format!("counsellor socket ended: {other:?}"));
                break;
            }
        };
        let ev = match client::parse(text.as_str()) {
            Ok(ev) => ev,
            Err(e) => {
                shared.error(e.to_string());
                continue;
            }
        };
        match ev {
            ServerEvent::Offer { contact_id, .. } => {
                shared.counters.offers.fetch_add(1, Ordering::Relaxed);
                let delay = uniform(&mut rand::thread_rng(), opts.accept_delay);
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(json!({"type": "accept", "contact_id": contact_id}).to_string());
                });
            }
            ServerEvent::Assigned { contact_id, channel, .. } => {
                let call = channel == "call";
                active.insert(contact_id.clone(), call);
                // At most one call, and never more conversations than the capacity.
                let calls = active.values().filter(|c| **c).count();
                if calls > 1 || active.len() as i64 > capacity {
                    shared.counters.over_capacity.fetch_add(1, Ordering::Relaxed);
                }
                let (escalate, handle) = {
                    let mut rng = rand::thread_rng();
                    (rng.gen_bool(opts.escalate.clamp(0.0, 1.0)), exp(&mut rng, opts.handle))
                };
                if escalate {
                    shared.counters.escalations.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(
                        json!({"type": "escalate", "contact_id": contact_id, "kind": "child_protection", "risk": "medium", "reason": "load test: day scenario"})
                            .to_string(),
                    );
                }
                // Calls end from the exchange (the caller hangs up); chats are ended by the counsellor.
                if !call {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(handle).await;
                        let _ = tx.send(json!({"type": "end", "contact_id": contact_id}).to_string());
                    });
                }
            }
            ServerEvent::ContactEnded { contact_id, .. } => {
                active.remove(&contact_id);
            }
            // The ended contact's slot is in wrap-up: the counsellor's after-contact work is part
            // of the handle time here (compressed), so she says she is ready at once.
            ServerEvent::WrapUp { contact_id, .. } => {
                let _ = tx.send(json!({"type": "ready", "contact_id": contact_id}).to_string());
            }
            ServerEvent::Escalated { .. } => {
                shared.counters.escalated.fetch_add(1, Ordering::Relaxed);
            }
            ServerEvent::Error { code, message, .. } => match code {
                // A real day has these: the caller left while the offer rang, or the call ended
                // before the escalation reached the server.
                ErrorCode::NoSuchOffer | ErrorCode::UnknownContact => {
                    shared.counters.races.fetch_add(1, Ordering::Relaxed);
                }
                _ => shared.error(format!("counsellor: error {code:?}: {message}")),
            },
            _ => {}
        }
    }
}

/// The exchange's socket: acknowledges every command, hands `connect`s to the waiting calls.
async fn exchange_reader(
    mut rx: futures_util::stream::SplitStream<Ws>,
    tx: mpsc::UnboundedSender<String>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let m = tokio::select! {
            m = rx.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            other => {
                shared.error(format!("exchange socket ended: {other:?}"));
                break;
            }
        };
        let cmd: TelephonyCommand = match serde_json::from_str(text.as_str()) {
            Ok(c) => c,
            Err(e) => {
                shared.error(format!("exchange: unexpected frame {text}: {e}"));
                continue;
            }
        };
        let ack_command = |id: &str| {
            shared.counters.commands.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(json!({"type": "command_ack", "command_id": id}).to_string());
        };
        match cmd {
            TelephonyCommand::Ack { event_id } => {
                shared.unacked_events.lock().unwrap_or_else(|e| e.into_inner()).remove(&event_id);
            }
            TelephonyCommand::Connect { command_id, call_id, .. } => {
                ack_command(&command_id);
                if let Some(w) = shared.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&call_id) {
                    let _ = w.send(());
                }
            }
            TelephonyCommand::Cancel { command_id, .. }
            | TelephonyCommand::Hold { command_id, .. }
            | TelephonyCommand::Unhold { command_id, .. }
            | TelephonyCommand::Hangup { command_id, .. } => ack_command(&command_id),
            TelephonyCommand::Pong {} => {}
            TelephonyCommand::Error { code, message, .. } => shared.error(format!("exchange: error {code:?}: {message}")),
            // Nobody is blocked in this scenario: a refused call is a fault.
            TelephonyCommand::Reject { call_id, reason } => shared.error(format!("exchange: call {call_id} rejected: {reason}")),
        }
    }
}

struct Exchange {
    tx: mpsc::UnboundedSender<String>,
    shared: Arc<Shared>,
    next: AtomicU64,
}

impl Exchange {
    fn event(&self, mut v: serde_json::Value) {
        let id = format!("day-{}", self.next.fetch_add(1, Ordering::Relaxed));
        v["event_id"] = json!(id);
        self.shared.unacked_events.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        self.shared.counters.events_sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(v.to_string());
    }
}

async fn one_call(ex: Arc<Exchange>, i: u64, hour: usize, patience: Duration, handle: Duration) -> Outcome {
    let call_id = format!("day-call-{i}");
    let (tx, rx) = oneshot::channel();
    ex.shared.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(call_id.clone(), tx);
    let t0 = Instant::now();
    ex.event(json!({"type": "call_offered", "call_id": call_id, "dialled": "116111", "caller": format!("+37369{:06}", i % 1_000_000), "language": "ro", "at": rfc3339_now()}));
    match tokio::time::timeout(patience, rx).await {
        Ok(Ok(())) => {
            let answered = t0.elapsed();
            // The counsellor's phone picks up; the caller hangs up after the conversation.
            tokio::time::sleep(Duration::from_millis(20)).await;
            ex.event(json!({"type": "call_answered", "call_id": call_id, "at": rfc3339_now()}));
            tokio::time::sleep(handle).await;
            ex.event(json!({"type": "call_ended", "call_id": call_id, "by": "caller", "at": rfc3339_now()}));
            Outcome { hour, call: true, answered: Some(answered) }
        }
        _ => {
            ex.shared.calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&call_id);
            ex.event(json!({"type": "call_abandoned", "call_id": call_id, "at": rfc3339_now()}));
            Outcome { hour, call: true, answered: None }
        }
    }
}

async fn one_chat(addr: SocketAddr, source: Option<std::net::IpAddr>, hour: usize, patience: Duration, shared: Arc<Shared>) -> Outcome {
    let gave_up = Outcome { hour, call: false, answered: None };
    let t0 = Instant::now();
    let mut ws = match client::connect(addr, "/ws/caller", source).await {
        Ok(ws) => ws,
        Err(e) => {
            shared.error(format!("chat caller: {e:#}"));
            return gave_up;
        }
    };
    if let Err(e) = client::send_json(&mut ws, &json!({"type": "start", "helpline": "children", "language": "ro"})).await {
        shared.error(format!("chat caller: {e:#}"));
        return gave_up;
    }
    let connected = client::expect(&mut ws, patience, |e| matches!(e, ServerEvent::Connected { .. }).then_some(())).await;
    match connected {
        Ok(()) => {
            let answered = t0.elapsed();
            // The caller stays until the counsellor ends the conversation.
            let ended =
                client::expect(&mut ws, Duration::from_secs(600), |e| matches!(e, ServerEvent::ContactEnded { .. }).then_some(())).await;
            if let Err(e) = ended {
                shared.error(format!("chat caller after connected: {e:#}"));
            }
            Outcome { hour, call: false, answered: Some(answered) }
        }
        Err(e) if e.to_string().contains("timed out") => {
            let _ = client::send_json(&mut ws, &json!({"type": "end"})).await;
            let _ = ws.close(None).await;
            gave_up
        }
        Err(e) => {
            shared.error(format!("chat caller: {e:#}"));
            gave_up
        }
    }
}

/// The server's own figures for the day, read from one supervisor's first `dashboard`.
async fn server_figures(target: &Target) -> anyhow::Result<serde_json::Value> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let sup = target.accounts(&format!("day-sup-{}-", &run[..8]), 1, 1, Role::Supervisor).await?;
    let mut ws = target.staff_socket(&sup[0], "/ws/supervisor", None).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| anyhow!("no dashboard within 30 s"))?;
        if let Some(Ok(Message::Text(t))) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "dashboard" {
                return Ok(v["overall"]["today"].clone());
            }
        }
    }
}

pub async fn run(target: &Target, opts: &DayOpts) -> anyhow::Result<Report> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        first_error: Mutex::new(None),
        unacked_events: Mutex::new(HashSet::new()),
        calls: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Counsellors, each with an extension so they take calls too.
    let people = target.counsellors(&format!("day-{}-", &run[..8]), opts.counsellors, opts.capacity).await?;
    for (i, c) in people.iter().enumerate() {
        target.set_extension(c, &format!("{}", 2000 + i)).await?;
    }
    let sockets: Vec<anyhow::Result<Ws>> =
        stream::iter(people.iter().enumerate()).map(|(i, c)| target.agent_socket(c, opts.sources.pick(i))).buffered(32).collect().await;
    let mut agents = Vec::new();
    for ws in sockets {
        let ws = ws.context("connecting counsellors")?;
        agents.push(tokio::spawn(counsellor(ws, opts.capacity, opts.clone(), shared.clone(), stop_rx.clone())));
    }
    // The exchange.
    let token = target.gateway(&format!("day-{}", &run[..8])).await?;
    let auth = format!("Bearer {token}");
    let ws = client::connect_with(target.addr, "/ws/telephony?command_acks=true", None, &[("Authorization", auth.as_str())])
        .await
        .context("exchange socket")?;
    let (sink, rx) = ws.split();
    let (etx, erx) = mpsc::unbounded_channel();
    tokio::spawn(writer(sink, erx));
    let ex_reader = tokio::spawn(exchange_reader(rx, etx.clone(), shared.clone(), stop_rx.clone()));
    let ex = Arc::new(Exchange { tx: etx, shared: shared.clone(), next: AtomicU64::new(0) });
    // Let the counsellors' `available` land before the first arrival.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = target.meter();
    let started = Instant::now();
    let mut contacts = Vec::new();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut i = 0u64;
    for h in 0..opts.hours {
        let hour = (opts.first_hour + h) % 24;
        let rate = opts.peak_rate * PROFILE[hour];
        let hour_start = started + opts.hour * h as u32;
        let hour_end = hour_start + opts.hour;
        let mut t = hour_start;
        loop {
            if rate <= 0.0 {
                break;
            }
            t += exp(&mut rng, Duration::from_secs_f64(1.0 / rate));
            if t >= hour_end {
                break;
            }
            tokio::time::sleep_until(t.into()).await;
            let patience = exp(&mut rng, opts.patience);
            if rng.gen_bool(opts.call_share.clamp(0.0, 1.0)) {
                let handle = exp(&mut rng, opts.handle);
                contacts.push(tokio::spawn(one_call(ex.clone(), i, hour, patience, handle)));
            } else {
                contacts.push(tokio::spawn(one_chat(target.addr, opts.sources.pick(i as usize), hour, patience, shared.clone())));
            }
            i += 1;
        }
    }
    let day_s = started.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    let drain_until = tokio::time::Instant::now() + opts.drain;
    let mut unfinished = 0u64;
    for c in contacts {
        match tokio::time::timeout_at(drain_until, c).await {
            Ok(Ok(o)) => outcomes.push(o),
            _ => unfinished += 1,
        }
    }
    // Acks of the last events.
    let ack_deadline = Instant::now() + Duration::from_secs(10);
    while !shared.unacked_events.lock().unwrap_or_else(|e| e.into_inner()).is_empty() && Instant::now() < ack_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_usage = server.finish();
    let figures = server_figures(target).await;
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = a.await;
    }
    let _ = ex_reader.await;

    let mut rep = Report::new("day", &target.label);
    rep.param("counsellors", opts.counsellors)
        .param("capacity", opts.capacity)
        .param("hours", opts.hours)
        .param("hour_s", opts.hour.as_secs_f64())
        .param("peak_rate", opts.peak_rate)
        .param("call_share", opts.call_share)
        .param("handle_ms", opts.handle.as_millis() as u64)
        .param("patience_ms", opts.patience.as_millis() as u64)
        .param("sl_target_ms", opts.sl_target.as_millis() as u64);
    rep.duration_s = day_s;
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.answered.is_some()).collect();
    let in_target = |o: &Outcome| o.answered.is_some_and(|a| a <= opts.sl_target);
    rep.throughput = answered.len() as f64 / day_s.max(1e-9);
    rep.throughput_unit = "answered contacts/s".into();
    for (name, pred) in [("answer (all)", None), ("answer (chat)", Some(false)), ("answer (call)", Some(true))] {
        let mut h = Hist::new();
        for o in answered.iter().filter(|o| pred.is_none_or(|c| o.call == c)) {
            if let Some(a) = o.answered {
                h.record(a);
            }
        }
        rep.latencies.insert(name.into(), h.summary());
    }
    let calls = outcomes.iter().filter(|o| o.call).count() as u64;
    rep.count("arrivals", i);
    rep.count("chats", outcomes.len() as u64 - calls);
    rep.count("calls", calls);
    rep.count("answered", answered.len() as u64);
    rep.count("abandoned", (outcomes.len() - answered.len()) as u64);
    rep.count("unfinished", unfinished);
    let c = &shared.counters;
    rep.count("offers", c.offers.load(Ordering::Relaxed));
    rep.count("escalations", c.escalations.load(Ordering::Relaxed));
    rep.count("escalated", c.escalated.load(Ordering::Relaxed));
    rep.count("races", c.races.load(Ordering::Relaxed));
    rep.count("over_capacity", c.over_capacity.load(Ordering::Relaxed));
    rep.count("events_sent", c.events_sent.load(Ordering::Relaxed));
    rep.count("commands_acked", c.commands.load(Ordering::Relaxed));
    let unacked_events = shared.unacked_events.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    // Unacknowledged exchange events and contacts that never finished are errors.
    rep.count("unacked_events", unacked_events);
    rep.count("errors", c.errors.load(Ordering::Relaxed) + unacked_events + unfinished);
    let sl = |os: &[&Outcome]| if os.is_empty() { 0.0 } else { os.iter().filter(|o| in_target(o)).count() as f64 / os.len() as f64 };
    let all: Vec<&Outcome> = outcomes.iter().collect();
    rep.figures.insert("service_level".into(), sl(&all));
    rep.figures
        .insert("abandonment_rate".into(), if all.is_empty() { 0.0 } else { (all.len() - answered.len()) as f64 / all.len() as f64 });
    for h in 0..24 {
        let in_hour: Vec<&Outcome> = outcomes.iter().filter(|o| o.hour == h).collect();
        if !in_hour.is_empty() {
            rep.figures.insert(format!("service_level_h{h:02}"), sl(&in_hour));
        }
    }
    match figures {
        Ok(v) => {
            for k in ["offered", "answered", "answered_in_target", "abandoned", "service_level", "asa_ms"] {
                if let Some(x) = v[k].as_f64() {
                    rep.figures.insert(format!("server_today_{k}"), x);
                }
            }
        }
        Err(e) => rep.notes.push(format!("the server's own figures could not be read: {e:#}")),
    }
    rep.server = Some(server_usage);
    if let Some(e) = shared.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        rep.notes.push(format!("first error: {e}"));
    }
    rep.notes.push(format!(
        "service level: answered within {} ms of real time / offered (human times are compressed; the server's own figures use its 15 s target)",
        opts.sl_target.as_millis()
    ));
    Ok(rep)
}

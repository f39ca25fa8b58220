//! `routing`: M counsellors available, contacts arriving as a Poisson process at λ/s, counsellors
//! accepting after a human-like delay and ending each conversation after a hold time.
//!
//! Measured: contact start → `offer` on the counsellor's socket, `accept` sent → `connected` on the
//! caller's socket, start → `queued`, start → `connected`, assignments/s. Checked: no contact
//! offered while an earlier offer of it is still ringing or after it was assigned (double offer),
//! no counsellor rung twice at once (double ring), no counsellor over capacity.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use helpline::protocol::ServerEvent;
use rand::Rng;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Sources};
use crate::procfs::Meter;
use crate::report::Report;
use crate::stats::Hist;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct RoutingOpts {
    pub counsellors: usize,
    pub capacity: i64,
    /// λ: contacts per second (Poisson arrivals).
    pub rate: f64,
    pub duration: Duration,
    /// The counsellor accepts after a delay drawn uniformly from this range.
    pub accept_delay: (Duration, Duration),
    /// The counsellor ends the conversation this long after `assigned`.
    pub hold: Duration,
    pub sources: Sources,
    pub setup_concurrency: usize,
    /// Longest wait after the last arrival for the conversations to end.
    pub drain: Duration,
}

impl Default for RoutingOpts {
    fn default() -> Self {
        RoutingOpts {
            counsellors: 100,
            capacity: 3,
            rate: 10.0,
            duration: Duration::from_secs(10),
            accept_delay: (Duration::from_millis(300), Duration::from_millis(1500)),
            hold: Duration::from_secs(3),
            sources: Sources(vec![]),
            setup_concurrency: 32,
            drain: Duration::from_secs(30),
        }
    }
}

const HELPLINES: &[(&str, &[&str])] =
    &[("children", &["ro", "ru", "uk", "en"]), ("disability", &["ro", "ru", "uk", "en"]), ("family_violence", &["ro", "ru", "uk"])];

#[derive(Default, Debug)]
struct Rec {
    start: Option<Instant>,
    queued: Option<Instant>,
    first_offer: Option<Instant>,
    accept_sent: Option<Instant>,
    assigned: Option<Instant>,
    connected: Option<Instant>,
    offers: u32,
    revokes: u32,
    ringing: bool,
    is_assigned: bool,
}

#[derive(Default)]
struct CState {
    ringing: Option<String>,
    accepting: HashSet<String>,
    active: HashSet<String>,
}

#[derive(Default)]
struct Counters {
    offers: AtomicU64,
    revoked: AtomicU64,
    assigned: AtomicU64,
    ended: AtomicU64,
    double_offers: AtomicU64,
    double_rings: AtomicU64,
    over_capacity: AtomicU64,
    errors: AtomicU64,
    unanswered: AtomicU64,
    arrivals: AtomicU64,
}

struct Shared {
    recs: Mutex<HashMap<String, Rec>>,
    c: Counters,
    first_error: Mutex<Option<String>>,
    capacity: usize,
}

impl Shared {
    fn rec<T>(&self, contact: &str, f: impl FnOnce(&mut Rec) -> T) -> T {
        let mut g = self.recs.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(contact.to_string()).or_default())
    }
    fn error(&self, e: String) {
        self.c.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    }
}

fn lock_state(s: &Mutex<CState>) -> std::sync::MutexGuard<'_, CState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

async fn counsellor(idx: usize, ws: client::Ws, shared: Arc<Shared>, opts: RoutingOpts, mut stop: watch::Receiver<bool>) {
    let (mut sink, mut rx) = ws.split();
    let (tx, mut wrx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(m) = wrx.recv().await {
            if sink.send(Message::Text(m.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let state = Arc::new(Mutex::new(CState::default()));
    loop {
        let next = tokio::select! {
            m = rx.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                shared.error(format!("counsellor {idx}: socket closed"));
                break;
            }
            Some(Err(e)) => {
                shared.error(format!("counsellor {idx}: {e}"));
                break;
            }
            Some(Ok(_)) => continue,
        };
        let now = Instant::now();
        let ev = match client::parse(text.as_str()) {
            Ok(e) => e,
            Err(e) => {
                shared.error(e.to_string());
                continue;
            }
        };
        match ev {
            ServerEvent::Offer { contact_id, .. } => {
                shared.c.offers.fetch_add(1, Ordering::Relaxed);
                let double = shared.rec(&contact_id, |r| {
                    r.offers += 1;
                    r.first_offer.get_or_insert(now);
                    // Offered after it was assigned. (An offer still ringing elsewhere is checked at the end,
                    // by count, because the revoke and the next offer travel on different sockets.)
                    let double = r.is_assigned;
                    r.ringing = true;
                    double
                });
                if double {
                    shared.c.double_offers.fetch_add(1, Ordering::Relaxed);
                }
                {
                    let mut s = lock_state(&state);
                    if s.ringing.is_some() {
                        shared.c.double_rings.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.active.len() + s.accepting.len() >= shared.capacity {
                        shared.c.over_capacity.fetch_add(1, Ordering::Relaxed);
                    }
                    s.ringing = Some(contact_id.clone());
                }
                let delay = if opts.accept_delay.1 > opts.accept_delay.0 {
                    rand::thread_rng().gen_range(opts.accept_delay.0..opts.accept_delay.1)
                } else {
                    opts.accept_delay.0
                };
                let (state, shared, tx) = (state.clone(), shared.clone(), tx.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let go = {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        if s.ringing.as_deref() == Some(contact_id.as_str()) {
                            s.ringing = None;
                            s.accepting.insert(contact_id.clone());
                            true
                        } else {
                            false
                        }
                    };
                    if go {
                        shared.rec(&contact_id, |r| r.accept_sent = Some(Instant::now()));
                        let _ = tx.send(json!({"type": "accept", "contact_id": contact_id}).to_string());
                    }
                });
            }
            ServerEvent::OfferRevoked { contact_id, .. } => {
                shared.c.revoked.fetch_add(1, Ordering::Relaxed);
                shared.rec(&contact_id, |r| {
                    r.ringing = false;
                    r.revokes += 1;
                });
                let mut s = lock_state(&state);
                if s.ringing.as_deref() == Some(contact_id.as_str()) {
                    s.ringing = None;
                }
                s.accepting.remove(&contact_id);
            }
            ServerEvent::Assigned { contact_id, .. } => {
                shared.c.assigned.fetch_add(1, Ordering::Relaxed);
                shared.rec(&contact_id, |r| {
                    r.ringing = false;
                    r.is_assigned = true;
                    r.assigned = Some(now);
                });
                {
                    let mut s = lock_state(&state);
                    s.accepting.remove(&contact_id);
                    s.active.insert(contact_id.clone());
                    if s.active.len() > shared.capacity {
                        shared.c.over_capacity.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let (tx, hold) = (tx.clone(), opts.hold);
                let state = state.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    // Free the slot in our view before the server does, so an offer that follows the end
                    // (sent at once, while `contact_ended` comes later through the relay) is not miscounted.
                    lock_state(&state).active.remove(&contact_id);
                    let _ = tx.send(json!({"type": "end", "contact_id": contact_id}).to_string());
                });
            }
            ServerEvent::ContactEnded { contact_id, .. } => {
                lock_state(&state).active.remove(&contact_id);
            }
            // The ended contact's slot is in wrap-up: this counsellor's after-contact work is done at
            // once, so she says she is ready (else the slot waits for the helpline's limit).
            ServerEvent::WrapUp { contact_id, .. } => {
                let _ = tx.send(json!({"type": "ready", "contact_id": contact_id}).to_string());
            }
            ServerEvent::Error { code, message, reference, .. } => {
                shared.error(format!("counsellor {idx}: {code:?}: {message} ({reference:?})"));
            }
            ServerEvent::Reconnect { .. } => shared.error("server asked to reconnect".into()),
            _ => {}
        }
    }
}

fn c_double_offers_add(shared: &Shared, n: u64) {
    shared.c.double_offers.fetch_add(n, Ordering::Relaxed);
}

async fn caller(i: u64, target_addr: std::net::SocketAddr, source: Option<std::net::IpAddr>, shared: Arc<Shared>, within: Duration) {
    let (helpline, language) = {
        let mut rng = rand::thread_rng();
        let (h, langs) = HELPLINES[rng.gen_range(0..HELPLINES.len())];
        (h, langs[rng.gen_range(0..langs.len())])
    };
    let mut ws = match client::connect(target_addr, "/ws/caller", source).await {
        Ok(ws) => ws,
        Err(e) => return shared.error(format!("caller {i}: {e:#}")),
    };
    let start = Instant::now();
    if let Err(e) = client::send_json(&mut ws, &json!({"type": "start", "helpline": helpline, "language": language})).await {
        return shared.error(format!("caller {i}: {e:#}"));
    }
    let deadline = start + within;
    let mut contact: Option<String> = None;
    let mut connected = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match client::recv(&mut ws, left).await {
            Ok(ev) => ev,
            Err(e) => {
                if e.to_string().contains("timed out") {
                    shared.c.unanswered.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.error(format!("caller {i}: {e:#}"));
                }
                break;
            }
        };
        let now = Instant::now();
        match ev {
            ServerEvent::Queued { contact_id, .. } => {
                shared.rec(&contact_id, |r| {
                    r.start = Some(start);
                    r.queued = Some(now);
                });
                contact = Some(contact_id);
            }
            ServerEvent::Connected { contact_id, .. } => {
                connected = true;
                shared.rec(&contact_id, |r| r.connected = Some(now));
            }
            ServerEvent::ContactEnded { .. } => {
                if connected {
                    shared.c.ended.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.error(format!("caller {i}: contact {contact:?} ended before it was answered"));
                }
                break;
            }
            ServerEvent::Error { code, message, .. } => {
                shared.error(format!("caller {i}: {code:?}: {message}"));
                break;
            }
            ServerEvent::Reconnect { .. } => {
                shared.error("server asked to reconnect".into());
                break;
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
}

pub async fn run(target: &Target, opts: &RoutingOpts) -> anyhow::Result<Report> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let setup_started = Instant::now();
    let counsellors = target.counsellors(&format!("routing-{}-", &run[..8]), opts.counsellors, opts.capacity).await?;
    let sockets: Vec<anyhow::Result<client::Ws>> = stream::iter(counsellors.iter().enumerate())
        .map(|(i, c)| async move {
            // Cluster: counsellor i on node i mod N (callers are spread the same way, shifted by one).
            let mut ws = target.agent_socket_on(target.node(i), c, opts.sources.pick(i)).await?;
            client::send_json(&mut ws, &json!({"type": "status", "status": "available"})).await?;
            client::expect(&mut ws, Duration::from_secs(30), |e| matches!(e, ServerEvent::Status { .. }).then_some(())).await?;
            Ok(ws)
        })
        .buffered(opts.setup_concurrency)
        .collect()
        .await;
    let sockets: Vec<client::Ws> = sockets.into_iter().collect::<anyhow::Result<_>>().context("connecting counsellors")?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let shared = Arc::new(Shared {
        recs: Mutex::new(HashMap::new()),
        c: Counters::default(),
        first_error: Mutex::new(None),
        capacity: usize::try_from(opts.capacity.max(1)).unwrap_or(1),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut agents = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        agents.push(tokio::spawn(counsellor(i, ws, shared.clone(), opts.clone(), stop_rx.clone())));
    }
    let server = target.meter();
    let me = Meter::start(std::process::id());
    let start = Instant::now();
    let mut callers = Vec::new();
    let mut next = Duration::ZERO;
    let mut i = 0u64;
    let within = opts.hold + opts.accept_delay.1 + Duration::from_secs(30);
    loop {
        let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
        next += Duration::from_secs_f64(-u.ln() / opts.rate.max(1e-9));
        if next >= opts.duration {
            break;
        }
        tokio::time::sleep_until((start + next).into()).await;
        shared.c.arrivals.fetch_add(1, Ordering::Relaxed);
        // Cluster: caller i on node i+1 mod N, so most offers and accepts cross nodes.
        let node = target.node(i as usize + 1);
        callers.push(tokio::spawn(caller(i, node, opts.sources.pick(i as usize), shared.clone(), within)));
        i += 1;
    }
    let arrivals_s = start.elapsed().as_secs_f64();
    let assigned_in_window = shared.c.assigned.load(Ordering::Relaxed);
    let drain = tokio::time::Instant::now() + opts.drain.max(within);
    for c in callers {
        if tokio::time::timeout_at(drain, c).await.is_err() {
            shared.c.unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }
    let server_usage = server.finish();
    let client_usage = me.finish();
    // Let the last `contact_ended` frames reach the counsellors, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    for a in agents {
        a.await.map_err(|e| anyhow!("counsellor task: {e}"))?;
    }

    let (mut to_offer, mut accept_connected, mut to_queued, mut to_connected) = (Hist::new(), Hist::new(), Hist::new(), Hist::new());
    let recs = std::mem::take(&mut *shared.recs.lock().unwrap_or_else(|p| p.into_inner()));
    let mut never_offered = 0u64;
    for r in recs.values() {
        // Every offer but the last must have been revoked (expired, declined, …) before the next.
        let extra = u64::from(r.offers.saturating_sub(r.revokes + 1));
        c_double_offers_add(&shared, extra);
        let Some(s) = r.start else { continue };
        if let Some(q) = r.queued {
            to_queued.record(q.saturating_duration_since(s));
        }
        match r.first_offer {
            Some(o) => to_offer.record(o.saturating_duration_since(s)),
            None => never_offered += 1,
        }
        if let (Some(a), Some(c)) = (r.accept_sent, r.connected) {
            accept_connected.record(c.saturating_duration_since(a));
        }
        if let Some(c) = r.connected {
            to_connected.record(c.saturating_duration_since(s));
        }
    }
    let c = &shared.c;
    let mut rep = Report::new("routing", &target.label);
    rep.param("counsellors", opts.counsellors)
        .param("capacity", opts.capacity)
        .param("rate", opts.rate)
        .param("duration_s", opts.duration.as_secs_f64())
        .param("accept_delay_ms", format!("{}..{}", opts.accept_delay.0.as_millis(), opts.accept_delay.1.as_millis()))
        .param("hold_ms", opts.hold.as_millis() as u64);
    rep.duration_s = arrivals_s;
    rep.throughput = assigned_in_window as f64 / arrivals_s.max(1e-9);
    rep.throughput_unit = "assignments/s".into();
    rep.latencies.insert("start->offer".into(), to_offer.summary());
    rep.latencies.insert("accept->connected".into(), accept_connected.summary());
    rep.latencies.insert("start->queued".into(), to_queued.summary());
    rep.latencies.insert("start->connected".into(), to_connected.summary());
    rep.count("arrivals", c.arrivals.load(Ordering::Relaxed));
    rep.count("offers", c.offers.load(Ordering::Relaxed));
    rep.count("revoked", c.revoked.load(Ordering::Relaxed));
    rep.count("assigned", c.assigned.load(Ordering::Relaxed));
    rep.count("ended", c.ended.load(Ordering::Relaxed));
    rep.count("never_offered", never_offered);
    rep.count("unanswered", c.unanswered.load(Ordering::Relaxed));
    rep.count("double_offers", c.double_offers.load(Ordering::Relaxed));
    rep.count("double_rings", c.double_rings.load(Ordering::Relaxed));
    rep.count("over_capacity", c.over_capacity.load(Ordering::Relaxed));
    rep.count("errors", c.errors.load(Ordering::Relaxed));
    rep.figures.insert("setup_s".into(), setup_s);
    rep.figures.insert("assignments_per_s_overall".into(), c.assigned.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64());
    rep.server = Some(server_usage);
    rep.client = Some(client_usage);
    if let Some(e) = shared.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        rep.notes.push(format!("first error: {e}"));
    }
    Ok(rep)
}

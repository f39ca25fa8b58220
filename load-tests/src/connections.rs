//! `connections`: K idle caller sockets, each with a started contact; the server's RSS per socket;
//! then a reconnect storm: every socket drops at once and resumes; time until all are back.
//!
//! Phases: (1) K sockets connected, no contact: RSS per bare socket; (2) each starts a contact and
//! sends one message (acked as seq 1): RSS per socket with its contact; (3) all drop (TCP closed
//! without a close frame, like a phone losing its network) and reconnect at once with
//! `resume{last_seq: 0}`: each must get `resumed`, then its message seq 1 exactly once, then a new
//! message must be acked as seq 2. Lost = seq 1 missing or seq 2 not acked; duplicated = seq 1 twice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use helpline::protocol::ServerEvent;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Sources, Ws};
use crate::procfs::{self, Meter};
use crate::report::Report;
use crate::stats::Hist;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct ConnOpts {
    pub sockets: usize,
    pub sources: Sources,
    /// Connections (or starts) in flight at once while building up.
    pub concurrency: usize,
    /// Reconnects in flight at once during the storm (the server's accept backlog is finite).
    pub storm_concurrency: usize,
    /// Pause before reading RSS, so the server's allocator settles.
    pub settle: Duration,
    pub storm: bool,
}

impl Default for ConnOpts {
    fn default() -> Self {
        ConnOpts {
            sockets: 1000,
            sources: Sources::loopback(4),
            concurrency: 200,
            storm_concurrency: 512,
            settle: Duration::from_secs(2),
            storm: true,
        }
    }
}

#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    started: AtomicU64,
    resumed: AtomicU64,
    /// Tasks finished with a failure (counted in every phase's wait).
    failed: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    errors: AtomicU64,
}

struct Shared {
    c: Counts,
    storm_at: Mutex<Option<Instant>>,
    resume_lat: Mutex<Hist>,
    last_resume: Mutex<Option<Instant>>,
    first_error: Mutex<Option<String>>,
    messages: bool,
}

impl Shared {
    fn fail(&self, e: String) {
        self.c.failed.fetch_add(1, Ordering::Relaxed);
        self.c.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    }
}

/// A frame read while a socket waits: an error frame or a closed socket ends the wait.
fn checked(m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> anyhow::Result<()> {
    match m {
        Some(Ok(Message::Text(t))) => {
            if let Ok(ServerEvent::Error { code, message, .. }) = client::parse(t.as_str()) {
                anyhow::bail!("error frame {code:?}: {message}");
            }
            Ok(())
        }
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => anyhow::bail!("socket error: {e}"),
        None => anyhow::bail!("socket closed"),
    }
}

/// Reads (and so answers pings) until the phase reaches `until`.
async fn idle(ws: &mut Ws, phase: &mut watch::Receiver<u8>, until: u8) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            m = ws.next() => checked(m)?,
            r = phase.wait_for(|p| *p >= until) => { r?; return Ok(()); }
        }
    }
}

/// Waits for a permit while reading the socket (and so answering pings): a socket left unread for
/// longer than the server's idle timeout (45 s) is closed by the server.
async fn permit_reading<'a>(ws: &mut Ws, sem: &'a Semaphore) -> anyhow::Result<tokio::sync::SemaphorePermit<'a>> {
    let acquire = sem.acquire();
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            p = &mut acquire => return Ok(p?),
            m = ws.next() => checked(m)?,
        }
    }
}

#[allow(clippy::too_many_arguments)] // one socket's whole life; the arguments are its scenario's knobs
async fn life(
    i: usize,
    addr: SocketAddr,
    sources: Sources,
    sem: Arc<Semaphore>,
    storm_sem: Arc<Semaphore>,
    mut phase: watch::Receiver<u8>,
    shared: Arc<Shared>,
    k: usize,
) {
    let t = Duration::from_secs(60);
    let mut ws = {
        let _p = sem.acquire().await;
        match client::connect(addr, "/ws/caller", sources.pick(i)).await {
            Ok(ws) => ws,
            Err(e) => return shared.fail(format!("connect {i}: {e:#}")),
        }
    };
    shared.c.connected.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = idle(&mut ws, &mut phase, 1).await {
        return shared.fail(format!("socket {i} (idle): {e:#}"));
    }
    // Phase 1: start a contact (and write once). Waiting for a turn can take longer than the server's
    // idle timeout (19,000 sockets on a busy machine): keep reading, so its pings are answered.
    let token = {
        let _p = match permit_reading(&mut ws, &sem).await {
            Ok(p) => p,
            Err(e) => return shared.fail(format!("socket {i} (waiting to start): {e:#}")),
        };
        let r: anyhow::Result<String> = async {
            client::send_json(&mut ws, &json!({"type": "start", "helpline": "children", "language": "ro"})).await?;
            let token = client::expect(&mut ws, t, |e| match e {
                ServerEvent::Queued { resume_token, .. } => Some(resume_token.clone()),
                _ => None,
            })
            .await?;
            if shared.messages {
                client::send_json(&mut ws, &json!({"type": "message", "client_id": "m1", "text": "are you there?"})).await?;
                let seq = client::expect(&mut ws, t, |e| match e {
                    ServerEvent::Ack { seq, .. } => Some(*seq),
                    _ => None,
                })
                .await?;
                anyhow::ensure!(seq == 1, "first message acked as seq {seq}");
            }
            Ok(token)
        }
        .await;
        match r {
            Ok(t) => t,
            Err(e) => return shared.fail(format!("start {i}: {e:#}")),
        }
    };
    shared.c.started.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = idle(&mut ws, &mut phase, 2).await {
        return shared.fail(format!("socket {i} (idle with contact): {e:#}"));
    }
    // Without a storm the run goes from phase 1 straight to 3: end the contact, nothing to resume.
    if *phase.borrow() >= 3 {
        let _ = client::send_json(&mut ws, &json!({"type": "end"})).await;
        let _ = ws.close(None).await;
        return;
    }
    // Phase 2: the storm. Drop the TCP connection without a close frame.
    drop(ws);
    let r: anyhow::Result<Ws> = async {
        let mut ws = {
            let _p = storm_sem.acquire().await;
            let mut ws = client::connect(addr, "/ws/caller", sources.pick(i + k)).await?;
            client::send_json(&mut ws, &json!({"type": "resume", "resume_token": token, "last_seq": 0})).await?;
            client::expect(&mut ws, t, |e| matches!(e, ServerEvent::Resumed { .. }).then_some(())).await?;
            ws
        };
        if shared.messages {
            let mut seen1 = 0;
            // Replay: seq 1 once.
            let first = client::expect(&mut ws, t, |e| match e {
                ServerEvent::Message(m) => Some(m.seq),
                _ => None,
            })
            .await?;
            if first == 1 {
                seen1 += 1;
            }
            client::send_json(&mut ws, &json!({"type": "message", "client_id": "m2", "text": "I am back"})).await?;
            let acked = client::expect(&mut ws, t, |e| match e {
                ServerEvent::Message(m) if m.seq == 1 => {
                    seen1 += 1;
                    None
                }
                ServerEvent::Ack { seq, .. } => Some(*seq),
                _ => None,
            })
            .await?;
            if seen1 == 0 || acked != 2 {
                shared.c.lost.fetch_add(1, Ordering::Relaxed);
            }
            if seen1 > 1 {
                shared.c.duplicated.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(ws)
    }
    .await;
    let mut ws = match r {
        Ok(ws) => ws,
        Err(e) => return shared.fail(format!("resume {i}: {e:#}")),
    };
    let now = Instant::now();
    if let Some(at) = *shared.storm_at.lock().unwrap_or_else(|p| p.into_inner()) {
        shared.resume_lat.lock().unwrap_or_else(|p| p.into_inner()).record(now.saturating_duration_since(at));
    }
    {
        let mut last = shared.last_resume.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|l| l < now) {
            *last = Some(now);
        }
    }
    shared.c.resumed.fetch_add(1, Ordering::Relaxed);
    let _ = idle(&mut ws, &mut phase, 3).await;
    let _ = client::send_json(&mut ws, &json!({"type": "end"})).await;
    let _ = ws.close(None).await;
}

async fn wait_for(counter: &AtomicU64, failed: &AtomicU64, k: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while counter.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < k {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

fn rss(pid: u32) -> u64 {
    procfs::sample(pid).map(|s| s.rss_kib).unwrap_or(0)
}

pub async fn run(target: &Target, opts: &ConnOpts) -> anyhow::Result<Report> {
    let k = opts.sockets;
    let shared = Arc::new(Shared {
        c: Counts::default(),
        storm_at: Mutex::new(None),
        resume_lat: Mutex::new(Hist::new()),
        last_resume: Mutex::new(None),
        first_error: Mutex::new(None),
        messages: !target.is_bare(),
    });
    let mut rep = Report::new("connections", &target.label);
    rep.param("sockets", k).param("sources", opts.sources.0.len());
    let server = target.meter();
    let me = Meter::start(std::process::id());
    tokio::time::sleep(opts.settle).await;
    let rss0 = rss(target.pid);
    let fds0 = procfs::open_fds(target.pid);
    let (phase_tx, phase_rx) = watch::channel(0u8);
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let storm_sem = Arc::new(Semaphore::new(opts.storm_concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(k);
    for i in 0..k {
        tasks.push(tokio::spawn(life(
            i,
            target.addr,
            opts.sources.clone(),
            sem.clone(),
            storm_sem.clone(),
            phase_rx.clone(),
            shared.clone(),
            k,
        )));
    }
    let c = &shared.c;
    let limit = Duration::from_secs(600);
    wait_for(&c.connected, &c.failed, k as u64, limit).await;
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.settle).await;
    let rss1 = rss(target.pid);
    let fds1 = procfs::open_fds(target.pid);
    let _ = phase_tx.send(1);
    let t1 = Instant::now();
    wait_for(&c.started, &c.failed, k as u64, limit).await;
    let start_s = t1.elapsed().as_secs_f64();
    tokio::time::sleep(opts.settle).await;
    let rss2 = rss(target.pid);
    let connected = c.connected.load(Ordering::Relaxed).max(1);
    let kib = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 1.024 / connected as f64;
    rep.figures.insert("server_fds_open".into(), fds1 as f64);
    rep.figures.insert("rss_baseline_mib".into(), rss0 as f64 / 1024.0);
    rep.figures.insert("rss_sockets_mib".into(), rss1 as f64 / 1024.0);
    rep.figures.insert("rss_with_contacts_mib".into(), rss2 as f64 / 1024.0);
    rep.figures.insert("kb_per_idle_socket".into(), kib(rss0, rss1));
    rep.figures.insert("kb_per_socket_with_contact".into(), kib(rss0, rss2));
    rep.figures.insert("connect_s".into(), connect_s);
    rep.figures.insert("start_s".into(), start_s);
    rep.figures.insert("contacts_started_per_s".into(), c.started.load(Ordering::Relaxed) as f64 / start_s.max(1e-9));
    let _ = fds0;
    if opts.storm {
        *shared.storm_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let storm = Instant::now();
        let _ = phase_tx.send(2);
        let all = wait_for(&c.resumed, &c.failed, k as u64, Duration::from_secs(300)).await;
        let storm_s = shared
            .last_resume
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|l| l.saturating_duration_since(storm).as_secs_f64())
            .unwrap_or(0.0);
        rep.figures.insert("storm_all_resumed_s".into(), storm_s);
        if !all {
            rep.notes.push("not every socket resumed within 300 s".into());
        }
        rep.latencies.insert("drop->resumed".into(), shared.resume_lat.lock().unwrap_or_else(|p| p.into_inner()).summary());
        tokio::time::sleep(opts.settle).await;
        rep.figures.insert("rss_after_storm_mib".into(), rss(target.pid) as f64 / 1024.0);
    }
    rep.duration_s = started.elapsed().as_secs_f64();
    rep.throughput = c.connected.load(Ordering::Relaxed) as f64 / connect_s.max(1e-9);
    rep.throughput_unit = "connections/s while building up".into();
    rep.server = Some(server.finish());
    rep.client = Some(me.finish());
    let _ = phase_tx.send(3);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    rep.count("connected", c.connected.load(Ordering::Relaxed));
    rep.count("started", c.started.load(Ordering::Relaxed));
    rep.count("resumed", c.resumed.load(Ordering::Relaxed));
    rep.count("errors", c.errors.load(Ordering::Relaxed));
    rep.count("lost", c.lost.load(Ordering::Relaxed));
    rep.count("duplicated", c.duplicated.load(Ordering::Relaxed));
    if let Some(e) = shared.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        rep.notes.push(format!("first error: {e}"));
    }
    if !shared.messages {
        rep.notes.push("bare relay: no message replay checked on resume".into());
    }
    Ok(rep)
}

//! `relay`: N open conversations (a caller socket and a counsellor socket each), messages at a fixed
//! arrival rate (open loop: each send is scheduled by the clock, never waits for an ack).
//!
//! Measured per step (one step per rate): one-way latency (intended send time → the `message`
//! frame read on the other side; includes the durable commit), ack latency (intended send time →
//! `ack` read by the sender), acked messages/s. Checked: every message acked once and received once
//! by the other side, seqs strictly increasing on every socket, and each conversation's acked seqs
//! exactly 1..n.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use helpline::protocol::ServerEvent;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Sources, Ws};
use crate::procfs::Meter;
use crate::report::Report;
use crate::stats::Hist;
use crate::target::Target;

#[derive(Debug, Clone)]
pub struct RelayOpts {
    pub conversations: usize,
    /// Messages per second, all conversations together; one step per rate.
    pub rates: Vec<f64>,
    pub duration: Duration,
    /// Messages scheduled in the first `warmup` of a step are checked but not timed.
    pub warmup: Duration,
    /// Bytes of text per message.
    pub size: usize,
    /// Longest wait after a step's last send for its acks and deliveries.
    pub drain: Duration,
    pub sources: Sources,
    pub setup_concurrency: usize,
}

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            conversations: 100,
            rates: vec![1000.0],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            size: 200,
            drain: Duration::from_secs(10),
            sources: Sources(vec![]),
            setup_concurrency: 32,
        }
    }
}

/// Per-message state: acks in the low 16 bits, deliveries in the high 16 bits.
const ACK: u32 = 1;
const RECV: u32 = 1 << 16;

struct Step {
    /// First message index of the step, and one past the last.
    k_start: AtomicU64,
    k_end: AtomicU64,
    acked: AtomicU64,
    received: AtomicU64,
    /// Microseconds since T0 of the last ack read.
    last_ack_us: AtomicU64,
}

struct Shared {
    t0: Instant,
    n: usize,
    state: Vec<AtomicU32>,
    steps: Vec<Step>,
}

impl Shared {
    fn step_of(&self, k: u64) -> Option<usize> {
        self.steps.iter().position(|s| k >= s.k_start.load(Ordering::Relaxed) && k < s.k_end.load(Ordering::Relaxed))
    }
}

/// What a reader task saw.
#[derive(Default)]
struct ReaderOut {
    oneway: Vec<Hist>,
    ack: Vec<Hist>,
    /// (conversation, acked seq)
    acked: Vec<(u32, i64)>,
    errors: u64,
    out_of_order: u64,
    unexpected: u64,
    first_error: Option<String>,
}

impl ReaderOut {
    fn hist(v: &mut Vec<Hist>, i: usize) -> &mut Hist {
        while v.len() <= i {
            v.push(Hist::new());
        }
        &mut v[i]
    }
}

/// client_id: `{step or w}:{k}:{intended µs since T0}`.
fn parse_client_id(id: &str) -> Option<(Option<usize>, u64, u64)> {
    let mut it = id.split(':');
    let step = it.next()?;
    let k = it.next()?.parse().ok()?;
    let t = it.next()?.parse().ok()?;
    Some((step.parse().ok(), k, t))
}

async fn reader(
    mut rx: futures_util::stream::SplitStream<Ws>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> ReaderOut {
    let mut out = ReaderOut::default();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    loop {
        let next = tokio::select! {
            m = rx.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| "socket closed by the server".into());
                break;
            }
            Some(Err(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("socket error: {e}"));
                break;
            }
            Some(Ok(_)) => continue,
        };
        let now_us = shared.t0.elapsed().as_micros() as u64;
        let ev = match client::parse(text.as_str()) {
            Ok(ev) => ev,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        match ev {
            ServerEvent::Ack { client_id, seq, .. } => {
                let Some((step, k, t)) = parse_client_id(&client_id) else {
                    out.unexpected += 1;
                    continue;
                };
                if let Some(s) = step {
                    ReaderOut::hist(&mut out.ack, s).record_us(now_us.saturating_sub(t));
                }
                if let Some(cell) = shared.state.get(k as usize) {
                    cell.fetch_add(ACK, Ordering::Relaxed);
                }
                if let Some(si) = shared.step_of(k) {
                    let st = &shared.steps[si];
                    st.acked.fetch_add(1, Ordering::Relaxed);
                    st.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
                }
                out.acked.push(((k % shared.n as u64) as u32, seq));
            }
            ServerEvent::Message(m) => {
                let last = last_seq.entry(m.contact_id.clone()).or_insert(0);
                if m.seq <= *last {
                    out.out_of_order += 1;
                }
                *last = (*last).max(m.seq);
                let Some((step, k, t)) = parse_client_id(&m.client_id) else {
                    out.unexpected += 1;
                    continue;
                };
                if let Some(s) = step {
                    ReaderOut::hist(&mut out.oneway, s).record_us(now_us.saturating_sub(t));
                }
                if let Some(cell) = shared.state.get(k as usize) {
                    cell.fetch_add(RECV, Ordering::Relaxed);
                }
                if let Some(si) = shared.step_of(k) {
                    shared.steps[si].received.fetch_add(1, Ordering::Relaxed);
                }
            }
            ServerEvent::Error { code, message, .. } => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("error frame {code:?}: {message}"));
            }
            ServerEvent::ContactEnded { contact_id, reason } => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("contact {contact_id} ended: {reason}"));
            }
            ServerEvent::Reconnect { .. } => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| "server asked to reconnect".into());
            }
            _ => {}
        }
    }
    out
}

async fn writer(mut tx: futures_util::stream::SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<String>) {
    while let Some(first) = rx.recv().await {
        if tx.feed(Message::Text(first.into())).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if tx.feed(Message::Text(more.into())).await.is_err() {
                return;
            }
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
    let _ = tx.close().await;
}

/// One open conversation after setup.
struct Conversation {
    contact_id: String,
    caller: Ws,
    /// Index of the counsellor socket.
    agent: usize,
}

/// Opens `n` conversations: counsellors available (capacity 1), callers started, offers accepted.
async fn open_conversations(target: &Target, opts: &RelayOpts) -> anyhow::Result<(Vec<Ws>, Vec<Conversation>)> {
    let n = opts.conversations;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let counsellors = target.counsellors(&format!("relay-{}-", &run[..8]), n, 1).await?;
    // Counsellors connect and go available.
    let agents: Vec<anyhow::Result<Ws>> = stream::iter(counsellors.iter().enumerate())
        .map(|(i, c)| async move {
            let mut ws = target.agent_socket(c, opts.sources.pick(i)).await?;
            client::send_json(&mut ws, &json!({"type": "status", "status": "available"})).await?;
            client::expect(&mut ws, Duration::from_secs(30), |e| matches!(e, ServerEvent::Status { .. }).then_some(())).await?;
            Ok(ws)
        })
        .buffered(opts.setup_concurrency)
        .collect()
        .await;
    let agents: Vec<Ws> = agents.into_iter().collect::<anyhow::Result<_>>().context("connecting counsellors")?;
    // Each counsellor accepts whatever it is offered until setup is done.
    let (done_tx, done_rx) = watch::channel(false);
    let (assigned_tx, mut assigned_rx) = mpsc::unbounded_channel::<(String, usize)>();
    let mut agent_tasks = Vec::new();
    for (i, mut ws) in agents.into_iter().enumerate() {
        let mut done = done_rx.clone();
        let assigned_tx = assigned_tx.clone();
        agent_tasks.push(tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = client::recv(&mut ws, Duration::from_secs(120)) => ev?,
                    _ = done.wait_for(|d| *d) => break,
                };
                match ev {
                    ServerEvent::Offer { contact_id, .. } => {
                        client::send_json(&mut ws, &json!({"type": "accept", "contact_id": contact_id})).await?;
                    }
                    ServerEvent::Assigned { contact_id, .. } => {
                        let _ = assigned_tx.send((contact_id, i));
                    }
                    ServerEvent::Error { code, message, .. } => bail!("counsellor {i}: error {code:?}: {message}"),
                    _ => {}
                }
            }
            Ok::<Ws, anyhow::Error>(ws)
        }));
    }
    drop(assigned_tx);
    // Callers start and wait to be connected.
    let callers: Vec<anyhow::Result<(String, Ws)>> = stream::iter(0..n)
        .map(|i| async move {
            let mut ws = client::connect(target.addr, "/ws/caller", opts.sources.pick(i)).await?;
            client::send_json(&mut ws, &json!({"type": "start", "helpline": "children", "language": "ro"})).await?;
            let contact = client::expect(&mut ws, Duration::from_secs(60), |e| match e {
                ServerEvent::Queued { contact_id, .. } => Some(contact_id.clone()),
                _ => None,
            })
            .await?;
            client::expect(&mut ws, Duration::from_secs(60), |e| matches!(e, ServerEvent::Connected { .. }).then_some(())).await?;
            Ok((contact, ws))
        })
        .buffered(opts.setup_concurrency)
        .collect()
        .await;
    let callers: Vec<(String, Ws)> = callers.into_iter().collect::<anyhow::Result<_>>().context("starting callers")?;
    // Every connected caller's contact was assigned before `connected` was sent; wait for the counsellor side too.
    let mut owner: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while owner.len() < n {
        match tokio::time::timeout_at(deadline, assigned_rx.recv()).await {
            Ok(Some((c, i))) => {
                owner.insert(c, i);
            }
            _ => bail!("only {} of {n} conversations reached their counsellor", owner.len()),
        }
    }
    let _ = done_tx.send(true);
    let mut agents = Vec::new();
    for t in agent_tasks {
        agents.push(t.await.map_err(|e| anyhow!("counsellor task: {e}"))??);
    }
    let conversations = callers
        .into_iter()
        .map(|(contact_id, caller)| {
            let agent = owner[&contact_id];
            Conversation { contact_id, caller, agent }
        })
        .collect();
    Ok((agents, conversations))
}

/// Runs the scenario: one report per rate.
pub async fn run(target: &Target, opts: &RelayOpts) -> anyhow::Result<Vec<Report>> {
    if opts.conversations == 0 || opts.rates.is_empty() {
        bail!("need at least one conversation and one rate");
    }
    let setup_started = Instant::now();
    let (agents, conversations) = open_conversations(target, opts).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let n = conversations.len();
    let capacity: u64 = opts.rates.iter().map(|r| (r * opts.duration.as_secs_f64()).ceil() as u64 + 1).sum();
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        n,
        state: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        steps: opts
            .rates
            .iter()
            .map(|_| Step {
                k_start: AtomicU64::new(u64::MAX),
                k_end: AtomicU64::new(u64::MAX),
                acked: AtomicU64::new(0),
                received: AtomicU64::new(0),
                last_ack_us: AtomicU64::new(0),
            })
            .collect(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    let mut agent_out = Vec::new();
    for ws in agents {
        let (sink, rx) = ws.split();
        let (tx, wrx) = mpsc::unbounded_channel();
        tokio::spawn(writer(sink, wrx));
        readers.push(tokio::spawn(reader(rx, shared.clone(), stop_rx.clone())));
        agent_out.push(tx);
    }
    // Per conversation: (caller sender, counsellor sender, contact id).
    let mut convs = Vec::new();
    for c in conversations {
        let (sink, rx) = c.caller.split();
        let (tx, wrx) = mpsc::unbounded_channel();
        tokio::spawn(writer(sink, wrx));
        readers.push(tokio::spawn(reader(rx, shared.clone(), stop_rx.clone())));
        convs.push((tx, agent_out[c.agent].clone(), c.contact_id));
    }
    let text: String = "x".repeat(opts.size.max(1));
    let mut k: u64 = 0;
    let mut reports = Vec::new();
    let mut step_meta = Vec::new();
    for (si, &rate) in opts.rates.iter().enumerate() {
        let step = &shared.steps[si];
        let total = (rate * opts.duration.as_secs_f64()).round() as u64;
        step.k_start.store(k, Ordering::Relaxed);
        step.k_end.store(k + total, Ordering::Relaxed);
        let server = Meter::start(target.pid);
        let me = Meter::start(std::process::id());
        let start = Instant::now();
        let start_us = shared.t0.elapsed().as_micros() as u64;
        let mut sent = 0u64;
        let mut max_lag = Duration::ZERO;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while sent < total {
            tick.tick().await;
            let el = start.elapsed().as_secs_f64();
            let due = ((el * rate).floor() as u64 + 1).min(total);
            while sent < due {
                let intended = start + Duration::from_secs_f64(sent as f64 / rate);
                max_lag = max_lag.max(intended.elapsed());
                let t_us = intended.duration_since(shared.t0).as_micros() as u64;
                let measured = intended.duration_since(start) >= opts.warmup;
                let tag = if measured { si.to_string() } else { "w".into() };
                let conv = (k % n as u64) as usize;
                let from_caller = (k / n as u64).is_multiple_of(2);
                let (caller_tx, agent_tx, contact) = &convs[conv];
                let client_id = format!("{tag}:{k}:{t_us}");
                if from_caller {
                    let _ = caller_tx.send(format!(r#"{{"type":"message","client_id":"{client_id}","text":"{text}"}}"#));
                } else {
                    let _ = agent_tx.send(format!(
                        r#"{{"type":"message","contact_id":"{contact}","client_id":"{client_id}","text":"{text}"}}"#
                    ));
                }
                k += 1;
                sent += 1;
            }
        }
        let send_s = start.elapsed().as_secs_f64();
        // Drain: wait for every ack and delivery of this step, up to `drain`.
        let drain_until = Instant::now() + opts.drain;
        while Instant::now() < drain_until
            && (step.acked.load(Ordering::Relaxed) < total || step.received.load(Ordering::Relaxed) < total)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let server_usage = server.finish();
        let client_usage = me.finish();
        let last_ack = step.last_ack_us.load(Ordering::Relaxed).saturating_sub(start_us) as f64 / 1e6;
        let acked = step.acked.load(Ordering::Relaxed);
        step_meta.push((rate, total, send_s, last_ack, acked, server_usage, client_usage, max_lag));
        // A short pause between steps.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = stop_tx.send(true);
    let mut outs = Vec::new();
    for r in readers {
        outs.push(r.await.map_err(|e| anyhow!("reader task: {e}"))?);
    }
    // Close the conversations (best effort), then let the sockets go.
    for (_, agent_tx, contact) in &convs {
        let _ = agent_tx.send(json!({"type": "end", "contact_id": contact}).to_string());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(convs);
    drop(agent_out);

    // Checks shared by all steps.
    let errors: u64 = outs.iter().map(|o| o.errors).sum();
    let out_of_order: u64 = outs.iter().map(|o| o.out_of_order).sum();
    let unexpected: u64 = outs.iter().map(|o| o.unexpected).sum();
    let first_error = outs.iter().find_map(|o| o.first_error.clone());
    let mut per_conv: Vec<Vec<i64>> = vec![Vec::new(); n];
    for o in &outs {
        for &(c, seq) in &o.acked {
            per_conv[c as usize].push(seq);
        }
    }
    // Two different messages acked with the same seq is a violation; gaps are expected only where
    // messages went unacked.
    let (mut bad_acks, mut seq_gaps) = (0u64, 0u64);
    for seqs in &mut per_conv {
        seqs.sort_unstable();
        bad_acks += seqs.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        let mut distinct = seqs.clone();
        distinct.dedup();
        let max = distinct.last().copied().unwrap_or(0).max(0) as u64;
        seq_gaps += max.saturating_sub(distinct.len() as u64);
    }
    for (si, (rate, total, send_s, last_ack, acked, server_usage, client_usage, max_lag)) in step_meta.into_iter().enumerate() {
        let mut oneway = Hist::new();
        let mut ack = Hist::new();
        for o in &outs {
            if let Some(h) = o.oneway.get(si) {
                oneway.add(h);
            }
            if let Some(h) = o.ack.get(si) {
                ack.add(h);
            }
        }
        let step = &shared.steps[si];
        let (ks, ke) = (step.k_start.load(Ordering::Relaxed), step.k_end.load(Ordering::Relaxed));
        let (mut lost, mut unacked, mut dup) = (0u64, 0u64, 0u64);
        for cell in &shared.state[ks as usize..ke as usize] {
            let v = cell.load(Ordering::Relaxed);
            let (a, r) = (v & 0xFFFF, v >> 16);
            if r == 0 {
                lost += 1;
            }
            if a == 0 {
                unacked += 1;
            }
            if r > 1 || a > 1 {
                dup += 1;
            }
        }
        let mut rep = Report::new("relay", &target.label);
        rep.param("conversations", n).param("rate", rate).param("duration_s", opts.duration.as_secs_f64()).param("size", opts.size);
        rep.duration_s = send_s;
        rep.throughput = if last_ack > 0.0 { acked as f64 / last_ack.max(send_s) } else { 0.0 };
        rep.throughput_unit = "acked msg/s".into();
        rep.latencies.insert("one-way".into(), oneway.summary());
        rep.latencies.insert("ack".into(), ack.summary());
        rep.count("sent", total);
        rep.count("acked", acked);
        rep.count("received", step.received.load(Ordering::Relaxed));
        rep.count("lost", lost);
        rep.count("unacked", unacked);
        rep.count("duplicated", dup);
        // Run-wide checks are reported on every step.
        rep.count("errors", errors + unexpected);
        rep.count("out_of_order", out_of_order);
        rep.count("bad_acks", bad_acks);
        rep.count("seq_gaps", seq_gaps);
        rep.figures.insert("setup_s".into(), setup_s);
        rep.figures.insert("max_send_lag_ms".into(), max_lag.as_secs_f64() * 1000.0);
        rep.figures.insert("last_ack_after_s".into(), last_ack);
        rep.server = Some(server_usage);
        rep.client = Some(client_usage);
        if let Some(e) = &first_error {
            rep.notes.push(format!("first error: {e}"));
        }
        if max_lag > Duration::from_millis(5) {
            rep.notes.push(format!(
                "the load generator fell behind its schedule by up to {:.1} ms (latencies count from the intended send time)",
                max_lag.as_secs_f64() * 1000.0
            ));
        }
        reports.push(rep);
    }
    Ok(reports)
}

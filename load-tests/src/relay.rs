//! `relay`: N open conversations (a caller socket and a counsellor socket each), messages at a fixed
//! arrival rate (open loop: each send is scheduled by the clock, never waits for an ack).
//!
//! Measured per step (one step per rate): one-way latency (intended send time → the `message`
//! frame read on the other side; includes the durable commit), ack latency (intended send time →
//! `ack` read by the sender), acked messages/s. Checked: every message acked (with one seq) and
//! received once by the other side, seqs strictly increasing on every socket, and each
//! conversation's acked seqs exactly 1..n.
//!
//! The promise ([`helpline::chat::promise`]): every message the server reads is answered within
//! [`ANSWER_LIMIT`]: acknowledged, or refused as `overloaded`. The tool sends a refused message
//! again after its `retry_after_ms` (plus up to half again at random), with the same `client_id`,
//! as the widget and console do; `refused` counts the refusals, `unacked` (must be zero) the sends
//! not answered within the limit (answered late, or not at all and older than the limit when the
//! wait ends). `lost` still means "never delivered" after the wait.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::stream::{self, StreamExt};
use futures_util::SinkExt;
use helpline::protocol::{ErrorCode, ServerEvent};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Sources, Ws};
use crate::procfs::Meter;
use crate::report::Report;
use crate::stats::Hist;
use crate::target::{Kind, Target, LOAD_PASSWORD};
use crate::xmpp;

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
    /// Longest wait after a step's last send for its acks and deliveries (refused messages are
    /// sent again meanwhile); `--wait`, default [`DEFAULT_WAIT`].
    pub drain: Duration,
    pub sources: Sources,
    pub setup_concurrency: usize,
    /// Notified once every conversation is open, before the first step (the `supervisors` scenario
    /// starts its probes then, so a probe contact is never offered to a relay counsellor).
    pub ready: Option<Arc<tokio::sync::Notify>>,
}

impl Default for RelayOpts {
    fn default() -> Self {
        RelayOpts {
            conversations: 100,
            rates: vec![1000.0],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            size: 200,
            drain: DEFAULT_WAIT,
            sources: Sources(vec![]),
            setup_concurrency: 32,
            ready: None,
        }
    }
}

/// Default wait after a step's last send (`--wait`): long enough for the messages refused at 4×
/// the relay's ceiling to be sent again and stored.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The server promises an answer to every message it reads within this (see the module's note).
pub const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Per-message state: acks in the low 16 bits, deliveries in the high 16 bits.
const ACK: u32 = 1;
const RECV: u32 = 1 << 16;

struct Step {
    /// First message index of the step, and one past the last.
    k_start: AtomicU64,
    k_end: AtomicU64,
    /// Messages acked (once each).
    acked: AtomicU64,
    received: AtomicU64,
    /// Microseconds since T0 of the last ack read.
    last_ack_us: AtomicU64,
    /// `overloaded` refusals read (each is sent again).
    refused: AtomicU64,
    /// Sends answered (ack or refusal) later than [`ANSWER_LIMIT`].
    late: AtomicU64,
    /// Slowest answer to a send, in microseconds.
    slowest_answer_us: AtomicU64,
    /// Messages acked twice with two different seqs (stored twice).
    seq_mismatch: AtomicU64,
}

struct Shared {
    t0: Instant,
    n: usize,
    state: Vec<AtomicU32>,
    /// When each message was last sent (µs since T0): its first send, or its last resend.
    sent_us: Vec<AtomicU64>,
    /// The seq each message was acked with (0: none yet); a second ack must name the same.
    acked_seq: Vec<std::sync::atomic::AtomicI64>,
    /// Each conversation's contact id (helpline targets), for resending a counsellor's message.
    contacts: Vec<String>,
    /// The text of every message.
    text: String,
    steps: Vec<Step>,
}

impl Shared {
    fn step_of(&self, k: u64) -> Option<usize> {
        self.steps.iter().position(|s| k >= s.k_start.load(Ordering::Relaxed) && k < s.k_end.load(Ordering::Relaxed))
    }

    /// Whether message `k` goes from the caller (else from the counsellor).
    fn sent_by_caller(&self, k: u64) -> bool {
        (k / self.n as u64).is_multiple_of(2)
    }

    /// The helpline frame of message `k`.
    fn frame(&self, k: u64, client_id: &str) -> String {
        let text = &self.text;
        if self.sent_by_caller(k) {
            format!(r#"{{"type":"message","client_id":"{client_id}","text":"{text}"}}"#)
        } else {
            let contact = self.contacts.get((k % self.n as u64) as usize).map(String::as_str).unwrap_or_default();
            format!(r#"{{"type":"message","contact_id":"{contact}","client_id":"{client_id}","text":"{text}"}}"#)
        }
    }

    /// Message `k`'s last send was answered (ack or refusal) at `now_us`: counts a late answer.
    fn answered(&self, k: u64, now_us: u64) {
        let Some(sent) = self.sent_us.get(k as usize).map(|c| c.load(Ordering::Relaxed)) else { return };
        let took = now_us.saturating_sub(sent);
        if let Some(si) = self.step_of(k) {
            let st = &self.steps[si];
            st.slowest_answer_us.fetch_max(took, Ordering::Relaxed);
            if took > ANSWER_LIMIT.as_micros() as u64 {
                st.late.fetch_add(1, Ordering::Relaxed);
            }
        }
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

/// How a reader speaks to its server.
enum Proto {
    /// helpline's JSON frames: `ack {client_id, seq}`, `message {client_id, seq}`; a refused
    /// message is sent again on the sender (the socket's own writer).
    Helpline { resend: mpsc::UnboundedSender<String> },
    /// XMPP (the Prosody peer): `<message id=…>`, and `<a h=…/>` acknowledging every stanza this
    /// socket sent so far (`pending` holds the client ids sent and not yet acknowledged, in order);
    /// the server's `<r/>` is answered on `reply` with the number of stanzas received.
    Xmpp { pending: Pending, reply: mpsc::UnboundedSender<String> },
}

/// Client ids sent on one XMPP socket and not yet acknowledged, oldest first.
type Pending = Arc<std::sync::Mutex<VecDeque<String>>>;

impl ReaderOut {
    fn fail(&mut self, e: impl Into<String>) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.into());
        }
    }

    /// An ack of message `client_id` read at `now_us` (`seq` when the server numbers messages).
    fn on_ack(&mut self, shared: &Shared, client_id: &str, seq: Option<i64>, now_us: u64) {
        let Some((step, k, t)) = parse_client_id(client_id) else {
            self.unexpected += 1;
            return;
        };
        shared.answered(k, now_us);
        let first = shared.state.get(k as usize).is_some_and(|cell| cell.fetch_add(ACK, Ordering::Relaxed) & 0xFFFF == 0);
        if let (Some(seq), Some(cell)) = (seq, shared.acked_seq.get(k as usize)) {
            // A message refused and sent again may be acked twice (a late ack of the first copy,
            // then the repeat's): with the same seq, or it was stored twice.
            match cell.compare_exchange(0, seq, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {}
                Err(earlier) if earlier == seq => {}
                Err(_) => {
                    if let Some(si) = shared.step_of(k) {
                        shared.steps[si].seq_mismatch.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if !first {
            return;
        }
        if let Some(s) = step {
            ReaderOut::hist(&mut self.ack, s).record_us(now_us.saturating_sub(t));
        }
        if let Some(si) = shared.step_of(k) {
            let st = &shared.steps[si];
            st.acked.fetch_add(1, Ordering::Relaxed);
            st.last_ack_us.fetch_max(now_us, Ordering::Relaxed);
        }
        if let Some(seq) = seq {
            self.acked.push(((k % shared.n as u64) as u32, seq));
        }
    }

    /// An `overloaded` refusal of message `client_id`: sent again on `resend` after `retry_ms`
    /// (and up to half again at random), with the same client id.
    fn on_refused(&mut self, shared: &Arc<Shared>, client_id: &str, retry_ms: u64, now_us: u64, resend: &mpsc::UnboundedSender<String>) {
        let Some((_, k, _)) = parse_client_id(client_id) else {
            self.unexpected += 1;
            return;
        };
        shared.answered(k, now_us);
        if let Some(si) = shared.step_of(k) {
            shared.steps[si].refused.fetch_add(1, Ordering::Relaxed);
        }
        let acked = shared.state.get(k as usize).is_some_and(|c| c.load(Ordering::Relaxed) & 0xFFFF > 0);
        if acked {
            // Its late ack came first: nothing to send again.
            return;
        }
        let wait = Duration::from_millis(retry_ms + rand::random::<u64>() % (retry_ms / 2 + 1));
        let (shared, resend, client_id) = (shared.clone(), resend.clone(), client_id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if shared.state.get(k as usize).is_some_and(|c| c.load(Ordering::Relaxed) & 0xFFFF > 0) {
                return;
            }
            if let Some(cell) = shared.sent_us.get(k as usize) {
                cell.store(shared.t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            let _ = resend.send(shared.frame(k, &client_id));
        });
    }

    /// Message `client_id` delivered to the other side at `now_us`; returns its index k.
    fn on_delivery(&mut self, shared: &Shared, client_id: &str, now_us: u64) -> Option<u64> {
        let Some((step, k, t)) = parse_client_id(client_id) else {
            self.unexpected += 1;
            return None;
        };
        if let Some(s) = step {
            ReaderOut::hist(&mut self.oneway, s).record_us(now_us.saturating_sub(t));
        }
        if let Some(cell) = shared.state.get(k as usize) {
            cell.fetch_add(RECV, Ordering::Relaxed);
        }
        if let Some(si) = shared.step_of(k) {
            shared.steps[si].received.fetch_add(1, Ordering::Relaxed);
        }
        Some(k)
    }

    fn on_json(
        &mut self,
        shared: &Arc<Shared>,
        text: &str,
        now_us: u64,
        last_seq: &mut HashMap<String, i64>,
        resend: &mpsc::UnboundedSender<String>,
    ) {
        let ev = match client::parse(text) {
            Ok(ev) => ev,
            Err(e) => return self.fail(e.to_string()),
        };
        match ev {
            ServerEvent::Ack { client_id, seq, .. } => self.on_ack(shared, &client_id, Some(seq), now_us),
            ServerEvent::Message(m) => {
                let last = last_seq.entry(m.contact_id.clone()).or_insert(0);
                if m.seq <= *last {
                    self.out_of_order += 1;
                }
                *last = (*last).max(m.seq);
                self.on_delivery(shared, &m.client_id, now_us);
            }
            // Refusals that say when to send the message again (overloaded, or over the socket's rate).
            ServerEvent::Error {
                code: ErrorCode::Overloaded | ErrorCode::RateLimited,
                reference: Some(client_id),
                retry_after_ms: Some(retry_after_ms),
                ..
            } => self.on_refused(shared, &client_id, retry_after_ms, now_us, resend),
            ServerEvent::Error { code: ErrorCode::Overloaded, reference: Some(client_id), retry_after_ms, .. } => {
                self.on_refused(shared, &client_id, retry_after_ms.unwrap_or(1000), now_us, resend)
            }
            ServerEvent::Error { code, message, .. } => self.fail(format!("error frame {code:?}: {message}")),
            ServerEvent::ContactEnded { contact_id, reason } => self.fail(format!("contact {contact_id} ended: {reason}")),
            ServerEvent::Reconnect { .. } => self.fail("server asked to reconnect"),
            _ => {}
        }
    }

    /// One XMPP stanza. `received` counts the stanzas the server sent (for `<a h=…/>`),
    /// `acked` how many of ours the server acknowledged so far, `last_k` the last message index
    /// delivered per conversation (they must come in the order they were sent).
    fn on_xmpp(&mut self, shared: &Shared, text: &str, now_us: u64, proto: &Proto, st: &mut XmppState) {
        let Proto::Xmpp { pending, reply } = proto else { return };
        match xmpp::element(text) {
            "message" => {
                st.received += 1;
                if xmpp::attr(text, "type") == Some("error") {
                    return self.fail(format!("message bounced: {text}"));
                }
                let Some(id) = xmpp::attr(text, "id") else {
                    self.unexpected += 1;
                    return;
                };
                if let Some(k) = self.on_delivery(shared, id, now_us) {
                    let conv = k % shared.n as u64;
                    let last = st.last_k.entry(conv).or_insert(k);
                    if k < *last {
                        self.out_of_order += 1;
                    }
                    *last = (*last).max(k);
                }
            }
            "iq" | "presence" => st.received += 1,
            "r" => {
                let _ = reply.send(xmpp::answer_ack(st.received));
            }
            "a" => {
                let Some(h) = xmpp::attr(text, "h").and_then(|h| h.parse::<u64>().ok()) else {
                    return self.fail(format!("bad ack {text}"));
                };
                // h counts modulo 2^32 (XEP-0198); a load run stays far below.
                let newly = h.saturating_sub(st.acked);
                st.acked = st.acked.max(h);
                let ids: Vec<String> = {
                    let mut q = pending.lock().unwrap_or_else(|e| e.into_inner());
                    let take = (newly as usize).min(q.len());
                    q.drain(..take).collect()
                };
                if (ids.len() as u64) < newly {
                    self.fail(format!("the server acknowledged {newly} stanzas, {} were sent", ids.len()));
                }
                for id in ids {
                    self.on_ack(shared, &id, None, now_us);
                }
            }
            "stream:error" | "close" => self.fail(format!("the server closed the stream: {text}")),
            _ => {}
        }
    }
}

#[derive(Default)]
struct XmppState {
    received: u64,
    acked: u64,
    last_k: HashMap<u64, u64>,
}

async fn reader(
    mut rx: futures_util::stream::SplitStream<Ws>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    proto: Proto,
) -> ReaderOut {
    let mut out = ReaderOut::default();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    let mut xs = XmppState::default();
    loop {
        let next = tokio::select! {
            m = rx.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => {
                out.fail("socket closed by the server");
                break;
            }
            Some(Err(e)) => {
                out.fail(format!("socket error: {e}"));
                break;
            }
            Some(Ok(_)) => continue,
        };
        let now_us = shared.t0.elapsed().as_micros() as u64;
        match &proto {
            Proto::Helpline { resend } => out.on_json(&shared, text.as_str(), now_us, &mut last_seq, resend),
            Proto::Xmpp { .. } => out.on_xmpp(&shared, text.as_str(), now_us, &proto, &mut xs),
        }
    }
    out
}

/// Sends every queued frame on the socket, batching what is already queued into one flush.
pub(crate) async fn writer(mut tx: futures_util::stream::SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<String>) {
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
            // In a cluster the counsellor and the caller of a conversation are on different nodes.
            let mut ws = target.agent_socket_on(target.node(i), c, opts.sources.pick(i)).await?;
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
            let mut ws = client::connect(target.node(i + 1), "/ws/caller", opts.sources.pick(i)).await?;
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

/// The sending half of one socket (its reader runs on its own).
#[derive(Clone)]
struct Endpoint {
    tx: mpsc::UnboundedSender<String>,
    /// XMPP only: client ids sent and not yet acknowledged.
    pending: Option<Pending>,
}

/// One conversation, ready to send on.
struct Pair {
    caller: Endpoint,
    agent: Endpoint,
    /// helpline: the contact id; XMPP: the caller's full JID.
    contact: String,
    /// XMPP: the counsellor's full JID.
    agent_jid: String,
}

impl Pair {
    fn send(&self, from_caller: bool, client_id: &str, text: &str) {
        match (&self.caller.pending, from_caller) {
            (None, true) => {
                let _ = self.caller.tx.send(format!(r#"{{"type":"message","client_id":"{client_id}","text":"{text}"}}"#));
            }
            (None, false) => {
                let contact = &self.contact;
                let _ = self
                    .agent
                    .tx
                    .send(format!(r#"{{"type":"message","contact_id":"{contact}","client_id":"{client_id}","text":"{text}"}}"#));
            }
            (Some(_), _) => {
                let (ep, to) = if from_caller { (&self.caller, &self.agent_jid) } else { (&self.agent, &self.contact) };
                if let Some(p) = &ep.pending {
                    p.lock().unwrap_or_else(|e| e.into_inner()).push_back(client_id.to_string());
                }
                let _ = ep.tx.send(xmpp::message(to, client_id, text));
                let _ = ep.tx.send(xmpp::REQUEST_ACK.to_string());
            }
        }
    }
}

enum Opened {
    Helpline(Vec<Ws>, Vec<Conversation>),
    Xmpp(Vec<XmppPair>),
}

struct XmppPair {
    caller: Ws,
    caller_jid: String,
    agent: Ws,
    agent_jid: String,
}

/// The peer: two registered XMPP users per conversation, logged in over WebSocket.
async fn open_xmpp_pairs(target: &Target, opts: &RelayOpts) -> anyhow::Result<Vec<XmppPair>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..8];
    let pairs: Vec<anyhow::Result<XmppPair>> = stream::iter(0..opts.conversations)
        .map(|i| async move {
            let src = opts.sources.pick(i);
            let (caller, caller_jid) = xmpp::login(target.addr, &format!("c{run}{i}"), LOAD_PASSWORD, true, src).await?;
            let (agent, agent_jid) = xmpp::login(target.addr, &format!("a{run}{i}"), LOAD_PASSWORD, true, src).await?;
            Ok(XmppPair { caller, caller_jid, agent, agent_jid })
        })
        .buffered(opts.setup_concurrency)
        .collect()
        .await;
    pairs.into_iter().collect::<anyhow::Result<_>>().context("logging in to the XMPP peer")
}

/// Runs the scenario: one report per rate.
pub async fn run(target: &Target, opts: &RelayOpts) -> anyhow::Result<Vec<Report>> {
    if opts.conversations == 0 || opts.rates.is_empty() {
        bail!("need at least one conversation and one rate");
    }
    let setup_started = Instant::now();
    let opened = if matches!(target.kind, Kind::Prosody) {
        Opened::Xmpp(open_xmpp_pairs(target, opts).await?)
    } else {
        let (agents, conversations) = open_conversations(target, opts).await?;
        Opened::Helpline(agents, conversations)
    };
    let setup_s = setup_started.elapsed().as_secs_f64();
    let n = match &opened {
        Opened::Helpline(_, c) => c.len(),
        Opened::Xmpp(p) => p.len(),
    };
    let capacity: u64 = opts.rates.iter().map(|r| (r * opts.duration.as_secs_f64()).ceil() as u64 + 1).sum();
    let contacts: Vec<String> = match &opened {
        Opened::Helpline(_, c) => c.iter().map(|c| c.contact_id.clone()).collect(),
        Opened::Xmpp(_) => Vec::new(),
    };
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        n,
        state: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        sent_us: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
        acked_seq: (0..capacity).map(|_| std::sync::atomic::AtomicI64::new(0)).collect(),
        contacts,
        text: "x".repeat(opts.size.max(1)),
        steps: opts
            .rates
            .iter()
            .map(|_| Step {
                k_start: AtomicU64::new(u64::MAX),
                k_end: AtomicU64::new(u64::MAX),
                acked: AtomicU64::new(0),
                received: AtomicU64::new(0),
                last_ack_us: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                late: AtomicU64::new(0),
                slowest_answer_us: AtomicU64::new(0),
                seq_mismatch: AtomicU64::new(0),
            })
            .collect(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    let mut attach = |ws: Ws, xmpp: bool| {
        let (sink, rx) = ws.split();
        let (tx, wrx) = mpsc::unbounded_channel();
        tokio::spawn(writer(sink, wrx));
        let pending: Option<Pending> = xmpp.then(Pending::default);
        let proto = match &pending {
            Some(p) => Proto::Xmpp { pending: p.clone(), reply: tx.clone() },
            None => Proto::Helpline { resend: tx.clone() },
        };
        readers.push(tokio::spawn(reader(rx, shared.clone(), stop_rx.clone(), proto)));
        Endpoint { tx, pending }
    };
    let mut convs: Vec<Pair> = Vec::new();
    match opened {
        Opened::Helpline(agents, conversations) => {
            let agent_eps: Vec<Endpoint> = agents.into_iter().map(|ws| attach(ws, false)).collect();
            for c in conversations {
                let caller = attach(c.caller, false);
                convs.push(Pair { caller, agent: agent_eps[c.agent].clone(), contact: c.contact_id, agent_jid: String::new() });
            }
        }
        Opened::Xmpp(pairs) => {
            for p in pairs {
                let caller = attach(p.caller, true);
                let agent = attach(p.agent, true);
                convs.push(Pair { caller, agent, contact: p.caller_jid, agent_jid: p.agent_jid });
            }
        }
    }
    if let Some(r) = &opts.ready {
        r.notify_one();
    }
    let text: String = "x".repeat(opts.size.max(1));
    let mut k: u64 = 0;
    let mut reports = Vec::new();
    let mut step_meta = Vec::new();
    // When each step's wait ended (µs since T0).
    let mut step_end_us: Vec<u64> = Vec::new();
    for (si, &rate) in opts.rates.iter().enumerate() {
        let step = &shared.steps[si];
        let total = (rate * opts.duration.as_secs_f64()).round() as u64;
        step.k_start.store(k, Ordering::Relaxed);
        step.k_end.store(k + total, Ordering::Relaxed);
        let server = target.meter();
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
                let from_caller = shared.sent_by_caller(k);
                if let Some(cell) = shared.sent_us.get(k as usize) {
                    cell.store(shared.t0.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                convs[conv].send(from_caller, &format!("{tag}:{k}:{t_us}"), &text);
                k += 1;
                sent += 1;
            }
        }
        let send_s = start.elapsed().as_secs_f64();
        // Drain: wait for every ack and delivery of this step, up to `drain`.
        let drain_until = Instant::now() + opts.drain;
        while Instant::now() < drain_until && (step.acked.load(Ordering::Relaxed) < total || step.received.load(Ordering::Relaxed) < total)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        step_end_us.push(shared.t0.elapsed().as_micros() as u64);
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
    for p in &convs {
        if p.agent.pending.is_none() {
            let _ = p.agent.tx.send(json!({"type": "end", "contact_id": p.contact}).to_string());
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(convs);

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
        // At the end of the wait: a message never acked whose last send is older than the answer
        // limit went unanswered (it was neither acked nor refused: a refusal is sent again, and
        // the resend is its last send); one sent again less than the limit ago is still `pending`.
        let (mut lost, mut never_answered, mut pending, mut never_acked, mut dup) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let end_us = step_end_us.get(si).copied().unwrap_or(u64::MAX);
        for (cell, sent) in shared.state[ks as usize..ke as usize].iter().zip(&shared.sent_us[ks as usize..ke as usize]) {
            let v = cell.load(Ordering::Relaxed);
            let (a, r) = (v & 0xFFFF, v >> 16);
            if r == 0 {
                lost += 1;
            }
            if a == 0 {
                never_acked += 1;
                if end_us.saturating_sub(sent.load(Ordering::Relaxed)) > ANSWER_LIMIT.as_micros() as u64 {
                    never_answered += 1;
                } else {
                    pending += 1;
                }
            }
            if r > 1 {
                dup += 1;
            }
        }
        let late = step.late.load(Ordering::Relaxed);
        let unacked = never_answered + late;
        // Which messages were not delivered (the first few), to look for in the server's log.
        let undelivered: Vec<String> = (ks..ke)
            .filter(|k| shared.state.get(*k as usize).is_some_and(|c| c.load(Ordering::Relaxed) >> 16 == 0))
            .take(5)
            .map(|k| {
                let who = if shared.sent_by_caller(k) { "caller" } else { "counsellor" };
                let conv = shared.contacts.get((k % shared.n as u64) as usize).cloned().unwrap_or_default();
                format!("k={k} from the {who} of {conv}")
            })
            .collect();
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
        rep.count("answered_late", late);
        rep.count("never_acked", never_acked);
        rep.count("pending_at_end", pending);
        rep.count("refused", step.refused.load(Ordering::Relaxed));
        rep.count("duplicated", dup + step.seq_mismatch.load(Ordering::Relaxed));
        rep.figures.insert("slowest_answer_s".into(), step.slowest_answer_us.load(Ordering::Relaxed) as f64 / 1e6);
        rep.figures.insert("wait_s".into(), opts.drain.as_secs_f64());
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
        if !undelivered.is_empty() {
            rep.notes.push(format!("not delivered (first {}): {}", undelivered.len(), undelivered.join("; ")));
        }
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

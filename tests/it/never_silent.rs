//! Never silent: every message the server reads is answered in time (acknowledged, or refused as
//! `overloaded` with `retry_after_ms`), also when the database writer stalls and the queues are full;
//! a refused message sent again with its client id is stored once.
//!
//! The real binary, with its first commit of messages held for 3 s (`relay-before-commit`) and the
//! answer time set to 1 s: 25 callers flood more messages at once than the relay's queue holds.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::durability::spawn_helpline_with;
use crate::helpers::{Backend, TestApp, TestDb, Ws};

crate::on_both_backends!(
    every_message_is_answered_in_time_when_the_writer_stalls,
    a_message_over_the_rate_is_refused_by_name,
    a_telephony_event_is_answered_in_time_when_handling_it_stalls
);

/// Callers flooding at once, and messages each: more than the relay's queue (4,096) and one batch
/// (256) together, none over a socket's outbox (512 frames).
const CALLERS: usize = 25;
const PER_CALLER: usize = 200;
const MESSAGES: usize = PER_CALLER;
/// The promise made to clients.
const PROMISE: Duration = Duration::from_secs(10);

async fn every_message_is_answered_in_time_when_the_writer_stalls(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let (_child, addr) = spawn_helpline_with(
        &db.url,
        &["--answer-within-ms", "1000", "--ws-rate-per-sec", "0", "--contacts-per-ip-per-min", "0"],
        &[("FAILPOINTS", "relay-before-commit=1*return(3000)")],
        "never-silent-test-secret-never-silent",
        "warn",
    )
    .await;
    // The callers start their chats, then all flood at once.
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let mut caller = Ws::connect(&format!("ws://{addr}/ws/caller")).await;
        caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
        let queued = caller.expect("queued").await;
        callers.push((queued["contact_id"].as_str().expect("contact id").to_string(), caller));
    }
    let mut runs = Vec::new();
    for (contact, caller) in callers {
        runs.push(tokio::spawn(async move { (contact, flood(caller).await) }));
    }
    let store = helpline::store::Store::connect(&db.url).await.expect("store");
    let (mut refusals, mut second_acks, mut slowest) = (0, 0, Duration::ZERO);
    for run in runs {
        let (contact, flooded) = run.await.expect("a caller's run");
        refusals += flooded.refusals;
        second_acks += flooded.second_acks;
        slowest = slowest.max(flooded.slowest);
        // The conversation as the server kept it: each message once.
        let history = store.messages().messages_after(&contact, 0).await.expect("history");
        assert_eq!(history.len(), PER_CALLER);
        let distinct: HashSet<&str> = history.iter().map(|m| m.client_id.as_str()).collect();
        assert_eq!(distinct.len(), PER_CALLER, "no message stored twice");
    }
    assert!(refusals > 0, "the stalled writer and the full queue must have refused some messages");
    eprintln!("{CALLERS} x {PER_CALLER} messages: {refusals} refusals, {second_acks} second acks, slowest first answer {slowest:?}");
}

/// What one flooding caller saw.
struct Flooded {
    refusals: usize,
    second_acks: usize,
    slowest: Duration,
}

/// Sends [`PER_CALLER`] messages at once, then sends each refused one again after its
/// `retry_after_ms` until all are acked. Every send must be answered within [`PROMISE`]; each
/// message is acked with one seq, seqs 1..=PER_CALLER.
async fn flood(caller: Ws) -> Flooded {
    let (mut tx, mut rx) = caller.stream.split();
    // The reader runs on its own, as a client's does: every answer, with when it was read.
    let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel::<(Value, Instant)>();
    let reader = tokio::spawn(async move {
        while let Some(next) = rx.next().await {
            match next {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                    if answers_tx.send((v, Instant::now())).is_err() {
                        return;
                    }
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("the socket must stay open; got {other:?}"),
            }
        }
    });
    let ids: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
    let frame = |id: &str| Message::Text(json!({"type": "message", "client_id": id, "text": format!("text {id}")}).to_string().into());
    // When each message was last handed to the socket.
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    for id in &ids {
        sent_at.insert(id.clone(), Instant::now());
        tx.feed(frame(id)).await.expect("send");
    }
    tx.flush().await.expect("flush");

    // Every send must be answered (ack or refusal) within the promise; a refused message is sent
    // again after retry_after_ms, as the widget does, until every message is acked.
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut waiting: HashSet<String> = ids.iter().cloned().collect();
    let mut resend_at: Vec<(Instant, String)> = Vec::new();
    let (mut refusals, mut second_acks, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < MESSAGES {
        assert!(Instant::now() < deadline, "only {} of {MESSAGES} acked after 60 s ({refusals} refusals)", acked.len());
        let now = Instant::now();
        if let Some(id) = waiting.iter().find(|id| now.duration_since(sent_at[*id]) > PROMISE) {
            panic!("message {id} was read and left unanswered for over {PROMISE:?}");
        }
        // Resend what is due.
        let (due, later): (Vec<_>, Vec<_>) = resend_at.drain(..).partition(|(at, _)| *at <= now);
        resend_at = later;
        for (_, id) in due {
            if !acked.contains_key(&id) {
                sent_at.insert(id.clone(), Instant::now());
                waiting.insert(id.clone());
                tx.send(frame(&id)).await.expect("resend");
            }
        }
        let Ok(Some((v, read_at))) = tokio::time::timeout(Duration::from_millis(50), answers.recv()).await else { continue };
        let (id, refused) = match v["type"].as_str() {
            Some("ack") => (v["client_id"].as_str().expect("client_id").to_string(), false),
            Some("error") if v["code"] == "overloaded" => {
                (v["ref"].as_str().expect("an overloaded refusal names the message").to_string(), true)
            }
            // `unavailable`: told after `queued` when nobody is on shift (docs/protocol.md).
            Some("position" | "typing" | "unavailable") => continue,
            _ => panic!("unexpected frame {v}"),
        };
        let took = read_at.duration_since(*sent_at.get(&id).expect("an answer to a message sent"));
        if waiting.remove(&id) {
            slowest = slowest.max(took);
            assert!(took <= PROMISE, "message {id} answered after {took:?}: {v}");
        }
        if refused {
            refusals += 1;
            let retry = v["retry_after_ms"].as_u64().expect("retry_after_ms");
            assert!(retry > 0, "{v}");
            if !acked.contains_key(&id) {
                resend_at.push((Instant::now() + Duration::from_millis(retry), id));
            }
        } else {
            let seq = v["seq"].as_i64().expect("seq");
            if let Some(earlier) = acked.insert(id.clone(), seq) {
                // A late ack of the first copy and the repeat's ack: one stored message.
                assert_eq!(earlier, seq, "message {id} acked with two seqs: stored twice");
                second_acks += 1;
            }
        }
    }
    reader.abort();
    // Every message stored once: seqs 1..=MESSAGES, one per message.
    let mut seqs: Vec<i64> = acked.values().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=MESSAGES as i64).collect::<Vec<_>>(), "each message stored exactly once, no gaps");
    Flooded { refusals, second_acks, slowest }
}

/// A caller typing faster than the per-socket rate (a burst of 40, then 20 a second): every message
/// over it is refused by name (`rate_limited`, its `client_id`, `retry_after_ms`), never dropped
/// unanswered; sent again after `retry_after_ms`, each is stored once.
async fn a_message_over_the_rate_is_refused_by_name(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().expect("contact id").to_string();
    const N: usize = 50;
    let frame = |i: usize| json!({"type": "message", "client_id": format!("r{i}"), "text": format!("fast {i}")});
    for i in 0..N {
        caller.send(frame(i)).await;
    }
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut refused = 0;
    // Every message gets an answer; a refused one is sent again when the server says.
    while acked.len() < N {
        let v = caller.recv().await;
        match v["type"].as_str() {
            Some("ack") => {
                acked.insert(v["client_id"].as_str().expect("client_id").to_string(), v["seq"].as_i64().expect("seq"));
            }
            Some("error") => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                let id = v["ref"].as_str().expect("the refusal names the message").to_string();
                let wait = v["retry_after_ms"].as_u64().expect("retry_after_ms");
                assert!((1..=1_000).contains(&wait), "{v}");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let i: usize = id[1..].parse().expect("r<i>");
                caller.send(frame(i)).await;
            }
            Some("position" | "unavailable") => {}
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(refused > 0, "a burst of {N} is over the rate");
    let mut seqs: Vec<i64> = acked.values().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=N as i64).collect::<Vec<_>>());
    assert_eq!(app.store.messages().messages_after(&contact, 0).await.expect("history").len(), N, "each stored once");
}

/// A telephone exchange's event whose handling stalls (`telephony-before-event` holds it 3 s) is
/// answered in time all the same: `overloaded` naming its `event_id`, with `retry_after_ms`; its
/// late `ack` follows, and sent again it is acknowledged once more and stored once.
async fn a_telephony_event_is_answered_in_time_when_handling_it_stalls(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let store = helpline::store::Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    let token = format!("pbx-token-{}", uuid::Uuid::new_v4().simple());
    store.exchanges().create_gateway("pbx", &helpline::auth::token_hash(&token), 0).await.expect("gateway");
    let (_child, addr) = spawn_helpline_with(
        &db.url,
        &["--answer-within-ms", "1000"],
        &[("FAILPOINTS", "telephony-before-event=1*return(3000)")],
        "never-silent-test-secret-never-silent",
        "warn",
    )
    .await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws/telephony").into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("the exchange connects");
    let mut pbx = Ws { stream };
    let at = helpline::clock::Clock::adjustable().now_ms();
    let offered =
        json!({"type": "call_offered", "event_id": "slow-1", "call_id": "k1", "dialled": "116111", "caller": "069123456", "at": at});
    let sent = Instant::now();
    pbx.send(offered.clone()).await;
    let first = pbx.recv().await;
    assert_eq!(
        (first["type"].as_str(), first["code"].as_str(), first["ref"].as_str()),
        (Some("error"), Some("overloaded"), Some("slow-1")),
        "{first}"
    );
    assert!(first["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{first}");
    assert!(sent.elapsed() < PROMISE, "answered after {:?}", sent.elapsed());
    // The stalled handling finishes: its ack comes late; sent again, the event is acknowledged again.
    let late = pbx.recv().await;
    assert_eq!((late["type"].as_str(), late["event_id"].as_str()), (Some("ack"), Some("slow-1")), "{late}");
    pbx.send(offered).await;
    let again = pbx.recv().await;
    assert_eq!((again["type"].as_str(), again["event_id"].as_str()), (Some("ack"), Some("slow-1")), "{again}");
    let calls = store.calls().open_calls().await.expect("calls");
    assert_eq!(calls.iter().filter(|c| c.call_id == "k1").count(), 1, "the call stored once");
}

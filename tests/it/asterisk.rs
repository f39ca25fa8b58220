//! The Asterisk adapter end to end: the real `helpline asterisk` process between the ARI fake
//! (`ari_fake.rs`, checked against Asterisk's published ARI description on every request and event)
//! and the real server, with counsellors on real sockets; the call records are checked.

use std::process::Stdio;

use helpline::store::calls::CallRecord;
use helpline::store::Store;
use serde_json::json;

use crate::ari_fake::{AriFake, ARI_PASSWORD, ARI_USER};
use crate::durability::Server;
use crate::exchange::add_gateway;
use crate::helpers::{Backend, TestApp, FRAME_TIMEOUT};
use crate::telephony::{ana_available, call_offer, counsellor, prepare_calls};

crate::on_both_backends!(
    a_call_is_answered_bridged_and_ended_by_the_caller_with_its_record_complete,
    the_counsellor_holds_resumes_and_hangs_up_from_her_console,
    a_caller_who_hangs_up_while_waiting_is_abandoned,
    a_call_nobody_takes_in_time_rings_the_next_counsellor,
    the_adapter_killed_mid_call_and_restarted_duplicates_nothing_and_completes_the_record,
    a_dropped_ari_socket_is_reopened_and_what_happened_meanwhile_is_recorded,
    the_server_killed_mid_call_gets_the_end_when_it_is_back,
);

/// The `helpline asterisk` process.
pub(crate) struct Adapter(tokio::process::Child);

impl Adapter {
    /// Starts the adapter against the fake and the server at `hub` (`host:port`).
    pub(crate) fn start(fake: &AriFake, hub: &str, token: &str) -> Adapter {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_helpline"))
            .args(["asterisk", "--ari-url", &fake.url(), "--ari-user", ARI_USER, "--hub", &format!("http://{hub}")])
            .env("HELPLINE_ARI_PASSWORD", ARI_PASSWORD)
            .env("HELPLINE_GATEWAY_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the adapter");
        Adapter(child)
    }

    pub(crate) async fn sigkill(mut self) {
        self.0.start_kill().expect("SIGKILL");
        let status = self.0.wait().await.expect("wait");
        assert!(!status.success(), "killed, not exited");
    }
}

/// Polls the call record of `contact` until `check` holds.
async fn record_until(store: &Store, contact: &str, what: &str, check: impl Fn(&CallRecord) -> bool) -> CallRecord {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        if let Some(r) = store.calls().call_record(contact).await.expect("read") {
            if check(&r) {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the call record never became {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Ana (201) available on `app`, a gateway, the fake and the adapter connected.
async fn setup(app: &TestApp) -> (crate::helpers::Ws, AriFake, Adapter, String) {
    counsellor(app, "ana", Some("201")).await;
    let ana = app.available_agent("ana").await;
    let token = add_gateway(app, "asterisk").await;
    let fake = AriFake::start().await;
    let adapter = Adapter::start(&fake, &app.addr.to_string(), &token);
    fake.connected(1).await;
    (ana, fake, adapter, token)
}

/// A call from `caller` until Ana's phone picks up and the two are bridged; returns the contact,
/// the leg and the times (offered, answered).
async fn bridged_call(fake: &AriFake, ana: &mut crate::helpers::Ws, call: &str) -> (String, String, i64, i64) {
    let t0 = fake.incoming(call, "116111", "+373 69 123 456", "ro");
    fake.request(&format!("POST /ari/channels/{call}/answer")).await;
    fake.music(call, true).await;
    let (contact, offer) = call_offer(ana).await;
    assert_eq!(
        (offer["helpline"].as_str(), offer["caller_last2"].as_str(), offer["language"].as_str()),
        (Some("children"), Some("56"), Some("ro")),
        "{offer}"
    );
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    let (leg, t1) = fake.answer_leg("201").await;
    fake.bridged(&format!("helpline-{call}"), &[call, &leg]).await;
    fake.music(call, false).await;
    (contact, leg, t0, t1)
}

async fn a_call_is_answered_bridged_and_ended_by_the_caller_with_its_record_complete(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    let (contact, leg, t0, t1) = bridged_call(&fake, &mut ana, "1765.1").await;
    record_until(&app.store, &contact, "answered", |r| r.answered_at.is_some()).await;

    let t2 = fake.hang_up("1765.1");
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());
    fake.gone(&leg).await;
    let r = record_until(&app.store, &contact, "ended", |r| r.ended_at.is_some()).await;
    assert_eq!(r.outcome.as_deref(), Some("answered"));
    assert_eq!((r.offered_at, r.answered_at, r.ended_at), (t0, Some(t1), Some(t2)), "the exchange's own times");
    assert_eq!((r.wait_ms, r.talk_ms), (Some(t1 - t0), Some(t2 - t1)));
    assert_eq!((r.ended_by.as_deref(), r.dialled.as_deref(), r.call_id.as_str()), (Some("caller"), Some("116111"), "1765.1"));
    fake.check();
}

async fn the_counsellor_holds_resumes_and_hangs_up_from_her_console(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    let (contact, leg, ..) = bridged_call(&fake, &mut ana, "1765.2").await;
    let bridge = "helpline-1765.2";

    ana.send(json!({"type": "call_hold", "contact_id": contact})).await;
    assert_eq!(ana.expect("call_control").await["action"], "hold");
    fake.bridged(bridge, &[&leg]).await;
    fake.music("1765.2", true).await;
    ana.send(json!({"type": "call_resume", "contact_id": contact})).await;
    assert_eq!(ana.expect("call_control").await["action"], "resume");
    fake.bridged(bridge, &["1765.2", &leg]).await;
    fake.music("1765.2", false).await;

    ana.send(json!({"type": "call_hangup", "contact_id": contact})).await;
    assert_eq!(ana.expect("call_control").await["action"], "hangup");
    fake.gone("1765.2").await;
    fake.gone(&leg).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());
    let r = record_until(&app.store, &contact, "ended", |r| r.ended_at.is_some()).await;
    assert_eq!((r.outcome.as_deref(), r.ended_by.as_deref()), (Some("answered"), Some("counsellor")));
    fake.check();
}

async fn a_caller_who_hangs_up_while_waiting_is_abandoned(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    let t0 = fake.incoming("1765.3", "116111", "069000003", "ro");
    let (contact, _) = call_offer(&mut ana).await;
    let t1 = fake.hang_up("1765.3");
    let r = record_until(&app.store, &contact, "abandoned", |r| r.outcome.is_some()).await;
    assert_eq!(r.outcome.as_deref(), Some("abandoned_short"), "hung up within 5 s");
    assert_eq!((r.answered_at, r.ended_at, r.wait_ms), (None, Some(t1), Some(t1 - t0)));
    assert!(!fake.requests().iter().any(|line| line.starts_with("POST /ari/channels?")), "no counsellor's phone rang");
    fake.check();
}

async fn a_call_nobody_takes_in_time_rings_the_next_counsellor(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.ring_timeout_ms = 1_000;
        }
    })
    .await
    else {
        return;
    };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    counsellor(&app, "ion", Some("202")).await;
    let mut ion = app.available_agent("ion").await;
    fake.incoming("1765.4", "116111", "069000004", "ro");
    // Ana has been idle longest: the call rings on her console, she lets it ring out.
    let (contact, _) = call_offer(&mut ana).await;
    assert_eq!(ana.expect("offer_revoked").await["reason"], "expired");
    let (again, _) = call_offer(&mut ion).await;
    assert_eq!(again, contact);
    ion.send(json!({"type": "accept", "contact_id": contact})).await;
    ion.expect("assigned").await;
    let (leg, t1) = fake.answer_leg("202").await;
    fake.bridged("helpline-1765.4", &["1765.4", &leg]).await;
    let r = record_until(&app.store, &contact, "answered", |r| r.answered_at.is_some()).await;
    assert_eq!(r.answered_at, Some(t1));
    assert!(!fake.requests().iter().any(|line| line.contains("endpoint=PJSIP/201")), "Ana's phone never rang");
    fake.check();
}

async fn the_adapter_killed_mid_call_and_restarted_duplicates_nothing_and_completes_the_record(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (mut ana, fake, adapter, token) = setup(&app).await;
    let (contact, leg, t0, t1) = bridged_call(&fake, &mut ana, "1765.5").await;
    record_until(&app.store, &contact, "answered", |r| r.answered_at.is_some()).await;

    adapter.sigkill().await;
    let before = fake.requests().len();
    let _adapter = Adapter::start(&fake, &app.addr.to_string(), &token);
    fake.connected(2).await;
    // The restarted adapter takes the call up from Asterisk's channels: the same event ids (the hub
    // acknowledges repeats and changes nothing), and nothing is done again to the bridged channels.
    let open = app.store.calls().open_calls().await.expect("open calls");
    assert_eq!(open.iter().filter(|c| c.call_id == "1765.5").count(), 1, "one call, not two");

    // Ana's phone hangs up: the call ends, by the counsellor.
    let t2 = fake.hang_up(&leg);
    fake.gone("1765.5").await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());
    let r = record_until(&app.store, &contact, "ended", |r| r.ended_at.is_some()).await;
    assert_eq!((r.offered_at, r.answered_at, r.ended_at), (t0, Some(t1), Some(t2)));
    assert_eq!((r.outcome.as_deref(), r.ended_by.as_deref()), (Some("answered"), Some("counsellor")));
    let again: Vec<String> = fake.requests()[before..]
        .iter()
        .filter(|l| l.contains("/answer") || l.contains("/moh") || l.starts_with("POST /ari/channels?"))
        .cloned()
        .collect();
    assert!(again.is_empty(), "the restarted adapter did things again: {again:?}");
    fake.check();
}

async fn a_dropped_ari_socket_is_reopened_and_what_happened_meanwhile_is_recorded(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    let (contact, leg, ..) = bridged_call(&fake, &mut ana, "1765.6").await;
    record_until(&app.store, &contact, "answered", |r| r.answered_at.is_some()).await;
    // The event socket drops, and the caller hangs up before it is back: no event tells the adapter.
    fake.drop_sockets();
    fake.hang_up("1765.6");
    fake.connected(2).await;
    // Reopened, the adapter sees the caller's channel gone: the call ended, by the caller, and the
    // counsellor's leg is hung up.
    fake.gone(&leg).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());
    let r = record_until(&app.store, &contact, "ended", |r| r.ended_at.is_some()).await;
    assert_eq!((r.outcome.as_deref(), r.ended_by.as_deref()), (Some("answered"), Some("caller")));
    fake.check();
}

async fn the_server_killed_mid_call_gets_the_end_when_it_is_back(backend: Backend) {
    let Some((db, store, _ana, token, _)) = prepare_calls(backend).await else { return };
    let server = Server::start(&db.url).await;
    let addr = server.addr.clone();
    let mut ana = ana_available(&server).await;
    let fake = AriFake::start().await;
    let _adapter = Adapter::start(&fake, &addr, &token);
    fake.connected(1).await;
    let (contact, leg, t0, t1) = bridged_call(&fake, &mut ana, "1765.7").await;
    let answered = || async { store.calls().call_record(&contact).await.expect("read").is_some_and(|r| r.answered_at.is_some()) };
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    while !answered().await {
        assert!(tokio::time::Instant::now() < deadline, "never answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The server dies; the caller hangs up meanwhile; the server comes back on the same address.
    server.sigkill().await;
    drop(ana);
    let t2 = fake.hang_up("1765.7");
    fake.gone(&leg).await;
    let (child, _) = crate::durability::spawn_helpline(&db.url, &["--listen", &addr], "durability-test-secret-durability", "warn").await;
    let _server = Server { child, addr, http: reqwest::Client::new() };
    // The adapter sent the end again until the new server stored it.
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    let r = loop {
        if let Some(r) = store.calls().call_record(&contact).await.expect("read").filter(|r| r.ended_at.is_some()) {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "the end never reached the server");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((r.offered_at, r.answered_at, r.ended_at), (t0, Some(t1), Some(t2)));
    assert_eq!((r.outcome.as_deref(), r.ended_by.as_deref()), (Some("answered"), Some("caller")));
    fake.check();
}

/// The fake holds the adapter to ARI's description: an undocumented path, method or parameter, a
/// missing required parameter, a value of the wrong type and an event without a required field are
/// refused and recorded.
#[tokio::test]
async fn the_ari_fake_refuses_what_ari_does_not_document() {
    let fake = AriFake::start().await;
    let http = reqwest::Client::new();
    let ari =
        |m: reqwest::Method, path: &str| http.request(m, format!("{}/ari{path}", fake.url())).basic_auth(ARI_USER, Some(ARI_PASSWORD));
    let status = |r: reqwest::Response| r.status().as_u16();

    let r = ari(reqwest::Method::POST, "/channels/17.1/explode").send().await.expect("request");
    assert_eq!(status(r), 404);
    let r = ari(reqwest::Method::PUT, "/channels/17.1/answer").send().await.expect("request");
    assert_eq!(status(r), 400);
    let r = ari(reqwest::Method::POST, "/channels/create?endpoint=PJSIP/201").send().await.expect("request");
    assert_eq!(status(r), 400, "app is required");
    let r = ari(reqwest::Method::POST, "/channels/17.1/moh?volume=11").send().await.expect("request");
    assert_eq!(status(r), 400);
    let r = ari(reqwest::Method::POST, "/channels?endpoint=PJSIP/201&app=helpline&timeout=soon").send().await.expect("request");
    assert_eq!(status(r), 400, "timeout is an int");
    let r = http.get(format!("{}/ari/channels", fake.url())).send().await.expect("request");
    assert_eq!(status(r), 401);
    fake.emit(json!({"type": "StasisStart", "application": "helpline", "timestamp": crate::ari_fake::ari_time(0), "channel": {"id": "x"}}));
    fake.emit(json!({"type": "NoSuchEvent", "application": "helpline", "timestamp": crate::ari_fake::ari_time(0)}));

    let refused = fake.take_violations();
    let has = |s: &str| refused.iter().any(|v| v.contains(s));
    assert_eq!(refused.len(), 8, "{refused:#?}");
    assert!(
        has("no such path") && has("method not documented") && has("\"app\" is missing") && has("\"volume\" is not documented"),
        "{refused:#?}"
    );
    assert!(
        has("not a int") && has("credentials") && has("required field \"args\"") && has("\"NoSuchEvent\" is not an ARI event"),
        "{refused:#?}"
    );
    assert!(has("required field \"caller\""), "a Channel inside an event is checked too: {refused:#?}");

    // Documented requests with their required parameters pass.
    let r = ari(reqwest::Method::GET, "/channels").send().await.expect("request");
    assert_eq!(status(r), 200);
    fake.check();
}

/// `helpline asterisk --help` documents every setting, and the secrets are no flags.
#[test]
fn the_adapter_documents_every_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_helpline")).args(["asterisk", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for setting in [
        "--ari-url",
        "--ari-user",
        "--ari-password-file",
        "HELPLINE_ARI_PASSWORD",
        "--app",
        "--hub",
        "--gateway-token-file",
        "HELPLINE_GATEWAY_TOKEN",
        "--dial",
        "PJSIP/{extension}",
        "--ring-timeout",
        "--moh-class",
        "--reject-media",
    ] {
        assert!(help.contains(setting), "{setting} is not in the help:\n{help}");
    }
    assert!(!help.contains("--ari-password ") && !help.contains("--gateway-token "), "a secret as a flag:\n{help}");
    // Without its secrets the adapter refuses to start, naming what is missing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_helpline"))
        .args(["asterisk"])
        .env_remove("HELPLINE_ARI_PASSWORD")
        .env_remove("HELPLINE_GATEWAY_TOKEN")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ARI password"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The benchmark of BENCHMARKS.md ("The Asterisk adapter: offer to bridge"): 30 calls one after the
/// other through the real server and adapter (SQLite); prints the time from a caller's `StasisStart`
/// to the console's offer, from the console's accept to the originate request at ARI, and from the
/// leg's `StasisStart` to the bridge request. Run with
/// `cargo test --test it -- --ignored asterisk::offer_to_bridge --nocapture`.
#[tokio::test]
#[ignore = "a benchmark: run by hand, figures in BENCHMARKS.md"]
async fn offer_to_bridge() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let (mut ana, fake, _adapter, _) = setup(&app).await;
    let (mut offered, mut connected, mut bridged) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let call = format!("1800.{i}");
        let start = std::time::Instant::now();
        fake.incoming(&call, "116111", "069000000", "ro");
        let (contact, _) = call_offer(&mut ana).await;
        offered.push(start.elapsed());
        let before = fake.requests().len();
        let accept = std::time::Instant::now();
        ana.send(json!({"type": "accept", "contact_id": contact})).await;
        let (i_originate, at) = fake.request_after(before, "POST /ari/channels?").await;
        connected.push(at - accept);
        ana.expect("assigned").await;
        let up = std::time::Instant::now();
        let (leg, _) = fake.answer_leg("201").await;
        let (_, at) = fake.request_after(i_originate + 1, &format!("POST /ari/bridges/helpline-{call}/addChannel")).await;
        bridged.push(at - up);
        fake.hang_up(&leg);
        ana.expect("contact_ended").await;
        ana.send(json!({"type": "ready", "contact_id": contact})).await;
        fake.gone(&call).await;
    }
    let show = |name: &str, v: &mut Vec<std::time::Duration>| {
        v.sort();
        println!("{name}: p50 {:?}, p90 {:?}, max {:?}", v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() - 1]);
    };
    show("StasisStart -> console offer", &mut offered);
    show("console accept -> originate at ARI", &mut connected);
    show("leg StasisStart -> bridge addChannel", &mut bridged);
    fake.check();
}

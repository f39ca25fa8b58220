//! Supervisors: the live board, wait alerts, and interventions (whisper, monitor, join, transfer, move), over real sockets.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, Ws};

crate::on_both_backends!(
    board_alerts_and_interventions,
    supervisor_socket_refuses_counsellors,
    prometheus_metrics,
    transfer_to_helpline_keeps_first_answer,
    a_board_bigger_than_the_socket_write_buffer_reaches_the_supervisor
);

/// A supervisor socket for `username`.
pub(crate) async fn supervisor(app: &TestApp, username: &str) -> Ws {
    let token = app.login(username).await;
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(&token).send().await.unwrap();
    let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    Ws::connect(&format!("ws://{}/ws/supervisor?ticket={ticket}", app.addr)).await
}

/// Reads until a frame of `kind` satisfying `pred` arrives, skipping the board and other alerts.
pub(crate) async fn until(ws: &mut Ws, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + crate::helpers::FRAME_TIMEOUT;
    let mut last = Value::Null;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no matching {kind} frame in time; last frame: {last}");
        let v = ws.recv().await;
        last = v.clone();
        if v["type"] == kind && pred(&v) {
            return v;
        }
        assert!(
            ["dashboard", "alert", "position", "typing", "caller_presence", "monitoring", "message"]
                .contains(&v["type"].as_str().unwrap_or("")),
            "unexpected frame while waiting for {kind}: {v}"
        );
    }
}

pub(crate) fn waiting_ids(board: &Value, helpline: &str) -> Vec<String> {
    board["helplines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == helpline)
        .flat_map(|h| h["waiting"].as_array().unwrap().iter().map(|w| w["contact_id"].as_str().unwrap().to_string()))
        .collect()
}

async fn board_alerts_and_interventions(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.sla_at_risk_ms = 300;
            h.sla_target_ms = 600;
            h.backup_after_ms = 300;
        }
    })
    .await
    else {
        return;
    };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let ion_id = app.store.accounts().user_with_hash("ion").await.unwrap().unwrap().0.id;

    let mut sup = supervisor(&app, "maria").await;
    let first = sup.recv().await;
    assert_eq!(first["type"], "dashboard", "the board comes at once");
    let names: Vec<&str> = first["helplines"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["children"], "a supervisor sees only their helplines");
    assert_eq!((first["helplines"][0]["sla_at_risk_ms"].as_i64(), first["helplines"][0]["sla_target_ms"].as_i64()), (Some(300), Some(600)));

    // A caller waits: the board shows the contact, then the 10 s and 15 s alerts (300/600 ms here).
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    // The board and the alerts interleave: collect until all three were seen.
    let (mut on_board, mut at_risk, mut breached) = (None, None, None);
    let deadline = tokio::time::Instant::now() + crate::helpers::FRAME_TIMEOUT;
    while on_board.is_none() || at_risk.is_none() || breached.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "board {on_board:?}, alerts {at_risk:?} {breached:?}");
        let v = sup.recv().await;
        match (v["type"].as_str(), v["kind"].as_str()) {
            (Some("dashboard"), _) if waiting_ids(&v, "children").contains(&contact_id) => {
                on_board.get_or_insert(v["helplines"][0]["waiting"][0].clone());
            }
            (Some("alert"), Some("wait_10s")) => at_risk = Some(v),
            (Some("alert"), Some("wait_15s")) => {
                assert!(at_risk.is_some(), "the 10 s alert comes first");
                breached = Some(v);
            }
            _ => {}
        }
    }
    let w = on_board.unwrap();
    assert_eq!(w["contact_id"], contact_id.as_str());
    assert!(w["waited_ms"].as_i64().unwrap() >= 0);
    let (at_risk, breached) = (at_risk.unwrap(), breached.unwrap());
    assert_eq!((at_risk["contact_id"].as_str(), at_risk["helpline"].as_str()), (Some(contact_id.as_str()), Some("children")));
    assert_eq!(breached["contact_id"], contact_id.as_str());

    // A counsellor answers: the contact leaves the board.
    let mut ana = app.available_agent("ana").await;
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact_id})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let board = until(&mut sup, "dashboard", |b| !waiting_ids(b, "children").contains(&contact_id)).await;
    let ana_row = board["counsellors"].as_array().unwrap().iter().find(|c| c["active"][0] == contact_id.as_str());
    assert!(ana_row.is_some(), "the counsellor's row lists the conversation: {board}");
    caller.send(json!({"type": "message", "client_id": "c1", "text": "ajutor"})).await;
    caller.expect("ack").await;
    ana.expect("message").await;

    // Whisper: the counsellor sees it, the caller never does.
    sup.send(json!({"type": "whisper", "contact_id": contact_id, "text": "ask if she is safe now"})).await;
    until(&mut sup, "done", |d| d["request"] == "whisper").await;
    let whisper = ana.expect("whisper").await;
    assert_eq!((whisper["text"].as_str(), whisper["from"].as_str()), (Some("ask if she is safe now"), Some("maria display")));
    ana.send(json!({"type": "message", "contact_id": contact_id, "client_id": "a1", "text": "Ești în siguranță?"})).await;
    ana.expect("ack").await;
    let next = caller.recv().await;
    assert_eq!((next["type"].as_str(), next["seq"].as_i64()), (Some("message"), Some(2)), "no whisper for the caller");

    // Monitor: the history, then live messages.
    sup.send(json!({"type": "monitor", "contact_id": contact_id})).await;
    let monitoring = until(&mut sup, "monitoring", |_| true).await;
    assert_eq!(monitoring["history"].as_array().unwrap().len(), 2);
    caller.send(json!({"type": "message", "client_id": "c2", "text": "da"})).await;
    caller.expect("ack").await;
    ana.expect("message").await;
    assert_eq!(until(&mut sup, "message", |_| true).await["seq"], 3);

    // Transfer to Ion: Ana's pane closes, Ion gets the history, the caller is told who answers now.
    let mut ion = app.available_agent("ion").await;
    sup.send(json!({"type": "transfer", "contact_id": contact_id, "counsellor_id": ion_id})).await;
    until(&mut sup, "done", |d| d["request"] == "transfer").await;
    let ended = ana.expect("contact_ended").await;
    assert_eq!(ended["reason"], "transferred");
    let assigned = ion.expect("assigned").await;
    let seqs: Vec<i64> = assigned["history"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(caller.expect("connected").await["counsellor"], "ion display");
    ana.send(json!({"type": "message", "contact_id": contact_id, "client_id": "late", "text": "x"})).await;
    assert_eq!(ana.expect("error").await["code"], "unknown_contact", "the old counsellor can no longer write");

    // Join: the caller sees a second person join, and the supervisor's message.
    sup.send(json!({"type": "join", "contact_id": contact_id})).await;
    until(&mut sup, "done", |d| d["request"] == "join").await;
    let joined = caller.expect("message").await;
    assert_eq!((joined["from"].as_str(), joined["text"].as_str()), (Some("system"), Some("maria display joined the conversation")));
    // With its code, for the pages to word it in their languages.
    assert_eq!(joined["notice"], json!({"kind": "joined", "name": "maria display"}), "{joined}");
    sup.send(json!({"type": "message", "contact_id": contact_id, "client_id": "s1", "text": "Sunt supervizoarea."})).await;
    assert_eq!(until(&mut sup, "ack", |_| true).await["seq"], 5);
    assert_eq!(caller.expect("message").await["text"], "Sunt supervizoarea.");
    assert_eq!(ion.expect("message").await["seq"], 4);
    assert_eq!(ion.expect("message").await["seq"], 5);

    // Bad interventions: clear errors, nothing changed.
    sup.send(json!({"type": "to_front", "contact_id": contact_id})).await;
    assert_eq!(until(&mut sup, "error", |_| true).await["code"], "not_allowed");
    sup.send(json!({"type": "transfer", "contact_id": contact_id})).await;
    assert_eq!(until(&mut sup, "error", |_| true).await["code"], "bad_field");
    sup.send(json!({"type": "whisper", "contact_id": "01a20000-0000-7000-8000-000000000000", "text": "x"})).await;
    assert_eq!(until(&mut sup, "error", |_| true).await["code"], "unknown_contact");

    // Every intervention is in the audit log.
    let actions: Vec<String> = app.store.audit_log().audit_for(&contact_id).await.unwrap().into_iter().map(|(_, a)| a).collect();
    for a in ["whisper", "monitor", "transfer", "join"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from the audit log: {actions:?}");
    }
}

/// A busy helpline's board is one big frame: with 2,500 contacts waiting it is over 300 KB, more
/// than the 256 KiB the sockets once allowed a write to hold, and the supervisor's socket was
/// dropped without a word (found with 1,000 conversations in the `supervisors` load scenario).
async fn a_board_bigger_than_the_socket_write_buffer_reaches_the_supervisor(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..2_500 {
        ids.insert(crate::helpers::stored_contact(&app.store).await);
    }
    // The engine takes the stored contacts back as waiting when the server starts.
    let app = app.restart().await;
    let mut sup = supervisor(&app, "maria").await;
    let board = sup.recv().await;
    assert_eq!(board["type"], "dashboard", "{}", &board.to_string()[..200.min(board.to_string().len())]);
    assert!(board.to_string().len() > 256 * 1024, "the board is {} bytes", board.to_string().len());
    let waiting: std::collections::BTreeSet<String> = waiting_ids(&board, "children").into_iter().collect();
    assert_eq!(waiting, ids, "every waiting contact is on the board");
    // The socket lives on: the next board (every second) comes too.
    let next = until(&mut sup, "dashboard", |_| true).await;
    assert_eq!(waiting_ids(&next, "children").len(), 2_500);
}

async fn supervisor_socket_refuses_counsellors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let token = app.login("ana").await;
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(&token).send().await.unwrap();
    let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    let r = tokio_tungstenite::connect_async(format!("ws://{}/ws/supervisor?ticket={ticket}", app.addr)).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let r = tokio_tungstenite::connect_async(format!("ws://{}/ws/supervisor", app.addr)).await;
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

/// Prometheus metrics: the counters move with real traffic and the gauges read the live state.
async fn prometheus_metrics(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["disability"], &["en"], 3).await;
    let mut waiting = app.caller().await;
    waiting.send(json!({"type": "start", "helpline": "family_violence"})).await;
    waiting.expect("queued").await;
    let mut agent = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "disability", "language": "en"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    agent.expect("offer").await;
    agent.send(json!({"type": "accept", "contact_id": contact_id})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    caller.send(json!({"type": "message", "client_id": "1", "text": "hello"})).await;
    caller.expect("ack").await;

    let body = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing from\n{body}"))
    };
    assert!(value("helpline_offers_total{helpline=\"disability\"}") >= 1.0);
    assert!(value("helpline_answered_total{helpline=\"disability\"}") >= 1.0);
    assert!(value("helpline_time_to_answer_seconds_count{helpline=\"disability\"}") >= 1.0);
    assert!(value("helpline_messages_total") >= 1.0);
    assert!(value("helpline_db_commit_seconds_count{what=\"messages\"}") >= 1.0);
    assert_eq!(value("helpline_queue_waiting{helpline=\"family_violence\"}"), 1.0, "this server's own queue");
    assert_eq!(value("helpline_sockets{kind=\"caller\"}"), 2.0);
    assert_eq!(value("helpline_counsellors{state=\"available\"}"), 1.0);
    assert!(!body.contains("hello"), "no conversation text in metrics");

    // The waiting caller leaves: every family has samples now (abandoned too; counted before she is told).
    waiting.send(json!({"type": "end"})).await;
    waiting.expect("contact_ended").await;
    let classic = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // (The counters are the process's: other tests of this binary count too.)
    let abandoned = classic.lines().find_map(|l| l.strip_prefix("helpline_abandoned_total{helpline=\"family_violence\"} "));
    assert!(abandoned.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= 1.0), "{classic}");
    assert!(!classic.contains("helpline=\"unknown\""), "every contact counted under its helpline: {classic}");
    // Without an Accept naming OpenMetrics: Prometheus's classic text, which promtool checks clean.
    let res = app.http.get(app.url("/metrics")).header("accept", "*/*").send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert!(classic.contains("# TYPE helpline_answered_total counter"), "{classic}");
    assert!(!classic.contains("# EOF"));
    if let Some(promtool) = crate::helpers::promtool() {
        let (ok, printed) = crate::helpers::run_with_stdin(&promtool, &["check", "metrics"], &classic);
        assert!(ok && printed.trim().is_empty(), "promtool check metrics: {printed}\n{classic}");
    }
    // A scraper asking for OpenMetrics (as Prometheus does) gets it.
    let res = app
        .http
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let om = res.text().await.unwrap();
    assert!(om.contains("# TYPE helpline_answered counter") && om.trim_end().ends_with("# EOF"), "{om}");
}

/// A conversation transferred back into another helpline's queue waits again, ahead of new contacts,
/// is answered there with its history, and keeps its first answer time.
async fn transfer_to_helpline_keeps_first_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &[], &["ro"], 3).await;
    // A supervisor of every helpline: an explicit grant (an empty list is none).
    app.store.accounts().set_user_all_helplines("maria", true).await.unwrap();
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact_id})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    caller.send(json!({"type": "message", "client_id": "1", "text": "mama e în pericol"})).await;
    caller.expect("ack").await;
    ana.expect("message").await;
    let first_answer = app.store.contacts().contact(&contact_id).await.unwrap().unwrap().answered_at;

    let mut sup = supervisor(&app, "maria").await;
    sup.send(json!({"type": "transfer", "contact_id": contact_id, "helpline": "family_violence"})).await;
    until(&mut sup, "done", |d| d["request"] == "transfer").await;
    assert_eq!(ana.expect("contact_ended").await["reason"], "transferred");
    let moved = caller.expect("transferred").await;
    assert_eq!(moved["helpline"], "family_violence");
    assert_eq!(app.store.contacts().contact(&contact_id).await.unwrap().unwrap().state, "queued");

    let mut ion = app.available_agent("ion").await;
    assert_eq!(ion.expect("offer").await["contact_id"], contact_id.as_str());
    ion.send(json!({"type": "accept", "contact_id": contact_id})).await;
    let assigned = ion.expect("assigned").await;
    assert_eq!(assigned["history"][0]["text"], "mama e în pericol");
    assert_eq!(caller.expect("connected").await["counsellor"], "ion display");
    let c = app.store.contacts().contact(&contact_id).await.unwrap().unwrap();
    assert_eq!((c.state.as_str(), c.helpline.as_str(), c.answered_at), ("active", "family_violence", first_answer));
}

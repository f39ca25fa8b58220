//! Waiting callers (issue 22) over real sockets, on both backends: a triage yes (the widget's `triage`
//! frame, or the exchange's IVR digit) jumps the queue and alerts the helpline's supervisors; a waiting
//! web-chat caller whose socket is gone keeps her place but rings nobody until she resumes.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::exchange::{add_gateway, now_ms, Exchange};
use crate::helpers::{start_chat_ro as start, until, Backend, TestApp, Ws};
use crate::supervisor::{supervisor, until as sup_until};

crate::on_both_backends!(
    a_triage_yes_in_the_widget_jumps_the_queue_and_alerts_the_supervisors,
    an_ivr_digit_yes_jumps_the_calls_queue_and_alerts_the_supervisors,
    a_caller_whose_socket_is_gone_keeps_her_place_but_rings_nobody_until_she_resumes
);

fn id_of(frame: &Value) -> String {
    frame["contact_id"].as_str().expect("contact id").to_string()
}

/// The waiting row of `contact` on a board, if it is there.
fn waiting_row<'a>(board: &'a Value, contact: &str) -> Option<&'a Value> {
    board["helplines"].as_array()?.iter().flat_map(|h| h["waiting"].as_array().into_iter().flatten()).find(|w| w["contact_id"] == contact)
}

/// A supervisor's socket once it is registered for alerts (its first board has come).
pub(crate) async fn watching(app: &TestApp, username: &str) -> Ws {
    let mut ws = supervisor(app, username).await;
    let first = ws.recv().await;
    assert_eq!(first["type"], "dashboard", "{first}");
    ws
}

/// Children asks the triage question; no wrap-up, so a freed slot is offered at once.
async fn spawn_triage(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut().filter(|h| h.name == "children") {
            h.triage_priority = Some(90);
            h.wrapup_limit_ms = 0;
        }
    })
    .await
}

async fn a_triage_yes_in_the_widget_jumps_the_queue_and_alerts_the_supervisors(backend: Backend) {
    let Some(app) = spawn_triage(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    // The widget learns that children asks the question.
    let helplines: Value = app.http.get(app.url("/api/v1/helplines")).send().await.unwrap().json().await.unwrap();
    let children = helplines.as_array().unwrap().iter().find(|h| h["name"] == "children").expect("children");
    assert_eq!(children["triage"], true, "{helplines}");
    let mut maria = watching(&app, "maria").await;
    let mut petru = watching(&app, "petru").await;
    // Nobody on shift: two callers wait, the first ahead of the second.
    let (mut first, q1) = start(&app).await;
    let (mut second, q2) = start(&app).await;
    assert_eq!((q1["position"].as_u64(), q2["position"].as_u64()), (Some(1), Some(2)));
    let (first_id, second_id) = (id_of(&q1), id_of(&q2));
    // The second answers yes: she moves to the front, the first hears she is second now.
    second.send(json!({"type": "triage", "answer": "yes"})).await;
    let moved = until(&mut second, "position", &["unavailable"]).await;
    assert_eq!(moved["position"], 1, "{moved}");
    let behind = until(&mut first, "position", &["unavailable"]).await;
    assert_eq!(behind["position"], 2, "{behind}");
    // A second answer counts for nothing (and the first's no changes nothing).
    second.send(json!({"type": "triage", "answer": "no"})).await;
    first.send(json!({"type": "triage", "answer": "no"})).await;
    // Her helpline's supervisor is alerted at once, naming the contact.
    let alert = sup_until(&mut maria, "alert", |a| a["kind"] == "danger").await;
    assert_eq!((alert["helpline"].as_str(), alert["contact_id"].as_str()), (Some("children"), Some(second_id.as_str())), "{alert}");
    // The board shows her first, with the raised priority.
    let board = sup_until(&mut maria, "dashboard", |b| waiting_row(b, &second_id).is_some_and(|w| w["position"] == 1)).await;
    assert_eq!(waiting_row(&board, &second_id).unwrap()["priority"], 90, "{board}");
    // Ana comes on shift: the offer is the second caller's, although the first waited longer.
    let mut ana = app.available_agent("ana").await;
    let offer = until(&mut ana, "offer", &[]).await;
    assert_eq!(offer["contact_id"], second_id.as_str(), "{offer}");
    ana.send(json!({"type": "accept", "contact_id": second_id})).await;
    until(&mut ana, "assigned", &[]).await;
    // She ends it: the first is offered next.
    ana.send(json!({"type": "end", "contact_id": second_id})).await;
    let offer = until(&mut ana, "offer", &["contact_ended"]).await;
    assert_eq!(offer["contact_id"], first_id.as_str(), "{offer}");
    // Stored: the yes (once) and the no, in the contacts' event logs; the priority on the contact.
    let events = app.store.contacts().contact_events(&second_id).await.unwrap();
    let answers: Vec<_> = events.iter().filter(|e| e.kind == "triage").map(|e| e.detail.clone().unwrap_or_default()).collect();
    assert_eq!(answers, ["yes"], "only the first answer counts: {events:?}");
    assert_eq!(app.store.contacts().contact(&second_id).await.unwrap().unwrap().priority, 90);
    let events = app.store.contacts().contact_events(&first_id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "triage" && e.detail.as_deref() == Some("no")), "{events:?}");
    // Another helpline's supervisor heard nothing of it: his next frames are boards only.
    petru.send(json!({"type": "ping"})).await;
    loop {
        let v = petru.recv().await;
        assert_ne!(v["type"], "alert", "an alert for another helpline's supervisor: {v}");
        if v["type"] == "pong" {
            break;
        }
    }
}

async fn an_ivr_digit_yes_jumps_the_calls_queue_and_alerts_the_supervisors(backend: Backend) {
    let Some(app) = spawn_triage(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let ana_id = crate::helpers::add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.store.accounts().set_user_extension(&ana_id, Some("201")).await.expect("extension");
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    let mut maria = watching(&app, "maria").await;
    // Nobody on shift: a call waits; a second one comes in whose caller pressed 1 ("in danger") at the IVR.
    let t0 = now_ms();
    pbx.offer("call-1", "116111", "+373 69 000 001", t0).await;
    pbx.event(json!({"type": "call_offered", "call_id": "call-2", "dialled": "116111", "caller": "+373 69 000 002",
        "triage_digit": "1", "at": t0 + 1_000}))
        .await;
    let alert = sup_until(&mut maria, "alert", |a| a["kind"] == "danger").await;
    assert_eq!(alert["helpline"], "children", "{alert}");
    let danger = alert["contact_id"].as_str().expect("contact").to_string();
    let stored = app.store.contacts().contact(&danger).await.unwrap().unwrap();
    assert_eq!((stored.channel.as_str(), stored.priority), ("call", 90), "the second call's contact");
    // Ana comes on shift: the call of the caller in danger rings first.
    let mut ana = app.available_agent("ana").await;
    let offer = until(&mut ana, "offer", &[]).await;
    assert_eq!((offer["contact_id"].as_str(), offer["channel"].as_str()), (Some(danger.as_str()), Some("call")), "{offer}");
    ana.send(json!({"type": "accept", "contact_id": danger})).await;
    until(&mut ana, "assigned", &[]).await;
    let connect = pbx.expect("connect").await;
    assert_eq!(connect["call_id"], "call-2", "{connect}");
    // A digit that is no answer (9) changes nothing and alerts nobody.
    pbx.event(json!({"type": "call_offered", "call_id": "call-3", "dialled": "116111", "caller": "+373 69 000 003",
        "triage_digit": "9", "at": t0 + 2_000}))
        .await;
    maria.send(json!({"type": "ping"})).await;
    loop {
        let v = maria.recv().await;
        assert!(!(v["type"] == "alert" && v["kind"] == "danger"), "{v}");
        if v["type"] == "pong" {
            break;
        }
    }
}

async fn a_caller_whose_socket_is_gone_keeps_her_place_but_rings_nobody_until_she_resumes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    let mut maria = watching(&app, "maria").await;
    // Two callers wait; the first (ahead) loses her connection.
    let (gone, q1) = start(&app).await;
    let (_second, q2) = start(&app).await;
    let (gone_id, second_id) = (id_of(&q1), id_of(&q2));
    let token = q1["resume_token"].as_str().expect("resume token").to_string();
    gone.close().await;
    // The board says she is offline, and she keeps her place (first).
    let board = sup_until(&mut maria, "dashboard", |b| waiting_row(b, &gone_id).is_some_and(|w| w["caller_online"] == false)).await;
    assert_eq!(waiting_row(&board, &gone_id).unwrap()["position"], 1, "{board}");
    // Ana comes on shift: the offer is the second caller's; the first rings nobody.
    let mut ana = app.available_agent("ana").await;
    let offer = until(&mut ana, "offer", &[]).await;
    assert_eq!(offer["contact_id"], second_id.as_str(), "{offer}");
    assert_eq!(offer["caller_online"], true);
    ana.send(json!({"type": "accept", "contact_id": second_id})).await;
    until(&mut ana, "assigned", &[]).await;
    // Ana has a free slot, and still nothing rings while the first caller is away.
    ana.send(json!({"type": "ping"})).await;
    until(&mut ana, "pong", &[]).await;
    let board = sup_until(&mut maria, "dashboard", |b| waiting_row(b, &second_id).is_none()).await;
    let row = waiting_row(&board, &gone_id).expect("still waiting");
    assert_eq!((row["caller_online"].as_bool(), row["offered_to"].is_null()), (Some(false), true), "{board}");
    // She comes back within the grace period with her token: she is offered, online.
    let mut back = app.caller().await;
    back.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    let resumed = until(&mut back, "resumed", &[]).await;
    assert_eq!(resumed["contact_id"], gone_id.as_str());
    let offer = until(&mut ana, "offer", &[]).await;
    assert_eq!((offer["contact_id"].as_str(), offer["caller_online"].as_bool()), (Some(gone_id.as_str()), Some(true)), "{offer}");
    let board = sup_until(&mut maria, "dashboard", |b| waiting_row(b, &gone_id).is_some_and(|w| w["caller_online"] == true)).await;
    assert!(!waiting_row(&board, &gone_id).unwrap()["offered_to"].is_null(), "ringing for Ana: {board}");
    // The events say so: dropped, back.
    let events = app.store.contacts().contact_events(&gone_id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"caller_disconnected") && kinds.contains(&"caller_reconnected"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "offered").count(), 1, "offered once, after she came back: {kinds:?}");
}

//! Wrap-up and away reasons over real sockets (issue 22): a slot stays in wrap-up until `ready`, and an
//! unknown away reason is refused by code.

use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use helpline::store::users::Role;

async fn start_chat(app: &TestApp) -> crate::helpers::Ws {
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    caller.expect("queued").await;
    caller
}

async fn wrap_up_holds_a_slot_until_ready(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    let mut ana = app.available_agent("ana").await;
    let _first = start_chat(&app).await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["caller_online"], true);
    let id = offer["contact_id"].as_str().expect("id").to_string();
    ana.send(json!({"type": "accept", "contact_id": id})).await;
    ana.expect("assigned").await;
    ana.send(json!({"type": "end", "contact_id": id})).await;
    // `contact_ended` (from the relay) and `wrap_up` (from the router), in either order.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let f = ana.recv().await;
        if f["type"] == "wrap_up" {
            assert_eq!(f["contact_id"], id.as_str());
            assert_eq!(f["ends_in_ms"], 60_000, "the default limit");
        }
        seen.push(f["type"].as_str().unwrap_or_default().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["contact_ended", "wrap_up"]);
    // A second chat waits: her only slot is in wrap-up.
    let _second = start_chat(&app).await;
    ana.send(json!({"type": "ping"})).await;
    ana.expect("pong").await;
    ana.send(json!({"type": "ready", "contact_id": id})).await;
    // The slot is free only now: the offer comes after `wrap_up_ended` (an offer before it fails here).
    let ended = ana.expect("wrap_up_ended").await;
    assert_eq!((ended["contact_id"].as_str(), ended["reason"].as_str()), (Some(id.as_str()), Some("ready")));
    let offer = ana.expect("offer").await;
    assert_ne!(offer["contact_id"], id.as_str());
    // Reports: the wrap-up's end is stored on the contact.
    let c = app.store.contacts().contact_events(&id).await.expect("events");
    assert!(c.iter().any(|e| e.kind == "wrap_up_ended" && e.detail.as_deref() == Some("ready")), "{c:?}");
}

async fn an_unknown_away_reason_is_refused_by_code(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;
    ana.send(json!({"type": "status", "status": "away", "reason": "nap"})).await;
    let e = ana.expect("error").await;
    assert_eq!(e["code"], "unknown_away_reason");
    ana.send(json!({"type": "status", "status": "available", "reason": "break"})).await;
    assert_eq!(ana.expect("error").await["code"], "bad_field");
    ana.send(json!({"type": "status", "status": "away", "reason": "supervision"})).await;
    let s = ana.expect("status").await;
    assert_eq!((s["status"].as_str(), s["reason"].as_str()), (Some("away"), Some("supervision")));
}

/// The console learns the away reasons it may offer from `hello` (issue 23): those of the helplines
/// she serves, first-line and backup, each once; and one of them is accepted.
async fn hello_lists_the_away_reasons_of_her_helplines(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            if h.name == "family_violence" {
                h.away_reasons = vec!["debrief".into(), "break".into()];
            }
        }
    })
    .await
    else {
        return;
    };
    crate::helpers::add_user(&app.store, "ana", Role::Counsellor, &["children"], &["family_violence"], &["ro"], 2).await;
    let (mut ana, hello) = app.agent("ana").await;
    assert_eq!(hello["away_reasons"], json!(["break", "training", "supervision", "admin", "debrief"]), "{hello}");
    ana.send(json!({"type": "status", "status": "away", "reason": "debrief"})).await;
    let s = ana.expect("status").await;
    assert_eq!((s["status"].as_str(), s["reason"].as_str()), (Some("away"), Some("debrief")));
}

/// A caller who leaves by quick exit (`end` with `quick_exit`) is told to the counsellor as
/// `quick_exit`, so the console can say so; a plain `end` stays `caller_ended` (issue 23).
async fn a_quick_exit_is_told_to_the_counsellor(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;
    for (quick, want) in [(true, "quick_exit"), (false, "caller_ended")] {
        let mut caller = start_chat(&app).await;
        let id = ana.expect("offer").await["contact_id"].as_str().expect("id").to_string();
        ana.send(json!({"type": "accept", "contact_id": id})).await;
        ana.expect("assigned").await;
        caller.expect("connected").await;
        let end = if quick { json!({"type": "end", "quick_exit": true}) } else { json!({"type": "end"}) };
        caller.send(end).await;
        let ended = ana.expect("contact_ended").await;
        assert_eq!((ended["contact_id"].as_str(), ended["reason"].as_str()), (Some(id.as_str()), Some(want)), "{ended}");
        ana.send(json!({"type": "ready", "contact_id": id})).await;
        ana.expect("wrap_up_ended").await;
    }
}

on_both_backends!(
    wrap_up_holds_a_slot_until_ready,
    an_unknown_away_reason_is_refused_by_code,
    hello_lists_the_away_reasons_of_her_helplines,
    a_quick_exit_is_told_to_the_counsellor
);

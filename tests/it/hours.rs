//! Hours, nobody on shift, messages, callbacks and the estimated wait (issue 22, first half): a chat
//! started outside opening hours hears `unavailable` at once, leaves a message (or asks for a
//! callback) and that contact is offered when the line opens, with its own answer clock; a chat with
//! nobody on shift hears why; `estimated_wait_s` appears once there is a recent answer.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(
    a_chat_outside_hours_leaves_a_message_that_is_offered_when_the_line_opens,
    a_callback_request_is_offered_when_the_line_opens_and_its_number_deleted_when_done,
    nobody_on_shift_is_said_at_once_and_the_caller_may_still_wait,
    the_estimated_wait_appears_once_there_is_history,
    hours_are_set_by_admins_and_read_by_the_helplines_supervisors
);

const DAY_MS: i64 = 86_400_000;

/// Reads frames until one of `kind` (others of `skip`, and wrap-up frames, are passed over; anything
/// else fails).
async fn until(ws: &mut Ws, kind: &str, skip: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} in time");
        let v = ws.recv().await;
        if v["type"] == kind {
            return v;
        }
        // A counsellor's wrap-up frames come with every end (tests/it/wrapup.rs reads them).
        let kind_of = v["type"].as_str().unwrap_or("");
        assert!(skip.contains(&kind_of) || kind_of == "wrap_up" || kind_of == "wrap_up_ended", "expected {kind}, got {v}");
    }
}

async fn put_hours(app: &TestApp, token: &str, helpline: &str, hours: Value) -> (u16, Value) {
    let res =
        app.http.put(app.url(&format!("/api/v1/helplines/{helpline}/hours"))).bearer_auth(token).json(&hours).send().await.expect("put");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app.http.get(app.url(path)).bearer_auth(token).send().await.expect("get");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The UTC date (YYYY-MM-DD) of server time `ms`, and the next UTC midnight after it.
fn utc_day(ms: i64) -> (String, i64) {
    let day = ms.div_euclid(DAY_MS);
    let date = helpline::protocol::rfc3339(day * DAY_MS)[..10].to_string();
    (date, (day + 1) * DAY_MS)
}

/// Closes children today (UTC): a holiday, open 24/7 otherwise. Returns when it opens again.
async fn closed_today(app: &TestApp) -> i64 {
    let root = app.login("root").await;
    let (today, opens) = utc_day(app.clock.now_ms());
    let (status, body) = put_hours(app, &root, "children", json!({"time_zone": "UTC", "holidays": [today]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["open_now"], false, "{body}");
    opens
}

/// Starts a chat on children: its `queued` frame, then the `unavailable` one.
async fn start(caller: &mut Ws) -> (Value, Value) {
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(caller, "queued", &[]).await;
    let unavailable = until(caller, "unavailable", &[]).await;
    assert_eq!(unavailable["contact_id"], queued["contact_id"]);
    (queued, unavailable)
}

async fn a_chat_outside_hours_leaves_a_message_that_is_offered_when_the_line_opens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let opens = closed_today(&app).await;
    // Ion is on shift, but the line is closed: the caller is told so at once, with her options.
    let mut ion = app.available_agent("ion").await;
    let mut caller = app.caller().await;
    let (queued, unavailable) = start(&mut caller).await;
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    assert_eq!(unavailable["reason"], "closed", "{unavailable}");
    assert_eq!(unavailable["opens_at"], helpline::protocol::rfc3339(opens), "{unavailable}");
    let options: Vec<&str> = unavailable["options"].as_array().unwrap().iter().map(|o| o["option"].as_str().unwrap()).collect();
    assert_eq!(options[..3], ["wait", "leave_message", "callback"], "{unavailable}");
    assert!(unavailable["options"].as_array().unwrap().iter().any(|o| o["number"] == "112"), "{unavailable}");
    assert!(
        unavailable["options"].as_array().unwrap().iter().any(|o| o["helpline"] == "family_violence"),
        "the other helplines are named: {unavailable}"
    );
    // She may still wait: the contact is queued, and Ion (on shift after hours) is offered it.
    let offer = until(&mut ion, "offer", &[]).await;
    assert_eq!(offer["contact_id"], contact.as_str());
    // She leaves a message instead: stored, and routed when the line opens; the offer stops ringing.
    caller.send(json!({"type": "leave_message", "text": "I will write again; please read this."})).await;
    let left = until(&mut caller, "left", &["ack", "position"]).await;
    assert_eq!(until(&mut ion, "offer_revoked", &[]).await["contact_id"], contact.as_str());
    assert_eq!((left["kind"].as_str(), left["contact_id"].as_str()), (Some("message"), Some(contact.as_str())));
    assert_eq!(left["routed_at"], helpline::protocol::rfc3339(opens));
    let stored = app.store.contacts().contact(&contact).await.unwrap().unwrap();
    assert_eq!((stored.channel.as_str(), stored.state.as_str(), stored.queued_at), ("message", "queued", opens), "its own answer clock");
    // Before the line opens it rings nobody: Ion's next frame is the answer to her ping.
    ion.send(json!({"type": "ping"})).await;
    until(&mut ion, "pong", &[]).await;
    // The line opens: the message is offered like any contact, and its history holds the message.
    app.clock.advance(opens - app.clock.now_ms() + 1_000);
    ion.send(json!({"type": "status", "status": "available"})).await;
    let offer = until(&mut ion, "offer", &["status"]).await;
    assert_eq!((offer["contact_id"].as_str(), offer["channel"].as_str()), (Some(contact.as_str()), Some("message")), "{offer}");
    assert!(offer["waited_ms"].as_i64().unwrap() < 60_000, "waited from the opening, not from the night: {offer}");
    ion.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = until(&mut ion, "assigned", &["status"]).await;
    assert_eq!(assigned["history"][0]["text"], "I will write again; please read this.", "{assigned}");
    assert_eq!(assigned["channel"], "message");
}

async fn a_callback_request_is_offered_when_the_line_opens_and_its_number_deleted_when_done(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    let opens = closed_today(&app).await;
    let mut caller = app.caller().await;
    let (queued, unavailable) = start(&mut caller).await;
    assert_eq!(unavailable["reason"], "closed");
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    // A number that is not one is refused; the contact still waits.
    caller.send(json!({"type": "callback", "phone": "call me maybe"})).await;
    let refused = until(&mut caller, "error", &[]).await;
    assert_eq!(refused["code"], "bad_field");
    caller.send(json!({"type": "callback", "phone": "+373 (60) 123-456", "text": "after six please"})).await;
    let left = until(&mut caller, "left", &["ack"]).await;
    assert_eq!(left["kind"], "callback");
    assert_eq!(app.store.contacts().callback_number(&contact).await.unwrap().as_deref(), Some("+37360123456"));
    // The socket no longer speaks for the contact.
    caller.send(json!({"type": "message", "client_id": "late", "text": "hello?"})).await;
    assert_eq!(until(&mut caller, "error", &["ack"]).await["code"], "not_allowed");
    // The line opens; Ion comes on shift and is offered the callback.
    app.clock.advance(opens - app.clock.now_ms() + 1_000);
    let mut ion = app.available_agent("ion").await;
    let offer = until(&mut ion, "offer", &[]).await;
    assert_eq!((offer["contact_id"].as_str(), offer["channel"].as_str()), (Some(contact.as_str()), Some("callback")));
    ion.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = until(&mut ion, "assigned", &[]).await;
    assert_eq!(assigned["history"][0]["text"], "after six please", "the note, never the number: {assigned}");
    assert!(!assigned.to_string().contains("123456"), "{assigned}");
    // The number: for Ion (audited), not for a counsellor of another helpline.
    let path = format!("/api/v1/contacts/{contact}/callback");
    let (status, body) = get(&app, &app.login("ion").await, &path).await;
    assert_eq!((status, body["phone"].as_str()), (200, Some("+37360123456")), "{body}");
    let (status, _) = get(&app, &app.login("ana").await, &path).await;
    assert_eq!(status, 404);
    // Done: the contact ends and the number is deleted with it.
    ion.send(json!({"type": "end", "contact_id": contact})).await;
    until(&mut ion, "contact_ended", &["message"]).await;
    assert_eq!(app.store.contacts().callback_number(&contact).await.unwrap(), None, "deleted once the callback is done");
    let (status, _) = get(&app, &app.login("ion").await, &path).await;
    assert_eq!(status, 404);
}

async fn nobody_on_shift_is_said_at_once_and_the_caller_may_still_wait(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut caller = app.caller().await;
    let (queued, unavailable) = start(&mut caller).await;
    assert_eq!(unavailable["reason"], "nobody_on_shift", "{unavailable}");
    assert!(unavailable.get("opens_at").is_none(), "open 24/7: {unavailable}");
    // She waits; Ion comes on shift and is offered her chat.
    let mut ion = app.available_agent("ion").await;
    let offer = until(&mut ion, "offer", &[]).await;
    assert_eq!(offer["contact_id"], queued["contact_id"]);
    // With Ion on shift, the next caller hears no `unavailable`: `queued`, then her chat is offered.
    ion.send(json!({"type": "accept", "contact_id": offer["contact_id"]})).await;
    until(&mut ion, "assigned", &[]).await;
    let mut second = app.caller().await;
    second.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(&mut second, "queued", &[]).await;
    let offer = until(&mut ion, "offer", &[]).await;
    assert_eq!(offer["contact_id"], queued["contact_id"]);
    second.send(json!({"type": "ping"})).await;
    until(&mut second, "pong", &["position"]).await;
}

async fn the_estimated_wait_appears_once_there_is_history(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 1).await;
    let mut ion = app.available_agent("ion").await;
    let mut first = app.caller().await;
    first.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(&mut first, "queued", &[]).await;
    assert!(queued.get("estimated_wait_s").is_none(), "no answer yet, no basis: {queued}");
    let offer = until(&mut ion, "offer", &[]).await;
    ion.send(json!({"type": "accept", "contact_id": offer["contact_id"]})).await;
    until(&mut ion, "assigned", &[]).await;
    // Ion is full (capacity 1): the next caller waits first in line, with an estimate.
    let mut second = app.caller().await;
    second.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(&mut second, "queued", &[]).await;
    assert_eq!(queued["position"], 1);
    assert!(queued["estimated_wait_s"].as_u64().is_some(), "{queued}");
    // A third behind her: a position frame for nobody, an estimate at least as long.
    let mut third = app.caller().await;
    third.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let behind = until(&mut third, "queued", &[]).await;
    assert_eq!(behind["position"], 2);
    assert!(behind["estimated_wait_s"].as_u64().unwrap() >= queued["estimated_wait_s"].as_u64().unwrap(), "{behind}");
    // The second leaves: the third moves up and hears her place with an estimate.
    second.send(json!({"type": "end"})).await;
    let moved = until(&mut third, "position", &[]).await;
    assert_eq!(moved["position"], 1);
    assert!(moved["estimated_wait_s"].as_u64().is_some(), "{moved}");
}

async fn hours_are_set_by_admins_and_read_by_the_helplines_supervisors(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    let (root, petru, maria) = (app.login("root").await, app.login("petru").await, app.login("maria").await);
    // None set: open 24/7.
    let (status, body) = get(&app, &petru, "/api/v1/helplines/children/hours").await;
    assert_eq!((status, &body["always_open"], &body["open_now"]), (200, &json!(true), &json!(true)), "{body}");
    let hours = json!({"time_zone": "Europe/Chisinau",
        "weekly": [{"day": "mon", "open": "08:00", "close": "20:00"}, {"day": "sat", "open": "10:00", "close": "14:00"}],
        "holidays": ["2026-12-25"]});
    // Supervisors may not set them; bad hours are refused with what is wrong.
    assert_eq!(put_hours(&app, &petru, "children", hours.clone()).await.0, 403);
    let (status, body) = put_hours(&app, &root, "children", json!({"time_zone": "Mars/Olympus"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")), "{body}");
    let (status, body) =
        put_hours(&app, &root, "children", json!({"time_zone": "UTC", "weekly": [{"day": "mon", "open": "20:00", "close": "08:00"}]}))
            .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(put_hours(&app, &root, "nowhere", hours.clone()).await.0, 404);
    let (status, body) = put_hours(&app, &root, "children", hours.clone()).await;
    assert_eq!(status, 200, "{body}");
    // Read back by the helpline's supervisor; not by another helpline's.
    let (status, body) = get(&app, &petru, "/api/v1/helplines/children/hours").await;
    assert_eq!((status, &body["hours"]), (200, &hours), "{body}");
    assert_eq!(body["always_open"], false);
    assert_eq!(get(&app, &maria, "/api/v1/helplines/children/hours").await.0, 403);
    // The change is audited.
    let (_, audit) = get(&app, &root, "/api/v1/audit?target=children").await;
    assert!(audit.to_string().contains("hours_set"), "{audit}");
}

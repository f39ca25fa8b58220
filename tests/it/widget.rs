//! The caller's widget on a phone (issue 23): the survey after a chat (counted once, anonymously, in the
//! reports) and a stalled caller socket told to her counsellor within seconds.

use std::time::{Duration, Instant};

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, Ws};

crate::on_both_backends!(
    the_survey_is_counted_once_after_a_chat_with_a_counsellor,
    a_stalled_caller_socket_is_told_to_her_counsellor_and_her_return_too
);

/// A caller in conversation with `agent`: (caller socket, contact id, resume token).
async fn in_conversation(app: &TestApp, agent: &mut Ws, ping: bool) -> (Ws, String, String) {
    let mut caller = app.caller().await;
    if ping {
        caller.send(json!({"type": "ping"})).await;
        caller.expect("pong").await;
    }
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = caller.expect("queued").await;
    let id = queued["contact_id"].as_str().expect("id").to_string();
    let token = queued["resume_token"].as_str().expect("token").to_string();
    let offer = agent.expect("offer").await;
    assert_eq!(offer["contact_id"], id.as_str());
    agent.send(json!({"type": "accept", "contact_id": id})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    (caller, id, token)
}

async fn survey(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url("/api/v1/caller/survey")).json(&body).send().await.expect("survey");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn the_survey_is_counted_once_after_a_chat_with_a_counsellor(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("sam", Role::Supervisor, &["children"], &["ro"], 1).await;
    let mut ana = app.available_agent("ana").await;
    let (mut caller, _, token) = in_conversation(&app, &mut ana, false).await;

    // Not while the chat goes on.
    let (status, body) = survey(&app, json!({"resume_token": token, "helped": "yes"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_allowed")), "{body}");

    caller.send(json!({"type": "end"})).await;
    caller.expect("contact_ended").await;
    ana.expect("contact_ended").await;

    // Bad input, each with its stable code; nothing counted.
    for (bad, code, why) in [
        (json!({"resume_token": token, "helped": "maybe"}), "bad_field", "not a choice of that question"),
        (json!({"resume_token": token}), "bad_field", "no answer at all"),
        (json!({"resume_token": token, "helped": null, "again": null}), "bad_field", "only skipped questions"),
        (json!({"resume_token": token, "helped": "yes", "name": "Ion"}), "bad_field", "an unknown field"),
        (json!({"helped": "yes"}), "bad_field", "no token"),
        (json!({"resume_token": "guess", "helped": "yes"}), "bad_token", "an unknown token"),
    ] {
        let (status, body) = survey(&app, bad).await;
        assert_eq!(body["code"].as_str(), Some(code), "{why}: {body}");
        assert_eq!(status, if code == "bad_token" { 401 } else { 400 }, "{why}");
    }
    let res = app.http.post(app.url("/api/v1/caller/survey")).body("not json").send().await.expect("post");
    assert_eq!(res.status().as_u16(), 400);

    // Answered once; a second answer is refused and not counted.
    let (status, body) = survey(&app, json!({"resume_token": token, "helped": "yes", "again": "maybe"})).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = survey(&app, json!({"resume_token": token, "helped": "no"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");

    // A chat that nobody answered (the caller left while waiting) has no survey.
    ana.send(json!({"type": "status", "status": "away"})).await;
    ana.expect("status").await;
    let mut gone = app.caller().await;
    gone.send(json!({"type": "start", "helpline": "children"})).await;
    let token2 = gone.expect("queued").await["resume_token"].as_str().expect("token").to_string();
    gone.send(json!({"type": "end"})).await;
    gone.expect("contact_ended").await;
    let (status, body) = survey(&app, json!({"resume_token": token2, "helped": "no"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_allowed")), "{body}");

    // The helpline's supervisor reads the counts in the report: one survey, its two choices.
    let sam = app.login("sam").await;
    let res = app.http.get(app.url("/api/v1/reports/summary?helpline=children")).bearer_auth(&sam).send().await.expect("report");
    assert_eq!(res.status().as_u16(), 200);
    let report: Value = res.json().await.expect("json");
    assert_eq!(report["surveys"], json!({"children": {"answered": 1, "helped": {"yes": 1}, "again": {"maybe": 1}}}), "{report}");
}

/// The next frame of a counsellor's socket that is not incidental (typing, wrap-up).
async fn next_of_note(ws: &mut Ws) -> Value {
    loop {
        let v = ws.recv().await;
        if !matches!(v["type"].as_str(), Some("typing" | "wrap_up" | "wrap_up_ended" | "position")) {
            return v;
        }
    }
}

async fn a_stalled_caller_socket_is_told_to_her_counsellor_and_her_return_too(backend: Backend) {
    let stall = Duration::from_millis(800);
    let Some(app) = TestApp::spawn_with_settings(backend, |s| s.keepalive.caller_stall = stall).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;

    // A client that never pinged is not judged by the threshold (only by the idle timeout): after
    // twice the threshold in silence, ana's next frame is its message, not a stall.
    let (mut quiet, quiet_id, _) = in_conversation(&app, &mut ana, false).await;
    tokio::time::sleep(stall * 2).await;
    quiet.send(json!({"type": "message", "client_id": "q1", "text": "încă aici"})).await;
    quiet.expect("ack").await;
    let next = next_of_note(&mut ana).await;
    assert_eq!((next["type"].as_str(), next["contact_id"].as_str()), (Some("message"), Some(quiet_id.as_str())), "{next}");
    quiet.send(json!({"type": "end"})).await;
    quiet.expect("contact_ended").await;
    assert_eq!(next_of_note(&mut ana).await["type"], "contact_ended");

    // A widget that pings, then goes silent (its network stalled): ana hears it after the threshold.
    let (mut caller, id, token) = in_conversation(&app, &mut ana, true).await;
    let silent_from = Instant::now();
    let lost = next_of_note(&mut ana).await;
    assert_eq!(lost, json!({"type": "caller_presence", "contact_id": id, "online": false}));
    assert!(silent_from.elapsed() >= stall - Duration::from_millis(100), "told after {:?}", silent_from.elapsed());

    // She speaks again on the same socket: back.
    caller.send(json!({"type": "ping"})).await;
    caller.expect("pong").await;
    assert_eq!(next_of_note(&mut ana).await, json!({"type": "caller_presence", "contact_id": id, "online": true}));

    // Stalled again, and that socket is then closed: told once (the close adds nothing); her widget
    // resumes on a new socket: told as her return.
    assert_eq!(next_of_note(&mut ana).await, json!({"type": "caller_presence", "contact_id": id, "online": false}));
    caller.close().await;
    let mut again = app.caller().await;
    again.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    again.expect("resumed").await;
    assert_eq!(next_of_note(&mut ana).await, json!({"type": "caller_presence", "contact_id": id, "online": true}));
}

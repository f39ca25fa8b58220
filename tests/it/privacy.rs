//! Privacy end to end: retention deletes the conversations of contacts without a case (in the server
//! and with `helpline retention`), an access request exports everything held on a contact or a case,
//! and a supervisor's break-glass reveal shows what is stored about a caller's identifier (audited).

use std::time::Duration;

use helpline::store::users::Role;
use serde_json::json;

use crate::abuse::{answered_chat, caller_at, get, helpline_cli, post, sql_execute, start};
use crate::exchange::{add_gateway, now_ms, Exchange};
use crate::helpers::{caller_address, Backend, TestApp, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(
    retention_deletes_old_conversations_and_keeps_case_data,
    retention_command_shows_progress,
    an_access_request_exports_everything_held_on_a_contact_and_a_case,
    a_break_glass_reveal_shows_what_is_stored_and_is_audited,
);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A chat answered by `agent`, a message each way, ended by the counsellor. Returns the contact id.
pub(crate) async fn chat_with_messages(app: &TestApp, agent: &mut Ws, caller_text: &str) -> String {
    let (mut caller, contact) = answered_chat(app, agent, &caller_address()).await;
    caller.send(json!({"type": "message", "client_id": "c1", "text": caller_text})).await;
    caller.expect("ack").await;
    agent.expect("message").await;
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": "Sunt aici."})).await;
    agent.expect("ack").await;
    agent.send(json!({"type": "end", "contact_id": contact})).await;
    agent.expect("contact_ended").await;
    caller.close().await;
    contact
}

async fn message_count(app: &TestApp, contact: &str) -> usize {
    app.store.messages().messages_after(contact, 0).await.unwrap().len()
}

/// Polls until retention has deleted `contact`'s conversation.
async fn purged(app: &TestApp, contact: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        if let Some(at) = app.store.retention().purged_at(contact).await.unwrap() {
            return at;
        }
        assert!(tokio::time::Instant::now() < deadline, "retention did not delete {contact}'s conversation in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn retention_deletes_old_conversations_and_keeps_case_data(backend: Backend) {
    let Some(app) = TestApp::spawn_with_settings(backend, |s| {
        s.retention_days = Some(30);
        s.retention_every = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let plain = chat_with_messages(&app, &mut ana, "o conversație fără caz").await;
    let kept = chat_with_messages(&app, &mut ana, "o conversație cu un caz").await;
    let ana_token = app.login("ana").await;
    let (status, case) = post(&app, &ana_token, "/api/v1/cases", json!({"contact_id": kept})).await;
    assert_eq!(status, 201, "{case}");

    // Both callers answered the survey: their contacts are marked (only the id), the counts hold no contact.
    let day = app.clock.now_ms() / DAY_MS * DAY_MS;
    for contact in [&plain, &kept] {
        assert!(app.store.surveys().count(contact, "children", day, &[("helped", "yes")]).await.unwrap());
        assert!(app.store.surveys().answered(contact).await.unwrap());
    }

    // Nothing is due yet: both conversations stay (the server has run retention at least once meanwhile).
    assert_eq!(message_count(&app, &plain).await, 2);
    assert!(app.store.retention().purged_at(&plain).await.unwrap().is_none());

    // 31 days later: the conversation without a case is deleted by the server's own run; the one in a case is kept.
    app.clock.advance(31 * DAY_MS);
    let at = purged(&app, &plain).await;
    assert!(at >= app.clock.now_ms() - 60_000, "purged at the server's time");
    assert_eq!(message_count(&app, &plain).await, 0);
    assert_eq!(message_count(&app, &kept).await, 2, "case data is kept");
    assert!(app.store.retention().purged_at(&kept).await.unwrap().is_none());
    // The survey mark goes with the conversation; the case's contact keeps its own; the counts stay.
    assert!(!app.store.surveys().answered(&plain).await.unwrap(), "the survey mark is purged");
    assert!(app.store.surveys().answered(&kept).await.unwrap());
    let counts = app.store.surveys().counts(Some("children"), day, day + DAY_MS).await.unwrap();
    assert!(counts.iter().any(|c| c.question == "helped" && c.answer == "yes" && c.n == 2), "{counts:?}");
    // The contact's record stays (reports), and its export says when the conversation went.
    let record = app.store.contacts().contact(&plain).await.unwrap().expect("the contact row stays");
    assert_eq!(record.state, "ended");
    let maria = app.login("maria").await;
    let (status, export) = get(&app, &maria, &format!("/api/v1/contacts/{plain}/export")).await;
    assert_eq!(status, 200, "{export}");
    assert!(export["export"]["conversation"]["deleted_by_retention_at"].is_string(), "{export}");
    assert_eq!(export["export"]["conversation"]["messages"], json!([]));

    // A recent conversation is not due; a further run deletes nothing.
    let recent = chat_with_messages(&app, &mut ana, "o conversație nouă").await;
    let totals = helpline::safety::retention::run(&app.store, app.clock.now_ms(), 30, |_, _| {}).await.unwrap();
    assert_eq!(totals, helpline::safety::retention::Totals::default());
    assert_eq!(message_count(&app, &recent).await, 2);
    // Each run that deleted something is audited (actor: system).
    let q = helpline::store::audit::AuditQuery { actor: Some("system".into()), limit: 100, ..Default::default() };
    let lines = app.store.audit_log().audit_lines(&q).await.unwrap();
    let purge = lines.iter().find(|l| l.action == "retention_purge").expect("a retention_purge audit line");
    assert!(purge.detail.as_deref().unwrap_or("").starts_with("1 conversations (2 messages)"), "{purge:?}");
}

/// `helpline retention --days N` on the test database.
async fn cli_retention(app: &TestApp, days: &str) -> (Option<i32>, String) {
    helpline_cli(app, &["retention", "--days", days]).await
}

async fn retention_command_shows_progress(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let old = chat_with_messages(&app, &mut ana, "de acum patruzeci de zile").await;
    let new = chat_with_messages(&app, &mut ana, "de azi").await;
    // The first chat ended 40 days ago (the command uses the wall clock).
    sql_execute(&app, &format!("UPDATE contacts SET ended_at = ended_at - {} WHERE id = '{old}'", 40 * DAY_MS)).await;

    let (code, out) = cli_retention(&app, "0").await;
    assert_ne!(code, Some(0), "a retention of 0 days is refused: {out}");
    assert_eq!(message_count(&app, &old).await, 2);

    let (code, out) = cli_retention(&app, "30").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("retention: 1 conversations deleted (2 messages), 0 to go"), "progress: {out}");
    assert!(out.contains("deleted the conversations of 1 contacts"), "{out}");
    assert_eq!(message_count(&app, &old).await, 0);
    assert_eq!(message_count(&app, &new).await, 2);
    // Run again: nothing left to do.
    let (code, out) = cli_retention(&app, "30").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleted the conversations of 0 contacts"), "{out}");
}

async fn an_access_request_exports_everything_held_on_a_contact_and_a_case(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("sam", Role::Supervisor, &["disability"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["en"], 1).await;
    let mut ana = app.available_agent("ana").await;
    let contact = chat_with_messages(&app, &mut ana, "canar-export-4711").await;
    let ana_token = app.login("ana").await;
    let (status, _) = post(&app, &ana_token, &format!("/api/v1/contacts/{contact}/flag"), json!({"reason": "insults"})).await;
    assert_eq!(status, 201);
    let (status, case) = post(&app, &ana_token, "/api/v1/cases", json!({"contact_id": contact, "district": "Cahul"})).await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["id"].as_str().or(case["case"]["id"].as_str()).expect("case id").to_string();
    let res = app
        .http
        .put(app.url(&format!("/api/v1/cases/{case_id}/person")))
        .bearer_auth(&ana_token)
        .json(&json!({"full_name": "Ion Popescu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Who may export: not a counsellor (403), not a supervisor of another helpline (404); refusals audited.
    let contact_path = format!("/api/v1/contacts/{contact}/export");
    let case_path = format!("/api/v1/cases/{case_id}/export");
    assert_eq!(get(&app, &ana_token, &contact_path).await.0, 403);
    let sam = app.login("sam").await;
    assert_eq!(get(&app, &sam, &contact_path).await.0, 404);
    assert_eq!(get(&app, &sam, &case_path).await.0, 404);
    assert_eq!(get(&app, &sam, "/api/v1/contacts/no-such-contact/export").await.0, 404);

    let maria = app.login("maria").await;
    let (status, export) = get(&app, &maria, &contact_path).await;
    assert_eq!(status, 200, "{export}");
    let e = &export["export"];
    assert_eq!(e["contact"]["id"], contact.as_str());
    assert_eq!(e["contact"]["helpline"], "children");
    let texts: Vec<&str> = e["conversation"]["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["canar-export-4711", "Sunt aici."]);
    assert!(e["conversation"]["deleted_by_retention_at"].is_null());
    assert!(!e["events"].as_array().unwrap().is_empty(), "{e}");
    assert_eq!(e["flag"]["reason"], "insults");
    assert_eq!(e["cases"][0]["case_id"], case_id.as_str());
    let trail: Vec<&str> = e["audit"].as_array().unwrap().iter().filter_map(|l| l["action"].as_str()).collect();
    assert!(trail.contains(&"flag_abusive") && trail.contains(&"contact_export_denied"), "{trail:?}");
    // No caller identifier leaves the server, not even its hash.
    let hash = app.store.abuse().caller_identifier(&contact).await.unwrap().expect("a chat keeps its network's hash").hash;
    assert!(!export.to_string().contains(&hash));

    // A case: the supervisor gets everything but the person's identifying details (as everywhere);
    // an admin gets those too. The linked contact comes with its whole export.
    let (status, by_supervisor) = get(&app, &maria, &case_path).await;
    assert_eq!(status, 200, "{by_supervisor}");
    assert!(by_supervisor["export"]["person"]["withheld"].is_string(), "{by_supervisor}");
    assert!(!by_supervisor.to_string().contains("Ion Popescu"));
    let root = app.login("root").await;
    let (status, by_admin) = get(&app, &root, &case_path).await;
    assert_eq!(status, 200, "{by_admin}");
    let x = &by_admin["export"];
    assert_eq!(x["person"]["full_name"], "Ion Popescu");
    assert_eq!(x["case"]["district"], "Cahul");
    assert_eq!(x["contacts"][0]["contact"]["id"], contact.as_str());
    assert_eq!(x["contacts"][0]["conversation"]["messages"].as_array().unwrap().len(), 2);
    assert!(!x["audit"].as_array().unwrap().is_empty());

    // Every export is audited, each refusal too.
    let actions: Vec<String> = app.store.audit_log().audit_for(&contact).await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions.iter().filter(|a| *a == "contact_export").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "contact_export_denied").count(), 2, "{actions:?}");
    let actions: Vec<String> = app.store.audit_log().audit_for(&case_id).await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions.iter().filter(|a| *a == "case_export").count(), 2, "{actions:?}");
    assert!(actions.iter().any(|a| a == "case_export_denied"), "{actions:?}");
}

/// The contact id of an open call, by the exchange's call id.
async fn call_contact(app: &TestApp, call_id: &str) -> String {
    let calls = app.store.calls().open_calls().await.unwrap();
    calls.into_iter().find(|c| c.call_id == call_id).expect("the call is stored").contact_id
}

async fn a_break_glass_reveal_shows_what_is_stored_and_is_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("sam", Role::Supervisor, &["disability"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["en"], 1).await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    let t0 = now_ms();
    // The same number calls twice (written differently), another number once; nobody is on duty.
    pbx.offer("call-1", "116111", "+373 69 111 222", t0).await;
    pbx.offer("call-2", "116111", "+373-69-111-222", t0 + 60_000).await;
    pbx.offer("call-3", "116111", "+373 69 333 444", t0 + 61_000).await;
    let first = call_contact(&app, "call-1").await;
    let second = call_contact(&app, "call-2").await;
    let other = call_contact(&app, "call-3").await;

    let path = format!("/api/v1/contacts/{second}/reveal");
    let reason = json!({"reason": "prosecutor's request 2026/117 (art. 7 law 45/2007)"});
    // Only supervisors of the contact's helpline, with a reason.
    let ana = app.login("ana").await;
    assert_eq!(post(&app, &ana, &path, reason.clone()).await.0, 403);
    let root = app.login("root").await;
    assert_eq!(post(&app, &root, &path, reason.clone()).await.0, 403, "break-glass is for supervisors");
    let sam = app.login("sam").await;
    assert_eq!(post(&app, &sam, &path, reason.clone()).await.0, 404);
    let maria = app.login("maria").await;
    let (status, body) = post(&app, &maria, &path, json!({"reason": "  "})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")), "{body}");
    assert_eq!(post(&app, &maria, &path, json!({})).await.0, 400);

    let (status, shown) = post(&app, &maria, &path, reason.clone()).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["identifier"]["kind"], "caller number");
    assert_eq!(shown["identifier"]["last_digits"], "22");
    assert_eq!(shown["exchange_reference"]["call_id"], "call-2");
    assert_eq!(shown["called_before"], true);
    assert_eq!(shown["earlier_contacts"], 1);
    let same: Vec<&str> = shown["same_caller"].as_array().unwrap().iter().filter_map(|c| c["contact_id"].as_str()).collect();
    assert_eq!(same, [first.as_str()]);
    assert!(!same.contains(&other.as_str()));
    // What it cannot show, it does not: neither the number nor its hash.
    let text = shown.to_string();
    assert!(!text.contains("69111222") && !text.contains("111 222") && !text.contains("111-222"), "{text}");
    let hash = app.store.abuse().caller_identifier(&second).await.unwrap().expect("a number hash").hash;
    assert!(!text.contains(&hash));

    // The first call: nobody called before it; the later one shares its number.
    let (_, first_shown) = post(&app, &maria, &format!("/api/v1/contacts/{first}/reveal"), reason.clone()).await;
    assert_eq!(first_shown["called_before"], false);
    assert_eq!(first_shown["same_caller"][0]["contact_id"], second.as_str());

    // A chat: its network's hash; the same network's earlier chat is listed.
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut ion = app.available_agent("ion").await;
    let network = caller_address();
    let (c1, chat1) = answered_chat(&app, &mut ion, &network).await;
    ion.send(json!({"type": "end", "contact_id": chat1})).await;
    ion.expect("contact_ended").await;
    c1.close().await;
    let mut c2 = caller_at(&app, &network).await;
    let queued = start(&mut c2, "children").await;
    let chat2 = queued["contact_id"].as_str().expect("queued").to_string();
    let (status, chat_shown) = post(&app, &maria, &format!("/api/v1/contacts/{chat2}/reveal"), reason.clone()).await;
    assert_eq!(status, 200, "{chat_shown}");
    assert_eq!(chat_shown["identifier"]["kind"], "chat network");
    assert!(chat_shown["identifier"]["last_digits"].is_null());
    assert_eq!(chat_shown["same_caller"][0]["contact_id"], chat1.as_str());
    assert!(!chat_shown.to_string().contains(&network));

    // Audited with the reason; refusals too.
    let lines = app
        .store
        .audit_log()
        .audit_lines(&helpline::store::audit::AuditQuery { target: Some(second.clone()), limit: 100, ..Default::default() })
        .await
        .unwrap();
    let reveal = lines.iter().find(|l| l.action == "caller_reveal").expect("caller_reveal audited");
    assert_eq!(reveal.detail.as_deref(), Some("prosecutor's request 2026/117 (art. 7 law 45/2007)"));
    let denied = lines.iter().filter(|l| l.action == "caller_reveal_denied").count();
    assert_eq!(denied, 3, "{lines:?}");
    c2.close().await;
}

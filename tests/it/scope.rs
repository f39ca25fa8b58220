//! Scope everywhere (issue 20): a supervisor sees and acts on only their helplines' contacts, calls,
//! counsellors, reports, staffing and board rows; "all helplines" is an explicit grant, never an
//! empty list; the caller number's hash never leaves the server; and the low findings of the probe
//! (close codes, one caller socket per contact, no-store, framing, the metrics token).
//!
//! The people: ana (counsellor, family_violence), ion (counsellor, children), maria (supervisor,
//! family_violence), petru (supervisor, children: the supervisor of *another* helpline), nobody (a
//! supervisor whose account lists no helpline), allsup (a supervisor granted every helpline), root
//! (admin), vera (case manager).

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{add_user, call, Backend, TestApp, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(
    every_route_against_a_supervisor_of_another_helpline,
    supervisor_socket_requests_and_board_stay_in_scope,
    a_counsellor_of_two_helplines_shows_each_supervisor_only_their_contacts,
    offline_calls_only_for_served_helplines_and_no_caller_hash,
    socket_findings_close_codes_typing_roles_and_resume,
    http_findings_no_store_framing_and_metrics_token,
    a_counsellor_away_alert_reaches_only_the_supervisors_of_their_helplines
);

const USERS: [&str; 6] = ["ana", "maria", "petru", "nobody", "allsup", "root"];

async fn people(app: &TestApp) {
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("nobody", Role::Supervisor, &[], &["ro"], 3).await;
    app.add_user("allsup", Role::Supervisor, &[], &["ro"], 3).await;
    app.store.accounts().set_user_all_helplines("allsup", true).await.expect("grant");
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    add_user(&app.store, "vera", Role::CaseManager, &[], &[], &["ro"], 1).await;
}

/// A call ana handled on the backup phone, recorded offline: its contact id.
async fn offline_call(app: &TestApp, token: &str, helpline: &str) -> (u16, Value) {
    let now = app.clock.now_ms();
    let body = json!({
        "channel": "call", "helpline": helpline, "caller": "+373 69 123 456",
        "started_at": helpline::protocol::rfc3339(now - 600_000),
        "answered_at": helpline::protocol::rfc3339(now - 590_000),
        "ended_at": helpline::protocol::rfc3339(now - 300_000),
    });
    call(app, token, "POST", "/api/v1/contacts", Some(body)).await
}

/// Every route of the OpenAPI document, by how it is scoped, with the routes about one object tried
/// by every kind of person against an object of family_violence: a supervisor of another helpline
/// (and one of none) never gets it, one of family_violence, one granted all and an admin do.
/// (Case, placement, form and person routes are tried role by role in `cases.rs`'s matrix too.)
async fn every_route_against_a_supervisor_of_another_helpline(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    let ana = app.login("ana").await;
    let (status, recorded) = offline_call(&app, &ana, "family_violence").await;
    assert_eq!(status, 201, "{recorded}");
    let contact = recorded["contact_id"].as_str().expect("contact id").to_string();
    let form = json!({"draft": true, "form": {"summary": "first words"}});
    assert_eq!(call(&app, &ana, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form)).await.0, 200);
    let (status, flagged) = call(&app, &ana, "POST", &format!("/api/v1/contacts/{contact}/flag"), Some(json!({"reason": "pranks"}))).await;
    assert_eq!(status, 201, "{flagged}");

    // (method, path, body, expected for ana, maria, petru, nobody, allsup, root); 0: any 2xx.
    let c = contact.as_str();
    let ok = 0;
    let matrix: Vec<(&str, String, Option<Value>, [u16; 6])> = vec![
        ("GET", format!("/api/v1/contacts/{c}"), None, [403, 200, 404, 404, 200, 200]),
        ("GET", format!("/api/v1/calls/{c}"), None, [403, 200, 404, 404, 200, 200]),
        ("GET", format!("/api/v1/contacts/{c}/form"), None, [200, 200, 404, 404, 200, 200]),
        ("GET", "/api/v1/reports/summary?helpline=family_violence".into(), None, [403, 200, 403, 403, 200, 200]),
        ("GET", "/api/v1/staffing?helpline=family_violence".into(), None, [403, 200, 403, 403, 200, 200]),
        ("GET", "/api/v1/reports/summary".into(), None, [403, 200, 200, 403, 200, 200]),
        ("GET", "/api/v1/staffing".into(), None, [403, 200, 200, 403, 200, 200]),
        ("GET", format!("/api/v1/contacts/{c}/export"), None, [403, ok, 404, 404, ok, ok]),
        ("GET", "/api/v1/canned-responses?helpline=family_violence".into(), None, [200, 200, 403, 403, 200, 200]),
        // Retention periods: the helpline's supervisors read them (and admins), nobody else.
        ("GET", "/api/v1/helplines/family_violence/retention".into(), None, [403, 200, 403, 403, 200, 200]),
    ];
    for (method, path, body, expected) in &matrix {
        for (username, want) in USERS.iter().zip(expected) {
            let token = app.login(username).await;
            let (status, answer) = call(&app, &token, method, path, body.clone()).await;
            if *want == ok {
                assert!((200..300).contains(&status), "{username} {method} {path}: {status} {answer}");
            } else {
                assert_eq!(status, *want, "{username} {method} {path}: {answer}");
            }
            if status >= 400 {
                assert!(!answer.to_string().contains("first words"), "{username} {path}: nothing of the contact leaks");
            }
        }
    }
    // Without `?helpline=` a supervisor of one helpline gets theirs, not everyone's.
    let (_, report) = call(&app, &app.login("petru").await, "GET", "/api/v1/reports/summary", None).await;
    assert_eq!(report["helpline"], "children", "{report}");
    let (_, report) = call(&app, &app.login("allsup").await, "GET", "/api/v1/reports/summary", None).await;
    assert_eq!(report["helpline"], Value::Null, "granted all: every helpline");
    let (_, staffing) = call(&app, &app.login("petru").await, "GET", "/api/v1/staffing", None).await;
    assert_eq!(staffing["helpline"], "children", "{staffing}");

    // Writes on the object by a supervisor of another helpline: refused, nothing done.
    let petru = app.login("petru").await;
    for (method, path, body) in [
        ("POST", format!("/api/v1/contacts/{c}/reveal"), json!({"reason": "curious"})),
        ("POST", format!("/api/v1/contacts/{c}/flag"), json!({"reason": "mine now"})),
        ("PUT", format!("/api/v1/contacts/{c}/form"), json!({"draft": true, "form": {"summary": "overwritten"}})),
        ("POST", "/api/v1/cases".to_string(), json!({"contact_id": c})),
        ("POST", "/api/v1/blocks".to_string(), json!({"contact_id": c, "kind": "block", "reason": "x", "days": 1})),
        // An erasure by another helpline's supervisor: refused, and the form below is still there.
        ("POST", format!("/api/v1/contacts/{c}/erase"), json!({"reason": "a request"})),
    ] {
        let (status, answer) = call(&app, &petru, method, &path, Some(body)).await;
        assert!(matches!(status, 400 | 403 | 404 | 422), "petru {method} {path}: {status} {answer}");
    }
    let (_, read) = call(&app, &ana, "GET", &format!("/api/v1/contacts/{c}/form"), None).await;
    assert_eq!(read["form"]["summary"], "first words", "the form is untouched");
    // Lists: nothing of family_violence for the supervisor of children, or of none.
    for username in ["petru", "nobody"] {
        let token = app.login(username).await;
        for path in ["/api/v1/flags", "/api/v1/blocks", "/api/v1/escalations", "/api/v1/cases", "/api/v1/contact-forms/incomplete"] {
            let (_, answer) = call(&app, &token, "GET", path, None).await;
            assert!(!answer.to_string().contains(c), "{username} GET {path} lists the contact: {answer}");
        }
    }
    let (_, flags) = call(&app, &app.login("maria").await, "GET", "/api/v1/flags", None).await;
    assert!(flags.to_string().contains(c), "maria sees her helpline's flag: {flags}");
    // Refusals are audited.
    let petru_id = app.store.accounts().user_with_hash("petru").await.unwrap().unwrap().0.id;
    let actions: Vec<(String, String)> = app.store.audit_log().audit_for(c).await.unwrap();
    assert!(actions.contains(&(petru_id.clone(), "view_contact_denied".into())), "{actions:?}");
    assert!(actions.contains(&(petru_id, "view_call_denied".into())), "{actions:?}");

    // Every route is classified here: a new route must say how it is scoped.
    let (_, doc) = call(&app, &ana, "GET", "/api/v1/openapi.json", None).await;
    let scoped_here: Vec<&str> = vec![
        "/api/v1/contacts/{id}",
        "/api/v1/calls/{id}",
        "/api/v1/contacts/{id}/form",
        "/api/v1/reports/summary",
        "/api/v1/staffing",
        "/api/v1/contacts/{id}/export",
        "/api/v1/contacts/{id}/reveal",
        "/api/v1/contacts/{id}/flag",
        "/api/v1/flags",
        "/api/v1/blocks",
        "/api/v1/escalations",
        "/api/v1/cases",
        "/api/v1/contact-forms/incomplete",
        "/api/v1/contacts",
        "/ws/supervisor",
        "/ws/agent",
        "/api/v1/canned-responses",
        "/api/v1/helplines/{name}/retention",
        "/api/v1/contacts/{id}/erase",
    ];
    // Tried role by role against objects of their helpline in cases.rs (`access_every_role_every_object`)
    // and privacy.rs / abuse.rs; all go through `state::access`.
    let scoped_elsewhere = [
        "/api/v1/cases/{id}",
        "/api/v1/cases/{id}/person",
        "/api/v1/cases/{id}/stage",
        "/api/v1/cases/{id}/contacts",
        "/api/v1/cases/{id}/entries",
        "/api/v1/cases/{id}/export",
        "/api/v1/cases/{id}/case-manager",
        "/api/v1/placements",
        "/api/v1/placements/{id}",
        "/api/v1/placements/{id}/status",
        "/api/v1/escalations/{id}/acknowledge",
        "/api/v1/escalations/{id}/suggestions",
        "/api/v1/blocks/{id}",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/services",
        "/api/v1/services/{id}",
        "/api/v1/helplines/{name}/case-deadlines",
        "/api/v1/cluster",
        // Accounts (tests/it/logins.rs): admins only, and the lockouts list for supervisors and admins.
        "/api/v1/users/{username}/password",
        "/api/v1/users/{username}/unlock",
        "/api/v1/users/{username}/totp",
        "/api/v1/lockouts",
        // The admin page's accounts, dialled numbers and gateways (tests/it/admin.rs): admins only, every
        // other role 403 (audited).
        "/api/v1/users",
        "/api/v1/users/{username}",
        "/api/v1/users/{username}/reset",
        "/api/v1/dialled-numbers",
        "/api/v1/dialled-numbers/{number}",
        "/api/v1/gateways",
        "/api/v1/gateways/{name}/revoke",
        // Hours (tests/it/hours.rs): admins set; admins and the helpline's supervisors read. A callback's
        // number: those who may see its contact (`state::access::visible_contact`), audited.
        "/api/v1/helplines/{name}/hours",
        "/api/v1/contacts/{id}/callback",
        // Canned responses (tests/it/canned.rs): written by the helpline's supervisors and admins.
        "/api/v1/canned-responses/{id}",
        // Settings (tests/it/settings.rs): admins and the helpline's supervisors read and set, audited.
        "/api/v1/helplines/{name}/settings",
        // Referrals (tests/it/referrals.rs): through the case's access (`state::access::visible_case`,
        // `manages_case`), every role tried; a provider by its own token; webhooks: admins.
        "/api/v1/cases/{id}/referrals",
        "/api/v1/referrals/{id}",
        "/api/v1/services/{id}/webhook",
        // Stage forms (tests/it/cases.rs `stage_forms_as_data`): filled in through the case's access;
        // definitions read by any staff (no personal data), set by admins.
        "/api/v1/cases/{id}/forms",
        "/api/v1/helplines/{name}/stage-forms",
        "/api/v1/helplines/{name}/stage-forms/{form}",
        // Tasks (tests/it/cases.rs `tasks_with_due_dates`): through the case's access; `GET /api/v1/tasks`
        // lists only one's own.
        "/api/v1/cases/{id}/tasks",
        "/api/v1/tasks/{id}/done",
        "/api/v1/tasks",
        // Transfers and approvals (tests/it/cases.rs `transfer_and_approvals`): through the case's access;
        // a transfer is decided by its receiver only; approvals by the helpline's supervisors.
        "/api/v1/cases/{id}/transfers",
        "/api/v1/transfers",
        "/api/v1/transfers/{id}/decision",
        "/api/v1/cases/{id}/approvals",
        "/api/v1/approvals/{id}/decision",
        // The casework report (tests/it/cases.rs `casework_report`): `Staff::report_helpline`, as the summary report.
        "/api/v1/reports/cases",
        // Continuity (tests/it/continuity.rs): links through `state::access::visible_contact` (both contacts),
        // every role's search (`GET /api/v1/contacts`, above) and its refusals; the colleagues list:
        // counsellors only, about a conversation they hold.
        "/api/v1/contacts/{id}/links",
        "/api/v1/colleagues",
    ];
    // Not about any helpline's objects: public, one's own session, the exchanges' own.
    let unscoped = [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/chat",
        "/agent",
        "/supervisor",
        "/cases",
        "/assets/{path}",
        "/api/v1/openapi.json",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/refresh",
        "/api/v1/ws-ticket",
        "/api/v1/me",
        "/api/v1/auth/password",
        "/api/v1/auth/totp/enrol",
        // One's own account's page language (tests/it/staff_locale.rs: own account only, any role).
        "/api/v1/me/locale",
        "/api/v1/helplines",
        "/api/v1/helplines/{name}/taxonomy",
        "/api/v1/caller/end",
        "/ws/caller",
        "/ws/telephony",
        "/api/v1/caller/survey",
        "/api/v1/caller/return-code",
        "/api/v1/telephony/events",
        // The admin and reset pages (static; their data comes through the scoped routes above), a reset
        // code's redemption (the code is the credential), Kannel's webhooks (the channel's secret).
        "/admin",
        "/reset",
        "/api/v1/auth/reset",
        "/api/v1/channels/sms/{name}/inbound",
        "/api/v1/channels/sms/{name}/dlr",
    ];
    let paths: Vec<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    for path in &paths {
        let known = scoped_here.contains(&path.as_str()) || scoped_elsewhere.contains(&path.as_str()) || unscoped.contains(&path.as_str());
        assert!(known, "{path}: a new route; say how it is scoped (tests/it/scope.rs, docs/security.md \"Who sees what\")");
    }
}

/// Reads frames until one of `kind` about `reference` (boards and alerts skipped).
async fn answer(ws: &mut Ws, reference: &str) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no answer about {reference}");
        let v = ws.recv().await;

        if (v["type"] == "error" || v["type"] == "done") && v["ref"] == reference {
            return v;
        }
    }
}

/// The next `error` or `done` (boards and alerts skipped).
async fn next_answer(ws: &mut Ws) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no answer");
        let v = ws.recv().await;
        if v["type"] == "error" || v["type"] == "done" {
            return v;
        }
    }
}

/// The next board.
async fn board(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no such board in time");
        let v = ws.recv().await;
        if v["type"] == "dashboard" && pred(&v) {
            return v;
        }
    }
}

/// Every supervisor socket request a supervisor of children makes about family_violence's contact or
/// counsellor is refused as unknown (and nothing happens); the same from family_violence's supervisor
/// goes through. The board of children's supervisor holds nothing of family_violence; that of a
/// supervisor of no helpline holds nothing at all.
async fn supervisor_socket_requests_and_board_stay_in_scope(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    let ana_id = app.store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    let mut petru = crate::supervisor::supervisor(&app, "petru").await;
    let mut nobody = crate::supervisor::supervisor(&app, "nobody").await;
    let mut maria = crate::supervisor::supervisor(&app, "maria").await;
    let mut ana = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    // A children's caller waits (no children's counsellor is online).
    let mut child = app.caller().await;
    child.send(json!({"type": "start", "helpline": "children"})).await;
    let waiting = child.expect("queued").await["contact_id"].as_str().unwrap().to_string();

    // The boards: maria sees ana in conversation; petru sees his waiting contact and nothing of ana's.
    board(&mut maria, |b| b.to_string().contains(&contact)).await;
    let seen = board(&mut petru, |b| b.to_string().contains(&waiting)).await;
    assert!(!seen.to_string().contains(&contact) && !seen.to_string().contains(&ana_id), "petru's board: {seen}");
    assert_eq!(seen["helplines"].as_array().unwrap().len(), 1, "{seen}");
    let empty = board(&mut nobody, |_| true).await;
    assert_eq!((empty["helplines"].as_array().unwrap().len(), empty["counsellors"].as_array().unwrap().len()), (0, 0), "{empty}");
    assert!(!empty.to_string().contains(&waiting));

    // Every request petru could make about ana or her contact.
    let requests = [
        (json!({"type": "set_status", "counsellor_id": ana_id, "status": "away"}), ana_id.clone(), "not_found"),
        (json!({"type": "to_front", "contact_id": contact}), contact.clone(), "unknown_contact"),
        (json!({"type": "offer_to", "contact_id": waiting, "counsellor_id": ana_id}), ana_id.clone(), "not_found"),
        (json!({"type": "offer_to", "contact_id": contact, "counsellor_id": ana_id}), contact.clone(), "unknown_contact"),
        (json!({"type": "transfer", "contact_id": contact, "helpline": "children"}), contact.clone(), "unknown_contact"),
        (json!({"type": "transfer", "contact_id": waiting, "counsellor_id": ana_id}), waiting.clone(), "not_found"),
        (json!({"type": "monitor", "contact_id": contact}), contact.clone(), "unknown_contact"),
        (json!({"type": "whisper", "contact_id": contact, "text": "psst"}), contact.clone(), "unknown_contact"),
        (json!({"type": "join", "contact_id": contact}), contact.clone(), "unknown_contact"),
        (
            json!({"type": "message", "contact_id": contact, "client_id": "p1", "text": "hello from petru"}),
            "p1".to_string(),
            "unknown_contact",
        ),
    ];
    for (request, reference, code) in &requests {
        petru.send(request.clone()).await;
        let got = answer(&mut petru, reference).await;
        assert_eq!((got["type"].as_str(), got["code"].as_str()), (Some("error"), Some(*code)), "{request}: {got}");
        nobody.send(request.clone()).await;
        let got = next_answer(&mut nobody).await;
        assert_eq!(got["type"], "error", "nobody {request}: {got}");
    }
    // An escalation of family_violence: not petru's to acknowledge.
    ana.send(json!({"type": "escalate", "contact_id": contact, "kind": "emergency_services", "risk": "high", "reason": "x"})).await;
    let escalation = loop {
        let v = ana.recv().await;
        if v["type"] == "escalated" || v["escalation_id"].is_string() {
            break v["escalation_id"].as_str().map(str::to_string);
        }
        if v["type"] == "error" {
            break None;
        }
    };
    let id = escalation.expect("ana escalated");
    petru.send(json!({"type": "acknowledge", "escalation_id": id})).await;
    assert_eq!(answer(&mut petru, &id).await["type"], "error");
    // Nothing happened: ana is still available, the caller heard nothing from petru.
    let status = app.store.accounts().user(&ana_id).await.unwrap().unwrap().status;
    assert_eq!(status, "available", "petru did not take ana off the queue");
    let board_now = board(&mut maria, |b| b.to_string().contains(&contact)).await;
    let row = board_now["counsellors"].as_array().unwrap().iter().find(|c| c["user_id"] == ana_id.as_str()).cloned().unwrap();
    assert_eq!(row["status"], "available", "{row}");
    // The same request from family_violence's supervisor goes through.
    maria.send(json!({"type": "set_status", "counsellor_id": ana_id, "status": "away"})).await;
    assert_eq!(answer(&mut maria, &ana_id).await["type"], "done");
    caller.send(json!({"type": "message", "client_id": "c1", "text": "still there?"})).await;
    let ack = caller.expect("ack").await;
    assert_eq!(ack["client_id"], "c1");
    // Audited: what petru tried.
    let petru_id = app.store.accounts().user_with_hash("petru").await.unwrap().unwrap().0.id;
    let audited = app.store.audit_log().audit_for(&ana_id).await.unwrap();
    assert!(audited.contains(&(petru_id, "supervise_denied".into())), "{audited:?}");
}

/// A counsellor serving children and family_violence is on both supervisors' boards, but children's
/// supervisor does not see the family_violence conversation she is in (its id, urgent or ringing).
async fn a_counsellor_of_two_helplines_shows_each_supervisor_only_their_contacts(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    app.add_user("dana", Role::Counsellor, &["children", "family_violence"], &["ro"], 3).await;
    let dana_id = app.store.accounts().user_with_hash("dana").await.unwrap().unwrap().0.id;
    let mut petru = crate::supervisor::supervisor(&app, "petru").await;
    let mut maria = crate::supervisor::supervisor(&app, "maria").await;
    let mut dana = app.available_agent("dana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    dana.expect("offer").await;
    dana.send(json!({"type": "accept", "contact_id": contact})).await;
    dana.expect("assigned").await;
    caller.expect("connected").await;
    let active = |b: &Value| -> Option<Value> {
        b["counsellors"].as_array()?.iter().find(|c| c["user_id"] == dana_id.as_str()).map(|c| c["active"].clone())
    };
    board(&mut maria, |b| active(b) == Some(json!([contact]))).await;
    let seen = board(&mut petru, |b| active(b).is_some()).await;
    assert_eq!(active(&seen), Some(json!([])), "petru sees dana, not her family_violence conversation: {seen}");
    assert!(!seen.to_string().contains(&contact), "{seen}");
}

/// `caller_hash` is never in an answer, and a counsellor records offline calls only for the helplines she serves.
async fn offline_calls_only_for_served_helplines_and_no_caller_hash(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    let ana = app.login("ana").await;
    let (status, refused) = offline_call(&app, &ana, "children").await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")), "{refused}");
    let (status, recorded) = offline_call(&app, &ana, "family_violence").await;
    assert_eq!(status, 201, "{recorded}");
    assert!(recorded.get("caller_hash").is_none(), "{recorded}");
    assert_eq!(recorded["caller_last2"], "56");
    let id = recorded["contact_id"].as_str().unwrap();
    let (status, read) = call(&app, &app.login("maria").await, "GET", &format!("/api/v1/calls/{id}"), None).await;
    assert_eq!(status, 200, "{read}");
    assert!(read.get("caller_hash").is_none(), "{read}");
    let stored = app.store.calls().call_record(id).await.unwrap().unwrap();
    assert!(stored.caller_hash.is_some_and(|h| h.len() == 64), "the hash stays in the database");
}

/// Close codes for frames the socket layer refuses, typing into another's conversation, only
/// counsellors on `/ws/agent`, and a resumed caller session closing the older socket.
async fn socket_findings_close_codes_typing_roles_and_resume(backend: Backend) {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    app.add_user("ioana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;

    // Over 64 KiB: 1009. Not UTF-8: 1007.
    let mut big = app.caller().await;
    big.send_raw(Message::Text("x".repeat(70 * 1024).into())).await;
    assert_eq!(big.closed().await, Some(1009));
    let mut bad = app.caller().await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    bad.send_raw(Message::Frame(frame)).await;
    assert_eq!(bad.closed().await, Some(1007));

    // Typing into another counsellor's conversation: an error, as for a message.
    let mut ana = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let queued = caller.expect("queued").await;
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    let resume_token = queued["resume_token"].as_str().unwrap().to_string();
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let (mut ioana, _) = app.agent("ioana").await;
    ioana.send(json!({"type": "typing", "contact_id": contact, "active": true})).await;
    let err = ioana.expect("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("unknown_contact"), Some(contact.as_str())), "{err}");
    ana.send(json!({"type": "typing", "contact_id": contact, "active": true})).await;
    assert_eq!(caller.expect("typing").await["active"], true, "the assigned counsellor's typing goes through");

    // A case manager (or a supervisor) cannot open the counsellor console's socket.
    for username in ["vera", "maria"] {
        let token = app.login(username).await;
        let (_, ticket) = call(&app, &token, "POST", "/api/v1/ws-ticket", None).await;
        let url = format!("ws://{}/ws/agent?ticket={}", app.addr, ticket["ticket"].as_str().unwrap());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 403, "{username}"),
            other => panic!("{username} on /ws/agent: {:?}", other.map(|_| "upgraded")),
        }
    }

    // One live caller socket per contact: a resume closes the older one (4009).
    let mut second = app.caller().await;
    second.send(json!({"type": "resume", "resume_token": resume_token, "last_seq": 0})).await;
    second.expect("resumed").await;
    assert_eq!(caller.closed().await, Some(4009));
    second.send(json!({"type": "message", "client_id": "r1", "text": "it's me"})).await;
    second.expect("ack").await;
    assert_eq!(ana.expect("message").await["text"], "it's me");
}

/// `Cache-Control: no-store` on API answers (errors included), `/chat` framed only by the allowed
/// origins, and `/metrics` behind its token when one is set.
async fn http_findings_no_store_framing_and_metrics_token(backend: Backend) {
    let Some(app) = TestApp::spawn_with_settings(backend, |s| {
        s.allowed_origins = vec!["https://www.116111.md".into()];
        s.metrics_token = Some("metrics-secret-token".into());
    })
    .await
    else {
        return;
    };
    people(&app).await;
    let token = app.login("maria").await;
    for (path, auth) in
        [("/api/v1/helplines", false), ("/api/v1/me", true), ("/api/v1/me", false), ("/api/v1/contacts/nope", true), ("/readyz", false)]
    {
        let req = app.http.get(app.url(path));
        let req = if auth { req.bearer_auth(&token) } else { req };
        let res = req.send().await.expect("request");
        assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path} ({})", res.status());
    }
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "maria", "password": "maria-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "the login answer holds tokens");

    let res = app.http.get(app.url("/chat")).send().await.expect("chat");
    let csp = res.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(csp.ends_with("frame-ancestors 'self' https://www.116111.md"), "{csp}");

    let res = app.http.get(app.url("/metrics")).send().await.expect("metrics");
    assert_eq!(res.status(), 401);
    let res = app.http.get(app.url("/metrics")).bearer_auth("wrong").send().await.expect("metrics");
    assert_eq!(res.status(), 401);
    let res = app.http.get(app.url("/metrics")).bearer_auth("metrics-secret-token").send().await.expect("metrics");
    assert_eq!(res.status(), 200);
}

/// Reads petru's frames up to the answer to a request sent now: whatever the server pushed to him
/// before it (the hub pushes an alert to every supervisor's socket at once, in order) is in them.
async fn frames_until_an_answer(ws: &mut Ws) -> Vec<Value> {
    ws.send(json!({"type": "set_status", "counsellor_id": "no-such-counsellor", "status": "away"})).await;
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no answer to the marker");
        let v = ws.recv().await;
        if v["type"] == "error" {
            return seen;
        }
        seen.push(v);
    }
}

/// Ana (family_violence) lets two offers ring out and is set away: maria (family_violence's
/// supervisor) and a supervisor granted every helpline get the `counsellor_away` alert; petru
/// (children's supervisor) does not, and nothing names ana to him.
async fn a_counsellor_away_alert_reaches_only_the_supervisors_of_their_helplines(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.ring_timeout_ms = 1_000;
        }
    })
    .await
    else {
        return;
    };
    people(&app).await;
    let ana_id = app.store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    let mut maria = crate::supervisor::supervisor(&app, "maria").await;
    let mut petru = crate::supervisor::supervisor(&app, "petru").await;
    let mut allsup = crate::supervisor::supervisor(&app, "allsup").await;
    let mut ana = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        assert_eq!(ana.expect("offer").await["contact_id"], contact.as_str());
        assert_eq!(ana.expect("offer_revoked").await["reason"], "expired");
    }
    assert_eq!(ana.expect("status").await["reason"], "missed_offers");
    for (who, ws) in [("maria", &mut maria), ("allsup", &mut allsup)] {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            assert!(tokio::time::Instant::now() < deadline, "{who}: no counsellor_away alert");
            let v = ws.recv().await;
            if v["type"] == "alert" && v["kind"] == "counsellor_away" {
                assert_eq!(v["counsellor_id"], ana_id.as_str(), "{who}: {v}");
                break;
            }
        }
    }
    let seen = frames_until_an_answer(&mut petru).await;
    for frame in &seen {
        assert!(frame["kind"] != "counsellor_away", "petru (children) was told: {frame}");
        if frame["type"] == "alert" {
            assert!(!frame.to_string().contains(&ana_id), "an alert naming ana reached petru: {frame}");
        }
    }
}

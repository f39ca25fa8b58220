//! Referrals with a life over the real server: a case referred to a service of the registry, the
//! provider told by a webhook (a real HTTP listener on loopback), accepting and completing it with the
//! token it was sent; statuses in order only; every role against referrals; sealed at rest; audited.

use helpline::store::audit::AuditQuery;
use helpline::store::users::Role;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::abuse::sql_text;
use crate::cases::{case_manager, handled_contact, service, user_id};
use crate::helpers::{add_user, call, Backend, TestApp, FRAME_TIMEOUT};

crate::on_both_backends!(referral_lives_with_its_provider, every_role_against_referrals);

const DAY_MS: i64 = 86_400_000;

/// A provider's system: an HTTP server on loopback that hands over every JSON body POSTed to it.
async fn webhook_sink() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(FRAME_TIMEOUT, rx.recv()).await.expect("the webhook was called in time").expect("sink open")
}

/// PATCH as the provider, with the token its webhook carried.
async fn as_provider(app: &TestApp, token: &str, id: &str, body: Value) -> (u16, Value) {
    call(app, token, "PATCH", &format!("/api/v1/referrals/{id}"), Some(body)).await
}

async fn referral_lives_with_its_provider(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    let vera = case_manager(&app, "vera", &["Cahul"]).await;
    let admin = app.login("root").await;
    let svc = service(&app, &admin, "Centrul Cahul", "family_violence_centre", "Cahul", 3, &["family_violence"]).await;
    let quiet = service(&app, &admin, "Centrul Orhei", "maternal_centre", "Orhei", 3, &["family_violence"]).await;

    // Admins set where a service is told; others may not; bad URLs and unknown services are named.
    let (url, mut sink) = webhook_sink().await;
    let hook = format!("/api/v1/services/{svc}/webhook");
    let maria = app.login("maria").await;
    assert_eq!(call(&app, &maria, "PUT", &hook, Some(json!({"url": url}))).await.0, 403);
    for bad in ["ftp://x", "https://provider.example/hook", "http://", "http://a b"] {
        let (status, err) = call(&app, &admin, "PUT", &hook, Some(json!({"url": bad}))).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{bad}");
    }
    assert_eq!(call(&app, &admin, "PUT", "/api/v1/services/nope/webhook", Some(json!({"url": url}))).await.0, 404);
    assert_eq!(call(&app, &admin, "PUT", &hook, Some(json!({"url": url}))).await.0, 204);

    // Vera opens a case and gives the person's name (never sent to a provider).
    let vera_token = app.login("vera").await;
    let (_, case) = call(
        &app,
        &vera_token,
        "POST",
        "/api/v1/cases",
        Some(json!({"helpline": "family_violence", "district": "Cahul", "reason": "the police called"})),
    )
    .await;
    let case_id = case["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(&app, &vera_token, "PUT", &format!("/api/v1/cases/{case_id}/person"), Some(json!({"full_name": "Elena Rusu"}))).await.0,
        204
    );

    // Bad referrals: named, nothing written.
    let path = format!("/api/v1/cases/{case_id}/referrals");
    let now = app.clock.now_ms();
    for bad in [
        json!({"service_id": "nope", "reason": "x"}),
        json!({"service_id": svc, "reason": "  "}),
        json!({"service_id": svc, "reason": "x".repeat(4001)}),
        json!({"service_id": svc, "reason": "x", "due_at_ms": now - 1}),
        json!({"service_id": svc, "reason": "x", "due_at_ms": now + 400 * DAY_MS}),
        json!({"service_id": svc, "reason": "x", "colour": "red"}),
        json!({"reason": "x"}),
    ] {
        let (status, err) = call(&app, &vera_token, "POST", &path, Some(bad.clone())).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("bad_field")), "{bad}: {err}");
    }
    assert_eq!(call(&app, &vera_token, "GET", &path, None).await.1["referrals"], json!([]));

    // The referral: sent, and the provider told at once, without the person's name.
    let due = now + 7 * DAY_MS;
    let (status, r) = call(
        &app,
        &vera_token,
        "POST",
        &path,
        Some(json!({"service_id": svc, "reason": "Shelter and counselling for a mother of two.", "due_at_ms": due})),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    assert_eq!(
        (r["status"].as_str(), r["due_at_ms"].as_i64(), r["allowed_next"].clone()),
        (Some("sent"), Some(due), json!(["accepted", "declined"]))
    );
    let told = received(&mut sink).await;
    assert_eq!(
        (told["type"].as_str(), told["referral_id"].as_str(), told["status"].as_str()),
        (Some("referral"), Some(id.as_str()), Some("sent"))
    );
    assert_eq!(
        (told["case_number"].as_str(), told["reason"].as_str()),
        (case["number"].as_str(), Some("Shelter and counselling for a mother of two."))
    );
    assert!(!told.to_string().contains("Elena"), "no identifying details to a provider: {told}");
    let token = told["respond"]["authorization"].as_str().unwrap().strip_prefix("Bearer ").unwrap().to_string();
    assert!(token.starts_with("rfp_"), "{token}");
    // A service without a webhook is not told (and nothing fails).
    let (status, _) =
        call(&app, &vera_token, "POST", &path, Some(json!({"service_id": quiet, "reason": "Maternal centre place if needed."}))).await;
    assert_eq!(status, 201);

    // The provider answers with its token: in order only; a wrong token is no referral; the due date is the case manager's.
    let (status, err) = as_provider(&app, &token, &id, json!({"status": "completed"})).await;
    assert_eq!((status, err["code"].as_str(), err["allowed"].clone()), (409, Some("conflict"), json!(["accepted", "declined"])), "{err}");
    assert_eq!(as_provider(&app, "rfp_wrong", &id, json!({"status": "accepted"})).await.0, 404);
    assert_eq!(as_provider(&app, &token, &id, json!({"due_at_ms": due + DAY_MS})).await.0, 403);
    assert_eq!(as_provider(&app, &token, &id, json!({"status": "lost"})).await.0, 400);
    assert_eq!(as_provider(&app, &token, &id, json!({})).await.0, 400);
    let (status, accepted) = as_provider(&app, &token, &id, json!({"status": "accepted", "feedback": "First session on Monday."})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(
        (accepted["status"].as_str(), accepted["updated_by"].as_str(), accepted["allowed_next"].clone()),
        (Some("accepted"), Some("provider"), json!(["completed"]))
    );

    // The case manager moves the due date: the provider is told of the change.
    let (status, moved) =
        call(&app, &vera_token, "PATCH", &format!("/api/v1/referrals/{id}"), Some(json!({"due_at_ms": due + DAY_MS}))).await;
    assert_eq!((status, moved["due_at_ms"].as_i64(), moved["status"].as_str()), (200, Some(due + DAY_MS), Some("accepted")), "{moved}");
    let update = received(&mut sink).await;
    assert_eq!((update["type"].as_str(), update["status"].as_str()), (Some("referral_update"), Some("accepted")));
    assert!(update.get("respond").is_none(), "the token is sent once: {update}");

    let (status, done) =
        as_provider(&app, &token, &id, json!({"status": "completed", "feedback": "Six sessions; she found work and a flat."})).await;
    assert_eq!((status, done["status"].as_str(), done["allowed_next"].clone()), (200, Some("completed"), json!([])));
    let (status, err) = as_provider(&app, &token, &id, json!({"status": "declined"})).await;
    assert_eq!((status, err["allowed"].clone()), (409, json!([])));

    // The case manager sees it all; reason and feedback sealed at rest.
    let (_, list) = call(&app, &vera_token, "GET", &path, None).await;
    let first = &list["referrals"][0];
    assert_eq!(
        (first["id"].as_str(), first["status"].as_str(), first["feedback"].as_str()),
        (Some(id.as_str()), Some("completed"), Some("Six sessions; she found work and a flat."))
    );
    assert_eq!(list["referrals"].as_array().unwrap().len(), 2);
    for column in ["reason", "feedback"] {
        let raw = sql_text(&app, &format!("SELECT {column} FROM referrals WHERE id = '{id}'")).await;
        assert!(raw.starts_with("hl1.") && !raw.contains("Six") && !raw.contains("Shelter"), "{column} sealed: {raw}");
    }
    let token_hash = sql_text(&app, &format!("SELECT provider_token_hash FROM referrals WHERE id = '{id}'")).await;
    assert!(!token_hash.contains(&token), "the token is kept as a hash only");

    // Audited on the case: the referral, its delivery, the provider's answers and the refused one.
    let lines =
        app.store.audit_log().audit_lines(&AuditQuery { target: Some(case_id.clone()), limit: 500, ..Default::default() }).await.unwrap();
    let has = |actor: &str, action: &str| lines.iter().any(|l| l.actor == actor && l.action == action);
    assert!(has(&vera, "referral_add") && has(&vera, "referral_list") && has(&vera, "referral_update"), "{lines:?}");
    assert!(has("provider", "referral_update") && has("provider", "referral_update_denied"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.actor == "system"
            && l.action == "referral_notify"
            && l.detail.as_deref().is_some_and(|d| d.contains("delivered 204"))),
        "{lines:?}"
    );

    // A closed case takes no new referral.
    let maria = app.login("maria").await;
    assert_eq!(call(&app, &maria, "POST", &format!("/api/v1/cases/{case_id}/stage"), Some(json!({"stage": "closed"}))).await.0, 200);
    let (status, err) = call(&app, &vera_token, "POST", &path, Some(json!({"service_id": svc, "reason": "again"}))).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("conflict")));
}

async fn every_role_against_referrals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    case_manager(&app, "vera", &["Cahul"]).await;
    case_manager(&app, "nina", &["Bălți"]).await;
    let admin = app.login("root").await;
    let svc = service(&app, &admin, "Centrul Cahul", "family_violence_centre", "Cahul", 3, &["family_violence"]).await;

    // Ana's case from her contact (she sees it but does not manage it); Vera is its case manager.
    let contact = handled_contact(&app, "family_violence", &ana).await;
    let (status, case) =
        call(&app, &app.login("ana").await, "POST", "/api/v1/cases", Some(json!({"contact_id": contact, "district": "Cahul"}))).await;
    assert_eq!(status, 201, "{case}");
    let case_id = case["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{case_id}/referrals");

    let users = ["ana", "ion", "vera", "nina", "maria", "petru", "root"];
    let adds = [403, 404, 201, 404, 201, 404, 201];
    let lists = [200, 404, 200, 404, 200, 404, 200];
    let changes = [403, 404, 200, 404, 200, 404, 200];
    let mut referral = None;
    for (i, username) in users.iter().enumerate() {
        let token = app.login(username).await;
        let actor = user_id(&app, username).await;
        let (status, body) = call(&app, &token, "POST", &path, Some(json!({"service_id": svc, "reason": format!("by {username}")}))).await;
        assert_eq!(status, adds[i], "{username} refers: {body}");
        if status == 201 && referral.is_none() {
            referral = body["id"].as_str().map(str::to_string);
        }
        let (status, body) = call(&app, &token, "GET", &path, None).await;
        assert_eq!(status, lists[i], "{username} lists: {body}");
        // (Ana and Ion are tried below, once Vera has referred the case.)
        if let Some(rid) = referral.clone() {
            let (status, body) =
                call(&app, &token, "PATCH", &format!("/api/v1/referrals/{rid}"), Some(json!({"feedback": format!("noted by {username}")})))
                    .await;
            assert_eq!(status, changes[i], "{username} changes: {body}");
        }
        // Every access, allowed or refused, is on the case's audit trail.
        let lines = app
            .store
            .audit_log()
            .audit_lines(&AuditQuery { target: Some(case_id.clone()), actor: Some(actor), since: None, limit: 100 })
            .await
            .unwrap();
        let add = if adds[i] == 201 { "referral_add" } else { "referral_add_denied" };
        let list = if lists[i] == 200 { "referral_list" } else { "referral_list_denied" };
        for action in [add, list] {
            assert!(
                lines.iter().any(|l| l.action == action && l.source.as_deref().is_some_and(|s| s.starts_with("http"))),
                "{username}: no {action} in {lines:?}"
            );
        }
    }
    // Ana (who sees the case but does not manage it) and Ion (who does not see it).
    let rid = referral.unwrap();
    for (username, want) in [("ana", 403), ("ion", 404)] {
        let (status, _) =
            call(&app, &app.login(username).await, "PATCH", &format!("/api/v1/referrals/{rid}"), Some(json!({"status": "accepted"}))).await;
        assert_eq!(status, want, "{username}");
        let actor = user_id(&app, username).await;
        let lines = app
            .store
            .audit_log()
            .audit_lines(&AuditQuery { target: Some(case_id.clone()), actor: Some(actor), since: None, limit: 100 })
            .await
            .unwrap();
        assert!(lines.iter().any(|l| l.action == "referral_update_denied"), "{username}: {lines:?}");
    }
    // Unknown referral; no token at all.
    assert_eq!(call(&app, &admin, "PATCH", "/api/v1/referrals/nope", Some(json!({"status": "accepted"}))).await.0, 404);
    let res = app.http.patch(app.url(&format!("/api/v1/referrals/{rid}"))).json(&json!({"status": "accepted"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

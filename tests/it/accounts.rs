//! Login, tokens, tickets, roles, and disabling an account while it is connected.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(
    login_and_roles,
    disabled_account_is_cut_off,
    disabled_supervisor_is_cut_off,
    logout_closes_sockets_and_voids_tokens
);

async fn login_and_roles(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let login = |body: Value| app.http.post(app.url("/api/v1/auth/login")).json(&body).send();

    let res = login(json!({"username": "ana", "password": "wrong"})).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "unauthorized");
    let res = login(json!({"username": "nobody", "password": "x"})).await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.http.post(app.url("/api/v1/auth/login")).body("{not json").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "bad_field");

    let token = app.login("ana").await;
    let me: Value = app.http.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "ana");
    assert!(me.get("password_hash").is_none(), "hashes never leave the server");
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.http.post(app.url("/api/v1/ws-ticket")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // The public helpline list shows names and languages, not settings.
    let list: Value = app.http.get(app.url("/api/v1/helplines")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["children", "disability", "family_violence"]);
    assert!(list[0].get("ring_timeout_ms").is_none());

    // A contact's record: supervisors only, and every read is audited.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/contacts/{contact_id}");
    let res = app.http.get(app.url(&path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let sup = app.login("maria").await;
    let res = app.http.get(app.url(&path)).bearer_auth(&sup).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["contact"]["state"], "queued");
    assert_eq!(body["events"][0]["kind"], "queued");
    let audit = app.store.audit_log().audit_for(&contact_id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1, "view_contact");
    let res = app.http.get(app.url("/api/v1/contacts/nope")).bearer_auth(&sup).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

async fn disabled_account_is_cut_off(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let token = app.login("ana").await;
    let mut agent = app.available_agent("ana").await;

    app.store.accounts().set_user_disabled("ana", true).await.unwrap();
    // The live socket is closed (the server checks every 100 ms in tests, every second in production).
    assert_eq!(agent.closed().await, Some(helpline::edge::ws::close::REVOKED));
    // The old token no longer opens anything, and logging in fails.
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res =
        app.http.post(app.url("/api/v1/auth/login")).json(&json!({"username": "ana", "password": "ana-password"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // A caller arriving now is not offered to the disabled counsellor: it waits.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    assert_eq!(caller.expect("queued").await["position"], 1);
}

/// Opens a supervisor dashboard socket with a fresh ticket for `token`.
async fn dashboard(app: &TestApp, token: &str) -> crate::helpers::Ws {
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(token).send().await.unwrap();
    let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    crate::helpers::Ws::connect(&format!("ws://{}/ws/supervisor?ticket={ticket}", app.addr)).await
}

async fn disabled_supervisor_is_cut_off(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let token = app.login("maria").await;
    let mut board = dashboard(&app, &token).await;
    board.expect("dashboard").await;
    app.store.accounts().set_user_disabled("maria", true).await.unwrap();
    assert_eq!(board.closed().await, Some(helpline::edge::ws::close::REVOKED), "a disabled supervisor's dashboard closes too");
}

/// Logout voids every token issued before it and closes the account's console and dashboard sockets;
/// logging in again works.
async fn logout_closes_sockets_and_voids_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let token = app.login("ana").await;
    let mut console = app.agent_with_token(&token).await;
    console.expect("hello").await;
    let mut second_console = app.agent_with_token(&token).await;
    second_console.expect("hello").await;
    let sup = app.login("maria").await;
    let mut board = dashboard(&app, &sup).await;
    board.expect("dashboard").await;

    let res = app.http.post(app.url("/api/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(console.closed().await, Some(helpline::edge::ws::close::REVOKED));
    assert_eq!(second_console.closed().await, Some(helpline::edge::ws::close::REVOKED));
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401, "the token is void after logout");
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // Someone else's dashboard is untouched.
    board.send(json!({"type": "ping"})).await;
    assert_eq!(board.expect("pong").await["type"], "pong");
    // A new login gets a working token at once.
    let fresh = app.login("ana").await;
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let audit = app.store.audit_log().audit_for(&app_user_id(&app, &fresh).await).await.unwrap();
    assert!(audit.iter().any(|(_, action)| action == "logout"), "{audit:?}");
}

async fn app_user_id(app: &TestApp, token: &str) -> String {
    let me: Value = app.http.get(app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    me["id"].as_str().unwrap().to_string()
}

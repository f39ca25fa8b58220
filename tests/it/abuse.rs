//! Abuse handling end to end: counsellors flag abusive contacts, supervisors block a caller's keyed identifier (chats refused calmly, calls rejected at the exchange) or route them to senior counsellors; refresh tokens; the audit log's hash chain.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::exchange::{add_gateway, now_ms, Exchange};
use crate::helpers::{add_user, caller_address, Backend, TestApp, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(
    a_flagged_chat_caller_is_blocked_calmly_and_the_block_ends,
    a_caller_routed_to_seniors_is_offered_only_to_seniors,
    a_blocked_number_is_rejected_at_the_exchange,
    refresh_tokens_rotate_and_a_reused_one_ends_the_login,
    the_audit_chain_verifies_and_names_a_tampered_line,
);

/// A caller's socket from a given address (the same person coming back).
pub(crate) async fn caller_at(app: &TestApp, address: &str) -> Ws {
    Ws::connect_from(&format!("ws://{}/ws/caller", app.addr), address).await
}

/// Starts a chat on `helpline`; returns the first frame the server answers with.
pub(crate) async fn start(ws: &mut Ws, helpline: &str) -> Value {
    ws.send(json!({"type": "start", "helpline": helpline, "language": "ro"})).await;
    loop {
        let f = ws.recv().await;
        if f["type"] != "position" {
            return f;
        }
    }
}

/// Reads frames until an `alert` of `kind` arrives (skipping the board and other alerts).
async fn alert(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} alert in time");
        let f = ws.recv().await;
        if f["type"] == "alert" && f["kind"] == kind {
            return f;
        }
        assert!(["dashboard", "alert"].contains(&f["type"].as_str().unwrap_or("")), "unexpected frame {f}");
    }
}

/// No frame but `pong` arrives on `ws` before its answer to a `ping` (nothing was queued for it).
async fn nothing_pending(ws: &mut Ws) {
    ws.send(json!({"type": "ping"})).await;
    let f = ws.expect("pong").await;
    assert_eq!(f["type"], "pong");
}

async fn supervisor_socket(app: &TestApp, username: &str) -> Ws {
    crate::supervisor::supervisor(app, username).await
}

/// Caller on `address` starts a chat that `agent` takes; returns the contact id.
pub(crate) async fn answered_chat(app: &TestApp, agent: &mut Ws, address: &str) -> (Ws, String) {
    let mut caller = caller_at(app, address).await;
    let queued = start(&mut caller, "children").await;
    assert_eq!(queued["type"], "queued", "{queued}");
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    let offer = agent.expect("offer").await;
    assert_eq!(offer["contact_id"], contact.as_str());
    agent.send(json!({"type": "accept", "contact_id": contact})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    (caller, contact)
}

pub(crate) async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn delete(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app.http.delete(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn a_flagged_chat_caller_is_blocked_calmly_and_the_block_ends(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("bob", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("sam", Role::Supervisor, &["disability"], &["ro"], 3).await;
    let mut board = supervisor_socket(&app, "maria").await;
    let mut ana = app.available_agent("ana").await;
    let (mut bob, _) = app.agent("bob").await;
    let abuser = caller_address();
    let (caller, contact) = answered_chat(&app, &mut ana, &abuser).await;

    // Only the counsellor who handled it may flag it (bob gets the stable code; the attempt is audited).
    bob.send(json!({"type": "flag_abusive", "contact_id": contact, "reason": "x"})).await;
    let refused = bob.expect("error").await;
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("unknown_contact"), Some(contact.as_str())));
    ana.send(json!({"type": "flag_abusive", "contact_id": contact, "reason": "   "})).await;
    assert_eq!(ana.expect("error").await["code"], "bad_field");
    ana.send(json!({"type": "flag_abusive", "contact_id": contact, "reason": "threats and insults, third time tonight"})).await;
    let flagged = ana.expect("flagged").await;
    assert_eq!(flagged["contact_id"], contact.as_str());
    let raised = alert(&mut board, "abusive_contact").await;
    assert_eq!((raised["contact_id"].as_str(), raised["helpline"].as_str()), (Some(contact.as_str()), Some("children")));
    ana.send(json!({"type": "end", "contact_id": contact})).await;
    ana.expect("contact_ended").await;
    caller.close().await;

    let maria = app.login("maria").await;
    let (status, flags) = get(&app, &maria, "/api/v1/flags").await;
    assert_eq!(status, 200);
    assert_eq!(flags["flags"][0]["contact_id"], contact.as_str());
    assert_eq!(flags["flags"][0]["blocked"], false);
    let ana_token = app.login("ana").await;
    assert_eq!(get(&app, &ana_token, "/api/v1/flags").await.0, 403);

    // Who may block: not a counsellor; not a supervisor of another helpline; not from an unflagged contact.
    let block = json!({"contact_id": contact, "duration": "1h", "reason": "threats to the counsellor", "mode": "block"});
    assert_eq!(post(&app, &ana_token, "/api/v1/blocks", block.clone()).await.0, 403);
    let sam = app.login("sam").await;
    assert_eq!(post(&app, &sam, "/api/v1/blocks", block.clone()).await.0, 404);
    let mut bad = block.clone();
    bad["duration"] = json!("forever");
    assert_eq!(post(&app, &maria, "/api/v1/blocks", bad).await.1["code"], "bad_field");
    let mut bad = block.clone();
    bad["mode"] = json!("ban");
    assert_eq!(post(&app, &maria, "/api/v1/blocks", bad).await.0, 400);
    let (other_caller, other) = answered_chat(&app, &mut ana, &caller_address()).await;
    let mut unflagged = block.clone();
    unflagged["contact_id"] = json!(other);
    let (status, body) = post(&app, &maria, "/api/v1/blocks", unflagged).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");
    ana.send(json!({"type": "end", "contact_id": other})).await;
    ana.expect("contact_ended").await;
    other_caller.close().await;

    let (status, created) = post(&app, &maria, "/api/v1/blocks", block.clone()).await;
    assert_eq!(status, 201, "{created}");
    let block_id = created["block"]["block_id"].as_str().unwrap().to_string();
    assert_eq!(created["block"]["mode"], "block");
    assert_eq!(created["block"]["active"], true);
    // The identifier is a keyed hash, and never shown.
    let identifier = app.store.abuse().caller_identifier(&contact).await.unwrap().expect("a chat keeps its network's hash");
    assert_eq!((identifier.kind, identifier.hash.len()), ("address", 64));
    assert!(!created.to_string().contains(&identifier.hash));
    assert!(!identifier.hash.contains(&abuser));

    // The blocked caller is told calmly, in the chat's language, with the emergency number; nothing is queued.
    let mut again = caller_at(&app, &abuser).await;
    let closed = start(&mut again, "children").await;
    assert_eq!(closed["type"], "closed", "{closed}");
    assert_eq!(closed["reason"], "unavailable");
    assert_eq!(closed["message"], "Nu vă putem prelua conversația acum. Dacă sunteți în pericol, sunați la 112.");
    nothing_pending(&mut ana).await;
    // Anyone else gets through, and the blocked caller still reaches the other helplines.
    let mut someone = caller_at(&app, &caller_address()).await;
    assert_eq!(start(&mut someone, "children").await["type"], "queued");
    someone.send(json!({"type": "end"})).await;
    let mut elsewhere = caller_at(&app, &abuser).await;
    elsewhere.send(json!({"type": "start", "helpline": "disability"})).await;
    assert_eq!(elsewhere.expect("queued").await["type"], "queued");
    elsewhere.send(json!({"type": "end"})).await;

    let (_, listed) = get(&app, &maria, "/api/v1/blocks").await;
    let listed = listed["blocks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["block_id"].as_str(), listed[0]["attempts"].as_i64()), (Some(block_id.as_str()), Some(1)));
    // Who flagged whom, why, and who blocked it: by name, for the dashboard's list.
    assert_eq!(listed[0]["flag"]["flagged_by_name"], "ana display", "{}", listed[0]);
    assert_eq!(listed[0]["flag"]["reason"], "threats and insults, third time tonight");
    assert_eq!(listed[0]["reviewer_name"], "maria display");
    assert_eq!(listed[0]["helpline_name"], "Children's helpline 116 111");
    assert_eq!(get(&app, &sam, "/api/v1/blocks").await.1["blocks"], json!([]), "other helplines' blocks are not listed");
    assert_eq!(get(&app, &maria, "/api/v1/flags").await.1["flags"][0]["blocked"], true);

    // Lifted early: by a supervisor of the helpline only, once.
    assert_eq!(delete(&app, &sam, &format!("/api/v1/blocks/{block_id}")).await.0, 404);
    let (status, lifted) = delete(&app, &maria, &format!("/api/v1/blocks/{block_id}")).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(lifted["block"]["active"], false);
    assert!(lifted["block"]["lifted_at"].is_string());
    assert_eq!(delete(&app, &maria, &format!("/api/v1/blocks/{block_id}")).await.0, 409);
    let mut back = caller_at(&app, &abuser).await;
    assert_eq!(start(&mut back, "children").await["type"], "queued");
    back.send(json!({"type": "end"})).await;

    // A block runs out by itself.
    let mut short = block.clone();
    short["duration"] = json!(120);
    assert_eq!(post(&app, &maria, "/api/v1/blocks", short).await.0, 201);
    let mut refused = caller_at(&app, &abuser).await;
    assert_eq!(start(&mut refused, "children").await["type"], "closed");
    app.clock.advance(121_000);
    let mut later = caller_at(&app, &abuser).await;
    assert_eq!(start(&mut later, "children").await["type"], "queued");
    let all = get(&app, &maria, "/api/v1/blocks?all=true").await.1;
    assert_eq!(all["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(get(&app, &maria, "/api/v1/blocks").await.1["blocks"], json!([]));

    // Everything is audited, the refusal included.
    let actions: Vec<String> = app.store.audit_log().audit_for(&contact).await.unwrap().into_iter().map(|(_, a)| a).collect();
    for a in ["flag_abusive_denied", "flag_abusive", "block_create", "block_lift"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
}

async fn a_caller_routed_to_seniors_is_offered_only_to_seniors(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.sla_at_risk_ms = 300;
            h.sla_target_ms = 600;
        }
    })
    .await
    else {
        return;
    };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let ion_id = add_user(&app.store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.store.accounts().set_user_senior(&ion_id, true).await.unwrap();
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let caller_ip = caller_address();
    let (first, contact) = answered_chat(&app, &mut ana, &caller_ip).await;
    let ana_token = app.login("ana").await;
    let (status, _) = post(&app, &ana_token, &format!("/api/v1/contacts/{contact}/flag"), json!({"reason": "sexual remarks"})).await;
    assert_eq!(status, 201);
    let maria = app.login("maria").await;
    let (status, created) = post(
        &app,
        &maria,
        "/api/v1/blocks",
        json!({"contact_id": contact, "duration": "7d", "reason": "route to seniors; may still be a victim", "mode": "senior"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    ana.send(json!({"type": "end", "contact_id": contact})).await;
    ana.expect("contact_ended").await;
    first.close().await;

    // No senior on duty: the caller waits (not refused) and supervisors get the usual wait alerts.
    let mut board = supervisor_socket(&app, "maria").await;
    let mut caller = caller_at(&app, &caller_ip).await;
    let queued = start(&mut caller, "children").await;
    assert_eq!(queued["type"], "queued", "{queued}");
    let waiting = queued["contact_id"].as_str().unwrap().to_string();
    let late = alert(&mut board, "wait_15s").await;
    assert_eq!(late["contact_id"], waiting.as_str());
    nothing_pending(&mut ana).await;
    assert!(app.store.contacts().contact(&waiting).await.unwrap().unwrap().senior_only);

    // A senior comes on duty: rung with it at once; ana, free and idle longer, never is.
    let mut ion = app.available_agent("ion").await;
    let offer = ion.expect("offer").await;
    assert_eq!(offer["contact_id"], waiting.as_str());
    ion.send(json!({"type": "decline", "contact_id": waiting})).await;
    nothing_pending(&mut ana).await;
    // Others' contacts still go to ana as usual.
    let (other_caller, _) = answered_chat(&app, &mut ana, &caller_address()).await;
    other_caller.close().await;
}

async fn a_blocked_number_is_rejected_at_the_exchange(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana_id = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.store.accounts().set_user_extension(&ana_id, Some("201")).await.unwrap();
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    let t0 = now_ms();
    pbx.offer("call-1", "116111", "+373 69 111 222", t0).await;
    let offer = ana.expect("offer").await;
    let contact = offer["contact_id"].as_str().unwrap().to_string();
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    pbx.expect("connect").await;
    pbx.answer("call-1", t0 + 2_000).await;
    ana.send(json!({"type": "flag_abusive", "contact_id": contact, "reason": "abusive prank caller, every night"})).await;
    ana.expect("flagged").await;
    pbx.hang_up("call-1", "counsellor", t0 + 30_000).await;
    ana.expect("contact_ended").await;
    let maria = app.login("maria").await;
    let (status, created) =
        post(&app, &maria, "/api/v1/blocks", json!({"contact_id": contact, "duration": "30d", "reason": "abusive prank caller"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["block"]["identifier"], "caller number");

    // The same number calls again (written differently): acknowledged, then rejected; nobody rings.
    let event = pbx.offer("call-2", "116111", "+373-69-111-222", t0 + 60_000).await;
    let reject = pbx.expect("reject").await;
    assert_eq!(reject, json!({"type": "reject", "call_id": "call-2", "reason": "blocked"}));
    nothing_pending(&mut ana).await;
    // The exchange repeats the event: acknowledged and rejected again, recorded once.
    pbx.send(json!({"type": "call_offered", "event_id": event, "call_id": "call-2", "dialled": "116111",
        "caller": "+373-69-111-222", "at": t0 + 60_000}))
        .await;
    pbx.acked(&event).await;
    pbx.expect("reject").await;
    let listed = get(&app, &maria, "/api/v1/blocks").await.1;
    assert_eq!(listed["blocks"][0]["attempts"], 1, "{listed}");
    assert!(app.store.abuse().caller_identifier(&contact).await.unwrap().is_some());
    // Another number gets through.
    pbx.offer("call-3", "116111", "+373 69 333 444", t0 + 61_000).await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["channel"], "call");

    // That one is routed to seniors instead: its next call is queued (not rejected), stored senior-only
    // in the same transaction as the call (so a restart keeps it).
    let third = offer["contact_id"].as_str().unwrap().to_string();
    let (status, _) = post(&app, &maria, &format!("/api/v1/contacts/{third}/flag"), json!({"reason": "sexual remarks"})).await;
    assert_eq!(status, 201);
    let senior = json!({"contact_id": third, "duration": "7d", "reason": "may still be a victim", "mode": "senior"});
    assert_eq!(post(&app, &maria, "/api/v1/blocks", senior).await.0, 201);
    pbx.offer("call-4", "116111", "+373 69 333 444", t0 + 90_000).await;
    let fourth = app.store.calls().open_calls().await.unwrap().into_iter().find(|c| c.call_id == "call-4").expect("call-4 is queued");
    assert!(app.store.contacts().contact(&fourth.contact_id).await.unwrap().unwrap().senior_only);
    assert!(pbx.quiet().await.iter().all(|f| f["type"] != "reject"), "not rejected");
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (u16, Value) {
    let res = app.http.post(app.url("/api/v1/auth/refresh")).json(&json!({"refresh_token": refresh_token})).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn login(app: &TestApp, username: &str) -> Value {
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": format!("{username}-password")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn me(app: &TestApp, token: &str) -> u16 {
    get(app, token, "/api/v1/me").await.0
}

async fn refresh_tokens_rotate_and_a_reused_one_ends_the_login(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana_id = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    let first = login(&app, "ana").await;
    assert_eq!(first["expires_in"], 900, "access tokens are short: 15 minutes");
    assert_eq!(first["refresh_expires_in"], 12 * 3600);
    let (access, r1) = (first["access_token"].as_str().unwrap(), first["refresh_token"].as_str().unwrap());
    assert_eq!(me(&app, access).await, 200);

    // Sixteen minutes later the access token is refused; the refresh token gives a new pair.
    app.clock.advance(16 * 60 * 1000);
    assert_eq!(me(&app, access).await, 401, "an expired access token is refused");
    let (status, second) = refresh(&app, r1).await;
    assert_eq!(status, 200, "{second}");
    let (a2, r2) = (second["access_token"].as_str().unwrap(), second["refresh_token"].as_str().unwrap());
    assert_ne!(r1, r2, "rotated");
    assert_eq!(me(&app, a2).await, 200);
    let left = second["refresh_expires_in"].as_i64().unwrap();
    assert!((12 * 3600 - 16 * 60 - 10..=12 * 3600 - 16 * 60).contains(&left), "the login's end does not move: {left}");
    // The refreshed token opens sockets too.
    let mut ws = app.agent_with_token(a2).await;
    assert_eq!(ws.expect("hello").await["username"], "ana");

    // r1 presented again: reuse. The whole family is revoked, r2 included.
    assert_eq!(refresh(&app, r1).await.0, 401);
    assert_eq!(refresh(&app, r2).await.0, 401, "a reuse revokes the family");
    let actions: Vec<String> = app.store.audit_log().audit_for(&ana_id).await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert!(actions.iter().any(|a| a == "refresh_reuse"), "{actions:?}");

    // Logout voids the refresh token.
    let third = login(&app, "ana").await;
    let res = app.http.post(app.url("/api/v1/auth/logout")).bearer_auth(third["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(refresh(&app, third["refresh_token"].as_str().unwrap()).await.0, 401);

    // Disabling voids it, and enabling again does not bring it back.
    let fourth = login(&app, "ana").await;
    app.store.accounts().set_user_disabled("ana", true).await.unwrap();
    assert_eq!(refresh(&app, fourth["refresh_token"].as_str().unwrap()).await.0, 401);
    app.store.accounts().set_user_disabled("ana", false).await.unwrap();
    assert_eq!(refresh(&app, fourth["refresh_token"].as_str().unwrap()).await.0, 401);

    // A login lasts 12 hours through refreshes, no longer.
    let fifth = login(&app, "ana").await;
    app.clock.advance(12 * 3600 * 1000 + 1);
    assert_eq!(refresh(&app, fifth["refresh_token"].as_str().unwrap()).await.0, 401);

    // Unknown and malformed.
    assert_eq!(refresh(&app, "not-a-token").await.0, 401);
    let res = app.http.post(app.url("/api/v1/auth/refresh")).body("{\"token\": 1}").send().await.unwrap();
    assert_eq!(res.status(), 400);
    ws.close().await;
}

/// Runs one SQL statement against the test database directly (as an intruder with database access would).
pub(crate) async fn sql_execute(app: &TestApp, sql: &str) {
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

pub(crate) async fn sql_text(app: &TestApp, sql: &str) -> String {
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query_as::<_, (String,)>(sql).fetch_one(&pool).await.unwrap().0
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query_as::<_, (String,)>(sql).fetch_one(&pool).await.unwrap().0
        }
    }
}

/// The real `helpline` binary with `args` on the test database: (exit code, stdout and stderr).
pub(crate) async fn helpline_cli(app: &TestApp, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_helpline"));
    command.arg("--database").arg(&app.db.url).args(args).env("RUST_LOG", "warn").env_remove("HELPLINE_RETENTION_DAYS");
    command.envs(crate::helpers::key_file_env(&app.db.url));
    tokio::task::spawn_blocking(move || {
        let out = command.output().expect("run helpline");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
    .await
    .unwrap()
}

/// `helpline audit verify` on the test database.
async fn cli_verify(app: &TestApp) -> (Option<i32>, String) {
    helpline_cli(app, &["audit", "verify"]).await
}

async fn the_audit_chain_verifies_and_names_a_tampered_line(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["en"], 1).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    // Audited actions: logins, a refused audit read, concurrent writers.
    let ana = app.login("ana").await;
    assert_eq!(get(&app, &ana, "/api/v1/audit/verify").await.0, 403);
    let logins: Vec<_> = (0..6).map(|_| app.login("ana")).collect();
    futures_util::future::join_all(logins).await;
    let root = app.login("root").await;

    let (status, report) = get(&app, &root, "/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(report["intact"], true, "{report}");
    assert!(report["lines"].as_i64().unwrap() >= 9, "{report}");
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("audit log intact"), "{out}");

    // Someone with database access edits line 3.
    let id = sql_text(&app, "SELECT id FROM audit_log WHERE seq = 3").await;
    let original = sql_text(&app, "SELECT action FROM audit_log WHERE seq = 3").await;
    sql_execute(&app, "UPDATE audit_log SET action = 'nothing_to_see' WHERE seq = 3").await;
    let (_, report) = get(&app, &root, "/api/v1/audit/verify").await;
    assert_eq!(report["intact"], false, "{report}");
    assert_eq!(report["first_break"]["seq"], 3);
    assert_eq!(report["first_break"]["id"], id.as_str());
    assert_eq!(report["lines"], 2);
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("broken at line 3") && out.contains(&id), "{out}");

    // Put back: intact again. A line slipped in outside the chain is named too.
    sql_execute(&app, &format!("UPDATE audit_log SET action = '{original}' WHERE seq = 3")).await;
    assert_eq!(get(&app, &root, "/api/v1/audit/verify").await.1["intact"], true);
    sql_execute(&app, "INSERT INTO audit_log (id, at, actor, action) VALUES ('zz-slipped-in', 0, 'cli', 'user_add')").await;
    let (_, report) = get(&app, &root, "/api/v1/audit/verify").await;
    assert_eq!(report["first_break"]["id"], "zz-slipped-in", "{report}");
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("zz-slipped-in"), "{out}");
    // A restart does not fold the slipped-in line into the chain.
    let app = app.restart().await;
    let root = app.login("root").await;
    assert_eq!(get(&app, &root, "/api/v1/audit/verify").await.1["first_break"]["id"], "zz-slipped-in");
    // Deleting a line breaks the chain at the next one.
    sql_execute(&app, "DELETE FROM audit_log WHERE id = 'zz-slipped-in'").await;
    sql_execute(&app, "DELETE FROM audit_log WHERE seq = 5").await;
    let (_, report) = get(&app, &root, "/api/v1/audit/verify").await;
    assert_eq!(report["first_break"]["seq"], 6, "{report}");
}

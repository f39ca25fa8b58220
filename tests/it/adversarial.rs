//! Hostile clients: a chat flood beside real callers, thousands of connection attempts from one address, password guessing, forged tokens, SQL metacharacters.

use std::time::Duration;

use helpline::store::users::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{add_user, Backend, TestApp, Ws};

crate::on_both_backends!(
    chat_flood_does_not_push_real_callers_out,
    connection_attempts_from_one_address_are_capped,
    password_guessing_is_throttled,
    forged_tokens_are_refused,
    sql_metacharacters_are_plain_text,
    no_conversation_text_in_logs,
    oversized_bodies_are_refused
);

/// A flooder's script starts 60 chats from one address while five real callers (each on their own
/// phone) ask for help: the flood gets its quota and then a calm refusal; every real caller is answered.
async fn chat_flood_does_not_push_real_callers_out(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    for name in ["ana", "ion"] {
        add_user(&app.store, name, Role::Counsellor, &["children"], &[], &["ro"], 10).await;
    }
    let url = format!("ws://{}/ws/caller", app.addr);
    let mut flood = Vec::new();
    let (mut queued, mut refused) = (0, 0);
    for _ in 0..60 {
        let mut ws = Ws::connect_from(&url, "203.0.113.66").await;
        ws.send(json!({"type": "start", "helpline": "children"})).await;
        let answer = ws.recv().await;
        match answer["type"].as_str() {
            Some("queued") => queued += 1,
            Some("error") => {
                assert_eq!(answer["code"], "rate_limited", "{answer}");
                assert!(answer["message"].as_str().unwrap_or("").contains("wait a minute"), "a calm message: {answer}");
                refused += 1;
            }
            _ => panic!("unexpected answer to a flood start: {answer}"),
        }
        flood.push(ws);
    }
    assert_eq!(queued, helpline::auth::guard::CONTACTS_PER_IP_PER_MIN, "the flood gets its per-minute quota, no more");
    assert_eq!(refused, 60 - queued);
    let mut real = Vec::new();
    for _ in 0..5 {
        let mut ws = app.caller().await;
        ws.send(json!({"type": "start", "helpline": "children"})).await;
        let q = ws.expect("queued").await;
        real.push((ws, q["contact_id"].as_str().unwrap_or_default().to_string()));
    }
    // Two counsellors take whatever is offered; every real caller must be connected.
    let mut agents = [app.available_agent("ana").await, app.available_agent("ion").await];
    let mut answered = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !real.iter().all(|(_, id)| answered.contains(id)) && tokio::time::Instant::now() < deadline {
        for agent in agents.iter_mut() {
            let frame = tokio::time::timeout(Duration::from_millis(200), agent.recv()).await;
            if let Ok(frame) = frame {
                if frame["type"] == "offer" {
                    let id = frame["contact_id"].clone();
                    agent.send(json!({"type": "accept", "contact_id": id})).await;
                }
                if frame["type"] == "assigned" {
                    if let Some(id) = frame["contact_id"].as_str() {
                        answered.insert(id.to_string());
                    }
                }
            }
        }
    }
    for (ws, id) in real.iter_mut() {
        assert!(answered.contains(id.as_str()), "real caller {id} was not answered");
        let connected = ws.expect("connected").await;
        assert_eq!(connected["contact_id"], id.as_str());
    }
    let res = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(res.status(), 200);
}

/// 10,000 socket attempts from one address: it keeps at most its limit open, the rest get 429
/// before any upgrade; callers elsewhere and the server are unaffected.
async fn connection_attempts_from_one_address_are_capped(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let url = format!("ws://{}/ws/caller", app.addr);
    let attempts = 10_000usize;
    let workers = 50usize;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut open, mut limited, mut other) = (Vec::new(), 0usize, 0usize);
            for _ in (w..attempts).step_by(workers) {
                let mut request = url.as_str().into_client_request().expect("request");
                request.headers_mut().insert("x-forwarded-for", "198.51.100.23".parse().expect("header"));
                match tokio_tungstenite::connect_async(request).await {
                    Ok((ws, _)) => open.push(ws),
                    Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status().as_u16() == 429 => limited += 1,
                    Err(_) => other += 1,
                }
            }
            (open, limited, other)
        }));
    }
    let (mut open, mut limited, mut other) = (Vec::new(), 0, 0);
    for t in tasks {
        let (o, l, x) = t.await.expect("worker");
        open.extend(o);
        limited += l;
        other += x;
    }
    println!("10,000 attempts from one address: {} open, {limited} refused with 429, {other} other failures", open.len());
    assert_eq!(open.len(), helpline::auth::guard::SOCKETS_PER_IP as usize, "exactly the per-address limit stays open");
    assert_eq!(limited + open.len(), attempts, "every other attempt is refused with 429");
    assert_eq!(other, 0);
    // A caller on another address starts a chat as if nothing happened.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    caller.expect("queued").await;
    // Closing the flood's sockets gives the address its places back.
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut request = url.as_str().into_client_request().expect("request");
        request.headers_mut().insert("x-forwarded-for", "198.51.100.23".parse().expect("header"));
        if tokio_tungstenite::connect_async(request).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the address never got its places back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wrong passwords: a few are forgiven; past the limit the guesser's address is locked out of the
/// account for a while (even the right password gets 429 from there), the attempts are audited (under
/// the account's id, never the name typed), other accounts are unaffected. Other addresses: `logins.rs`.
async fn password_guessing_is_throttled(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana = add_user(&app.store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let attempt = |user: &str, password: &str| {
        app.http.post(app.url("/api/v1/auth/login")).json(&json!({"username": user, "password": password})).send()
    };
    for i in 0..=helpline::auth::guard::LOGINS_PER_ACCOUNT_PER_MIN {
        let res = attempt("ana", &format!("guess-{i}")).await.expect("login");
        assert_eq!(res.status(), 401, "guess {i} is just wrong");
    }
    let res = attempt("ana", "guess-again").await.expect("login");
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("60"));
    assert_eq!(res.json::<Value>().await.expect("json")["code"], "rate_limited");
    let res = attempt("ana", "ana-password").await.expect("login");
    assert_eq!(res.status(), 429, "the right password does not get through a lock either");
    app.login("ion").await;
    let audit = app.store.audit_log().audit_for(&ana).await.expect("audit");
    let failed = audit.iter().filter(|a| a.1 == "login_failed").count();
    let throttled = audit.iter().filter(|a| a.1 == "login_throttled").count();
    assert_eq!(failed as u32, helpline::auth::guard::LOGINS_PER_ACCOUNT_PER_MIN + 1);
    assert_eq!(throttled, 2, "both refused attempts are in the audit log");
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Tokens that were not issued by this server, or not for this use, open nothing: `alg: none`,
/// another key, another issuer or audience, another `typ`, expired, not yet valid.
async fn forged_tokens_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let real = app.login("ana").await;
    let me: Value = app.http.get(app.url("/api/v1/me")).bearer_auth(&real).send().await.expect("me").json().await.expect("json");
    let sub = me["id"].as_str().expect("id").to_string();
    let now = chrono_now();
    let claims = |iss: &str, aud: &str, nbf: i64, exp: i64| json!({"sub": sub, "role": "admin", "iss": iss, "aud": aud, "iat": nbf, "nbf": nbf, "exp": exp});
    // Forgeries name the server's key (its `kid` is public), so each is refused for what it forges.
    let kid = jsonwebtoken::decode_header(&real).expect("header").kid;
    assert!(kid.is_some(), "access tokens name their key");
    let sign = |header: Value, body: Value, key: &[u8]| {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = header["typ"].as_str().map(str::to_string);
        h.kid = kid.clone();
        encode(&h, &body, &EncodingKey::from_secret(key)).expect("sign")
    };
    let key = b"test-secret-test-secret-test-secret";
    let good = claims("helpline", "helpline", now, now + 600);
    let forgeries = [
        ("alg none", format!("{}.{}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#), b64(&good.to_string()))),
        ("wrong key", sign(json!({"typ": "at+jwt"}), good.clone(), b"another-key-another-key-another-key")),
        ("wrong issuer", sign(json!({"typ": "at+jwt"}), claims("evil", "helpline", now, now + 600), key)),
        ("wrong audience", sign(json!({"typ": "at+jwt"}), claims("helpline", "evil", now, now + 600), key)),
        ("wrong typ", sign(json!({"typ": "refresh+jwt"}), good.clone(), key)),
        ("no typ", sign(json!({}), good.clone(), key)),
        ("expired", sign(json!({"typ": "at+jwt"}), claims("helpline", "helpline", now - 7200, now - 3600), key)),
        ("not yet valid", sign(json!({"typ": "at+jwt"}), claims("helpline", "helpline", now + 3600, now + 7200), key)),
    ];
    for (what, token) in &forgeries {
        let res = app.http.get(app.url("/api/v1/me")).bearer_auth(token).send().await.expect("me");
        assert_eq!(res.status(), 401, "{what} must be refused");
        let mut request = format!("ws://{}/ws/supervisor", app.addr).into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401, "{what}"),
            other => panic!("{what}: the upgrade must be refused, got {:?}", other.map(|_| ())),
        }
    }
    // The same claims signed properly (with the right typ) do work: the refusals above are about the forgery.
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(sign(json!({"typ": "at+jwt"}), good, key)).send().await.expect("me");
    assert_eq!(res.status(), 200);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Quotes, semicolons and comments in every text a client sends are stored and shown as written.
async fn sql_metacharacters_are_plain_text(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let nasty = "Robert'); DROP TABLE contacts;-- \" OR 1=1 /* \\ %_ $1";
    let res =
        app.http.post(app.url("/api/v1/auth/login")).json(&json!({"username": nasty, "password": nasty})).send().await.expect("login");
    assert_eq!(res.status(), 401, "a login with metacharacters is just a wrong login");
    let mut agent = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": nasty})).await;
    assert_eq!(caller.expect("error").await["code"], "unknown_helpline");
    let contact = start_and_answer(&mut caller, &mut agent).await;
    caller.send(json!({"type": "message", "client_id": nasty, "text": nasty})).await;
    assert_eq!(caller.expect("ack").await["client_id"], nasty);
    let got = agent.expect("message").await;
    assert_eq!(got["text"], nasty);
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "c1", "text": nasty})).await;
    agent.expect("ack").await;
    assert_eq!(caller.expect("message").await["text"], nasty);
    // The tables are all there and the contact is intact.
    let sup_check = app.store.contacts().contact(&contact).await.expect("contact").expect("still there");
    assert_eq!(sup_check.state, "active");
}

/// A canary string in everything a caller and a counsellor type never appears in any log line of
/// the real binary, even at `debug` (`trace` for the server's own lines) (logs go to operators, log
/// shippers and backups: none of them may hold what a child said); nor does a secret (a socket's
/// `?ticket=`, a password, a token).
async fn no_conversation_text_in_logs(backend: Backend) {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let Some(db) = crate::helpers::TestDb::new(backend).await else { return };
    {
        let store = helpline::store::Store::connect(&db.url).await.expect("store");
        store.migrate().await.expect("migrate");
        helpline::store::defaults::seed_helplines(&store).await.expect("helplines");
        add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
        store.close().await;
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_helpline"))
        .args(["--database", &db.url, "--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--trusted-proxies", "127.0.0.1"])
        .env("HELPLINE_JWT_SECRET", "canary-test-secret-canary-test-secret")
        .envs(crate::helpers::key_file_env(&db.url))
        .env("RUST_LOG", "debug,helpline=trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start helpline");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let mut addr_tx = Some(addr_tx);
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let collect_err = {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = r.next_line().await {
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let collect_out = {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if let Some(rest) = line.strip_prefix("helpline is listening on http://") {
                    if let (Some(tx), Some(addr)) = (addr_tx.take(), rest.split_whitespace().next()) {
                        let _ = tx.send(addr.to_string());
                    }
                }
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let addr = tokio::time::timeout(crate::helpers::FRAME_TIMEOUT, addr_rx).await.expect("start timed out").expect("address");
    let canary = "CANARY-7f3a9-my-stepfather-hits-me";
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"username": "ana", "password": "ana-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = token["access_token"].as_str().expect("token").to_string();
    let ticket: Value =
        http.post(format!("http://{addr}/api/v1/ws-ticket")).bearer_auth(&token).send().await.expect("ticket").json().await.expect("json");
    let ticket = ticket["ticket"].as_str().expect("ticket").to_string();
    let mut agent = Ws::connect(&format!("ws://{addr}/ws/agent?ticket={ticket}")).await;
    agent.expect("hello").await;
    agent.send(json!({"type": "status", "status": "available"})).await;
    agent.expect("status").await;
    let mut caller = Ws::connect_from(&format!("ws://{addr}/ws/caller"), &crate::helpers::caller_address()).await;
    let contact = start_and_answer(&mut caller, &mut agent).await;
    caller.send(json!({"type": "message", "client_id": format!("{canary}-id"), "text": canary})).await;
    caller.expect("ack").await;
    agent.expect("message").await;
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": format!("reply to {canary}")})).await;
    agent.expect("ack").await;
    assert_eq!(caller.expect("message").await["text"], format!("reply to {canary}"));
    // Bad frames carrying the canary are answered without echoing it into the log either.
    caller.send_raw(tokio_tungstenite::tungstenite::Message::Text(format!("{{\"type\": \"{canary}\"}}").into())).await;
    caller.expect("error").await;
    caller.send(json!({"type": "message", "client_id": "x", "text": canary, "extra": canary})).await;
    caller.expect("error").await;
    agent.send(json!({"type": "end", "contact_id": contact})).await;
    caller.expect("contact_ended").await;
    child.start_kill().expect("kill");
    let _ = child.wait().await;
    let _ = collect_err.await;
    let _ = collect_out.await;
    let lines = lines.lock().expect("lines");
    assert!(lines.len() > 10, "the server logged at debug: {} lines", lines.len());
    let leaks: Vec<&String> = lines.iter().filter(|l| l.contains("CANARY-7f3a9")).collect();
    assert!(leaks.is_empty(), "conversation text reached the log:\n{}", leaks.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"));
    // Nor a secret: the socket's ticket (a credential until used), the password, the tokens.
    for secret in [ticket.as_str(), "ana-password", token.as_str()] {
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "a secret reached the log:\n{}", leaks.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n"));
    }
    println!("{} log lines at debug, none holds the canary", lines.len());
}

/// The caller starts a chat on `children`, the (available) counsellor accepts it; returns the contact id.
async fn start_and_answer(caller: &mut Ws, agent: &mut Ws) -> String {
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let contact = caller.expect("queued").await["contact_id"].as_str().expect("id").to_string();
    let offer = agent.expect("offer").await;
    agent.send(json!({"type": "accept", "contact_id": offer["contact_id"]})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    contact
}

/// A request body over 64 KiB is refused with 413 before any handler reads it; the server lives on.
async fn oversized_bodies_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    // The server closes a connection whose body it refused; a client of its own keeps the shared pool clean.
    let http = reqwest::Client::new();
    let huge = json!({"username": "ana", "password": "x".repeat(80 * 1024)});
    let res = http.post(app.url("/api/v1/auth/login")).json(&huge).send().await.expect("login");
    assert_eq!(res.status(), 413);
    let http = reqwest::Client::new();
    let res = http.post(app.url("/api/v1/caller/end")).body("y".repeat(80 * 1024)).send().await.expect("end");
    assert_eq!(res.status(), 413);
    app.login("ana").await;
}

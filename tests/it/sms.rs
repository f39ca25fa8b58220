//! SMS through Kannel, end to end with the real parts (docs/channels.md): a phone's text enters at
//! Kannel's fake SMS centre, Kannel's sms-service posts it to the server, it is queued, offered to a
//! counsellor on the real console socket and accepted; her reply leaves through Kannel's `sendsms`
//! and reaches the fake SMS centre; Kannel's delivery reports come back to the server and the
//! counsellor sees them. Also: a forged webhook refused with nothing stored; a provider's retry
//! stored once; Kannel down for a while and the reply delivered after (the outbox); a repeat sender
//! recognised by the keyed hash of the number.

use std::time::Duration;

use helpline::edge::channels::rules::RetryPolicy;
use helpline::edge::channels::MessagingSettings;
use helpline::store::channels::NewChannel;
use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, Ws};
use crate::kannel::{FakeSmsc, Kannel, SENDSMS_PASSWORD, SENDSMS_USER};

crate::on_both_backends!(
    an_sms_is_answered_through_kannel_and_its_delivery_shown,
    a_reply_stored_before_a_kill_9_is_sent_once_after_the_restart,
    channels_are_added_listed_and_removed_from_the_command_line,
    an_answered_sms_conversation_closes_after_its_silence_limit_and_a_waiting_one_waits,
);

const PHONE: &str = "37369123456";
const SHORT: &str = "116111";
const SECRET: &str = "inbound-secret-for-the-test";

/// Fast enough for a test: the worker looks every 100 ms, retries after 200 ms doubling to 1 s.
fn quick(s: &mut helpline::app::Settings) {
    s.messaging = MessagingSettings {
        tick: Duration::from_millis(100),
        retry: RetryPolicy { base_ms: 200, cap_ms: 1_000, max_attempts: 1_000, lease_ms: 5_000 },
        timeout: Duration::from_secs(5),
    };
}

/// A counsellor's console whose frames are read by kind: frames that come at their own pace (a
/// delivery report, the caller's next text) are kept until asked for.
struct Console {
    ws: Ws,
    kept: Vec<Value>,
}

impl Console {
    async fn send(&mut self, v: Value) {
        self.ws.send(v).await;
    }

    /// The first frame of `kind` matching `pred`, kept or next.
    async fn frame(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.kept.iter().position(|v| v["type"] == kind && pred(v)) {
            return self.kept.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = tokio::time::timeout_at(deadline, self.ws.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame in time; kept: {:?}", self.kept));
            if v["type"] == kind && pred(&v) {
                return v;
            }
            self.kept.push(v);
        }
    }
}

async fn frame(agent: &mut Console, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    agent.frame(kind, pred).await
}

async fn delivery(agent: &mut Console, seq: i64, state: &str) -> Value {
    frame(agent, "delivery", |v| v["seq"] == seq && v["state"] == state).await
}

/// How many contacts, conversations, inbound ids and messages are stored.
async fn counts(app: &TestApp) -> Vec<String> {
    let mut all = Vec::new();
    for table in ["contacts", "channel_conversations", "channel_inbound", "messages"] {
        all.push(crate::abuse::sql_text(app, &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}")).await);
    }
    all
}

async fn an_sms_is_answered_through_kannel_and_its_delivery_shown(backend: Backend) {
    if !crate::kannel::available() {
        return;
    }
    let Some(app) = TestApp::spawn_with_settings(backend, quick).await else {
        return;
    };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let public = format!("http://{}", app.addr);
    let channel = NewChannel {
        name: "sms-md".into(),
        kind: "sms".into(),
        helpline: "children".into(),
        language: "ro".into(),
        public_url: public.clone(),
        api_base: String::new(),
        account: Some(SENDSMS_USER.into()),
        sender: Some(SHORT.into()),
        token: SENDSMS_PASSWORD.into(),
        inbound_secret: SECRET.into(),
        idle_limit_ms: 3_600_000,
    };
    let inbound = format!("http://{}/api/v1/channels/sms/sms-md/inbound", app.addr);
    let post_url = format!("http://kannel:{SECRET}@{}/api/v1/channels/sms/sms-md/inbound?from=%p&to=%P&id=%I", app.addr);
    let mut kannel = Kannel::start(&post_url).await;
    let channel = NewChannel { api_base: format!("http://127.0.0.1:{}", kannel.sendsms_port), ..channel };
    app.store.channels().add(&channel, app.clock.now_ms()).await.expect("channel added");
    let mut agent = Console { ws: app.available_agent("ana").await, kept: Vec::new() };

    // A phone writes: Kannel posts it to the server, which queues it and offers it to Ana.
    let mut phone = FakeSmsc::start(&kannel, &[&format!("{PHONE} {SHORT} text Buna ziua am nevoie de ajutor")]).await;
    let offer = frame(&mut agent, "offer", |_| true).await;
    assert_eq!(offer["channel"], "sms", "{offer}");
    let contact = offer["contact_id"].as_str().expect("contact id").to_string();
    agent.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = frame(&mut agent, "assigned", |_| true).await;
    assert_eq!((assigned["channel"].as_str(), assigned["caller_online"].as_bool()), (Some("sms"), Some(true)));
    assert_eq!(assigned["history"][0]["text"], "Buna ziua am nevoie de ajutor");
    let info = frame(&mut agent, "channel_info", |_| true).await;
    assert_eq!((info["channel"].as_str(), info.get("repeat")), (Some("sms"), None), "a first-time sender: {info}");

    // The number is kept only sealed; the sender is known by a keyed hash.
    let stored = app.store.channels().conversation(&contact).await.expect("read").expect("a conversation");
    assert_eq!(stored.address.as_deref(), Some(PHONE));
    assert!(!stored.sender_hash.contains(PHONE));
    let raw = crate::abuse::sql_text(&app, &format!("SELECT address FROM channel_conversations WHERE contact_id = '{contact}'")).await;
    assert!(!raw.contains(PHONE) && raw.len() > 40, "sealed at rest: {raw}");

    // Ana answers with the ordinary `message` frame: it leaves through Kannel's sendsms and reaches the phone.
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": "Bună, sunt aici. Ce s-a întâmplat?"})).await;
    let ack = frame(&mut agent, "ack", |_| true).await;
    assert_eq!(ack["seq"], 2);
    let got = phone.next(&kannel).await;
    assert_eq!((got.from.as_str(), got.to.as_str(), got.text.as_str()), (SHORT, PHONE, "Bună, sunt aici. Ce s-a întâmplat?"));
    // The delivery states Kannel reports reach her console (`sent`, then `delivered`).
    delivery(&mut agent, 2, "delivered").await;

    // A forged webhook is refused and nothing is stored: no secret, a wrong one, an unknown channel.
    let before = counts(&app).await;
    let forged = [
        app.http.post(format!("{inbound}?from={PHONE}&id=f1")).body("fals"),
        app.http.post(format!("{inbound}?from={PHONE}&id=f2")).basic_auth("kannel", Some("wrong")).body("fals"),
        app.http
            .post(format!("http://{}/api/v1/channels/sms/other/inbound?from=1&id=f3", app.addr))
            .basic_auth("kannel", Some(SECRET))
            .body("x"),
        app.http.post(format!("{inbound}?from=37369000000&id=f4")).basic_auth("kannel", Some("")).body("new sender"),
    ];
    for req in forged {
        let res = req.send().await.expect("send");
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], "unauthorized", "{body}");
    }
    let report = app.http.get(format!("http://{}/api/v1/channels/sms/sms-md/dlr?contact={contact}&seq=2&type=2", app.addr));
    assert_eq!(report.basic_auth("kannel", Some("wrong")).send().await.expect("send").status(), 401);
    assert_eq!(counts(&app).await, before, "nothing stored");
    let history = app.store.messages().messages_after(&contact, 0).await.expect("read");
    assert_eq!(history.len(), 2, "no forged message stored");
    let row = app.store.channels().outbox_row(&contact, 2).await.expect("read").expect("row");
    assert_eq!(row.state, "delivered", "a forged report changes nothing");

    // A provider's retry of the same message (Kannel's id) is stored once.
    for _ in 0..2 {
        let res = app
            .http
            .post(format!("{inbound}?from={PHONE}&to={SHORT}&id=kannel-dup-1"))
            .basic_auth("kannel", Some(SECRET))
            .body("Mi-e frica")
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), 200);
    }
    let got = frame(&mut agent, "message", |v| v["from"] == "caller").await;
    assert_eq!((got["text"].as_str(), got["seq"].as_i64()), (Some("Mi-e frica"), Some(3)));
    assert_eq!(app.store.messages().messages_after(&contact, 0).await.expect("read").len(), 3, "stored once");

    // Kannel goes down: the reply is kept in the outbox and retried; Ana is told.
    phone.stop().await;
    kannel.down().await;
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a2", "text": "Esti in siguranta acum?"})).await;
    assert_eq!(frame(&mut agent, "ack", |_| true).await["seq"], 4);
    let retrying = delivery(&mut agent, 4, "retrying").await;
    assert!(retrying["detail"].as_str().is_some_and(|d| d.contains("Kannel")), "{retrying}");
    let row = app.store.channels().outbox_row(&contact, 4).await.expect("read").expect("stored before it is sent");
    assert_eq!(row.state, "pending");
    // Kannel comes back (with the phone's next text): the reply is delivered after all, once.
    kannel.up().await;
    let mut phone = FakeSmsc::start(&kannel, &[&format!("{PHONE} {SHORT} text Da sunt acasa")]).await;
    let got = phone.next(&kannel).await;
    assert_eq!(got.text, "Esti in siguranta acum?");
    delivery(&mut agent, 4, "delivered").await;
    // The phone's text goes to the same conversation.
    let got = frame(&mut agent, "message", |v| v["from"] == "caller").await;
    assert_eq!((got["contact_id"].as_str(), got["text"].as_str()), (Some(contact.as_str()), Some("Da sunt acasa")));
    let row = app.store.channels().outbox_row(&contact, 4).await.expect("read").expect("row");
    assert!(row.attempts >= 2, "retried: {row:?}");

    // Ana ends it; the same number writes again a day later: a new contact, recognised as a repeat sender.
    agent.send(json!({"type": "end", "contact_id": contact})).await;
    frame(&mut agent, "contact_ended", |_| true).await;
    phone.stop().await;
    let mut phone = FakeSmsc::start(&kannel, &[&format!("{PHONE} {SHORT} text Iarasi eu")]).await;
    let offer = frame(&mut agent, "offer", |_| true).await;
    let second = offer["contact_id"].as_str().expect("id").to_string();
    assert_ne!(second, contact);
    agent.send(json!({"type": "accept", "contact_id": second})).await;
    frame(&mut agent, "assigned", |_| true).await;
    let info = frame(&mut agent, "channel_info", |v| v["contact_id"] == second.as_str()).await;
    assert_eq!(info["repeat"]["contacts"], 1, "a repeat sender: {info}");
    let first = app.store.channels().conversation(&contact).await.expect("read").expect("first");
    let again = app.store.channels().conversation(&second).await.expect("read").expect("second");
    assert_eq!(first.sender_hash, again.sender_hash);
    assert!(first.closed_at.is_some(), "the ended conversation is closed");
    assert!(phone.try_next().is_none(), "nothing sent twice");
    phone.stop().await;
    kannel.down().await;
}

/// The real binary is killed (SIGKILL) after Ana's reply is stored and before Kannel took it (Kannel is
/// down); Kannel comes back and the server restarts on the same database: the reply reaches the
/// phone, once.
async fn a_reply_stored_before_a_kill_9_is_sent_once_after_the_restart(backend: Backend) {
    if !crate::kannel::available() {
        return;
    }
    let Some(db) = crate::helpers::TestDb::new(backend).await else {
        return;
    };
    let store = helpline::store::Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    crate::helpers::add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    let server = crate::durability::Server::start(&db.url).await;
    let addr = server.addr.clone();
    let post_url = format!("http://kannel:{SECRET}@{addr}/api/v1/channels/sms/sms-md/inbound?from=%p&to=%P&id=%I");
    let mut kannel = Kannel::start(&post_url).await;
    let channel = NewChannel {
        name: "sms-md".into(),
        kind: "sms".into(),
        helpline: "children".into(),
        language: "ro".into(),
        public_url: format!("http://{addr}"),
        api_base: format!("http://127.0.0.1:{}", kannel.sendsms_port),
        account: Some(SENDSMS_USER.into()),
        sender: Some(SHORT.into()),
        token: SENDSMS_PASSWORD.into(),
        inbound_secret: SECRET.into(),
        idle_limit_ms: 0,
    };
    store.channels().add(&channel, 0).await.expect("channel added");
    let mut agent = Console { ws: crate::telephony::ana_available(&server).await, kept: Vec::new() };
    let phone = FakeSmsc::start(&kannel, &[&format!("{PHONE} {SHORT} text Ajutor va rog")]).await;
    let offer = frame(&mut agent, "offer", |_| true).await;
    let contact = offer["contact_id"].as_str().expect("id").to_string();
    agent.send(json!({"type": "accept", "contact_id": contact})).await;
    frame(&mut agent, "assigned", |_| true).await;

    // Kannel is down: the reply is stored, the first attempt fails.
    phone.stop().await;
    kannel.down().await;
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "k1", "text": "Sunt aici, scrie-mi"})).await;
    assert_eq!(frame(&mut agent, "ack", |_| true).await["seq"], 2);
    delivery(&mut agent, 2, "retrying").await;
    server.sigkill().await;
    drop(agent);

    // Kannel is back; so is the server, on the same address and database.
    kannel.up().await;
    let mut phone = FakeSmsc::start(&kannel, &[]).await;
    let (child, _) = crate::durability::spawn_helpline(&db.url, &["--listen", &addr], "durability-test-secret-durability", "warn").await;
    let _server = crate::durability::Server { child, addr, http: reqwest::Client::new() };
    let got = phone.next(&kannel).await;
    assert_eq!((got.to.as_str(), got.text.as_str()), (PHONE, "Sunt aici, scrie-mi"));
    // Once: its row is settled (Kannel's report came back), and nothing else reached the phone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = store.channels().outbox_row(&contact, 2).await.expect("read").expect("row");
        if row.state == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(phone.try_next().is_none(), "sent once");
    phone.stop().await;
    kannel.down().await;
}

/// The real `helpline` binary with `args` on the test database and the token in `token` (None: unset).
async fn cli(app: &TestApp, token: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_helpline"));
    command.arg("--database").arg(&app.db.url).args(args).env("RUST_LOG", "warn").env_remove("HELPLINE_CHANNEL_TOKEN");
    command.envs(crate::helpers::key_file_env(&app.db.url));
    if let Some(t) = token {
        command.env("HELPLINE_CHANNEL_TOKEN", t);
    }
    tokio::task::spawn_blocking(move || {
        let out = command.output().expect("run helpline");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
    .await
    .expect("joined")
}

async fn channels_are_added_listed_and_removed_from_the_command_line(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let add = [
        "channel",
        "add",
        "sms",
        "--name",
        "sms-md",
        "--helpline",
        "children",
        "--public-url",
        "https://helpline.example.org",
        "--api-base",
        "http://127.0.0.1:13013",
        "--username",
        "helpline",
        "--sender",
        "116111",
    ];
    // The credential never comes as a flag: without the variable or a file, nothing is added.
    let (code, out) = cli(&app, None, &add).await;
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("HELPLINE_CHANNEL_TOKEN"), "{out}");
    let (code, out) = cli(&app, Some("sendsms-canary-password"), &add).await;
    assert_eq!(code, Some(0), "{out}");
    let post_url = out.lines().find(|l| l.starts_with("post-url")).expect("the sms-service group to configure");
    assert!(
        post_url.contains("https://kannel:")
            && post_url.contains("@helpline.example.org/api/v1/channels/sms/sms-md/inbound?from=%p&to=%P&id=%I"),
        "{out}"
    );
    let secret = post_url.split("kannel:").nth(1).and_then(|r| r.split('@').next()).expect("the secret").to_string();
    let (code, again) = cli(&app, Some("x"), &add).await;
    assert!(code != Some(0) && again.contains("exists"), "{again}");
    let bad = [
        "channel",
        "add",
        "sms",
        "--name",
        "x",
        "--helpline",
        "nope",
        "--public-url",
        "https://h",
        "--api-base",
        "http://k",
        "--username",
        "u",
    ];
    let (code, out) = cli(&app, Some("x"), &bad).await;
    assert!(code != Some(0) && out.contains("no helpline"), "{out}");

    let (code, list) = cli(&app, None, &["channel", "list"]).await;
    assert_eq!(code, Some(0));
    assert!(list.contains("sms-md") && list.contains("children") && !list.contains("canary") && !list.contains(&secret), "{list}");
    // Sealed at rest: neither the credential nor the secret in clear.
    let raw = crate::abuse::sql_text(&app, "SELECT token || ' ' || inbound_secret FROM messaging_channels").await;
    assert!(!raw.contains("canary") && !raw.contains(&secret), "{raw}");
    let config = app.store.channels().active("sms", "sms-md").await.expect("read").expect("active");
    assert_eq!((config.token.as_str(), config.inbound_secret.as_str()), ("sendsms-canary-password", secret.as_str()));

    // The secret opens the webhook (a bad request now, not a refusal); removed, the channel refuses it.
    let inbound = app.url("/api/v1/channels/sms/sms-md/inbound?id=1");
    let res = app.http.post(&inbound).basic_auth("kannel", Some(&secret)).body("x").send().await.expect("send");
    assert_eq!(res.status(), 400, "no sender");
    let (code, out) = cli(&app, None, &["channel", "remove", "sms-md"]).await;
    assert_eq!(code, Some(0), "{out}");
    let res = app.http.post(&inbound).basic_auth("kannel", Some(&secret)).body("x").send().await.expect("send");
    assert_eq!(res.status(), 401);
    let (_, list) = cli(&app, None, &["channel", "list"]).await;
    assert!(!list.contains("sms-md"), "{list}");
    let (code, _) = cli(&app, None, &["channel", "remove", "sms-md"]).await;
    assert_ne!(code, Some(0));
}

/// An SMS through the channel's webhook, as Kannel posts it; returns the contact.
async fn post_sms(app: &TestApp, from: &str, id: &str, text: &str) -> String {
    let url = app.url(&format!("/api/v1/channels/sms/sms-md/inbound?from={from}&to={SHORT}&id={id}"));
    let res = app.http.post(url).basic_auth("kannel", Some(SECRET)).body(text.to_string()).send().await.expect("send");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    body["contact_id"].as_str().expect("a contact").to_string()
}

/// Silence: an answered conversation closes after its channel's limit (server time moved on, no
/// sleeping); a waiting one stays in the queue however long its sender is silent.
async fn an_answered_sms_conversation_closes_after_its_silence_limit_and_a_waiting_one_waits(backend: Backend) {
    let Some(app) = TestApp::spawn_with_settings(backend, quick).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    let channel = NewChannel {
        name: "sms-md".into(),
        kind: "sms".into(),
        helpline: "children".into(),
        language: "ro".into(),
        public_url: "http://127.0.0.1".into(),
        // No Kannel here: replies would wait in the outbox.
        api_base: "http://127.0.0.1:9".into(),
        account: Some(SENDSMS_USER.into()),
        sender: None,
        token: SENDSMS_PASSWORD.into(),
        inbound_secret: SECRET.into(),
        idle_limit_ms: 30 * 60_000,
    };
    app.store.channels().add(&channel, app.clock.now_ms()).await.expect("channel added");
    let mut agent = Console { ws: app.available_agent("ana").await, kept: Vec::new() };
    let answered = post_sms(&app, PHONE, "s-1", "Buna").await;
    assert_eq!(frame(&mut agent, "offer", |_| true).await["contact_id"], answered.as_str());
    agent.send(json!({"type": "accept", "contact_id": answered})).await;
    frame(&mut agent, "assigned", |_| true).await;
    // A second sender waits: Ana has one slot.
    let waiting = post_sms(&app, "37369000111", "s-2", "Alo").await;
    assert_ne!(waiting, answered);

    // 29 minutes of silence: still open. Past 30: the answered one is closed, the waiting one waits.
    app.clock.advance(29 * 60_000);
    let still = app.store.channels().open_conversations().await.expect("read");
    assert_eq!(still.len(), 2, "{still:?}");
    app.clock.advance(2 * 60_000);
    let ended = frame(&mut agent, "contact_ended", |v| v["contact_id"] == answered.as_str()).await;
    assert_eq!(ended["reason"], "caller_ended", "{ended}");
    let c = app.store.contacts().contact(&waiting).await.expect("read").expect("stored");
    assert!(c.is_open(), "a waiting SMS contact is not closed for silence: {c:?}");
    app.clock.advance(24 * 3_600_000);
    let c = app.store.contacts().contact(&waiting).await.expect("read").expect("stored");
    assert!(c.is_open(), "not even after a day: {c:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.store.channels().conversation(&answered).await.expect("read").and_then(|c| c.closed_at).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the ended conversation was never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

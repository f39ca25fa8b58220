//! Phone calls end to end: a simulated exchange places calls over the gateway protocol, counsellors take them on real sockets, and the call records are checked.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::durability::Server;
use crate::exchange::{add_gateway, now_ms, Exchange};
use crate::helpers::{Backend, TestApp, TestDb, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(
    a_call_is_offered_connected_answered_and_recorded,
    a_call_abandoned_after_three_seconds_is_abandoned_short,
    a_counsellor_on_a_call_gets_no_other_call_and_an_unanswered_call_moves_on_with_cancel,
    caller_numbers_are_never_stored_in_clear_and_repeat_callers_are_recognised,
    bad_gateway_input_is_refused_or_stored_as_an_orphan,
    the_webhook_takes_the_same_events,
    a_counsellor_records_an_offline_call,
    a_repeat_callers_offer_shows_their_earlier_contacts_on_this_helpline_audited,
    waiting_calls_keep_repeat_count_and_earlier_contacts_after_a_restart,
    commands_wait_in_the_database_until_acknowledged_across_a_restart,
    stale_connects_are_superseded_and_never_sent,
    counsellors_hold_resume_and_hang_up_their_own_calls,
    webhook_answers_carry_commands_until_acknowledged,
    an_exchange_with_two_sockets_gets_a_command_on_one_until_it_closes,
    a_socket_that_sits_on_a_command_unacknowledged_is_closed_and_another_gets_it,
);

/// A counsellor serving the children's helpline in Romanian, with an extension.
pub(crate) async fn counsellor(app: &TestApp, username: &str, extension: Option<&str>) -> String {
    let id = crate::helpers::add_user(&app.store, username, Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.store.accounts().set_user_extension(&id, extension).await.expect("extension");
    id
}

pub(crate) async fn call_record(app: &TestApp, contact: &str) -> helpline::store::calls::CallRecord {
    app.store.calls().call_record(contact).await.expect("read").expect("call record")
}

/// The offer of a call to `ws`; returns the contact id.
pub(crate) async fn call_offer(ws: &mut Ws) -> (String, Value) {
    let offer = ws.expect("offer").await;
    assert_eq!(offer["channel"], "call", "{offer}");
    (offer["contact_id"].as_str().expect("contact id").to_string(), offer)
}

async fn a_call_is_offered_connected_answered_and_recorded(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana_id = counsellor(&app, "ana", Some("201")).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;

    let t0 = now_ms();
    pbx.offer("call-1", "116 111", "+373 69 123 456", t0).await;
    let (contact, offer) = call_offer(&mut ana).await;
    assert_eq!(offer["helpline"], "children");
    assert_eq!(offer["caller_last2"], "56");
    assert!(offer.get("repeat").is_none(), "a first call is no repeat: {offer}");
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    let mut connect = pbx.expect("connect").await;
    assert!(connect["command_id"].as_str().is_some_and(|id| !id.is_empty()), "{connect}");
    connect.as_object_mut().unwrap().remove("command_id");
    assert_eq!(connect, json!({"type": "connect", "call_id": "call-1", "counsellor": ana_id, "extension": "201"}));

    pbx.answer("call-1", t0 + 4_000).await;
    let ended = pbx.hang_up("call-1", "caller", t0 + 64_000).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());

    let record = call_record(&app, &contact).await;
    assert_eq!(record.outcome.as_deref(), Some("answered"));
    assert_eq!((record.wait_ms, record.talk_ms), (Some(4_000), Some(60_000)));
    assert_eq!((record.offered_at, record.answered_at, record.ended_at), (t0, Some(t0 + 4_000), Some(t0 + 64_000)));
    assert_eq!(record.ended_by.as_deref(), Some("caller"));
    let stored = app.store.contacts().contact(&contact).await.unwrap().unwrap();
    assert_eq!((stored.channel.as_str(), stored.state.as_str()), ("call", "ended"));
    assert_eq!(stored.counsellor_id.as_deref(), Some(ana_id.as_str()));

    // The exchange retries the last event (and a late, different end): acknowledged, nothing changes.
    let events = app.store.contacts().contact_events(&contact).await.unwrap();
    pbx.event(json!({"type": "call_ended", "event_id": ended, "call_id": "call-1", "by": "caller", "at": t0 + 64_000})).await;
    pbx.hang_up("call-1", "system", t0 + 99_000).await;
    assert_eq!(call_record(&app, &contact).await, record);
    let after = app.store.contacts().contact_events(&contact).await.unwrap();
    assert_eq!(after.len(), events.len() + 1, "only the second, new event is logged");
}

async fn a_call_abandoned_after_three_seconds_is_abandoned_short(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    // Nobody is on duty: the calls wait until their callers give up.
    let t0 = now_ms();
    pbx.offer("short", "116111", "069000001", t0).await;
    pbx.abandon("short", t0 + 3_000).await;
    pbx.offer("long", "116111", "069000002", t0).await;
    pbx.abandon("long", t0 + 20_000).await;
    for (call, outcome, wait) in [("short", "abandoned_short", 3_000), ("long", "abandoned", 20_000)] {
        let (contact,): (String,) = contact_of(&app, call).await;
        let record = call_record(&app, &contact).await;
        assert_eq!((record.outcome.as_deref(), record.wait_ms, record.talk_ms), (Some(outcome), Some(wait), None));
        let stored = wait_for_state(&app, &contact, "abandoned").await;
        assert_eq!(stored.end_reason.as_deref(), Some("caller_ended"));
    }
}

async fn contact_of(app: &TestApp, call_id: &str) -> (String,) {
    let sql = "SELECT contact_id FROM calls WHERE call_id = $1";
    match app.store.backend() {
        helpline::store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query_as(sql).bind(call_id).fetch_one(&pool).await.unwrap()
        }
        helpline::store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query_as(sql).bind(call_id).fetch_one(&pool).await.unwrap()
        }
    }
}

/// The contact once the router has committed `state` (the engine's step follows the event's ack).
async fn wait_for_state(app: &TestApp, contact: &str, state: &str) -> helpline::store::contacts::ContactRecord {
    let deadline = tokio::time::Instant::now() + crate::helpers::FRAME_TIMEOUT;
    loop {
        let c = app.store.contacts().contact(contact).await.unwrap().unwrap();
        if c.state == state {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "contact stayed {}", c.state);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_counsellor_on_a_call_gets_no_other_call_and_an_unanswered_call_moves_on_with_cancel(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.ring_timeout_ms = 1_000;
        }
    })
    .await
    else {
        return;
    };
    counsellor(&app, "ana", Some("201")).await;
    let ion_id = counsellor(&app, "ion", Some("202")).await;
    counsellor(&app, "nox", None).await;
    // Ana has been idle longest; Nox has no extension.
    let mut ana = app.available_agent("ana").await;
    let mut ion = app.available_agent("ion").await;
    let mut nox = app.available_agent("nox").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    let t0 = now_ms();

    // Ana lets the first call ring out: the exchange is told to stop, and it rings for Ion.
    pbx.offer("c1", "116111", "069000001", t0).await;
    let (c1, _) = call_offer(&mut ana).await;
    assert_eq!(ana.expect("offer_revoked").await["reason"], "expired");
    let cancel = pbx.expect("cancel").await;
    assert_eq!((cancel["call_id"].as_str(), cancel["command_id"].is_string()), (Some("c1"), true), "{cancel}");
    let (again, _) = call_offer(&mut ion).await;
    assert_eq!(again, c1);
    ion.send(json!({"type": "accept", "contact_id": c1})).await;
    ion.expect("assigned").await;
    let connect = pbx.expect("connect").await;
    assert_eq!((connect["call_id"].as_str(), connect["counsellor"].as_str()), (Some("c1"), Some(ion_id.as_str())));
    pbx.answer("c1", t0 + 3_000).await;

    // Ion is on a call: the second call goes to Ana; a third call waits for a counsellor with an
    // extension and no call (Nox has none), and a chat is not offered to Ion either.
    pbx.offer("c2", "116111", "069000002", t0 + 4_000).await;
    let (c2, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": c2})).await;
    ana.expect("assigned").await;
    pbx.offer("c3", "116111", "069000003", t0 + 5_000).await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let chat = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    let offer = nox.expect("offer").await;
    assert_eq!((offer["contact_id"].as_str(), offer["channel"].as_str()), (Some(chat.as_str()), Some("chat")));
    for ws in [&mut ana, &mut ion] {
        ws.send(json!({"type": "ping"})).await;
        ws.expect("pong").await; // panics on any offer
    }
    // Ion's call ends: the waiting call rings for Ion now (her ended call's slot is in wrap-up; her
    // other slot is free). The offer and the wrap-up (router) and the end (relay) come from two
    // actors: in any order.
    pbx.hang_up("c1", "counsellor", t0 + 60_000).await;
    let (mut ended, mut offer, mut wrap_up) = (None, None, None);
    while ended.is_none() || offer.is_none() || wrap_up.is_none() {
        let frame = ion.recv().await;
        match frame["type"].as_str() {
            Some("contact_ended") => ended = Some(frame),
            Some("offer") => offer = Some(frame),
            Some("wrap_up") => wrap_up = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(wrap_up.unwrap()["contact_id"].as_str(), Some(c1.as_str()));
    let offer = offer.unwrap();
    assert_eq!((ended.unwrap()["contact_id"].as_str(), offer["channel"].as_str()), (Some(c1.as_str()), Some("call")));
    let c3 = offer["contact_id"].as_str().unwrap().to_string();
    assert_eq!(contact_of(&app, "c3").await.0, c3);
    assert_eq!(call_record(&app, &c1).await.outcome.as_deref(), Some("answered"));
}

async fn caller_numbers_are_never_stored_in_clear_and_repeat_callers_are_recognised(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", Some("201")).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    let t0 = now_ms();
    let number = "+37369987654";
    pbx.offer("first", "116111", number, t0).await;
    let (first, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": first})).await;
    ana.expect("assigned").await;
    pbx.answer("first", t0 + 2_000).await;
    pbx.hang_up("first", "caller", t0 + 30_000).await;
    ana.expect("contact_ended").await;
    // Her after-call work is done: the slot leaves wrap-up.
    ana.send(json!({"type": "ready", "contact_id": first})).await;
    // The same caller, written differently, calls again.
    pbx.offer("second", "116111", "+373 (69) 98-76-54", t0 + 60_000).await;
    let (second, offer) = call_offer(&mut ana).await;
    assert_eq!(offer["repeat"], json!({"contacts": 1, "days": 30}), "{offer}");
    assert_eq!(offer["caller_last2"], "54");
    // Another caller is no repeat.
    ana.send(json!({"type": "decline", "contact_id": second})).await;
    pbx.abandon("second", t0 + 70_000).await;
    pbx.offer("third", "116111", "+37369000000", t0 + 80_000).await;
    let (_, offer) = call_offer(&mut ana).await;
    assert!(offer.get("repeat").is_none(), "{offer}");

    let a = call_record(&app, &first).await;
    let b = call_record(&app, &second).await;
    assert_eq!(a.caller_hash, b.caller_hash);
    assert_eq!(a.caller_last2.as_deref(), Some("54"));
    let hash = a.caller_hash.expect("hash");
    assert_eq!(hash.len(), 64);
    assert_ne!(hash, helpline::auth::token_hash("37369987654"), "a plain hash would be guessable");

    if backend == Backend::Sqlite {
        // Everything on disk: the database file after a checkpoint, and what is left in the WAL.
        let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&pool).await.unwrap();
        pool.close().await;
        let path = app.db.url.trim_start_matches("sqlite:").to_string();
        let mut bytes = std::fs::read(&path).expect("database file");
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("116111"), "the dialled number is stored (sanity check of the read)");
        for needle in ["37369987654", "69987654", "(69) 98-76-54", "9987654"] {
            assert!(!text.contains(needle), "caller number {needle:?} found in the database file");
        }
    }
}

async fn bad_gateway_input_is_refused_or_stored_as_an_orphan(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let token = add_gateway(&app, "pbx").await;
    // No token, a wrong token, a revoked token: 401 before any upgrade.
    let url = format!("ws://{}/ws/telephony", app.addr);
    let res = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(matches!(res, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401), "{res:?}");
    for bad in ["nope".to_string(), format!("{token}x")] {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {bad}").parse().unwrap());
        let res = tokio_tungstenite::connect_async(request).await;
        assert!(matches!(res, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 401));
    }

    let mut pbx = Exchange::connect(&app, &token).await;
    // Malformed and unknown events: an error with a stable code, nothing stored.
    pbx.send(json!({"type": "call_teleported", "event_id": "x1"})).await;
    assert_eq!(pbx.expect("error").await["code"], "unknown_type");
    pbx.send(json!({"type": "call_offered", "event_id": "x2", "call_id": "c", "at": 1})).await;
    assert_eq!(pbx.expect("error").await["code"], "bad_field");
    pbx.send(json!({"type": "call_ended", "event_id": "x3", "call_id": "c", "by": "dog", "at": 1})).await;
    assert_eq!(pbx.expect("error").await["code"], "bad_field");
    // An event about a call nobody offered: acknowledged, stored as an orphan, reported.
    let id = pbx.answer("ghost", now_ms()).await;
    let err = pbx.expect("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("unknown_call"), Some("ghost")));
    let orphans = app.store.calls().orphan_events().await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!((orphans[0].1.as_str(), orphans[0].2.as_str(), orphans[0].3.as_str()), (id.as_str(), "call_answered", "ghost"));
    // A call to a number that is not in the map: answered by the default helpline, logged.
    pbx.offer("odd", "0 22 000 000", "069000009", now_ms()).await;
    let (contact,) = contact_of(&app, "odd").await;
    assert_eq!(app.store.contacts().contact(&contact).await.unwrap().unwrap().helpline, "children");
    let kinds: Vec<String> = app.store.contacts().contact_events(&contact).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"config_error".to_string()), "{kinds:?}");
    // The socket lives on.
    assert!(pbx.quiet().await.is_empty());

    // A revoked gateway is refused from then on.
    app.store.exchanges().revoke_gateway("pbx", 1).await.unwrap();
    let res = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth(&token).json(&json!({"type": "ping"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

async fn the_webhook_takes_the_same_events(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", Some("201")).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "cloud").await;
    let post = |body: Value| {
        let req = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth(&token).json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let t0 = now_ms();
    let offered = json!({"type": "call_offered", "event_id": "w1", "call_id": "k1", "dialled": "116111",
                         "caller": "069111222", "language": "ro", "at": helpline::protocol::rfc3339(t0)});
    let (status, body) = post(offered.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["frames"], json!([{"type": "ack", "event_id": "w1"}]));
    // A retry: the same answer, one contact only.
    assert_eq!(post(offered).await.1["frames"], json!([{"type": "ack", "event_id": "w1"}]));
    let (contact, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    // With no socket open, the connect command rides on the next webhook answer.
    let (_, body) = post(json!({"type": "call_answered", "event_id": "w2", "call_id": "k1", "at": t0 + 1_000})).await;
    let frames = body["frames"].as_array().unwrap();
    assert_eq!(frames[0], json!({"type": "ack", "event_id": "w2"}));
    assert!(frames.iter().any(|f| f["type"] == "connect" && f["extension"] == "201"), "{body}");
    let (_, body) = post(json!({"type": "call_ended", "event_id": "w3", "call_id": "k1", "by": "caller", "at": t0 + 9_000})).await;
    assert_eq!(body["frames"], json!([{"type": "ack", "event_id": "w3"}]));
    assert_eq!(call_record(&app, &contact).await.outcome.as_deref(), Some("answered"));
    // Bad input: 400 with a stable code; an unknown token: 401.
    let (status, body) = post(json!({"type": "call_ended", "event_id": "w4"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")));
    let res = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth("wrong").json(&json!({"type": "ping"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

async fn a_counsellor_records_an_offline_call(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", None).await;
    let token = app.login("ana").await;
    let at = |ms: i64| helpline::protocol::rfc3339(ms);
    let t0 = now_ms() - 3_600_000;
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&token)
        .json(&json!({"channel": "call", "helpline": "children", "caller": "069555444",
                      "started_at": at(t0), "answered_at": at(t0 + 10_000), "ended_at": at(t0 + 610_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let call: Value = res.json().await.unwrap();
    assert_eq!(
        (call["outcome"].as_str(), call["talk_ms"].as_i64(), call["offline"].as_bool()),
        (Some("answered"), Some(600_000), Some(true))
    );
    assert_eq!(call["caller_last2"], "44");
    let contact = app.store.contacts().contact(call["contact_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((contact.channel.as_str(), contact.state.as_str(), contact.queued_at), ("call", "ended", t0));
    // Times out of order, an unknown helpline: 422 with every field named.
    let res = app
        .http
        .post(app.url("/api/v1/contacts"))
        .bearer_auth(&token)
        .json(&json!({"channel": "call", "helpline": "pets", "started_at": at(t0 + 5_000), "ended_at": at(t0)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["fields"]["helpline"].is_string() && body["fields"]["ended_at"].is_string(), "{body}");
    // Without a login: 401.
    let res = app.http.post(app.url("/api/v1/contacts")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

// ----- repeat callers' history, durable commands, console call controls (session 3)

/// A complete contact form (children's or family violence helpline).
fn form(summary: &str, category: &str) -> Value {
    json!({"caller_type": "person_concerned", "age_group": "15_17", "gender": "female", "categories": [category],
           "summary": summary, "outcome": "counselling", "risk": "medium"})
}

/// Records an answered offline call from `caller` at `started` as the counsellor with `token` and
/// submits its form; returns the contact id. `base` is `http://host:port`.
#[allow(clippy::too_many_arguments)]
async fn earlier_call(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    helpline: &str,
    caller: &str,
    started: i64,
    summary: &str,
    category: &str,
) -> String {
    let at = helpline::protocol::rfc3339;
    let res = http
        .post(format!("{base}/api/v1/contacts"))
        .bearer_auth(token)
        .json(&json!({"channel": "call", "helpline": helpline, "language": "ro", "caller": caller,
                      "started_at": at(started), "answered_at": at(started + 5_000), "ended_at": at(started + 60_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let contact = res.json::<Value>().await.unwrap()["contact_id"].as_str().unwrap().to_string();
    let res = http
        .put(format!("{base}/api/v1/contacts/{contact}/form"))
        .bearer_auth(token)
        .json(&json!({"form": form(summary, category)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    contact
}

/// Whether `reader` has an audited `form_read` of `contact`'s form.
async fn read_audited(store: &helpline::store::Store, contact: &str, reader: &str) -> bool {
    store.audit_log().audit_for(contact).await.unwrap().iter().any(|(actor, action)| actor == reader && action == "form_read")
}

async fn a_repeat_callers_offer_shows_their_earlier_contacts_on_this_helpline_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ana_id = counsellor(&app, "ana", Some("201")).await;
    let eva_id = crate::helpers::add_user(&app.store, "eva", Role::Counsellor, &["family_violence"], &[], &["ro"], 3).await;
    let (ana_token, eva_token) = (app.login("ana").await, app.login("eva").await);
    let base = app.url("");
    let number = "+373 69 555 111";
    let t0 = now_ms() - 5 * 3_600_000;
    // Four earlier calls to the children's line, each with a submitted form; one to another helpline.
    let long = "x".repeat(400);
    let mut children = Vec::new();
    for (i, summary) in ["first talk", "second talk", "third talk", long.as_str()].into_iter().enumerate() {
        let started = t0 + i as i64 * 3_600_000;
        children.push(earlier_call(&app.http, &base, &ana_token, "children", number, started, summary, "violence.bullying").await);
    }
    let other = earlier_call(
        &app.http,
        &base,
        &eva_token,
        "family_violence",
        number,
        t0 + 4 * 3_600_000 + 60_000,
        "not for the children's line",
        "violence.family",
    )
    .await;

    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect(&app, &token).await;
    pbx.offer("live", "116111", "+37369555111", now_ms()).await;
    let (_, offer) = call_offer(&mut ana).await;
    assert_eq!(offer["repeat"], json!({"contacts": 5, "days": 30}), "every earlier call from the number counts: {offer}");
    let earlier = offer["earlier"].as_array().expect("earlier contacts in the offer");
    let ids: Vec<&str> = earlier.iter().map(|e| e["contact_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [children[3].as_str(), children[2].as_str(), children[1].as_str()], "the last three, newest first, this helpline only");
    let newest = &earlier[0];
    assert_eq!(
        (newest["helpline"].as_str(), newest["risk"].as_str(), newest["outcome"].as_str()),
        (Some("children"), Some("medium"), Some("counselling"))
    );
    assert_eq!(newest["categories"], json!(["violence.bullying"]));
    let summary = newest["summary"].as_str().unwrap();
    assert_eq!((summary.chars().count(), summary.ends_with('…')), (helpline::protocol::EARLIER_SUMMARY_CHARS, true), "a short summary");
    assert_eq!(earlier[1]["summary"], "third talk");
    assert!(newest["at"].as_str().is_some_and(|at| helpline::protocol::parse_rfc3339(at) == Some(t0 + 3 * 3_600_000)), "{newest}");
    assert!(!offer.to_string().contains("children's line"), "another helpline's form is never shown");

    // Each form shown is audited as read by the counsellor it was shown to; the others are not.
    for shown in &children[1..] {
        assert!(read_audited(&app.store, shown, &ana_id).await, "disclosure of {shown} audited");
    }
    assert!(!read_audited(&app.store, &children[0], &ana_id).await);
    assert!(!read_audited(&app.store, &other, &ana_id).await);
    assert!(!read_audited(&app.store, &other, &eva_id).await);

    // A first-time caller's offer carries no history.
    ana.send(json!({"type": "decline", "contact_id": offer["contact_id"]})).await;
    pbx.abandon("live", now_ms()).await;
    pbx.offer("new", "116111", "+37369000777", now_ms()).await;
    let (_, offer) = call_offer(&mut ana).await;
    assert!(offer.get("earlier").is_none() && offer.get("repeat").is_none(), "{offer}");
}

/// A fresh database with the helplines, Ana (extension 201) and a gateway: (db, store, Ana's id, gateway token, gateway id).
pub(crate) async fn prepare_calls(backend: Backend) -> Option<(TestDb, helpline::store::Store, String, String, String)> {
    let db = TestDb::new(backend).await?;
    let store = helpline::store::Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    let ana = crate::helpers::add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    store.accounts().set_user_extension(&ana, Some("201")).await.expect("extension");
    let token = format!("pbx-token-{}", uuid::Uuid::new_v4().simple());
    let gateway = store.exchanges().create_gateway("pbx", &helpline::auth::token_hash(&token), 0).await.expect("gateway");
    Some((db, store, ana, token, gateway.id))
}

async fn login_at(server: &Server, username: &str) -> String {
    let res = server
        .http
        .post(format!("http://{}/api/v1/auth/login", server.addr))
        .json(&json!({"username": username, "password": format!("{username}-password")}))
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

/// Ana's console on `server`, available.
pub(crate) async fn ana_available(server: &Server) -> Ws {
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    ana.send(json!({"type": "status", "status": "available"})).await;
    ana.expect("status").await;
    ana
}

/// Polls the stored commands of a call until they are `want` (kind, acknowledged, superseded).
async fn commands_become(store: &helpline::store::Store, gateway: &str, call_id: &str, want: &[(&str, bool, bool)]) {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        let got = store.commands().call_commands(gateway, call_id).await.unwrap();
        let got: Vec<(&str, bool, bool)> = got.iter().map(|(k, a, s)| (k.as_str(), *a, *s)).collect();
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "commands of {call_id}: {got:?}, expected {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn waiting_calls_keep_repeat_count_and_earlier_contacts_after_a_restart(backend: Backend) {
    let Some((db, store, ana_id, token, _)) = prepare_calls(backend).await else { return };
    let server = Server::start(&db.url).await;
    let base = format!("http://{}", server.addr);
    let ana_token = login_at(&server, "ana").await;
    let earlier =
        earlier_call(&server.http, &base, &ana_token, "children", "069444333", now_ms() - 3_600_000, "earlier talk", "violence.bullying")
            .await;
    // The same caller calls again while nobody is on duty: the call waits.
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    pbx.offer("again", "116111", "069 444 333", now_ms()).await;
    assert!(store.calls().open_calls().await.unwrap().iter().any(|c| c.call_id == "again"));

    // Power cut; the same database, a new process: nothing of the call is in memory any more.
    server.sigkill().await;
    drop(pbx);
    let server = Server::start(&db.url).await;
    let mut ana = ana_available(&server).await;
    let (_, offer) = call_offer(&mut ana).await;
    assert_eq!(offer["repeat"], json!({"contacts": 1, "days": 30}), "{offer}");
    assert_eq!(offer["caller_last2"], "33");
    assert_eq!(offer["earlier"][0]["contact_id"], earlier.as_str());
    assert_eq!(offer["earlier"][0]["summary"], "earlier talk");
    assert!(read_audited(&store, &earlier, &ana_id).await, "the disclosure after the restart is audited");
}

async fn commands_wait_in_the_database_until_acknowledged_across_a_restart(backend: Backend) {
    let Some((db, store, ana_id, token, gateway)) = prepare_calls(backend).await else { return };
    let server = Server::start(&db.url).await;
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    pbx.offer("k1", "116111", "069111000", now_ms()).await;
    // The exchange's socket goes down; Ana accepts the call meanwhile.
    pbx.close().await;
    let mut ana = ana_available(&server).await;
    let (contact, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    commands_become(&store, &gateway, "k1", &[("connect", false, false)]).await;

    // The server dies before the exchange is back; a new process on the same database.
    server.sigkill().await;
    let server = Server::start(&db.url).await;
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    let connect = pbx.expect("connect").await;
    assert_eq!((connect["call_id"].as_str(), connect["extension"].as_str()), (Some("k1"), Some("201")));
    assert_eq!(connect["counsellor"], ana_id.as_str());
    assert!(pbx.quiet().await.is_empty(), "the connect comes exactly once");
    // Not acknowledged: it comes again on the next connection, the same command.
    pbx.close().await;
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    let again = pbx.expect("connect").await;
    assert_eq!(again["command_id"], connect["command_id"]);
    pbx.ack_command(&again).await;
    assert!(pbx.quiet().await.is_empty(), "an acknowledgement gets no answer");
    commands_become(&store, &gateway, "k1", &[("connect", true, false)]).await;
    // Acknowledged: never sent again, not after a reconnect, not after a restart.
    pbx.ack_command(&again).await;
    assert!(pbx.quiet().await.is_empty(), "a repeated acknowledgement changes nothing");
    pbx.close().await;
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    assert!(pbx.quiet().await.is_empty());
    server.sigkill().await;
    let server = Server::start(&db.url).await;
    let mut pbx = Exchange::connect_to(&server.addr, &token, true).await;
    assert!(pbx.quiet().await.is_empty());
    // An unknown command id is an error with a stable code; the socket goes on.
    pbx.send(json!({"type": "command_ack", "command_id": "no-such-command"})).await;
    let err = pbx.expect("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("not_found"), Some("no-such-command")));
    assert!(pbx.quiet().await.is_empty());
}

/// Reads a supervisor socket until the `done` of `request`, skipping the board and alerts.
async fn done(sup: &mut Ws, request: &str) {
    loop {
        let v = sup.recv().await;
        if v["type"] == "done" && v["request"] == request {
            return;
        }
        assert!(["dashboard", "alert"].contains(&v["type"].as_str().unwrap_or("")), "unexpected {v}");
    }
}

async fn stale_connects_are_superseded_and_never_sent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", Some("201")).await;
    let ion_id = counsellor(&app, "ion", Some("202")).await;
    crate::helpers::add_user(&app.store, "maria", Role::Supervisor, &["children"], &[], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let mut ion = app.available_agent("ion").await;
    let token = add_gateway(&app, "pbx").await;
    let gateway = app.store.exchanges().gateways().await.unwrap().into_iter().find(|g| g.name == "pbx").unwrap().id;
    let mut pbx = Exchange::connect_acking(&app, &token).await;
    pbx.offer("s1", "116111", "069222333", now_ms()).await;
    pbx.close().await;
    let (contact, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    commands_become(&app.store, &gateway, "s1", &[("connect", false, false)]).await;

    // A supervisor moves the call to Ion before the exchange is back: Ana's connect is stale.
    let mut sup = crate::supervisor::supervisor(&app, "maria").await;
    sup.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id})).await;
    done(&mut sup, "transfer").await;
    ion.expect("assigned").await;
    commands_become(&app.store, &gateway, "s1", &[("connect", false, true), ("connect", false, false)]).await;
    let mut pbx = Exchange::connect_acking(&app, &token).await;
    let connect = pbx.expect("connect").await;
    assert_eq!((connect["extension"].as_str(), connect["counsellor"].as_str()), (Some("202"), Some(ion_id.as_str())));
    assert!(pbx.quiet().await.is_empty(), "the superseded connect is not sent");

    // The call ends before the exchange acknowledged the connect: it is stale too.
    pbx.hang_up("s1", "caller", now_ms()).await;
    wait_for_state(&app, &contact, "ended").await;
    commands_become(&app.store, &gateway, "s1", &[("connect", false, true), ("connect", false, true)]).await;
    pbx.close().await;
    let mut pbx = Exchange::connect_acking(&app, &token).await;
    assert!(pbx.quiet().await.is_empty(), "nothing is sent for an ended call");
}

async fn counsellors_hold_resume_and_hang_up_their_own_calls(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", Some("201")).await;
    counsellor(&app, "ion", Some("202")).await;
    let mut ana = app.available_agent("ana").await;
    let mut ion = app.available_agent("ion").await;
    let token = add_gateway(&app, "pbx").await;
    let mut pbx = Exchange::connect_acking(&app, &token).await;
    let t0 = now_ms();
    pbx.offer("h1", "116111", "069333444", t0).await;
    let (call, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": call})).await;
    ana.expect("assigned").await;
    let connect = pbx.expect("connect").await;
    pbx.ack_command(&connect).await;
    pbx.answer("h1", t0 + 2_000).await;

    let mut controls = Vec::new();
    for (request, action, command) in [("call_hold", "hold", "hold"), ("call_resume", "resume", "unhold")] {
        ana.send(json!({"type": request, "contact_id": call})).await;
        let confirmed = ana.expect("call_control").await;
        assert_eq!((confirmed["contact_id"].as_str(), confirmed["action"].as_str()), (Some(call.as_str()), Some(action)));
        let frame = pbx.expect(command).await;
        assert_eq!(frame["call_id"], "h1");
        controls.push(frame);
    }
    // The exchange acknowledges `hold` only after `unhold` had made it stale: the ack wins (it was
    // carried out), so the record never shows a command both acknowledged and superseded.
    for frame in &controls {
        pbx.ack_command(frame).await;
    }
    let gateway = app.store.exchanges().gateways().await.unwrap().into_iter().find(|g| g.name == "pbx").unwrap().id;
    commands_become(&app.store, &gateway, "h1", &[("connect", true, false), ("hold", true, false), ("unhold", true, false)]).await;

    // Not one's own call, not a call, not a contact: an error with a stable code, nothing sent.
    ion.send(json!({"type": "call_hangup", "contact_id": call})).await;
    let err = ion.expect("error").await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("unknown_contact"), Some(call.as_str())));
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let chat = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    assert_eq!(ion.expect("offer").await["contact_id"], chat.as_str(), "Ana is on a call: the chat goes to Ion");
    ion.send(json!({"type": "accept", "contact_id": chat})).await;
    ion.expect("assigned").await;
    ion.send(json!({"type": "call_hold", "contact_id": chat})).await;
    assert_eq!(ion.expect("error").await["code"], "not_allowed");
    ana.send(json!({"type": "call_hold", "contact_id": "not-a-contact"})).await;
    assert_eq!(ana.expect("error").await["code"], "unknown_contact");
    ana.send(json!({"type": "call_hold"})).await;
    assert_eq!(ana.expect("error").await["code"], "bad_field");
    assert!(pbx.quiet().await.is_empty(), "nothing reached the exchange");

    // Hang up: the exchange hangs up and reports the end, which closes the record as usual.
    ana.send(json!({"type": "call_hangup", "contact_id": call})).await;
    assert_eq!(ana.expect("call_control").await["action"], "hangup");
    let hangup = pbx.expect("hangup").await;
    assert_eq!(hangup["call_id"], "h1");
    pbx.ack_command(&hangup).await;
    pbx.hang_up("h1", "counsellor", t0 + 62_000).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], call.as_str());
    let record = call_record(&app, &call).await;
    assert_eq!(
        (record.outcome.as_deref(), record.ended_by.as_deref(), record.talk_ms),
        (Some("answered"), Some("counsellor"), Some(60_000))
    );
    let kinds: Vec<String> = app.store.contacts().contact_events(&call).await.unwrap().into_iter().map(|e| e.kind).collect();
    for kind in ["call_hold", "call_resume", "call_hangup"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} logged: {kinds:?}");
    }
    // The call is over: no more controls.
    ana.send(json!({"type": "call_hold", "contact_id": call})).await;
    assert_eq!(ana.expect("error").await["code"], "unknown_contact");
    commands_become(
        &app.store,
        &gateway,
        "h1",
        &[("connect", true, false), ("hold", true, false), ("unhold", true, false), ("hangup", true, false)],
    )
    .await;
}

async fn webhook_answers_carry_commands_until_acknowledged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", Some("201")).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(&app, "cloud").await;
    let post = |body: Value| {
        let req = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth(&token).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    // The adapter acknowledges commands: it says so with its first `command_ack` (even of an
    // unknown id it gets a 404, but a known one switches it over).
    let t0 = now_ms();
    let offered = json!({"type": "call_offered", "event_id": "w1", "call_id": "k1", "dialled": "116111", "caller": "069111222", "at": t0});
    assert_eq!(post(offered).await.0, 200);
    let (contact, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    let (_, body) = post(json!({"type": "ping"})).await;
    let connect = body["frames"].as_array().unwrap().iter().find(|f| f["type"] == "connect").cloned().expect("connect");
    // This exchange acknowledges: from now on commands wait for it.
    let (status, body) = post(json!({"type": "command_ack", "command_id": connect["command_id"]})).await;
    assert_eq!((status, body["frames"].clone()), (200, json!([])), "handed over already (it had not declared acknowledgements)");
    let (status, body) = post(json!({"type": "command_ack", "command_id": "nope"})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // A second call: its connect comes in every answer until acknowledged.
    pbx_offer_by_webhook(&post, "w2", "k2", t0).await;
    let (_, body) = post(json!({"type": "call_ended", "event_id": "w3", "call_id": "k1", "by": "caller", "at": t0 + 9_000})).await;
    assert_eq!(body["frames"][0], json!({"type": "ack", "event_id": "w3"}));
    // The end (relay) and the next offer (router) come from two actors: either may arrive first.
    let (mut ended, mut second) = (false, None);
    while !ended || second.is_none() {
        let frame = ana.recv().await;
        match frame["type"].as_str() {
            Some("contact_ended") => ended = true,
            Some("offer") => second = frame["contact_id"].as_str().map(str::to_string),
            Some("wrap_up") => assert_eq!(frame["contact_id"].as_str(), Some(contact.as_str()), "the ended call's wrap-up"),
            _ => panic!("unexpected {frame}"),
        }
    }
    let second = second.unwrap();
    ana.send(json!({"type": "accept", "contact_id": second})).await;
    ana.expect("assigned").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_, body) = post(json!({"type": "ping"})).await;
        let connects: Vec<Value> = body["frames"].as_array().unwrap().iter().filter(|f| f["type"] == "connect").cloned().collect();
        assert_eq!(connects.len(), 1, "{body}");
        assert_eq!(connects[0]["call_id"], "k2");
        seen.push(connects[0]["command_id"].clone());
    }
    assert_eq!(seen[0], seen[1], "the same command again");
    assert_eq!(post(json!({"type": "command_ack", "command_id": seen[0]})).await.1["frames"], json!([]));
    assert_eq!(post(json!({"type": "ping"})).await.1["frames"], json!([{"type": "pong"}]));
}

async fn pbx_offer_by_webhook<F, Fut>(post: &F, event_id: &str, call_id: &str, at: i64)
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let (status, body) = post(
        json!({"type": "call_offered", "event_id": event_id, "call_id": call_id, "dialled": "116111", "caller": "069555666", "at": at}),
    )
    .await;
    assert_eq!((status, body["frames"][0]["type"].as_str()), (200, Some("ack")));
}

/// Ana (extension 201, available) and an exchange `pbx` with two acknowledging sockets open: call
/// `call_id` is offered on the first, Ana accepts it, and its `connect` goes to the second (the newest).
struct TwoSockets {
    token: String,
    ana: Ws,
    first: Exchange,
    second: Exchange,
    call: String,
    connect: Value,
}

async fn connect_on_the_newest_of_two(app: &TestApp, call_id: &str) -> TwoSockets {
    counsellor(app, "ana", Some("201")).await;
    let mut ana = app.available_agent("ana").await;
    let token = add_gateway(app, "pbx").await;
    let mut first = Exchange::connect_acking(app, &token).await;
    assert!(first.quiet().await.is_empty());
    let mut second = Exchange::connect_acking(app, &token).await;
    assert!(second.quiet().await.is_empty());
    first.offer(call_id, "116111", "069888999", now_ms()).await;
    let (call, _) = call_offer(&mut ana).await;
    ana.send(json!({"type": "accept", "contact_id": call})).await;
    ana.expect("assigned").await;
    let connect = second.expect("connect").await;
    TwoSockets { token, ana, first, second, call, connect }
}

/// An exchange with two sockets open: a command goes to one (the newest), never to the other while
/// that one is open; once it closes unacknowledged, the same command goes to the other, once.
async fn an_exchange_with_two_sockets_gets_a_command_on_one_until_it_closes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let TwoSockets { token, mut ana, mut first, second, call, connect } = connect_on_the_newest_of_two(&app, "t1").await;
    assert!(first.quiet().await.is_empty(), "one socket only");
    // A third socket opens while the second still holds the command: it is not handed over again.
    let mut third = Exchange::connect_acking(&app, &token).await;
    assert!(third.quiet().await.is_empty(), "held by an open socket");
    // The second closes without acknowledging it: the newest open socket gets it, once.
    second.close().await;
    let again = third.expect("connect").await;
    assert_eq!(again["command_id"], connect["command_id"]);
    third.ack_command(&again).await;
    assert!(third.quiet().await.is_empty());
    assert!(first.quiet().await.is_empty(), "never on two open sockets");
    third.hang_up("t1", "caller", now_ms()).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], call.as_str());
}

/// A half-open socket (or a stuck adapter) holds a command without acknowledging it: after
/// `ACK_WAIT_MS` the server closes it (4010) and the exchange's other socket gets the command,
/// instead of the caller waiting out the 45 s idle timeout.
async fn a_socket_that_sits_on_a_command_unacknowledged_is_closed_and_another_gets_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let TwoSockets { mut first, second: mut stuck, connect, .. } = connect_on_the_newest_of_two(&app, "u1").await;
    // Within the wait, nothing moves: the socket may still be carrying it out.
    assert!(first.quiet().await.is_empty(), "one socket only, within the wait");
    app.clock.advance(helpline::chat::exchange::ACK_WAIT_MS + 1_000);
    assert_eq!(stuck.closed().await, Some(4010), "the socket sitting on the command is closed");
    let again = first.expect("connect").await;
    assert_eq!(again["command_id"], connect["command_id"], "the same command, on the other socket");
    first.ack_command(&again).await;
    assert!(first.quiet().await.is_empty());
    let gateway = app.store.exchanges().gateways().await.unwrap().into_iter().find(|g| g.name == "pbx").expect("pbx").id;
    commands_become(&app.store, &gateway, "u1", &[("connect", true, false)]).await;
}

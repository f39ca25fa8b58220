//! Phone calls end to end: a simulated exchange places calls over the gateway protocol, counsellors take them on real sockets, and the call records are checked.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::exchange::{add_gateway, now_ms, Exchange};
use crate::helpers::{Backend, TestApp, Ws};

crate::on_both_backends!(
    a_call_is_offered_connected_answered_and_recorded,
    a_call_abandoned_after_three_seconds_is_abandoned_short,
    a_counsellor_on_a_call_gets_no_other_call_and_an_unanswered_call_moves_on_with_cancel,
    caller_numbers_are_never_stored_in_clear_and_repeat_callers_are_recognised,
    bad_gateway_input_is_refused_or_stored_as_an_orphan,
    the_webhook_takes_the_same_events,
    a_counsellor_records_an_offline_call,
);

/// A counsellor serving the children's helpline in Romanian, with an extension.
async fn counsellor(app: &TestApp, username: &str, extension: Option<&str>) -> String {
    let id = crate::helpers::add_user(&app.store, username, Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.store.set_user_extension(&id, extension).await.expect("extension");
    id
}

async fn call_record(app: &TestApp, contact: &str) -> helpline::store::calls::CallRecord {
    app.store.call_record(contact).await.expect("read").expect("call record")
}

/// The offer of a call to `ws`; returns the contact id.
async fn call_offer(ws: &mut Ws) -> (String, Value) {
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
    let connect = pbx.expect("connect").await;
    assert_eq!(connect, json!({"type": "connect", "call_id": "call-1", "counsellor": ana_id, "extension": "201"}));

    pbx.answer("call-1", t0 + 4_000).await;
    let ended = pbx.hang_up("call-1", "caller", t0 + 64_000).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], contact.as_str());

    let record = call_record(&app, &contact).await;
    assert_eq!(record.outcome.as_deref(), Some("answered"));
    assert_eq!((record.wait_ms, record.talk_ms), (Some(4_000), Some(60_000)));
    assert_eq!((record.offered_at, record.answered_at, record.ended_at), (t0, Some(t0 + 4_000), Some(t0 + 64_000)));
    assert_eq!(record.ended_by.as_deref(), Some("caller"));
    let stored = app.store.contact(&contact).await.unwrap().unwrap();
    assert_eq!((stored.channel.as_str(), stored.state.as_str()), ("call", "ended"));
    assert_eq!(stored.counsellor_id.as_deref(), Some(ana_id.as_str()));

    // The exchange retries the last event (and a late, different end): acknowledged, nothing changes.
    let events = app.store.contact_events(&contact).await.unwrap();
    pbx.event(json!({"type": "call_ended", "event_id": ended, "call_id": "call-1", "by": "caller", "at": t0 + 64_000})).await;
    pbx.hang_up("call-1", "system", t0 + 99_000).await;
    assert_eq!(call_record(&app, &contact).await, record);
    let after = app.store.contact_events(&contact).await.unwrap();
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
        let c = app.store.contact(contact).await.unwrap().unwrap();
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
    assert_eq!(pbx.expect("cancel").await, json!({"type": "cancel", "call_id": "c1"}));
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
    // Ion's call ends: the waiting call rings for Ion now.
    pbx.hang_up("c1", "counsellor", t0 + 60_000).await;
    // The offer (router) and the end (relay) come from two actors: either may arrive first.
    let (mut ended, mut offer) = (None, None);
    while ended.is_none() || offer.is_none() {
        let frame = ion.recv().await;
        match frame["type"].as_str() {
            Some("contact_ended") => ended = Some(frame),
            Some("offer") => offer = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
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
    let orphans = app.store.orphan_events().await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!((orphans[0].1.as_str(), orphans[0].2.as_str(), orphans[0].3.as_str()), (id.as_str(), "call_answered", "ghost"));
    // A call to a number that is not in the map: answered by the default helpline, logged.
    pbx.offer("odd", "0 22 000 000", "069000009", now_ms()).await;
    let (contact,) = contact_of(&app, "odd").await;
    assert_eq!(app.store.contact(&contact).await.unwrap().unwrap().helpline, "children");
    let kinds: Vec<String> = app.store.contact_events(&contact).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"config_error".to_string()), "{kinds:?}");
    // The socket lives on.
    assert!(pbx.quiet().await.is_empty());

    // A revoked gateway is refused from then on.
    app.store.revoke_gateway("pbx", 1).await.unwrap();
    let res = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth(&token)
        .json(&json!({"type": "ping"})).send().await.unwrap();
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
    let res = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth("wrong")
        .json(&json!({"type": "ping"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

async fn a_counsellor_records_an_offline_call(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    counsellor(&app, "ana", None).await;
    let token = app.login("ana").await;
    let at = |ms: i64| helpline::protocol::rfc3339(ms);
    let t0 = now_ms() - 3_600_000;
    let res = app.http.post(app.url("/api/v1/contacts")).bearer_auth(&token)
        .json(&json!({"channel": "call", "helpline": "children", "caller": "069555444",
                      "started_at": at(t0), "answered_at": at(t0 + 10_000), "ended_at": at(t0 + 610_000)}))
        .send().await.unwrap();
    assert_eq!(res.status(), 201);
    let call: Value = res.json().await.unwrap();
    assert_eq!((call["outcome"].as_str(), call["talk_ms"].as_i64(), call["offline"].as_bool()), (Some("answered"), Some(600_000), Some(true)));
    assert_eq!(call["caller_last2"], "44");
    let contact = app.store.contact(call["contact_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((contact.channel.as_str(), contact.state.as_str(), contact.queued_at), ("call", "ended", t0));
    // Times out of order, an unknown helpline: 422 with every field named.
    let res = app.http.post(app.url("/api/v1/contacts")).bearer_auth(&token)
        .json(&json!({"channel": "call", "helpline": "pets", "started_at": at(t0 + 5_000), "ended_at": at(t0)}))
        .send().await.unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["fields"]["helpline"].is_string() && body["fields"]["ended_at"].is_string(), "{body}");
    // Without a login: 401.
    let res = app.http.post(app.url("/api/v1/contacts")).json(&json!({})).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

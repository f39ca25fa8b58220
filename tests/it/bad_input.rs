//! Bad input on every socket: a clear `error` frame with a stable code, a usable connection, a healthy server.

use helpline::store::users::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Backend, TestApp, Ws};

crate::on_both_backends!(
    caller_bad_frames,
    agent_bad_frames,
    oversized_frames,
    unauthenticated_agent_upgrades_are_refused,
    frame_flood_is_rate_limited,
    foreign_origins_are_refused,
    nul_characters_are_refused_clearly
);

/// Sends a raw text frame and returns the error frame it provokes.
async fn error_for(ws: &mut Ws, raw: &str) -> Value {
    ws.send_raw(Message::Text(raw.to_string().into())).await;
    let mut v = ws.recv().await;
    // A chat started with nobody on shift hears `unavailable` after `queued` (docs/protocol.md).
    while v["type"] == "unavailable" {
        v = ws.recv().await;
    }
    assert_eq!(v["type"], "error", "expected an error for {raw}, got {v}");
    v
}

/// The socket still answers.
async fn still_usable(ws: &mut Ws) {
    ws.send(json!({"type": "ping"})).await;
    let mut v = ws.recv().await;
    while v["type"] == "unavailable" {
        v = ws.recv().await;
    }
    assert_eq!(v["type"], "pong");
}

async fn healthy(app: &TestApp) {
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn caller_bad_frames(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut ws = app.caller().await;
    let cases: &[(&str, &str)] = &[
        ("{not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ("\"start\"", "bad_json"),
        (r#"{"helpline": "children"}"#, "unknown_type"),
        (r#"{"type": "launch_missiles"}"#, "unknown_type"),
        (r#"{"type": 42}"#, "unknown_type"),
        (r#"{"type": "start"}"#, "bad_field"),
        (r#"{"type": "start", "helpline": ["children"]}"#, "bad_field"),
        (r#"{"type": "start", "helpline": "children", "colour": "red"}"#, "bad_field"),
        (r#"{"type": "resume", "resume_token": 12}"#, "bad_field"),
        (r#"{"type": "message", "client_id": "a", "text": "before start"}"#, "not_allowed"),
        (r#"{"type": "end"}"#, "not_allowed"),
        (r#"{"type": "start", "helpline": "pizza"}"#, "unknown_helpline"),
        (r#"{"type": "start", "helpline": "family_violence", "language": "en"}"#, "unknown_helpline"),
        (r#"{"type": "resume", "resume_token": "guessed-token", "last_seq": 0}"#, "bad_token"),
    ];
    for (raw, code) in cases {
        let err = error_for(&mut ws, raw).await;
        assert_eq!(err["code"], *code, "for {raw}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    still_usable(&mut ws).await;

    // Binary frames are refused, the socket lives on.
    ws.send_raw(Message::Binary(vec![0, 159, 146, 150].into())).await;
    assert_eq!(ws.recv().await["code"], "bad_json");
    still_usable(&mut ws).await;

    // Message checks, after a real start.
    ws.send(json!({"type": "start", "helpline": "children", "language": "en"})).await;
    ws.expect("queued").await;
    let err = error_for(&mut ws, r#"{"type": "message", "client_id": "", "text": "hi"}"#).await;
    assert_eq!(err["code"], "bad_field");
    let err = error_for(&mut ws, r#"{"type": "message", "client_id": "a", "text": "   "}"#).await;
    assert_eq!(err["code"], "bad_field");
    let long = json!({"type": "message", "client_id": "long", "text": "é".repeat(4001)}).to_string();
    let err = error_for(&mut ws, &long).await;
    assert_eq!((err["code"].as_str(), err["ref"].as_str()), (Some("too_large"), Some("long")));
    let err = error_for(&mut ws, r#"{"type": "start", "helpline": "children"}"#).await;
    assert_eq!(err["code"], "not_allowed", "one contact per connection");
    // ...and the chat still works.
    ws.send(json!({"type": "message", "client_id": "ok", "text": "still here"})).await;
    assert_eq!(ws.expect("ack").await["seq"], 1);
    healthy(&app).await;
}

async fn agent_bad_frames(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;

    let cases: &[(&str, &str)] = &[
        ("nope", "bad_json"),
        (r#"{"type": "start", "helpline": "children"}"#, "unknown_type"),
        (r#"{"type": "status", "status": "sleeping"}"#, "bad_field"),
        (r#"{"type": "accept"}"#, "bad_field"),
        (r#"{"type": "accept", "contact_id": "not-a-uuid"}"#, "unknown_contact"),
        (r#"{"type": "accept", "contact_id": "0190f5c4-0000-7000-8000-000000000000"}"#, "unknown_contact"),
        (r#"{"type": "end", "contact_id": "0190f5c4-0000-7000-8000-000000000000"}"#, "unknown_contact"),
        (r#"{"type": "message", "contact_id": "0190f5c4-0000-7000-8000-000000000000", "client_id": "x", "text": "hi"}"#, "unknown_contact"),
    ];
    for (raw, code) in cases {
        let err = error_for(&mut ana, raw).await;
        assert_eq!(err["code"], *code, "for {raw}: {err}");
    }
    still_usable(&mut ana).await;

    // A contact offered to Ana cannot be taken by Ion, nor written to by him once she has it.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    let offer = ana.expect("offer").await;
    assert_eq!(offer["contact_id"], contact_id.as_str());
    let mut ion = app.available_agent("ion").await;
    ion.send(json!({"type": "accept", "contact_id": contact_id})).await;
    assert_eq!(ion.expect("error").await["code"], "no_such_offer");
    ana.send(json!({"type": "accept", "contact_id": contact_id})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    ion.send(json!({"type": "message", "contact_id": contact_id, "client_id": "x", "text": "let me in"})).await;
    assert_eq!(ion.expect("error").await["code"], "unknown_contact");
    ion.send(json!({"type": "end", "contact_id": contact_id})).await;
    assert_eq!(ion.expect("error").await["code"], "unknown_contact");
    // Accepting twice is harmless; the conversation is still Ana's.
    ana.send(json!({"type": "message", "contact_id": contact_id, "client_id": "m", "text": "Bună"})).await;
    assert_eq!(ana.expect("ack").await["seq"], 1);
    assert_eq!(caller.expect("message").await["from"], "counsellor");
    healthy(&app).await;
}

async fn oversized_frames(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut ws = app.caller().await;
    // Over 16 KiB: refused with too_large, the connection stays usable.
    let big = json!({"type": "start", "helpline": "x".repeat(20 * 1024)}).to_string();
    let err = error_for(&mut ws, &big).await;
    assert_eq!(err["code"], "too_large");
    still_usable(&mut ws).await;
    // Far over the limit (200 KiB): the WebSocket layer refuses it and closes this socket only.
    let huge = "x".repeat(200 * 1024);
    let _ = ws.stream.send_raw_ignore_errors(huge).await;
    let code = ws.closed().await;
    assert!(code.is_none() || code == Some(1009), "closed with {code:?}");
    // The server is fine and takes new callers.
    healthy(&app).await;
    let mut again = app.caller().await;
    again.send(json!({"type": "start", "helpline": "children"})).await;
    again.expect("queued").await;
}

async fn unauthenticated_agent_upgrades_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let url = format!("ws://{}/ws/agent", app.addr);
    let status_of = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the upgrade should have been refused"),
    };
    // No credentials.
    assert_eq!(status_of(tokio_tungstenite::connect_async(url.as_str()).await.map(|_| ())), 401);
    // A made-up ticket.
    let r = tokio_tungstenite::connect_async(format!("{url}?ticket=made-up")).await.map(|_| ());
    assert_eq!(status_of(r), 401);
    // A forged bearer token.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".parse().unwrap());
    assert_eq!(status_of(tokio_tungstenite::connect_async(req).await.map(|_| ())), 401);
    // A real bearer token works in the header; a ticket works once only.
    let token = app.login("ana").await;
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ok, _) = tokio_tungstenite::connect_async(req).await.expect("bearer upgrade");
    use futures_util::StreamExt;
    let hello = ok.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    let res = app.http.post(app.url("/api/v1/ws-ticket")).bearer_auth(&token).send().await.unwrap();
    let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
    let first = tokio_tungstenite::connect_async(format!("{url}?ticket={ticket}")).await;
    assert!(first.is_ok());
    let second = tokio_tungstenite::connect_async(format!("{url}?ticket={ticket}")).await.map(|_| ());
    assert_eq!(status_of(second), 401, "tickets are single-use");
    healthy(&app).await;
}

/// Sending a frame the server will refuse may fail on our side too; that is fine here.
trait SendRawIgnoreErrors {
    async fn send_raw_ignore_errors(&mut self, text: String) -> Result<(), ()>;
}

impl SendRawIgnoreErrors for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    async fn send_raw_ignore_errors(&mut self, text: String) -> Result<(), ()> {
        use futures_util::SinkExt;
        self.send(Message::Text(text.into())).await.map_err(|_| ())
    }
}

/// A script flooding frames gets `rate_limited`, then its socket closes; others are not affected.
async fn frame_flood_is_rate_limited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut flood = app.caller().await;
    // A burst over the bucket: the frames past it are refused with one `rate_limited` error.
    for _ in 0..50 {
        flood.send_raw(Message::Text(r#"{"type":"ping"}"#.into())).await;
    }
    let mut pongs = 0;
    loop {
        let v = flood.recv().await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited");
                break;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert!((30..=45).contains(&pongs), "about the burst size answered, got {pongs}");
    // Going on flooding closes the socket (4029; the close may also arrive as a reset, since the
    // server stops reading the rest of the flood).
    for _ in 0..100 {
        if futures_util::SinkExt::send(&mut flood.stream, Message::Text(r#"{"type":"ping"}"#.into())).await.is_err() {
            break;
        }
    }
    let code = loop {
        match futures_util::StreamExt::next(&mut flood.stream).await {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(code.is_none() || code == Some(helpline::edge::ws::close::RATE_LIMITED), "closed with {code:?}");
    // Everyone else is fine.
    let mut calm = app.caller().await;
    still_usable(&mut calm).await;
    healthy(&app).await;
}

/// Only pages of this server (or the configured origins) may open caller sockets.
async fn foreign_origins_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/ws/caller", app.addr);
    let with_origin = |origin: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let same = format!("http://{}", app.addr);
    assert!(tokio_tungstenite::connect_async(with_origin(&same)).await.is_ok(), "the server's own pages may");
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("origin", "https://www.116111.md".parse().unwrap());
    headers.insert("host", "chat.116111.md".parse().unwrap());
    assert!(helpline::edge::ws::caller::origin_allowed(&headers, &["https://www.116111.md".into()]));
    assert!(!helpline::edge::ws::caller::origin_allowed(&headers, &["https://other.md".into()]));
    assert!(!helpline::edge::ws::caller::origin_allowed(&headers, &[]));
}

/// U+0000 in a path, a query or a JSON body: `400 bad_field` on both backends (PostgreSQL's text cannot
/// hold it: before the door refused it, `GET /api/v1/cases?number=%00` was a 500 there), nothing
/// stored, and the same request without it works. On a socket, a frame naming a helpline with it is
/// an `error` frame and the socket lives on.
async fn nul_characters_are_refused_clearly(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("sup", Role::Supervisor, &["children"], &["en"], 1).await;
    let token = app.login("sup").await;
    let refused = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.expect("JSON error");
        assert_eq!(body["code"], "bad_field", "{body}");
        assert!(body["message"].as_str().unwrap_or_default().contains("U+0000"), "{body}");
    };
    refused(app.http.get(app.url("/api/v1/cases?number=FV%00")).bearer_auth(&token).send().await.unwrap()).await;
    refused(app.http.get(app.url("/api/v1/cases/a%00b")).bearer_auth(&token).send().await.unwrap()).await;
    let body = r#"{"helpline": "children", "language": "en", "title": "Hello\u0000", "body": "text"}"#;
    let res = app
        .http
        .post(app.url("/api/v1/canned-responses"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    refused(res).await;
    let listed: Value = app.http.get(app.url("/api/v1/canned-responses")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["canned_responses"].as_array().map(Vec::len), Some(0), "nothing stored: {listed}");
    // An escaped backslash before `u0000` is text, not a NUL: accepted.
    let body = r#"{"helpline": "children", "language": "en", "title": "C:\\u0000", "body": "text"}"#;
    let res = app
        .http
        .post(app.url("/api/v1/canned-responses"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app.http.get(app.url("/api/v1/cases?number=FV-1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let mut caller = app.caller().await;
    let e = error_for(&mut caller, r#"{"type": "start", "helpline": "child\u0000ren"}"#).await;
    assert!(e["code"].is_string(), "{e}");
    still_usable(&mut caller).await;
    healthy(&app).await;
}

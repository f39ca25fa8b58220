//! A simulated telephone exchange: places calls, answers and hangs up over the gateway protocol (`/ws/telephony`), exactly as a real adapter would.

use std::collections::VecDeque;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, Ws};

/// Registers a gateway directly in the store; returns its service token.
pub async fn add_gateway(app: &TestApp, name: &str) -> String {
    let token = format!("{name}-token-{}", uuid::Uuid::new_v4().simple());
    app.store.exchanges().create_gateway(name, &helpline::auth::token_hash(&token), 0).await.expect("gateway");
    token
}

/// Milliseconds since the Unix epoch now: the exchange's clock.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    i64::try_from(d.as_millis()).expect("ms")
}

/// An exchange's adapter with its socket open.
pub struct Exchange {
    ws: Ws,
    /// Frames read while waiting for another kind, in order.
    held: VecDeque<Value>,
    next_event: u64,
}

impl Exchange {
    /// An adapter that does not acknowledge commands (written before `command_ack` existed).
    pub async fn connect(app: &TestApp, token: &str) -> Exchange {
        Self::connect_to(&app.addr.to_string(), token, false).await
    }

    /// An adapter that acknowledges commands (`?command_acks=true`).
    pub async fn connect_acking(app: &TestApp, token: &str) -> Exchange {
        Self::connect_to(&app.addr.to_string(), token, true).await
    }

    /// Connects to the server at `addr` (`host:port`).
    pub async fn connect_to(addr: &str, token: &str, acks: bool) -> Exchange {
        let query = if acks { "?command_acks=true" } else { "" };
        let mut request = format!("ws://{addr}/ws/telephony{query}").into_client_request().expect("request");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("gateway socket");
        Exchange { ws: Ws { stream }, held: VecDeque::new(), next_event: 0 }
    }

    /// Acknowledges a command frame (`connect`, `cancel`, `hold`, …) by its `command_id`.
    pub async fn ack_command(&mut self, command: &Value) {
        let id = command["command_id"].as_str().expect("a command carries a command_id");
        self.send(json!({"type": "command_ack", "command_id": id})).await;
    }

    /// Reads until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        self.ws.closed().await
    }

    /// The adapter goes away (its socket closes).
    pub async fn close(self) {
        self.ws.close().await;
    }

    /// A fresh event id, unique across connections (an adapter that reconnects keeps counting).
    pub fn event_id(&mut self) -> String {
        self.next_event += 1;
        format!("ev-{}-{}", self.next_event, uuid::Uuid::new_v4().simple())
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.stream.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    /// The next frame of `kind` (other frames are kept for later, in order).
    pub async fn expect(&mut self, kind: &str) -> Value {
        if let Some(i) = self.held.iter().position(|f| f["type"] == kind) {
            return self.held.remove(i).expect("held frame");
        }
        loop {
            let v = self.ws.recv().await;
            if v["type"] == kind {
                return v;
            }
            self.held.push_back(v);
        }
    }

    /// The `ack` of `event_id`.
    pub async fn acked(&mut self, event_id: &str) {
        let ack = self.expect("ack").await;
        assert_eq!(ack["event_id"], event_id, "{ack}");
    }

    /// Sends an event (with a fresh id unless it has one) and waits for its ack; returns the event id.
    pub async fn event(&mut self, mut v: Value) -> String {
        if v.get("event_id").is_none() {
            v["event_id"] = json!(self.event_id());
        }
        let id = v["event_id"].as_str().expect("event id").to_string();
        self.send(v).await;
        self.acked(&id).await;
        id
    }

    /// A call reaches the exchange's queue.
    pub async fn offer(&mut self, call_id: &str, dialled: &str, caller: &str, at: i64) -> String {
        self.event(json!({"type": "call_offered", "call_id": call_id, "dialled": dialled, "caller": caller, "at": at})).await
    }

    /// The counsellor's phone leg picks up.
    pub async fn answer(&mut self, call_id: &str, at: i64) -> String {
        self.event(json!({"type": "call_answered", "call_id": call_id, "at": at})).await
    }

    pub async fn hang_up(&mut self, call_id: &str, by: &str, at: i64) -> String {
        self.event(json!({"type": "call_ended", "call_id": call_id, "by": by, "at": at})).await
    }

    /// The caller gives up while waiting.
    pub async fn abandon(&mut self, call_id: &str, at: i64) -> String {
        self.event(json!({"type": "call_abandoned", "call_id": call_id, "at": at})).await
    }

    /// Nothing but what is already held arrived before this round trip (a `ping` answered by `pong`).
    pub async fn quiet(&mut self) -> Vec<Value> {
        self.send(json!({"type": "ping"})).await;
        self.expect("pong").await;
        self.held.drain(..).collect()
    }
}

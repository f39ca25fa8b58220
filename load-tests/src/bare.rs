//! The bare relay: the machine's floor for the `relay` scenario.
//!
//! The same WebSocket stack as helpline (axum 0.8, 4 KiB read buffers), the same JSON frames
//! (helpline's own `ServerEvent` types), but no storage, no routing engine, no authentication:
//! a counsellor who says `available` is offered the next waiting contact; `accept` connects;
//! `message` gets a seq from a counter, an `ack` at once, and goes to the other side.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use helpline::protocol::{rfc3339, CounsellorStatus, MessageView, Party, ServerEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

type Tx = UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct Conv {
    caller: Option<(u64, Tx)>,
    agent: Option<String>,
    seq: i64,
}

#[derive(Default)]
struct Inner {
    next_conn: u64,
    agents: HashMap<String, Tx>,
    free: VecDeque<String>,
    waiting: VecDeque<String>,
    convs: HashMap<String, Conv>,
    /// Open conversations per counsellor.
    active: HashMap<String, usize>,
    /// Conversations a counsellor may hold (the `--capacity` of `bare-server`).
    capacity: usize,
}

#[derive(Clone, Default)]
struct Bare(Arc<Mutex<Inner>>);

fn frame(e: &ServerEvent) -> Utf8Bytes {
    e.to_json().into()
}

fn now_ms() -> i64 {
    crate::target::now_ms()
}

impl Bare {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn dispatch(&mut self) {
        while !self.free.is_empty() && !self.waiting.is_empty() {
            let (Some(agent), Some(contact)) = (self.free.pop_front(), self.waiting.pop_front()) else { break };
            if let Some(tx) = self.agents.get(&agent) {
                let _ = tx.send(frame(&ServerEvent::Offer {
                    contact_id: contact,
                    helpline: "children".into(),
                    language: "ro".into(),
                    waited_ms: 0,
                    expires_in_ms: 8000,
                    backup: false,
                    channel: "chat".into(),
                    caller_last2: None,
                    repeat: None,
                    earlier: Vec::new(),
                    caller_online: true,
                }));
            }
        }
    }

    fn post(&mut self, contact: &str, from: Party, client_id: String, text: String, me: &Tx) {
        let Some(conv) = self.convs.get_mut(contact) else {
            let _ = me.send(frame(&ServerEvent::error(helpline::protocol::ErrorCode::UnknownContact, "no such contact")));
            return;
        };
        conv.seq += 1;
        let seq = conv.seq;
        let _ = me.send(frame(&ServerEvent::Ack { contact_id: contact.into(), client_id: client_id.clone(), seq }));
        let msg = frame(&ServerEvent::Message(MessageView {
            contact_id: contact.into(),
            seq,
            from,
            text,
            at: rfc3339(now_ms()),
            client_id,
            notice: None,
        }));
        match from {
            Party::Caller => {
                if let Some(tx) = conv.agent.as_ref().and_then(|a| self.agents.get(a)) {
                    let _ = tx.send(msg);
                }
            }
            _ => {
                if let Some((_, tx)) = &conv.caller {
                    let _ = tx.send(msg);
                }
            }
        }
    }

    fn end(&mut self, contact: &str, reason: &str) {
        if let Some(conv) = self.convs.remove(contact) {
            if let Some(a) = &conv.agent {
                let n = self.active.entry(a.clone()).or_default();
                *n = n.saturating_sub(1);
                if *n < self.capacity && self.agents.contains_key(a) && !self.free.contains(a) {
                    self.free.push_back(a.clone());
                }
            }
            let f = frame(&ServerEvent::ContactEnded { contact_id: contact.into(), reason: reason.into() });
            if let Some((_, tx)) = &conv.caller {
                let _ = tx.send(f.clone());
            }
            if let Some(tx) = conv.agent.as_ref().and_then(|a| self.agents.get(a)) {
                let _ = tx.send(f);
            }
        }
        self.waiting.retain(|c| c != contact);
        self.dispatch();
    }
}

/// Serves the bare relay on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    serve_with_capacity(listener, 1).await
}

/// Serves the bare relay; each counsellor holds at most `capacity` conversations.
pub async fn serve_with_capacity(listener: tokio::net::TcpListener, capacity: usize) {
    let bare = Bare::default();
    bare.lock().capacity = capacity.max(1);
    let app = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/ws-ticket", post(ticket))
        .route("/ws/caller", get(caller))
        .route("/ws/agent", get(agent))
        .with_state(bare);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let _ = axum::serve(listener, app).await;
}

async fn login(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"access_token": body["username"].as_str().unwrap_or("x"), "token_type": "Bearer"}))
}

async fn ticket(headers: HeaderMap) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("anonymous")
        .to_string();
    Json(json!({"ticket": token}))
}

fn limited(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(4096).write_buffer_size(4096)
}

async fn agent(State(bare): State<Bare>, Query(q): Query<HashMap<String, String>>, ws: WebSocketUpgrade) -> Response {
    let name = q.get("ticket").cloned().unwrap_or_else(|| "anonymous".into());
    limited(ws).on_upgrade(move |socket| agent_session(socket, bare, name))
}

async fn caller(State(bare): State<Bare>, ws: WebSocketUpgrade) -> Response {
    limited(ws).on_upgrade(move |socket| caller_session(socket, bare))
}

async fn pump(socket: &mut WebSocket, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Utf8Bytes>, mut on_text: impl FnMut(&str)) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => on_text(t.as_str()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(text) => if socket.send(Message::Text(text)).await.is_err() { break },
                None => break,
            }
        }
    }
}

async fn agent_session(mut socket: WebSocket, bare: Bare, name: String) {
    let (tx, mut rx) = unbounded_channel();
    let _ = tx.send(frame(&ServerEvent::Hello {
        user_id: name.clone(),
        username: name.clone(),
        display_name: name.clone(),
        status: CounsellorStatus::Offline,
        capacity: 3,
        helplines: vec!["children".into()],
        backup_helplines: vec![],
        languages: vec!["ro".into()],
        conversations: vec![],
        away_reasons: vec![],
    }));
    bare.lock().agents.insert(name.clone(), tx.clone());
    pump(&mut socket, &mut rx, |text| {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return };
        let mut g = bare.lock();
        match v["type"].as_str() {
            Some("status") => {
                let _ = tx.send(frame(&ServerEvent::Status { status: CounsellorStatus::Available, reason: None }));
                let n = g.active.get(&name).copied().unwrap_or(0);
                if n < g.capacity && !g.free.contains(&name) {
                    g.free.push_back(name.clone());
                }
                g.dispatch();
            }
            Some("accept") => {
                let contact = v["contact_id"].as_str().unwrap_or_default().to_string();
                let mut took = false;
                if let Some(conv) = g.convs.get_mut(&contact) {
                    took = true;
                    conv.agent = Some(name.clone());
                    let _ = tx.send(frame(&ServerEvent::Assigned {
                        contact_id: contact.clone(),
                        helpline: "children".into(),
                        language: "ro".into(),
                        queued_at: rfc3339(now_ms()),
                        answered_at: rfc3339(now_ms()),
                        caller_online: true,
                        history: vec![],
                        channel: "chat".into(),
                        handover: None,
                    }));
                    if let Some((_, c)) = &conv.caller {
                        let _ = c.send(frame(&ServerEvent::Connected { contact_id: contact, counsellor: name.clone() }));
                    }
                }
                let n = {
                    let n = g.active.entry(name.clone()).or_default();
                    if took {
                        *n += 1;
                    }
                    *n
                };
                if n < g.capacity && !g.free.contains(&name) {
                    g.free.push_back(name.clone());
                }
                g.dispatch();
            }
            Some("message") => {
                let contact = v["contact_id"].as_str().unwrap_or_default().to_string();
                let cid = v["client_id"].as_str().unwrap_or_default().to_string();
                let text = v["text"].as_str().unwrap_or_default().to_string();
                g.post(&contact, Party::Counsellor, cid, text, &tx);
            }
            Some("end") => {
                let contact = v["contact_id"].as_str().unwrap_or_default().to_string();
                g.end(&contact, "counsellor_ended");
            }
            Some("ping") => {
                let _ = tx.send(frame(&ServerEvent::Pong {}));
            }
            _ => {}
        }
    })
    .await;
    let mut g = bare.lock();
    g.agents.remove(&name);
    g.free.retain(|a| a != &name);
}

async fn caller_session(mut socket: WebSocket, bare: Bare) {
    let (tx, mut rx) = unbounded_channel();
    let conn = {
        let mut g = bare.lock();
        g.next_conn += 1;
        g.next_conn
    };
    let mut contact: Option<String> = None;
    pump(&mut socket, &mut rx, |text| {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return };
        let mut g = bare.lock();
        match v["type"].as_str() {
            Some("start") => {
                let id = uuid::Uuid::new_v4().to_string();
                g.convs.insert(id.clone(), Conv { caller: Some((conn, tx.clone())), agent: None, seq: 0 });
                g.waiting.push_back(id.clone());
                let position = g.waiting.len() as u32;
                let _ = tx.send(frame(&ServerEvent::Queued {
                    contact_id: id.clone(),
                    resume_token: id.clone(),
                    position,
                    estimated_wait_s: None,
                }));
                contact = Some(id);
                g.dispatch();
            }
            Some("resume") => {
                let id = v["resume_token"].as_str().unwrap_or_default().to_string();
                match g.convs.get_mut(&id) {
                    Some(conv) => {
                        conv.caller = Some((conn, tx.clone()));
                        let state = if conv.agent.is_some() { "active" } else { "queued" };
                        let _ = tx.send(frame(&ServerEvent::Resumed {
                            contact_id: id.clone(),
                            state: state.into(),
                            position: None,
                            counsellor: conv.agent.clone(),
                        }));
                        contact = Some(id);
                    }
                    None => {
                        let _ = tx.send(frame(&ServerEvent::error(helpline::protocol::ErrorCode::BadToken, "unknown token")));
                    }
                }
            }
            Some("message") => {
                if let Some(c) = &contact {
                    let cid = v["client_id"].as_str().unwrap_or_default().to_string();
                    let text = v["text"].as_str().unwrap_or_default().to_string();
                    g.post(c, Party::Caller, cid, text, &tx);
                }
            }
            Some("end") => {
                if let Some(c) = contact.take() {
                    g.end(&c, "caller_ended");
                }
            }
            Some("ping") => {
                let _ = tx.send(frame(&ServerEvent::Pong {}));
            }
            _ => {}
        }
    })
    .await;
    if let Some(c) = contact {
        let mut g = bare.lock();
        if let Some(conv) = g.convs.get_mut(&c) {
            if conv.caller.as_ref().is_some_and(|(id, _)| *id == conn) {
                conv.caller = None;
            }
        }
    }
}

//! The caller's socket (`/ws/caller`, anonymous): start or resume a contact, chat, end.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{limited, run_session, Handler};
use crate::auth::guard::SocketSlot;
use crate::auth::{random_token, token_hash};
use crate::chat::channel::{ContactChannel, WebChat};
use crate::chat::engine_task::{contact_key, EngineCommand};
use crate::chat::hub::{Outbox, Role};
use crate::chat::relay::{RelayCommand, ResumeOutcome};
use crate::protocol::{check_message, CallerRequest, ErrorCode, Party, ServerEvent};
use crate::routing::{ContactId, Input, NewContact};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::contacts::{Change, NewContactRecord, QUICK_EXIT};

/// `GET /ws/caller`: anyone may open a chat, from a page of an allowed origin (403 otherwise),
/// while their address has fewer than its limit of sockets open (429 otherwise).
#[utoipa::path(get, path = "/ws/caller", tag = "websocket",
    description = "The caller's chat socket (anonymous): `start` or `resume` a contact, chat, `end`. Frames: docs/protocol.md.",
    responses(
        (status = 101, description = "Switching Protocols: the socket is open; frames as in docs/protocol.md"),
        (status = 400, description = "not a WebSocket upgrade request"),
        (status = 403, description = "the page's origin may not open a chat here", body = crate::state::error::ErrorBody),
        (status = 429, description = "too many sockets from this network", body = crate::state::error::ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &state.allowed_origins) {
        return AppError::forbidden("this page may not open a chat here").into_response();
    }
    let ip = state.guard.client_ip(peer, &headers);
    let slot = match super::socket_slot(&state, ip) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    limited(ws).on_upgrade(move |socket| serve(socket, state, ip, slot))
}

/// Whether a browser page may open a caller socket: no `Origin` (not a browser), an origin on the
/// allow-list (exact match), or, without a list, a page served by this server (`Origin` host = `Host`).
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    if !allowed.is_empty() {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

async fn serve(socket: WebSocket, state: AppState, ip: IpAddr, _slot: SocketSlot) {
    let (me, inbox) = state.hub.new_connection();
    let mut session = CallerSession { state: state.clone(), me: me.clone(), ip, contact: None, heartbeats: false, said_stalled: false };
    run_session(socket, me, inbox, &mut session, &state).await;
}

struct CallerSession {
    state: AppState,
    me: Outbox,
    /// The caller's network (for the new-chats-per-minute limit; never stored).
    ip: IpAddr,
    /// The contact this socket speaks for, once started or resumed: (string id, engine id).
    contact: Option<(String, ContactId)>,
    /// The client sent a `ping`: it heartbeats, so its silence is a stall (`Handler::watches_stall`).
    heartbeats: bool,
    /// A stall of this socket was told as the caller's connection dropping (not told again at close).
    said_stalled: bool,
}

impl CallerSession {
    fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.me.send(&ServerEvent::error(code, message));
    }

    async fn start(&mut self, helpline: String, language: Option<String>, return_code: Option<String>) {
        if self.contact.is_some() {
            return self.error(ErrorCode::NotAllowed, "this connection already has a contact; end it first");
        }
        let Some(h) = self.state.helplines.iter().find(|h| h.name == helpline) else {
            let names: Vec<&str> = self.state.helplines.iter().map(|h| h.name.as_str()).collect();
            return self.error(ErrorCode::UnknownHelpline, format!("unknown helpline; one of {}", names.join(", ")));
        };
        let language = match language {
            Some(l) if h.languages.contains(&l) => l,
            Some(_) => return self.error(ErrorCode::UnknownHelpline, format!("this helpline answers in {}", h.languages.join(", "))),
            None => h.languages.first().cloned().unwrap_or_else(|| "ro".into()),
        };
        if self.state.guard.new_contact(self.ip).is_err() {
            tracing::warn!(helpline = %h.name, "new chats from one address over the per-minute limit; refused");
            return self.error(
                ErrorCode::RateLimited,
                "Many chats are being started from your network right now. Please wait a minute and try again; \
                 if you are in danger, call 112.",
            );
        }
        let now = self.state.clock.now_ms();
        let (caller_hash, senior_only) = match crate::safety::abuse::chat_door(&self.state, self.ip, &h.name, now).await {
            (hash, crate::safety::abuse::Door::Open { senior_only }) => (hash, senior_only),
            (_, crate::safety::abuse::Door::Refused { block_id }) => {
                tracing::info!(helpline = %h.name, "a chat from a blocked caller was refused calmly");
                if let Err(err) = self.state.store.abuse().record_blocked_chat(&block_id, now).await {
                    tracing::warn!(error = %err, "recording a blocked chat failed");
                }
                let message = crate::safety::abuse::unavailable_message(&language).to_string();
                self.me.send(&ServerEvent::Closed { reason: "unavailable".into(), message });
                return;
            }
        };
        let id = uuid::Uuid::now_v7();
        let resume_token = random_token(24);
        let record = NewContactRecord {
            id: id.to_string(),
            channel: WebChat::KIND.into(),
            helpline: h.name.clone(),
            language: language.clone(),
            priority: 0,
            resume_token_hash: token_hash(&resume_token),
            queued_at: now,
        };
        if let Err(err) = self.state.store.contacts().create_contact_from(&record, caller_hash.as_deref(), senior_only).await {
            tracing::error!(error = %err, "storing a new contact failed");
            return self.error(ErrorCode::Unavailable, "could not open the chat; try again");
        }
        // A return code: tied to the new contact before it is routed, so its first offer already
        // shows her earlier chats; she is told whether it was known.
        let earlier = match return_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => Vec::new(),
            Some(code) => match crate::safety::return_code::use_code(&self.state, &record.id, code).await {
                Ok(found) => {
                    self.me.send(&ServerEvent::ReturnCode { known: found.is_some() });
                    found.unwrap_or_default()
                }
                Err(err) => {
                    tracing::error!(error = %err, "reading a return code failed; the chat goes on without it");
                    self.me.send(&ServerEvent::ReturnCode { known: false });
                    Vec::new()
                }
            },
        };
        let key = ContactId(id.as_u128());
        let (done, opened) = oneshot::channel();
        self.state.relay.send(RelayCommand::Open { contact: record.id.clone(), outbox: Some(self.me.clone()), done }).await;
        let _ = opened.await;
        self.state.hub.set_role(self.me.id, Role::Caller { contact: record.id.clone() }, 0);
        self.contact = Some((record.id.clone(), key));
        let contact = NewContact {
            id: key,
            channel: WebChat.rules(),
            helpline: h.name.clone(),
            language,
            priority: 0,
            queued_at: now,
            caller_connected: true,
            senior_only,
        };
        let (done, queued) = oneshot::channel();
        let channel = WebChat::KIND.to_string();
        self.state.engine.send(EngineCommand::StartContact { contact, resume_token, channel, done, earlier }).await;
        let _ = queued.await;
    }

    async fn resume(&mut self, resume_token: String, last_seq: i64) {
        if self.contact.is_some() {
            return self.error(ErrorCode::NotAllowed, "this connection already has a contact");
        }
        let found = self.state.store.contacts().contact_by_token_hash(&token_hash(&resume_token)).await;
        let record = match found {
            Ok(Some(r)) if r.is_open() => r,
            Ok(_) => return self.error(ErrorCode::BadToken, "no open chat for that token; start a new one"),
            Err(err) => {
                tracing::error!(error = %err, "resume lookup failed");
                return self.error(ErrorCode::Unavailable, "could not resume; try again");
            }
        };
        let Some(key) = contact_key(&record.id) else {
            return self.error(ErrorCode::BadToken, "no open chat for that token");
        };
        let id = record.id.clone();
        let (done, resumed) = oneshot::channel();
        self.state.relay.send(RelayCommand::Resume { contact: record, last_seq, outbox: self.me.clone(), done }).await;
        match resumed.await {
            Ok(ResumeOutcome::Resumed) => {}
            Ok(ResumeOutcome::Unavailable) | Err(_) => {
                return self.error(ErrorCode::Unavailable, "could not resume; try again");
            }
            Ok(ResumeOutcome::NotOpen) => {
                return self.error(ErrorCode::BadToken, "no open chat for that token; start a new one");
            }
        }
        self.state.hub.set_role(self.me.id, Role::Caller { contact: id.clone() }, last_seq.max(0));
        self.contact = Some((id, key));
        self.state.engine.send(EngineCommand::CallerPresence { contact: key, online: true }).await;
    }
}

impl CallerSession {
    /// `leave_message` / `callback` (a `phone`): the waiting contact leaves the queue and comes back as
    /// a message or callback when the line opens (`chat::left`); the text goes into its history as
    /// the caller's message; the caller hears `left`, and this socket no longer speaks for it.
    async fn leave(&mut self, phone: Option<String>, text: String) {
        let Some((id, key)) = self.contact.clone() else {
            return self.error(ErrorCode::NotAllowed, "start a chat first");
        };
        let callback = phone.is_some();
        let text = text.trim().to_string();
        if !callback && text.is_empty() {
            return self.error(ErrorCode::BadField, "the message is empty");
        }
        if text.chars().count() > crate::chat::left::MAX_LEFT_CHARS {
            return self.error(ErrorCode::TooLarge, format!("at most {} characters", crate::chat::left::MAX_LEFT_CHARS));
        }
        let now = self.state.clock.now_ms();
        if let Some(phone) = phone {
            let number = match crate::chat::left::check_phone(&phone) {
                Ok(n) => n,
                Err(why) => return self.error(ErrorCode::BadField, why),
            };
            if let Err(err) = self.state.store.contacts().keep_callback_number(&id, &number, now).await {
                tracing::error!(error = %err, "storing a callback number failed");
                return self.error(ErrorCode::Unavailable, "could not take the request; try again");
            }
        }
        let (done, routed) = oneshot::channel();
        self.state.engine.send(EngineCommand::Leave { contact: key, callback, done }).await;
        let Ok(Some(routed_at)) = routed.await else {
            if callback {
                if let Err(err) = self.state.store.contacts().forget_callback_number(&id).await {
                    tracing::error!(error = %err, "deleting an unused callback number failed");
                }
            }
            return self.error(ErrorCode::NotAllowed, "only a chat still waiting can leave a message or ask for a callback");
        };
        if !text.is_empty() {
            let cmd = RelayCommand::Post {
                contact: id.clone(),
                party: Party::Caller,
                sender_id: None,
                client_id: format!("left-{id}"),
                text,
                outbox: self.me.clone(),
                take_by: super::take_by(&self.state),
            };
            super::post(&self.state, &self.me, cmd).await;
        }
        let kind = crate::chat::left::Left::of(callback).kind_str().to_string();
        self.me.send(&ServerEvent::Left { contact_id: id.clone(), kind, routed_at: crate::protocol::rfc3339(routed_at) });
        self.contact = None;
        self.state.hub.detach_caller(&id, self.me.id);
    }
}

impl Handler for CallerSession {
    type Request = CallerRequest;

    fn needs_store(request: &CallerRequest) -> Option<String> {
        match request {
            CallerRequest::Message { client_id, .. } => Some(client_id.clone()),
            CallerRequest::Start { .. }
            | CallerRequest::Resume { .. }
            | CallerRequest::End { .. }
            | CallerRequest::LeaveMessage { .. }
            | CallerRequest::Callback { .. } => Some(String::new()),
            CallerRequest::Typing { .. } | CallerRequest::Ping {} | CallerRequest::Triage { .. } => None,
        }
    }

    fn awaits_answer(request: &CallerRequest) -> Option<String> {
        match request {
            CallerRequest::Message { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }

    async fn on_request(&mut self, request: CallerRequest) {
        match request {
            CallerRequest::Start { helpline, language, return_code } => self.start(helpline, language, return_code).await,
            CallerRequest::Resume { resume_token, last_seq } => self.resume(resume_token, last_seq).await,
            CallerRequest::Message { client_id, text } => {
                let Some((contact, _)) = &self.contact else {
                    let refusal = ServerEvent::error_about(ErrorCode::NotAllowed, "start or resume a chat first", client_id.clone());
                    self.me.answer(&client_id, &refusal);
                    return;
                };
                if let Err(e) = check_message(&client_id, &text) {
                    self.me.answer(&client_id, &ServerEvent::error_about(e.code, e.message, client_id.clone()));
                    return;
                }
                let cmd = RelayCommand::Post {
                    contact: contact.clone(),
                    party: Party::Caller,
                    sender_id: None,
                    client_id,
                    text,
                    outbox: self.me.clone(),
                    take_by: super::take_by(&self.state),
                };
                super::post(&self.state, &self.me, cmd).await;
            }
            CallerRequest::Typing { active } => {
                if let Some((contact, _)) = &self.contact {
                    // A hint: dropped rather than waited for when the relay is behind.
                    let cmd = RelayCommand::Typing { contact: contact.clone(), party: Party::Caller, sender_id: None, active };
                    self.state.relay.post(cmd).await;
                }
            }
            CallerRequest::End { quick_exit } => {
                let Some((id, key)) = self.contact.clone() else {
                    return self.error(ErrorCode::NotAllowed, "there is no chat to end");
                };
                if quick_exit {
                    // Stored before the end, so the relay finds it when it tells the counsellor (`quick_exit`).
                    let event =
                        Change::Event { contact: id, at: self.state.clock.now_ms(), kind: QUICK_EXIT, counsellor: None, detail: None };
                    if let Err(err) = self.state.store.contacts().apply_changes(&[event]).await {
                        tracing::warn!(error = %err, "storing a quick exit failed; the contact ends as caller_ended");
                    }
                }
                self.state.engine.input(Input::EndByCaller { contact: key }).await;
            }
            CallerRequest::Ping {} => {
                self.heartbeats = true;
                self.me.send(&ServerEvent::Pong {});
            }
            CallerRequest::LeaveMessage { text } => self.leave(None, text).await,
            CallerRequest::Callback { phone, text } => self.leave(Some(phone), text.unwrap_or_default()).await,
            CallerRequest::Triage { answer } => {
                let Some((_, key)) = self.contact else {
                    return self.error(ErrorCode::NotAllowed, "start or resume a chat first");
                };
                let danger = answer == crate::protocol::TriageAnswer::Yes;
                self.state.engine.input(Input::Triage { contact: key, danger }).await;
            }
        }
    }

    fn on_ended(&mut self, contact_id: &str) {
        if self.contact.as_ref().is_some_and(|(id, _)| id == contact_id) {
            if let Some((id, _)) = self.contact.take() {
                self.state.hub.detach_caller(&id, self.me.id);
            }
        }
    }

    fn watches_stall(&self) -> bool {
        self.heartbeats && self.contact.is_some()
    }

    /// A stalled caller socket is told as her connection dropping (the engine holds a waiting caller's
    /// offers, her counsellor gets `caller_presence`), unless another socket of hers is attached (she
    /// resumed elsewhere); when the socket speaks again, as her coming back.
    async fn on_stall(&mut self, stalled: bool) {
        let Some((id, key)) = self.contact.clone() else { return };
        if stalled && self.state.hub.caller_sockets(&id) <= 1 {
            tracing::debug!(contact = %id, "caller socket stalled");
            self.said_stalled = true;
            self.state.engine.send(EngineCommand::CallerPresence { contact: key, online: false }).await;
        } else if !stalled && self.said_stalled {
            self.said_stalled = false;
            self.state.engine.send(EngineCommand::CallerPresence { contact: key, online: true }).await;
        }
    }

    async fn on_close(&mut self) {
        if let Some((id, key)) = self.contact.take() {
            if self.state.hub.detach_caller(&id, self.me.id) == 0 && !self.said_stalled {
                self.state.engine.send(EngineCommand::CallerPresence { contact: key, online: false }).await;
            }
        }
    }
}

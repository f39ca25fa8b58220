//! The counsellor's socket (`/ws/agent`, authenticated at the upgrade): status, offers, conversations.

use std::collections::HashMap;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{limited, run_session, Handler};
use crate::casework::handover::{self, rules::Answer};
use crate::chat::engine_task::{contact_key, counsellor_key, profile_of, status_of, EngineCommand};
use crate::chat::hub::{Outbox, Role};
use crate::chat::relay::RelayCommand;
use crate::protocol::{check_message, CounsellorRequest, CounsellorStatus, ErrorCode, Party, ServerEvent};
use crate::routing::{CounsellorId, Input};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::users::User;
use crate::telephony::CallAction;

/// `GET /ws/agent?ticket=…` or with `Authorization: Bearer …`: refused (401) before the upgrade without valid credentials.
#[utoipa::path(get, path = "/ws/agent", tag = "websocket",
    description = "The counsellor console's socket: offers, conversations, status. Frames: docs/protocol.md.",
    params(("ticket" = Option<String>, Query, description = "a single-use ticket from `POST /api/v1/ws-ticket` (or send the bearer token)")),
    security(("bearer" = []), ()),
    responses(
        (status = 101, description = "Switching Protocols: the socket is open; frames as in docs/protocol.md"),
        (status = 400, description = "not a WebSocket upgrade request"),
        (status = 401, description = "no valid ticket or token", body = crate::state::error::ErrorBody),
        (status = 403, description = "counsellors only (case managers, supervisors and admins have their own pages)", body = crate::state::error::ErrorBody),
        (status = 429, description = "too many sockets from this network", body = crate::state::error::ErrorBody),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let (user, slot) = match super::staff_user(&state, peer, &query, &headers).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if user.role != crate::store::users::Role::Counsellor {
        return AppError::forbidden("the counsellor console is for counsellors; your role has its own page").into_response();
    }
    let Some(key) = counsellor_key(&user.id) else {
        return AppError::internal().into_response();
    };
    limited(ws).on_upgrade(move |socket| serve(socket, state, user, key, slot))
}

async fn serve(socket: WebSocket, state: AppState, user: User, key: CounsellorId, _slot: crate::auth::guard::SocketSlot) {
    let (me, inbox) = state.hub.new_connection();
    let status = CounsellorStatus::parse(&user.status).unwrap_or(CounsellorStatus::Offline);
    let first = !state.hub.counsellor_online(&user.id);
    let (done, synced) = oneshot::channel();
    let sync = RelayCommand::CounsellorSync { user: user.clone(), status, outbox: me.clone(), done };
    if !state.relay.send(sync).await || synced.await.is_err() {
        return;
    }
    if first {
        if let Some(profile) = profile_of(&user) {
            state.engine.send(EngineCommand::CounsellorOnline { profile, status: status_of(status) }).await;
        }
    }
    state.hub.attach_staff(&user.id, me.clone());
    state.hub.set_role(me.id, Role::Counsellor { user: user.id.clone() }, 0);
    tracing::info!(user = %user.username, "counsellor connected");
    let mut session = CounsellorSession { state: state.clone(), me: me.clone(), user, key };
    run_session(socket, me, inbox, &mut session, &state).await;
}

struct CounsellorSession {
    state: AppState,
    me: Outbox,
    user: User,
    key: CounsellorId,
}

impl CounsellorSession {
    /// An error about a message (`client_id`) or a contact: the answer to it.
    fn error_about(&self, code: ErrorCode, message: impl Into<String>, reference: impl Into<String>) {
        let reference = reference.into();
        self.me.answer(&reference, &ServerEvent::error_about(code, message, reference.clone()));
    }

    /// Parses a contact id from the console, or answers `unknown_contact`.
    fn contact(&self, contact_id: &str) -> Option<crate::routing::ContactId> {
        let key = contact_key(contact_id);
        if key.is_none() {
            self.error_about(ErrorCode::UnknownContact, "no such contact", contact_id);
        }
        key
    }
}

impl CounsellorSession {
    fn staff(&self) -> crate::state::access::Staff {
        crate::state::access::Staff::on_socket(self.user.clone(), "agent")
    }

    /// A transfer's or consult's refusal, as an error about the contact (its success is told by
    /// `handover` and `consult` frames).
    fn answered(&self, result: Result<(), AppError>, contact_id: String) {
        if let Err(err) = result {
            self.error_about(err.code, err.message, contact_id);
        }
    }

    async fn answer(&self, contact_id: String, answer: Answer) {
        let result = handover::answer(&self.state, &self.staff(), &contact_id, answer).await;
        self.answered(result, contact_id);
    }

    /// Hold, resume or hang up one's own active call: `call_control` once the command is stored, else `error`.
    async fn call_control(&self, contact_id: String, action: CallAction) {
        match crate::telephony::call_control(&self.state, &self.user.id, &contact_id, action).await {
            Ok(()) => {
                self.me.send(&ServerEvent::CallControl { contact_id, action: action.as_str().into() });
            }
            Err(err) => self.error_about(err.code, err.message, contact_id),
        }
    }
}

impl Handler for CounsellorSession {
    type Request = CounsellorRequest;

    fn awaits_answer(request: &CounsellorRequest) -> Option<String> {
        match request {
            CounsellorRequest::Message { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }

    fn needs_store(request: &CounsellorRequest) -> Option<String> {
        Some(match request {
            CounsellorRequest::Typing { .. } | CounsellorRequest::Ping {} => return None,
            CounsellorRequest::Message { client_id, .. } => client_id.clone(),
            CounsellorRequest::Status { .. } => String::new(),
            CounsellorRequest::Accept { contact_id }
            | CounsellorRequest::Ready { contact_id }
            | CounsellorRequest::Decline { contact_id }
            | CounsellorRequest::End { contact_id }
            | CounsellorRequest::Escalate { contact_id, .. }
            | CounsellorRequest::CallHold { contact_id }
            | CounsellorRequest::CallResume { contact_id }
            | CounsellorRequest::CallHangup { contact_id }
            | CounsellorRequest::FlagAbusive { contact_id, .. }
            | CounsellorRequest::Transfer { contact_id, .. }
            | CounsellorRequest::TransferAccept { contact_id }
            | CounsellorRequest::TransferDecline { contact_id }
            | CounsellorRequest::TransferCancel { contact_id }
            | CounsellorRequest::Consult { contact_id, .. } => contact_id.clone(),
        })
    }

    async fn on_request(&mut self, request: CounsellorRequest) {
        let counsellor = self.key;
        match request {
            CounsellorRequest::Status { status, reason: None } => {
                self.state.engine.input(Input::SetStatus { counsellor, status: status_of(status) }).await;
            }
            CounsellorRequest::Status { status: CounsellorStatus::Away, reason: Some(reason) } => {
                // Checked against her helplines' away reasons by the engine (`unknown_away_reason`).
                self.state.engine.input(Input::SetAway { counsellor, reason }).await;
            }
            CounsellorRequest::Status { .. } => {
                self.me.send(&ServerEvent::error(ErrorCode::BadField, "a reason goes only with the status \"away\""));
            }
            CounsellorRequest::Ready { contact_id } => {
                if let Some(contact) = self.contact(&contact_id) {
                    self.state.engine.input(Input::Ready { counsellor, contact }).await;
                }
            }
            CounsellorRequest::Accept { contact_id } => {
                if let Some(contact) = self.contact(&contact_id) {
                    self.state.engine.input(Input::Accept { counsellor, contact }).await;
                }
            }
            CounsellorRequest::Decline { contact_id } => {
                if let Some(contact) = self.contact(&contact_id) {
                    self.state.engine.input(Input::Decline { counsellor, contact }).await;
                }
            }
            CounsellorRequest::End { contact_id } => {
                if let Some(contact) = self.contact(&contact_id) {
                    self.state.engine.input(Input::EndByCounsellor { counsellor, contact }).await;
                }
            }
            CounsellorRequest::Message { contact_id, client_id, text } => {
                if let Err(e) = check_message(&client_id, &text) {
                    return self.error_about(e.code, e.message, client_id);
                }
                let cmd = RelayCommand::Post {
                    contact: contact_id,
                    party: Party::Counsellor,
                    sender_id: Some(self.user.id.clone()),
                    client_id,
                    text,
                    outbox: self.me.clone(),
                    take_by: super::take_by(&self.state),
                };
                super::post(&self.state, &self.me, cmd).await;
            }
            CounsellorRequest::Typing { contact_id, active } => {
                // As for a message: only into one's own open conversation (a database that does not
                // answer lets it through: the relay drops another's typing anyway).
                let mine = match self.state.store.contacts().contact(&contact_id).await {
                    Ok(Some(c)) => c.is_open() && c.counsellor_id.as_deref() == Some(self.user.id.as_str()),
                    Ok(None) => false,
                    Err(_) => true,
                };
                if !mine {
                    return self.error_about(ErrorCode::UnknownContact, "no open conversation of yours with that contact", contact_id);
                }
                let cmd =
                    RelayCommand::Typing { contact: contact_id, party: Party::Counsellor, sender_id: Some(self.user.id.clone()), active };
                // A hint: dropped rather than waited for when the relay is behind.
                self.state.relay.post(cmd).await;
            }
            CounsellorRequest::Ping {} => {
                self.me.send(&ServerEvent::Pong {});
            }
            CounsellorRequest::Escalate { contact_id, kind, risk, reason, district } => {
                let staff = crate::state::access::Staff::on_socket(self.user.clone(), "agent");
                let req = crate::casework::escalation::EscalateRequest { contact_id: contact_id.clone(), kind, risk, reason, district };
                match crate::casework::escalation::escalate(&self.state, &staff, req).await {
                    Ok((e, suggestions)) => {
                        self.me.send(&ServerEvent::Escalated {
                            escalation_id: e.id,
                            contact_id: e.contact_id,
                            kind: e.kind,
                            risk: e.risk,
                            suggestions,
                        });
                    }
                    Err(err) => self.error_about(err.code, err.message, contact_id),
                }
            }
            CounsellorRequest::CallHold { contact_id } => self.call_control(contact_id, CallAction::Hold).await,
            CounsellorRequest::CallResume { contact_id } => self.call_control(contact_id, CallAction::Resume).await,
            CounsellorRequest::CallHangup { contact_id } => self.call_control(contact_id, CallAction::Hangup).await,
            CounsellorRequest::FlagAbusive { contact_id, reason } => {
                let staff = crate::state::access::Staff::on_socket(self.user.clone(), "agent");
                match crate::safety::abuse::flag(&self.state, &staff, &contact_id, &reason).await {
                    Ok(f) => {
                        self.me.send(&ServerEvent::Flagged { flag_id: f.id, contact_id: f.contact_id });
                    }
                    Err(err) => self.error_about(err.code, err.message, contact_id),
                }
            }
            CounsellorRequest::Transfer { contact_id, counsellor_id, helpline, reason, warm } => {
                let req = handover::TransferRequest { contact_id: contact_id.clone(), counsellor_id, helpline, reason, warm };
                let result = handover::transfer(&self.state, &self.staff(), req).await;
                self.answered(result, contact_id);
            }
            CounsellorRequest::TransferAccept { contact_id } => self.answer(contact_id, Answer::Accept).await,
            CounsellorRequest::TransferDecline { contact_id } => self.answer(contact_id, Answer::Decline).await,
            CounsellorRequest::TransferCancel { contact_id } => self.answer(contact_id, Answer::Cancel).await,
            CounsellorRequest::Consult { contact_id, counsellor_id, text } => {
                let result = handover::consult(&self.state, &self.staff(), &contact_id, &counsellor_id, &text).await;
                self.answered(result, contact_id);
            }
        }
    }

    async fn on_close(&mut self) {
        self.state.hub.detach_staff(&self.user.id, self.me.id);
        if self.state.hub.detach_counsellor(&self.user.id, self.me.id) == 0 {
            self.state.engine.input(Input::CounsellorDisconnected { counsellor: self.key }).await;
            tracing::info!(user = %self.user.username, "counsellor disconnected");
        }
    }
}

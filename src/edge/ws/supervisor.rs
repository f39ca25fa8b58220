//! The supervisor's socket (`/ws/supervisor`, supervisors and admins): the live board, alerts, and interventions.

use std::collections::{BTreeSet, HashMap};

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{limited, run_session, Handler};
use crate::chat::engine_task::{contact_key, counsellor_key, status_of};
use crate::chat::hub::Outbox;
use crate::chat::relay::RelayCommand;
use crate::protocol::{check_message, ErrorCode, Party, ServerEvent, SupervisorRequest};
use crate::routing::{Input, TransferTarget, PRIORITY_FRONT};
use crate::state::access::{counsellor_in_scope, Scope};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::users::{Role, User};

/// `GET /ws/supervisor?ticket=…` (or bearer header): supervisors and admins only (403 otherwise).
#[utoipa::path(get, path = "/ws/supervisor", tag = "websocket",
    description = "The supervisors' dashboard socket: the live board, alerts, interventions. Frames: docs/protocol.md.",
    params(("ticket" = Option<String>, Query, description = "a single-use ticket from `POST /api/v1/ws-ticket` (or send the bearer token)")),
    security(("bearer" = []), ()),
    responses(
        (status = 101, description = "Switching Protocols: the socket is open; frames as in docs/protocol.md"),
        (status = 400, description = "not a WebSocket upgrade request"),
        (status = 401, description = "no valid ticket or token", body = crate::state::error::ErrorBody),
        (status = 403, description = "supervisors and admins only", body = crate::state::error::ErrorBody),
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
    if !matches!(user.role, Role::Supervisor | Role::Admin) {
        return AppError::forbidden("supervisors and admins only").into_response();
    }
    limited(ws).on_upgrade(move |socket| serve(socket, state, user, slot))
}

async fn serve(socket: WebSocket, state: AppState, user: User, _slot: crate::auth::guard::SocketSlot) {
    let (me, inbox) = state.hub.new_connection();
    let scope = Scope::of(&user);
    // Alerts from now on (attached before the first board is built: an alert raised while it is built
    // would otherwise reach no one), then the board at once, then every second from the feed.
    state.hub.attach_supervisor(me.clone(), scope.list());
    state.hub.attach_staff(&user.id, me.clone());
    if let Some(snapshot) = state.engine.snapshot().await {
        let board = crate::supervision::board::build(&state, &snapshot, &HashMap::new()).await;
        me.send(&ServerEvent::Dashboard(Box::new(board.scoped(scope.list().as_deref()))));
    }
    tracing::info!(user = %user.username, "supervisor connected");
    let mut session = SupervisorSession { state: state.clone(), me: me.clone(), user, scope, watching: BTreeSet::new() };
    run_session(socket, me, inbox, &mut session, &state).await;
}

struct SupervisorSession {
    state: AppState,
    me: Outbox,
    user: User,
    scope: Scope,
    watching: BTreeSet<String>,
}

impl SupervisorSession {
    /// An error about a message (`client_id`), a contact or an escalation: the answer to it.
    fn error(&self, code: ErrorCode, message: impl Into<String>, reference: &str) {
        self.me.answer(reference, &ServerEvent::error_about(code, message, reference));
    }

    fn done(&self, request: &str, reference: &str) {
        self.me.send(&ServerEvent::Done { request: request.into(), reference: Some(reference.into()) });
    }

    /// Checks the contact exists, is open, and is in a helpline this supervisor sees; returns its helpline.
    async fn contact_in_scope(&self, contact_id: &str, reference: &str) -> Option<String> {
        let record = match self.state.store.contacts().contact(contact_id).await {
            Ok(Some(r)) if r.is_open() => r,
            Ok(_) => {
                self.error(ErrorCode::UnknownContact, "no such open contact", reference);
                return None;
            }
            Err(err) => {
                tracing::error!(error = %err, "contact lookup failed");
                self.error(ErrorCode::Unavailable, "try again", reference);
                return None;
            }
        };
        if !self.scope.covers(&record.helpline) {
            // As for a contact that does not exist: existence outside one's helplines is not disclosed.
            self.audit("supervise_denied", contact_id, Some("contact outside the supervisor's helplines")).await;
            self.error(ErrorCode::UnknownContact, "no such open contact", reference);
            return None;
        }
        Some(record.helpline)
    }

    /// The engine key of a counsellor this supervisor may act on (a counsellor serving one of their
    /// helplines first-line); anyone else is answered as unknown (`not_found`), audited.
    async fn counsellor_in_scope(&self, counsellor_id: &str, reference: &str) -> Option<crate::routing::CounsellorId> {
        let key = counsellor_key(counsellor_id);
        let found = match self.state.store.accounts().user(counsellor_id).await {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "counsellor lookup failed");
                self.error(ErrorCode::Unavailable, "try again", reference);
                return None;
            }
        };
        match (key, found) {
            (Some(key), Some(u)) if counsellor_in_scope(&self.scope, &u) => Some(key),
            (_, found) => {
                if found.is_some() {
                    self.audit("supervise_denied", counsellor_id, Some("counsellor outside the supervisor's helplines")).await;
                }
                self.error(ErrorCode::NotFound, "no such counsellor", reference);
                None
            }
        }
    }

    async fn audit(&self, action: &str, target: &str, detail: Option<&str>) {
        let now = self.state.clock.now_ms();
        if let Err(err) = self.state.store.audit_log().audit(now, &self.user.id, action, Some(target), detail).await {
            tracing::error!(error = %err, "audit write failed");
        }
    }

    /// Sends an intervention to the engine; reports refusals as errors. True when carried out.
    async fn intervene(&self, input: Input, reference: &str) -> bool {
        match crate::casework::handover::intervene(&self.state, input).await {
            Ok(()) => true,
            Err(err) => {
                self.error(err.code, err.message, reference);
                false
            }
        }
    }

    async fn relay_ok(&self, cmd: RelayCommand, done: oneshot::Receiver<bool>, reference: &str) -> bool {
        if !self.state.relay.send(cmd).await || !done.await.unwrap_or(false) {
            self.error(ErrorCode::UnknownContact, "no open conversation with that contact", reference);
            return false;
        }
        true
    }
}

impl Handler for SupervisorSession {
    type Request = SupervisorRequest;

    fn awaits_answer(request: &SupervisorRequest) -> Option<String> {
        match request {
            SupervisorRequest::Message { client_id, .. } => Some(client_id.clone()),
            _ => None,
        }
    }

    async fn on_request(&mut self, request: SupervisorRequest) {
        match request {
            SupervisorRequest::Ping {} => {
                self.me.send(&ServerEvent::Pong {});
            }
            SupervisorRequest::SetStatus { counsellor_id, status } => {
                let Some(key) = self.counsellor_in_scope(&counsellor_id, &counsellor_id).await else {
                    return;
                };
                if self.intervene(Input::SetStatus { counsellor: key, status: status_of(status) }, &counsellor_id).await {
                    self.audit("set_status", &counsellor_id, Some(status.as_str())).await;
                    self.done("set_status", &counsellor_id);
                }
            }
            SupervisorRequest::ToFront { contact_id } => {
                let (Some(key), Some(_)) = (contact_key(&contact_id), self.contact_in_scope(&contact_id, &contact_id).await) else {
                    return;
                };
                let waiting = self.state.engine.snapshot().await.is_some_and(|s| s.waiting.iter().any(|w| w.contact == key));
                if !waiting {
                    return self.error(ErrorCode::NotAllowed, "the contact is no longer waiting", &contact_id);
                }
                if self.intervene(Input::SetPriority { contact: key, priority: PRIORITY_FRONT }, &contact_id).await {
                    self.audit("to_front", &contact_id, None).await;
                    self.done("to_front", &contact_id);
                }
            }
            SupervisorRequest::OfferTo { contact_id, counsellor_id } => {
                let (Some(key), Some(_)) = (contact_key(&contact_id), self.contact_in_scope(&contact_id, &contact_id).await) else {
                    return;
                };
                let Some(target) = self.counsellor_in_scope(&counsellor_id, &counsellor_id).await else {
                    return;
                };
                if self.intervene(Input::OfferTo { contact: key, counsellor: target }, &contact_id).await {
                    self.audit("offer_to", &contact_id, Some(&counsellor_id)).await;
                    self.done("offer_to", &contact_id);
                }
            }
            SupervisorRequest::Transfer { contact_id, counsellor_id, helpline } => {
                if counsellor_id.is_some() == helpline.is_some() {
                    return self.error(ErrorCode::BadField, "give exactly one of counsellor_id and helpline", &contact_id);
                }
                if helpline.as_ref().is_some_and(|h| !self.state.helplines.iter().any(|x| x.name == *h)) {
                    return self.error(ErrorCode::UnknownHelpline, "no such helpline", &contact_id);
                }
                let (Some(key), Some(_)) = (contact_key(&contact_id), self.contact_in_scope(&contact_id, &contact_id).await) else {
                    return;
                };
                // A contact goes to any helpline (a referral), but to a counsellor only of one's own helplines.
                let to = match (counsellor_id, helpline) {
                    (Some(c), _) => match self.counsellor_in_scope(&c, &contact_id).await {
                        Some(c) => TransferTarget::Counsellor(c),
                        None => return,
                    },
                    (None, Some(h)) => TransferTarget::Helpline(h),
                    (None, None) => return,
                };
                let detail = format!("{to:?}");
                if self.intervene(Input::Transfer { contact: key, to }, &contact_id).await {
                    self.audit("transfer", &contact_id, Some(&detail)).await;
                    self.done("transfer", &contact_id);
                }
            }
            SupervisorRequest::Monitor { contact_id } => {
                if self.contact_in_scope(&contact_id, &contact_id).await.is_none() {
                    return;
                }
                let (done, ok) = oneshot::channel();
                let cmd = RelayCommand::Monitor { contact: contact_id.clone(), outbox: self.me.clone(), done };
                if self.relay_ok(cmd, ok, &contact_id).await {
                    self.watching.insert(contact_id.clone());
                    self.state.hub.set_watch(self.me.id, &contact_id, None);
                    self.audit("monitor", &contact_id, None).await;
                }
            }
            SupervisorRequest::Unmonitor { contact_id } => {
                self.watching.remove(&contact_id);
                self.state.hub.unset_watch(self.me.id, &contact_id);
                self.state.relay.send(RelayCommand::Unmonitor { contact: contact_id.clone(), conn: self.me.id }).await;
                self.done("unmonitor", &contact_id);
            }
            SupervisorRequest::Whisper { contact_id, text } => {
                if let Err(e) = check_message("whisper", &text) {
                    return self.error(e.code, e.message, &contact_id);
                }
                if self.contact_in_scope(&contact_id, &contact_id).await.is_none() {
                    return;
                }
                let (done, ok) = oneshot::channel();
                let cmd = RelayCommand::Whisper {
                    contact: contact_id.clone(),
                    from_name: self.user.display_name.clone(),
                    text,
                    outbox: self.me.clone(),
                    done,
                };
                if self.relay_ok(cmd, ok, &contact_id).await {
                    self.audit("whisper", &contact_id, None).await;
                    self.done("whisper", &contact_id);
                }
            }
            SupervisorRequest::Join { contact_id } => {
                if self.contact_in_scope(&contact_id, &contact_id).await.is_none() {
                    return;
                }
                let (done, ok) = oneshot::channel();
                let cmd = RelayCommand::Join {
                    contact: contact_id.clone(),
                    supervisor: self.user.id.clone(),
                    name: self.user.display_name.clone(),
                    outbox: self.me.clone(),
                    done,
                };
                if self.relay_ok(cmd, ok, &contact_id).await {
                    self.watching.insert(contact_id.clone());
                    self.state.hub.set_watch(self.me.id, &contact_id, Some(self.user.id.clone()));
                    self.audit("join", &contact_id, None).await;
                    self.done("join", &contact_id);
                }
            }
            SupervisorRequest::Message { contact_id, client_id, text } => {
                if let Err(e) = check_message(&client_id, &text) {
                    return self.error(e.code, e.message, &client_id);
                }
                if self.contact_in_scope(&contact_id, &client_id).await.is_none() {
                    return;
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
            SupervisorRequest::Acknowledge { escalation_id } => {
                let staff = crate::state::access::Staff::on_socket(self.user.clone(), "supervisor");
                match crate::casework::escalation::acknowledge_as(&self.state, &staff, &escalation_id).await {
                    Ok(_) => self.done("acknowledge", &escalation_id),
                    Err(err) => self.error(err.code, err.message, &escalation_id),
                }
            }
        }
    }

    async fn on_close(&mut self) {
        self.state.hub.detach_supervisor(self.me.id);
        self.state.hub.detach_staff(&self.user.id, self.me.id);
        for contact in std::mem::take(&mut self.watching) {
            self.state.hub.unset_watch(self.me.id, &contact);
            self.state.relay.send(RelayCommand::Unmonitor { contact, conn: self.me.id }).await;
        }
    }
}

//! Phone calls: the gateway interface for telephone exchanges (events in, durable commands out), caller-number hashing, repeat callers' history, console call controls, call records and offline calls.
//!
//! The audio stays in the exchange. An exchange's adapter authenticates with its service token
//! (`helpline gateway add NAME`) and sends events on `/ws/telephony` or `POST /api/v1/telephony/events`.
//! Every event is stored (once: its `event_id` is remembered) before it is acknowledged; a call
//! becomes a contact with channel `call` and is routed by the same engine as chats.

pub mod admin;
pub mod offline;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokio::sync::oneshot;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::channel::ContactChannel;
use crate::chat::engine_task::{contact_key, counsellor_key, EngineCommand};
use crate::chat::exchange::Phone;
use crate::chat::exchange::{caller_history, deliver, deliver_pending_to, new_command, release_stale, CallInfo};
use crate::protocol::{decode, At, ErrorCode, TelephonyCommand, TelephonyEvent};
use crate::routing::{Input, NewContact};
use crate::state::access::{hidden, supervised_contact, AuthUser, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::calls::{CallEvent, CallRecord, NewCall, Stored};
use crate::store::commands::Acked;
use crate::store::contacts::NewContactRecord;
use crate::store::gateways::Gateway;
use crate::store::new_id;
use crate::store::users::Role;
use offline::OfflineContact;

/// Name of the HMAC key for caller numbers in `server_secrets`.
const CALLER_KEY: &str = crate::auth::keyed::CALLER_NUMBER_KEY;

/// A socket of `gateway` opened: every command it has not acknowledged goes out first, in order
/// (those another open socket holds excepted).
pub async fn deliver_pending(state: &AppState, gateway: &str, conn: crate::chat::hub::ConnId) {
    release_stale(&state.store, &state.hub, gateway, &[], 0).await;
    deliver_pending_to(&state.store, &state.hub, state.clock.now_ms(), gateway, Some(conn)).await;
}

pub use crate::auth::keyed::{caller_hash, normalise_number};

/// The keyed hash of a number's digits (the same key and hash as a caller's number): a messaging
/// channel's sender is recognised by it, never by the number.
pub async fn number_hash(state: &AppState, digits: &str) -> Result<String, AppError> {
    let key = state.store.secrets().secret_or_create(CALLER_KEY, state.clock.now_ms(), crate::auth::random_secret).await?;
    Ok(caller_hash(&key, digits))
}

/// The hash and the last two digits of a caller's number (both None when withheld).
async fn caller_identity(state: &AppState, caller: Option<&str>) -> Result<(Option<String>, Option<String>), AppError> {
    let Some(digits) = caller.and_then(normalise_number) else {
        return Ok((None, None));
    };
    let key = state.store.secrets().secret_or_create(CALLER_KEY, state.clock.now_ms(), crate::auth::random_secret).await?;
    let last2 = digits[digits.len().saturating_sub(2)..].to_string();
    Ok((Some(caller_hash(&key, &digits)), Some(last2)))
}

/// The gateway a bearer service token belongs to, or 401.
pub async fn authenticate_gateway(state: &AppState, headers: &HeaderMap) -> Result<Gateway, AppError> {
    let token = crate::state::access::bearer(headers).ok_or_else(|| AppError::unauthorized("a gateway bearer token is required"))?;
    state
        .store
        .exchanges()
        .gateway_by_token_hash(&crate::auth::token_hash(token))
        .await?
        .ok_or_else(|| AppError::unauthorized("unknown or revoked gateway token"))
}

fn error_frame(code: ErrorCode, message: impl Into<String>, reference: &str) -> TelephonyCommand {
    TelephonyCommand::Error { code, message: message.into(), reference: Some(reference.to_string()), retry_after_ms: None }
}

/// Handles one event from `gateway`: stores it (with its effect) and then tells the router.
/// Returns the frames to answer with: `ack` once stored, plus an `error` for an orphan; only an
/// `error` when nothing was stored.
pub async fn handle_event(state: &AppState, gateway: &Gateway, event: TelephonyEvent) -> Vec<TelephonyCommand> {
    let event_id = match &event {
        TelephonyEvent::CallOffered { event_id, .. }
        | TelephonyEvent::CallAnswered { event_id, .. }
        | TelephonyEvent::CallEnded { event_id, .. }
        | TelephonyEvent::CallAbandoned { event_id, .. } => event_id.clone(),
        TelephonyEvent::Ping {} => return vec![TelephonyCommand::Pong {}],
        TelephonyEvent::CommandAck { command_id } => return command_ack(state, gateway, command_id).await,
    };
    if event_id.is_empty() || event_id.len() > 128 {
        return vec![error_frame(ErrorCode::BadField, "event_id must be 1 to 128 bytes", &event_id)];
    }
    match apply(state, gateway, event).await {
        Ok(frames) => frames,
        Err(e) => vec![error_frame(e.code, e.message, &event_id)],
    }
}

/// `command_ack`: the command is never sent again (a repeat changes nothing); unknown ids get `error`.
async fn command_ack(state: &AppState, gateway: &Gateway, command_id: &str) -> Vec<TelephonyCommand> {
    if command_id.is_empty() || command_id.len() > 64 {
        return vec![error_frame(ErrorCode::BadField, "command_id must be 1 to 64 bytes", command_id)];
    }
    match state.store.commands().ack_command(&gateway.id, command_id, state.clock.now_ms()).await {
        Ok(Acked::Now | Acked::Before) => {
            state.hub.gateways.set_acks(&gateway.id);
            Vec::new()
        }
        Ok(Acked::Unknown) => vec![error_frame(ErrorCode::NotFound, "no such command for this exchange", command_id)],
        Err(e) => {
            let e = AppError::from(e);
            vec![error_frame(e.code, e.message, command_id)]
        }
    }
}

async fn apply(state: &AppState, gateway: &Gateway, event: TelephonyEvent) -> Result<Vec<TelephonyCommand>, AppError> {
    let now = state.clock.now_ms();
    let (event_id, call_id, at, what) = match event {
        TelephonyEvent::CallOffered { event_id, call_id, dialled, caller, language, triage_digit, at } => {
            let danger = triage_digit.as_deref().and_then(crate::routing::triage::danger_from_digit);
            return offered(state, gateway, event_id, call_id, dialled, caller, language, danger, at).await;
        }
        TelephonyEvent::CallAnswered { event_id, call_id, at } => (event_id, call_id, at, CallEvent::Answered),
        TelephonyEvent::CallEnded { event_id, call_id, by, at } => (event_id, call_id, at, CallEvent::Ended { by: by.as_str() }),
        TelephonyEvent::CallAbandoned { event_id, call_id, at } => (event_id, call_id, at, CallEvent::Abandoned),
        TelephonyEvent::Ping {} => return Ok(vec![TelephonyCommand::Pong {}]),
        TelephonyEvent::CommandAck { command_id } => return Ok(command_ack(state, gateway, &command_id).await),
    };
    check_call_id(&call_id)?;
    let ack = TelephonyCommand::Ack { event_id: event_id.clone() };
    match state.store.calls().record_call_event(&gateway.id, &event_id, now, &call_id, at.0, what).await? {
        Stored::Repeat => Ok(vec![ack]),
        Stored::Orphan => {
            tracing::warn!(gateway = %gateway.name, %call_id, kind = what.kind(), "telephony event for an unknown call, stored as an orphan");
            Ok(vec![ack, error_frame(ErrorCode::UnknownCall, format!("no call {call_id:?}; the event is stored as an orphan"), &call_id)])
        }
        Stored::New(contact) => {
            let open = contact.state == "queued" || contact.state == "active";
            if let (true, Some(key)) = (open, contact_key(&contact.contact_id)) {
                let by_counsellor = matches!(what, CallEvent::Ended { by: "counsellor" });
                let counsellor = contact.counsellor_id.as_deref().and_then(counsellor_key);
                let input = match (what, by_counsellor, counsellor) {
                    (CallEvent::Answered, ..) => None,
                    (_, true, Some(counsellor)) if contact.state == "active" => Some(Input::EndByCounsellor { counsellor, contact: key }),
                    _ => Some(Input::EndByCaller { contact: key }),
                };
                if let Some(input) = input {
                    state.engine.input(input).await;
                }
            }
            Ok(vec![ack])
        }
    }
}

fn check_call_id(call_id: &str) -> Result<(), AppError> {
    if call_id.is_empty() || call_id.len() > 128 {
        return Err(AppError::bad_field("call_id must be 1 to 128 bytes"));
    }
    Ok(())
}

/// `call_offered`: find the helpline and language, store the call, queue it.
#[allow(clippy::too_many_arguments)]
async fn offered(
    state: &AppState,
    gateway: &Gateway,
    event_id: String,
    call_id: String,
    dialled: String,
    caller: Option<String>,
    language: Option<String>,
    danger: Option<bool>,
    at: At,
) -> Result<Vec<TelephonyCommand>, AppError> {
    check_call_id(&call_id)?;
    if dialled.len() > 64 {
        return Err(AppError::bad_field("dialled is limited to 64 characters"));
    }
    let now = state.clock.now_ms();
    let number = normalise_number(&dialled).unwrap_or_default();
    let (helpline, config_error) = match state.store.directory().helpline_for_number(&number).await? {
        Some(h) => (h, None),
        None => {
            let fallback = state.store.directory().default_call_helpline().await?;
            let h = fallback
                .filter(|f| state.helplines.iter().any(|h| &h.name == f))
                .or_else(|| state.helplines.first().map(|h| h.name.clone()))
                .ok_or_else(|| AppError::new(ErrorCode::Unavailable, "no helpline is configured"))?;
            let problem = format!("dialled number {dialled:?} is not in the map; answered by {h}");
            tracing::error!(gateway = %gateway.name, %dialled, helpline = %h, "configuration error: unknown dialled number");
            (h, Some(problem))
        }
    };
    let h = state
        .helplines
        .iter()
        .find(|x| x.name == helpline)
        .ok_or_else(|| AppError::new(ErrorCode::UnknownHelpline, format!("helpline {helpline:?} is not configured")))?;
    // The IVR's language when the helpline serves it; otherwise the helpline's first language.
    let language = language.filter(|l| h.languages.contains(l)).or_else(|| h.languages.first().cloned()).unwrap_or_default();
    let (hash, last2) = caller_identity(state, caller.as_deref()).await?;
    let senior_only = match crate::safety::abuse::call_door(state, hash.as_deref(), &helpline, now).await {
        crate::safety::abuse::Door::Open { senior_only } => senior_only,
        crate::safety::abuse::Door::Refused { block_id } => {
            state.store.abuse().record_blocked_call(&block_id, &gateway.id, &event_id, &call_id, now, at.0).await?;
            tracing::info!(gateway = %gateway.name, %call_id, %helpline, "a call from a blocked number was rejected");
            let reject = TelephonyCommand::Reject { call_id, reason: "blocked".into() };
            return Ok(vec![TelephonyCommand::Ack { event_id }, reject]);
        }
    };
    let id = new_id();
    let record = NewContactRecord {
        id: id.clone(),
        channel: Phone::KIND.into(),
        helpline: helpline.clone(),
        language: language.clone(),
        priority: 0,
        // Calls have no resume token; the column is unique, so a random one that nobody holds.
        resume_token_hash: crate::auth::token_hash(&crate::auth::random_secret()),
        queued_at: now,
    };
    let call = NewCall {
        contact: record,
        gateway_id: gateway.id.clone(),
        call_id: call_id.clone(),
        dialled,
        caller_hash: hash,
        caller_last2: last2.clone(),
        offered_at: at.0,
        config_error,
        senior_only,
    };
    let ack = TelephonyCommand::Ack { event_id: event_id.clone() };
    match state.store.calls().record_call_offered(&event_id, now, &call).await? {
        Stored::New(()) => {}
        Stored::Repeat | Stored::Orphan => return Ok(vec![ack]),
    }
    let (repeat, earlier) = caller_history(&state.store, &id).await;
    let key = contact_key(&id).ok_or_else(AppError::internal)?;
    let contact = NewContact {
        id: key,
        channel: Phone.rules(),
        helpline,
        language,
        priority: 0,
        queued_at: now,
        caller_connected: true,
        senior_only,
    };
    let info = CallInfo { gateway_id: gateway.id.clone(), call_id, caller_last2: last2, repeat, earlier };
    let (done, queued) = oneshot::channel();
    state.engine.send(EngineCommand::StartCall { contact, call: info, done }).await;
    let _ = queued.await;
    // The IVR's triage answer, where the helpline asks (the engine ignores it elsewhere).
    if let Some(danger) = danger {
        state.engine.input(crate::routing::Input::Triage { contact: key, danger }).await;
    }
    Ok(vec![ack])
}

/// The telephony routes, each handler with its OpenAPI description (tag `telephony`; the socket is
/// [`crate::edge::ws::telephony`]).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(webhook)).routes(routes!(record_offline)).routes(routes!(call_record)).merge(admin::router())
}

/// An exchange's time in the OpenAPI document: RFC 3339 or milliseconds since the epoch (sent back as RFC 3339).
impl utoipa::PartialSchema for At {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::Integer))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .description(Some("RFC 3339, or milliseconds since the Unix epoch"))
            .into()
    }
}

impl ToSchema for At {}

/// The answer to a webhook event.
#[derive(Serialize, ToSchema)]
struct Frames {
    /// What a socket would have received: `ack` (or an `error`), then every command not acknowledged yet, oldest first.
    #[schema(value_type = Vec<TelephonyCommand>)]
    frames: Vec<serde_json::Value>,
}

/// `POST /api/v1/telephony/events` (gateway bearer token): one event; the answer lists the frames
/// a socket would have received (`ack`, an `error`, and commands waiting for this exchange).
#[utoipa::path(post, path = "/api/v1/telephony/events", tag = "telephony", security(("gateway" = [])), request_body = TelephonyEvent,
    responses(
        (status = 200, description = "stored (once per `event_id`); the frames a socket would have received", body = Frames),
        (status = 400, description = "`bad_json`, `unknown_type` or `bad_field`", body = ErrorBody),
        (status = 404, description = "`unknown_call`: the event names a call this server does not know (stored as an orphan)", body = ErrorBody),
    ))]
async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, AppError> {
    let gateway = authenticate_gateway(&state, &headers).await?;
    let text = std::str::from_utf8(&body).map_err(|_| AppError::new(ErrorCode::BadJson, "the body is not UTF-8"))?;
    let event: TelephonyEvent = decode(text).map_err(|e| AppError::new(e.code, e.message))?;
    let frames = handle_event(&state, &gateway, event).await;
    let refused = frames.first().and_then(|f| match f {
        TelephonyCommand::Error { code, message, .. } => Some(AppError::new(*code, message.clone())),
        _ => None,
    });
    if let Some(e) = refused {
        return Err(e);
    }
    let mut frames: Vec<serde_json::Value> = frames.iter().filter_map(|f| serde_json::to_value(f).ok()).collect();
    frames.extend(pending_for_webhook(&state, &gateway).await);
    Ok(Json(Frames { frames }).into_response())
}

/// The commands a webhook answer carries: every one not acknowledged yet, oldest first (again in
/// each answer until acknowledged). For an exchange that does not acknowledge commands, being in
/// an answer counts as acknowledged.
async fn pending_for_webhook(state: &AppState, gateway: &Gateway) -> Vec<serde_json::Value> {
    let read = async {
        let pending = state.store.commands().pending_commands(&gateway.id).await?;
        let acks = state.store.commands().gateway_acks_commands(&gateway.id).await?;
        Ok::<_, crate::store::StoreError>((pending, acks))
    };
    let (pending, acks) = match read.await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(error = %err, gateway = %gateway.name, "reading pending commands failed; they come with a later answer");
            return Vec::new();
        }
    };
    if !acks {
        let ids: Vec<String> = pending.iter().map(|c| c.id.clone()).collect();
        if let Err(err) = state.store.commands().commands_handed_over(&gateway.id, &ids, state.clock.now_ms()).await {
            tracing::error!(error = %err, gateway = %gateway.name, "marking commands handed over failed");
        }
    }
    pending.into_iter().filter_map(|c| serde_json::from_str(&c.frame).ok()).collect()
}

/// What a counsellor asks of their own active call from the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    Hold,
    Resume,
    Hangup,
}

impl CallAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CallAction::Hold => "hold",
            CallAction::Resume => "resume",
            CallAction::Hangup => "hangup",
        }
    }
}

/// `call_hold`, `call_resume`, `call_hangup` from a counsellor: only on their own active call
/// still connected at the exchange. Stores the command (`hold`, `unhold`, `hangup`) with a line in
/// the contact's log, then hands it to the exchange. The exchange's `call_ended` closes the record.
pub async fn call_control(state: &AppState, counsellor: &str, contact_id: &str, action: CallAction) -> Result<(), AppError> {
    let not_yours = || AppError::new(ErrorCode::UnknownContact, "no such active call of yours");
    let contact = state.store.contacts().contact(contact_id).await?.ok_or_else(not_yours)?;
    if contact.state != "active" || contact.counsellor_id.as_deref() != Some(counsellor) {
        return Err(not_yours());
    }
    if contact.channel != Phone::KIND {
        return Err(AppError::new(ErrorCode::NotAllowed, "this conversation is a chat, not a phone call"));
    }
    let record = state.store.calls().call_record(contact_id).await?.ok_or_else(not_yours)?;
    let Some(gateway_id) = record.gateway_id else {
        return Err(AppError::new(ErrorCode::NotAllowed, "this call was recorded offline"));
    };
    if record.ended_at.is_some() {
        return Err(AppError::new(ErrorCode::NotAllowed, "the call has already ended at the exchange"));
    }
    let call = CallInfo { gateway_id, call_id: record.call_id, caller_last2: None, repeat: 0, earlier: Vec::new() };
    let now = state.clock.now_ms();
    const HOLDS: &[&str] = &["hold", "unhold"];
    let command = new_command(&call, Some(contact_id.to_string()), now, HOLDS, |command_id, call_id| match action {
        CallAction::Hold => TelephonyCommand::Hold { command_id, call_id },
        CallAction::Resume => TelephonyCommand::Unhold { command_id, call_id },
        CallAction::Hangup => TelephonyCommand::Hangup { command_id, call_id },
    });
    let log = match action {
        CallAction::Hold => "call_hold",
        CallAction::Resume => "call_resume",
        CallAction::Hangup => "call_hangup",
    };
    state.store.commands().issue_command(&command, Some((log, counsellor))).await?;
    deliver(&state.store, &state.hub, now, &command.gateway_id, &command.id).await;
    Ok(())
}

/// `GET /api/v1/calls/{contact_id}`: a call's record, for supervisors of its helpline and admins (audited).
/// The caller's number is never shown: only its last two digits (its keyed hash stays in the database).
#[utoipa::path(get, path = "/api/v1/calls/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "the call's contact id")),
    responses(
        (status = 200, description = "the call record", body = CallRecord),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such call, or one in a helpline you do not supervise", body = ErrorBody),
    ))]
async fn call_record(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    staff.supervisor_only()?;
    supervised_contact(&state, &staff, &id, "view_call")
        .await
        .map_err(|e| if e.code == ErrorCode::NotFound { hidden("call") } else { e })?;
    let record = state.store.calls().call_record(&id).await?.ok_or_else(|| hidden("call"))?;
    staff.audit_or_refuse(&state, "view_call", &id, None).await?;
    Ok(Json(record).into_response())
}

/// `POST /api/v1/contacts` (counsellor): records a call handled outside the system (a backup
/// phone during an outage) so statistics stay complete. 422 with `fields` for bad values.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "telephony", security(("bearer" = [])), request_body = OfflineContact,
    responses(
        (status = 201, description = "the call, recorded as offline", body = CallRecord),
        (status = 400, description = "`bad_field`: the body does not parse", body = ErrorBody),
        (status = 403, description = "counsellors record their own calls, for the helplines they serve", body = ErrorBody),
        (status = 422, description = "`bad_field` with `fields`: each bad field's error", body = ErrorBody),
    ))]
async fn record_offline(State(state): State<AppState>, auth: AuthUser, body: axum::body::Bytes) -> Result<Response, AppError> {
    if auth.user.role != Role::Counsellor {
        return Err(AppError::forbidden("counsellors record their own calls"));
    }
    let req: OfflineContact = serde_json::from_slice(&body).map_err(|e| AppError::bad_field(format!("bad contact: {e}")))?;
    match offline::record(&state, &auth.user, req).await {
        Ok(call) => Ok((StatusCode::CREATED, Json(call)).into_response()),
        Err(offline::Refused::Error(err)) => Err(err),
        Err(offline::Refused::Fields(fields)) => {
            let body = serde_json::json!({ "code": ErrorCode::BadField, "message": "some fields are not valid", "fields": fields });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_reduced_to_digits_and_hashed_with_the_key() {
        assert_eq!(normalise_number("+373 (22) 123-456").as_deref(), Some("37322123456"));
        assert_eq!(normalise_number("anonymous"), None);
        let a = caller_hash("k1", "37322123456");
        assert_eq!(a, caller_hash("k1", "37322123456"));
        assert_ne!(a, caller_hash("k2", "37322123456"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("123456"));
    }
}

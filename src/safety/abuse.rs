//! Abusive contacts: counsellors flag them; supervisors block the caller's keyed identifier for a set time (refused calmly) or route them to senior counsellors instead; the check at the door for chats and calls.
//!
//! A block is made from a flagged contact, so nobody sees or types an identifier: for a call it is
//! the caller number's HMAC (`calls.caller_hash`), for a chat the HMAC of the client network (the
//! IPv4 address or IPv6 /64 that [`crate::auth::guard`] counts), keyed with a server secret and stored on the
//! contact. A block holds for the contact's helpline only, until it expires or is lifted. An
//! abusive-seeming caller may still be a victim: mode `senior` keeps them reachable, by the senior
//! counsellors only.

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::access::{check_text, parse_body, Staff};
use crate::state::AppState;
use crate::state::error::{AppError, ErrorBody};
use crate::protocol::{rfc3339, ErrorCode, ServerEvent};
use crate::store::abuse::{BlockRecord, FlagRecord};
use crate::store::new_id;
use crate::store::users::Role;

/// Name of the HMAC key for chat callers' networks in `server_secrets`.
const ADDRESS_KEY: &str = "caller_address_hmac";
/// Shortest and longest block (a block is reviewed again when it runs out).
pub const MIN_BLOCK_SECS: i64 = 60;
pub const MAX_BLOCK_SECS: i64 = 90 * 24 * 3600;

/// What a chat's caller is told when a block refuses the chat, in the widget's languages.
pub fn unavailable_message(language: &str) -> &'static str {
    match language {
        "ro" => "Nu vă putem prelua conversația acum. Dacă sunteți în pericol, sunați la 112.",
        "ru" => "Сейчас мы не можем принять ваш чат. Если вы в опасности, позвоните 112.",
        "uk" => "Зараз ми не можемо прийняти ваш чат. Якщо ви в небезпеці, телефонуйте 112.",
        _ => "We cannot take your chat right now. If you are in danger, call 112.",
    }
}

/// The HMAC-SHA256 of a client network under the server's key, hex (the address is never stored).
pub fn address_hash(key: &str, network: IpAddr) -> String {
    crate::auth::keyed::caller_hash(key, &format!("net:{network}"))
}

/// What the door says to a new contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// Queue it; only seniors may take it when `senior_only`.
    Open { senior_only: bool },
    /// A block refuses it (calmly).
    Refused { block_id: String },
}

impl Door {
    fn of(block: Option<BlockRecord>) -> Door {
        match block {
            Some(b) if b.mode == "block" => Door::Refused { block_id: b.id },
            Some(_) => Door::Open { senior_only: true },
            None => Door::Open { senior_only: false },
        }
    }
}

/// A new chat from `network` to `helpline`: its caller's keyed identifier (to store on the contact),
/// and what the door says. If the database cannot answer, the chat is let in (a caller is never
/// refused because of a fault) and the error logged.
pub async fn chat_door(state: &AppState, network: IpAddr, helpline: &str, now: i64) -> (Option<String>, Door) {
    let key = match state.store.secrets().secret_or_create(ADDRESS_KEY, now, crate::auth::random_secret).await {
        Ok(k) => k,
        Err(err) => {
            tracing::error!(error = %err, "reading the caller-address key failed; the chat is let in");
            return (None, Door::Open { senior_only: false });
        }
    };
    let hash = address_hash(&key, network);
    match state.store.abuse().block_for("address", &hash, helpline, now).await {
        Ok(block) => (Some(hash), Door::of(block)),
        Err(err) => {
            tracing::error!(error = %err, "checking blocks failed; the chat is let in");
            (Some(hash), Door::Open { senior_only: false })
        }
    }
}

/// A new call from the number hashed `hash` to `helpline`: what the door says (a fault lets it in).
pub async fn call_door(state: &AppState, hash: Option<&str>, helpline: &str, now: i64) -> Door {
    let Some(hash) = hash else { return Door::Open { senior_only: false } };
    match state.store.abuse().block_for("number", hash, helpline, now).await {
        Ok(block) => Door::of(block),
        Err(err) => {
            tracing::error!(error = %err, "checking blocks failed; the call is let in");
            Door::Open { senior_only: false }
        }
    }
}

// ----- flags ---------------------------------------------------------------------------------

/// What a flag needs (the `flag_abusive` frame, or `POST /api/v1/contacts/{id}/flag`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagRequest {
    /// Why (at most 1000 characters).
    pub reason: String,
}

/// Flags a contact as abusive: the counsellor who handled it, or a supervisor of its helpline.
/// Stored (a contact keeps its first flag), audited, and the helpline's supervisors alerted.
/// Anyone else gets `unknown_contact` (audited).
pub async fn flag(state: &AppState, staff: &Staff, contact_id: &str, reason: &str) -> Result<FlagRecord, AppError> {
    let reason = check_text("reason", reason, 1000)?;
    let contact = match state.store.contacts().contact(contact_id).await? {
        Some(c) if c.counsellor_id.as_deref() == Some(staff.id()) || staff.supervises(&c.helpline) => c,
        _ => {
            let refused = AppError::new(ErrorCode::UnknownContact, "no such contact, or not one you handled");
            return Err(staff.refuse(state, "flag_abusive", contact_id, refused).await);
        }
    };
    let now = state.clock.now_ms();
    let record = FlagRecord {
        id: new_id(),
        contact_id: contact.id.clone(),
        helpline: contact.helpline.clone(),
        flagged_by: staff.id().to_string(),
        reason,
        at: now,
    };
    let stored = state.store.abuse().flag_contact(&record).await?;
    staff.audit(state, "flag_abusive", &contact.id, Some(&stored.id)).await;
    if stored.id == record.id {
        state.hub.event_to_supervisors(
            Some(&contact.helpline),
            &ServerEvent::Alert {
                kind: "abusive_contact".into(),
                helpline: Some(contact.helpline.clone()),
                contact_id: Some(contact.id.clone()),
                counsellor_id: Some(staff.id().to_string()),
                message: "a counsellor flagged this contact as abusive: review it (block, or route to seniors)".into(),
                at: rfc3339(now),
            },
        );
    }
    Ok(stored)
}

pub(crate) fn flag_view(f: &FlagRecord, blocked: bool) -> serde_json::Value {
    serde_json::json!({
        "flag_id": f.id, "contact_id": f.contact_id, "helpline": f.helpline, "flagged_by": f.flagged_by,
        "reason": f.reason, "at": rfc3339(f.at), "blocked": blocked,
    })
}

/// `POST /api/v1/contacts/{id}/flag {reason}`: the REST form of the `flag_abusive` frame.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/flag", tag = "safety", security(("bearer" = [])), request_body = FlagRequest,
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 201, description = "`{flag: {flag_id, contact_id, helpline, flagged_by, reason, at, blocked}}` (a contact keeps its first flag); supervisors are alerted", body = Object),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 404, description = "`unknown_contact`: no such contact, or not one you handled", body = ErrorBody),
    ))]
pub async fn flag_contact(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: FlagRequest = parse_body(&body)?;
    let stored = flag(&state, &staff, &id, &req.reason).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "flag": flag_view(&stored, false) }))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// Days back (default 30).
    days: Option<i64>,
}

/// `GET /api/v1/flags?days=`: flagged contacts in the helplines you supervise, newest first, each
/// saying whether a block made from it is in force.
#[utoipa::path(get, path = "/api/v1/flags", tag = "safety", security(("bearer" = [])), params(FlagsQuery),
    responses(
        (status = 200, description = "`{flags: [{flag_id, contact_id, helpline, flagged_by, reason, at, blocked}]}`, newest first", body = Object),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
pub async fn list_flags(State(state): State<AppState>, staff: Staff, Query(q): Query<FlagsQuery>) -> Result<Response, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(&state, "flags_read", "contact_flags", AppError::forbidden("supervisors and admins only")).await);
    }
    let now = state.clock.now_ms();
    let since = now.saturating_sub(q.days.unwrap_or(30).clamp(1, 366).saturating_mul(24 * 3600 * 1000));
    let blocks = state.store.abuse().blocks(now, false).await?;
    let flags: Vec<serde_json::Value> = state
        .store
        .abuse().flags_since(since)
        .await?
        .iter()
        .filter(|f| staff.supervises(&f.helpline))
        .map(|f| flag_view(f, blocks.iter().any(|b| b.contact_id == f.contact_id)))
        .collect();
    staff.audit(&state, "flags_read", "contact_flags", None).await;
    Ok(Json(serde_json::json!({ "flags": flags })).into_response())
}

// ----- blocks --------------------------------------------------------------------------------

/// `POST /api/v1/blocks`: made from a flagged contact; the identifier is the contact's caller's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub contact_id: String,
    /// Seconds, or a number with a unit: `"30m"`, `"12h"`, `"7d"`.
    pub duration: serde_json::Value,
    pub reason: String,
    /// `block` (refused calmly; the default) or `senior` (routed to senior counsellors only).
    #[serde(default)]
    pub mode: Option<String>,
}

/// A duration in seconds from `3600`, `"3600"`, `"30m"`, `"12h"` or `"7d"`, within the allowed range.
pub fn parse_duration(v: &serde_json::Value) -> Result<i64, AppError> {
    let bad = || {
        AppError::bad_field(format!(
            "duration: seconds, or a number with m, h or d (\"30m\", \"12h\", \"7d\"), from {MIN_BLOCK_SECS} s to {} days",
            MAX_BLOCK_SECS / 86_400
        ))
    };
    let secs = match v {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        serde_json::Value::String(s) => {
            let s = s.trim();
            let (digits, unit) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
                _ => (s, None),
            };
            let n: i64 = digits.trim().parse().map_err(|_| bad())?;
            let scale = match unit {
                None | Some('s') => 1,
                Some('m') => 60,
                Some('h') => 3600,
                Some('d') => 86_400,
                Some(_) => return Err(bad()),
            };
            n.checked_mul(scale).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if !(MIN_BLOCK_SECS..=MAX_BLOCK_SECS).contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

/// A block as supervisors see it: never the identifier.
pub(crate) fn block_view(b: &BlockRecord, now: i64) -> serde_json::Value {
    serde_json::json!({
        "block_id": b.id, "contact_id": b.contact_id, "helpline": b.helpline,
        "identifier": if b.kind == "number" { "caller number" } else { "chat network" },
        "mode": b.mode, "reason": b.reason, "reviewer": b.reviewer,
        "created_at": rfc3339(b.created_at), "expires_at": rfc3339(b.expires_at),
        "lifted_at": b.lifted_at.map(rfc3339), "lifted_by": b.lifted_by, "lift_reason": b.lift_reason,
        "active": b.active(now), "attempts": b.attempts,
    })
}

/// `POST /api/v1/blocks {contact_id, duration, reason, mode}`: a supervisor of the contact's helpline
/// (or an admin) blocks its caller, for that helpline, for `duration`. The contact must be flagged.
/// 201 with the block; 404 for a contact out of your helplines (audited); 409 when the contact is
/// not flagged or its caller has no identifier (a withheld number).
#[utoipa::path(post, path = "/api/v1/blocks", tag = "safety", security(("bearer" = [])), request_body = BlockRequest,
    responses(
        (status = 201, description = "`{block: {block_id, contact_id, helpline, identifier, mode, reason, reviewer, created_at, expires_at, lifted_at, lifted_by, lift_reason, active, attempts}}` (never the identifier itself)", body = Object),
        (status = 400, description = "`bad_field`: mode, duration or reason", body = ErrorBody),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such contact in your helplines", body = ErrorBody),
        (status = 409, description = "the contact is not flagged, or its caller cannot be recognised", body = ErrorBody),
    ))]
pub async fn create_block(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: BlockRequest = parse_body(&body)?;
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(&state, "block_create", &req.contact_id, AppError::forbidden("supervisors and admins only")).await);
    }
    let mode = req.mode.as_deref().unwrap_or("block");
    if !matches!(mode, "block" | "senior") {
        return Err(AppError::bad_field("mode must be \"block\" or \"senior\""));
    }
    let secs = parse_duration(&req.duration)?;
    let reason = check_text("reason", &req.reason, 1000)?;
    let contact = match state.store.contacts().contact(&req.contact_id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(&state, "block_create", &req.contact_id, crate::state::access::hidden("contact")).await),
    };
    if state.store.abuse().flag_of(&contact.id).await?.is_none() {
        return Err(AppError::new(ErrorCode::Conflict, "only a flagged contact's caller can be blocked; flag it first"));
    }
    let Some(identifier) = state.store.abuse().caller_identifier(&contact.id).await? else {
        return Err(AppError::new(ErrorCode::Conflict, "this contact's caller cannot be recognised (withheld number)"));
    };
    let now = state.clock.now_ms();
    let block = BlockRecord {
        id: new_id(),
        kind: identifier.kind.to_string(),
        identifier_hash: identifier.hash,
        mode: mode.to_string(),
        helpline: contact.helpline.clone(),
        contact_id: contact.id.clone(),
        reason,
        reviewer: staff.id().to_string(),
        created_at: now,
        expires_at: now.saturating_add(secs.saturating_mul(1000)),
        lifted_at: None,
        lifted_by: None,
        lift_reason: None,
        attempts: 0,
    };
    state.store.abuse().create_block(&block).await?;
    let detail = format!("{} {} until {}", block.id, block.mode, rfc3339(block.expires_at));
    staff.audit(&state, "block_create", &contact.id, Some(&detail)).await;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "block": block_view(&block, now) }))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// Also blocks that expired or were lifted.
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/blocks?all=`: blocks in force (or all) in the helplines you supervise (audited).
#[utoipa::path(get, path = "/api/v1/blocks", tag = "safety", security(("bearer" = [])), params(BlocksQuery),
    responses(
        (status = 200, description = "`{blocks: [...]}`, each as `POST /api/v1/blocks` answers it", body = Object),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
pub async fn list_blocks(State(state): State<AppState>, staff: Staff, Query(q): Query<BlocksQuery>) -> Result<Response, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(&state, "blocks_read", "caller_blocks", AppError::forbidden("supervisors and admins only")).await);
    }
    let now = state.clock.now_ms();
    let list: Vec<serde_json::Value> = state
        .store
        .abuse().blocks(now, q.all)
        .await?
        .iter()
        .filter(|b| staff.supervises(&b.helpline))
        .map(|b| block_view(b, now))
        .collect();
    staff.audit(&state, "blocks_read", "caller_blocks", None).await;
    Ok(Json(serde_json::json!({ "blocks": list })).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LiftRequest {
    /// Why the block is lifted early (kept with the block).
    #[serde(default)]
    reason: Option<String>,
}

/// `DELETE /api/v1/blocks/{id}` (optional body `{reason}`): lifts a block early (audited). 404 for a
/// block out of your helplines; 409 when it was already lifted.
#[utoipa::path(delete, path = "/api/v1/blocks/{id}", tag = "safety", security(("bearer" = [])),
    request_body(content = Option<LiftRequest>, description = "optional"),
    params(("id" = String, Path, description = "the block's id")),
    responses(
        (status = 200, description = "`{block: {...}}`, lifted", body = Object),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 404, description = "no such block in your helplines", body = ErrorBody),
        (status = 409, description = "the block was already lifted", body = ErrorBody),
    ))]
pub async fn lift_block(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: LiftRequest = if body.is_empty() { LiftRequest::default() } else { parse_body(&body)? };
    let reason = match req.reason.as_deref() {
        Some(r) if !r.trim().is_empty() => Some(check_text("reason", r, 1000)?),
        _ => None,
    };
    let block = match state.store.abuse().block(&id).await? {
        Some(b) if staff.supervises(&b.helpline) => b,
        _ => return Err(staff.refuse(&state, "block_lift", &id, crate::state::access::hidden("block")).await),
    };
    let now = state.clock.now_ms();
    if !state.store.abuse().lift_block(&block.id, staff.id(), reason.as_deref(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "this block was already lifted"));
    }
    staff.audit(&state, "block_lift", &block.contact_id, Some(&block.id)).await;
    let lifted = state.store.abuse().block(&block.id).await?.ok_or_else(AppError::internal)?;
    Ok(Json(serde_json::json!({ "block": block_view(&lifted, now) })).into_response())
}

/// The flag and block routes, each handler with its OpenAPI description (tag `safety`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(flag_contact))
        .routes(routes!(list_flags))
        .routes(routes!(list_blocks, create_block))
        .routes(routes!(lift_block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_take_units_and_stay_in_range() {
        assert_eq!(parse_duration(&json!(3600)).unwrap(), 3600);
        assert_eq!(parse_duration(&json!("30m")).unwrap(), 1800);
        assert_eq!(parse_duration(&json!("12h")).unwrap(), 43_200);
        assert_eq!(parse_duration(&json!(" 7d ")).unwrap(), 604_800);
        assert_eq!(parse_duration(&json!("90")).unwrap(), 90);
        for bad in [json!(5), json!("91d"), json!("-1h"), json!("1w"), json!("h"), json!(null), json!(1.5), json!("9999999999999999d")] {
            assert_eq!(parse_duration(&bad).unwrap_err().code, ErrorCode::BadField, "{bad}");
        }
    }

    #[test]
    fn address_hashes_are_keyed_and_hide_the_address() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let h = address_hash("k1", a);
        assert_eq!(h, address_hash("k1", a));
        assert_ne!(h, address_hash("k2", a));
        assert_ne!(h, address_hash("k1", "203.0.113.8".parse().unwrap()));
        assert_eq!(h.len(), 64);
    }

    #[test]
    fn the_calm_message_names_the_emergency_number_in_every_language() {
        for l in ["ro", "ru", "uk", "en", "xx"] {
            assert!(unavailable_message(l).contains("112"), "{l}");
        }
    }
}

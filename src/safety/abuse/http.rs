//! The REST edge of flags and blocks (the service is [`crate::safety::abuse`]): each handler parses,
//! calls the service (which checks the scope through [`crate::state::access`]) and shapes the answer.

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{block_view, flag_view, BlockRequest, FlagRequest};
use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

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
    let stored = super::flag(&state, &staff, &id, &req.reason).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "flag": flag_view(&stored, false) }))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// Days back, 1 to 366 (default 30).
    #[param(minimum = 1, maximum = 366)]
    days: Option<i64>,
}

/// `GET /api/v1/flags?days=`: flagged contacts in the helplines you supervise, newest first, each
/// saying whether a block made from it is in force.
#[utoipa::path(get, path = "/api/v1/flags", tag = "safety", security(("bearer" = [])), params(FlagsQuery),
    responses(
        (status = 200, description = "`{flags: [{flag_id, contact_id, helpline, flagged_by, reason, at, blocked}]}`, newest first", body = Object),
        (status = 400, description = "`bad_field`: `days` outside 1 to 366", body = ErrorBody),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
pub async fn list_flags(State(state): State<AppState>, staff: Staff, Query(q): Query<FlagsQuery>) -> Result<Response, AppError> {
    if q.days.is_some_and(|d| !(1..=366).contains(&d)) {
        return Err(AppError::bad_field("days: from 1 to 366"));
    }
    let flags = super::flags(&state, &staff, q.days).await?;
    Ok(Json(serde_json::json!({ "flags": flags })).into_response())
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
    let block = super::block(&state, &staff, req).await?;
    let view = block_view(&block, state.clock.now_ms());
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "block": view }))).into_response())
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
        (status = 400, description = "`bad_field`: `all` is not `true` or `false`", body = ErrorBody),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
pub async fn list_blocks(State(state): State<AppState>, staff: Staff, Query(q): Query<BlocksQuery>) -> Result<Response, AppError> {
    let list = super::blocks(&state, &staff, q.all).await?;
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
    // No body, `null` and `{}` all mean no reason given.
    let req: LiftRequest =
        if body.is_empty() { LiftRequest::default() } else { parse_body::<Option<LiftRequest>>(&body)?.unwrap_or_default() };
    let lifted = super::lift(&state, &staff, &id, req.reason.as_deref()).await?;
    Ok(Json(serde_json::json!({ "block": block_view(&lifted, state.clock.now_ms()) })).into_response())
}

/// The flag and block routes, each handler with its OpenAPI description (tag `safety`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(flag_contact))
        .routes(routes!(list_flags))
        .routes(routes!(list_blocks, create_block))
        .routes(routes!(lift_block))
}

//! The REST edge of transfers between case managers and of the supervisor's approvals of the plan
//! and the closure (the service is [`crate::casework::transfers`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_body, Staff};
use crate::casework::transfers::{self as service, approval_view, transfer_view, ApprovalView, TransferView};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTransfer {
    /// Another enabled case manager.
    to_user_id: String,
    /// For the receiver (at most 2000 characters).
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/cases/{id}/transfers {to_user_id, note?}`: offers the case to another case manager
/// (the case's managers); the case is hers once she accepts.
#[utoipa::path(post, path = "/api/v1/cases/{id}/transfers", tag = "casework", security(("bearer" = [])), request_body = NewTransfer,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the transfer, pending", body = TransferView),
        (status = 400, description = "`bad_field`: not another enabled case manager; a note too long", body = ErrorBody),
        (status = 403, description = "the case manager or a supervisor transfers a case", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: a transfer is pending already, or the case is closed", body = ErrorBody),
    ))]
pub async fn request(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewTransfer = parse_body(&body)?;
    let (t, case) = service::request(&state, &staff, &id, &req.to_user_id, req.note.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(transfer_view(&t, &case))).into_response())
}

/// Transfers offered to me.
#[derive(Serialize, ToSchema)]
pub struct TransferList {
    transfers: Vec<TransferView>,
}

/// `GET /api/v1/transfers`: the transfers offered to me, still pending (with the cases' numbers).
#[utoipa::path(get, path = "/api/v1/transfers", tag = "casework", security(("bearer" = [])),
    responses((status = 200, description = "the transfers offered to me, pending, oldest first", body = TransferList)))]
pub async fn offered(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    let list = service::offered_to_me(&state, &staff).await?;
    Ok(Json(TransferList { transfers: list.iter().map(|(t, c)| transfer_view(t, c)).collect() }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferDecision {
    /// `accepted` or `refused`.
    #[schema(pattern = "^(accepted|refused)$")]
    decision: String,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /api/v1/transfers/{id}/decision {decision, comment?}`: the receiver accepts (the case is
/// hers) or refuses a transfer.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/decision", tag = "casework", security(("bearer" = [])), request_body = TransferDecision,
    params(("id" = String, Path, description = "the transfer's id")),
    responses(
        (status = 200, description = "the transfer, decided", body = TransferView),
        (status = 400, description = "`bad_field`: the decision is not `accepted` or `refused`", body = ErrorBody),
        (status = 404, description = "no such transfer, or not one offered to you", body = ErrorBody),
        (status = 409, description = "`conflict`: decided already, or the case changed hands meanwhile", body = ErrorBody),
    ))]
pub async fn decide(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: TransferDecision = parse_body(&body)?;
    let accept = match req.decision.as_str() {
        "accepted" => true,
        "refused" => false,
        _ => return Err(AppError::bad_field("decision must be accepted or refused")),
    };
    let (t, case) = service::decide(&state, &staff, &id, accept, req.comment.as_deref()).await?;
    Ok(Json(transfer_view(&t, &case)).into_response())
}

/// A case's transfers and approval requests, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ApprovalList {
    approvals: Vec<ApprovalView>,
    transfers: Vec<TransferView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApproval {
    /// `plan` or `closure`.
    kind: String,
    #[serde(default)]
    note: Option<String>,
}

/// `GET /api/v1/cases/{id}/approvals`: the case's approval requests and transfers (whoever sees it).
#[utoipa::path(get, path = "/api/v1/cases/{id}/approvals", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case's approval requests and transfers", body = ApprovalList),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn of_case(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let (case, transfers, approvals) = service::of_case(&state, &staff, &id).await?;
    Ok(Json(ApprovalList {
        approvals: approvals.iter().map(approval_view).collect(),
        transfers: transfers.iter().map(|t| transfer_view(t, &case)).collect(),
    })
    .into_response())
}

/// `POST /api/v1/cases/{id}/approvals {kind, note?}`: asks a supervisor to approve the `plan` or the
/// `closure` (the case's managers).
#[utoipa::path(post, path = "/api/v1/cases/{id}/approvals", tag = "casework", security(("bearer" = [])), request_body = NewApproval,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the request, pending", body = ApprovalView),
        (status = 400, description = "`bad_field`: kind is not `plan` or `closure`; a note too long", body = ErrorBody),
        (status = 403, description = "the case manager asks for approval", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: a request of that kind is pending already", body = ErrorBody),
    ))]
pub async fn request_approval(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewApproval = parse_body(&body)?;
    let a = service::request_approval(&state, &staff, &id, &req.kind, req.note.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(approval_view(&a))).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ApprovalDecision {
    /// `approved` or `returned` (a returned request needs a comment).
    #[schema(pattern = "^(approved|returned)$")]
    decision: String,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /api/v1/approvals/{id}/decision {decision, comment?}`: a supervisor of the case's helpline
/// approves or returns a request.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/decision", tag = "casework", security(("bearer" = [])), request_body = ApprovalDecision,
    params(("id" = String, Path, description = "the request's id")),
    responses(
        (status = 200, description = "the request, decided", body = ApprovalView),
        (status = 400, description = "`bad_field`: not `approved` or `returned`; returned without a comment", body = ErrorBody),
        (status = 403, description = "a supervisor of the helpline decides", body = ErrorBody),
        (status = 404, description = "no such request, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: decided already", body = ErrorBody),
    ))]
pub async fn decide_approval(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: ApprovalDecision = parse_body(&body)?;
    let a = service::decide_approval(&state, &staff, &id, &req.decision, req.comment.as_deref()).await?;
    Ok(Json(approval_view(&a)).into_response())
}

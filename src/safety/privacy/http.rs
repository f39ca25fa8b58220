//! The REST edge of exports and the break-glass reveal (the service is [`crate::safety::privacy`]).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::retention::Periods;

/// The export and reveal routes, each handler with its OpenAPI description (tag `safety`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_contact))
        .routes(routes!(export_case))
        .routes(routes!(reveal))
        .routes(routes!(erase))
        .routes(routes!(retention_periods, set_retention_periods))
}

/// `GET /api/v1/contacts/{id}/export`: everything held on one contact, as JSON, for an access request:
/// the record, the conversation (or when retention deleted it), events, call record (never the number),
/// form, escalations, flag, blocks, placements, the cases it is linked to, and the audit trail. For
/// supervisors of its helpline and admins; audited (`contact_export`) before it answers.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/export", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "`{exported_at, exported_by, export: {contact, conversation, events, call, form, escalations, flag, blocks, placements, cases, audit}}`", body = Object),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such contact in your helplines", body = ErrorBody),
    ))]
pub async fn export_contact(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(super::export_contact(&state, &staff, &id).await?).into_response())
}

/// `GET /api/v1/cases/{id}/export`: everything held on one case: the case, its person's identifying
/// details (only for the case's own roles and admins, as everywhere), entries, placements, the full
/// export of every linked contact, and the audit trail. Supervisors of its helpline and admins; audited
/// (`case_export`) before it answers.
#[utoipa::path(get, path = "/api/v1/cases/{id}/export", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "`{exported_at, exported_by, export: {case, person, entries, placements, contacts, audit}}`", body = Object),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such case in your helplines", body = ErrorBody),
    ))]
pub async fn export_case(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(super::export_case(&state, &staff, &id).await?).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevealRequest {
    /// Why (the legal ground, the request's reference): required, kept in the audit log.
    reason: String,
}

/// `POST /api/v1/contacts/{id}/reveal {reason}`: break-glass, for supervisors of the contact's helpline
/// only (admins and counsellors: 403). Audited with the reason (`caller_reveal`) before it answers.
/// Shows what is stored about the caller's identifier (see the service's documentation), never more.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/reveal", tag = "safety", security(("bearer" = [])), request_body = RevealRequest,
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "`{contact_id, channel, identifier, exchange_reference, explanation, called_before, earlier_contacts, same_caller, blocks}`: what is stored about the caller's identifier, never the number", body = Object),
        (status = 400, description = "`bad_field`: a reason is required", body = ErrorBody),
        (status = 403, description = "a break-glass reveal is for supervisors", body = ErrorBody),
        (status = 404, description = "no such contact in your helplines", body = ErrorBody),
    ))]
pub async fn reveal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    // The role first: a counsellor is refused (and audited) whatever the body.
    super::revealer(&state, &staff, &id).await?;
    let req: RevealRequest = parse_body(&body)?;
    Ok(Json(super::reveal(&state, &staff, &id, &req.reason).await?).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EraseRequest {
    /// Why (the data subject's request, its reference): required (not blank, at most 1000
    /// characters), kept in the redaction record.
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    reason: String,
}

/// `POST /api/v1/contacts/{id}/erase {reason}`: a data subject's erasure. Admins and supervisors of the
/// contact's helpline (counsellors 403, other helplines 404). Deletes the conversation, the form, the
/// call record, the caller's keyed hashes, callback number, flag, blocks and case links; the contact row
/// stays for reports, marked erased. Audited by a redaction record (`contact_erase`: who, when, why),
/// and recorded beside the key file so a restore of an older backup erases it again.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/erase", tag = "safety", security(("bearer" = [])), request_body = EraseRequest,
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "`{contact_id, erased_at, erased_by, removed: {messages, forms, calls, other}}`", body = Object),
        (status = 400, description = "`bad_field`: a reason is required", body = ErrorBody),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such contact in your helplines", body = ErrorBody),
        (status = 409, description = "`conflict`: the contact is still open", body = ErrorBody),
    ))]
pub async fn erase(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: EraseRequest = parse_body(&body)?;
    Ok(Json(super::erase(&state, &staff, &id, &req.reason).await?).into_response())
}

/// `GET /api/v1/helplines/{name}/retention`: the helpline's retention periods (docs/deployment.md,
/// "Retention"). Admins and the helpline's supervisors.
#[utoipa::path(get, path = "/api/v1/helplines/{name}/retention", tag = "safety", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline")),
    responses(
        (status = 200, description = "the periods in days (null: kept)", body = Periods),
        (status = 403, description = "admins and the helpline's supervisors only", body = ErrorBody),
        (status = 404, description = "no such helpline", body = ErrorBody),
    ))]
pub async fn retention_periods(State(state): State<AppState>, staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    Ok(Json(crate::safety::retention::periods_of(&state, &staff, &name).await?).into_response())
}

/// `PUT /api/v1/helplines/{name}/retention`: replaces the helpline's retention periods (each 1 to
/// 36500 days, or null to keep). Admins only; audited (`retention_set`); applied at the server's next
/// hourly run.
#[utoipa::path(put, path = "/api/v1/helplines/{name}/retention", tag = "safety", security(("bearer" = [])), request_body = Periods,
    params(("name" = String, Path, description = "the helpline")),
    responses(
        (status = 200, description = "the periods stored", body = Periods),
        (status = 400, description = "`bad_field`: not a JSON object of these fields", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such helpline", body = ErrorBody),
        (status = 422, description = "`invalid_settings`: a period out of range, named", body = ErrorBody),
    ))]
pub async fn set_retention_periods(
    State(state): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let periods: Periods = parse_body(&body)?;
    Ok(Json(crate::safety::retention::set_periods(&state, &staff, &name, periods).await?).into_response())
}

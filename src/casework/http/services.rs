//! The REST edge of the placement services registry and placements (the service is
//! [`crate::casework::services`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_body, Staff};
use crate::casework::services::{self as service, NewService, Reserve};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::services::{PlacementRecord, ServiceRecord};

/// The placement services registry.
#[derive(Serialize, ToSchema)]
pub struct Services {
    services: Vec<ServiceRecord>,
}

/// `GET /api/v1/services`: the registry with places in use (no personal data).
#[utoipa::path(get, path = "/api/v1/services", tag = "casework", security(("bearer" = [])),
    responses((status = 200, description = "the registry, with places in use", body = Services)))]
pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    Ok(Json(Services { services: service::list(&state, &staff).await? }).into_response())
}

/// `GET /api/v1/services/{id}`.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the service's id")),
    responses(
        (status = 200, description = "the service", body = ServiceRecord),
        (status = 404, description = "no such service", body = ErrorBody),
    ))]
pub async fn one(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(service::one(&state, &staff, &id).await?).into_response())
}

/// `POST /api/v1/services`: admins add a service.
#[utoipa::path(post, path = "/api/v1/services", tag = "casework", security(("bearer" = [])), request_body = NewService,
    responses(
        (status = 201, description = "the service added", body = ServiceRecord),
        (status = 400, description = "`bad_field`: an unknown kind or helpline, a capacity outside 0 to 10000, …", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
pub async fn add(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    // The role first: a non-admin is refused (and audited) whatever the body.
    service::admin_only(&state, &staff).await?;
    let req: NewService = parse_body(&body)?;
    let record = service::add(&state, &staff, req).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `POST /api/v1/placements {service_id, escalation_id | contact_id, district?, person_label?}`:
/// reserves a place atomically and opens the contact's case (or joins its open case). A full service:
/// 409 `service_full` with `next_suggestion`; a service the helpline may not use: 403 `not_allowed`.
#[utoipa::path(post, path = "/api/v1/placements", tag = "casework", security(("bearer" = [])), request_body = Reserve,
    responses(
        (status = 201, description = "the place is reserved; the contact's case was opened or joined", body = Reserved),
        (status = 400, description = "`bad_field`: give `escalation_id` or `contact_id`", body = ErrorBody),
        (status = 403, description = "`not_allowed`: the helpline may not place people in that service", body = ErrorBody),
        (status = 404, description = "no such escalation, contact or service, or not yours", body = ErrorBody),
        (status = 409, description = "`service_full`, with `next_suggestion`", body = ErrorBody),
    ))]
pub async fn reserve(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: Reserve = parse_body(&body)?;
    let (placement, case) = service::reserve(&state, &staff, req).await?;
    let body = Reserved { placement, case: case.map(|c| crate::casework::cases::case_view(&c)) };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A reserved place and the case it belongs to.
#[derive(Serialize, ToSchema)]
pub struct Reserved {
    placement: PlacementRecord,
    case: Option<crate::casework::cases::CaseView>,
}

/// `GET /api/v1/placements/{id}` (audited).
#[utoipa::path(get, path = "/api/v1/placements/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the placement's id")),
    responses(
        (status = 200, description = "the placement", body = PlacementRecord),
        (status = 404, description = "no such placement, or not one you may see", body = ErrorBody),
    ))]
pub async fn placement(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(service::placement(&state, &staff, &id).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    /// `admitted`, `left` or `cancelled`.
    status: String,
}

/// `POST /api/v1/placements/{id}/status {status}`: `requested → admitted | cancelled`, `admitted → left`;
/// leaving or cancelling frees the place.
#[utoipa::path(post, path = "/api/v1/placements/{id}/status", tag = "casework", security(("bearer" = [])), request_body = SetStatus,
    params(("id" = String, Path, description = "the placement's id")),
    responses(
        (status = 200, description = "the placement with its new status", body = PlacementRecord),
        (status = 404, description = "no such placement, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: not a next status (with `allowed`), or the placement changed meanwhile", body = ErrorBody),
    ))]
pub async fn set_status(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetStatus = parse_body(&body)?;
    Ok(Json(service::set_status(&state, &staff, &id, &req.status).await?).into_response())
}

//! `/api/v1/escalations`: the REST form of escalations (the service is [`crate::casework::escalation`]).

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_body, Staff};
use crate::casework::escalation::{acknowledge_as, escalate, suggest, view, EscalateRequest, Names};
use crate::protocol::{EscalationView, ServiceSuggestion};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::users::Role;

/// A new escalation and the services with a free place for it.
#[derive(Serialize, ToSchema)]
pub struct Escalated {
    escalation: EscalationView,
    suggestions: Vec<ServiceSuggestion>,
}

/// `POST /api/v1/escalations`: the REST form of the `escalate` frame.
#[utoipa::path(post, path = "/api/v1/escalations", tag = "casework", security(("bearer" = [])), request_body = EscalateRequest,
    responses(
        (status = 201, description = "escalated; the helpline's supervisors are alerted at once", body = Escalated),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 404, description = "no such contact of yours", body = ErrorBody),
    ))]
pub async fn create(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: EscalateRequest = parse_body(&body)?;
    let (record, suggestions) = escalate(&state, &staff, req).await?;
    let names = Names::of(&state.store, &[&record]).await;
    let body = Escalated { escalation: view(&record, record.broadcast_at.is_some(), &names), suggestions };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Escalations not acknowledged yet.
#[derive(Serialize, ToSchema)]
pub struct OpenEscalations {
    escalations: Vec<EscalationView>,
}

/// `GET /api/v1/escalations`: escalations not acknowledged yet, in the helplines you supervise.
#[utoipa::path(get, path = "/api/v1/escalations", tag = "casework", security(("bearer" = [])),
    responses(
        (status = 200, description = "unacknowledged escalations in the helplines you supervise", body = OpenEscalations),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("supervisors and admins only"));
    }
    let all = state.store.forms().open_escalations().await?;
    let mine: Vec<_> = all.iter().filter(|e| staff.supervises(&e.helpline)).collect();
    let names = Names::of(&state.store, &mine).await;
    let open: Vec<EscalationView> = mine.iter().map(|e| view(e, e.broadcast_at.is_some(), &names)).collect();
    Ok(Json(OpenEscalations { escalations: open }).into_response())
}

/// An acknowledged escalation.
#[derive(Serialize, ToSchema)]
pub struct Acknowledged {
    escalation_id: String,
    acknowledged: bool,
    /// Whether this acknowledgement was the first.
    first: bool,
}

/// `POST /api/v1/escalations/{id}/acknowledge`.
#[utoipa::path(post, path = "/api/v1/escalations/{id}/acknowledge", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the escalation's id")),
    responses(
        (status = 200, description = "acknowledged", body = Acknowledged),
        (status = 404, description = "no such escalation, or not one you supervise", body = ErrorBody),
    ))]
pub async fn acknowledge(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let first = acknowledge_as(&state, &staff, &id).await?;
    Ok(Json(Acknowledged { escalation_id: id, acknowledged: true, first }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestQuery {
    /// The person's district (default: the escalation's).
    district: Option<String>,
}

/// Services with a free place.
#[derive(Serialize, ToSchema)]
pub struct Suggestions {
    suggestions: Vec<ServiceSuggestion>,
}

/// `GET /api/v1/escalations/{id}/suggestions?district=`: services with a free place for it, now.
#[utoipa::path(get, path = "/api/v1/escalations/{id}/suggestions", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the escalation's id"), SuggestQuery),
    responses(
        (status = 200, description = "services fitting the escalation with a free place, the person's district first", body = Suggestions),
        (status = 404, description = "no such escalation, or not yours", body = ErrorBody),
    ))]
pub async fn suggestions(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<SuggestQuery>,
) -> Result<Response, AppError> {
    let e = match state.store.forms().escalation(&id).await? {
        Some(e) if e.counsellor_id == staff.id() || staff.supervises(&e.helpline) => e,
        _ => return Err(super::hidden("escalation")),
    };
    let district = q.district.or(e.district.clone());
    let list = suggest(&state, &e.helpline, district.as_deref()).await?;
    Ok(Json(Suggestions { suggestions: list }).into_response())
}

//! `/api/v1/escalations`: the REST form of escalations (the service is [`crate::casework::escalation`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{parse_body, Staff};
use crate::casework::escalation::{acknowledge_as, escalate, suggest, view, EscalateRequest};
use crate::protocol::EscalationView;
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::users::Role;

/// `POST /api/v1/escalations`: the REST form of the `escalate` frame.
pub async fn create(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: EscalateRequest = parse_body(&body)?;
    let (record, suggestions) = escalate(&state, &staff, req).await?;
    let body = serde_json::json!({ "escalation": view(&record, record.broadcast_at.is_some()), "suggestions": suggestions });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/escalations`: escalations not acknowledged yet, in the helplines you supervise.
pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("supervisors and admins only"));
    }
    let open: Vec<EscalationView> = state
        .store
        .open_escalations()
        .await?
        .iter()
        .filter(|e| staff.supervises(&e.helpline))
        .map(|e| view(e, e.broadcast_at.is_some()))
        .collect();
    Ok(Json(serde_json::json!({ "escalations": open })).into_response())
}

/// `POST /api/v1/escalations/{id}/acknowledge`.
pub async fn acknowledge(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let first = acknowledge_as(&state, &staff, &id).await?;
    Ok(Json(serde_json::json!({ "escalation_id": id, "acknowledged": true, "first": first })).into_response())
}

#[derive(Deserialize)]
pub struct SuggestQuery {
    district: Option<String>,
}

/// `GET /api/v1/escalations/{id}/suggestions?district=`: services with a free place for it, now.
pub async fn suggestions(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<SuggestQuery>,
) -> Result<Response, AppError> {
    let e = match state.store.escalation(&id).await? {
        Some(e) if e.counsellor_id == staff.id() || staff.supervises(&e.helpline) => e,
        _ => return Err(super::hidden("escalation")),
    };
    let district = q.district.or(e.district.clone());
    let list = suggest(&state, &e.helpline, district.as_deref()).await?;
    Ok(Json(serde_json::json!({ "suggestions": list })).into_response())
}


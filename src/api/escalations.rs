//! Escalations from a live contact: stored, supervisors of the helpline alerted at once, imminent risk raised to the front, unacknowledged alerts sent to every supervisor after 2 minutes; placement suggestions.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{check_text, parse_body, Staff};
use crate::app::AppState;
use crate::casework::{self, ACK_WITHIN_MS};
use crate::engine_task::contact_key;
use crate::error::AppError;
use crate::protocol::{rfc3339, ErrorCode, EscalationView, ServerEvent, ServiceSuggestion};
use crate::routing::{Input, PRIORITY_FRONT};
use crate::store::forms::EscalationRecord;
use crate::store::new_id;
use crate::store::services::ServiceRecord;
use crate::store::users::Role;

/// What an escalation needs (the `escalate` frame, or `POST /api/v1/escalations`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    pub contact_id: String,
    pub kind: String,
    pub risk: String,
    pub reason: String,
    #[serde(default)]
    pub district: Option<String>,
}

pub fn view(e: &EscalationRecord, everyone: bool) -> EscalationView {
    EscalationView {
        escalation_id: e.id.clone(),
        contact_id: e.contact_id.clone(),
        helpline: e.helpline.clone(),
        kind: e.kind.clone(),
        risk: e.risk.clone(),
        reason: e.reason.clone(),
        district: e.district.clone(),
        counsellor_id: e.counsellor_id.clone(),
        at: rfc3339(e.created_at),
        everyone,
    }
}

pub fn suggestion(s: &ServiceRecord) -> ServiceSuggestion {
    ServiceSuggestion {
        service_id: s.id.clone(),
        name: s.name.clone(),
        kind: s.kind.clone(),
        district: s.district.clone(),
        address: s.address.clone(),
        phone: s.phone.clone(),
        admission_24_7: s.admission_24_7,
        free: s.free(),
    }
}

/// Services with a free place that fit a helpline's escalation, the person's district first.
pub async fn suggest(state: &AppState, helpline: &str, district: Option<&str>) -> Result<Vec<ServiceSuggestion>, AppError> {
    let list = state.store.suggestions(helpline, casework::fitting_service_kinds(helpline), district).await?;
    Ok(list.iter().map(suggestion).collect())
}

/// Puts a contact at the front of its queue if it is waiting (a live conversation keeps its counsellor;
/// its stored priority was raised with the escalation or form).
pub async fn raise_priority(state: &AppState, contact_id: &str) {
    if let Some(key) = contact_key(contact_id) {
        state.engine.input(Input::SetPriority { contact: key, priority: PRIORITY_FRONT }).await;
    }
}

/// Escalates a contact: checks it is this counsellor's (or a supervisor's in scope), stores it, alerts
/// supervisors, and returns it with placement suggestions.
pub async fn escalate(
    state: &AppState,
    staff: &Staff,
    req: EscalateRequest,
) -> Result<(EscalationRecord, Vec<ServiceSuggestion>), AppError> {
    if !casework::ESCALATION_KINDS.contains(&req.kind.as_str()) {
        return Err(AppError::bad_field(format!("kind must be one of {}", casework::ESCALATION_KINDS.join(", "))));
    }
    if !casework::RISKS.contains(&req.risk.as_str()) {
        return Err(AppError::bad_field(format!("risk must be one of {}", casework::RISKS.join(", "))));
    }
    let reason = check_text("reason", &req.reason, 2000)?;
    let district = match req.district.as_deref() {
        Some(d) if !d.trim().is_empty() => Some(check_text("district", d, 100)?),
        _ => None,
    };
    let contact = state.store.contact(&req.contact_id).await?;
    let contact = match contact {
        Some(c) if c.counsellor_id.as_deref() == Some(staff.id()) || staff.supervises(&c.helpline) => c,
        _ => {
            let refused = AppError::new(ErrorCode::UnknownContact, "no such contact, or not yours to escalate");
            return Err(staff.refuse(state, "escalate", &req.contact_id, refused).await);
        }
    };
    let record = EscalationRecord {
        id: new_id(),
        contact_id: contact.id.clone(),
        helpline: contact.helpline.clone(),
        kind: req.kind,
        risk: req.risk,
        reason,
        district,
        counsellor_id: staff.id().to_string(),
        created_at: state.clock.now_ms(),
        acknowledged_by: None,
        acknowledged_at: None,
        broadcast_at: None,
    };
    state.store.create_escalation(&record).await?;
    staff.audit(state, "escalate", &contact.id, Some(&format!("{} {} {}", record.id, record.kind, record.risk))).await;
    let imminent = record.risk == "imminent";
    if imminent {
        raise_priority(state, &contact.id).await;
        state.store.mark_broadcast(&record.id, record.created_at).await?;
    }
    let helpline = (!imminent).then_some(record.helpline.as_str());
    state.hub.event_to_supervisors(helpline, &ServerEvent::Escalation(view(&record, imminent)));
    let suggestions = if record.kind == "emergency_placement" {
        suggest(state, &record.helpline, record.district.as_deref()).await?
    } else {
        Vec::new()
    };
    Ok((record, suggestions))
}

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

/// Acknowledges an escalation for a supervisor (socket or REST); false if already acknowledged.
pub async fn acknowledge_as(state: &AppState, staff: &Staff, id: &str) -> Result<bool, AppError> {
    let Some(e) = state.store.escalation(id).await? else {
        return Err(AppError::new(ErrorCode::NotFound, "no such escalation"));
    };
    // After the 2-minute broadcast every supervisor may acknowledge; before, those of its helpline.
    let may = staff.supervises(&e.helpline) || (e.broadcast_at.is_some() && staff.user.role == Role::Supervisor);
    if !may {
        return Err(staff.refuse(state, "acknowledge", id, AppError::forbidden("not a helpline you supervise")).await);
    }
    let first = state.store.acknowledge_escalation(id, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "acknowledge", id, None).await;
    Ok(first)
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

/// Every second: escalations unacknowledged for 2 minutes (by the server clock) go to every supervisor, once.
pub async fn run_ack_watch(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::ws::stopping(&mut shutdown) => return,
        }
        let now = state.clock.now_ms();
        match state.store.claim_unacknowledged(now - ACK_WITHIN_MS, now).await {
            Ok(due) => {
                for e in due {
                    tracing::warn!(escalation = %e.id, helpline = %e.helpline, "escalation unacknowledged for 2 minutes: alerting every supervisor");
                    state.hub.event_to_supervisors(None, &ServerEvent::Escalation(view(&e, true)));
                }
            }
            Err(err) => tracing::warn!(error = %err, "checking unacknowledged escalations failed"),
        }
    }
}

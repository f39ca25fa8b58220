//! The placement services registry (admins write it, staff read it) and placements: atomic reservation, status changes that free the place.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_text, hidden, parse_body, Staff};
use crate::state::AppState;
use crate::casework::SERVICE_KINDS;
use crate::state::error::{AppError, ErrorBody};
use crate::protocol::ErrorCode;
use crate::store::cases::NewCase;
use crate::store::new_id;
use crate::store::services::{NewPlacement, PlacementRecord, ReserveError, ServiceRecord};
use crate::store::users::Role;

/// A new service (`POST /api/v1/services`, `helpline service add`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub name: String,
    pub kind: String,
    pub district: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub admission_24_7: bool,
    pub capacity: i64,
    #[serde(default)]
    pub in_use: i64,
    pub helplines: Vec<String>,
}

impl NewService {
    /// Checks the fields and builds the record.
    pub fn build(self, known_helplines: &[String], now: i64) -> Result<ServiceRecord, String> {
        if !SERVICE_KINDS.iter().any(|(k, _)| *k == self.kind) {
            let kinds: Vec<&str> = SERVICE_KINDS.iter().map(|(k, _)| *k).collect();
            return Err(format!("kind must be one of {}", kinds.join(", ")));
        }
        if !(0..=10_000).contains(&self.capacity) || !(0..=self.capacity).contains(&self.in_use) {
            return Err("capacity must be 0 to 10000, and in_use 0 to capacity".into());
        }
        if let Some(h) = self.helplines.iter().find(|h| !known_helplines.contains(h)) {
            return Err(format!("unknown helpline {h:?}"));
        }
        let name = check_text("name", &self.name, 200).map_err(|e| e.message)?;
        let district = check_text("district", &self.district, 100).map_err(|e| e.message)?;
        Ok(ServiceRecord {
            id: new_id(),
            name,
            kind: self.kind,
            district,
            address: self.address.trim().into(),
            phone: self.phone.trim().into(),
            admission_24_7: self.admission_24_7,
            capacity: self.capacity,
            in_use: self.in_use,
            helplines: self.helplines,
            created_at: now,
        })
    }
}

fn staff_only(staff: &Staff) -> Result<(), AppError> {
    // Every account is staff; the check is here so a future public role is refused by default.
    match staff.user.role {
        Role::Counsellor | Role::Supervisor | Role::Admin | Role::CaseManager => Ok(()),
    }
}

/// The placement services registry.
#[derive(Serialize, ToSchema)]
pub struct Services {
    services: Vec<ServiceRecord>,
}

/// `GET /api/v1/services`: the registry with places in use (no personal data).
#[utoipa::path(get, path = "/api/v1/services", tag = "casework", security(("bearer" = [])),
    responses((status = 200, description = "the registry, with places in use", body = Services)))]
pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    staff_only(&staff)?;
    Ok(Json(Services { services: state.store.placements().services().await? }).into_response())
}

/// `GET /api/v1/services/{id}`.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the service's id")),
    responses(
        (status = 200, description = "the service", body = ServiceRecord),
        (status = 404, description = "no such service", body = ErrorBody),
    ))]
pub async fn one(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    staff_only(&staff)?;
    let s = state.store.placements().service(&id).await?.ok_or_else(|| hidden("service"))?;
    Ok(Json(s).into_response())
}

/// `POST /api/v1/services`: admins add a service.
#[utoipa::path(post, path = "/api/v1/services", tag = "casework", security(("bearer" = [])), request_body = NewService,
    responses(
        (status = 201, description = "the service added", body = ServiceRecord),
        (status = 400, description = "`bad_field`: an unknown kind or helpline, a capacity outside 0 to 10000, …", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
pub async fn add(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "service_add", "services", AppError::forbidden("admins only")).await);
    }
    let req: NewService = parse_body(&body)?;
    let known: Vec<String> = state.helplines.iter().map(|h| h.name.clone()).collect();
    let record = req.build(&known, state.clock.now_ms()).map_err(AppError::bad_field)?;
    state.store.placements().add_service(&record).await?;
    staff.audit(&state, "service_add", &record.id, Some(&record.name)).await;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Reserve {
    service_id: String,
    #[serde(default)]
    escalation_id: Option<String>,
    #[serde(default)]
    contact_id: Option<String>,
    #[serde(default)]
    district: Option<String>,
    #[serde(default)]
    person_label: Option<String>,
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
    let escalation = match &req.escalation_id {
        Some(id) => Some(state.store.forms().escalation(id).await?.ok_or_else(|| hidden("escalation"))?),
        None => None,
    };
    let contact_id = match (&escalation, &req.contact_id) {
        (Some(e), _) => e.contact_id.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(AppError::bad_field("give escalation_id or contact_id")),
    };
    let contact = state.store.contacts().contact(&contact_id).await?.ok_or_else(|| hidden("contact"))?;
    if contact.counsellor_id.as_deref() != Some(staff.id()) && !staff.supervises(&contact.helpline) {
        return Err(staff.refuse(&state, "placement_reserve", &contact_id, hidden("contact")).await);
    }
    let district = req.district.clone().or_else(|| escalation.as_ref().and_then(|e| e.district.clone()));
    let now = state.clock.now_ms();
    let existing = state.store.placements().open_case_of_contact(&contact_id).await?;
    let new = NewPlacement {
        service_id: req.service_id.clone(),
        helpline: contact.helpline.clone(),
        contact_id: Some(contact_id.clone()),
        escalation_id: escalation.as_ref().map(|e| e.id.clone()),
        requested_by: staff.id().to_string(),
        at: now,
        case_id: existing.as_ref().map(|c| c.id.clone()),
        open_case: Some(NewCase {
            rules: crate::casework::CASE_RULES,
            helpline: contact.helpline.clone(),
            person_label: req.person_label.clone(),
            district: district.clone(),
            opened_by: staff.id().to_string(),
            contact_id: Some(contact_id.clone()),
            at: now,
        }),
    };
    match state.store.placements().reserve_place(&new).await {
        Ok(done) => {
            let p = &done.placement;
            staff.audit(&state, "placement_reserve", &p.id, Some(&format!("service {} contact {}", p.service_id, contact_id))).await;
            if let Some(case) = &done.opened_case {
                staff.audit(&state, "case_open", &case.id, Some(&format!("{} by placement {}", case.number, p.id))).await;
            }
            let case = done.opened_case.clone().or(existing);
            let body = Reserved { placement: p.clone(), case: case.map(|c| super::cases::case_view(&c)) };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(ReserveError::Full) => {
            let next = crate::casework::escalation::suggest(&state, &contact.helpline, district.as_deref())
                .await?
                .into_iter()
                .find(|s| s.service_id != req.service_id);
            staff.audit(&state, "placement_refused", &req.service_id, Some("service_full")).await;
            Err(AppError::new(ErrorCode::ServiceFull, "the service has no free place; try the next suggestion")
                .with("next_suggestion", serde_json::json!(next)))
        }
        Err(ReserveError::NotAllowed) => {
            staff.audit(&state, "placement_refused", &req.service_id, Some("helpline_not_allowed")).await;
            Err(AppError::new(ErrorCode::NotAllowed, format!("the {} helpline may not place people in that service", contact.helpline)))
        }
        Err(ReserveError::NoService) => Err(hidden("service")),
        Err(ReserveError::Store(e)) => Err(e.into()),
    }
}

/// A reserved place and the case it belongs to.
#[derive(Serialize, ToSchema)]
pub struct Reserved {
    placement: PlacementRecord,
    case: Option<super::cases::CaseView>,
}

async fn visible_placement(state: &AppState, staff: &Staff, id: &str, action: &str) -> Result<PlacementRecord, AppError> {
    let p = state.store.placements().placement(id).await?.ok_or_else(|| hidden("placement"))?;
    let case = match &p.case_id {
        Some(c) => state.store.cases().case(c).await?,
        None => None,
    };
    if !staff.sees_placement(&p, case.as_ref()) {
        return Err(staff.refuse(state, action, id, hidden("placement")).await);
    }
    Ok(p)
}

/// `GET /api/v1/placements/{id}` (audited).
#[utoipa::path(get, path = "/api/v1/placements/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the placement's id")),
    responses(
        (status = 200, description = "the placement", body = PlacementRecord),
        (status = 404, description = "no such placement, or not one you may see", body = ErrorBody),
    ))]
pub async fn placement(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let p = visible_placement(&state, &staff, &id, "placement_read").await?;
    staff.audit(&state, "placement_read", &id, None).await;
    Ok(Json(p).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetStatus {
    /// `admitted`, `left` or `cancelled`.
    status: String,
}

/// The statuses a placement may move to.
pub fn next_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "requested" => &["admitted", "cancelled"],
        "admitted" => &["left"],
        _ => &[],
    }
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
    let p = visible_placement(&state, &staff, &id, "placement_status").await?;
    let allowed = next_statuses(&p.status);
    if !allowed.contains(&req.status.as_str()) {
        return Err(AppError::new(ErrorCode::Conflict, format!("a {} placement cannot become {}", p.status, req.status))
            .with("allowed", serde_json::json!(allowed)));
    }
    if !state.store.placements().set_placement_status(&id, &p.status, &req.status, state.clock.now_ms()).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the placement changed meanwhile; read it again"));
    }
    staff.audit(&state, "placement_status", &id, Some(&format!("{} -> {}", p.status, req.status))).await;
    let p = state.store.placements().placement(&id).await?.ok_or_else(|| hidden("placement"))?;
    Ok(Json(p).into_response())
}

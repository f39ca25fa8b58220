//! The placement services registry (admins write it, staff read it) and placements, the service:
//! atomic reservation that opens or joins the contact's case, status changes that free the place. Who
//! may do what is checked here through [`crate::state::access`]; the REST edge is
//! [`crate::casework::http::services`].

use serde::Deserialize;
use utoipa::ToSchema;

use crate::casework::SERVICE_KINDS;
use crate::protocol::ErrorCode;
use crate::state::access::{check_text, hidden, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::cases::{CaseRecord, NewCase};
use crate::store::new_id;
use crate::store::services::{NewPlacement, PlacementRecord, ReserveError, ServiceRecord};
use crate::store::users::Role;

/// A new service (`POST /api/v1/services`, `helpline service add`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// `family_violence_centre`, `maternal_centre`, `community_home_children`, `family_type_home` or `elderly_disability_centre`.
    #[schema(pattern = "^(family_violence_centre|maternal_centre|community_home_children|family_type_home|elderly_disability_centre)$")]
    pub kind: String,
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub district: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub admission_24_7: bool,
    /// Places, 0 to 10,000.
    #[schema(minimum = 0, maximum = 10_000)]
    pub capacity: i64,
    /// Places taken, 0 to `capacity`.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10_000)]
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

/// The registry with places in use (no personal data).
pub async fn list(state: &AppState, staff: &Staff) -> Result<Vec<ServiceRecord>, AppError> {
    staff_only(staff)?;
    Ok(state.store.placements().services().await?)
}

/// One service of the registry.
pub async fn one(state: &AppState, staff: &Staff, id: &str) -> Result<ServiceRecord, AppError> {
    staff_only(staff)?;
    state.store.placements().service(id).await?.ok_or_else(|| hidden("service"))
}

/// Admins add a service (audited); a bad field is `bad_field`.
pub async fn add(state: &AppState, staff: &Staff, req: NewService) -> Result<ServiceRecord, AppError> {
    let known: Vec<String> = state.helplines.iter().map(|h| h.name.clone()).collect();
    let record = req.build(&known, state.clock.now_ms()).map_err(AppError::bad_field)?;
    state.store.placements().add_service(&record).await?;
    staff.audit(state, "service_add", &record.id, Some(&record.name)).await;
    Ok(record)
}

/// Only admins add services (others: 403, audited).
pub async fn admin_only(state: &AppState, staff: &Staff) -> Result<(), AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(state, "service_add", "services", AppError::forbidden("admins only")).await);
    }
    Ok(())
}

/// What a reservation needs (`POST /api/v1/placements`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    #[schema(min_length = 1)]
    pub service_id: String,
    #[serde(default)]
    pub escalation_id: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub district: Option<String>,
    #[serde(default)]
    pub person_label: Option<String>,
}

/// Reserves a place atomically for the contact of an escalation (or a contact) `staff` handled or
/// supervises, and opens the contact's case (or joins its open case); audited. A full service:
/// `service_full` with `next_suggestion`; a service the helpline may not use: `not_allowed`. Returns
/// the placement and its case.
pub async fn reserve(state: &AppState, staff: &Staff, req: Reserve) -> Result<(PlacementRecord, Option<CaseRecord>), AppError> {
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
        return Err(staff.refuse(state, "placement_reserve", &contact_id, hidden("contact")).await);
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
            case_manager_id: None,
            at: now,
        }),
    };
    match state.store.placements().reserve_place(&new).await {
        Ok(done) => {
            let p = &done.placement;
            staff.audit(state, "placement_reserve", &p.id, Some(&format!("service {} contact {}", p.service_id, contact_id))).await;
            if let Some(case) = &done.opened_case {
                staff.audit(state, "case_open", &case.id, Some(&format!("{} by placement {}", case.number, p.id))).await;
            }
            Ok((done.placement.clone(), done.opened_case.clone().or(existing)))
        }
        Err(ReserveError::Full) => {
            let next = crate::casework::escalation::suggest(state, &contact.helpline, district.as_deref())
                .await?
                .into_iter()
                .find(|s| s.service_id != req.service_id);
            staff.audit(state, "placement_refused", &req.service_id, Some("service_full")).await;
            Err(AppError::new(ErrorCode::ServiceFull, "the service has no free place; try the next suggestion")
                .with("next_suggestion", serde_json::json!(next)))
        }
        Err(ReserveError::NotAllowed) => {
            staff.audit(state, "placement_refused", &req.service_id, Some("helpline_not_allowed")).await;
            Err(AppError::new(ErrorCode::NotAllowed, format!("the {} helpline may not place people in that service", contact.helpline)))
        }
        Err(ReserveError::NoService) => Err(hidden("service")),
        Err(ReserveError::Store(e)) => Err(e.into()),
    }
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

/// A placement `staff` may see (404 otherwise, audited); the read is audited.
pub async fn placement(state: &AppState, staff: &Staff, id: &str) -> Result<PlacementRecord, AppError> {
    let p = visible_placement(state, staff, id, "placement_read").await?;
    staff.audit(state, "placement_read", id, None).await;
    Ok(p)
}

/// The statuses a placement may move to.
pub fn next_statuses(status: &str) -> &'static [&'static str] {
    match status {
        "requested" => &["admitted", "cancelled"],
        "admitted" => &["left"],
        _ => &[],
    }
}

/// Moves a placement `staff` may see to `status`: `requested → admitted | cancelled`, `admitted →
/// left`; leaving or cancelling frees the place (audited). `conflict` (with `allowed`) for another
/// status, or when the placement changed meanwhile. Returns the placement with its new status.
pub async fn set_status(state: &AppState, staff: &Staff, id: &str, status: &str) -> Result<PlacementRecord, AppError> {
    let p = visible_placement(state, staff, id, "placement_status").await?;
    let allowed = next_statuses(&p.status);
    if !allowed.contains(&status) {
        return Err(AppError::new(ErrorCode::Conflict, format!("a {} placement cannot become {}", p.status, status))
            .with("allowed", serde_json::json!(allowed)));
    }
    if !state.store.placements().set_placement_status(id, &p.status, status, state.clock.now_ms()).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the placement changed meanwhile; read it again"));
    }
    staff.audit(state, "placement_status", id, Some(&format!("{} -> {}", p.status, status))).await;
    state.store.placements().placement(id).await?.ok_or_else(|| hidden("placement"))
}

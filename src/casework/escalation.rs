//! Escalations: a counsellor raises one on a contact (the `escalate` frame or `POST /api/v1/escalations`),
//! supervisors of its helpline hear of it at once (every supervisor when the risk is imminent, or after
//! 2 minutes unacknowledged), and an emergency placement gets the services with a free place.

use std::collections::HashMap;

use serde::Deserialize;

use crate::casework::{self, ACK_WITHIN_MS};
use crate::chat::engine_task::contact_key;
use crate::chat::hub::Hub;
use crate::protocol::{rfc3339, ErrorCode, EscalationView, ServerEvent, ServiceSuggestion};
use crate::routing::{Input, PRIORITY_FRONT};
use crate::state::access::{check_text, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::forms::EscalationRecord;
use crate::store::new_id;
use crate::store::services::ServiceRecord;
use crate::store::users::Role;
use crate::store::Store;

/// What an escalation needs (the `escalate` frame, or `POST /api/v1/escalations`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateRequest {
    #[schema(min_length = 1)]
    pub contact_id: String,
    /// `emergency_placement`, `child_protection` or `emergency_services`.
    #[schema(pattern = "^(emergency_placement|child_protection|emergency_services)$")]
    pub kind: String,
    /// `none`, `low`, `medium`, `high` or `imminent`.
    #[schema(pattern = "^(none|low|medium|high|imminent)$")]
    pub risk: String,
    /// Why (not blank; at most 2000 characters).
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub reason: String,
    /// At most 100 characters; blank: none.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub district: Option<String>,
}

pub fn view(e: &EscalationRecord, everyone: bool, names: &Names) -> EscalationView {
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
        helpline_name: names.helpline(&e.helpline).cloned(),
        counsellor_name: names.person(&e.counsellor_id).cloned(),
    }
}

/// Display names for what supervisors see (so a wall shows "Telefonul copilului · Ana", not codes):
/// helplines by code, accounts by id. Escalation views carry them; so do the blocks' list.
#[derive(Debug, Default)]
pub struct Names {
    helplines: HashMap<String, String>,
    people: HashMap<String, String>,
}

impl Names {
    /// The helplines' names and those of the accounts `people`. A store that fails leaves them out (the
    /// views then carry the codes only) rather than holding an alert back.
    pub async fn lookup(store: &Store, mut people: Vec<String>) -> Names {
        let mut names = Names::default();
        match store.directory().helplines().await {
            Ok(all) => names.helplines = all.into_iter().map(|h| (h.name, h.display_name)).collect(),
            Err(err) => tracing::warn!(error = %err, "the helplines' names could not be read"),
        }
        people.sort();
        people.dedup();
        match store.accounts().users_by_ids(&people).await {
            Ok(users) => names.people = users.into_iter().map(|u| (u.id, u.display_name)).collect(),
            Err(err) => tracing::warn!(error = %err, "the accounts' names could not be read"),
        }
        names
    }

    /// The names an escalation view needs: the helplines', and the escalating counsellors'.
    pub async fn of(store: &Store, list: &[&EscalationRecord]) -> Names {
        Names::lookup(store, list.iter().map(|e| e.counsellor_id.clone()).collect()).await
    }

    /// A helpline's display name, by its code.
    pub fn helpline(&self, name: &str) -> Option<&String> {
        self.helplines.get(name)
    }

    /// An account's display name, by its id.
    pub fn person(&self, id: &str) -> Option<&String> {
        self.people.get(id)
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
    let list = state.store.placements().suggestions(helpline, casework::fitting_service_kinds(helpline), district).await?;
    Ok(list.iter().map(suggestion).collect())
}

/// Puts a contact at the front of its queue if it is waiting (a live conversation keeps its counsellor;
/// its stored priority was raised with the escalation or form).
pub async fn raise_priority(state: &AppState, contact_id: &str) {
    if let Some(key) = contact_key(contact_id) {
        state.engine.input(Input::SetPriority { contact: key, priority: PRIORITY_FRONT }).await;
    }
}

/// The counsellor who handled `contact_id` submitted its form: her slot of it leaves wrap-up (the
/// engine ignores this when it is not in wrap-up).
pub async fn ready_after_form(state: &AppState, counsellor_id: &str, contact_id: &str) {
    if let (Some(contact), Some(counsellor)) = (contact_key(contact_id), crate::chat::engine_task::counsellor_key(counsellor_id)) {
        state.engine.input(Input::Ready { counsellor, contact }).await;
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
    let contact = state.store.contacts().contact(&req.contact_id).await?;
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
    state.store.forms().create_escalation(&record).await?;
    staff.audit(state, "escalate", &contact.id, Some(&format!("{} {} {}", record.id, record.kind, record.risk))).await;
    let imminent = record.risk == "imminent";
    if imminent {
        raise_priority(state, &contact.id).await;
        state.store.forms().mark_broadcast(&record.id, record.created_at).await?;
    }
    let helpline = (!imminent).then_some(record.helpline.as_str());
    let names = Names::of(&state.store, &[&record]).await;
    state.hub.event_to_supervisors(helpline, &ServerEvent::Escalation(view(&record, imminent, &names)));
    let suggestions =
        if record.kind == "emergency_placement" { suggest(state, &record.helpline, record.district.as_deref()).await? } else { Vec::new() };
    Ok((record, suggestions))
}

/// Acknowledges an escalation for a supervisor (socket or REST); false if already acknowledged.
pub async fn acknowledge_as(state: &AppState, staff: &Staff, id: &str) -> Result<bool, AppError> {
    let Some(e) = state.store.forms().escalation(id).await? else {
        return Err(AppError::new(ErrorCode::NotFound, "no such escalation"));
    };
    // After the 2-minute broadcast every supervisor may acknowledge; before, those of its helpline.
    let may = staff.supervises(&e.helpline) || (e.broadcast_at.is_some() && staff.user.role == Role::Supervisor);
    if !may {
        return Err(staff.refuse(state, "acknowledge", id, AppError::forbidden("not a helpline you supervise")).await);
    }
    let first = state.store.forms().acknowledge_escalation(id, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "acknowledge", id, None).await;
    Ok(first)
}

/// One step of the acknowledgement watch (every second, from `app::loops`): escalations
/// unacknowledged for 2 minutes (by the server clock) go to every supervisor, once.
pub async fn alert_unacknowledged(store: &Store, hub: &Hub, now: i64) {
    match store.forms().claim_unacknowledged(now - ACK_WITHIN_MS, now).await {
        Ok(due) => {
            let names = Names::of(store, &due.iter().collect::<Vec<_>>()).await;
            for e in due {
                tracing::warn!(escalation = %e.id, helpline = %e.helpline, "escalation unacknowledged for 2 minutes: alerting every supervisor");
                hub.event_to_supervisors(None, &ServerEvent::Escalation(view(&e, true, &names)));
            }
        }
        Err(err) => tracing::warn!(error = %err, "checking unacknowledged escalations failed"),
    }
}

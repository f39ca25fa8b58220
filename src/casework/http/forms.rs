//! Contact forms: the per-helpline taxonomy, drafts saved as typed, submission with every field's error named (422), and the list of open wrap-ups.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{parse_body, visible_contact, Staff};
use crate::state::AppState;
use crate::casework::{self, ContactForm};
use crate::state::error::AppError;
use crate::protocol::{rfc3339, ErrorCode, ServerEvent};
use crate::store::forms::FormRecord;
use crate::store::users::Role;

/// `GET /api/v1/helplines/{name}/taxonomy`: the form's vocabularies and categories for one helpline.
pub async fn taxonomy(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    if !state.helplines.iter().any(|h| h.name == name) {
        return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
    }
    Ok(Json(casework::taxonomy(&name)).into_response())
}

pub(crate) fn view(contact_id: &str, record: Option<&FormRecord>) -> serde_json::Value {
    match record {
        Some(r) => serde_json::json!({
            "contact_id": contact_id,
            "status": r.status,
            "form": serde_json::from_str::<serde_json::Value>(&r.data).unwrap_or_default(),
            "counsellor_id": r.counsellor_id,
            "updated_at": rfc3339(r.updated_at),
            "submitted_at": r.submitted_at.map(rfc3339),
        }),
        None => serde_json::json!({ "contact_id": contact_id, "status": "none", "form": ContactForm::default() }),
    }
}

/// `GET /api/v1/contacts/{id}/form`: the form (or the draft) of a contact (audited).
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    visible_contact(&state, &staff, &id, "form_read").await?;
    let record = state.store.form(&id).await?;
    staff.audit(&state, "form_read", &id, None).await;
    Ok(Json(view(&id, record.as_ref())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveForm {
    /// True: save as typed, only known values checked. False: submit; every required field must be there.
    #[serde(default)]
    draft: bool,
    form: ContactForm,
}

/// `PUT /api/v1/contacts/{id}/form {draft, form}`: saves a draft or submits the form. Only the
/// counsellor who handled the contact (or a supervisor of its helpline) writes it. A submitted form
/// stays submitted: later saves are checked as submissions. 422 `invalid_form` names every bad field.
pub async fn save(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SaveForm = parse_body(&body)?;
    let contact = visible_contact(&state, &staff, &id, "form_write").await?;
    let handler = contact.counsellor_id.as_deref() == Some(staff.id());
    if !handler && !staff.supervises(&contact.helpline) {
        return Err(staff.refuse(&state, "form_write", &id, AppError::forbidden("only the counsellor who handled the contact writes its form")).await);
    }
    let before = state.store.form(&id).await?;
    let submit = !req.draft || before.as_ref().is_some_and(|f| f.status == "submitted");
    if let Err(fields) = casework::validate(&contact.helpline, &req.form, submit) {
        let message = format!("the form has {} invalid field(s): {}", fields.len(), fields.keys().cloned().collect::<Vec<_>>().join(", "));
        return Err(AppError::new(ErrorCode::InvalidForm, message).with("fields", serde_json::json!(fields)));
    }
    let now = state.clock.now_ms();
    let record = FormRecord {
        contact_id: id.clone(),
        helpline: contact.helpline.clone(),
        counsellor_id: before.as_ref().map(|f| f.counsellor_id.clone()).or(contact.counsellor_id.clone()).unwrap_or_else(|| staff.id().to_string()),
        data: serde_json::to_string(&req.form).map_err(|_| AppError::internal())?,
        risk: req.form.risk.clone(),
        status: if submit { "submitted" } else { "draft" }.into(),
        updated_at: now,
        submitted_at: submit.then_some(now),
    };
    let previous_risk = state.store.save_form(&record).await?;
    staff.audit(&state, if submit { "form_submit" } else { "form_draft" }, &id, record.risk.as_deref()).await;
    if record.risk.as_deref() == Some("imminent") && previous_risk.as_deref() != Some("imminent") {
        imminent_from_form(&state, &staff, &contact.helpline, &id).await;
    }
    let saved = state.store.form(&id).await?;
    Ok(Json(view(&id, saved.as_ref())).into_response())
}

/// A form's risk became `imminent`: the contact's priority is raised and its supervisors alerted at
/// once, even before the form is complete.
async fn imminent_from_form(state: &AppState, staff: &Staff, helpline: &str, contact_id: &str) {
    crate::casework::escalation::raise_priority(state, contact_id).await;
    state.hub.event_to_supervisors(
        Some(helpline),
        &ServerEvent::Alert {
            kind: "risk_imminent".into(),
            helpline: Some(helpline.into()),
            contact_id: Some(contact_id.into()),
            counsellor_id: Some(staff.id().into()),
            message: "the counsellor assessed the risk as imminent".into(),
            at: rfc3339(state.clock.now_ms()),
        },
    );
}

/// `GET /api/v1/contact-forms/incomplete`: your ended contacts whose form is not submitted yet (`contacts`:
/// their ids; `wrapups`: each with its helpline, language, channel, end time and form status).
pub async fn incomplete(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if staff.user.role != Role::Counsellor && !staff.is_admin() && staff.user.role != Role::Supervisor {
        return Err(AppError::forbidden("counsellors only"));
    }
    let wrapups = state.store.incomplete_forms(staff.id()).await?;
    let ids: Vec<&str> = wrapups.iter().map(|w| w.contact_id.as_str()).collect();
    Ok(Json(serde_json::json!({ "contacts": ids, "wrapups": wrapups })).into_response())
}

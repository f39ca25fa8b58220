//! Contact forms: the per-helpline taxonomy, drafts saved as typed, submission with every field's error named (422), and the list of open wrap-ups.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_body, visible_contact, Staff};
use crate::state::AppState;
use crate::casework::{self, ContactForm};
use crate::state::error::{AppError, ErrorBody};
use crate::protocol::{rfc3339, ErrorCode, ServerEvent};
use crate::store::forms::{FormRecord, Wrapup};
use crate::store::users::Role;

/// `GET /api/v1/helplines/{name}/taxonomy`: the form's vocabularies and categories for one helpline.
#[utoipa::path(get, path = "/api/v1/helplines/{name}/taxonomy", tag = "casework", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the contact form's vocabularies (caller types, age groups, genders, outcomes, risks) and the helpline's categories", body = Object),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/api/v1/contacts/{id}/form", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "`{contact_id, status, form, counsellor_id, updated_at, submitted_at}`; `status` is `none`, `draft` or `submitted`", body = Object),
        (status = 404, description = "no such contact, or not one you may see", body = ErrorBody),
    ))]
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    visible_contact(&state, &staff, &id, "form_read").await?;
    let record = state.store.forms().form(&id).await?;
    staff.audit(&state, "form_read", &id, None).await;
    Ok(Json(view(&id, record.as_ref())).into_response())
}

#[derive(Deserialize, ToSchema)]
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
#[utoipa::path(put, path = "/api/v1/contacts/{id}/form", tag = "casework", security(("bearer" = [])), request_body = SaveForm,
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "the saved form, as `GET` shows it", body = Object),
        (status = 400, description = "`bad_field`: the body is not `{draft?, form}`", body = ErrorBody),
        (status = 403, description = "only the counsellor who handled the contact (or a supervisor of its helpline) writes its form", body = ErrorBody),
        (status = 404, description = "no such contact, or not one you may see", body = ErrorBody),
        (status = 422, description = "`invalid_form`: `fields` names every bad field", body = ErrorBody),
    ))]
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
    let before = state.store.forms().form(&id).await?;
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
    let previous_risk = state.store.forms().save_form(&record).await?;
    staff.audit(&state, if submit { "form_submit" } else { "form_draft" }, &id, record.risk.as_deref()).await;
    if record.risk.as_deref() == Some("imminent") && previous_risk.as_deref() != Some("imminent") {
        imminent_from_form(&state, &staff, &contact.helpline, &id).await;
    }
    if submit && handler {
        // The after-contact work is done: the slot leaves wrap-up (nothing if it is not in wrap-up).
        crate::casework::escalation::ready_after_form(&state, staff.id(), &id).await;
    }
    let saved = state.store.forms().form(&id).await?;
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
#[utoipa::path(get, path = "/api/v1/contact-forms/incomplete", tag = "casework", security(("bearer" = [])),
    responses((status = 200, description = "your open wrap-ups", body = Incomplete)))]
pub async fn incomplete(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if staff.user.role != Role::Counsellor && !staff.is_admin() && staff.user.role != Role::Supervisor {
        return Err(AppError::forbidden("counsellors only"));
    }
    let wrapups = state.store.forms().incomplete_forms(staff.id()).await?;
    let contacts: Vec<String> = wrapups.iter().map(|w| w.contact_id.clone()).collect();
    Ok(Json(Incomplete { contacts, wrapups }).into_response())
}

/// Your ended contacts whose form is not submitted yet.
#[derive(Serialize, ToSchema)]
pub struct Incomplete {
    /// Their ids.
    contacts: Vec<String>,
    wrapups: Vec<Wrapup>,
}

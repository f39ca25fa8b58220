//! Contact forms, the service: drafts saved as typed, submission with every field's error named, an
//! imminent risk raising the contact's priority and alerting its supervisors, and a counsellor's open
//! wrap-ups. Who may read or write a form is checked here through [`crate::state::access`]; the REST
//! edge is [`crate::casework::http::forms`].

use crate::casework::{self, ContactForm};
use crate::protocol::{rfc3339, ErrorCode, ServerEvent};
use crate::state::access::{visible_contact, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::forms::{FormRecord, Wrapup};
use crate::store::users::Role;

/// The form's vocabularies and categories for one helpline (`unknown_helpline` for another name).
pub async fn taxonomy(state: &AppState, helpline: &str) -> Result<serde_json::Value, AppError> {
    let (categories, own) = categories_of(state, helpline).await?;
    Ok(casework::taxonomy_with(helpline, &categories, own))
}

/// A helpline's categories as they are: its own (true) or the built-in ones (false).
pub async fn categories_of(state: &AppState, helpline: &str) -> Result<(Vec<casework::CategoryDef>, bool), AppError> {
    if !state.helplines.iter().any(|h| h.name == helpline) {
        return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
    }
    let own =
        state.store.directory().categories(helpline).await?.and_then(|json| serde_json::from_str::<Vec<casework::CategoryDef>>(&json).ok());
    Ok(match own {
        Some(list) => (list, true),
        None => (casework::builtin_categories(helpline), false),
    })
}

/// Sets a helpline's own categories (admins; checked, audited); forms are checked against them from
/// then on (forms already saved keep their codes). Returns the taxonomy now.
pub async fn set_categories(
    state: &AppState,
    staff: &Staff,
    helpline: &str,
    list: &[casework::CategoryDef],
) -> Result<serde_json::Value, AppError> {
    staff.admin_or_refuse(state, "taxonomy_set", helpline).await?;
    if !state.helplines.iter().any(|h| h.name == helpline) {
        return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
    }
    let checked = casework::check_categories(list).map_err(AppError::bad_field)?;
    let json = serde_json::to_string(&checked).map_err(|_| AppError::internal())?;
    state.store.directory().set_categories(helpline, &json, staff.id(), state.clock.now_ms()).await?;
    let codes: Vec<&str> = checked.iter().map(|c| c.code.as_str()).collect();
    staff.audit(state, "taxonomy_set", helpline, Some(&codes.join(","))).await;
    Ok(casework::taxonomy_with(helpline, &checked, true))
}

/// A contact's form as it is shown: `{contact_id, status, form, counsellor_id, updated_at, submitted_at}`
/// (`status` `none` with an empty form when there is none yet).
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

/// The form (or the draft) of a contact `staff` may see (404 otherwise, audited); the read is audited.
pub async fn read(state: &AppState, staff: &Staff, id: &str) -> Result<serde_json::Value, AppError> {
    visible_contact(state, staff, id, "form_read").await?;
    let record = state.store.forms().form(id).await?;
    staff.audit(state, "form_read", id, None).await;
    Ok(view(id, record.as_ref()))
}

/// Saves a draft (`draft`: only known values checked) or submits the form (every required field). Only
/// the counsellor who handled the contact (or a supervisor of its helpline) writes it. A submitted form
/// stays submitted: later saves are checked as submissions; `invalid_form` names every bad field. A
/// risk that becomes `imminent` raises the contact's priority and alerts its supervisors at once.
/// Returns the saved form, as [`read`] shows it.
pub async fn save(state: &AppState, staff: &Staff, id: &str, draft: bool, form: ContactForm) -> Result<serde_json::Value, AppError> {
    let contact = visible_contact(state, staff, id, "form_write").await?;
    let handler = contact.counsellor_id.as_deref() == Some(staff.id());
    if !handler && !staff.supervises(&contact.helpline) {
        return Err(staff
            .refuse(state, "form_write", id, AppError::forbidden("only the counsellor who handled the contact writes its form"))
            .await);
    }
    let before = state.store.forms().form(id).await?;
    let submit = !draft || before.as_ref().is_some_and(|f| f.status == "submitted");
    let (categories, _) = categories_of(state, &contact.helpline).await?;
    if let Err(fields) = casework::validate_with(&categories, &form, submit) {
        return Err(invalid_form(&fields));
    }
    let now = state.clock.now_ms();
    let record = FormRecord {
        contact_id: id.to_string(),
        helpline: contact.helpline.clone(),
        counsellor_id: before
            .as_ref()
            .map(|f| f.counsellor_id.clone())
            .or(contact.counsellor_id.clone())
            .unwrap_or_else(|| staff.id().to_string()),
        data: serde_json::to_string(&form).map_err(|_| AppError::internal())?,
        risk: form.risk.clone(),
        status: if submit { "submitted" } else { "draft" }.into(),
        updated_at: now,
        submitted_at: submit.then_some(now),
    };
    let previous_risk = state.store.forms().save_form(&record).await?;
    staff.audit(state, if submit { "form_submit" } else { "form_draft" }, id, record.risk.as_deref()).await;
    if record.risk.as_deref() == Some("imminent") && previous_risk.as_deref() != Some("imminent") {
        imminent_from_form(state, staff, &contact.helpline, id).await;
    }
    if submit && handler {
        // The after-contact work is done: the slot leaves wrap-up (nothing if it is not in wrap-up).
        crate::casework::escalation::ready_after_form(state, staff.id(), id).await;
    }
    let saved = state.store.forms().form(id).await?;
    Ok(view(id, saved.as_ref()))
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

/// `staff`'s ended contacts whose form is not submitted yet (counsellors, supervisors and admins).
pub async fn incomplete(state: &AppState, staff: &Staff) -> Result<Vec<Wrapup>, AppError> {
    if staff.user.role != Role::Counsellor && !staff.is_admin() && staff.user.role != Role::Supervisor {
        return Err(AppError::forbidden("counsellors only"));
    }
    Ok(state.store.forms().incomplete_forms(staff.id()).await?)
}

/// The `invalid_form` answer: every field's fault named at once (a contact form, a stage form).
pub fn invalid_form(fields: &std::collections::BTreeMap<String, String>) -> AppError {
    let message = format!("the form has {} invalid field(s): {}", fields.len(), fields.keys().cloned().collect::<Vec<_>>().join(", "));
    AppError::new(ErrorCode::InvalidForm, message).with("fields", serde_json::json!(fields))
}

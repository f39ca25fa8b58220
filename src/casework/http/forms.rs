//! The REST edge of contact forms (the service is [`crate::casework::forms`]): the per-helpline
//! taxonomy, drafts saved as typed, submission with every field's error named (422), and the list of
//! open wrap-ups.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_body, Staff};
use crate::casework::forms;
use crate::casework::ContactForm;
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::forms::Wrapup;

/// `GET /api/v1/helplines/{name}/taxonomy`: the form's vocabularies and categories for one helpline.
#[utoipa::path(get, path = "/api/v1/helplines/{name}/taxonomy", tag = "casework", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the contact form's vocabularies (caller types, age groups, genders, outcomes, risks) and the helpline's categories", body = Object),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn taxonomy(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    Ok(Json(forms::taxonomy(&state, &name).await?).into_response())
}

/// `PUT /api/v1/helplines/{name}/taxonomy {categories}`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCategories {
    /// The categories the helpline's contact form offers from now on, in this order.
    categories: Vec<crate::casework::CategoryDef>,
}

/// `PUT /api/v1/helplines/{name}/taxonomy`: sets the helpline's own contact-form categories (admins;
/// audited). Forms are checked against them from then on; forms already saved keep their codes.
#[utoipa::path(put, path = "/api/v1/helplines/{name}/taxonomy", tag = "casework", security(("bearer" = [])), request_body = SetCategories,
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the taxonomy now (`own_categories`: true)", body = Object),
        (status = 400, description = "`bad_field`: 1 to 200 categories, each code 1-64 of a-z, 0-9, `_`, `.` and once, each label 1-120 characters", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn set_taxonomy(
    State(state): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetCategories = parse_body(&body)?;
    Ok(Json(forms::set_categories(&state, &staff, &name, &req.categories).await?).into_response())
}

/// `GET /api/v1/contacts/{id}/form`: the form (or the draft) of a contact (audited).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/form", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "`{contact_id, status, form, counsellor_id, updated_at, submitted_at}`; `status` is `none`, `draft` or `submitted`", body = Object),
        (status = 404, description = "no such contact, or not one you may see", body = ErrorBody),
    ))]
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(forms::read(&state, &staff, &id).await?).into_response())
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
    Ok(Json(forms::save(&state, &staff, &id, req.draft, req.form).await?).into_response())
}

/// `GET /api/v1/contact-forms/incomplete`: your ended contacts whose form is not submitted yet (`contacts`:
/// their ids; `wrapups`: each with its helpline, language, channel, end time and form status).
#[utoipa::path(get, path = "/api/v1/contact-forms/incomplete", tag = "casework", security(("bearer" = [])),
    responses((status = 200, description = "your open wrap-ups", body = Incomplete)))]
pub async fn incomplete(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    let wrapups = forms::incomplete(&state, &staff).await?;
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

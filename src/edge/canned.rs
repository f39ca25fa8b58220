//! Canned responses over REST (`/api/v1/canned-responses`): short replies per helpline and language
//! that counsellors insert in the console (docs/web-agent.md).
//!
//! Read: a counsellor gets those of the helplines she serves (first-line or backup), a supervisor those
//! of the helplines they supervise, an admin all (case managers: 403). Written (create, update, delete):
//! a supervisor of the response's helpline or an admin, audited; a response outside one's helplines is
//! a 404 (existence not disclosed), the refusal audited. Scope through [`crate::state::access`].

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::protocol::ErrorCode;
use crate::state::access::{check_text, hidden, parse_body, Scope, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::canned::{CannedRecord, CannedText};
use crate::store::users::Role;

/// The longest title and text (characters).
pub const TITLE_MAX: usize = 80;
pub const BODY_MAX: usize = 2000;

/// The canned responses' routes, with their OpenAPI descriptions (tag `casework`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(update, remove))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CannedQuery {
    /// One helpline (it must be one of yours); absent: all of yours.
    helpline: Option<String>,
    /// One language (`ro`, `ru`, …); absent: every language.
    language: Option<String>,
}

/// A canned response to create or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedRequest {
    helpline: String,
    /// One of the helpline's languages.
    language: String,
    /// Not blank; at most 80 characters.
    #[schema(min_length = 1, max_length = 80, pattern = "\\S")]
    title: String,
    /// Not blank; at most 2000 characters.
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    body: String,
}

/// The list answer.
#[derive(Serialize, ToSchema)]
pub struct CannedList {
    canned_responses: Vec<CannedRecord>,
}

/// The helplines whose responses `staff` reads: a counsellor's own (first-line and backup), a
/// supervisor's scope, all for admins; case managers none (403).
fn readable(staff: &Staff) -> Result<Scope, AppError> {
    match staff.user.role {
        Role::Counsellor => Ok(Scope::Only(staff.user.helplines.iter().chain(&staff.user.backup_helplines).cloned().collect())),
        Role::Supervisor | Role::Admin => Ok(staff.scope()),
        Role::CaseManager => Err(AppError::forbidden("counsellors, supervisors and admins only")),
    }
}

/// A request's fields checked: a known helpline, one of its languages, a title and a text within limits.
fn checked(state: &AppState, req: CannedRequest) -> Result<CannedText, AppError> {
    let Some(helpline) = state.helplines.iter().find(|h| h.name == req.helpline) else {
        return Err(AppError::new(ErrorCode::UnknownHelpline, format!("no such helpline {:?}", req.helpline)));
    };
    if !helpline.languages.contains(&req.language) {
        return Err(AppError::bad_field(format!("language: {} answers in {}", helpline.name, helpline.languages.join(", "))));
    }
    Ok(CannedText {
        helpline: req.helpline,
        language: req.language,
        title: check_text("title", &req.title, TITLE_MAX)?,
        body: check_text("body", &req.body, BODY_MAX)?,
    })
}

/// Writes are for supervisors and admins: anyone else gets 403 (audited).
async fn writer(state: &AppState, staff: &Staff, action: &str, target: &str) -> Result<(), AppError> {
    if let Err(err) = staff.supervisor_only() {
        return Err(staff.refuse(state, action, target, err).await);
    }
    Ok(())
}

/// The helpline of a new or changed response must be one the writer supervises: 403 otherwise (helpline
/// names are public), audited.
async fn in_scope(state: &AppState, staff: &Staff, action: &str, text: &CannedText) -> Result<(), AppError> {
    staff.helpline_or_refuse(state, action, &text.helpline).await
}

/// Loads a response the writer may change: 404 when there is none or it is outside their helplines (audited).
async fn writable(state: &AppState, staff: &Staff, action: &str, id: &str) -> Result<CannedRecord, AppError> {
    match state.store.canned().get(id).await? {
        Some(c) if staff.supervises(&c.helpline) => Ok(c),
        Some(_) => Err(staff.refuse(state, action, id, hidden("canned response")).await),
        None => Err(hidden("canned response")),
    }
}

/// `GET /api/v1/canned-responses?helpline=&language=`: the canned responses you may use or manage.
#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "casework", security(("bearer" = [])), params(CannedQuery),
    responses(
        (status = 200, description = "the responses of your helplines (a counsellor: those she serves; a supervisor: those supervised; an admin: all), by helpline, language and title", body = CannedList),
        (status = 403, description = "case managers; a `helpline` that is not one of yours", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<CannedQuery>) -> Result<Response, AppError> {
    let scope = readable(&staff)?;
    let helplines = match (&q.helpline, scope) {
        (Some(h), scope) if scope.covers(h) => Some(vec![h.clone()]),
        (Some(h), _) => {
            return Err(staff.refuse(&state, "canned_list", h, AppError::forbidden(format!("{h:?} is not one of your helplines"))).await)
        }
        (None, scope) => scope.list(),
    };
    let canned_responses = state.store.canned().list(helplines.as_deref(), q.language.as_deref()).await?;
    Ok(Json(CannedList { canned_responses }).into_response())
}

/// `POST /api/v1/canned-responses`: a new canned response (supervisors of its helpline, admins; audited).
#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "casework", security(("bearer" = [])), request_body = CannedRequest,
    responses(
        (status = 201, description = "the response as stored", body = CannedRecord),
        (status = 400, description = "`bad_field`: a missing or unknown field, a language the helpline does not answer in, an empty or too long title or text", body = ErrorBody),
        (status = 403, description = "not a supervisor of that helpline nor an admin", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn create(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    writer(&state, &staff, "canned_create", "canned_responses").await?;
    let text = checked(&state, parse_body(&body)?)?;
    in_scope(&state, &staff, "canned_create", &text).await?;
    let record = state.store.canned().create(&text, staff.id(), state.clock.now_ms()).await?;
    staff.audit(&state, "canned_create", &record.id, Some(&record.helpline)).await;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `PUT /api/v1/canned-responses/{id}`: replaces a canned response (supervisors of its helpline, and of
/// the new one, admins; audited).
#[utoipa::path(put, path = "/api/v1/canned-responses/{id}", tag = "casework", security(("bearer" = [])), request_body = CannedRequest,
    params(("id" = String, Path, description = "the response's id")),
    responses(
        (status = 200, description = "the response now", body = CannedRecord),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 403, description = "not a supervisor nor an admin; a new helpline that is not yours", body = ErrorBody),
        (status = 404, description = "no such response in your helplines; `unknown_helpline`", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    writer(&state, &staff, "canned_update", &id).await?;
    writable(&state, &staff, "canned_update", &id).await?;
    let text = checked(&state, parse_body(&body)?)?;
    in_scope(&state, &staff, "canned_update", &text).await?;
    let Some(record) = state.store.canned().update(&id, &text, state.clock.now_ms()).await? else {
        return Err(hidden("canned response"));
    };
    staff.audit(&state, "canned_update", &id, Some(&record.helpline)).await;
    Ok(Json(record).into_response())
}

/// `DELETE /api/v1/canned-responses/{id}`: deletes a canned response (supervisors of its helpline, admins; audited).
#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the response's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "not a supervisor nor an admin", body = ErrorBody),
        (status = 404, description = "no such response in your helplines", body = ErrorBody),
    ))]
pub async fn remove(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    writer(&state, &staff, "canned_delete", &id).await?;
    let record = writable(&state, &staff, "canned_delete", &id).await?;
    if !state.store.canned().delete(&id).await? {
        return Err(hidden("canned response"));
    }
    staff.audit(&state, "canned_delete", &id, Some(&record.helpline)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

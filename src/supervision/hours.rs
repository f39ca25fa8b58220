//! Opening hours over REST.
//!
//! `GET /api/v1/helplines/{name}/hours` (admins, and supervisors of that helpline) and
//! `PUT /api/v1/helplines/{name}/hours` (admins; audited): a helpline's time zone, weekly opening
//! spans and holidays (`routing::hours`; none set: open 24/7). A change applies to chats started from
//! then on; messages and callbacks already left keep the time they were given.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::engine_task::EngineCommand;
use crate::protocol::{rfc3339, ErrorCode};
use crate::routing::hours::{is_open, next_open, Hours};
use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The hours routes, with their OpenAPI descriptions (tag `supervision`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, set))
}

/// A helpline's hours, and what they mean now.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoursView {
    pub helpline: String,
    pub hours: Hours,
    /// No spans and no holidays: never closed.
    pub always_open: bool,
    pub open_now: bool,
    /// When it next opens, while closed.
    pub next_open: Option<String>,
}

fn view(helpline: &str, hours: Hours, now: i64) -> Result<HoursView, AppError> {
    let s = hours.schedule().map_err(|e| AppError::new(ErrorCode::Internal, format!("stored hours: {e}")))?;
    let open_now = is_open(now, &s);
    let next = if open_now { None } else { next_open(now, &s).map(rfc3339) };
    Ok(HoursView { helpline: helpline.into(), always_open: s.is_24_7(), hours, open_now, next_open: next })
}

fn known_helpline(state: &AppState, name: &str) -> Result<(), AppError> {
    if state.helplines.iter().any(|h| h.name == name) {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"))
    }
}

/// `GET /api/v1/helplines/{name}/hours`: the helpline's opening hours (admins, its supervisors).
#[utoipa::path(get, path = "/api/v1/helplines/{name}/hours", tag = "supervision", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the hours (none set: open 24/7 in UTC) and whether it is open now", body = HoursView),
        (status = 403, description = "not an admin nor a supervisor of this helpline", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn show(State(state): State<AppState>, staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    known_helpline(&state, &name)?;
    if !staff.supervises(&name) {
        return Err(staff.refuse(&state, "hours_read", &name, AppError::forbidden("admins and this helpline's supervisors only")).await);
    }
    let hours = state.store.directory().hours(&name).await?.unwrap_or_default();
    Ok(Json(view(&name, hours, state.clock.now_ms())?).into_response())
}

/// `PUT /api/v1/helplines/{name}/hours`: sets the helpline's opening hours (admins; audited).
#[utoipa::path(put, path = "/api/v1/helplines/{name}/hours", tag = "supervision", security(("bearer" = [])), request_body = Hours,
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the hours now", body = HoursView),
        (status = 400, description = "`bad_field`: an unknown time zone or day, a bad time or holiday, a span that closes before it opens", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn set(
    State(state): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "hours_set", &name, AppError::forbidden("admins only")).await);
    }
    known_helpline(&state, &name)?;
    let hours: Hours = parse_body(&body)?;
    hours.schedule().map_err(|e| AppError::bad_field(e.to_string()))?;
    let now = state.clock.now_ms();
    state.store.directory().set_hours(&name, &hours, now).await?;
    state.engine.send(EngineCommand::SetHours { helpline: name.clone(), hours: hours.clone() }).await;
    let detail = serde_json::to_string(&hours).unwrap_or_default();
    staff.audit(&state, "hours_set", &name, Some(&detail)).await;
    Ok(Json(view(&name, hours, now)?).into_response())
}

//! Opening hours over REST.
//!
//! `GET /api/v1/helplines/{name}/hours` (admins, and supervisors of that helpline) and
//! `PUT /api/v1/helplines/{name}/hours` (admins; audited): a helpline's time zone, weekly opening
//! spans and holidays (`routing::hours`; none set: open 24/7). A change applies to chats started from
//! then on; messages and callbacks already left keep the time they were given.
//!
//! `GET` and `PUT /api/v1/helplines/{name}/settings` (admins, and supervisors of that helpline; the
//! change audited): the rest of a helpline's day — its wrap-up limit, its away reasons, its triage
//! question — checked by the engine's rules (`routing::{wrapup, away, triage}`), stored, and handed to
//! the running router at once (as hours are): they apply from then on.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::engine_task::EngineCommand;
use crate::protocol::{rfc3339, ErrorCode};
use crate::routing::hours::{is_open, next_open, Hours};
use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The hours and settings routes, with their OpenAPI descriptions (tag `supervision`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, set)).routes(routes!(show_settings, set_settings))
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

/// A helpline's waiting settings: after-contact work, away reasons, the triage question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingSettings {
    /// How long a slot stays in wrap-up after a conversation at most, ms: 0 (no wrap-up) to 3,600,000.
    #[schema(minimum = 0, maximum = 3_600_000)]
    pub wrapup_limit_ms: i64,
    /// The reasons its counsellors may give for being away: 1 to 16 codes of lowercase letters, digits
    /// and `_` (not `missed_offers`, the router's own).
    pub away_reasons: Vec<String>,
    /// The triage question ("Are you in danger right now?"): the priority a yes gives, 1 to 100
    /// (90 ranks ahead of transfers); null: not asked.
    #[schema(minimum = 1, maximum = 100)]
    pub triage_priority: Option<i64>,
}

/// Checks settings by the engine's rules; the error names the field and what it may be.
pub fn check_settings(s: &WaitingSettings) -> Result<WaitingSettings, String> {
    let wrapup_limit_ms = crate::routing::wrapup::check_limit(s.wrapup_limit_ms)?;
    let away_reasons = crate::routing::away::check_reasons(&s.away_reasons)?;
    let triage_priority = s.triage_priority.map(crate::routing::triage::check_priority).transpose()?.map(i64::from);
    Ok(WaitingSettings { wrapup_limit_ms, away_reasons, triage_priority })
}

/// The settings of a stored helpline.
pub fn settings_of(h: &crate::store::helplines::Helpline) -> WaitingSettings {
    WaitingSettings { wrapup_limit_ms: h.wrapup_limit_ms, away_reasons: h.away_reasons.clone(), triage_priority: h.triage_priority }
}

/// Stores checked settings and hands them to the running router (`engine`: None from the command
/// line, whose change a running server takes at its next start). False: no such helpline.
pub async fn store_settings(
    store: &crate::store::Store,
    engine: Option<&crate::chat::engine_task::EngineHandle>,
    name: &str,
    s: &WaitingSettings,
) -> Result<bool, crate::store::StoreError> {
    if !store.directory().set_waiting(name, s.wrapup_limit_ms, &s.away_reasons, s.triage_priority).await? {
        return Ok(false);
    }
    if let Some(engine) = engine {
        let triage_priority = s.triage_priority.and_then(|p| i32::try_from(p).ok());
        let cmd = EngineCommand::SetWaiting {
            helpline: name.to_string(),
            wrapup_limit_ms: s.wrapup_limit_ms,
            away_reasons: s.away_reasons.clone(),
            triage_priority,
        };
        engine.send(cmd).await;
    }
    Ok(true)
}

/// Whether each helpline asks the triage question, as stored now (None if the database does not answer).
pub async fn triage_asked(state: &AppState) -> Option<Vec<(String, bool)>> {
    let helplines = state.store.directory().helplines().await.ok()?;
    Some(helplines.into_iter().map(|h| (h.name, h.triage_priority.is_some())).collect())
}

/// A helpline's settings, named.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    pub helpline: String,
    /// The settings' fields, beside `helpline` (the schema is `WaitingSettings`'s with that one more).
    #[serde(flatten)]
    pub settings: SettingsFields,
}

/// [`WaitingSettings`] as answered: the same fields, in an object that also has `helpline`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsFields {
    pub wrapup_limit_ms: i64,
    pub away_reasons: Vec<String>,
    pub triage_priority: Option<i64>,
}

impl From<WaitingSettings> for SettingsFields {
    fn from(s: WaitingSettings) -> SettingsFields {
        SettingsFields { wrapup_limit_ms: s.wrapup_limit_ms, away_reasons: s.away_reasons, triage_priority: s.triage_priority }
    }
}

/// `GET /api/v1/helplines/{name}/settings`: the helpline's wrap-up limit, away reasons and triage question.
#[utoipa::path(get, path = "/api/v1/helplines/{name}/settings", tag = "supervision", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the settings", body = SettingsView),
        (status = 403, description = "not an admin nor a supervisor of this helpline", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn show_settings(State(state): State<AppState>, staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    known_helpline(&state, &name)?;
    if !staff.supervises(&name) {
        return Err(staff
            .refuse(&state, "helpline_settings_read", &name, AppError::forbidden("admins and this helpline's supervisors only"))
            .await);
    }
    let Some(h) = state.store.directory().helpline(&name).await? else {
        return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
    };
    Ok(Json(SettingsView { helpline: name, settings: settings_of(&h).into() }).into_response())
}

/// `PUT /api/v1/helplines/{name}/settings`: sets the helpline's wrap-up limit, away reasons and triage
/// question (admins and its supervisors; audited); the router takes them at once.
#[utoipa::path(put, path = "/api/v1/helplines/{name}/settings", tag = "supervision", security(("bearer" = [])), request_body = WaitingSettings,
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the settings now", body = SettingsView),
        (status = 400, description = "`bad_field`: not the JSON of the settings (a field missing, unknown or of the wrong type)", body = ErrorBody),
        (status = 403, description = "not an admin nor a supervisor of this helpline", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
        (status = 422, description = "`invalid_settings`: a value out of range (the message names the field)", body = ErrorBody),
    ))]
pub async fn set_settings(
    State(state): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    known_helpline(&state, &name)?;
    if !staff.supervises(&name) {
        return Err(staff
            .refuse(&state, "helpline_settings_set", &name, AppError::forbidden("admins and this helpline's supervisors only"))
            .await);
    }
    let asked: WaitingSettings = parse_body(&body)?;
    let settings = check_settings(&asked).map_err(|why| AppError::new(ErrorCode::InvalidSettings, why))?;
    let detail = serde_json::to_string(&settings).unwrap_or_default();
    staff.audit_or_refuse(&state, "helpline_settings_set", &name, Some(&detail)).await?;
    if !store_settings(&state.store, Some(&state.engine), &name, &settings).await? {
        return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
    }
    Ok(Json(SettingsView { helpline: name, settings: settings.into() }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_field_by_field() {
        let ok =
            WaitingSettings { wrapup_limit_ms: 30_000, away_reasons: vec![" break".into(), "lunch".into()], triage_priority: Some(90) };
        let checked = check_settings(&ok).expect("fine");
        assert_eq!(checked.away_reasons, ["break", "lunch"], "trimmed");
        let off = WaitingSettings { wrapup_limit_ms: 0, triage_priority: None, ..ok.clone() };
        assert!(check_settings(&off).is_ok(), "no wrap-up, no triage");
        let bad = |s: WaitingSettings, field: &str| assert!(check_settings(&s).unwrap_err().starts_with(field), "{s:?}");
        bad(WaitingSettings { wrapup_limit_ms: -1, ..ok.clone() }, "wrapup_limit_ms");
        bad(WaitingSettings { wrapup_limit_ms: 3_600_001, ..ok.clone() }, "wrapup_limit_ms");
        bad(WaitingSettings { away_reasons: vec![], ..ok.clone() }, "away_reasons");
        bad(WaitingSettings { away_reasons: vec!["Coffee break".into()], ..ok.clone() }, "away_reasons");
        bad(WaitingSettings { triage_priority: Some(0), ..ok.clone() }, "triage_priority");
        bad(WaitingSettings { triage_priority: Some(101), ..ok }, "triage_priority");
    }
}

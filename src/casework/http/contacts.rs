//! The REST edge of continuity between contacts (the service is [`crate::casework::continuity`]): the
//! search of past contacts and the links between contacts.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{parse_body, Staff};
use crate::casework::continuity::{self, ContactHit, LinkView, Search};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Came in at or after: RFC 3339, or a UTC day `YYYY-MM-DD` (from its start).
    from: Option<String>,
    /// Came in before: RFC 3339, or a UTC day `YYYY-MM-DD` (through its end).
    to: Option<String>,
    /// Of this helpline.
    helpline: Option<String>,
    /// Its form names this category (e.g. `violence.family`).
    category: Option<String>,
    /// Its form's risk: `none`, `low`, `medium`, `high` or `imminent`.
    risk: Option<String>,
    /// Linked to the case with this number.
    case_number: Option<String>,
    /// At most this many, newest first (1 to 100; 50 by default).
    limit: Option<String>,
}

/// A time filter: RFC 3339, or a UTC day (its start; with `end`, the start of the next day).
fn time_filter(field: &str, value: Option<&str>, end: bool) -> Result<Option<i64>, AppError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if let Some(ms) = crate::protocol::parse_rfc3339(v) {
        return Ok(Some(ms));
    }
    let day = crate::protocol::parse_rfc3339(&format!("{v}T00:00:00Z")).ok_or_else(|| {
        AppError::bad_field(format!("{field}: expected RFC 3339 (2026-12-01T00:00:00Z) or a day (2026-12-01), got {v:?}"))
    })?;
    Ok(Some(if end { day + DAY_MS } else { day }))
}

fn text_filter(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `GET /api/v1/contacts?from=&to=&helpline=&category=&risk=&case_number=&limit=`: the past contacts
/// you may see (the ones you handled as a counsellor; your helplines' as a supervisor; your cases'
/// contacts as a case manager; all as an admin) that match every filter given, newest first, with
/// their form's categories, risk, outcome, shortened summary and case numbers. Audited
/// (`contact_search`).
#[utoipa::path(get, path = "/api/v1/contacts", tag = "casework", security(("bearer" = [])), params(SearchQuery),
    responses(
        (status = 200, description = "the contacts found, newest first", body = [ContactHit]),
        (status = 400, description = "`bad_field`: a time, risk or limit that cannot be read", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn search(State(state): State<AppState>, staff: Staff, Query(q): Query<SearchQuery>) -> Result<Response, AppError> {
    let limit = match text_filter(q.limit) {
        Some(l) => Some(l.parse::<i64>().map_err(|_| AppError::bad_field("limit must be a number from 1 to 100"))?),
        None => None,
    };
    let search = Search {
        from: time_filter("from", q.from.as_deref(), false)?,
        to: time_filter("to", q.to.as_deref(), true)?,
        helpline: text_filter(q.helpline),
        category: text_filter(q.category),
        risk: text_filter(q.risk),
        case_number: text_filter(q.case_number),
        limit,
    };
    Ok(Json(continuity::search(&state, &staff, search).await?).into_response())
}

/// `GET /api/v1/contacts/{id}/links`: the contacts linked to this one (either way), each with the other
/// contact as a search shows it when you may see it. Audited (`view_links`).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/links", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "its links, oldest first", body = [LinkView]),
        (status = 404, description = "no such contact, or not one you may see (audited)", body = ErrorBody),
    ))]
pub async fn links(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(continuity::links(&state, &staff, &id).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLink {
    /// The earlier contact (the same person, an earlier time).
    contact_id: String,
}

/// `POST /api/v1/contacts/{id}/links {contact_id}`: links this contact to an earlier one; you must see
/// both. Linking twice changes nothing. Audited (`contact_link`). Answers this contact's links.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/links", tag = "casework", security(("bearer" = [])), request_body = NewLink,
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "its links, oldest first", body = [LinkView]),
        (status = 400, description = "`bad_field`: no `contact_id`, or the contact itself", body = ErrorBody),
        (status = 404, description = "either contact unknown, or not one you may see (audited)", body = ErrorBody),
    ))]
pub async fn link(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewLink = parse_body(&body)?;
    Ok(Json(continuity::link(&state, &staff, &id, req.contact_id.trim()).await?).into_response())
}

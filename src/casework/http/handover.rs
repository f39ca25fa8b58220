//! The REST edge of a counsellor's transfer and consult (the service is [`crate::casework::handover`];
//! the transfer itself goes over the counsellor's socket): the colleagues her console may pick.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::Staff;
use crate::casework::handover::{self, Colleague};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ColleaguesQuery {
    /// A conversation you hold: each colleague then says whether she could take it now (`eligible`).
    contact_id: Option<String>,
}

/// `GET /api/v1/colleagues[?contact_id=]`: the counsellors signed in now (a socket open), other than
/// you, with their status, helplines and languages; with `contact_id`, whether each could take that
/// conversation now (connected, available, a free slot, serving its helpline in its language).
#[utoipa::path(get, path = "/api/v1/colleagues", tag = "casework", security(("bearer" = [])), params(ColleaguesQuery),
    responses(
        (status = 200, description = "the colleagues signed in, by name", body = [Colleague]),
        (status = 403, description = "counsellors only", body = ErrorBody),
        (status = 404, description = "`unknown_contact`: not a conversation of yours (audited)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the router's view is on another node (cluster mode); try again", body = ErrorBody),
    ))]
pub async fn colleagues(State(state): State<AppState>, staff: Staff, Query(q): Query<ColleaguesQuery>) -> Result<Response, AppError> {
    Ok(Json(handover::colleagues(&state, &staff, q.contact_id.as_deref()).await?).into_response())
}

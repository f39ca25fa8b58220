//! `GET /api/v1/contacts/{id}/callback`: the number a caller asked to be called back on
//! (`callback`, docs/protocol.md), while it is kept (until the callback's contact ends), for those
//! who may see the contact (`state::access::visible_contact`); every read audited.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::chat::left::Left;
use crate::state::access::{hidden, visible_contact, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The callback route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// A callback's number.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackView {
    pub contact_id: String,
    pub phone: String,
}

/// `GET /api/v1/contacts/{id}/callback`: the number to call back (audited), while the callback is open.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/callback", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the callback's contact id")),
    responses(
        (status = 200, description = "the number the caller left", body = CallbackView),
        (status = 404, description = "no such callback, not yours to see, or done (its number is deleted)", body = ErrorBody),
    ))]
pub async fn callback(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let contact = visible_contact(&state, &staff, &id, "callback_number_read").await?;
    if contact.channel != Left::CALLBACK.kind_str() {
        return Err(hidden("callback"));
    }
    let Some(phone) = state.store.contacts().callback_number(&id).await? else {
        return Err(hidden("callback"));
    };
    staff.audit(&state, "callback_number_read", &id, None).await;
    Ok(Json(CallbackView { contact_id: id, phone }).into_response())
}

//! The REST edge of referrals (the service is [`crate::casework::referrals`]): a case referred to a
//! service of the registry, its referrals listed, a referral's status, due date and feedback changed
//! by the case's managers or by the provider (with the token its webhook carried), and a service's
//! webhook set by admins.

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_body, Staff};
use crate::casework::referrals::{self as service, referral_view, Actor, Patch, ReferralView, PROVIDER_TOKEN_PREFIX};
use crate::protocol::ErrorCode;
use crate::state::access::bearer;
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

/// The largest body a referral change may have.
const MAX_BODY: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewReferral {
    /// A service of the registry (`GET /api/v1/services`).
    #[schema(min_length = 1)]
    service_id: String,
    /// Why the case is referred: what the provider needs to know (at most 4000 characters; sent to it: no identifying details).
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    reason: String,
    /// When the service is due (ms since the epoch; in the future, within a year).
    #[serde(default)]
    due_at_ms: Option<i64>,
}

/// A case's referrals, oldest first.
#[derive(Serialize, ToSchema)]
pub struct ReferralList {
    referrals: Vec<ReferralView>,
}

/// `POST /api/v1/cases/{id}/referrals {service_id, reason, due_at_ms?}`: refers the case to a service
/// (its case manager, the helpline's supervisors, admins); `sent`, and the provider told by its webhook.
#[utoipa::path(post, path = "/api/v1/cases/{id}/referrals", tag = "casework", security(("bearer" = [])), request_body = NewReferral,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the referral, `sent`", body = ReferralView),
        (status = 400, description = "`bad_field`: no such service, an empty or too long reason, a due date in the past or more than a year ahead", body = ErrorBody),
        (status = 403, description = "the case manager or a supervisor refers a case", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: the case is closed", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewReferral = parse_body(&body)?;
    let r = service::create(&state, &staff, &id, &req.service_id, &req.reason, req.due_at_ms).await?;
    Ok((StatusCode::CREATED, Json(referral_view(&r))).into_response())
}

/// `GET /api/v1/cases/{id}/referrals`: the case's referrals (whoever sees the case; audited).
#[utoipa::path(get, path = "/api/v1/cases/{id}/referrals", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case's referrals, oldest first", body = ReferralList),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let referrals = service::list(&state, &staff, &id).await?.iter().map(referral_view).collect();
    Ok(Json(ReferralList { referrals }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeReferral {
    /// The next status: `accepted` or `declined` after `sent`, `completed` after `accepted`.
    #[serde(default)]
    status: Option<String>,
    /// The provider's answer (at most 4000 characters).
    #[serde(default)]
    feedback: Option<String>,
    /// A new due date (staff only; ms since the epoch, in the future, within a year).
    #[serde(default)]
    due_at_ms: Option<i64>,
}

/// `PATCH /api/v1/referrals/{id} {status?, feedback?, due_at_ms?}`: by the case's managers (a staff
/// access token) or by the provider (`Authorization: Bearer rfp_…`, the token its webhook carried).
#[utoipa::path(patch, path = "/api/v1/referrals/{id}", tag = "casework", security(("bearer" = [])), request_body = ChangeReferral,
    params(("id" = String, Path, description = "the referral's id")),
    responses(
        (status = 200, description = "the referral as changed", body = ReferralView),
        (status = 400, description = "`bad_field`: an unknown status, nothing to change, a feedback too long, a bad due date", body = ErrorBody),
        (status = 403, description = "not the case's manager or supervisor; a provider setting the due date", body = ErrorBody),
        (status = 404, description = "no such referral, or not one you may see (a provider's wrong token too)", body = ErrorBody),
        (status = 409, description = "`conflict`: out of order (with `allowed`), or changed meanwhile", body = ErrorBody),
        (status = 413, description = "`too_large`: a body over 16 KiB", body = ErrorBody),
    ))]
pub async fn change(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Result<Response, AppError> {
    let (mut parts, body) = request.into_parts();
    let provider = bearer(&parts.headers).filter(|t| t.starts_with(PROVIDER_TOKEN_PREFIX)).map(str::to_string);
    let staff = match provider {
        Some(_) => None,
        None => Some(Staff::from_request_parts(&mut parts, &state).await?),
    };
    let body =
        axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| AppError::new(ErrorCode::TooLarge, "the body is limited to 16 KiB"))?;
    let req: ChangeReferral = parse_body(&body)?;
    let patch = Patch { status: req.status, due_at_ms: req.due_at_ms, feedback: req.feedback };
    let actor = match (&staff, &provider) {
        (Some(staff), _) => Actor::Staff(staff),
        (None, Some(token)) => Actor::Provider { token, source: "http provider".into() },
        (None, None) => return Err(AppError::unauthorized("missing bearer token")),
    };
    let r = service::update(&state, actor, &id, patch).await?;
    Ok(Json(referral_view(&r)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetWebhook {
    /// An `http://` URL the server POSTs each referral to (no TLS yet: a TLS-terminating proxy's address); null: none.
    #[schema(pattern = "^(http://[^\\s/?#]+.*)?$", max_length = 2000)]
    url: Option<String>,
}

/// `PUT /api/v1/services/{id}/webhook {url}` (admins): where the service is told of referrals.
#[utoipa::path(put, path = "/api/v1/services/{id}/webhook", tag = "casework", security(("bearer" = [])), request_body = SetWebhook,
    params(("id" = String, Path, description = "the service's id")),
    responses(
        (status = 204, description = "set (or removed)"),
        (status = 400, description = "`bad_field`: not an `http://` URL", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such service", body = ErrorBody),
    ))]
pub async fn set_webhook(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetWebhook = parse_body(&body)?;
    service::set_webhook(&state, &staff, &id, req.url.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

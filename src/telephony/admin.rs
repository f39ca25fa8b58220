//! The telephony settings over REST, for the admin page (docs/admin.md): the dialled-number map (which
//! helpline a called number reaches, `*` for numbers not listed) and the exchanges' accounts (gateways)
//! with their service tokens, shown once and stored hashed, and revoked. Admins only (a refusal is
//! audited); every change audited. The same as `helpline number …` and `helpline gateway …`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::protocol::ErrorCode;
use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::gateways::Gateway;
use crate::store::helplines::DEFAULT_NUMBER;
use crate::store::StoreError;

/// The routes, with their OpenAPI descriptions (tag `telephony`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(numbers))
        .routes(routes!(set_number, remove_number))
        .routes(routes!(gateways, add_gateway))
        .routes(routes!(revoke_gateway))
}

/// One entry of the dialled-number map.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DialledNumber {
    /// The digits dialled, or `*` for every number not listed.
    pub number: String,
    pub helpline: String,
}

#[derive(Serialize, ToSchema)]
pub struct DialledNumbers {
    pub numbers: Vec<DialledNumber>,
}

/// `PUT …/dialled-numbers/{number}`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberTarget {
    pub helpline: String,
}

/// A number as stored: its digits (spaces, dashes and a leading `+` dropped), or `*`.
fn number_key(number: &str) -> Result<String, AppError> {
    if number.trim() == DEFAULT_NUMBER {
        return Ok(DEFAULT_NUMBER.to_string());
    }
    match crate::auth::keyed::normalise_number(number) {
        Some(d) if d.len() <= 20 => Ok(d),
        _ => Err(AppError::bad_field("number: the digits dialled (at most 20), or `*` for every number not listed")),
    }
}

/// `GET /api/v1/dialled-numbers`: the dialled-number map (admins).
#[utoipa::path(get, path = "/api/v1/dialled-numbers", tag = "telephony", security(("bearer" = [])),
    responses(
        (status = 200, description = "the map, by number", body = DialledNumbers),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
async fn numbers(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "numbers_list", "dialled_numbers").await?;
    let numbers =
        state.store.directory().dialled_numbers().await?.into_iter().map(|(number, helpline)| DialledNumber { number, helpline }).collect();
    Ok(Json(DialledNumbers { numbers }).into_response())
}

/// `PUT /api/v1/dialled-numbers/{number} {helpline}`: maps a dialled number (or `*`) to a helpline,
/// replacing its earlier helpline (admins; audited). Calls to it from then on reach that helpline.
#[utoipa::path(put, path = "/api/v1/dialled-numbers/{number}", tag = "telephony", security(("bearer" = [])), request_body = NumberTarget,
    params(("number" = String, Path, description = "the number dialled (its digits are kept), or `*`")),
    responses(
        (status = 200, description = "the entry as stored", body = DialledNumber),
        (status = 400, description = "`bad_field`: no digits, or the body is not `{helpline}`", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
async fn set_number(
    State(state): State<AppState>,
    staff: Staff,
    Path(number): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "number_set", &number).await?;
    let key = number_key(&number)?;
    let req: NumberTarget = parse_body(&body)?;
    if !state.helplines.iter().any(|h| h.name == req.helpline) {
        return Err(AppError::new(ErrorCode::UnknownHelpline, format!("no such helpline {:?}", req.helpline)));
    }
    state.store.directory().set_dialled_number(&key, &req.helpline).await?;
    staff.audit(&state, "number_set", &key, Some(&req.helpline)).await;
    Ok(Json(DialledNumber { number: key, helpline: req.helpline }).into_response())
}

/// `DELETE /api/v1/dialled-numbers/{number}`: removes a number from the map (admins; audited).
#[utoipa::path(delete, path = "/api/v1/dialled-numbers/{number}", tag = "telephony", security(("bearer" = [])),
    params(("number" = String, Path, description = "the number, or `*`")),
    responses(
        (status = 204, description = "removed"),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "not in the map", body = ErrorBody),
    ))]
async fn remove_number(State(state): State<AppState>, staff: Staff, Path(number): Path<String>) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "number_remove", &number).await?;
    let key = number_key(&number)?;
    if !state.store.directory().remove_dialled_number(&key).await? {
        return Err(AppError::new(ErrorCode::NotFound, "that number is not in the map"));
    }
    staff.audit(&state, "number_remove", &key, None).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize, ToSchema)]
pub struct Gateways {
    pub gateways: Vec<Gateway>,
}

/// `POST /api/v1/gateways`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGateway {
    /// 1-64 characters of `a-z`, `0-9`, `.`, `_`, `-` (e.g. `asterisk-chisinau`).
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    pub name: String,
}

/// A new gateway and its service token, shown once.
#[derive(Serialize, ToSchema)]
pub struct GatewayCreated {
    pub gateway: Gateway,
    /// The exchange sends it as `Authorization: Bearer …`; only its hash is stored: it is never shown again.
    pub token: String,
}

/// `GET /api/v1/gateways`: the exchanges' accounts, revoked ones included (admins; never a token).
#[utoipa::path(get, path = "/api/v1/gateways", tag = "telephony", security(("bearer" = [])),
    responses(
        (status = 200, description = "every gateway, by name", body = Gateways),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
async fn gateways(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "gateways_list", "gateways").await?;
    Ok(Json(Gateways { gateways: state.store.exchanges().gateways().await? }).into_response())
}

/// `POST /api/v1/gateways {name}`: registers an exchange; the answer carries its service token, once
/// (admins; audited).
#[utoipa::path(post, path = "/api/v1/gateways", tag = "telephony", security(("bearer" = [])), request_body = NewGateway,
    responses(
        (status = 201, description = "the gateway and its token (shown once)", body = GatewayCreated),
        (status = 400, description = "`bad_field`: a name that is not 1-64 of a-z, 0-9, `.`, `_`, `-`", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
    ))]
async fn add_gateway(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "gateway_add", "gateways").await?;
    let req: NewGateway = parse_body(&body)?;
    let name = crate::auth::accounts::check_username(&req.name)
        .map_err(|_| AppError::bad_field("name: 1-64 characters of a-z, 0-9, '.', '_' and '-'"))?;
    let token = crate::auth::random_token(32);
    let gateway = match state.store.exchanges().create_gateway(&name, &crate::auth::token_hash(&token), state.clock.now_ms()).await {
        Err(StoreError::Conflict(_)) => return Err(AppError::new(ErrorCode::Conflict, format!("a gateway {name:?} exists"))),
        other => other?,
    };
    staff.audit(&state, "gateway_add", &gateway.id, Some(&name)).await;
    Ok((StatusCode::CREATED, Json(GatewayCreated { gateway, token })).into_response())
}

/// `POST /api/v1/gateways/{name}/revoke`: revokes an exchange's token: its sockets and webhooks are
/// refused from now on (admins; audited).
#[utoipa::path(post, path = "/api/v1/gateways/{name}/revoke", tag = "telephony", security(("bearer" = [])),
    params(("name" = String, Path, description = "the gateway's name")),
    responses(
        (status = 204, description = "revoked (revoking a revoked one changes nothing)"),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such gateway", body = ErrorBody),
    ))]
async fn revoke_gateway(State(state): State<AppState>, staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "gateway_revoke", &name).await?;
    match state.store.exchanges().revoke_gateway(&name, state.clock.now_ms()).await {
        Err(StoreError::NotFound) => return Err(AppError::new(ErrorCode::NotFound, "no such gateway")),
        other => other?,
    }
    staff.audit(&state, "gateway_revoke", &name, None).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

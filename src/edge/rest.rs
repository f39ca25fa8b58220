//! HTTP routes: health, login, token refresh and logout, WebSocket tickets, public helpline list, the
//! contact record for supervisors, and the WebSocket upgrades. Each handler carries its OpenAPI
//! description (`#[utoipa::path]`, see [`crate::edge::openapi`]).

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::protocol::ErrorCode;
use crate::state::access::{supervised_contact, AuthUser, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::contacts::{ContactEvent, ContactRecord};
use crate::store::sessions::Refresh;
use crate::store::users::{Role, User};

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The edge's own routes: index, health, metrics, sign-in and tokens, the public helpline list, the
/// contact record, the cluster status, and the WebSocket upgrades.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(crate::edge::prometheus::metrics))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(refresh))
        .routes(routes!(ws_ticket))
        .routes(routes!(me))
        .routes(routes!(set_locale))
        .routes(routes!(helplines))
        .routes(routes!(contact))
        .routes(routes!(caller_end))
        .routes(routes!(caller_survey))
        .routes(routes!(caller_return_code))
        .routes(routes!(cluster_status))
        .routes(routes!(crate::edge::ws::caller::upgrade))
        .routes(routes!(crate::edge::ws::counsellor::upgrade))
        .routes(routes!(crate::edge::ws::supervisor::upgrade))
        .routes(routes!(crate::edge::ws::telephony::upgrade))
}

/// The index page: links to the front ends.
#[utoipa::path(get, path = "/", tag = "pages",
    responses((status = 200, description = "a small HTML page linking the front ends", content_type = "text/html", body = String)))]
async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><meta charset=utf-8><title>helpline</title>\
         <h1>helpline is running</h1>\
         <ul><li><a href=/chat>Chat with a counsellor</a> (the caller's widget)</li>\
         <li><a href=/agent>Counsellor console</a></li><li><a href=/supervisor>Supervisor dashboard</a></li></ul>\
         <p>WebSockets: <code>/ws/caller</code> (chat widget), <code>/ws/agent</code> (counsellor console). \
         API: <code>POST /api/v1/auth/login</code>, <code>POST /api/v1/ws-ticket</code>, <code>GET /api/v1/helplines</code>. \
         Health: <a href=/healthz>/healthz</a>, <a href=/readyz>/readyz</a>.</p>",
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers (within 2 s, or is busy with writes that go through), the last durable write went through and, in
/// cluster mode, Redis answers. Not ready: 503 with `{"code": "unavailable", "message": …}`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "the database (or, in cluster mode, Redis) is unreachable, or writes are failing, or (cluster mode) this node's database is not the one the other nodes share", body = ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> Response {
    let checked_from = std::time::Instant::now();
    let check = state.store.check().await;
    if state.store.check_says_down(check, checked_from) || !state.store.answering() {
        return AppError::new(ErrorCode::Unavailable, "database unreachable").into_response();
    }
    if !state.store.writes_ok() {
        return AppError::new(ErrorCode::Unavailable, "database writes are failing").into_response();
    }
    if let Some(cluster) = &state.cluster {
        if let Some(why) = cluster.identity_error() {
            return AppError::new(ErrorCode::Unavailable, why).into_response();
        }
        if !cluster.redis_ready().await {
            return AppError::new(ErrorCode::Unavailable, "redis unreachable").into_response();
        }
    }
    (StatusCode::OK, "ready").into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Any case: `ion`, `ION` and `Ion` are one account.
    pub username: String,
    pub password: String,
    /// The second factor, when the answer without it was `totp_required` or `totp_enrolment_required`:
    /// the 6-digit code of the authenticator app, or one of the recovery codes (each works once).
    #[serde(default)]
    pub totp_code: Option<String>,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// Opaque, single use: `POST /api/v1/auth/refresh` trades it for a new access token and a new refresh token.
    pub refresh_token: String,
    /// Seconds until the login ends, however often it is refreshed.
    pub refresh_expires_in: u64,
    pub user: User,
    /// Only in the answer to the login that confirmed a second factor's enrolment: the recovery codes,
    /// each good for one login without the app. Shown this once; only their hashes are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// `POST /api/v1/auth/login`: username and password → access token.
/// Wrong passwords lock the (account, address) pair out for a while (429), and slow the account down
/// from everywhere, but the right password from another address still gets in ([`crate::auth::guard`]).
/// With a second factor the right password answers `totp_required` (or `totp_enrolment_required`): the
/// same request again with `totp_code` signs in ([`crate::edge::logins`]).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "signed in (`recovery_codes` once, when the code confirmed an enrolment)", body = LoginResponse),
        (status = 400, description = "`bad_field`: the body is not `{username, password, totp_code?}`", body = ErrorBody),
        (status = 401, description = "wrong username, password or code, or the account is disabled (`unauthorized`); the password was right and the second factor is needed (`totp_required`) or must be set up first (`totp_enrolment_required`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this address is locked out of this account after failed logins, or over its rate (`Retry-After: 60`)", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LoginResponse>, AppError> {
    let req: LoginRequest =
        serde_json::from_slice(&body).map_err(|e| AppError::new(ErrorCode::BadField, format!("bad login body: {e}")))?;
    let from = crate::edge::logins::Origin::new(&state, peer, &headers);
    let user = crate::edge::logins::password_factor(&state, &from, &req.username, &req.password).await?;
    let recovery_codes = crate::edge::logins::second_factor(&state, &from, &req.username, &user, req.totp_code.as_deref()).await?;
    crate::edge::logins::signed_in(&state, &from, &req.username).await;
    let now = state.clock.now_ms();
    let refresh_token = crate::auth::random_token(32);
    let family = crate::store::new_id();
    let refresh_until = now.saturating_add(i64::try_from(state.auth.refresh_ttl.as_millis()).unwrap_or(i64::MAX));
    state.store.sessions().create_refresh_token(&crate::auth::token_hash(&refresh_token), &family, &user.id, now, refresh_until).await?;
    state.store.audit_log().audit(now, &user.id, "login", Some(&user.id), None).await?;
    let mut answer = tokens(&state, user, refresh_token, refresh_until, now)?;
    answer.0.recovery_codes = recovery_codes;
    Ok(answer)
}

/// The answer to a login or a refresh: a new access token, and the refresh token that comes with it.
fn tokens(state: &AppState, user: User, refresh_token: String, refresh_until: i64, now: i64) -> Result<Json<LoginResponse>, AppError> {
    let (token, _) = state.auth.issue(&user.id, user.role, now).map_err(|e| {
        tracing::error!(error = %e, "issuing a token failed");
        AppError::internal()
    })?;
    Ok(Json(LoginResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.auth.token_ttl.as_secs(),
        refresh_token,
        refresh_expires_in: u64::try_from(refresh_until.saturating_sub(now) / 1000).unwrap_or(0),
        user,
        recovery_codes: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh {refresh_token}`: a new access token and a new refresh token; the one
/// presented is used up. A refresh token presented a second time means a copy is in other hands:
/// its whole family (every token descended from that login) is revoked, and the attempt audited.
/// 401 for an unknown, expired, revoked or reused token, and for a disabled or logged-out account.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "a new access token and a new refresh token", body = LoginResponse),
        (status = 400, description = "`bad_field`: the body is not `{refresh_token}`", body = ErrorBody),
        (status = 401, description = "the refresh token is unknown, expired, revoked or reused, or the account is disabled or logged out", body = ErrorBody),
    ))]
async fn refresh(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Json<LoginResponse>, AppError> {
    let req: RefreshRequest =
        serde_json::from_slice(&body).map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"refresh_token\": …}}: {e}")))?;
    let now = state.clock.now_ms();
    let next = crate::auth::random_token(32);
    let hash = crate::auth::token_hash(&req.refresh_token);
    let refused = || AppError::unauthorized("the session has ended; sign in again");
    match state.store.sessions().rotate_refresh_token(&hash, &crate::auth::token_hash(&next), now).await? {
        Refresh::Refused => Err(refused()),
        Refresh::Reused { user_id, family_id } => {
            tracing::warn!(user = %user_id, "a used refresh token was presented again: its family is revoked");
            state.store.audit_log().audit(now, &user_id, "refresh_reuse", Some(&user_id), Some(&family_id)).await?;
            Err(refused())
        }
        Refresh::Rotated { user_id, family_id: _, expires_at } => {
            let user = match state.store.accounts().user(&user_id).await? {
                Some(u) if !u.disabled => u,
                _ => {
                    state.store.sessions().revoke_refresh_tokens(&user_id, now).await?;
                    return Err(refused());
                }
            };
            tokens(&state, user, next, expires_at, now)
        }
    }
}

/// `POST /api/v1/auth/logout`: voids every token of the account issued until now (access and refresh
/// tokens) and closes its open consoles and dashboards (the disabled-account watcher's path; within a second).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "every token of the account is void; its consoles and dashboards are closed")))]
async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, AppError> {
    let now = state.clock.now_ms();
    state.store.sessions().revoke_sessions(&auth.user.id, now + 1).await?;
    state.store.sessions().revoke_refresh_tokens(&auth.user.id, now).await?;
    state.store.audit_log().audit(now, &auth.user.id, "logout", Some(&auth.user.id), None).await?;
    state.hub.close_staff(&auth.user.id, crate::protocol::close::REVOKED, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, Debug, ToSchema)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_in: u64,
}

/// `POST /api/v1/ws-ticket`: a single-use ticket (30 s) to open `/ws/agent?ticket=…`.
#[utoipa::path(post, path = "/api/v1/ws-ticket", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "a single-use ticket for `/ws/agent?ticket=…` or `/ws/supervisor?ticket=…`", body = TicketResponse)))]
async fn ws_ticket(State(state): State<AppState>, auth: AuthUser) -> Json<TicketResponse> {
    let ticket = state.tickets.issue(auth.claims);
    Json(TicketResponse { ticket, expires_in: crate::auth::TICKET_TTL.as_secs() })
}

/// `GET /api/v1/me`: the signed-in account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "the signed-in account", body = User)))]
async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

/// The languages of the staff pages (`web-agent/assets/staff-i18n.js` has a catalogue for each).
pub const STAFF_LOCALES: [&str; 4] = ["ro", "ru", "uk", "en"];

/// A staff page language from what a client sent: one of [`STAFF_LOCALES`] (any case, spaces around
/// ignored), else `unknown_locale`.
pub fn staff_locale(asked: &str) -> Result<&'static str, AppError> {
    let asked = asked.trim().to_ascii_lowercase();
    STAFF_LOCALES
        .iter()
        .copied()
        .find(|l| *l == asked)
        .ok_or_else(|| AppError::new(ErrorCode::UnknownLocale, format!("locale must be one of {}", STAFF_LOCALES.join(", "))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LocaleRequest {
    /// `ro`, `ru`, `uk` or `en`.
    #[schema(pattern = "^(ro|ru|uk|en)$")]
    locale: String,
}

/// `PUT /api/v1/me/locale {locale}`: the language of the staff pages for the signed-in account, kept
/// with it (a reload or a new login, on any device, starts in it). Any role; one's own account only.
#[utoipa::path(put, path = "/api/v1/me/locale", tag = "auth", security(("bearer" = [])), request_body = LocaleRequest,
    responses(
        (status = 200, description = "the signed-in account, with its new `locale`", body = User),
        (status = 400, description = "`bad_field`: the body is not `{locale}`", body = ErrorBody),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 422, description = "`unknown_locale`: not one of `ro`, `ru`, `uk`, `en`", body = ErrorBody),
    ))]
async fn set_locale(State(state): State<AppState>, auth: AuthUser, body: axum::body::Bytes) -> Result<Json<User>, AppError> {
    let req: LocaleRequest = crate::state::access::parse_body(&body)?;
    let locale = staff_locale(&req.locale)?;
    state.store.accounts().set_locale(&auth.user.id, locale).await?;
    let mut user = auth.user;
    user.locale = Some(locale.to_string());
    Ok(Json(user))
}

/// A helpline as the chat widget sees it.
#[derive(Serialize, ToSchema)]
struct PublicHelpline<'a> {
    #[schema(value_type = String)]
    name: &'a str,
    #[schema(value_type = String)]
    display_name: &'a str,
    /// Languages served; the first is the default.
    #[schema(value_type = Vec<String>)]
    languages: &'a [String],
    /// Whether the widget asks the triage question ("Are you in danger right now?") while the caller
    /// waits, and sends her answer as a `triage` frame.
    triage: bool,
}

/// `GET /api/v1/helplines`: what the chat widget may offer (no settings).
#[utoipa::path(get, path = "/api/v1/helplines", tag = "public",
    responses((status = 200, description = "the helplines and their languages", body = Vec<PublicHelpline>)))]
async fn helplines(State(state): State<AppState>) -> Response {
    // Whether the triage question is asked as stored now (a supervisor may change it at any time);
    // as read at the start if the database does not answer.
    let asked = crate::supervision::hours::triage_asked(&state).await;
    let list: Vec<PublicHelpline> = state
        .helplines
        .iter()
        .map(|h| PublicHelpline {
            name: &h.name,
            display_name: &h.display_name,
            languages: &h.languages,
            triage: match &asked {
                Some(asked) => asked.iter().any(|(n, t)| n == &h.name && *t),
                None => h.triage_priority.is_some(),
            },
        })
        .collect();
    Json(list).into_response()
}

/// A contact's record and its event log.
#[derive(Serialize, ToSchema)]
struct ContactAnswer {
    contact: ContactRecord,
    events: Vec<ContactEvent>,
}

/// `GET /api/v1/contacts/{id}`: a contact's record and event log, for supervisors of its helpline and admins (audited).
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = String, Path, description = "the contact's id")),
    responses(
        (status = 200, description = "the contact and its event log", body = ContactAnswer),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
        (status = 404, description = "no such contact, or one in a helpline you do not supervise", body = ErrorBody),
    ))]
async fn contact(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    staff.supervisor_only()?;
    let record = supervised_contact(&state, &staff, &id, "view_contact").await?;
    let events = state.store.contacts().contact_events(&id).await?;
    staff.audit_or_refuse(&state, "view_contact", &id, None).await?;
    Ok(Json(ContactAnswer { contact: record, events }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallerEnd {
    resume_token: String,
}

/// `POST /api/v1/caller/end {resume_token}`: ends a caller's contact without a socket (the widget's
/// quick exit sends it with `navigator.sendBeacon` while the page is being replaced). 204 whether or not
/// the token matched an open contact, so it tells a guesser nothing.
#[utoipa::path(post, path = "/api/v1/caller/end", tag = "public", request_body = CallerEnd,
    responses(
        (status = 204, description = "ended if the token matched an open contact (the same answer either way)"),
        (status = 400, description = "`bad_field`: the body is not `{resume_token}`", body = ErrorBody),
    ))]
async fn caller_end(State(state): State<AppState>, body: axum::body::Bytes) -> Result<StatusCode, AppError> {
    let req: CallerEnd =
        serde_json::from_slice(&body).map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"resume_token\": …}}: {e}")))?;
    let hash = crate::auth::token_hash(&req.resume_token);
    if let Some(contact) = state.store.contacts().contact_by_token_hash(&hash).await? {
        if let (true, Some(key)) = (contact.is_open(), crate::chat::engine_task::contact_key(&contact.id)) {
            state.engine.input(crate::routing::Input::EndByCaller { contact: key }).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallerSurvey {
    resume_token: String,
    /// "Did this chat help you?": `yes`, `somewhat` or `no` (optional).
    #[serde(default)]
    #[schema(pattern = "^(yes|somewhat|no)$")]
    helped: Option<String>,
    /// "Would you contact us again?": `yes`, `maybe` or `no` (optional).
    #[serde(default)]
    #[schema(pattern = "^(yes|maybe|no)$")]
    again: Option<String>,
}

/// `POST /api/v1/caller/survey {resume_token, helped?, again?}`: the caller's answers after a chat with
/// a counsellor, once per contact, within a day of its end. Only counted (per helpline, UTC day, question
/// and choice): nothing links the answers to the contact (docs/web-agent.md, "The survey").
#[utoipa::path(post, path = "/api/v1/caller/survey", tag = "public", request_body = CallerSurvey,
    responses(
        (status = 204, description = "counted"),
        (status = 400, description = "`bad_field`: not `{resume_token, helped?, again?}`, a choice that is not one of the question's, or no answer at all", body = ErrorBody),
        (status = 401, description = "`bad_token`: no chat has that resume token", body = ErrorBody),
        (status = 403, description = "`not_allowed`: the chat has not ended, had no counsellor, or ended more than a day ago", body = ErrorBody),
        (status = 409, description = "`conflict`: this chat's survey was answered already", body = ErrorBody),
    ))]
async fn caller_survey(State(state): State<AppState>, body: axum::body::Bytes) -> Result<StatusCode, AppError> {
    use crate::chat::survey;
    let req: CallerSurvey = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_field(format!("expected {{\"resume_token\": …, \"helped\": …, \"again\": …}}: {e}")))?;
    let answers = survey::check(&[("helped", req.helped.as_deref()), ("again", req.again.as_deref())]).map_err(AppError::bad_field)?;
    let hash = crate::auth::token_hash(&req.resume_token);
    let Some(contact) = state.store.contacts().contact_by_token_hash(&hash).await? else {
        return Err(AppError::new(ErrorCode::BadToken, "no chat has that token"));
    };
    let now = state.clock.now_ms();
    survey::may_answer(contact.is_open(), contact.answered_at, contact.ended_at, now)
        .map_err(|why| AppError::new(ErrorCode::NotAllowed, why))?;
    if !state.store.surveys().count(&contact.id, &contact.helpline, survey::day_of(now), &answers).await? {
        return Err(AppError::new(ErrorCode::Conflict, "this chat's survey was answered already"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReturnCodeRequest {
    resume_token: String,
}

/// A chat caller's new return code.
#[derive(Serialize, ToSchema)]
struct ReturnCodeAnswer {
    /// `XXXX-XXXX-XXXX`: shown to her once; the server keeps only its keyed hash.
    code: String,
}

/// `POST /api/v1/caller/return-code {resume_token}`: at the end of a chat a counsellor answered (within
/// a day), an anonymous return code for the caller: given at the start of a later chat
/// (`start` with `return_code`), it shows her next counsellor this chat's summary. Only a keyed hash of
/// the code is kept, tied to this contact; nothing that identifies her (docs/security.md, "Return codes").
#[utoipa::path(post, path = "/api/v1/caller/return-code", tag = "public", request_body = ReturnCodeRequest,
    responses(
        (status = 200, description = "the code, shown once", body = ReturnCodeAnswer),
        (status = 400, description = "`bad_field`: not `{resume_token}`", body = ErrorBody),
        (status = 401, description = "`bad_token`: no chat has that resume token", body = ErrorBody),
        (status = 403, description = "`not_allowed`: not a chat, not ended, had no counsellor, or ended more than a day ago", body = ErrorBody),
        (status = 409, description = "`conflict`: this chat has a return code already (given, or used at its start)", body = ErrorBody),
    ))]
async fn caller_return_code(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: ReturnCodeRequest =
        serde_json::from_slice(&body).map_err(|e| AppError::bad_field(format!("expected {{\"resume_token\": …}}: {e}")))?;
    let Some(contact) = state.store.contacts().contact_by_token_hash(&crate::auth::token_hash(&req.resume_token)).await? else {
        return Err(AppError::new(ErrorCode::BadToken, "no chat has that token"));
    };
    if contact.channel != crate::chat::channel::WebChat::KIND {
        return Err(AppError::new(ErrorCode::NotAllowed, "return codes are for chats"));
    }
    crate::safety::return_code::may_give_code(contact.is_open(), contact.answered_at, contact.ended_at, state.clock.now_ms())
        .map_err(|why| AppError::new(ErrorCode::NotAllowed, why))?;
    let code = crate::safety::return_code::give(&state, &contact.id).await?;
    Ok(Json(ReturnCodeAnswer { code }).into_response())
}

/// `GET /api/v1/cluster` (admins): nodes, leader, lease, fencing token, stream lag. 404 on a single node.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "nodes, leader, lease, fencing token and stream lag (docs/deployment.md)", body = Object),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "this server runs as a single node", body = ErrorBody),
        (status = 503, description = "Redis or the database is unreachable", body = ErrorBody),
    ))]
async fn cluster_status(State(state): State<AppState>, auth: AuthUser) -> Result<Response, AppError> {
    if auth.user.role != Role::Admin {
        return Err(AppError::forbidden("admins only"));
    }
    let Some(cluster) = &state.cluster else {
        return Err(AppError::new(crate::protocol::ErrorCode::NotFound, "this server runs as a single node"));
    };
    match cluster.status().await {
        Ok(status) => Ok(Json(status).into_response()),
        Err(err) => {
            tracing::warn!(error = %err, "cluster status unavailable");
            Err(AppError::new(crate::protocol::ErrorCode::Unavailable, "Redis or the database is unreachable"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staff_locales_are_the_four_catalogues_and_nothing_else() {
        assert_eq!(staff_locale("ro").ok(), Some("ro"));
        assert_eq!(staff_locale(" UK ").ok(), Some("uk"));
        for bad in ["", "de", "ro-MD", "english", "r", "ruu"] {
            assert_eq!(staff_locale(bad).err().map(|e| e.code), Some(ErrorCode::UnknownLocale), "{bad:?}");
        }
    }
}

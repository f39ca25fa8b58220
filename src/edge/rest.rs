//! HTTP routes: health, login, token refresh and logout, WebSocket tickets, public helpline list, and the contact record for supervisors.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::state::access::AuthUser;
use crate::state::AppState;
use crate::auth::{dummy_hash, verify_password};
use crate::state::error::AppError;
use crate::protocol::ErrorCode;
use crate::store::sessions::Refresh;
use crate::store::users::{Role, User};

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::edge::prometheus::metrics))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/ws-ticket", post(ws_ticket))
        .route("/api/v1/me", get(me))
        .route("/api/v1/helplines", get(helplines))
        .route("/api/v1/contacts/{id}", get(contact))
        .route("/api/v1/caller/end", post(caller_end))
        .route("/api/v1/cluster", get(cluster_status))
        .route("/api/v1/openapi.json", get(crate::edge::openapi::document))
        .route("/ws/caller", get(crate::edge::ws::caller::upgrade))
        .route("/ws/agent", get(crate::edge::ws::counsellor::upgrade))
        .route("/ws/supervisor", get(crate::edge::ws::supervisor::upgrade))
        .route("/ws/telephony", get(crate::edge::ws::telephony::upgrade))
        .merge(crate::edge::assets::router())
        .merge(crate::supervision::reports::router())
        .merge(crate::supervision::staffing::router())
        .merge(crate::telephony::router())
        .merge(crate::casework::http::router())
        .merge(crate::safety::abuse::router())
        .merge(crate::safety::privacy::router())
}

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
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers (within 2 s, or is busy with writes that go through), the last durable write went through and, in
/// cluster mode, Redis answers. Not ready: 503 with `{"code": "unavailable", "message": …}`.
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
        if !cluster.redis_ready().await {
            return AppError::new(ErrorCode::Unavailable, "redis unreachable").into_response();
        }
    }
    (StatusCode::OK, "ready").into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, Debug)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    /// Opaque, single use: `POST /api/v1/auth/refresh` trades it for a new access token and a new refresh token.
    pub refresh_token: String,
    /// Seconds until the login ends, however often it is refreshed.
    pub refresh_expires_in: u64,
    pub user: User,
}

/// `POST /api/v1/auth/login`: username and password → access token.
/// Attempts are limited per address and per account name ([`crate::auth::guard`]): a guesser gets 429, not more tries.
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LoginResponse>, AppError> {
    let req: LoginRequest =
        serde_json::from_slice(&body).map_err(|e| AppError::new(ErrorCode::BadField, format!("bad login body: {e}")))?;
    if state.guard.login_attempt(state.guard.client_ip(peer, &headers), &req.username).is_err() {
        let now = state.clock.now_ms();
        let _ = state.store.audit(now, "anonymous", "login_throttled", Some(&req.username), None).await;
        return Err(AppError::new(ErrorCode::RateLimited, "too many login attempts; wait a minute and try again"));
    }
    let found = state.store.user_with_hash(&req.username).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
    let now = state.clock.now_ms();
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            state.guard.login_failed(&req.username);
            let _ = state.store.audit(now, "anonymous", "login_failed", Some(&req.username), None).await;
            return Err(AppError::unauthorized("wrong username or password, or the account is disabled"));
        }
    };
    let refresh_token = crate::auth::random_token(32);
    let family = crate::store::new_id();
    let refresh_until = now.saturating_add(i64::try_from(state.auth.refresh_ttl.as_millis()).unwrap_or(i64::MAX));
    state.store.create_refresh_token(&crate::auth::token_hash(&refresh_token), &family, &user.id, now, refresh_until).await?;
    state.store.audit(now, &user.id, "login", Some(&user.id), None).await?;
    tokens(&state, user, refresh_token, refresh_until, now)
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
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh {refresh_token}`: a new access token and a new refresh token; the one
/// presented is used up. A refresh token presented a second time means a copy is in other hands:
/// its whole family (every token descended from that login) is revoked, and the attempt audited.
/// 401 for an unknown, expired, revoked or reused token, and for a disabled or logged-out account.
async fn refresh(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Json<LoginResponse>, AppError> {
    let req: RefreshRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"refresh_token\": …}}: {e}")))?;
    let now = state.clock.now_ms();
    let next = crate::auth::random_token(32);
    let hash = crate::auth::token_hash(&req.refresh_token);
    let refused = || AppError::unauthorized("the session has ended; sign in again");
    match state.store.rotate_refresh_token(&hash, &crate::auth::token_hash(&next), now).await? {
        Refresh::Refused => Err(refused()),
        Refresh::Reused { user_id, family_id } => {
            tracing::warn!(user = %user_id, "a used refresh token was presented again: its family is revoked");
            state.store.audit(now, &user_id, "refresh_reuse", Some(&user_id), Some(&family_id)).await?;
            Err(refused())
        }
        Refresh::Rotated { user_id, family_id: _, expires_at } => {
            let user = match state.store.user(&user_id).await? {
                Some(u) if !u.disabled => u,
                _ => {
                    state.store.revoke_refresh_tokens(&user_id, now).await?;
                    return Err(refused());
                }
            };
            tokens(&state, user, next, expires_at, now)
        }
    }
}

/// `POST /api/v1/auth/logout`: voids every token of the account issued until now (access and refresh
/// tokens) and closes its open consoles and dashboards (the disabled-account watcher's path; within a second).
async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, AppError> {
    let now = state.clock.now_ms();
    state.store.revoke_sessions(&auth.user.id, now + 1).await?;
    state.store.revoke_refresh_tokens(&auth.user.id, now).await?;
    state.store.audit(now, &auth.user.id, "logout", Some(&auth.user.id), None).await?;
    state.hub.close_staff(&auth.user.id, crate::protocol::close::REVOKED, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, Debug)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_in: u64,
}

/// `POST /api/v1/ws-ticket`: a single-use ticket (30 s) to open `/ws/agent?ticket=…`.
async fn ws_ticket(State(state): State<AppState>, auth: AuthUser) -> Json<TicketResponse> {
    let ticket = state.tickets.issue(auth.claims);
    Json(TicketResponse { ticket, expires_in: crate::auth::TICKET_TTL.as_secs() })
}

async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

#[derive(Serialize)]
struct PublicHelpline<'a> {
    name: &'a str,
    display_name: &'a str,
    languages: &'a [String],
}

/// `GET /api/v1/helplines`: what the chat widget may offer (no settings).
async fn helplines(State(state): State<AppState>) -> Response {
    let list: Vec<PublicHelpline> = state
        .helplines
        .iter()
        .map(|h| PublicHelpline { name: &h.name, display_name: &h.display_name, languages: &h.languages })
        .collect();
    Json(list).into_response()
}

/// `GET /api/v1/contacts/{id}`: a contact's record and event log, for supervisors and admins (audited).
async fn contact(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Response, AppError> {
    if !matches!(auth.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("supervisors and admins only"));
    }
    let record = state.store.contact(&id).await?.ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such contact"))?;
    let events = state.store.contact_events(&id).await?;
    state.store.audit(state.clock.now_ms(), &auth.user.id, "view_contact", Some(&id), None).await?;
    Ok(Json(serde_json::json!({ "contact": record, "events": events })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEnd {
    resume_token: String,
}

/// `POST /api/v1/caller/end {resume_token}`: ends a caller's contact without a socket (the widget's
/// quick exit sends it with `navigator.sendBeacon` while the page is being replaced). 204 whether or not
/// the token matched an open contact, so it tells a guesser nothing.
async fn caller_end(State(state): State<AppState>, body: axum::body::Bytes) -> Result<StatusCode, AppError> {
    let req: CallerEnd = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"resume_token\": …}}: {e}")))?;
    let hash = crate::auth::token_hash(&req.resume_token);
    if let Some(contact) = state.store.contact_by_token_hash(&hash).await? {
        if let (true, Some(key)) = (contact.is_open(), crate::chat::engine_task::contact_key(&contact.id)) {
            state.engine.input(crate::routing::Input::EndByCaller { contact: key }).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/cluster` (admins): nodes, leader, lease, fencing token, stream lag. 404 on a single node.
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

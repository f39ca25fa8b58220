//! Signing in and what guards it: the password check with its lockouts and delays
//! ([`crate::auth::guard`]), the second factor (TOTP, [`crate::auth::totp`]) with its enrolment and
//! recovery codes, password changes and resets under the password rule ([`crate::auth::password`]),
//! and the admins' unlock and the supervisors' list of lockouts. See `docs/security.md`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::guard::{account_key, Counted, ACCOUNT_WINDOW_MS, PAIR_WINDOW_MS, STRIKE_MEMORY_MS};
use crate::auth::keyed::{login_name_hash, LOGIN_NAME_KEY};
use crate::auth::{dummy_hash, hash_password, totp, verify_password};
use crate::protocol::ErrorCode;
use crate::state::access::{AuthUser, Scope};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::users::{LoginLockout, Role, User};

/// The routes of this module (the login itself is [`crate::edge::rest`]'s `POST /api/v1/auth/login`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(totp_enrol))
        .routes(routes!(change_password))
        .routes(routes!(reset_password))
        .routes(routes!(unlock))
        .routes(routes!(reset_totp))
        .routes(routes!(lockouts))
}

/// Where a login comes from.
pub struct Origin {
    pub ip: IpAddr,
}

impl Origin {
    pub fn new(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Origin {
        Origin { ip: state.guard.client_ip(peer, headers) }
    }
}

async fn name_hash(state: &AppState, name: &str) -> Result<String, AppError> {
    let key = state.store.secrets().secret_or_create(LOGIN_NAME_KEY, state.clock.now_ms(), crate::auth::random_secret).await?;
    Ok(login_name_hash(&key, name))
}

/// The first factor: `username` and `password`, through the address limit, the pair's lockout and the
/// account's delay. A wrong password (or a disabled account) is counted and audited; past the limit the
/// pair is locked out (recorded, audited). Returns the account.
pub async fn password_factor(state: &AppState, from: &Origin, username: &str, password: &str) -> Result<User, AppError> {
    let now = state.clock.now_ms();
    let hashed = name_hash(state, username).await?;
    let address = from.ip.to_string();
    if state.guard.login_attempt(from.ip).is_err() {
        let _ = state.store.audit_log().audit(now, "anonymous", "login_throttled", Some(&hashed), Some(&address)).await;
        return Err(AppError::new(ErrorCode::RateLimited, "too many login attempts from this address; wait a minute and try again"));
    }
    if let Some(until) = state.store.accounts().login_locked_until(&hashed, &address, now).await? {
        let found = state.store.accounts().user_with_hash(&account_key(username)).await?;
        let target = found.as_ref().map_or(hashed.as_str(), |(u, _)| u.id.as_str());
        let _ = state.store.audit_log().audit(now, "anonymous", "login_throttled", Some(target), Some(&address)).await;
        let seconds = (until - now + 999) / 1000;
        let minutes = (until - now + 59_999) / 60_000;
        return Err(AppError::new(
            ErrorCode::RateLimited,
            format!("too many failed logins for this account from this address; try again in {minutes} min, or ask an admin to unlock it"),
        )
        .retry_after(u64::try_from(seconds).unwrap_or(1)));
    }
    // The account's failures from every address, on every node, slow its attempts down.
    let failures = state.store.accounts().account_failures(&hashed, now - ACCOUNT_WINDOW_MS).await?;
    let delay = state.guard.delay_after(failures);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let found = state.store.accounts().user_with_hash(&account_key(username)).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let typed = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&typed, &hash)).await.unwrap_or(false);
    match user {
        Some(u) if ok && !u.disabled => Ok(u),
        other => {
            failed(state, from, other.as_ref(), &hashed, "password").await;
            Err(AppError::unauthorized("wrong username or password, or the account is disabled"))
        }
    }
}

/// Counts and audits a failed login (`what` failed: the password or the second factor); records and
/// audits the lockout it may earn the pair. The name typed is audited as its keyed hash, or as the
/// account's id when it is one.
async fn failed(state: &AppState, from: &Origin, user: Option<&User>, hashed: &str, what: &str) {
    let now = state.clock.now_ms();
    let target = user.map_or(hashed, |u| u.id.as_str());
    let _ = state.store.audit_log().audit(now, "anonymous", "login_failed", Some(target), Some(what)).await;
    let address = from.ip.to_string();
    // Counted in the database, so a guesser spread over the nodes of a cluster gets no more tries.
    let counted = match state.store.accounts().login_failure(hashed, &address, now, now - PAIR_WINDOW_MS, now - ACCOUNT_WINDOW_MS).await {
        Ok(counted) => counted,
        Err(e) => {
            tracing::error!(error = %e, "counting a failed login failed");
            return;
        }
    };
    let Some(lock) = state.guard.lockout_after(Counted { pair: counted.pair, last_lockout: counted.last_lockout }, now) else { return };
    let forget_before = now - STRIKE_MEMORY_MS;
    if let Err(e) = state
        .store
        .accounts()
        .lock_login(
            &crate::store::users::NewLockout {
                account_hash: hashed,
                address: &address,
                user_id: user.map(|u| u.id.as_str()),
                now,
                until: lock.until_ms,
                strikes: lock.strikes,
            },
            forget_before,
        )
        .await
    {
        tracing::error!(error = %e, "recording a login lockout failed");
    }
    let detail = serde_json::json!({"address": address, "until": lock.until_ms, "strikes": lock.strikes}).to_string();
    let _ = state.store.audit_log().audit(now, "anonymous", "login_locked", Some(target), Some(&detail)).await;
    tracing::warn!(%address, strikes = lock.strikes, "an address is locked out of an account after failed logins");
}

/// Whether `user` must give a second factor to sign in.
async fn second_factor_needed(state: &AppState, user: &User) -> Result<(bool, crate::store::users::Totp), AppError> {
    let totp = state.store.accounts().totp(&user.id).await?;
    let by_role = state.guard.totp_required() && matches!(user.role, Role::Admin | Role::Supervisor);
    Ok((totp.enabled || by_role, totp))
}

/// The second factor, after the right password: Ok(None) when none is needed or it was right, Ok(Some(codes))
/// when `code` confirmed an enrolment (the new recovery codes, shown once). A wrong code counts as a failed login.
pub async fn second_factor(
    state: &AppState,
    from: &Origin,
    username: &str,
    user: &User,
    code: Option<&str>,
) -> Result<Option<Vec<String>>, AppError> {
    let (needed, totp) = second_factor_needed(state, user).await?;
    let pending = totp.secret.as_deref().filter(|_| !totp.enabled);
    let Some(code) = code else {
        if !needed {
            return Ok(None);
        }
        return Err(if totp.enabled {
            AppError::new(ErrorCode::TotpRequired, "enter the 6-digit code from your authenticator app (or a recovery code) as totp_code")
        } else {
            AppError::new(
                ErrorCode::TotpEnrolmentRequired,
                "this account must set up a second factor: POST /api/v1/auth/totp/enrol, then sign in with the app's code as totp_code",
            )
        });
    };
    let now = state.clock.now_ms();
    let now_secs = u64::try_from(now / 1000).unwrap_or(0);
    let accepted = match (totp.enabled, totp.secret.as_deref(), pending) {
        (true, _, _) if totp::is_recovery_code(code) => {
            let used = state.store.accounts().use_recovery_code(&user.id, &totp::recovery_code_hash(code), now).await?;
            if used {
                state.store.audit_log().audit(now, &user.id, "recovery_code_used", Some(&user.id), None).await?;
            }
            used.then_some(None)
        }
        (true, Some(secret), _) => match totp::matching_step(secret, &user.username, code, now_secs) {
            Some(step) => state.store.accounts().use_totp_step(&user.id, i64::try_from(step).unwrap_or(i64::MAX)).await?.then_some(None),
            None => None,
        },
        (false, _, Some(secret)) => match totp::matching_step(secret, &user.username, code, now_secs) {
            Some(step) => {
                let codes = totp::new_recovery_codes();
                let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
                state.store.accounts().enable_totp(&user.id, i64::try_from(step).unwrap_or(i64::MAX), &hashes).await?;
                state.store.audit_log().audit(now, &user.id, "totp_enabled", Some(&user.id), None).await?;
                Some(Some(codes))
            }
            None => None,
        },
        // A code for an account without a second factor: nothing to check it against.
        _ if !needed => Some(None),
        _ => None,
    };
    match accepted {
        Some(codes) => Ok(codes),
        None => {
            let hashed = name_hash(state, username).await?;
            failed(state, from, Some(user), &hashed, "second factor").await;
            Err(AppError::unauthorized("wrong or already used code"))
        }
    }
}

/// A successful login from `from`: the pair's failures no longer count towards its lockout (they
/// still slow the account down from elsewhere), on every node.
pub async fn signed_in(state: &AppState, from: &Origin, username: &str) {
    let forgot = match name_hash(state, username).await {
        Ok(hashed) => {
            state.store.accounts().login_succeeded(&hashed, &from.ip.to_string(), state.clock.now_ms()).await.map_err(AppError::from)
        }
        Err(e) => Err(e),
    };
    if let Err(e) = forgot {
        tracing::warn!(error = %e, "forgetting a pair's failed logins after a login failed");
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EnrolRequest {
    username: String,
    password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnrolResponse {
    /// The shared secret, base32 (to type into an authenticator app).
    pub secret: String,
    /// The same as an `otpauth://totp/…` URI (for a QR code).
    pub otpauth_uri: String,
}

/// `POST /api/v1/auth/totp/enrol {username, password}`: starts setting up the second factor. The
/// answer's secret goes into an authenticator app; the next login with the app's code as `totp_code`
/// confirms it and returns the recovery codes (once). Goes through the same limits as a login.
#[utoipa::path(post, path = "/api/v1/auth/totp/enrol", tag = "auth", request_body = EnrolRequest,
    responses(
        (status = 200, description = "the secret and its otpauth URI; not required until a login confirms it with a code", body = EnrolResponse),
        (status = 400, description = "`bad_field`: the body is not `{username, password}`", body = ErrorBody),
        (status = 401, description = "wrong username or password, or the account is disabled", body = ErrorBody),
        (status = 409, description = "`conflict`: the account already has a second factor (an admin can reset it)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this address is locked out of this account, or over its rate", body = ErrorBody),
    ))]
async fn totp_enrol(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<EnrolResponse>, AppError> {
    let req: EnrolRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"username\", \"password\"}}: {e}")))?;
    let from = Origin::new(&state, peer, &headers);
    let user = password_factor(&state, &from, &req.username, &req.password).await?;
    signed_in(&state, &from, &req.username).await;
    let secret = totp::new_secret();
    let otpauth_uri = totp::uri(&secret, &user.username).ok_or_else(AppError::internal)?;
    state.store.accounts().begin_totp(&user.id, &secret).await?;
    state.store.audit_log().audit(state.clock.now_ms(), &user.id, "totp_enrol", Some(&user.id), None).await?;
    Ok(Json(EnrolResponse { secret, otpauth_uri }))
}

/// Checks a new password against the rule and hashes it.
pub(crate) async fn new_password_hash(username: &str, password: String) -> Result<String, AppError> {
    crate::auth::password::check(username, &password).map_err(|weak| AppError::new(ErrorCode::WeakPassword, weak.to_string()))?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await.ok().and_then(Result::ok).ok_or_else(AppError::internal)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    /// At least 12 characters (the password rule: docs/security.md).
    #[schema(min_length = 12)]
    new_password: String,
}

/// `POST /api/v1/auth/password {current_password, new_password}`: changes the signed-in account's
/// password. The current one is checked like a login (a wrong one counts towards a lockout); the new
/// one must meet the password rule.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])), request_body = PasswordChange,
    responses(
        (status = 204, description = "changed"),
        (status = 400, description = "`bad_field`: the body is not `{current_password, new_password}`", body = ErrorBody),
        (status = 401, description = "the current password is wrong", body = ErrorBody),
        (status = 422, description = "`weak_password`: the new password does not meet the rule (the message says why)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong passwords from this address", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    auth: AuthUser,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    let req: PasswordChange = serde_json::from_slice(&body)
        .map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"current_password\", \"new_password\"}}: {e}")))?;
    let from = Origin::new(&state, peer, &headers);
    let user = password_factor(&state, &from, &auth.user.username, &req.current_password).await?;
    let hash = new_password_hash(&user.username, req.new_password).await?;
    state.store.accounts().set_password_hash(&user.id, &hash).await?;
    state.store.audit_log().audit(state.clock.now_ms(), &user.id, "password_change", Some(&user.id), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    /// At least 12 characters (the password rule: docs/security.md).
    #[schema(min_length = 12)]
    password: String,
}

/// The account called `username` (any case), or 404.
pub(crate) async fn account(state: &AppState, username: &str) -> Result<User, AppError> {
    state
        .store
        .accounts()
        .user_with_hash(&account_key(username))
        .await?
        .map(|(u, _)| u)
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such account"))
}

fn admins_only(auth: &AuthUser) -> Result<(), AppError> {
    match auth.user.role {
        Role::Admin => Ok(()),
        _ => Err(AppError::forbidden("admins only")),
    }
}

/// `POST /api/v1/users/{username}/password {password}` (admins): sets a new password under the rule,
/// and ends the account's sessions (it signs in again with the new one).
#[utoipa::path(post, path = "/api/v1/users/{username}/password", tag = "accounts", security(("bearer" = [])), request_body = PasswordReset,
    params(("username" = String, Path, description = "the account")),
    responses(
        (status = 204, description = "reset; the account's tokens are void and its sockets closed"),
        (status = 400, description = "`bad_field`: the body is not `{password}`", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 422, description = "`weak_password`: the password does not meet the rule", body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, AppError> {
    admins_only(&auth)?;
    let req: PasswordReset =
        serde_json::from_slice(&body).map_err(|e| AppError::new(ErrorCode::BadField, format!("expected {{\"password\"}}: {e}")))?;
    let user = account(&state, &username).await?;
    let hash = new_password_hash(&user.username, req.password).await?;
    let now = state.clock.now_ms();
    state.store.accounts().set_password_hash(&user.id, &hash).await?;
    state.store.sessions().revoke_sessions(&user.id, now + 1).await?;
    state.store.sessions().revoke_refresh_tokens(&user.id, now).await?;
    state.hub.close_staff(&user.id, crate::protocol::close::REVOKED, "password reset");
    state.store.audit_log().audit(now, &auth.user.id, "password_reset", Some(&user.id), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Unlocked {
    /// Lockouts of the account (from every address) that were in force and are lifted.
    pub lifted: u64,
}

/// `POST /api/v1/users/{username}/unlock` (admins): lifts every lockout of the account, from every
/// address, and forgets its failures on every node (its delays end). Audited.
#[utoipa::path(post, path = "/api/v1/users/{username}/unlock", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path, description = "the account (any case)")),
    responses(
        (status = 200, description = "unlocked", body = Unlocked),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
async fn unlock(State(state): State<AppState>, auth: AuthUser, Path(username): Path<String>) -> Result<Json<Unlocked>, AppError> {
    admins_only(&auth)?;
    let user = account(&state, &username).await?;
    let now = state.clock.now_ms();
    let lifted = state.store.accounts().unlock_login(&name_hash(&state, &user.username).await?, now).await?;
    state.store.audit_log().audit(now, &auth.user.id, "login_unlock", Some(&user.id), Some(&lifted.to_string())).await?;
    Ok(Json(Unlocked { lifted }))
}

/// `DELETE /api/v1/users/{username}/totp` (admins): removes the account's second factor and recovery
/// codes (a lost phone); the account enrols again at its next login if it must. Audited.
#[utoipa::path(delete, path = "/api/v1/users/{username}/totp", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path, description = "the account (any case)")),
    responses(
        (status = 204, description = "the second factor is removed"),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
async fn reset_totp(State(state): State<AppState>, auth: AuthUser, Path(username): Path<String>) -> Result<StatusCode, AppError> {
    admins_only(&auth)?;
    let user = account(&state, &username).await?;
    state.store.accounts().reset_totp(&user.id).await?;
    state.store.audit_log().audit(state.clock.now_ms(), &auth.user.id, "totp_reset", Some(&user.id), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/lockouts` (supervisors and admins): the (account, address) pairs locked out now after
/// failed logins, latest first. An admin (or a supervisor granted every helpline) sees them all, a
/// name that is no account without `username`; a supervisor only those of accounts serving (first-line
/// or as backup) a helpline they supervise.
#[utoipa::path(get, path = "/api/v1/lockouts", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "the lockouts in force of accounts in the caller's scope", body = Vec<LoginLockout>),
        (status = 403, description = "supervisors and admins only", body = ErrorBody),
    ))]
async fn lockouts(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Vec<LoginLockout>>, AppError> {
    if !matches!(auth.user.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden("supervisors and admins only"));
    }
    let all = state.store.accounts().login_lockouts(state.clock.now_ms()).await?;
    let scope = Scope::of(&auth.user);
    if scope == Scope::All {
        return Ok(Json(all));
    }
    let mut seen: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let mut shown = Vec::new();
    for lockout in all {
        let Some(id) = lockout.user_id.clone() else { continue };
        let in_scope = match seen.get(&id) {
            Some(known) => *known,
            None => {
                let account = state.store.accounts().user(&id).await?;
                let covered = account.is_some_and(|u| scope.covers_any(u.helplines.iter().chain(&u.backup_helplines)));
                seen.insert(id, covered);
                covered
            }
        };
        if in_scope {
            shown.push(lockout);
        }
    }
    Ok(Json(shown))
}

//! Accounts over REST, for the admin page (`/admin`, docs/admin.md): list, create, read and change
//! accounts (helplines, backup helplines, languages, capacity, extension, role, districts; disable and
//! enable), and one-time password reset codes that the account's owner redeems to set her own password
//! (`POST /api/v1/auth/reset`). Admins only (a refusal is audited); every change audited. The rules are
//! [`crate::auth::accounts`]'s; the admins' unlock, second-factor reset and direct password reset are
//! [`super::logins`]'.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::accounts::{self as rules, AccountChange, Refusal};
use crate::auth::guard::account_key;
use crate::protocol::{close, rfc3339, ErrorCode};
use crate::state::access::{parse_body, Staff};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::users::{NewUser, User};
use crate::store::StoreError;

use super::logins::{account, new_password_hash, Origin};

/// The accounts routes, with their OpenAPI descriptions (tag `accounts`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, change)).routes(routes!(reset)).routes(routes!(redeem))
}

/// An account as the admin page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    #[serde(flatten)]
    pub user: User,
    /// Districts a case manager covers.
    pub districts: Vec<String>,
    /// Whether the account signs in with a second factor.
    pub totp_enabled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<Account>,
}

/// A one-time reset code, shown once to the admin who made it (only its hash is stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetCode {
    /// The code (`ABCD-EFGH-JKMN-PQRS-TUVW`), typed on the reset page.
    pub code: String,
    /// The page that sets the password with the code (the code in the fragment, never sent to a server).
    pub link: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// A new account and, when it was created without a password, its first reset code.
#[derive(Serialize, ToSchema)]
pub struct Created {
    pub account: Account,
    pub reset: Option<ResetCode>,
}

/// A new account: its username, a password (or none: the answer carries a reset code for its owner to
/// set her own) and any of the fields of a change.
#[derive(Deserialize, ToSchema)]
pub struct NewAccount {
    /// 1-64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
    pub username: String,
    /// Must meet the password rule; absent: the owner sets hers with the reset code in the answer.
    pub password: Option<String>,
    #[serde(flatten)]
    pub fields: AccountChange,
}

/// A change of an account: any of the fields, and `disabled`.
#[derive(Deserialize, ToSchema)]
pub struct ChangeAccount {
    /// True: the account can no longer sign in and its sockets close; false: enabled again.
    pub disabled: Option<bool>,
    #[serde(flatten)]
    pub fields: AccountChange,
}

/// The OpenAPI document's shape of a [`NewAccount`] (and, with `disabled`, of a [`ChangeAccount`]): their
/// fields in one object, nothing else (the handlers refuse any other field). serde's `flatten` of
/// [`AccountChange`] would describe them as two closed objects at once, which nothing satisfies.
macro_rules! account_schema {
    ($(#[$meta:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct $name {
            $($own)*
            /// Shown to callers and colleagues; at most 80 characters.
            #[schema(max_length = 80)]
            display_name: Option<String>,
            /// `counsellor`, `supervisor`, `admin` or `case_manager`.
            #[schema(pattern = "^(counsellor|supervisor|admin|case_manager)$")]
            role: Option<String>,
            /// Helplines served first-line.
            helplines: Option<Vec<String>>,
            /// Helplines backed up when a contact has waited (10 s by default).
            backup_helplines: Option<Vec<String>>,
            /// Languages spoken: ISO 639-1 codes (`ro`, `ru`, `uk`, `en`, …).
            languages: Option<Vec<String>>,
            /// Concurrent chats at most, 1 to 50.
            #[schema(minimum = 1, maximum = 50)]
            capacity: Option<i64>,
            /// Phone extension for calls (null: none, never offered calls): up to 32 of digits, letters and `*#+-_.`.
            #[schema(pattern = "^[0-9A-Za-z*#+_.-]{1,32}$")]
            extension: Option<String>,
            /// Takes the callers routed to senior counsellors.
            senior: Option<bool>,
            /// Districts a case manager covers; at most 100 characters each, no commas.
            districts: Option<Vec<String>>,
        }
    };
}

account_schema!(
    /// A new account (`POST /api/v1/users`).
    NewAccountSchema {
        /// 1-64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
        #[schema(pattern = "^\\s*[a-z0-9._-]{1,64}\\s*$")]
        username: String,
        /// At least 12 characters (the password rule); absent: the answer carries a reset code.
        #[schema(min_length = 12)]
        password: Option<String>,
    }
);

account_schema!(
    /// A change of an account (`PATCH /api/v1/users/{username}`).
    ChangeAccountSchema {
        /// True: the account can no longer sign in and its sockets close; false: enabled again.
        disabled: Option<bool>,
    }
);

/// The reset page's request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    /// The code the admin gave (any case; dashes and spaces ignored).
    #[schema(min_length = 1, max_length = 64, pattern = "[0-9A-Za-z]")]
    pub code: String,
    /// The new password (the rule applies: at least 12 characters, docs/security.md).
    #[schema(min_length = 12)]
    pub password: String,
}

/// Reads a body as `T`, refusing (`bad_field`, naming it) a field that is neither one of `own` nor one
/// of a change's.
fn read_body<T: serde::de::DeserializeOwned>(body: &[u8], own: &[&str]) -> Result<T, AppError> {
    let mut all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| AppError::bad_field(format!("expected a JSON object: {e}")))?;
    for key in own {
        all.remove(*key);
    }
    serde_json::from_value::<AccountChange>(serde_json::Value::Object(all)).map_err(|e| AppError::bad_field(e.to_string()))?;
    serde_json::from_slice(body).map_err(|e| AppError::bad_field(e.to_string()))
}

fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Invalid { field, message } => {
            AppError::new(ErrorCode::InvalidAccount, format!("{field}: {message}")).with("field", serde_json::Value::from(field))
        }
        Refusal::UnknownHelpline(h) => AppError::new(ErrorCode::UnknownHelpline, format!("no such helpline {h:?}")),
        Refusal::LastAdmin => AppError::new(ErrorCode::LastAdmin, refusal.to_string()),
    }
}

fn known_helplines(state: &AppState) -> Vec<String> {
    state.helplines.iter().map(|h| h.name.clone()).collect()
}

async fn view(state: &AppState, user: User) -> Result<Account, AppError> {
    let districts = state.store.accounts().user_districts(&user.id).await?;
    let totp_enabled = state.store.accounts().totp_enabled(&user.id).await?;
    Ok(Account { user, districts, totp_enabled })
}

/// `GET /api/v1/users`: every account, by username (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "every account, disabled ones included", body = AccountList),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "users_list", "users").await?;
    let mut districts = state.store.accounts().all_districts().await?;
    let mut accounts = Vec::new();
    for user in state.store.accounts().users().await? {
        let totp_enabled = state.store.accounts().totp_enabled(&user.id).await?;
        accounts.push(Account { districts: districts.remove(&user.id).unwrap_or_default(), totp_enabled, user });
    }
    Ok(Json(AccountList { accounts }).into_response())
}

/// `GET /api/v1/users/{username}`: one account (admins).
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path, description = "the account (any case)")),
    responses(
        (status = 200, description = "the account", body = Account),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
async fn show(State(state): State<AppState>, staff: Staff, Path(username): Path<String>) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "user_read", &username).await?;
    let user = account(&state, &username).await?;
    Ok(Json(view(&state, user).await?).into_response())
}

/// A new reset code for `user`, stored hashed; audited as made by `staff`.
async fn new_reset(state: &AppState, staff: &Staff, user: &User) -> Result<ResetCode, AppError> {
    let code = rules::new_reset_code();
    let now = state.clock.now_ms();
    let expires = now + rules::RESET_VALID_MS;
    state.store.accounts().create_reset(&user.id, &rules::reset_code_hash(&code), staff.id(), now, expires).await?;
    staff.audit(state, "password_reset_code", &user.id, Some(&rfc3339(expires))).await;
    Ok(ResetCode { link: format!("/reset#{code}"), code, expires_at: rfc3339(expires) })
}

/// `POST /api/v1/users`: creates an account (admins; audited). Without a password, the answer carries
/// a one-time reset code for its owner to set her own.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])), request_body = NewAccountSchema,
    responses(
        (status = 201, description = "the account, and its reset code when created without a password", body = Created),
        (status = 400, description = "`bad_field`: not a JSON object, a field of the wrong type or unknown", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`: a helpline that is not the server's", body = ErrorBody),
        (status = 409, description = "`conflict`: the username is taken", body = ErrorBody),
        (status = 422, description = "`invalid_account` (`field`: an empty or malformed username, a bad role, capacity, language, extension or district); `weak_password`", body = ErrorBody),
    ))]
async fn create(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "user_create", "users").await?;
    let req: NewAccount = read_body(&body, &["username", "password"])?;
    let username = rules::check_username(&req.username).map_err(refused)?;
    let fields = rules::apply(rules::new_fields(&username), &req.fields, &known_helplines(&state)).map_err(refused)?;
    let with_password = req.password.is_some();
    let password_hash = match req.password {
        Some(p) => new_password_hash(&username, p).await?,
        // No password anyone knows: its owner sets hers with the reset code.
        None => {
            let secret = crate::auth::random_secret();
            tokio::task::spawn_blocking(move || crate::auth::hash_password(&secret))
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(AppError::internal)?
        }
    };
    let new = NewUser {
        username: username.clone(),
        display_name: fields.display_name.clone(),
        password_hash,
        role: fields.role,
        helplines: fields.helplines.clone(),
        backup_helplines: fields.backup_helplines.clone(),
        languages: fields.languages.clone(),
        capacity: fields.capacity,
    };
    let created = match state.store.accounts().create_user(&new, state.clock.now_ms()).await {
        Err(StoreError::Conflict(_)) => return Err(AppError::new(ErrorCode::Conflict, format!("the username {username:?} is taken"))),
        other => other?,
    };
    state.store.accounts().set_fields(&created.id, &fields).await?;
    staff.audit(&state, "user_add", &created.id, Some(fields.role.as_str())).await;
    let reset = if !with_password { Some(new_reset(&state, &staff, &created).await?) } else { None };
    let user = state.store.accounts().user(&created.id).await?.ok_or_else(AppError::internal)?;
    Ok((StatusCode::CREATED, Json(Created { account: view(&state, user).await?, reset })).into_response())
}

/// `PATCH /api/v1/users/{username}`: changes an account's fields, disables or enables it (admins;
/// audited). A counsellor's consoles reconnect at once with the new helplines, languages and capacity;
/// a disabled account's sockets close.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "accounts", security(("bearer" = [])), request_body = ChangeAccountSchema,
    params(("username" = String, Path, description = "the account (any case)")),
    responses(
        (status = 200, description = "the account now", body = Account),
        (status = 400, description = "`bad_field`: not a JSON object, a field of the wrong type or unknown", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account; `unknown_helpline`", body = ErrorBody),
        (status = 409, description = "`last_admin`: the last enabled admin may be neither disabled nor demoted", body = ErrorBody),
        (status = 422, description = "`invalid_account`: `field` names the field out of its rule", body = ErrorBody),
    ))]
async fn change(
    State(state): State<AppState>,
    staff: Staff,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "user_edit", &username).await?;
    let req: ChangeAccount = read_body(&body, &["disabled"])?;
    let disabled = req.disabled;
    let user = account(&state, &username).await?;
    let before = rules::fields_of(&user, state.store.accounts().user_districts(&user.id).await?);
    let after = rules::apply(before.clone(), &req.fields, &known_helplines(&state)).map_err(refused)?;
    let enabled = !disabled.unwrap_or(user.disabled);
    let admins = state.store.accounts().enabled_admins().await?;
    rules::keeps_an_admin(user.role == crate::store::users::Role::Admin, !user.disabled, after.role, enabled, admins).map_err(refused)?;
    if after != before {
        state.store.accounts().set_fields(&user.id, &after).await?;
        let detail = serde_json::json!({
            "role": after.role.as_str(), "helplines": after.helplines, "backup_helplines": after.backup_helplines,
            "languages": after.languages, "capacity": after.capacity, "extension": after.extension.is_some(),
            "senior": after.senior, "districts": after.districts,
        });
        staff.audit(&state, "user_edit", &user.id, Some(&detail.to_string())).await;
        // Her consoles connect again with the account as it is now (the router takes the new profile).
        state.hub.close_counsellor(&user.id, close::RESTART, "account changed");
    }
    if let Some(disabled) = disabled.filter(|d| *d != user.disabled) {
        state.store.accounts().set_user_disabled(&account_key(&user.username), disabled).await?;
        staff.audit(&state, if disabled { "user_disable" } else { "user_enable" }, &user.id, None).await;
        if disabled {
            state.hub.close_staff(&user.id, close::REVOKED, "account disabled");
        }
    }
    let user = state.store.accounts().user(&user.id).await?.ok_or_else(AppError::internal)?;
    Ok(Json(view(&state, user).await?).into_response())
}

/// `POST /api/v1/users/{username}/reset`: a one-time code (and a link carrying it) with which the
/// account's owner sets her own password, within 24 hours, once (admins; audited). Earlier unused codes
/// of the account are void; its password and sessions are untouched until the code is used.
#[utoipa::path(post, path = "/api/v1/users/{username}/reset", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path, description = "the account (any case)")),
    responses(
        (status = 201, description = "the code, shown once (only its hash is stored)", body = ResetCode),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
async fn reset(State(state): State<AppState>, staff: Staff, Path(username): Path<String>) -> Result<Response, AppError> {
    staff.admin_or_refuse(&state, "password_reset_code", &username).await?;
    let user = account(&state, &username).await?;
    Ok((StatusCode::CREATED, Json(new_reset(&state, &staff, &user).await?)).into_response())
}

/// `POST /api/v1/auth/reset {code, password}`: sets a new password with a reset code an admin gave (no
/// sign-in; throttled like a login). The code works once and expires; the password rule applies (a weak
/// password leaves the code unused). The account's sessions end, and the sign-in is unlocked.
#[utoipa::path(post, path = "/api/v1/auth/reset", tag = "auth", request_body = Redeem,
    responses(
        (status = 204, description = "the password is set; sign in with it"),
        (status = 400, description = "`bad_field`: the body is not `{code, password}`", body = ErrorBody),
        (status = 422, description = "`invalid_reset_code`: unknown, used or expired; `weak_password`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many attempts from this address", body = ErrorBody),
    ))]
async fn redeem(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: Redeem = parse_body(&body)?;
    let from = Origin::new(&state, peer, &headers);
    if state.guard.login_attempt(from.ip).is_err() {
        return Err(AppError::new(ErrorCode::RateLimited, "too many attempts from this address; wait a minute and try again"));
    }
    let now = state.clock.now_ms();
    let hash = rules::reset_code_hash(&req.code);
    let invalid = || AppError::new(ErrorCode::InvalidResetCode, "this code is unknown, used or expired: ask an admin for a new one");
    let Some(user) = state.store.accounts().reset_account(&hash, now).await? else {
        let _ = state.store.audit_log().audit(now, "anonymous", "password_reset_refused", None, Some(&from.ip.to_string())).await;
        return Err(invalid());
    };
    let password_hash = new_password_hash(&user.username, req.password).await?;
    if !state.store.accounts().redeem_reset(&hash, &user.id, &password_hash, now).await? {
        return Err(invalid());
    }
    state.store.sessions().revoke_sessions(&user.id, now + 1).await?;
    state.store.sessions().revoke_refresh_tokens(&user.id, now).await?;
    state.hub.close_staff(&user.id, close::REVOKED, "password reset");
    state.store.audit_log().audit(now, &user.id, "password_reset_redeemed", Some(&user.id), Some(&from.ip.to_string())).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

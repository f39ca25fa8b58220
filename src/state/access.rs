//! Who is asking, and what they may see: the request extractors ([`AuthUser`], [`Staff`] with the
//! request's source for the audit log), socket authentication, and the visibility rules every domain
//! checks before it answers (a hidden object is a 404, and the refusal is audited).
//!
//! This is the one place that decides (role × helplines × districts × own contacts); the rules are
//! stated in `docs/security.md` ("Who sees what"). [`Scope`] is the helplines a person supervises:
//! every one for admins and for supervisors granted all (`users.all_helplines`, an audited grant),
//! otherwise exactly the helplines on the account: an empty list is nothing, never everything.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::auth::Claims;
use crate::protocol::ErrorCode;
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::cases::CaseRecord;
use crate::store::contacts::ContactRecord;
use crate::store::services::PlacementRecord;
use crate::store::users::{Role, User};

/// The helplines a person supervises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every helpline: admins, and supervisors granted all.
    All,
    /// These helplines only (none: supervises nothing).
    Only(Vec<String>),
}

impl Scope {
    /// What `user` supervises: admins all; supervisors granted all, all; other supervisors the helplines
    /// on their account; everyone else nothing.
    pub fn of(user: &User) -> Scope {
        match user.role {
            Role::Admin => Scope::All,
            Role::Supervisor if user.all_helplines => Scope::All,
            Role::Supervisor => Scope::Only(user.helplines.clone()),
            Role::Counsellor | Role::CaseManager => Scope::Only(Vec::new()),
        }
    }

    pub fn covers(&self, helpline: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(list) => list.iter().any(|h| h == helpline),
        }
    }

    /// Covers at least one of `helplines`.
    pub fn covers_any<'a>(&self, mut helplines: impl Iterator<Item = &'a String>) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(list) => helplines.any(|h| list.contains(h)),
        }
    }

    /// The list, or None for every helpline (the form the hub and the board take).
    pub fn list(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Only(list) => Some(list.clone()),
        }
    }
}

/// A counsellor `user` may act on (set their status, offer or transfer to them): a counsellor serving
/// first-line a helpline `scope` covers.
pub fn counsellor_in_scope(scope: &Scope, counsellor: &User) -> bool {
    counsellor.role == Role::Counsellor && scope.covers_any(counsellor.helplines.iter())
}

/// A counsellor serves `helpline`: first-line or as backup (they take its contacts, and may record its offline calls).
pub fn serves(user: &User, helpline: &str) -> bool {
    user.helplines.iter().chain(&user.backup_helplines).any(|h| h == helpline)
}

/// An authenticated account (from `Authorization: Bearer …`), still enabled.
pub struct AuthUser {
    pub user: User,
    pub claims: Claims,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| AppError::unauthorized("missing bearer token"))?;
        let claims = state.auth.verify_at(token, state.clock.now_ms()).ok_or_else(|| AppError::unauthorized("invalid or expired token"))?;
        let user = enabled_user(state, &claims).await?;
        Ok(AuthUser { user, claims })
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// The account a token speaks for: it must exist, be enabled, and not have logged out since the token was issued.
async fn enabled_user(state: &AppState, claims: &Claims) -> Result<User, AppError> {
    let user = match state.store.accounts().user(&claims.sub).await? {
        Some(u) if !u.disabled => u,
        _ => return Err(AppError::unauthorized("account unknown or disabled")),
    };
    match state.store.sessions().sessions_revoked_at(&user.id).await? {
        Some(revoked) if claims.iat_ms < revoked => Err(AppError::unauthorized("logged out; log in again")),
        _ => Ok(user),
    }
}

/// Authenticates a WebSocket upgrade: a single-use ticket, or a bearer header.
pub async fn authenticate_socket(state: &AppState, headers: &HeaderMap, ticket: Option<&str>) -> Result<User, AppError> {
    let claims = match (ticket, bearer(headers)) {
        (Some(t), _) => state.tickets.redeem(t).ok_or_else(|| AppError::unauthorized("ticket unknown, used or expired"))?,
        (None, Some(token)) => {
            state.auth.verify_at(token, state.clock.now_ms()).ok_or_else(|| AppError::unauthorized("invalid or expired token"))?
        }
        (None, None) => return Err(AppError::unauthorized("a ticket or a bearer token is required")),
    };
    enabled_user(state, &claims).await
}

/// An authenticated account, and where its request came from (for the audit log).
pub struct Staff {
    pub user: User,
    pub source: String,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| format!("http {}", state.guard.client_addr(*addr, &parts.headers)))
            .unwrap_or_else(|| "http".into());
        Ok(Staff { user: auth.user, source })
    }
}

impl Staff {
    /// A socket session's account (source: the socket).
    pub fn on_socket(user: User, socket: &str) -> Staff {
        Staff { user, source: format!("ws {socket}") }
    }

    pub fn id(&self) -> &str {
        &self.user.id
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Supervises `helpline`: an admin, a supervisor granted all, or a supervisor who lists it.
    pub fn supervises(&self, helpline: &str) -> bool {
        self.scope().covers(helpline)
    }

    /// The helplines this person supervises (see [`Scope::of`]).
    pub fn scope(&self) -> Scope {
        Scope::of(&self.user)
    }

    /// Supervisors and admins only (403 otherwise): the gate of the supervision routes (the role's
    /// refusal names no object; refusals of an object are audited by the checks that load it).
    pub fn supervisor_only(&self) -> Result<(), AppError> {
        if matches!(self.user.role, Role::Supervisor | Role::Admin) {
            return Ok(());
        }
        Err(AppError::forbidden("supervisors and admins only"))
    }

    /// The helpline a report or estimate covers (`?helpline=`, None: all): a helpline named must be one
    /// this person supervises; none named means all for [`Scope::All`], their one helpline for a
    /// supervisor of one, and is refused (403, audited) for a supervisor of several: they name one.
    pub async fn report_helpline(&self, state: &AppState, action: &str, named: Option<&str>) -> Result<Option<String>, AppError> {
        match (named, self.scope()) {
            (Some(h), _) => self.helpline_or_refuse(state, action, h).await.map(|()| Some(h.to_string())),
            (None, Scope::All) => Ok(None),
            (None, Scope::Only(list)) if list.len() == 1 => Ok(list.into_iter().next()),
            (None, Scope::Only(list)) => {
                let err = AppError::forbidden(format!("name one of the helplines you supervise: ?helpline= {}", list.join(", ")));
                Err(self.refuse(state, action, "all_helplines", err).await)
            }
        }
    }

    /// Checks a helpline named in a request (a report's or staffing's `?helpline=`) is one this person
    /// supervises: 403 otherwise (helpline names are public, so this hides nothing), audited.
    pub async fn helpline_or_refuse(&self, state: &AppState, action: &str, helpline: &str) -> Result<(), AppError> {
        if self.supervises(helpline) {
            return Ok(());
        }
        let err = AppError::forbidden(format!("you do not supervise the helpline {helpline:?}"));
        Err(self.refuse(state, action, helpline, err).await)
    }

    /// Admins only: 403 otherwise, the refusal audited (`{action}_denied` on `target`).
    pub async fn admin_or_refuse(&self, state: &AppState, action: &str, target: &str) -> Result<(), AppError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(self.refuse(state, action, target, AppError::forbidden("admins only")).await)
    }

    /// Writes an audit line; a failed write is logged (the action itself already committed or was refused).
    pub async fn audit(&self, state: &AppState, action: &str, target: &str, detail: Option<&str>) {
        let now = state.clock.now_ms();
        if let Err(err) = state.store.audit_log().audit_from(now, &self.user.id, action, Some(target), detail, &self.source).await {
            tracing::error!(error = %err, action, "audit write failed");
        }
    }

    /// Writes an audit line or fails: for reads that must not happen unaudited (exports, reveals).
    pub async fn audit_or_refuse(&self, state: &AppState, action: &str, target: &str, detail: Option<&str>) -> Result<(), AppError> {
        let now = state.clock.now_ms();
        state.store.audit_log().audit_from(now, &self.user.id, action, Some(target), detail, &self.source).await.map_err(|err| {
            tracing::error!(error = %err, action, "audit write failed; the request is refused");
            AppError::new(ErrorCode::Unavailable, "the audit log cannot be written now; try again")
        })
    }

    /// Audits a refused access and returns the error to answer with.
    pub async fn refuse(&self, state: &AppState, action: &str, target: &str, err: AppError) -> AppError {
        self.audit(state, &format!("{action}_denied"), target, Some(&format!("{:?}", err.code))).await;
        err
    }

    /// May see this case: its opener (counsellor), its case manager, a supervisor of its helpline, an admin.
    pub fn sees_case(&self, case: &CaseRecord) -> bool {
        self.supervises(&case.helpline)
            || match self.user.role {
                Role::Counsellor => case.opened_by == self.user.id,
                Role::CaseManager => case.case_manager_id.as_deref() == Some(self.user.id.as_str()),
                _ => false,
            }
    }

    /// May see the identifying details of a case's person: the case's own roles (opener, case manager) and admins.
    pub fn sees_person(&self, case: &CaseRecord) -> bool {
        self.is_admin() || case.opened_by == self.user.id || case.case_manager_id.as_deref() == Some(self.user.id.as_str())
    }

    /// May move a case between stages: its case manager, a supervisor of its helpline, an admin.
    pub fn manages_case(&self, case: &CaseRecord) -> bool {
        self.supervises(&case.helpline) || case.case_manager_id.as_deref() == Some(self.user.id.as_str())
    }

    /// May see a contact (and its form): the counsellor who handled it, a supervisor of its helpline,
    /// an admin, or the case manager of a case it is linked to (`linked_cases`).
    pub fn sees_contact(&self, contact: &ContactRecord, linked_cases: &[CaseRecord]) -> bool {
        self.supervises(&contact.helpline)
            || contact.counsellor_id.as_deref() == Some(self.user.id.as_str())
            || (self.user.role == Role::CaseManager && linked_cases.iter().any(|c| self.sees_case(c)))
    }

    /// May see a placement: who requested it, a supervisor of its helpline, an admin, or whoever sees its case.
    pub fn sees_placement(&self, p: &PlacementRecord, case: Option<&CaseRecord>) -> bool {
        self.supervises(&p.helpline) || p.requested_by == self.user.id || case.is_some_and(|c| self.sees_case(c))
    }
}

/// Parses a JSON body with a clear `bad_field` error.
///
/// A number with a zero fraction (`93.0`) is an integer to JSON Schema, and so to the OpenAPI
/// document: it is read as one (serde alone would refuse it for an integer field).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    let bad = |e: serde_json::Error| AppError::new(ErrorCode::BadField, format!("bad request body: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    integral_floats_as_integers(&mut value);
    serde_json::from_value(value).map_err(bad)
}

/// Rewrites every float with a zero fraction that fits an `i64` as that integer, in place.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            // i64's range, exactly representable as f64: -2^63 inclusive to 2^63 exclusive.
            if let Some(f) =
                n.as_f64().filter(|f| f.fract() == 0.0 && *f >= -9_223_372_036_854_775_808.0 && *f < 9_223_372_036_854_775_808.0)
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The answer for an object that exists but is not the caller's to see: 404, so existence is not disclosed.
pub fn hidden(what: &str) -> AppError {
    AppError::new(ErrorCode::NotFound, format!("no such {what}"))
}

/// Loads a contact and checks that `staff` may see it (404 otherwise, audited).
pub async fn visible_contact(state: &AppState, staff: &Staff, id: &str, action: &str) -> Result<ContactRecord, AppError> {
    let Some(contact) = state.store.contacts().contact(id).await? else {
        return Err(hidden("contact"));
    };
    let linked = if staff.user.role == Role::CaseManager { state.store.cases().cases_of_contact(id).await? } else { Vec::new() };
    if !staff.sees_contact(&contact, &linked) {
        return Err(staff.refuse(state, action, id, hidden("contact")).await);
    }
    Ok(contact)
}

/// Loads a contact for its full record (`GET /api/v1/contacts/{id}`, `GET /api/v1/calls/{id}`):
/// supervisors of its helpline and admins only; anyone else gets 404 (audited), so existence is not disclosed.
pub async fn supervised_contact(state: &AppState, staff: &Staff, id: &str, action: &str) -> Result<ContactRecord, AppError> {
    match state.store.contacts().contact(id).await? {
        Some(contact) if staff.supervises(&contact.helpline) => Ok(contact),
        Some(_) => Err(staff.refuse(state, action, id, hidden("contact")).await),
        None => Err(hidden("contact")),
    }
}

/// Loads a case and checks that `staff` may see it (404 otherwise, audited).
pub async fn visible_case(state: &AppState, staff: &Staff, id: &str, action: &str) -> Result<CaseRecord, AppError> {
    let Some(case) = state.store.cases().case(id).await? else {
        return Err(hidden("case"));
    };
    if !staff.sees_case(&case) {
        return Err(staff.refuse(state, action, id, hidden("case")).await);
    }
    Ok(case)
}

/// Text fields: trimmed, not blank, at most `max` characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::bad_field(format!("{field} is empty")));
    }
    if v.chars().count() > max {
        return Err(AppError::bad_field(format!("{field} is limited to {max} characters")));
    }
    Ok(v.to_string())
}

/// A query string parsed into `T`, refused as the other bad requests are (`400 bad_field`, a JSON
/// body) rather than with axum's plain-text rejection: a client (and the OpenAPI document's
/// `ErrorBody`) sees one error shape on every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| AppError::new(ErrorCode::BadField, format!("bad query string: {}", e.body_text())))
    }
}

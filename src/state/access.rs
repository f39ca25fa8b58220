//! Who is asking, and what they may see: the request extractors ([`AuthUser`], [`Staff`] with the
//! request's source for the audit log), socket authentication, and the visibility rules every domain
//! checks before it answers (a hidden object is a 404, and the refusal is audited).

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

/// An authenticated account (from `Authorization: Bearer …`), still enabled.
pub struct AuthUser {
    pub user: User,
    pub claims: Claims,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| AppError::unauthorized("missing bearer token"))?;
        let claims =
            state.auth.verify_at(token, state.clock.now_ms()).ok_or_else(|| AppError::unauthorized("invalid or expired token"))?;
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

    /// Supervises `helpline`: an admin, or a supervisor of it (a supervisor who lists none sees all).
    pub fn supervises(&self, helpline: &str) -> bool {
        match self.user.role {
            Role::Admin => true,
            Role::Supervisor => self.user.helplines.is_empty() || self.user.helplines.iter().any(|h| h == helpline),
            _ => false,
        }
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
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::new(ErrorCode::BadField, format!("bad request body: {e}")))
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

//! The casework REST API under `/api/v1/`: contact forms, escalations, the services registry, placements, case files, the audit log and the OpenAPI document; who may see what is decided here.

pub mod audit;
pub mod cases;
pub mod escalations;
pub mod forms;
pub mod openapi;
pub mod services;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::AppError;
use crate::http::AuthUser;
use crate::protocol::ErrorCode;
use crate::store::cases::CaseRecord;
use crate::store::contacts::ContactRecord;
use crate::store::services::PlacementRecord;
use crate::store::users::{Role, User};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/helplines/{name}/taxonomy", get(forms::taxonomy))
        .route("/api/v1/helplines/{name}/case-deadlines", get(cases::deadlines).put(cases::set_deadlines))
        .route("/api/v1/contacts/{id}/form", get(forms::read).put(forms::save))
        .route("/api/v1/contact-forms/incomplete", get(forms::incomplete))
        .route("/api/v1/escalations", get(escalations::list).post(escalations::create))
        .route("/api/v1/escalations/{id}/acknowledge", post(escalations::acknowledge))
        .route("/api/v1/escalations/{id}/suggestions", get(escalations::suggestions))
        .route("/api/v1/services", get(services::list).post(services::add))
        .route("/api/v1/services/{id}", get(services::one))
        .route("/api/v1/placements", post(services::reserve))
        .route("/api/v1/placements/{id}", get(services::placement))
        .route("/api/v1/placements/{id}/status", post(services::set_status))
        .route("/api/v1/cases", get(cases::list).post(cases::open))
        .route("/api/v1/cases/{id}", get(cases::read))
        .route("/api/v1/cases/{id}/stage", post(cases::stage))
        .route("/api/v1/cases/{id}/entries", post(cases::add_entry))
        .route("/api/v1/cases/{id}/contacts", post(cases::link_contact))
        .route("/api/v1/cases/{id}/person", get(cases::person).put(cases::set_person))
        .route("/api/v1/cases/{id}/case-manager", put(cases::set_manager))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/verify", get(audit::verify))
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
        if let Err(err) = state.store.audit_from(now, &self.user.id, action, Some(target), detail, &self.source).await {
            tracing::error!(error = %err, action, "audit write failed");
        }
    }

    /// Writes an audit line or fails: for reads that must not happen unaudited (exports, reveals).
    pub async fn audit_or_refuse(&self, state: &AppState, action: &str, target: &str, detail: Option<&str>) -> Result<(), AppError> {
        let now = state.clock.now_ms();
        state.store.audit_from(now, &self.user.id, action, Some(target), detail, &self.source).await.map_err(|err| {
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
    let Some(contact) = state.store.contact(id).await? else {
        return Err(hidden("contact"));
    };
    let linked = if staff.user.role == Role::CaseManager { state.store.cases_of_contact(id).await? } else { Vec::new() };
    if !staff.sees_contact(&contact, &linked) {
        return Err(staff.refuse(state, action, id, hidden("contact")).await);
    }
    Ok(contact)
}

/// Loads a case and checks that `staff` may see it (404 otherwise, audited).
pub async fn visible_case(state: &AppState, staff: &Staff, id: &str, action: &str) -> Result<CaseRecord, AppError> {
    let Some(case) = state.store.case(id).await? else {
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

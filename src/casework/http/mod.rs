//! The casework REST API under `/api/v1/`: contact forms, escalations, the services registry, placements, case files, the audit log and the OpenAPI document; who may see what is decided here.

pub mod audit;
pub mod cases;
pub mod escalations;
pub mod forms;
pub mod services;


use axum::routing::{get, post, put};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
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

pub use crate::state::access::{check_text, hidden, parse_body, visible_case, visible_contact, Staff};

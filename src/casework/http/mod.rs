//! The casework REST API under `/api/v1/`: contact forms, escalations, the services registry, placements, case files and the audit log; who may see what is decided here.

pub mod audit;
pub mod cases;
pub mod contacts;
pub mod escalations;
pub mod forms;
pub mod handover;
pub mod referrals;
pub mod services;
pub mod tasks;
pub mod transfers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The casework routes, each handler with its OpenAPI description (tag `casework`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forms::taxonomy, forms::set_taxonomy))
        .routes(routes!(cases::deadlines, cases::set_deadlines))
        .routes(routes!(forms::read, forms::save))
        .routes(routes!(forms::incomplete))
        .routes(routes!(escalations::list, escalations::create))
        .routes(routes!(escalations::acknowledge))
        .routes(routes!(escalations::suggestions))
        .routes(routes!(services::list, services::add))
        .routes(routes!(services::one))
        .routes(routes!(services::reserve))
        .routes(routes!(services::placement))
        .routes(routes!(services::set_status))
        .routes(routes!(cases::list, cases::open))
        .routes(routes!(cases::read))
        .routes(routes!(cases::stage))
        .routes(routes!(cases::add_entry))
        .routes(routes!(cases::link_contact))
        .routes(routes!(cases::person, cases::set_person))
        .routes(routes!(cases::set_manager))
        .routes(routes!(cases::fill_form))
        .routes(routes!(cases::stage_forms))
        .routes(routes!(cases::set_stage_form))
        .routes(routes!(tasks::of_case, tasks::add))
        .routes(routes!(tasks::done))
        .routes(routes!(tasks::mine))
        .routes(routes!(transfers::request))
        .routes(routes!(transfers::offered))
        .routes(routes!(transfers::decide))
        .routes(routes!(transfers::of_case, transfers::request_approval))
        .routes(routes!(transfers::decide_approval))
        .routes(routes!(cases::report))
        .routes(routes!(referrals::list, referrals::create))
        .routes(routes!(referrals::change))
        .routes(routes!(referrals::set_webhook))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(handover::colleagues))
        .routes(routes!(contacts::search))
        .routes(routes!(contacts::links, contacts::link))
}

pub use crate::state::access::{check_text, hidden, parse_body, visible_case, visible_contact, Staff};

//! The edges: the HTTP router ([`router`], assembled here from each domain's routes), the generic REST
//! routes ([`rest`]), the WebSocket sessions ([`ws`]), the embedded browser front ends ([`assets`]),
//! the OpenAPI document ([`openapi`]). Edges parse, authorize, call a domain or the core, and map
//! errors; they hold no rules.

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub mod accounts;
pub mod assets;
pub mod asterisk;
pub mod callbacks;
pub mod canned;
#[cfg(test)]
mod fuzz;
pub mod logins;
pub mod openapi;
pub mod prometheus;
pub mod rest;
pub mod ws;

/// Every route the server serves, each with its OpenAPI description: the edges' own, and each
/// domain's (kept next to its handlers). A route is added by annotating its handler with
/// `#[utoipa::path]` and registering it with `routes!` in its module's router; there is no other way
/// in (a test reads `src/` for any `.route(` and fails on it).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi::document))
        .merge(rest::router())
        .merge(logins::router())
        .merge(accounts::router())
        .merge(callbacks::router())
        .merge(assets::router())
        .merge(crate::supervision::reports::router())
        .merge(crate::supervision::staffing::router())
        .merge(crate::supervision::hours::router())
        .merge(crate::telephony::router())
        .merge(crate::casework::http::router())
        .merge(crate::safety::abuse::router())
        .merge(crate::safety::privacy::router())
        .merge(canned::router())
}

/// The whole HTTP router (without the layers [`crate::app`] puts around it). Every answer that does
/// not say otherwise carries `Cache-Control: no-store`: nothing of a contact, a case or a token is
/// left in a browser's or a proxy's cache.
pub fn router() -> Router<AppState> {
    routes().split_for_parts().0.layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    if !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    response
}

//! The web front ends (caller chat widget, counsellor console, supervisor dashboard), embedded in the binary at build time.

use axum::Router;

use crate::app::AppState;

/// Routes serving the embedded `web-agent/` assets.
pub fn router() -> Router<AppState> {
    Router::new()
}

//! Erlang C staffing: counsellors needed per hour of the week for a service-level target. (Being written.)

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}

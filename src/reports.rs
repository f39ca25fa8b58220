//! `GET /api/v1/reports/…`: figures by helpline, hour or day, channel and language, as JSON or CSV. (Being written.)

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}

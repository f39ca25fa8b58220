//! `GET /metrics`: the core's counters (`chat::counters`) and gauges read from the engine and the hub now.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;

use crate::chat::counters::{label, METRICS};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::supervision::board::state_of;

/// `GET /metrics`: the Prometheus text format. Contains no personal data. With `--metrics-token`
/// it asks for `Authorization: Bearer <token>` (401 otherwise); without, restrict it at the proxy.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics" = [])),
    responses(
        (status = 200, description = "counters and gauges (docs/metrics.md)", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`--metrics-token` is set and the request does not carry it", body = crate::state::error::ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = crate::state::access::bearer(&headers).unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes())) {
            return AppError::unauthorized("/metrics needs its token: Authorization: Bearer <metrics token>").into_response();
        }
    }
    let m = &*METRICS;
    if let Some(snapshot) = state.engine.snapshot().await {
        let now = state.clock.now_ms();
        for h in state.helplines.iter() {
            let waiting: Vec<_> = snapshot.waiting.iter().filter(|w| w.helpline == h.name).collect();
            let longest = waiting.iter().map(|w| now - w.queued_at).max().unwrap_or(0).max(0);
            m.queue_waiting.get_or_create(&label("helpline", &h.name)).set(waiting.len() as i64);
            m.longest_wait.get_or_create(&label("helpline", &h.name)).set(longest as f64 / 1000.0);
        }
        for state_name in ["available", "busy", "away", "offline"] {
            let n = snapshot.counsellors.iter().filter(|c| state_of(c) == state_name).count();
            m.counsellors.get_or_create(&label("state", state_name)).set(n as i64);
        }
    }
    let (callers, agents, supervisors) = state.hub.counts();
    m.sockets.get_or_create(&label("kind", "caller")).set(callers as i64);
    m.sockets.get_or_create(&label("kind", "counsellor")).set(agents as i64);
    m.sockets.get_or_create(&label("kind", "supervisor")).set(supervisors as i64);
    let mut body = String::new();
    if encode(&mut body, &m.registry).is_err() {
        body = "# encoding failed\n".into();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

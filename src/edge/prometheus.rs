//! `GET /metrics`: the core's counters (`chat::counters`) and gauges read from the engine and the hub now,
//! in OpenMetrics for a scraper that asks for it (Prometheus does) and in Prometheus's classic text format
//! (0.0.4) otherwise (curl, `promtool check metrics`).

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
        (status = 200, description = "counters and gauges (docs/metrics.md): OpenMetrics when the request's `Accept` names `application/openmetrics-text`, else the Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
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
    if wants_openmetrics(&headers) {
        ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
    } else {
        ([(header::CONTENT_TYPE, CLASSIC)], classic_text(&body)).into_response()
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the scraper asked for OpenMetrics (Prometheus's `Accept` names it first; curl's `*/*` does not).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|part| {
        let mut params = part.split(';').map(str::trim);
        let is_om = params.next() == Some("application/openmetrics-text");
        let refused = params.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
        is_om && !refused
    })
}

/// OpenMetrics text as Prometheus's classic text format: a counter family `x` is named by its sample
/// `x_total` in `# HELP` and `# TYPE` (the classic format has no families), its `x_created` samples
/// dropped, and `# UNIT` and `# EOF` left out. Everything else is the same in both formats.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|rest| rest.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => {
                let name = line.split(['{', ' ']).next().unwrap_or("");
                if name.strip_suffix("_created").is_some_and(|family| counters.contains(family)) {
                    continue;
                }
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# HELP helpline_offers Offers rung to counsellors.\n# TYPE helpline_offers counter\n\
helpline_offers_total{helpline=\"children\"} 2\nhelpline_offers_created{helpline=\"children\"} 1.7e9\n\
# HELP helpline_queue_waiting Contacts waiting now.\n# TYPE helpline_queue_waiting gauge\n\
helpline_queue_waiting{helpline=\"children\"} 0\n# UNIT helpline_x seconds\n# EOF\n";

    #[test]
    fn counters_are_named_by_their_sample_in_the_classic_format() {
        assert_eq!(
            classic_text(SAMPLE),
            "# HELP helpline_offers_total Offers rung to counsellors.\n# TYPE helpline_offers_total counter\n\
helpline_offers_total{helpline=\"children\"} 2\n\
# HELP helpline_queue_waiting Contacts waiting now.\n# TYPE helpline_queue_waiting gauge\n\
helpline_queue_waiting{helpline=\"children\"} 0\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().expect("header"));
            wants_openmetrics(&h)
        };
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(with(prometheus));
        assert!(!with("*/*"));
        assert!(!with("text/plain;version=0.0.4"));
        assert!(!with("application/openmetrics-text; q=0, text/plain"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}

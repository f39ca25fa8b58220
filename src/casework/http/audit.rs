//! `GET /api/v1/audit`: the append-only audit log, and `GET /api/v1/audit/verify`: its hash chain checked; for admins.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::Staff;
use crate::state::AppState;
use crate::state::error::AppError;
use crate::protocol::rfc3339;
use crate::store::audit::AuditQuery;

#[derive(Deserialize)]
pub struct AuditParams {
    target: Option<String>,
    actor: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/audit?target=&actor=&limit=`: newest first (admins only; reading it is audited too).
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<AuditParams>) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "audit_read", "audit_log", AppError::forbidden("admins only")).await);
    }
    let query = AuditQuery { target: q.target, actor: q.actor, since: None, limit: q.limit.unwrap_or(200) };
    let lines = state.store.audit_lines(&query).await?;
    staff.audit(&state, "audit_read", "audit_log", query.target.as_deref()).await;
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| {
            serde_json::json!({
                "id": l.id, "at": rfc3339(l.at), "actor": l.actor, "action": l.action,
                "target": l.target, "detail": l.detail, "source": l.source,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

/// `GET /api/v1/audit/verify`: walks the audit log's hash chain (admins only; audited). 200 either way:
/// `{"intact": true, "lines": n, "head": "…"}`, or `"intact": false` with `first_break` naming the first
/// line that was edited, removed or slipped in (`seq`, `id`, `problem`).
pub async fn verify(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "audit_verify", "audit_log", AppError::forbidden("admins only")).await);
    }
    let report = state.store.verify_audit_chain().await?;
    if let Some(b) = &report.first_break {
        tracing::error!(seq = ?b.seq, id = %b.id, problem = %b.problem, "the audit log's hash chain is broken");
    }
    let detail = if report.intact() { "intact".to_string() } else { "broken".to_string() };
    staff.audit(&state, "audit_verify", "audit_log", Some(&detail)).await;
    Ok(Json(serde_json::json!({
        "intact": report.intact(), "lines": report.lines, "head": report.head, "first_break": report.first_break,
    }))
    .into_response())
}

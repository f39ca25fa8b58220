//! `GET /api/v1/audit`: the append-only audit log, and `GET /api/v1/audit/verify`: its hash chain checked; for admins.

use crate::state::access::Query;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Staff;
use crate::protocol::rfc3339;
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::audit::{AuditQuery, ChainBreak};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only lines about this object.
    target: Option<String>,
    /// Only lines by this account.
    actor: Option<String>,
    /// At most this many lines, 1 to 10,000 (default 200).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<i64>,
}

/// One line of the audit log as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct AuditLine {
    id: String,
    /// RFC 3339.
    at: String,
    actor: String,
    action: String,
    target: Option<String>,
    detail: Option<String>,
    /// Where the request came from.
    source: Option<String>,
}

/// Audit lines, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditLines {
    lines: Vec<AuditLine>,
}

/// `GET /api/v1/audit?target=&actor=&limit=`: newest first (admins only; reading it is audited too).
#[utoipa::path(get, path = "/api/v1/audit", tag = "casework", security(("bearer" = [])), params(AuditParams),
    responses(
        (status = 200, description = "audit lines, newest first", body = AuditLines),
        (status = 400, description = "`bad_field`: `limit` outside 1 to 10,000", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<AuditParams>) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "audit_read", "audit_log", AppError::forbidden("admins only")).await);
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=10_000).contains(&limit) {
        return Err(AppError::bad_field("limit: from 1 to 10000"));
    }
    let query = AuditQuery { target: q.target, actor: q.actor, since: None, limit };
    let lines = state.store.audit_log().audit_lines(&query).await?;
    staff.audit(&state, "audit_read", "audit_log", query.target.as_deref()).await;
    let lines: Vec<AuditLine> = lines
        .into_iter()
        .map(|l| AuditLine {
            id: l.id,
            at: rfc3339(l.at),
            actor: l.actor,
            action: l.action,
            target: l.target,
            detail: l.detail,
            source: l.source,
        })
        .collect();
    Ok(Json(AuditLines { lines }).into_response())
}

/// `GET /api/v1/audit/verify`: walks the audit log's hash chain (admins only; audited). 200 either way:
/// `{"intact": true, "lines": n, "head": "…"}`, or `"intact": false` with `first_break` naming the first
/// line that was edited, removed or slipped in (`seq`, `id`, `problem`).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "casework", security(("bearer" = [])),
    responses(
        (status = 200, description = "what walking the hash chain found (200 whether intact or not)", body = ChainCheck),
        (status = 403, description = "admins only", body = ErrorBody),
    ))]
pub async fn verify(State(state): State<AppState>, staff: Staff) -> Result<Response, AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "audit_verify", "audit_log", AppError::forbidden("admins only")).await);
    }
    let report = state.store.audit_log().verify_audit_chain().await?;
    if let Some(b) = &report.first_break {
        tracing::error!(seq = ?b.seq, id = %b.id, problem = %b.problem, "the audit log's hash chain is broken");
    }
    let detail = if report.intact() { "intact".to_string() } else { "broken".to_string() };
    staff.audit(&state, "audit_verify", "audit_log", Some(&detail)).await;
    Ok(Json(ChainCheck { intact: report.intact(), lines: report.lines, head: report.head, first_break: report.first_break })
        .into_response())
}

/// What walking the audit log's hash chain found.
#[derive(Serialize, ToSchema)]
pub struct ChainCheck {
    intact: bool,
    /// Lines checked (up to the first break).
    lines: i64,
    /// The last good line's hash.
    head: String,
    /// The first line edited, removed or slipped in; null when intact.
    first_break: Option<ChainBreak>,
}

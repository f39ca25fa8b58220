//! The append-only audit log: who did what to which object, when, and from where; read by admins.

use super::{new_id, on_pool, Store, StoreResult};

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source: Option<String>,
}

/// Which lines to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub target: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Appends one line with its source (client address, or the socket it came on). Lines are never
    /// updated or deleted.
    pub async fn audit_from(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
        source: &str,
    ) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, detail, source) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(new_id()).bind(at).bind(actor).bind(action).bind(target).bind(detail).bind(source)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Audit lines, newest first.
    pub async fn audit_lines(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditEntry> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, source FROM audit_log
             WHERE ($1 IS NULL OR target = $1) AND ($2 IS NULL OR actor = $2) AND at >= $3
             ORDER BY id DESC LIMIT $4")
            .bind(q.target.as_deref()).bind(q.actor.as_deref()).bind(q.since.unwrap_or(0)).bind(q.limit.clamp(1, 1000))
            .fetch_all(pool).await)?;
        Ok(rows)
    }
}

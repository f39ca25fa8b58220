//! Transfers of a case between case managers and the supervisor's approvals of the plan and the
//! closure (part of the `cases()` view); notes and comments sealed.

use super::cases::Cases;
use super::sealed::place::{APPROVAL_COMMENT, APPROVAL_NOTE, TRANSFER_COMMENT, TRANSFER_NOTE};
use super::{new_id, on_pool, on_writer, BeginWrite, StoreResult};

/// A transfer as stored (note and comment opened).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TransferRecord {
    pub id: String,
    pub case_id: String,
    pub from_user_id: Option<String>,
    pub to_user_id: String,
    pub note: Option<String>,
    /// `pending`, `accepted` or `refused`.
    pub status: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub comment: Option<String>,
    pub decided_at: Option<i64>,
}

/// An approval request as stored (note and comment opened).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApprovalRecord {
    pub id: String,
    pub case_id: String,
    /// `plan` or `closure`.
    pub kind: String,
    /// `pending`, `approved` or `returned`.
    pub status: String,
    pub note: Option<String>,
    pub requested_by: String,
    pub requested_at: i64,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
}

const TRANSFER_COLUMNS: &str = "id, case_id, from_user_id, to_user_id, note, status, requested_by, requested_at, comment, decided_at";
const APPROVAL_COLUMNS: &str = "id, case_id, kind, status, note, requested_by, requested_at, comment, decided_by, decided_at";

impl Cases<'_> {
    fn opened_transfer(self, mut t: TransferRecord) -> StoreResult<TransferRecord> {
        t.note = self.0.open_opt(TRANSFER_NOTE, &t.id, t.note.as_deref())?;
        t.comment = self.0.open_opt(TRANSFER_COMMENT, &t.id, t.comment.as_deref())?;
        Ok(t)
    }

    fn opened_approval(self, mut a: ApprovalRecord) -> StoreResult<ApprovalRecord> {
        a.note = self.0.open_opt(APPROVAL_NOTE, &a.id, a.note.as_deref())?;
        a.comment = self.0.open_opt(APPROVAL_COMMENT, &a.id, a.comment.as_deref())?;
        Ok(a)
    }

    /// Asks `to` to take over a case; `Conflict` if one is pending already. Returns it.
    pub async fn request_transfer(
        self,
        case_id: &str,
        from: Option<&str>,
        to: &str,
        note: Option<&str>,
        by: &str,
        at: i64,
    ) -> StoreResult<TransferRecord> {
        let id = new_id();
        let note = self.0.seal_opt(TRANSFER_NOTE, &id, note)?;
        let written = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM case_transfers WHERE case_id = $1 AND status = 'pending'")
                .bind(case_id).fetch_one(&mut *tx).await?;
            if pending > 0 {
                return Ok::<bool, sqlx::Error>(false);
            }
            sqlx::query("INSERT INTO case_transfers (id, case_id, from_user_id, to_user_id, note, status, requested_by, requested_at)
                         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)")
                .bind(&id).bind(case_id).bind(from).bind(to).bind(&note).bind(by).bind(at).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        }.await)?;
        if !written {
            return Err(super::StoreError::Conflict("a transfer of this case is pending already".into()));
        }
        self.transfer(&id).await?.ok_or(super::StoreError::NotFound)
    }

    pub async fn transfer(self, id: &str) -> StoreResult<Option<TransferRecord>> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM case_transfers WHERE id = $1");
        let row: Option<TransferRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|t| self.opened_transfer(t)).transpose()
    }

    /// The transfers offered to `user` and still pending, oldest first.
    pub async fn transfers_to(self, user: &str) -> StoreResult<Vec<TransferRecord>> {
        let sql =
            format!("SELECT {TRANSFER_COLUMNS} FROM case_transfers WHERE to_user_id = $1 AND status = 'pending' ORDER BY requested_at, id");
        let rows: Vec<TransferRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(user).fetch_all(pool).await)?;
        rows.into_iter().map(|t| self.opened_transfer(t)).collect()
    }

    /// A case's transfers, oldest first.
    pub async fn transfers_of_case(self, case_id: &str) -> StoreResult<Vec<TransferRecord>> {
        let sql = format!("SELECT {TRANSFER_COLUMNS} FROM case_transfers WHERE case_id = $1 ORDER BY requested_at, id");
        let rows: Vec<TransferRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(case_id).fetch_all(pool).await)?;
        rows.into_iter().map(|t| self.opened_transfer(t)).collect()
    }

    /// Decides a pending transfer: accepted (the case's manager becomes its receiver, in the same
    /// transaction, if the case is still with whom it was transferred from) or refused; false if it
    /// was no longer pending or the case changed hands meanwhile.
    pub async fn decide_transfer(self, id: &str, accept: bool, comment: Option<&str>, at: i64) -> StoreResult<bool> {
        let comment = self.0.seal_opt(TRANSFER_COMMENT, id, comment)?;
        let status = if accept { "accepted" } else { "refused" };
        let done = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE case_transfers SET status = $1, comment = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'")
                .bind(status).bind(&comment).bind(at).bind(id).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Ok::<bool, sqlx::Error>(false);
            }
            if accept {
                let moved = sqlx::query(
                    "UPDATE cases SET case_manager_id = (SELECT to_user_id FROM case_transfers WHERE id = $1), updated_at = $2
                     WHERE id = (SELECT case_id FROM case_transfers WHERE id = $1)
                       AND (case_manager_id = (SELECT from_user_id FROM case_transfers WHERE id = $1)
                            OR (case_manager_id IS NULL AND (SELECT from_user_id FROM case_transfers WHERE id = $1) IS NULL))")
                    .bind(id).bind(at).execute(&mut *tx).await?.rows_affected();
                if moved != 1 {
                    return Ok(false);
                }
            }
            tx.commit().await?;
            Ok(true)
        }.await)?;
        Ok(done)
    }

    /// Asks for a supervisor's approval (`plan` or `closure`); `Conflict` if one of that kind is pending.
    pub async fn request_approval(self, case_id: &str, kind: &str, note: Option<&str>, by: &str, at: i64) -> StoreResult<ApprovalRecord> {
        let id = new_id();
        let note = self.0.seal_opt(APPROVAL_NOTE, &id, note)?;
        let written = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM case_approvals WHERE case_id = $1 AND kind = $2 AND status = 'pending'")
                .bind(case_id).bind(kind).fetch_one(&mut *tx).await?;
            if pending > 0 {
                return Ok::<bool, sqlx::Error>(false);
            }
            sqlx::query("INSERT INTO case_approvals (id, case_id, kind, status, note, requested_by, requested_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6)")
                .bind(&id).bind(case_id).bind(kind).bind(&note).bind(by).bind(at).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        }.await)?;
        if !written {
            return Err(super::StoreError::Conflict(format!("a {kind} approval is pending already")));
        }
        self.approval(&id).await?.ok_or(super::StoreError::NotFound)
    }

    pub async fn approval(self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM case_approvals WHERE id = $1");
        let row: Option<ApprovalRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|a| self.opened_approval(a)).transpose()
    }

    /// A case's approval requests, oldest first.
    pub async fn approvals_of_case(self, case_id: &str) -> StoreResult<Vec<ApprovalRecord>> {
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM case_approvals WHERE case_id = $1 ORDER BY requested_at, id");
        let rows: Vec<ApprovalRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(case_id).fetch_all(pool).await)?;
        rows.into_iter().map(|a| self.opened_approval(a)).collect()
    }

    /// Decides a pending approval (`approved` or `returned`, with a comment); false if no longer pending.
    pub async fn decide_approval(self, id: &str, status: &str, comment: Option<&str>, by: &str, at: i64) -> StoreResult<bool> {
        let comment = self.0.seal_opt(APPROVAL_COMMENT, id, comment)?;
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE case_approvals SET status = $1, comment = $2, decided_by = $3, decided_at = $4 WHERE id = $5 AND status = 'pending'")
            .bind(status).bind(&comment).bind(by).bind(at).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

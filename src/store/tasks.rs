//! Tasks and follow-ups of a case, with due dates (part of the `cases()` view); titles sealed.

use super::cases::Cases;
use super::sealed::place::TASK_TITLE;
use super::{new_id, on_pool, StoreResult};

/// A task as stored (title opened).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TaskRecord {
    pub id: String,
    pub case_id: String,
    pub title: String,
    /// Who does it (None: the case's case manager).
    pub owner_id: Option<String>,
    pub due_at: i64,
    /// `open` or `done`.
    pub status: String,
    pub created_by: String,
    pub created_at: i64,
    pub done_by: Option<String>,
    pub done_at: Option<i64>,
}

const COLUMNS: &str = "id, case_id, title, owner_id, due_at, status, created_by, created_at, done_by, done_at";

impl Cases<'_> {
    fn opened_task(self, mut t: TaskRecord) -> StoreResult<TaskRecord> {
        t.title = self.0.open(TASK_TITLE, &t.id, &t.title)?;
        Ok(t)
    }

    /// Adds an open task to a case; returns it.
    pub async fn add_task(
        self,
        case_id: &str,
        title: &str,
        owner: Option<&str>,
        due_at: i64,
        by: &str,
        at: i64,
    ) -> StoreResult<TaskRecord> {
        let id = new_id();
        let sealed = self.0.seal(TASK_TITLE, &id, title)?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO case_tasks (id, case_id, title, owner_id, due_at, status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7)")
            .bind(&id).bind(case_id).bind(&sealed).bind(owner).bind(due_at).bind(by).bind(at).execute(pool).await.map(|_| ()))?;
        self.task(&id).await?.ok_or(super::StoreError::NotFound)
    }

    pub async fn task(self, id: &str) -> StoreResult<Option<TaskRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM case_tasks WHERE id = $1");
        let row: Option<TaskRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)?;
        row.map(|t| self.opened_task(t)).transpose()
    }

    /// A case's tasks, soonest due first.
    pub async fn tasks_of_case(self, case_id: &str) -> StoreResult<Vec<TaskRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM case_tasks WHERE case_id = $1 ORDER BY due_at, id");
        let rows: Vec<TaskRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(case_id).fetch_all(pool).await)?;
        rows.into_iter().map(|t| self.opened_task(t)).collect()
    }

    /// Open tasks due by `until`, soonest first (callers filter by who may see them).
    pub async fn open_tasks_due_by(self, until: i64) -> StoreResult<Vec<TaskRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM case_tasks WHERE status = 'open' AND due_at <= $1 ORDER BY due_at, id");
        let rows: Vec<TaskRecord> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(until).fetch_all(pool).await)?;
        rows.into_iter().map(|t| self.opened_task(t)).collect()
    }

    /// Marks an open task done; false if it was done already.
    pub async fn complete_task(self, id: &str, by: &str, at: i64) -> StoreResult<bool> {
        let n = on_pool!(self.0, pool => sqlx::query("UPDATE case_tasks SET status = 'done', done_by = $1, done_at = $2 WHERE id = $3 AND status = 'open'")
            .bind(by).bind(at).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

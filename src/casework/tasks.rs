//! Tasks and follow-ups of a case, with due dates, the service: added by the case's managers (for
//! themselves, or for another staff member who sees the case), listed by whoever sees the case, done
//! by their owner or the case's managers; "my tasks" due (overdue, or within 24 hours) for the
//! workspace's alerts. Every access audited with the case as target. The REST edge is
//! [`crate::casework::http::tasks`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::protocol::{rfc3339, ErrorCode};
use crate::state::access::{check_text, hidden, visible_case, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::tasks::TaskRecord;

const MAX_TITLE: usize = 500;
const MAX_DUE_AHEAD_MS: i64 = 366 * crate::casework::DAY_MS;
const SOON_MS: i64 = crate::casework::DAY_MS;

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub case_id: String,
    pub title: String,
    /// Who does it (null: the case's case manager).
    pub owner_id: Option<String>,
    /// RFC 3339.
    pub due_at: String,
    pub due_at_ms: i64,
    /// `open` or `done`.
    pub status: String,
    /// True when open and past its due time (at the time of the answer).
    pub overdue: bool,
    pub created_by: String,
    pub created_at_ms: i64,
    pub done_by: Option<String>,
    pub done_at_ms: Option<i64>,
}

pub fn task_view(t: &TaskRecord, now: i64) -> TaskView {
    TaskView {
        id: t.id.clone(),
        case_id: t.case_id.clone(),
        title: t.title.clone(),
        owner_id: t.owner_id.clone(),
        due_at: rfc3339(t.due_at),
        due_at_ms: t.due_at,
        status: t.status.clone(),
        overdue: t.status == "open" && t.due_at <= now,
        created_by: t.created_by.clone(),
        created_at_ms: t.created_at,
        done_by: t.done_by.clone(),
        done_at_ms: t.done_at,
    }
}

/// Adds a task to a case (its managers; the opener 403, others 404, audited as `task_add`): a title,
/// a due time in the future within a year, and an owner who is an enabled account that sees the case
/// (default: none, meaning the case's case manager). Returns it with the time it was judged at.
pub async fn add(
    state: &AppState,
    staff: &Staff,
    case_id: &str,
    title: &str,
    due_at_ms: i64,
    owner: Option<&str>,
) -> Result<(i64, TaskRecord), AppError> {
    let case = visible_case(state, staff, case_id, "task_add").await?;
    if !staff.manages_case(&case) {
        return Err(staff.refuse(state, "task_add", case_id, AppError::forbidden("the case manager or a supervisor adds tasks")).await);
    }
    let title = check_text("title", title, MAX_TITLE)?;
    let now = state.clock.now_ms();
    if due_at_ms <= now || due_at_ms > now + MAX_DUE_AHEAD_MS {
        return Err(AppError::bad_field("due_at_ms must be in the future, within a year"));
    }
    if let Some(owner) = owner {
        let sees = match state.store.accounts().user(owner).await? {
            Some(u) if !u.disabled => Staff { user: u, source: String::new() }.sees_case(&case),
            _ => false,
        };
        if !sees {
            return Err(AppError::bad_field("owner_id must be an enabled account that sees the case"));
        }
    }
    if case.stage == "closed" {
        return Err(AppError::new(ErrorCode::Conflict, "the case is closed"));
    }
    let task = state.store.cases().add_task(&case.id, &title, owner, due_at_ms, staff.id(), now).await?;
    staff.audit(state, "task_add", &case.id, Some(&task.id)).await;
    Ok((now, task))
}

/// A case's tasks, soonest due first (whoever sees the case; audited as `task_list`).
pub async fn of_case(state: &AppState, staff: &Staff, case_id: &str) -> Result<(i64, Vec<TaskRecord>), AppError> {
    let case = visible_case(state, staff, case_id, "task_list").await?;
    let tasks = state.store.cases().tasks_of_case(&case.id).await?;
    staff.audit(state, "task_list", &case.id, None).await;
    Ok((state.clock.now_ms(), tasks))
}

/// Marks a task done: its owner, or the case's managers (others 403 / 404, audited as `task_done`);
/// `conflict` if it was done already.
pub async fn done(state: &AppState, staff: &Staff, id: &str) -> Result<(i64, TaskRecord), AppError> {
    let Some(task) = state.store.cases().task(id).await? else {
        return Err(hidden("task"));
    };
    let case = visible_case(state, staff, &task.case_id, "task_done").await?;
    if !staff.manages_case(&case) && task.owner_id.as_deref() != Some(staff.id()) {
        return Err(staff
            .refuse(state, "task_done", &case.id, AppError::forbidden("the task's owner or the case's managers mark it done"))
            .await);
    }
    let now = state.clock.now_ms();
    if !state.store.cases().complete_task(id, staff.id(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the task is done already"));
    }
    staff.audit(state, "task_done", &case.id, Some(id)).await;
    let task = state.store.cases().task(id).await?.ok_or_else(|| hidden("task"))?;
    Ok((now, task))
}

/// The open tasks that are mine (owned by me, or unowned on a case I manage as its case manager), due
/// by now (`overdue`) or within 24 hours (`24h`, the default: overdue ones included), soonest first;
/// each audited as `task_list` on its case.
pub async fn mine(state: &AppState, staff: &Staff, due: Option<&str>) -> Result<(i64, Vec<TaskRecord>), AppError> {
    let now = state.clock.now_ms();
    let until = match due {
        None | Some("") | Some("24h") => now + SOON_MS,
        Some("overdue") => now,
        Some(other) => return Err(AppError::bad_field(format!("due must be overdue or 24h, not {other:?}"))),
    };
    let mut mine = Vec::new();
    for task in state.store.cases().open_tasks_due_by(until).await? {
        let owned = match &task.owner_id {
            Some(owner) => owner == staff.id(),
            None => state.store.cases().case(&task.case_id).await?.is_some_and(|c| c.case_manager_id.as_deref() == Some(staff.id())),
        };
        if owned {
            staff.audit(state, "task_list", &task.case_id, Some(&task.id)).await;
            mine.push(task);
        }
    }
    Ok((now, mine))
}

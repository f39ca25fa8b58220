//! The REST edge of case tasks (the service is [`crate::casework::tasks`]).

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_body, Staff};
use crate::casework::tasks::{self as service, task_view, TaskView};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTask {
    /// What is to be done (at most 500 characters).
    title: String,
    /// When it is due (ms since the epoch; in the future, within a year).
    due_at_ms: i64,
    /// Who does it: an account that sees the case (absent: the case's case manager).
    #[serde(default)]
    owner_id: Option<String>,
}

/// Tasks, soonest due first.
#[derive(Serialize, ToSchema)]
pub struct TaskList {
    tasks: Vec<TaskView>,
}

/// `POST /api/v1/cases/{id}/tasks {title, due_at_ms, owner_id?}`: a task or follow-up (the case's managers).
#[utoipa::path(post, path = "/api/v1/cases/{id}/tasks", tag = "casework", security(("bearer" = [])), request_body = NewTask,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the task, open", body = TaskView),
        (status = 400, description = "`bad_field`: an empty or too long title, a due time in the past or more than a year ahead, an owner who does not see the case", body = ErrorBody),
        (status = 403, description = "the case manager or a supervisor adds tasks", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: the case is closed", body = ErrorBody),
    ))]
pub async fn add(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewTask = parse_body(&body)?;
    let (now, task) = service::add(&state, &staff, &id, &req.title, req.due_at_ms, req.owner_id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(task_view(&task, now))).into_response())
}

/// `GET /api/v1/cases/{id}/tasks`: the case's tasks, soonest due first (whoever sees the case).
#[utoipa::path(get, path = "/api/v1/cases/{id}/tasks", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case's tasks", body = TaskList),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn of_case(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let (now, tasks) = service::of_case(&state, &staff, &id).await?;
    Ok(Json(TaskList { tasks: tasks.iter().map(|t| task_view(t, now)).collect() }).into_response())
}

/// `POST /api/v1/tasks/{id}/done`: marks a task done (its owner or the case's managers).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/done", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the task's id")),
    responses(
        (status = 200, description = "the task, done", body = TaskView),
        (status = 403, description = "the task's owner or the case's managers mark it done", body = ErrorBody),
        (status = 404, description = "no such task, or not one you may see", body = ErrorBody),
        (status = 409, description = "`conflict`: done already", body = ErrorBody),
    ))]
pub async fn done(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let (now, task) = service::done(&state, &staff, &id).await?;
    Ok(Json(task_view(&task, now)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MineQuery {
    /// `overdue`, or `24h` (the default: due within a day, overdue ones included).
    #[param(pattern = "^(overdue|24h)?$")]
    due: Option<String>,
}

/// `GET /api/v1/tasks?due=overdue|24h`: my open tasks falling due (the workspace's alerts).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "casework", security(("bearer" = [])), params(MineQuery),
    responses(
        (status = 200, description = "my open tasks due, soonest first", body = TaskList),
        (status = 400, description = "`bad_field`: `due` is not `overdue` or `24h`", body = ErrorBody),
    ))]
pub async fn mine(State(state): State<AppState>, staff: Staff, Query(q): Query<MineQuery>) -> Result<Response, AppError> {
    let (now, tasks) = service::mine(&state, &staff, q.due.as_deref()).await?;
    Ok(Json(TaskList { tasks: tasks.iter().map(|t| task_view(t, now)).collect() }).into_response())
}

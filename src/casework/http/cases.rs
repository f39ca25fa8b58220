//! The REST edge of case files (the service is [`crate::casework::cases`]): opened by hand from a
//! contact (or by a placement), listed by deadline, read, moved through their stages, with entries,
//! linked contacts and identifying details kept to the case's roles.

use crate::state::access::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_body, Staff};
use crate::casework::cases as service;
use crate::casework::stage_forms::FormDef;
use crate::casework::{StageDeadlines, DAY_MS, TIMED_STAGES};
use crate::protocol::{csv_field, rfc3339};
use crate::state::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::cases::PersonDetails;

pub use crate::casework::cases::{case_view, CaseFile, CaseView};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `overdue`, or `24h` (due within a day); absent or `any`: every open case.
    #[param(pattern = "^(overdue|24h|any)?$")]
    due: Option<String>,
    /// A case number (e.g. `FV-2026-000123`): that case alone, at any stage, if you may see it (else none).
    #[param(min_length = 1, max_length = 64, pattern = "\\S")]
    number: Option<String>,
}

/// Open cases, soonest deadline first.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    /// The time the deadlines were judged at (RFC 3339).
    now: String,
    cases: Vec<CaseView>,
}

/// `GET /api/v1/cases?due=overdue|24h` (or `?number=`): open cases you may see (each listing audited),
/// soonest deadline first; or the case with that number.
#[utoipa::path(get, path = "/api/v1/cases", tag = "casework", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "open cases you may see, soonest deadline first", body = CaseList),
        (status = 400, description = "`bad_field`: `due` is not `overdue` or `24h`; an empty or too long `number`", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<ListQuery>) -> Result<Response, AppError> {
    let (now, visible) = match q.number.as_deref() {
        Some(number) => service::find_by_number(&state, &staff, number).await?,
        None => service::list(&state, &staff, q.due.as_deref()).await?,
    };
    let cases: Vec<CaseView> = visible.iter().map(case_view).collect();
    Ok(Json(CaseList { now: rfc3339(now), cases }).into_response())
}

/// A case opened from a contact (`contact_id`) or without one (`helpline` and `reason`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenCase {
    /// The contact the case comes from (counsellors and supervisors); or give `helpline`.
    #[serde(default)]
    contact_id: Option<String>,
    /// The helpline of a case opened without a contact (case managers and its supervisors).
    #[serde(default)]
    helpline: Option<String>,
    #[serde(default)]
    district: Option<String>,
    /// The pseudonym (at most 200 characters; default `Person <number>`).
    #[serde(default)]
    person_label: Option<String>,
    /// Why the case is opened (required without a contact; at most 4000 characters): its first entry, kind `reason`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    reason: Option<String>,
}

/// `POST /api/v1/cases {contact_id | helpline, district?, person_label?, reason?}`: opens a case by
/// hand, from a contact you may see or (case managers, supervisors) without one; same deadlines.
#[utoipa::path(post, path = "/api/v1/cases", tag = "casework", security(("bearer" = [])), request_body = OpenCase,
    responses(
        (status = 201, description = "the case opened (its `id` and `number`)", body = CaseView),
        (status = 400, description = "`bad_field`: neither or both of `contact_id` and `helpline`, no `reason` without a contact, a text too long", body = ErrorBody),
        (status = 403, description = "a case manager opening from a contact; a counsellor, or another helpline's supervisor, opening without one", body = ErrorBody),
        (status = 404, description = "no such contact, or not one you may see; `unknown_helpline`", body = ErrorBody),
    ))]
pub async fn open(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: OpenCase = parse_body(&body)?;
    let opening = service::Opening {
        contact_id: req.contact_id,
        helpline: req.helpline,
        district: req.district,
        person_label: req.person_label,
        reason: req.reason,
    };
    let case = service::open(&state, &staff, opening).await?;
    Ok((StatusCode::CREATED, Json(case_view(&case))).into_response())
}

/// `GET /api/v1/cases/{id}`: the case, linked contacts, entries and placements (audited).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case, its linked contacts, entries and placements", body = CaseFile),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(service::read(&state, &staff, &id).await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetStage {
    /// The next stage: one of the case's `allowed_next`.
    stage: String,
}

/// `POST /api/v1/cases/{id}/stage {stage}`: the next stage; out of order → 409 `stage_order` with `allowed`.
#[utoipa::path(post, path = "/api/v1/cases/{id}/stage", tag = "casework", security(("bearer" = [])), request_body = SetStage,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case at its new stage", body = CaseView),
        (status = 400, description = "`bad_field`: no such stage", body = ErrorBody),
        (status = 403, description = "the case manager or a supervisor moves a case", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 409, description = "`stage_order` (with `allowed`); `conflict` with `approval_needed` (`plan` or `closure`): a case manager needs a supervisor's approval first; `conflict`: the case moved meanwhile", body = ErrorBody),
    ))]
pub async fn stage(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetStage = parse_body(&body)?;
    let case = service::move_stage(&state, &staff, &id, &req.stage).await?;
    Ok(Json(case_view(&case)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    /// `assessment`, `note` or `referral`.
    kind: String,
    /// An assessment's `findings`, a note's `text`, or a referral's `service` (one of the referral kinds); at most 32 KiB.
    body: serde_json::Map<String, serde_json::Value>,
}

/// The new entry's id.
#[derive(Serialize, ToSchema)]
pub struct EntryId {
    id: String,
}

/// `POST /api/v1/cases/{id}/entries {kind, body}`: an `assessment` (with `findings`), a `note` (with
/// `text`) or a `referral` (with `service`, one of the referral kinds).
#[utoipa::path(post, path = "/api/v1/cases/{id}/entries", tag = "casework", security(("bearer" = [])), request_body = NewEntry,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the entry was added", body = EntryId),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 413, description = "`too_large`: an entry is limited to 32 KiB", body = ErrorBody),
    ))]
pub async fn add_entry(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: NewEntry = parse_body(&body)?;
    let entry = service::add_entry(&state, &staff, &id, &req.kind, req.body).await?;
    Ok((StatusCode::CREATED, Json(EntryId { id: entry })).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Link {
    contact_id: String,
}

/// `POST /api/v1/cases/{id}/contacts {contact_id}`: links one more contact (one you may see).
#[utoipa::path(post, path = "/api/v1/cases/{id}/contacts", tag = "casework", security(("bearer" = [])), request_body = Link,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 204, description = "linked"),
        (status = 403, description = "`not_allowed`: the contact belongs to another helpline", body = ErrorBody),
        (status = 404, description = "no such case or contact, or not one you may see", body = ErrorBody),
    ))]
pub async fn link_contact(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: Link = parse_body(&body)?;
    service::link_contact(&state, &staff, &id, &req.contact_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/cases/{id}/person`: identifying details, for the case's own roles only (audited).
#[utoipa::path(get, path = "/api/v1/cases/{id}/person", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the person's identifying details", body = PersonDetails),
        (status = 403, description = "identifying details are for the case's own roles", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn person(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    Ok(Json(service::person(&state, &staff, &id).await?).into_response())
}

/// `PUT /api/v1/cases/{id}/person {full_name?, birth_date?, address?, phone?}` (the case's own roles).
#[utoipa::path(put, path = "/api/v1/cases/{id}/person", tag = "casework", security(("bearer" = [])), request_body = PersonDetails,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 204, description = "saved"),
        (status = 400, description = "`bad_field`: each detail is limited to 300 characters", body = ErrorBody),
        (status = 403, description = "identifying details are for the case's own roles", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn set_person(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let p: PersonDetails = parse_body(&body)?;
    service::set_person(&state, &staff, &id, &p).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetManager {
    /// An enabled case manager; null: none.
    user_id: Option<String>,
}

/// `PUT /api/v1/cases/{id}/case-manager {user_id}`: supervisors of the helpline and admins assign a case manager.
#[utoipa::path(put, path = "/api/v1/cases/{id}/case-manager", tag = "casework", security(("bearer" = [])), request_body = SetManager,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case with its case manager", body = CaseView),
        (status = 400, description = "`bad_field`: `user_id` is not an enabled case manager", body = ErrorBody),
        (status = 403, description = "supervisors of the helpline and admins assign cases", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn set_manager(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetManager = parse_body(&body)?;
    let case = service::set_manager(&state, &staff, &id, req.user_id.as_deref()).await?;
    Ok(Json(case_view(&case)).into_response())
}

/// A helpline's stage deadlines: per stage, what falls due and in how many days.
#[derive(Serialize, ToSchema)]
pub struct Deadlines {
    helpline: String,
    stages: Vec<StageDeadline>,
}

/// How long one stage may take.
#[derive(Serialize, ToSchema)]
pub struct StageDeadline {
    stage: String,
    /// What falls due at the end of it (`case_file`, `initial_assessment`, …).
    due: Option<String>,
    ms: i64,
    days: f64,
}

/// A helpline's stage deadlines as the API shows them.
fn deadlines_view(helpline: &str, d: &StageDeadlines) -> Deadlines {
    let stages: Vec<StageDeadline> = TIMED_STAGES
        .iter()
        .map(|s| {
            let ms = d.get(*s).unwrap_or_default();
            StageDeadline { stage: s.as_str().to_string(), due: s.due_what().map(str::to_string), ms, days: ms as f64 / DAY_MS as f64 }
        })
        .collect();
    Deadlines { helpline: helpline.to_string(), stages }
}

/// `GET /api/v1/helplines/{name}/case-deadlines`: how many days each case stage may take (any staff).
#[utoipa::path(get, path = "/api/v1/helplines/{name}/case-deadlines", tag = "casework", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "how long each stage may take (`open`: the case file)", body = Deadlines),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn deadlines(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    let d = service::deadlines(&state, &name).await?;
    Ok(Json(deadlines_view(&name, &d)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetDeadlines {
    /// Stage (`open`, `initial_assessment`, `comprehensive_assessment`, `intervention_plan`,
    /// `monitoring`) → days (1 to 365); stages not named keep their setting.
    #[schema(value_type = StageDays)]
    days: std::collections::BTreeMap<String, i64>,
}

/// [`SetDeadlines::days`] as the OpenAPI document describes it: a stage's days, 1 to 365.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StageDays {
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    open: i64,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    initial_assessment: i64,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    comprehensive_assessment: i64,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    intervention_plan: i64,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    monitoring: i64,
}

/// `PUT /api/v1/helplines/{name}/case-deadlines {days: {stage: n}}` (admins): sets how many days the
/// named stages may take (`open` is the case file). Applies to stages entered from now on (audited).
#[utoipa::path(put, path = "/api/v1/helplines/{name}/case-deadlines", tag = "casework", security(("bearer" = [])), request_body = SetDeadlines,
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the helpline's deadlines now", body = Deadlines),
        (status = 400, description = "`bad_field`: an unknown stage, or days outside 1 to 365", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn set_deadlines(
    State(state): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    // The role first: a non-admin is refused (and audited) whatever the body.
    service::deadline_setter(&state, &staff, &name).await?;
    let req: SetDeadlines = parse_body(&body)?;
    let d = service::set_deadlines(&state, &staff, &name, &req.days).await?;
    Ok(Json(deadlines_view(&name, &d)).into_response())
}

/// A helpline's stage forms.
#[derive(Serialize, ToSchema)]
pub struct StageForms {
    helpline: String,
    forms: Vec<FormDef>,
}

/// `GET /api/v1/helplines/{name}/stage-forms`: the structured content of the case stages, as data
/// (the built-in forms, with the helpline's own in their place; any staff).
#[utoipa::path(get, path = "/api/v1/helplines/{name}/stage-forms", tag = "casework", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "the helpline's stage forms", body = StageForms),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn stage_forms(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    let forms = service::stage_forms(&state, &name).await?;
    Ok(Json(StageForms { helpline: name, forms }).into_response())
}

/// `PUT /api/v1/helplines/{name}/stage-forms/{form}` (admins): the helpline's own definition of one
/// stage form, used from then on without a release (audited).
#[utoipa::path(put, path = "/api/v1/helplines/{name}/stage-forms/{form}", tag = "casework", security(("bearer" = [])), request_body = FormDef,
    params(("name" = String, Path, description = "the helpline's name"), ("form" = String, Path, description = "the form's code")),
    responses(
        (status = 204, description = "set"),
        (status = 400, description = "`bad_field`: the definition's first fault", body = ErrorBody),
        (status = 403, description = "admins only", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn set_stage_form(
    State(state): State<AppState>,
    staff: Staff,
    Path((name, form)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    // The role first: a non-admin is refused (and audited) whatever the body.
    service::stage_form_setter(&state, &staff, &name).await?;
    let def: FormDef = parse_body(&body)?;
    service::set_stage_form(&state, &staff, &name, &form, &def).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FillForm {
    /// The form's code (`GET /api/v1/helplines/{name}/stage-forms`).
    form: String,
    /// Field name → value, as the form defines them.
    values: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/v1/cases/{id}/forms {form, values}`: fills in a stage form (the case's managers);
/// every field checked against its definition (`invalid_form` naming each fault); a `form` entry.
#[utoipa::path(post, path = "/api/v1/cases/{id}/forms", tag = "casework", security(("bearer" = [])), request_body = FillForm,
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 201, description = "the form was filled in (the entry's id)", body = EntryId),
        (status = 400, description = "`bad_field`: no such form", body = ErrorBody),
        (status = 403, description = "the case manager or a supervisor fills in stage forms", body = ErrorBody),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
        (status = 422, description = "`invalid_form` with `fields`: each field's fault", body = ErrorBody),
    ))]
pub async fn fill_form(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: FillForm = parse_body(&body)?;
    let entry = service::fill_form(&state, &staff, &id, &req.form, &req.values).await?;
    Ok((StatusCode::CREATED, Json(EntryId { id: entry })).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// One helpline (default: all for admins; a supervisor's one helpline).
    helpline: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The casework report: cases by helpline, stage, district and case manager.
#[derive(Serialize, ToSchema)]
pub struct CaseReport {
    /// The time the deadlines were judged at (RFC 3339).
    now: String,
    /// The helpline reported (null: all).
    helpline: Option<String>,
    rows: Vec<CaseReportRow>,
}

/// Cases of one helpline at one stage, in one district, with one case manager.
#[derive(Serialize, ToSchema)]
pub struct CaseReportRow {
    helpline: String,
    stage: String,
    district: Option<String>,
    case_manager_id: Option<String>,
    cases: i64,
    /// Not closed and past their deadline.
    overdue: i64,
}

/// `GET /api/v1/reports/cases?helpline=&format=json|csv`: open, overdue and closed cases by stage,
/// district and case manager (supervisors of the helpline, admins; audited).
#[utoipa::path(get, path = "/api/v1/reports/cases", tag = "casework", security(("bearer" = [])), params(ReportQuery),
    responses(
        (status = 200, description = "the report", content(
            (CaseReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "`bad_field`: format is not `json` or `csv`", body = ErrorBody),
        (status = 403, description = "reports are for supervisors and admins, of the helplines they supervise (a supervisor of several names one)", body = ErrorBody),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn report(State(state): State<AppState>, staff: Staff, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(AppError::bad_field(format!("format must be json or csv, not {other:?}"))),
    };
    let (now, helpline, rows) = service::report(&state, &staff, q.helpline.as_deref()).await?;
    let rows: Vec<CaseReportRow> = rows
        .into_iter()
        .map(|r| CaseReportRow {
            helpline: r.helpline,
            stage: r.stage,
            district: r.district,
            case_manager_id: r.case_manager_id,
            cases: r.cases,
            overdue: r.overdue,
        })
        .collect();
    if !csv {
        return Ok(Json(CaseReport { now: rfc3339(now), helpline, rows }).into_response());
    }
    let mut body = String::from("helpline,stage,district,case_manager_id,cases,overdue\r\n");
    for r in &rows {
        let fields = [
            csv_field(&r.helpline),
            csv_field(&r.stage),
            csv_field(r.district.as_deref().unwrap_or("")),
            csv_field(r.case_manager_id.as_deref().unwrap_or("")),
            r.cases.to_string(),
            r.overdue.to_string(),
        ];
        body.push_str(&fields.join(","));
        body.push_str("\r\n");
    }
    let name = format!("helpline-cases-{}.csv", helpline.as_deref().unwrap_or("all"));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

//! Case files over REST: opened by hand from a contact (or by a placement), listed by deadline, read, moved through their stages, with entries, linked contacts and identifying details kept to the case's roles.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{hidden, parse_body, visible_case, visible_contact, Staff};
use crate::state::AppState;
use crate::casework::{Stage, StageDeadlines, DAY_MS, REFERRAL_KINDS, TIMED_STAGES};
use crate::state::error::{AppError, ErrorBody};
use crate::protocol::{rfc3339, ErrorCode};
use crate::store::cases::{CaseRecord, Due, NewCase, PersonDetails};
use crate::store::services::PlacementRecord;
use crate::store::users::Role;

/// A case as the API shows it: the record, its times in RFC 3339 and the stages it may move to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseView {
    pub id: String,
    pub number: String,
    pub helpline: String,
    /// `open`, `initial_assessment`, `comprehensive_assessment`, `intervention_plan`, `monitoring` or `closed`.
    pub stage: String,
    /// The pseudonym shown everywhere.
    pub person_label: String,
    pub district: Option<String>,
    pub opened_by: String,
    pub case_manager_id: Option<String>,
    /// RFC 3339.
    pub opened_at: String,
    pub opened_at_ms: i64,
    /// When the current deadline falls (RFC 3339; null once closed).
    pub due_at: Option<String>,
    pub due_at_ms: Option<i64>,
    /// What is due: `case_file`, `initial_assessment`, ….
    pub due_what: Option<String>,
    /// The stages the case may move to next.
    pub allowed_next: Vec<String>,
}

/// A case as the API shows it.
pub fn case_view(c: &CaseRecord) -> CaseView {
    let next: Vec<String> =
        Stage::parse(&c.stage).map(|s| s.next().iter().map(|n| n.as_str().to_string()).collect()).unwrap_or_default();
    CaseView {
        id: c.id.clone(),
        number: c.number.clone(),
        helpline: c.helpline.clone(),
        stage: c.stage.clone(),
        person_label: c.person_label.clone(),
        district: c.district.clone(),
        opened_by: c.opened_by.clone(),
        case_manager_id: c.case_manager_id.clone(),
        opened_at: rfc3339(c.opened_at),
        opened_at_ms: c.opened_at,
        due_at: c.due_at.map(rfc3339),
        due_at_ms: c.due_at,
        due_what: c.due_what.clone(),
        allowed_next: next,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `overdue`, or `24h` (due within a day); absent or `any`: every open case.
    due: Option<String>,
}

/// Open cases, soonest deadline first.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    /// The time the deadlines were judged at (RFC 3339).
    now: String,
    cases: Vec<CaseView>,
}

/// `GET /api/v1/cases?due=overdue|24h`: open cases you may see (each listing audited), soonest deadline first.
#[utoipa::path(get, path = "/api/v1/cases", tag = "casework", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "open cases you may see, soonest deadline first", body = CaseList),
        (status = 400, description = "`bad_field`: `due` is not `overdue` or `24h`", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<ListQuery>) -> Result<Response, AppError> {
    let due = match q.due.as_deref() {
        None | Some("") | Some("any") => Due::Any,
        Some("overdue") => Due::Overdue,
        Some("24h") => Due::Within24h,
        Some(other) => return Err(AppError::bad_field(format!("due must be overdue or 24h, not {other:?}"))),
    };
    let now = state.clock.now_ms();
    let visible: Vec<CaseRecord> = state.store.cases().cases_due(due, now).await?.into_iter().filter(|c| staff.sees_case(c)).collect();
    for c in &visible {
        staff.audit(&state, "case_list", &c.id, q.due.as_deref()).await;
    }
    let cases: Vec<CaseView> = visible.iter().map(case_view).collect();
    Ok(Json(CaseList { now: rfc3339(now), cases }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenCase {
    contact_id: String,
    #[serde(default)]
    district: Option<String>,
    #[serde(default)]
    person_label: Option<String>,
}

/// `POST /api/v1/cases {contact_id, district?, person_label?}`: opens a case by hand from a contact you may see.
#[utoipa::path(post, path = "/api/v1/cases", tag = "casework", security(("bearer" = [])), request_body = OpenCase,
    responses(
        (status = 201, description = "the case opened", body = CaseView),
        (status = 400, description = "`bad_field`", body = ErrorBody),
        (status = 403, description = "case managers do not open cases", body = ErrorBody),
        (status = 404, description = "no such contact, or not one you may see", body = ErrorBody),
    ))]
pub async fn open(State(state): State<AppState>, staff: Staff, body: axum::body::Bytes) -> Result<Response, AppError> {
    let req: OpenCase = parse_body(&body)?;
    if staff.user.role == Role::CaseManager {
        return Err(staff.refuse(&state, "case_open", &req.contact_id, AppError::forbidden("cases are opened from the helpline")).await);
    }
    let contact = visible_contact(&state, &staff, &req.contact_id, "case_open").await?;
    let new = NewCase {
        rules: crate::casework::CASE_RULES,
        helpline: contact.helpline.clone(),
        person_label: req.person_label,
        district: req.district.filter(|d| !d.trim().is_empty()),
        opened_by: staff.id().to_string(),
        contact_id: Some(contact.id.clone()),
        at: state.clock.now_ms(),
    };
    let case = state.store.cases().open_case(&new).await?;
    staff.audit(&state, "case_open", &case.id, Some(&case.number)).await;
    Ok((StatusCode::CREATED, Json(case_view(&case))).into_response())
}

/// A case entry as the API shows it (its JSON body parsed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    pub id: String,
    /// `assessment`, `note`, `referral` or `stage`.
    pub kind: String,
    pub author_id: String,
    /// RFC 3339.
    pub at: String,
    /// The entry: `findings`, `text` or `service`, and the `stage` it was written at.
    pub body: serde_json::Value,
}

/// A case entry as the API shows it.
pub fn entry_view(e: &crate::store::cases::CaseEntry) -> EntryView {
    EntryView {
        id: e.id.clone(),
        kind: e.kind.clone(),
        author_id: e.author_id.clone(),
        at: rfc3339(e.at),
        body: serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or_default(),
    }
}

/// A case with what belongs to it.
#[derive(Serialize, ToSchema)]
pub struct CaseFile {
    case: CaseView,
    /// The linked contacts' ids.
    contacts: Vec<String>,
    entries: Vec<EntryView>,
    placements: Vec<PlacementRecord>,
}

/// `GET /api/v1/cases/{id}`: the case, linked contacts, entries and placements (audited).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "casework", security(("bearer" = [])),
    params(("id" = String, Path, description = "the case's id")),
    responses(
        (status = 200, description = "the case, its linked contacts, entries and placements", body = CaseFile),
        (status = 404, description = "no such case, or not one you may see", body = ErrorBody),
    ))]
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let case = visible_case(&state, &staff, &id, "case_read").await?;
    let contacts = state.store.cases().case_contacts(&id).await?;
    let entries: Vec<EntryView> = state.store.cases().case_entries(&id).await?.iter().map(entry_view).collect();
    let placements = state.store.placements().placements_of_case(&id).await?;
    staff.audit(&state, "case_read", &id, None).await;
    Ok(Json(CaseFile { case: case_view(&case), contacts, entries, placements }).into_response())
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
        (status = 409, description = "`stage_order` (with `allowed`), or `conflict`: the case moved meanwhile", body = ErrorBody),
    ))]
pub async fn stage(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let req: SetStage = parse_body(&body)?;
    let case = visible_case(&state, &staff, &id, "case_stage").await?;
    if !staff.manages_case(&case) {
        return Err(staff.refuse(&state, "case_stage", &id, AppError::forbidden("the case manager or a supervisor moves a case")).await);
    }
    let Some(to) = Stage::parse(&req.stage) else {
        let all: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        return Err(AppError::bad_field(format!("stage must be one of {}", all.join(", "))));
    };
    let from = Stage::parse(&case.stage).unwrap_or(Stage::Open);
    if let Err(allowed) = from.check(to) {
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(AppError::new(ErrorCode::StageOrder, format!("a case at {} cannot move to {}", from.as_str(), to.as_str()))
            .with("allowed", serde_json::json!(allowed)));
    }
    let deadlines = crate::casework::stage_deadlines(&state.store, &case.helpline).await?;
    let now = state.clock.now_ms();
    let due = to.deadline(&deadlines).map(|(what, ms)| (what, now + ms));
    if !state.store.cases().set_case_stage(&id, from.as_str(), to.as_str(), due, staff.id(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the case moved meanwhile; read it again"));
    }
    staff.audit(&state, "case_stage", &id, Some(&format!("{} -> {}", from.as_str(), to.as_str()))).await;
    let case = state.store.cases().case(&id).await?.ok_or_else(|| hidden("case"))?;
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
    let case = visible_case(&state, &staff, &id, "case_entry").await?;
    let needs = match req.kind.as_str() {
        "assessment" => "findings",
        "note" => "text",
        "referral" => "service",
        _ => return Err(AppError::bad_field("kind must be assessment, note or referral")),
    };
    let Some(value) = req.body.get(needs).and_then(|v| v.as_str()).filter(|v| !v.trim().is_empty()) else {
        return Err(AppError::bad_field(format!("a {} needs a non-empty {needs:?}", req.kind)));
    };
    if req.kind == "referral" && !REFERRAL_KINDS.contains(&value) {
        return Err(AppError::bad_field(format!("service must be one of {}", REFERRAL_KINDS.join(", "))));
    }
    let mut body = req.body.clone();
    body.insert("stage".into(), serde_json::json!(case.stage));
    let text = serde_json::Value::Object(body).to_string();
    if text.len() > 32 * 1024 {
        return Err(AppError::new(ErrorCode::TooLarge, "an entry is limited to 32 KiB"));
    }
    let entry = state.store.cases().add_case_entry(&id, &req.kind, &text, staff.id(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_entry", &id, Some(&format!("{} {entry}", req.kind))).await;
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
    let case = visible_case(&state, &staff, &id, "case_link").await?;
    let contact = visible_contact(&state, &staff, &req.contact_id, "case_link").await?;
    if contact.helpline != case.helpline && !staff.supervises(&contact.helpline) {
        return Err(AppError::new(ErrorCode::NotAllowed, "the contact belongs to another helpline"));
    }
    state.store.cases().link_case_contact(&id, &contact.id, staff.id(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_link", &id, Some(&contact.id)).await;
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
    let case = visible_case(&state, &staff, &id, "case_person_read").await?;
    if !staff.sees_person(&case) {
        return Err(staff.refuse(&state, "case_person_read", &id, AppError::forbidden("identifying details are for the case's own roles")).await);
    }
    let p = state.store.cases().case_person(&id).await?;
    staff.audit(&state, "case_person_read", &id, None).await;
    Ok(Json(p).into_response())
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
    let case = visible_case(&state, &staff, &id, "case_person_write").await?;
    if !staff.sees_person(&case) {
        return Err(staff.refuse(&state, "case_person_write", &id, AppError::forbidden("identifying details are for the case's own roles")).await);
    }
    let too_long = [&p.full_name, &p.birth_date, &p.address, &p.phone].iter().any(|f| f.as_deref().is_some_and(|v| v.chars().count() > 300));
    if too_long {
        return Err(AppError::bad_field("each detail is limited to 300 characters"));
    }
    state.store.cases().set_case_person(&id, &p, state.clock.now_ms()).await?;
    staff.audit(&state, "case_person_write", &id, None).await;
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
    let case = visible_case(&state, &staff, &id, "case_assign").await?;
    if !staff.supervises(&case.helpline) {
        return Err(staff.refuse(&state, "case_assign", &id, AppError::forbidden("supervisors and admins assign cases")).await);
    }
    if let Some(user) = &req.user_id {
        match state.store.accounts().user(user).await? {
            Some(u) if u.role == Role::CaseManager && !u.disabled => {}
            _ => return Err(AppError::bad_field("user_id must be an enabled case manager")),
        }
    }
    state.store.cases().set_case_manager(&id, req.user_id.as_deref(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_assign", &id, req.user_id.as_deref()).await;
    let case = state.store.cases().case(&id).await?.ok_or_else(|| hidden("case"))?;
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

fn known_helpline(state: &AppState, name: &str) -> Result<(), AppError> {
    if state.helplines.iter().any(|h| h.name == name) {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"))
    }
}

/// `GET /api/v1/helplines/{name}/case-deadlines`: how many days each case stage may take (any staff).
#[utoipa::path(get, path = "/api/v1/helplines/{name}/case-deadlines", tag = "casework", security(("bearer" = [])),
    params(("name" = String, Path, description = "the helpline's name")),
    responses(
        (status = 200, description = "how long each stage may take (`open`: the case file)", body = Deadlines),
        (status = 404, description = "`unknown_helpline`", body = ErrorBody),
    ))]
pub async fn deadlines(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    known_helpline(&state, &name)?;
    let d = crate::casework::stage_deadlines(&state.store, &name).await?;
    Ok(Json(deadlines_view(&name, &d)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetDeadlines {
    /// Stage → days (1 to 365); stages not named keep their setting.
    days: std::collections::BTreeMap<String, i64>,
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
    if !staff.is_admin() {
        return Err(staff.refuse(&state, "case_deadlines_set", &name, AppError::forbidden("admins only")).await);
    }
    known_helpline(&state, &name)?;
    let req: SetDeadlines = parse_body(&body)?;
    let mut d = crate::casework::stage_deadlines(&state.store, &name).await?;
    for (stage, days) in &req.days {
        let Some(s) = Stage::parse(stage) else {
            let all: Vec<&str> = TIMED_STAGES.iter().map(|s| s.as_str()).collect();
            return Err(AppError::bad_field(format!("unknown stage {stage:?}; expected one of {}", all.join(", "))));
        };
        d.set_days(s, *days).map_err(AppError::bad_field)?;
    }
    crate::casework::set_stage_deadlines(&state.store, &name, &d, staff.id(), state.clock.now_ms()).await?;
    let detail: Vec<String> = req.days.iter().map(|(s, n)| format!("{s}={n}d")).collect();
    staff.audit(&state, "case_deadlines_set", &name, Some(&detail.join(" "))).await;
    Ok(Json(deadlines_view(&name, &d)).into_response())
}

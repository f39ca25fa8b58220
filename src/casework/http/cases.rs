//! Case files over REST: opened by hand from a contact (or by a placement), listed by deadline, read, moved through their stages, with entries, linked contacts and identifying details kept to the case's roles.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{hidden, parse_body, visible_case, visible_contact, Staff};
use crate::state::AppState;
use crate::casework::{Stage, StageDeadlines, DAY_MS, REFERRAL_KINDS, TIMED_STAGES};
use crate::state::error::AppError;
use crate::protocol::{rfc3339, ErrorCode};
use crate::store::cases::{CaseRecord, Due, NewCase, PersonDetails};
use crate::store::users::Role;

/// A case as the API shows it: the record, its times in RFC 3339 and the stages it may move to.
pub fn case_view(c: &CaseRecord) -> serde_json::Value {
    let next: Vec<&str> = Stage::parse(&c.stage).map(|s| s.next().iter().map(|n| n.as_str()).collect()).unwrap_or_default();
    serde_json::json!({
        "id": c.id,
        "number": c.number,
        "helpline": c.helpline,
        "stage": c.stage,
        "person_label": c.person_label,
        "district": c.district,
        "opened_by": c.opened_by,
        "case_manager_id": c.case_manager_id,
        "opened_at": rfc3339(c.opened_at),
        "opened_at_ms": c.opened_at,
        "due_at": c.due_at.map(rfc3339),
        "due_at_ms": c.due_at,
        "due_what": c.due_what,
        "allowed_next": next,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    due: Option<String>,
}

/// `GET /api/v1/cases?due=overdue|24h`: open cases you may see (each listing audited), soonest deadline first.
pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<ListQuery>) -> Result<Response, AppError> {
    let due = match q.due.as_deref() {
        None | Some("") | Some("any") => Due::Any,
        Some("overdue") => Due::Overdue,
        Some("24h") => Due::Within24h,
        Some(other) => return Err(AppError::bad_field(format!("due must be overdue or 24h, not {other:?}"))),
    };
    let now = state.clock.now_ms();
    let visible: Vec<CaseRecord> = state.store.cases_due(due, now).await?.into_iter().filter(|c| staff.sees_case(c)).collect();
    for c in &visible {
        staff.audit(&state, "case_list", &c.id, q.due.as_deref()).await;
    }
    let cases: Vec<serde_json::Value> = visible.iter().map(case_view).collect();
    Ok(Json(serde_json::json!({ "now": rfc3339(now), "cases": cases })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenCase {
    contact_id: String,
    #[serde(default)]
    district: Option<String>,
    #[serde(default)]
    person_label: Option<String>,
}

/// `POST /api/v1/cases {contact_id, district?, person_label?}`: opens a case by hand from a contact you may see.
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
    let case = state.store.open_case(&new).await?;
    staff.audit(&state, "case_open", &case.id, Some(&case.number)).await;
    Ok((StatusCode::CREATED, Json(case_view(&case))).into_response())
}

/// A case entry as the API shows it (its JSON body parsed).
pub fn entry_view(e: &crate::store::cases::CaseEntry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "kind": e.kind, "author_id": e.author_id, "at": rfc3339(e.at),
        "body": serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or_default(),
    })
}

/// `GET /api/v1/cases/{id}`: the case, linked contacts, entries and placements (audited).
pub async fn read(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let case = visible_case(&state, &staff, &id, "case_read").await?;
    let contacts = state.store.case_contacts(&id).await?;
    let entries: Vec<serde_json::Value> = state.store.case_entries(&id).await?.iter().map(entry_view).collect();
    let placements = state.store.placements_of_case(&id).await?;
    staff.audit(&state, "case_read", &id, None).await;
    Ok(Json(serde_json::json!({
        "case": case_view(&case), "contacts": contacts, "entries": entries, "placements": placements,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStage {
    stage: String,
}

/// `POST /api/v1/cases/{id}/stage {stage}`: the next stage; out of order → 409 `stage_order` with `allowed`.
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
    if !state.store.set_case_stage(&id, from.as_str(), to.as_str(), due, staff.id(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the case moved meanwhile; read it again"));
    }
    staff.audit(&state, "case_stage", &id, Some(&format!("{} -> {}", from.as_str(), to.as_str()))).await;
    let case = state.store.case(&id).await?.ok_or_else(|| hidden("case"))?;
    Ok(Json(case_view(&case)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    kind: String,
    body: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/v1/cases/{id}/entries {kind, body}`: an `assessment` (with `findings`), a `note` (with
/// `text`) or a `referral` (with `service`, one of the referral kinds).
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
    let entry = state.store.add_case_entry(&id, &req.kind, &text, staff.id(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_entry", &id, Some(&format!("{} {entry}", req.kind))).await;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": entry }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    contact_id: String,
}

/// `POST /api/v1/cases/{id}/contacts {contact_id}`: links one more contact (one you may see).
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
    state.store.link_case_contact(&id, &contact.id, staff.id(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_link", &id, Some(&contact.id)).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/cases/{id}/person`: identifying details, for the case's own roles only (audited).
pub async fn person(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> Result<Response, AppError> {
    let case = visible_case(&state, &staff, &id, "case_person_read").await?;
    if !staff.sees_person(&case) {
        return Err(staff.refuse(&state, "case_person_read", &id, AppError::forbidden("identifying details are for the case's own roles")).await);
    }
    let p = state.store.case_person(&id).await?;
    staff.audit(&state, "case_person_read", &id, None).await;
    Ok(Json(p).into_response())
}

/// `PUT /api/v1/cases/{id}/person {full_name?, birth_date?, address?, phone?}` (the case's own roles).
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
    state.store.set_case_person(&id, &p, state.clock.now_ms()).await?;
    staff.audit(&state, "case_person_write", &id, None).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetManager {
    user_id: Option<String>,
}

/// `PUT /api/v1/cases/{id}/case-manager {user_id}`: supervisors of the helpline and admins assign a case manager.
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
        match state.store.user(user).await? {
            Some(u) if u.role == Role::CaseManager && !u.disabled => {}
            _ => return Err(AppError::bad_field("user_id must be an enabled case manager")),
        }
    }
    state.store.set_case_manager(&id, req.user_id.as_deref(), state.clock.now_ms()).await?;
    staff.audit(&state, "case_assign", &id, req.user_id.as_deref()).await;
    let case = state.store.case(&id).await?.ok_or_else(|| hidden("case"))?;
    Ok(Json(case_view(&case)).into_response())
}

/// A helpline's stage deadlines as the API shows them: per stage, what falls due and in how many days.
fn deadlines_view(helpline: &str, d: &StageDeadlines) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = TIMED_STAGES
        .iter()
        .map(|s| {
            let ms = d.get(*s).unwrap_or_default();
            serde_json::json!({ "stage": s.as_str(), "due": s.due_what(), "ms": ms, "days": ms as f64 / DAY_MS as f64 })
        })
        .collect();
    serde_json::json!({ "helpline": helpline, "stages": stages })
}

fn known_helpline(state: &AppState, name: &str) -> Result<(), AppError> {
    if state.helplines.iter().any(|h| h.name == name) {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"))
    }
}

/// `GET /api/v1/helplines/{name}/case-deadlines`: how many days each case stage may take (any staff).
pub async fn deadlines(State(state): State<AppState>, _staff: Staff, Path(name): Path<String>) -> Result<Response, AppError> {
    known_helpline(&state, &name)?;
    let d = crate::casework::stage_deadlines(&state.store, &name).await?;
    Ok(Json(deadlines_view(&name, &d)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDeadlines {
    /// Stage → days (1 to 365); stages not named keep their setting.
    days: std::collections::BTreeMap<String, i64>,
}

/// `PUT /api/v1/helplines/{name}/case-deadlines {days: {stage: n}}` (admins): sets how many days the
/// named stages may take (`open` is the case file). Applies to stages entered from now on (audited).
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

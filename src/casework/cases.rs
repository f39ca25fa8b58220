//! Case files, the service: opened by hand from a contact (or by a placement), listed by deadline,
//! read, moved through their stages, with entries, linked contacts and identifying details kept to the
//! case's roles, and the helplines' stage deadlines. Who may do what is checked here through
//! [`crate::state::access`]; the REST edge is [`crate::casework::http::cases`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::casework::stage_forms::{self, FormDef};
use crate::casework::{Stage, StageDeadlines, REFERRAL_KINDS, TIMED_STAGES};
use crate::protocol::{rfc3339, ErrorCode};
use crate::state::access::{check_text, hidden, visible_case, visible_contact, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
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
    let next: Vec<String> = Stage::parse(&c.stage).map(|s| s.next().iter().map(|n| n.as_str().to_string()).collect()).unwrap_or_default();
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

/// A case entry as the API shows it (its JSON body parsed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EntryView {
    pub id: String,
    /// `assessment`, `note`, `referral`, `stage`, `reason` (why it was opened) or `form` (a stage form filled in).
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
    pub case: CaseView,
    /// The linked contacts' ids.
    pub contacts: Vec<String>,
    pub entries: Vec<EntryView>,
    pub placements: Vec<PlacementRecord>,
}

/// Open cases `staff` may see, soonest deadline first (`due`: `overdue`, `24h`, or absent / `any` for
/// every open case), each listing audited; with the time the deadlines were judged at.
pub async fn list(state: &AppState, staff: &Staff, due: Option<&str>) -> Result<(i64, Vec<CaseRecord>), AppError> {
    let filter = match due {
        None | Some("") | Some("any") => Due::Any,
        Some("overdue") => Due::Overdue,
        Some("24h") => Due::Within24h,
        Some(other) => return Err(AppError::bad_field(format!("due must be overdue or 24h, not {other:?}"))),
    };
    let now = state.clock.now_ms();
    let visible: Vec<CaseRecord> = state.store.cases().cases_due(filter, now).await?.into_iter().filter(|c| staff.sees_case(c)).collect();
    for c in &visible {
        staff.audit(state, "case_list", &c.id, due).await;
    }
    Ok((now, visible))
}

/// What a case is opened with by hand: from a contact (`contact_id`), or without one (`helpline`).
#[derive(Debug, Clone, Default)]
pub struct Opening {
    pub contact_id: Option<String>,
    pub helpline: Option<String>,
    pub district: Option<String>,
    pub person_label: Option<String>,
    /// Why the case is opened (required without a contact): the case's first entry, kind `reason`.
    pub reason: Option<String>,
}

/// The case with this number (any stage; the number as written, any case, spaces around ignored), if
/// `staff` may see it: found or not, the search is audited (`case_search`, and `case_list` for the case).
pub async fn find_by_number(state: &AppState, staff: &Staff, number: &str) -> Result<(i64, Vec<CaseRecord>), AppError> {
    let number = number.trim().to_uppercase();
    if number.is_empty() || number.chars().count() > 64 {
        return Err(AppError::bad_field("number must be 1 to 64 characters"));
    }
    let found = state.store.cases().case_by_number(&number).await?.filter(|c| staff.sees_case(c));
    staff.audit(state, "case_search", &number, Some(if found.is_some() { "found" } else { "none" })).await;
    if let Some(c) = &found {
        staff.audit(state, "case_list", &c.id, Some("number")).await;
    }
    Ok((state.clock.now_ms(), found.into_iter().collect()))
}

/// Opens a case by hand (audited): from a contact `staff` may see (not case managers: their cases
/// come from the helpline), or without a contact in a helpline (case managers, who then manage it,
/// and supervisors of that helpline; counsellors open cases from their contacts only). The same
/// deadlines either way.
pub async fn open(state: &AppState, staff: &Staff, o: Opening) -> Result<CaseRecord, AppError> {
    let reason = o.reason.as_deref().map(|r| check_text("reason", r, 4000)).transpose()?;
    let person_label = o.person_label.as_deref().map(|l| check_text("person_label", l, 200)).transpose()?;
    let district = o.district.filter(|d| !d.trim().is_empty()).map(|d| d.trim().to_string());
    let (helpline, contact_id, case_manager_id) = match (&o.contact_id, &o.helpline) {
        (Some(_), Some(_)) => return Err(AppError::bad_field("give contact_id or helpline, not both")),
        (None, None) => return Err(AppError::bad_field("contact_id or helpline is required")),
        (Some(contact_id), None) => {
            if staff.user.role == Role::CaseManager {
                return Err(staff
                    .refuse(state, "case_open", contact_id, AppError::forbidden("a case manager opens a case without a contact"))
                    .await);
            }
            let contact = visible_contact(state, staff, contact_id, "case_open").await?;
            (contact.helpline, Some(contact.id), None)
        }
        (None, Some(helpline)) => {
            known_helpline(state, helpline)?;
            if reason.is_none() {
                return Err(AppError::bad_field("a case opened without a contact needs a reason"));
            }
            let manager = match staff.user.role {
                Role::CaseManager => Some(staff.id().to_string()),
                _ if staff.supervises(helpline) => None,
                _ => {
                    return Err(staff
                        .refuse(
                            state,
                            "case_open",
                            helpline,
                            AppError::forbidden("case managers and the helpline's supervisors open cases without a contact"),
                        )
                        .await)
                }
            };
            (helpline.clone(), None, manager)
        }
    };
    let new = NewCase {
        rules: crate::casework::CASE_RULES,
        helpline,
        person_label,
        district,
        opened_by: staff.id().to_string(),
        contact_id,
        case_manager_id,
        at: state.clock.now_ms(),
    };
    let body = reason.map(|r| serde_json::json!({ "text": r, "stage": "open" }).to_string());
    let case = state.store.cases().open_case(&new, body.as_deref()).await?;
    staff.audit(state, "case_open", &case.id, Some(&case.number)).await;
    Ok(case)
}

/// A case `staff` may see, with its linked contacts, entries and placements (audited).
pub async fn read(state: &AppState, staff: &Staff, id: &str) -> Result<CaseFile, AppError> {
    let case = visible_case(state, staff, id, "case_read").await?;
    let contacts = state.store.cases().case_contacts(id).await?;
    let entries: Vec<EntryView> = state.store.cases().case_entries(id).await?.iter().map(entry_view).collect();
    let placements = state.store.placements().placements_of_case(id).await?;
    staff.audit(state, "case_read", id, None).await;
    Ok(CaseFile { case: case_view(&case), contacts, entries, placements })
}

/// Moves a case to its next `stage` (its case manager or a supervisor): `stage_order` (with
/// `allowed`) out of order, `conflict` with `approval_needed` (`plan`, `closure`) when a case manager
/// has not the supervisor's approval yet (`casework::transfers`), `conflict` when it moved meanwhile; the new stage's deadline is set from
/// the helpline's deadlines (audited). Returns the case at its new stage.
pub async fn move_stage(state: &AppState, staff: &Staff, id: &str, stage: &str) -> Result<CaseRecord, AppError> {
    let case = visible_case(state, staff, id, "case_stage").await?;
    if !staff.manages_case(&case) {
        return Err(staff.refuse(state, "case_stage", id, AppError::forbidden("the case manager or a supervisor moves a case")).await);
    }
    let Some(to) = Stage::parse(stage) else {
        let all: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        return Err(AppError::bad_field(format!("stage must be one of {}", all.join(", "))));
    };
    let from = Stage::parse(&case.stage).unwrap_or(Stage::Open);
    if let Err(allowed) = from.check(to) {
        let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(AppError::new(ErrorCode::StageOrder, format!("a case at {} cannot move to {}", from.as_str(), to.as_str()))
            .with("allowed", serde_json::json!(allowed)));
    }
    if let Some(kind) = crate::casework::transfers::approval_needed(state, staff, &case, from, to).await? {
        let err = AppError::new(ErrorCode::Conflict, format!("a case manager needs a supervisor's approval of the {kind} first"))
            .with("approval_needed", serde_json::json!(kind));
        return Err(staff.refuse(state, "case_stage", id, err).await);
    }
    let deadlines = crate::casework::stage_deadlines(&state.store, &case.helpline).await?;
    let now = state.clock.now_ms();
    let due = to.deadline(&deadlines).map(|(what, ms)| (what, now + ms));
    if !state.store.cases().set_case_stage(id, from.as_str(), to.as_str(), due, staff.id(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the case moved meanwhile; read it again"));
    }
    staff.audit(state, "case_stage", id, Some(&format!("{} -> {}", from.as_str(), to.as_str()))).await;
    state.store.cases().case(id).await?.ok_or_else(|| hidden("case"))
}

/// Adds an entry to a case `staff` may see: an `assessment` (with `findings`), a `note` (with `text`)
/// or a `referral` (with `service`, one of the referral kinds), stamped with the case's stage; at
/// most 32 KiB (audited). Returns the entry's id.
pub async fn add_entry(
    state: &AppState,
    staff: &Staff,
    id: &str,
    kind: &str,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<String, AppError> {
    let case = visible_case(state, staff, id, "case_entry").await?;
    let needs = match kind {
        "assessment" => "findings",
        "note" => "text",
        "referral" => "service",
        _ => return Err(AppError::bad_field("kind must be assessment, note or referral")),
    };
    let Some(value) = body.get(needs).and_then(|v| v.as_str()).filter(|v| !v.trim().is_empty()) else {
        return Err(AppError::bad_field(format!("a {kind} needs a non-empty {needs:?}")));
    };
    if kind == "referral" && !REFERRAL_KINDS.contains(&value) {
        return Err(AppError::bad_field(format!("service must be one of {}", REFERRAL_KINDS.join(", "))));
    }
    let mut body = body.clone();
    body.insert("stage".into(), serde_json::json!(case.stage));
    let text = serde_json::Value::Object(body).to_string();
    if text.len() > 32 * 1024 {
        return Err(AppError::new(ErrorCode::TooLarge, "an entry is limited to 32 KiB"));
    }
    let entry = state.store.cases().add_case_entry(id, kind, &text, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "case_entry", id, Some(&format!("{kind} {entry}"))).await;
    Ok(entry)
}

/// Links one more contact (one `staff` may see) to a case they may see; `not_allowed` for a contact
/// of another helpline than the case's, unless `staff` supervises it (audited).
pub async fn link_contact(state: &AppState, staff: &Staff, id: &str, contact_id: &str) -> Result<(), AppError> {
    let case = visible_case(state, staff, id, "case_link").await?;
    let contact = visible_contact(state, staff, contact_id, "case_link").await?;
    if contact.helpline != case.helpline && !staff.supervises(&contact.helpline) {
        return Err(AppError::new(ErrorCode::NotAllowed, "the contact belongs to another helpline"));
    }
    state.store.cases().link_case_contact(id, &contact.id, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "case_link", id, Some(&contact.id)).await;
    Ok(())
}

/// The case's person's identifying details, for the case's own roles only (audited).
pub async fn person(state: &AppState, staff: &Staff, id: &str) -> Result<PersonDetails, AppError> {
    let case = visible_case(state, staff, id, "case_person_read").await?;
    if !staff.sees_person(&case) {
        return Err(staff
            .refuse(state, "case_person_read", id, AppError::forbidden("identifying details are for the case's own roles"))
            .await);
    }
    let p = state.store.cases().case_person(id).await?;
    staff.audit(state, "case_person_read", id, None).await;
    Ok(p)
}

/// Saves the case's person's identifying details (the case's own roles; each at most 300 characters; audited).
pub async fn set_person(state: &AppState, staff: &Staff, id: &str, p: &PersonDetails) -> Result<(), AppError> {
    let case = visible_case(state, staff, id, "case_person_write").await?;
    if !staff.sees_person(&case) {
        return Err(staff
            .refuse(state, "case_person_write", id, AppError::forbidden("identifying details are for the case's own roles"))
            .await);
    }
    let too_long =
        [&p.full_name, &p.birth_date, &p.address, &p.phone].iter().any(|f| f.as_deref().is_some_and(|v| v.chars().count() > 300));
    if too_long {
        return Err(AppError::bad_field("each detail is limited to 300 characters"));
    }
    state.store.cases().set_case_person(id, p, state.clock.now_ms()).await?;
    staff.audit(state, "case_person_write", id, None).await;
    Ok(())
}

/// Assigns a case manager (an enabled one; None: none) to a case: supervisors of its helpline and
/// admins (audited). Returns the case with its case manager.
pub async fn set_manager(state: &AppState, staff: &Staff, id: &str, user_id: Option<&str>) -> Result<CaseRecord, AppError> {
    let case = visible_case(state, staff, id, "case_assign").await?;
    if !staff.supervises(&case.helpline) {
        return Err(staff.refuse(state, "case_assign", id, AppError::forbidden("supervisors and admins assign cases")).await);
    }
    if let Some(user) = user_id {
        match state.store.accounts().user(user).await? {
            Some(u) if u.role == Role::CaseManager && !u.disabled => {}
            _ => return Err(AppError::bad_field("user_id must be an enabled case manager")),
        }
    }
    state.store.cases().set_case_manager(id, user_id, state.clock.now_ms()).await?;
    staff.audit(state, "case_assign", id, user_id).await;
    state.store.cases().case(id).await?.ok_or_else(|| hidden("case"))
}

fn known_helpline(state: &AppState, name: &str) -> Result<(), AppError> {
    if state.helplines.iter().any(|h| h.name == name) {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"))
    }
}

/// How many days each case stage of a helpline may take (any staff).
pub async fn deadlines(state: &AppState, helpline: &str) -> Result<StageDeadlines, AppError> {
    known_helpline(state, helpline)?;
    Ok(crate::casework::stage_deadlines(&state.store, helpline).await?)
}

/// Only admins set a known helpline's deadlines (others: 403, audited).
pub async fn deadline_setter(state: &AppState, staff: &Staff, helpline: &str) -> Result<(), AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(state, "case_deadlines_set", helpline, AppError::forbidden("admins only")).await);
    }
    known_helpline(state, helpline)
}

/// Sets how many days the named stages (stage → days, 1 to 365) of a helpline may take (`open` is
/// the case file); the others keep their setting. Applies to stages entered from now on (admins;
/// audited). Returns the helpline's deadlines now.
pub async fn set_deadlines(
    state: &AppState,
    staff: &Staff,
    helpline: &str,
    days: &std::collections::BTreeMap<String, i64>,
) -> Result<StageDeadlines, AppError> {
    deadline_setter(state, staff, helpline).await?;
    let mut d = crate::casework::stage_deadlines(&state.store, helpline).await?;
    for (stage, n) in days {
        let Some(s) = Stage::parse(stage) else {
            let all: Vec<&str> = TIMED_STAGES.iter().map(|s| s.as_str()).collect();
            return Err(AppError::bad_field(format!("unknown stage {stage:?}; expected one of {}", all.join(", "))));
        };
        d.set_days(s, *n).map_err(AppError::bad_field)?;
    }
    crate::casework::set_stage_deadlines(&state.store, helpline, &d, staff.id(), state.clock.now_ms()).await?;
    let detail: Vec<String> = days.iter().map(|(s, n)| format!("{s}={n}d")).collect();
    staff.audit(state, "case_deadlines_set", helpline, Some(&detail.join(" "))).await;
    Ok(d)
}

/// A known helpline's stage forms: the built-in ones, with its own in their place (any staff).
pub async fn stage_forms(state: &AppState, helpline: &str) -> Result<Vec<FormDef>, AppError> {
    known_helpline(state, helpline)?;
    let own = state.store.cases().stage_forms(helpline).await?;
    Ok(stage_forms::merged(&own))
}

/// Only admins set a known helpline's stage forms (others: 403, audited).
pub async fn stage_form_setter(state: &AppState, staff: &Staff, helpline: &str) -> Result<(), AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(state, "stage_form_set", helpline, AppError::forbidden("admins only")).await);
    }
    known_helpline(state, helpline)
}

/// Sets a helpline's own definition of one stage form (admins; others 403, audited): checked first
/// (`bad_field` naming the fault); applies to forms filled in from then on. Audited as `stage_form_set`.
pub async fn set_stage_form(state: &AppState, staff: &Staff, helpline: &str, form: &str, def: &FormDef) -> Result<(), AppError> {
    stage_form_setter(state, staff, helpline).await?;
    if def.form != form {
        return Err(AppError::bad_field(format!("the definition is of form {:?}, not {form:?}", def.form)));
    }
    let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
    def.check(&stages).map_err(AppError::bad_field)?;
    let text = serde_json::to_string(def).map_err(|e| AppError::bad_field(e.to_string()))?;
    if text.len() > 64 * 1024 {
        return Err(AppError::new(ErrorCode::TooLarge, "a form definition is limited to 64 KiB"));
    }
    state.store.cases().set_stage_form(helpline, form, &text, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "stage_form_set", helpline, Some(form)).await;
    Ok(())
}

/// Fills in one of the case's helpline's stage forms (its managers: case manager, supervisors, admins;
/// the opener 403, others 404, audited): every field checked against the form's definition as it is
/// now (`invalid_form` with `fields`, each fault named); stored as a `form` entry `{form, values}`,
/// stamped with the stage. Audited as `case_entry`. Returns the entry's id.
pub async fn fill_form(
    state: &AppState,
    staff: &Staff,
    id: &str,
    form: &str,
    values: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, AppError> {
    let case = visible_case(state, staff, id, "case_entry").await?;
    if !staff.manages_case(&case) {
        return Err(staff
            .refuse(state, "case_entry", id, AppError::forbidden("the case manager or a supervisor fills in stage forms"))
            .await);
    }
    let forms = stage_forms(state, &case.helpline).await?;
    let Some(def) = forms.iter().find(|f| f.form == form) else {
        let all: Vec<&str> = forms.iter().map(|f| f.form.as_str()).collect();
        return Err(AppError::bad_field(format!("form must be one of {}", all.join(", "))));
    };
    let clean = def.validate(values).map_err(|fields| crate::casework::forms::invalid_form(&fields))?;
    let body = serde_json::json!({ "form": form, "stage": case.stage, "values": clean }).to_string();
    if body.len() > 64 * 1024 {
        return Err(AppError::new(ErrorCode::TooLarge, "a form is limited to 64 KiB"));
    }
    let entry = state.store.cases().add_case_entry(id, "form", &body, staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "case_entry", id, Some(&format!("form {form} {entry}"))).await;
    Ok(entry)
}

/// The casework report: cases by helpline, stage, district and case manager, with how many are
/// overdue now (supervisors, of a helpline they supervise, a supervisor of several naming one; admins
/// all; others 403). No person is named. Audited as `case_report`. Returns the time judged at, the
/// helpline reported (None: all) and the rows.
pub async fn report(
    state: &AppState,
    staff: &Staff,
    helpline: Option<&str>,
) -> Result<(i64, Option<String>, Vec<crate::store::cases::CaseCount>), AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff
            .refuse(
                state,
                "case_report",
                helpline.unwrap_or("all_helplines"),
                AppError::forbidden("reports are for supervisors and admins"),
            )
            .await);
    }
    let helpline = staff.report_helpline(state, "case_report", helpline).await?;
    if let Some(h) = &helpline {
        known_helpline(state, h)?;
    }
    let now = state.clock.now_ms();
    let rows = state.store.cases().case_counts(helpline.as_deref(), now).await?;
    staff.audit(state, "case_report", helpline.as_deref().unwrap_or("all_helplines"), None).await;
    Ok((now, helpline, rows))
}

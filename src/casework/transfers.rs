//! Transfers and approvals, the service: a case handed to another case manager, who accepts or refuses
//! it (the case is hers only once she accepts); the supervisor's approval of the individual plan and of
//! the closure (requested by the case manager, approved or returned with a comment by a supervisor of
//! the case's helpline). A case manager moves a case on from its plan, or closes it, only once the
//! latest such request was approved ([`approval_needed`], checked by the stage service); supervisors
//! and admins need no approval. Everything audited with the case as target. The REST edge is
//! [`crate::casework::http::transfers`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::casework::Stage;
use crate::protocol::ErrorCode;
use crate::state::access::{check_text, hidden, visible_case, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::cases::CaseRecord;
use crate::store::transfers::{ApprovalRecord, TransferRecord};
use crate::store::users::Role;

const MAX_TEXT: usize = 2000;

/// A transfer as the API shows it (to the receiver: with the case's number and pseudonym).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub case_id: String,
    pub case_number: String,
    pub person_label: String,
    pub helpline: String,
    pub from_user_id: Option<String>,
    pub to_user_id: String,
    pub note: Option<String>,
    /// `pending`, `accepted` or `refused`.
    pub status: String,
    pub requested_by: String,
    pub requested_at_ms: i64,
    pub comment: Option<String>,
    pub decided_at_ms: Option<i64>,
}

pub fn transfer_view(t: &TransferRecord, case: &CaseRecord) -> TransferView {
    TransferView {
        id: t.id.clone(),
        case_id: t.case_id.clone(),
        case_number: case.number.clone(),
        person_label: case.person_label.clone(),
        helpline: case.helpline.clone(),
        from_user_id: t.from_user_id.clone(),
        to_user_id: t.to_user_id.clone(),
        note: t.note.clone(),
        status: t.status.clone(),
        requested_by: t.requested_by.clone(),
        requested_at_ms: t.requested_at,
        comment: t.comment.clone(),
        decided_at_ms: t.decided_at,
    }
}

/// An approval request as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalView {
    pub id: String,
    pub case_id: String,
    /// `plan` or `closure`.
    pub kind: String,
    /// `pending`, `approved` or `returned`.
    pub status: String,
    pub note: Option<String>,
    pub requested_by: String,
    pub requested_at_ms: i64,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
}

pub fn approval_view(a: &ApprovalRecord) -> ApprovalView {
    ApprovalView {
        id: a.id.clone(),
        case_id: a.case_id.clone(),
        kind: a.kind.clone(),
        status: a.status.clone(),
        note: a.note.clone(),
        requested_by: a.requested_by.clone(),
        requested_at_ms: a.requested_at,
        comment: a.comment.clone(),
        decided_by: a.decided_by.clone(),
        decided_at_ms: a.decided_at,
    }
}

fn text(field: &str, v: Option<&str>) -> Result<Option<String>, AppError> {
    v.filter(|s| !s.trim().is_empty()).map(|s| check_text(field, s, MAX_TEXT)).transpose()
}

/// Offers a case to another case manager (the case's managers; the opener 403, others 404): an
/// enabled case manager who is not its case manager now; one pending transfer per case (409).
/// Audited as `transfer_request`.
pub async fn request(
    state: &AppState,
    staff: &Staff,
    case_id: &str,
    to: &str,
    note: Option<&str>,
) -> Result<(TransferRecord, CaseRecord), AppError> {
    let case = visible_case(state, staff, case_id, "transfer_request").await?;
    if !staff.manages_case(&case) {
        return Err(staff
            .refuse(state, "transfer_request", case_id, AppError::forbidden("the case manager or a supervisor transfers a case"))
            .await);
    }
    let note = text("note", note)?;
    match state.store.accounts().user(to).await? {
        Some(u) if u.role == Role::CaseManager && !u.disabled && case.case_manager_id.as_deref() != Some(u.id.as_str()) => {}
        _ => return Err(AppError::bad_field("to_user_id must be another enabled case manager")),
    }
    if case.stage == "closed" {
        return Err(AppError::new(ErrorCode::Conflict, "the case is closed"));
    }
    let t = state
        .store
        .cases()
        .request_transfer(&case.id, case.case_manager_id.as_deref(), to, note.as_deref(), staff.id(), state.clock.now_ms())
        .await?;
    staff.audit(state, "transfer_request", &case.id, Some(&format!("{} to {to}", t.id))).await;
    Ok((t, case))
}

/// The transfers offered to me and still pending, with their cases' numbers (audited as
/// `transfer_list` on each case).
pub async fn offered_to_me(state: &AppState, staff: &Staff) -> Result<Vec<(TransferRecord, CaseRecord)>, AppError> {
    let mut out = Vec::new();
    for t in state.store.cases().transfers_to(staff.id()).await? {
        if let Some(case) = state.store.cases().case(&t.case_id).await? {
            staff.audit(state, "transfer_list", &case.id, Some(&t.id)).await;
            out.push((t, case));
        }
    }
    Ok(out)
}

/// Accepts or refuses a transfer offered to me (anyone else: 404, audited); accepted, the case is
/// mine. `conflict` if it was decided already or the case changed hands meanwhile. Audited as
/// `transfer_accept` / `transfer_refuse`.
pub async fn decide(
    state: &AppState,
    staff: &Staff,
    id: &str,
    accept: bool,
    comment: Option<&str>,
) -> Result<(TransferRecord, CaseRecord), AppError> {
    let action = if accept { "transfer_accept" } else { "transfer_refuse" };
    let Some(t) = state.store.cases().transfer(id).await? else {
        return Err(hidden("transfer"));
    };
    if t.to_user_id != staff.id() {
        return Err(staff.refuse(state, action, &t.case_id, hidden("transfer")).await);
    }
    let comment = text("comment", comment)?;
    if !state.store.cases().decide_transfer(id, accept, comment.as_deref(), state.clock.now_ms()).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the transfer was decided already, or the case changed hands meanwhile"));
    }
    staff.audit(state, action, &t.case_id, Some(id)).await;
    let t = state.store.cases().transfer(id).await?.ok_or_else(|| hidden("transfer"))?;
    let case = state.store.cases().case(&t.case_id).await?.ok_or_else(|| hidden("case"))?;
    Ok((t, case))
}

/// A case's transfers and approval requests (whoever sees the case; audited as `approval_list`).
pub async fn of_case(
    state: &AppState,
    staff: &Staff,
    case_id: &str,
) -> Result<(CaseRecord, Vec<TransferRecord>, Vec<ApprovalRecord>), AppError> {
    let case = visible_case(state, staff, case_id, "approval_list").await?;
    let transfers = state.store.cases().transfers_of_case(&case.id).await?;
    let approvals = state.store.cases().approvals_of_case(&case.id).await?;
    staff.audit(state, "approval_list", &case.id, None).await;
    Ok((case, transfers, approvals))
}

/// Asks a supervisor to approve the `plan` or the `closure` (the case's managers; the opener 403,
/// others 404); one pending per kind (409). Audited as `approval_request`.
pub async fn request_approval(
    state: &AppState,
    staff: &Staff,
    case_id: &str,
    kind: &str,
    note: Option<&str>,
) -> Result<ApprovalRecord, AppError> {
    let case = visible_case(state, staff, case_id, "approval_request").await?;
    if !staff.manages_case(&case) {
        return Err(staff.refuse(state, "approval_request", case_id, AppError::forbidden("the case manager asks for approval")).await);
    }
    if kind != "plan" && kind != "closure" {
        return Err(AppError::bad_field("kind must be plan or closure"));
    }
    let note = text("note", note)?;
    let a = state.store.cases().request_approval(&case.id, kind, note.as_deref(), staff.id(), state.clock.now_ms()).await?;
    staff.audit(state, "approval_request", &case.id, Some(&format!("{kind} {}", a.id))).await;
    Ok(a)
}

/// Approves or returns a request (supervisors of the case's helpline and admins; a case manager 403,
/// others 404): `approved` or `returned`, a comment required when returned. `conflict` if decided
/// already. Audited as `approval_decide`.
pub async fn decide_approval(
    state: &AppState,
    staff: &Staff,
    id: &str,
    decision: &str,
    comment: Option<&str>,
) -> Result<ApprovalRecord, AppError> {
    let Some(a) = state.store.cases().approval(id).await? else {
        return Err(hidden("approval"));
    };
    let case = visible_case(state, staff, &a.case_id, "approval_decide").await?;
    if !staff.supervises(&case.helpline) {
        return Err(staff.refuse(state, "approval_decide", &case.id, AppError::forbidden("a supervisor of the helpline decides")).await);
    }
    let comment = text("comment", comment)?;
    match decision {
        "approved" => {}
        "returned" if comment.is_some() => {}
        "returned" => return Err(AppError::bad_field("a returned request needs a comment")),
        _ => return Err(AppError::bad_field("decision must be approved or returned")),
    }
    if !state.store.cases().decide_approval(id, decision, comment.as_deref(), staff.id(), state.clock.now_ms()).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the request was decided already"));
    }
    staff.audit(state, "approval_decide", &case.id, Some(&format!("{} {decision}", a.kind))).await;
    state.store.cases().approval(id).await?.ok_or_else(|| hidden("approval"))
}

/// Whether `staff` needs a supervisor's approval to move `case` from `from` to `to`, and of what: a
/// case manager (not a supervisor of the helpline) leaves the plan for monitoring only with the plan
/// approved, and closes a case only with its closure approved (the latest request of that kind).
pub async fn approval_needed(
    state: &AppState,
    staff: &Staff,
    case: &CaseRecord,
    from: Stage,
    to: Stage,
) -> Result<Option<&'static str>, AppError> {
    if staff.supervises(&case.helpline) {
        return Ok(None);
    }
    let kind = match (from, to) {
        (Stage::InterventionPlan, Stage::Monitoring) => "plan",
        (_, Stage::Closed) => "closure",
        _ => return Ok(None),
    };
    let approvals = state.store.cases().approvals_of_case(&case.id).await?;
    let approved = approvals.iter().rev().find(|a| a.kind == kind).is_some_and(|a| a.status == "approved");
    Ok(if approved { None } else { Some(kind) })
}

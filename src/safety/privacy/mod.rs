//! Privacy requests: the export of everything held on one contact or one case (access requests), and
//! the break-glass reveal of what is stored about a caller's identifier. Both are audited before they
//! answer: if the audit line cannot be written, nothing is shown.
//!
//! What a reveal can show, honestly: callers' numbers and addresses are never stored in clear (a call
//! keeps an HMAC of the number and at most its last two digits; a chat keeps an HMAC of the client
//! network), so a reveal cannot show a number. It shows the kind of identifier, the last two digits of
//! a number, the exchange's own reference of the call (gateway and call id, which the exchange's call
//! records can resolve where the law requires it), whether the same identifier reached the helplines
//! before and which contacts share it, and the blocks on it. See `docs/security.md` (Privacy).
//!
//! This module is the service (the rules and the store calls); [`http`] is its REST edge.

use serde_json::{json, Value};

use crate::protocol::rfc3339;
use crate::state::access::{check_text, hidden, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::audit::AuditQuery;
use crate::store::contacts::ContactRecord;
use crate::store::users::Role;

pub mod http;
pub use http::router;

/// Supervisors (of the object's helpline) and admins export; others get 403 (audited).
async fn exporter(state: &AppState, staff: &Staff, action: &str, target: &str) -> Result<(), AppError> {
    if matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        Ok(())
    } else {
        Err(staff.refuse(state, action, target, AppError::forbidden("supervisors and admins only")).await)
    }
}

/// The audit lines about one object, oldest first (who read or changed it, from where).
async fn audit_trail(state: &AppState, target: &str) -> Result<Vec<Value>, AppError> {
    let q = AuditQuery { target: Some(target.to_string()), limit: 1000, ..AuditQuery::default() };
    let mut lines = state.store.audit_log().audit_lines(&q).await?;
    lines.reverse();
    Ok(lines
        .iter()
        .map(|l| json!({ "at": rfc3339(l.at), "actor": l.actor, "action": l.action, "detail": l.detail, "source": l.source }))
        .collect())
}

/// Everything held on one contact.
async fn contact_export(state: &AppState, contact: &ContactRecord) -> Result<Value, AppError> {
    let id = contact.id.as_str();
    let now = state.clock.now_ms();
    let purged_at = state.store.retention().purged_at(id).await?;
    let messages: Vec<Value> = state
        .store
        .messages()
        .messages_after(id, 0)
        .await?
        .iter()
        .map(|m| json!({ "seq": m.seq, "sender": m.sender, "sender_id": m.sender_id, "text": m.body, "at": rfc3339(m.at) }))
        .collect();
    let call = state.store.calls().call_record(id).await?.map(|c| {
        json!({
            "gateway_id": c.gateway_id, "call_id": c.call_id, "dialled": c.dialled,
            "caller_number": "not stored (a keyed hash only)", "caller_last_digits": c.caller_last2,
            "offered_at": rfc3339(c.offered_at), "answered_at": c.answered_at.map(rfc3339), "ended_at": c.ended_at.map(rfc3339),
            "ended_by": c.ended_by, "outcome": c.outcome, "wait_ms": c.wait_ms, "talk_ms": c.talk_ms, "offline": c.offline,
        })
    });
    let form = state.store.forms().form(id).await?;
    let flag = state.store.abuse().flag_of(id).await?;
    let blocks: Vec<Value> =
        state.store.privacy().blocks_of_contact(id).await?.iter().map(|b| crate::safety::abuse::block_view(b, now)).collect();
    let cases: Vec<Value> =
        state.store.cases().cases_of_contact(id).await?.iter().map(|c| json!({ "case_id": c.id, "number": c.number })).collect();
    Ok(json!({
        "contact": {
            "id": contact.id, "channel": contact.channel, "helpline": contact.helpline, "language": contact.language,
            "state": contact.state, "queued_at": rfc3339(contact.queued_at),
            "first_offered_at": contact.first_offered_at.map(rfc3339), "answered_at": contact.answered_at.map(rfc3339),
            "ended_at": contact.ended_at.map(rfc3339), "counsellor_id": contact.counsellor_id, "end_reason": contact.end_reason,
            "senior_only": contact.senior_only,
            "caller_identifier": "not stored in clear (a keyed hash of the number or the client network)",
        },
        "erased_at": state.store.privacy().erased_at(id).await?.map(rfc3339),
        "conversation": {
            "deleted_by_retention_at": purged_at.map(rfc3339),
            "messages": messages,
        },
        "events": state.store.contacts().contact_events(id).await?,
        "call": call,
        "form": form.as_ref().map(|f| crate::casework::forms::view(id, Some(f))),
        "escalations": state.store.privacy().escalations_of_contact(id).await?,
        "flag": flag.as_ref().map(|f| crate::safety::abuse::flag_view(f, !blocks.is_empty())),
        "blocks": blocks,
        "placements": state.store.privacy().placements_of_contact(id).await?,
        "cases": cases,
        "audit": audit_trail(state, id).await?,
    }))
}

/// Everything held on one contact, for an access request: the record, the conversation (or when
/// retention deleted it), events, call record (never the number), form, escalations, flag, blocks,
/// placements, the cases it is linked to, and the audit trail. For supervisors of its helpline and
/// admins (403 for other roles, 404 out of scope; both audited); audited (`contact_export`) before it
/// answers. Returns `{exported_at, exported_by, export}`.
pub async fn export_contact(state: &AppState, staff: &Staff, id: &str) -> Result<Value, AppError> {
    exporter(state, staff, "contact_export", id).await?;
    let contact = match state.store.contacts().contact(id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(state, "contact_export", id, hidden("contact")).await),
    };
    let body = contact_export(state, &contact).await?;
    staff.audit_or_refuse(state, "contact_export", id, None).await?;
    Ok(json!({ "exported_at": rfc3339(state.clock.now_ms()), "exported_by": staff.id(), "export": body }))
}

/// Everything held on one case: the case, its person's identifying details (only for the case's own
/// roles and admins, as everywhere), entries, placements, the full export of every linked contact, and
/// the audit trail. Supervisors of its helpline and admins; audited (`case_export`) before it answers.
/// Returns `{exported_at, exported_by, export}`.
pub async fn export_case(state: &AppState, staff: &Staff, id: &str) -> Result<Value, AppError> {
    exporter(state, staff, "case_export", id).await?;
    let case = match state.store.cases().case(id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(state, "case_export", id, hidden("case")).await),
    };
    let person = if staff.sees_person(&case) {
        json!(state.store.cases().case_person(id).await?)
    } else {
        json!({ "withheld": "identifying details are shown only to the case's own roles and admins" })
    };
    let entries: Vec<crate::casework::cases::EntryView> =
        state.store.cases().case_entries(id).await?.iter().map(crate::casework::cases::entry_view).collect();
    let mut contacts = Vec::new();
    for contact_id in state.store.cases().case_contacts(id).await? {
        if let Some(contact) = state.store.contacts().contact(&contact_id).await? {
            contacts.push(contact_export(state, &contact).await?);
        }
    }
    let body = json!({
        "case": crate::casework::cases::case_view(&case),
        "person": person,
        "entries": entries,
        "placements": state.store.placements().placements_of_case(id).await?,
        "contacts": contacts,
        "audit": audit_trail(state, id).await?,
    });
    staff.audit_or_refuse(state, "case_export", id, None).await?;
    Ok(json!({ "exported_at": rfc3339(state.clock.now_ms()), "exported_by": staff.id(), "export": body }))
}

/// Only supervisors break the glass (admins and counsellors: 403, audited).
pub async fn revealer(state: &AppState, staff: &Staff, id: &str) -> Result<(), AppError> {
    if staff.user.role != Role::Supervisor {
        return Err(staff.refuse(state, "caller_reveal", id, AppError::forbidden("a break-glass reveal is for supervisors")).await);
    }
    Ok(())
}

/// Break-glass, for supervisors of the contact's helpline only: audited with the `reason`
/// (`caller_reveal`) before it answers. Shows what is stored about the caller's identifier (see the
/// module's documentation), never more.
pub async fn reveal(state: &AppState, staff: &Staff, id: &str, reason: &str) -> Result<Value, AppError> {
    revealer(state, staff, id).await?;
    let reason = check_text("reason", reason, 1000)?;
    let contact = match state.store.contacts().contact(id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(state, "caller_reveal", id, hidden("contact")).await),
    };
    staff.audit_or_refuse(state, "caller_reveal", id, Some(&reason)).await?;
    let now = state.clock.now_ms();
    let Some(identifier) = state.store.abuse().caller_identifier(id).await? else {
        return Ok(json!({
            "contact_id": id, "channel": contact.channel, "identifier": null,
            "explanation": "no identifier is stored for this caller (a withheld number, or a chat from before identifiers were kept)",
            "same_caller": [], "blocks": [],
        }));
    };
    let call = state.store.calls().call_record(id).await?;
    let same: Vec<_> = state
        .store
        .privacy()
        .contacts_with_identifier(identifier.kind, &identifier.hash)
        .await?
        .into_iter()
        .filter(|c| c.contact_id != id && staff.supervises(&c.helpline))
        .collect();
    let earlier = same.iter().filter(|c| c.queued_at < contact.queued_at).count();
    let same_view: Vec<Value> = same
        .iter()
        .map(|c| {
            json!({
                "contact_id": c.contact_id, "channel": c.channel, "helpline": c.helpline, "state": c.state,
                "queued_at": rfc3339(c.queued_at), "ended_at": c.ended_at.map(rfc3339),
                "conversation_deleted_at": c.purged_at.map(rfc3339),
            })
        })
        .collect();
    let blocks: Vec<Value> = state
        .store
        .privacy()
        .blocks_on(identifier.kind, &identifier.hash)
        .await?
        .iter()
        .filter(|b| staff.supervises(&b.helpline))
        .map(|b| crate::safety::abuse::block_view(b, now))
        .collect();
    let (kind, explanation) = if identifier.kind == "number" {
        (
            "caller number",
            "the number is not stored: only a keyed hash (which matches the same number again) and its last two digits. \
             The telephone exchange's own call records can resolve `exchange_reference` to the number where the law requires it.",
        )
    } else {
        (
            "chat network",
            "the client's address is not stored: only a keyed hash of its network (an IPv4 address or an IPv6 /64), which \
             matches the same network again; several people can share one network (a school, a mobile operator).",
        )
    };
    Ok(json!({
        "contact_id": id,
        "channel": contact.channel,
        "identifier": {
            "kind": kind,
            "stored_as": "HMAC-SHA256 with a server key",
            "last_digits": call.as_ref().and_then(|c| c.caller_last2.clone()),
        },
        "exchange_reference": call.as_ref().map(|c| json!({ "gateway_id": c.gateway_id, "call_id": c.call_id, "offered_at": rfc3339(c.offered_at) })),
        "explanation": explanation,
        "called_before": earlier > 0,
        "earlier_contacts": earlier,
        "same_caller": same_view,
        "blocks": blocks,
    }))
}

/// Erases contact `id` for a data subject's request, as `actor` (a user's id, or `cli`), for `reason`,
/// at `now`: first the record beside the key file (so a restore of an older backup erases it again),
/// then the redaction record in the audit log (`contact_erase`: who, when, why; never the data), then
/// the data ([`crate::store::erasures`]). None when there is no such contact.
pub async fn erase_contact(
    store: &crate::store::Store,
    actor: &str,
    source: &str,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<Option<crate::store::erasures::Erased>, EraseError> {
    use crate::store::erasures::{erasures_file, record_erasure, valid_id};
    if !valid_id(id) || store.contacts().contact(id).await?.is_none() {
        return Ok(None);
    }
    if let Some(key_file) = store.keys().path() {
        let record = erasures_file(key_file);
        record_erasure(&record, id, now).map_err(|e| EraseError::Record(format!("{}: {e}", record.display())))?;
    }
    store.audit_log().audit_from(now, actor, "contact_erase", Some(id), Some(reason), source).await?;
    Ok(store.privacy().erase_contact(id, now).await?)
}

/// Why an erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    /// The record beside the key file could not be written: nothing was erased.
    #[error("the record of erasures cannot be written ({0}); nothing was erased")]
    Record(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// `POST /api/v1/contacts/{id}/erase {reason}`: admins, and supervisors of the contact's helpline
/// (counsellors 403, other helplines 404; refusals audited). An open contact is refused (409
/// `conflict`: end it first). Returns what was removed.
pub async fn erase(state: &AppState, staff: &Staff, id: &str, reason: &str) -> Result<Value, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(state, "contact_erase", id, AppError::forbidden("supervisors and admins only")).await);
    }
    let reason = check_text("reason", reason, 1000)?;
    let contact = match state.store.contacts().contact(id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(state, "contact_erase", id, hidden("contact")).await),
    };
    if matches!(contact.state.as_str(), "queued" | "active") {
        return Err(AppError::new(crate::protocol::ErrorCode::Conflict, "the contact is still open: end it before erasing it"));
    }
    let now = state.clock.now_ms();
    let erased = match erase_contact(&state.store, staff.id(), &staff.source, id, &reason, now).await {
        Ok(Some(e)) => e,
        Ok(None) => return Err(hidden("contact")),
        Err(EraseError::Store(e)) => return Err(e.into()),
        Err(EraseError::Record(why)) => {
            tracing::error!(%why, "the record of erasures cannot be written; erasure refused");
            return Err(AppError::new(crate::protocol::ErrorCode::Unavailable, "the erasure cannot be recorded now; try again"));
        }
    };
    Ok(json!({ "contact_id": id, "erased_at": rfc3339(now), "erased_by": staff.id(), "removed": erased }))
}

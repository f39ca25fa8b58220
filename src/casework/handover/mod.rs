//! A counsellor's transfer and consult (issue 24): she hands over a conversation she holds to a
//! colleague or a helpline's queue, cold (at once) or warm (after briefing a colleague, who accepts),
//! and asks a colleague about a contact without handing it over. The rules are [`rules`] (no I/O);
//! this service checks them against the store, stores the handover and the consult messages (sealed),
//! asks the router to move the contact (the same step a supervisor's transfer takes), tells both
//! counsellors, and audits. The caller never sees a consult: it is not a message of the conversation.

pub mod rules;

use serde::Serialize;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use crate::chat::engine_task::{contact_key, counsellor_key, EngineCommand, InterveneError};
use crate::protocol::{ErrorCode, HandoverView, ServerEvent};
use crate::routing::{Input, Refusal as EngineRefusal, TransferTarget};
use crate::state::access::{check_text, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::contacts::ContactRecord;
use crate::store::handovers::{ConsultRecord, HandoverRecord};
use crate::store::users::{Role, User};
use rules::{Answer, Destination, Plan, State};

/// The longest reason a transfer takes, and the longest consult message, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// What a counsellor's `transfer` frame asks.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub contact_id: String,
    pub counsellor_id: Option<String>,
    pub helpline: Option<String>,
    pub reason: Option<String>,
    pub warm: bool,
}

fn refused(r: rules::Refusal) -> AppError {
    let (code, message) = r.code();
    AppError::new(code, message)
}

/// Sends an intervention (a supervisor's, or a counsellor's handover) to the router and waits for it
/// to be carried out and stored; a refusal is answered with its stable code.
pub async fn intervene(state: &AppState, input: Input) -> Result<(), AppError> {
    let (reply, answer) = oneshot::channel();
    let stopping = || AppError::new(ErrorCode::Unavailable, "the router is stopping");
    if !state.engine.send(EngineCommand::Intervene { input, reply }).await {
        return Err(stopping());
    }
    match answer.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(InterveneError::NotStored)) => Err(AppError::new(ErrorCode::Unavailable, "the database did not take it; nothing changed")),
        Ok(Err(InterveneError::Refused(refusal))) => {
            let (code, message) = match refusal {
                EngineRefusal::UnknownContact => (ErrorCode::UnknownContact, "the contact has ended"),
                EngineRefusal::NotWaiting => (ErrorCode::NotAllowed, "the contact is no longer waiting"),
                EngineRefusal::NotAssigned => (ErrorCode::NotAllowed, "the contact is not in a conversation"),
                EngineRefusal::NotHeld => (ErrorCode::UnknownContact, "no conversation of yours with that contact"),
                EngineRefusal::TargetUnavailable => (ErrorCode::NotAllowed, "that counsellor is not connected, not available, or full"),
            };
            Err(AppError::new(code, message))
        }
        Err(_) => Err(stopping()),
    }
}

/// Who is in conversation with the contact (None when it waits, ended, or does not exist).
fn holder(contact: Option<&ContactRecord>) -> Option<&str> {
    contact.filter(|c| c.state == "active").and_then(|c| c.counsellor_id.as_deref())
}

/// A colleague she may hand over to or consult: an enabled counsellor account (`not_found` otherwise).
async fn colleague(state: &AppState, id: &str) -> Result<User, AppError> {
    match state.store.accounts().user(id).await? {
        Some(u) if u.role == Role::Counsellor && !u.disabled => Ok(u),
        _ => Err(AppError::new(ErrorCode::NotFound, "no such counsellor")),
    }
}

async fn name_of(state: &AppState, id: &str) -> String {
    match state.store.accounts().user(id).await {
        Ok(Some(u)) => u.display_name,
        _ => "Counsellor".into(),
    }
}

/// Tells both counsellors a handover concerns its state.
async fn tell(state: &AppState, h: &HandoverRecord, now: State) {
    let view = HandoverView {
        contact_id: h.contact_id.clone(),
        state: now.as_str().into(),
        warm: h.warm,
        from_counsellor_id: h.from_id.clone(),
        from: name_of(state, &h.from_id).await,
        to_counsellor_id: h.to_id.clone(),
        helpline: h.helpline.clone(),
        reason: h.reason.clone(),
    };
    let frame = ServerEvent::Handover(view);
    state.hub.event_to_counsellor(&h.from_id, &frame);
    if let Some(to) = &h.to_id {
        state.hub.event_to_counsellor(to, &frame);
    }
}

/// Asks the router to move the contact of handover `h` (decided `done`); on a refusal it is `failed`.
async fn carry_out(state: &AppState, h: &HandoverRecord) -> Result<(), AppError> {
    let (Some(contact), Some(by)) = (contact_key(&h.contact_id), counsellor_key(&h.from_id)) else {
        return Err(refused(rules::Refusal::NotHeld));
    };
    let to = match (&h.helpline, &h.to_id) {
        (Some(helpline), _) => TransferTarget::Helpline(helpline.clone()),
        (None, Some(to)) => {
            TransferTarget::Counsellor(counsellor_key(to).ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such counsellor"))?)
        }
        (None, None) => return Err(refused(rules::Refusal::BadTarget)),
    };
    match intervene(state, Input::HandOver { by, contact, to }).await {
        Ok(()) => {
            tell(state, h, State::Done).await;
            Ok(())
        }
        Err(err) => {
            state.store.contacts().decide_handover(&h.id, State::Done.as_str(), State::Failed.as_str(), state.clock.now_ms()).await?;
            tell(state, h, State::Failed).await;
            Err(err)
        }
    }
}

/// A counsellor's `transfer`: checked, stored, then carried out at once (cold) or asked of the
/// briefed colleague (warm, `pending`). Audited (`transfer`, `transfer_request`).
pub async fn transfer(state: &AppState, staff: &Staff, req: TransferRequest) -> Result<(), AppError> {
    let reason = req.reason.as_deref().map(|r| check_text("reason", r, MAX_REASON_CHARS)).transpose()?;
    let contacts = state.store.contacts();
    let contact = contacts.contact(&req.contact_id).await?;
    let pending = contacts.handovers(&req.contact_id).await?.iter().any(|h| h.state == State::Pending.as_str());
    let plan = rules::plan(staff.id(), holder(contact.as_ref()), pending, req.counsellor_id.as_deref(), req.helpline.as_deref(), req.warm);
    let Plan { destination, briefed } = match plan {
        Ok(plan) => plan,
        Err(r) => return Err(staff.refuse(state, "transfer", &req.contact_id, refused(r)).await),
    };
    if let Some(h) = &req.helpline {
        if !state.helplines.iter().any(|x| &x.name == h) {
            return Err(AppError::new(ErrorCode::UnknownHelpline, "no such helpline"));
        }
    }
    if let Some(c) = &req.counsellor_id {
        colleague(state, c).await?;
    }
    let warm = briefed.is_some();
    let (to_id, helpline) = match destination {
        Destination::Colleague(c) => (Some(c), None),
        Destination::Queue(h) => (briefed, Some(h)),
    };
    let record = HandoverRecord {
        id: String::new(),
        contact_id: req.contact_id.clone(),
        from_id: staff.id().to_string(),
        to_id,
        helpline,
        reason,
        warm,
        state: if warm { State::Pending } else { State::Done }.as_str().into(),
        created_at: state.clock.now_ms(),
    };
    let h = contacts.add_handover(record).await?;
    let detail =
        format!("to {}{}", h.to_id.as_deref().unwrap_or("-"), h.helpline.as_deref().map(|x| format!(" queue {x}")).unwrap_or_default());
    if warm {
        staff.audit(state, "transfer_request", &h.contact_id, Some(&detail)).await;
        tell(state, &h, State::Pending).await;
        return Ok(());
    }
    carry_out(state, &h).await?;
    staff.audit(state, "transfer", &h.contact_id, Some(&detail)).await;
    Ok(())
}

/// An answer to the warm transfer pending on `contact_id`: accepted (then carried out), declined
/// (it stays with the counsellor who asked), or cancelled by her. Audited.
pub async fn answer(state: &AppState, staff: &Staff, contact_id: &str, answer: Answer) -> Result<(), AppError> {
    let contacts = state.store.contacts();
    let Some(h) = contacts.handovers(contact_id).await?.into_iter().rev().find(|h| h.state == State::Pending.as_str()) else {
        return Err(refused(rules::Refusal::NotPending));
    };
    let to = h.to_id.clone().unwrap_or_default();
    let next = rules::answer(State::Pending, &h.from_id, &to, staff.id(), answer).map_err(refused)?;
    let now = state.clock.now_ms();
    if !contacts.decide_handover(&h.id, State::Pending.as_str(), next.as_str(), now).await? {
        // Someone answered first.
        return Err(refused(rules::Refusal::NotPending));
    }
    let action = match answer {
        Answer::Accept => "transfer_accept",
        Answer::Decline => "transfer_decline",
        Answer::Cancel => "transfer_cancel",
    };
    staff.audit(state, action, contact_id, None).await;
    if next == State::Done {
        return carry_out(state, &h).await;
    }
    tell(state, &h, next).await;
    Ok(())
}

/// A consult message from `staff` to colleague `to` about `contact_id` (see [`rules::may_consult`]):
/// stored sealed, sent to both of them, never to the caller. Audited (`consult`).
pub async fn consult(state: &AppState, staff: &Staff, contact_id: &str, to: &str, text: &str) -> Result<(), AppError> {
    let text = check_text("text", text, MAX_REASON_CHARS)?;
    let contacts = state.store.contacts();
    let contact = contacts.contact(contact_id).await?;
    let holder = holder(contact.as_ref());
    let mut asked: Vec<String> =
        contacts.consults(contact_id).await?.into_iter().filter(|c| Some(c.from_id.as_str()) == holder).map(|c| c.to_id).collect();
    asked.extend(contacts.handovers(contact_id).await?.into_iter().filter(|h| Some(h.from_id.as_str()) == holder).filter_map(|h| h.to_id));
    let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
    if let Err(r) = rules::may_consult(staff.id(), to, holder, &asked) {
        return Err(staff.refuse(state, "consult", contact_id, refused(r)).await);
    }
    colleague(state, to).await?;
    let record = ConsultRecord {
        id: String::new(),
        contact_id: contact_id.to_string(),
        from_id: staff.id().to_string(),
        to_id: to.to_string(),
        body: text,
        created_at: state.clock.now_ms(),
    };
    let c = contacts.add_consult(record).await?;
    staff.audit(state, "consult", contact_id, Some(to)).await;
    let frame = ServerEvent::Consult(c.view(staff.user.display_name.clone()));
    state.hub.event_to_counsellor(&c.from_id, &frame);
    state.hub.event_to_counsellor(&c.to_id, &frame);
    Ok(())
}

/// A colleague, as a counsellor's console lists her to transfer to or consult.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Colleague {
    pub counsellor_id: String,
    pub name: String,
    /// `available`, `away` or `offline` (the status she chose).
    pub status: String,
    /// First-line helplines, then backup ones.
    pub helplines: Vec<String>,
    pub languages: Vec<String>,
    /// She could take the contact named in the request now (see [`rules::could_take`]); false when
    /// none was named.
    pub eligible: bool,
}

/// The colleagues signed in now (a socket open, not removed), for a counsellor's transfer or
/// consult; with `contact_id` (a conversation she holds: `unknown_contact` otherwise, audited), each
/// one says whether she could take it. Read from the router (the leader's, in cluster mode: a
/// follower answers `unavailable`).
pub async fn colleagues(state: &AppState, staff: &Staff, contact_id: Option<&str>) -> Result<Vec<Colleague>, AppError> {
    if staff.user.role != Role::Counsellor {
        return Err(AppError::forbidden("counsellors only"));
    }
    let contact = match contact_id {
        Some(id) => {
            let contact = state.store.contacts().contact(id).await?;
            if holder(contact.as_ref()) != Some(staff.id()) {
                return Err(staff.refuse(state, "colleagues", id, refused(rules::Refusal::NotHeld)).await);
            }
            contact
        }
        None => None,
    };
    let snapshot = state
        .engine
        .snapshot()
        .await
        .ok_or_else(|| AppError::new(ErrorCode::Unavailable, "the router's view is not on this node; try again"))?;
    let online: Vec<_> = snapshot.counsellors.into_iter().filter(|c| c.connected && !c.removed).collect();
    let ids: Vec<String> = online.iter().map(|c| crate::chat::engine_task::counsellor_str(c.id)).collect();
    let users = state.store.accounts().users_by_ids(&ids).await?;
    let mut out: Vec<Colleague> = online
        .iter()
        .zip(ids)
        .filter(|(_, id)| id != staff.id())
        .filter_map(|(view, id)| {
            let user = users.iter().find(|u| u.id == id && !u.disabled)?;
            Some(Colleague {
                counsellor_id: id,
                name: user.display_name.clone(),
                status: match view.status {
                    crate::routing::Status::Available => "available",
                    crate::routing::Status::Away => "away",
                    crate::routing::Status::Offline => "offline",
                }
                .into(),
                helplines: view.helplines.iter().chain(&view.backup_helplines).cloned().collect(),
                languages: view.languages.iter().cloned().collect(),
                eligible: contact.as_ref().is_some_and(|c| rules::could_take(view, &c.helpline, &c.language)),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.counsellor_id.cmp(&b.counsellor_id)));
    Ok(out)
}

//! Calls handled outside the system (a backup phone during an outage), recorded afterwards by the
//! counsellor who took them, so statistics stay complete: the service behind `POST /api/v1/contacts`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::caller_identity;
use crate::chat::exchange::{Phone, REPEAT_DAYS};
use crate::protocol::parse_rfc3339;
use crate::state::access::serves;
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::calls::CallRecord;
use crate::store::contacts::NewContactRecord;
use crate::store::new_id;
use crate::store::users::User;

/// A call handled outside the system, as a counsellor reports it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineContact {
    /// Only `call`.
    channel: String,
    helpline: String,
    #[serde(default)]
    language: Option<String>,
    /// The caller's number, if known: only its hash and last two digits are kept.
    #[serde(default)]
    caller: Option<String>,
    /// When the phone rang, when it was answered (absent: not answered), when it ended.
    started_at: String,
    #[serde(default)]
    answered_at: Option<String>,
    ended_at: String,
}

/// Why a call was not recorded.
pub enum Refused {
    /// Refused as a whole (not the counsellor's helpline, the database).
    Error(AppError),
    /// These fields are not valid (each with why).
    Fields(serde_json::Map<String, serde_json::Value>),
}

impl From<AppError> for Refused {
    fn from(err: AppError) -> Refused {
        Refused::Error(err)
    }
}

/// Records `req` as a call `user` (a counsellor) handled offline, for a helpline they serve; audited.
pub async fn record(state: &AppState, user: &User, req: OfflineContact) -> Result<CallRecord, Refused> {
    if !serves(user, &req.helpline) && state.helplines.iter().any(|h| h.name == req.helpline) {
        return Err(AppError::forbidden("you record calls only for the helplines you serve").into());
    }
    let now = state.clock.now_ms();
    let mut fields = serde_json::Map::new();
    let mut bad = |field: &str, why: &str| {
        fields.insert(field.to_string(), why.into());
    };
    if req.channel != "call" {
        bad("channel", "only \"call\" can be recorded offline");
    }
    let helpline = state.helplines.iter().find(|h| h.name == req.helpline);
    if helpline.is_none() {
        bad("helpline", "unknown helpline");
    }
    let language = req.language.clone().or_else(|| helpline.and_then(|h| h.languages.first().cloned())).unwrap_or_default();
    if helpline.is_some_and(|h| !h.languages.contains(&language)) {
        bad("language", "not a language of this helpline");
    }
    let time = |t: &str| parse_rfc3339(t);
    let started = time(&req.started_at);
    let answered = req.answered_at.as_deref().map(time);
    let ended = time(&req.ended_at);
    if started.is_none() {
        bad("started_at", "expected an RFC 3339 time");
    }
    if answered == Some(None) {
        bad("answered_at", "expected an RFC 3339 time");
    }
    if ended.is_none() {
        bad("ended_at", "expected an RFC 3339 time");
    }
    let (started, answered, ended) = (started.unwrap_or(0), answered.flatten(), ended.unwrap_or(0));
    if ended > now + 60_000 {
        bad("ended_at", "is in the future");
    }
    if started > ended || answered.is_some_and(|a| a < started || a > ended) {
        bad("ended_at", "times must be in order: started_at <= answered_at <= ended_at");
    }
    if now.saturating_sub(started) > REPEAT_DAYS * 24 * 3600 * 1000 {
        bad("started_at", "more than 30 days ago");
    }
    if !fields.is_empty() {
        return Err(Refused::Fields(fields));
    }
    let (hash, last2) = caller_identity(state, req.caller.as_deref()).await?;
    let id = new_id();
    let record = NewContactRecord {
        id: id.clone(),
        channel: Phone::KIND.into(),
        helpline: req.helpline.clone(),
        language,
        priority: 0,
        resume_token_hash: crate::auth::token_hash(&crate::auth::random_secret()),
        queued_at: started,
    };
    let outcome = crate::store::calls::outcome(started, answered.is_some(), answered, ended, false);
    let call = CallRecord {
        contact_id: id.clone(),
        gateway_id: None,
        call_id: format!("offline-{id}"),
        dialled: None,
        caller_hash: hash,
        caller_last2: last2,
        offered_at: started,
        answered_at: answered,
        ended_at: Some(ended),
        ended_by: None,
        outcome: Some(outcome.to_string()),
        wait_ms: Some(answered.unwrap_or(ended) - started),
        talk_ms: answered.map(|a| ended - a),
        offline: true,
    };
    state.store.calls().record_offline_call(&record, &call, &user.id, now).await.map_err(AppError::from)?;
    state.store.audit_log().audit(now, &user.id, "record_offline_call", Some(&id), None).await.map_err(AppError::from)?;
    Ok(call)
}

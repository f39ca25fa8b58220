//! Referrals with a life, the service: a case referred to a service of the registry (its case
//! manager, the helpline's supervisors, admins), listed by whoever sees the case, and moved through
//! its statuses (`rules::ReferralStatus`: sent → accepted | declined, accepted → completed) by the
//! case's managers or by the provider itself, with the token it was sent in the webhook. The provider
//! is told of each new referral and each change made on the helpline's side by a POST to its webhook
//! (`service_webhooks`), sent in the background; every access is audited with the case as target.
//! The REST edge is [`crate::casework::http::referrals`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::casework::ReferralStatus;
use crate::protocol::{rfc3339, ErrorCode};
use crate::state::access::{check_text, hidden, visible_case, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::cases::CaseRecord;
use crate::store::referrals::{NewReferral, ReferralChange, ReferralRecord};

/// The prefix of a provider's token (so the edge tells it from a staff access token).
pub const PROVIDER_TOKEN_PREFIX: &str = "rfp_";
/// The longest reason or feedback.
const MAX_TEXT: usize = 4000;
/// A due date at most this far ahead.
const MAX_DUE_AHEAD_MS: i64 = 366 * crate::casework::DAY_MS;
/// How long the server waits for a provider's webhook to answer.
const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A referral as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReferralView {
    pub id: String,
    pub case_id: String,
    pub service_id: String,
    /// `sent`, `accepted`, `declined` or `completed`.
    pub status: String,
    /// The statuses it may change to next.
    pub allowed_next: Vec<String>,
    /// Why the case is referred (what the provider needs to know; no identifying details).
    pub reason: String,
    /// When the service is due (RFC 3339), if set.
    pub due_at: Option<String>,
    pub due_at_ms: Option<i64>,
    /// The provider's answer (or what the case manager recorded of it).
    pub feedback: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
    /// A user id, or `provider`.
    pub updated_by: String,
    pub updated_at_ms: i64,
}

pub fn referral_view(r: &ReferralRecord) -> ReferralView {
    let next = ReferralStatus::parse(&r.status).map(|s| s.next().iter().map(|n| n.as_str().to_string()).collect()).unwrap_or_default();
    ReferralView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        service_id: r.service_id.clone(),
        status: r.status.clone(),
        allowed_next: next,
        reason: r.reason.clone(),
        due_at: r.due_at.map(rfc3339),
        due_at_ms: r.due_at,
        feedback: r.feedback.clone(),
        created_by: r.created_by.clone(),
        created_at_ms: r.created_at,
        updated_by: r.updated_by.clone(),
        updated_at_ms: r.updated_at,
    }
}

/// Who changes a referral: staff (by their access token) or the provider (by the token of its webhook).
pub enum Actor<'a> {
    Staff(&'a Staff),
    Provider { token: &'a str, source: String },
}

/// A change asked for (`PATCH /api/v1/referrals/{id}`).
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub status: Option<String>,
    pub due_at_ms: Option<i64>,
    pub feedback: Option<String>,
}

fn check_due(due: Option<i64>, now: i64) -> Result<Option<i64>, AppError> {
    match due {
        Some(ms) if ms <= now || ms > now + MAX_DUE_AHEAD_MS => Err(AppError::bad_field("due_at_ms must be in the future, within a year")),
        other => Ok(other),
    }
}

/// The case of `case_id` if `staff` sees it (404 otherwise) and manages it (403 otherwise), audited.
async fn managed_case(state: &AppState, staff: &Staff, case_id: &str, action: &str) -> Result<CaseRecord, AppError> {
    let case = visible_case(state, staff, case_id, action).await?;
    if !staff.manages_case(&case) {
        return Err(staff.refuse(state, action, case_id, AppError::forbidden("the case manager or a supervisor refers a case")).await);
    }
    Ok(case)
}

/// Refers a case to a service of the registry (its managers), `sent` at once; the provider is told
/// through its webhook (in the background). Audited as `referral_add` on the case.
pub async fn create(
    state: &AppState,
    staff: &Staff,
    case_id: &str,
    service_id: &str,
    reason: &str,
    due_at_ms: Option<i64>,
) -> Result<ReferralRecord, AppError> {
    let case = managed_case(state, staff, case_id, "referral_add").await?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let now = state.clock.now_ms();
    let due_at = check_due(due_at_ms, now)?;
    let Some(service) = state.store.placements().service(service_id).await? else {
        return Err(AppError::bad_field("service_id is not a service of the registry"));
    };
    if case.stage == "closed" {
        return Err(AppError::new(ErrorCode::Conflict, "the case is closed"));
    }
    let token = format!("{PROVIDER_TOKEN_PREFIX}{}", crate::auth::random_token(32));
    let new = NewReferral {
        case_id: case.id.clone(),
        service_id: service.id.clone(),
        reason,
        due_at,
        provider_token_hash: crate::auth::token_hash(&token),
        created_by: staff.id().to_string(),
        at: now,
    };
    let referral = state.store.referrals().add(&new).await?;
    staff.audit(state, "referral_add", &case.id, Some(&format!("{} to {}", referral.id, service.id))).await;
    notify(state, &case, &referral, &service.name, Some(token.as_str()), "referral").await;
    Ok(referral)
}

/// A case's referrals (whoever sees the case; audited as `referral_list`).
pub async fn list(state: &AppState, staff: &Staff, case_id: &str) -> Result<Vec<ReferralRecord>, AppError> {
    let case = visible_case(state, staff, case_id, "referral_list").await?;
    let list = state.store.referrals().of_case(&case.id).await?;
    staff.audit(state, "referral_list", &case.id, None).await;
    Ok(list)
}

/// Changes a referral: its status (in order: `conflict` with `allowed` otherwise), its feedback, and
/// (staff only) its due date. Staff: the case's managers (others 404 / 403, audited); the provider:
/// the token its webhook carried (a wrong one: 404, as if there were no such referral). A change on
/// the helpline's side is sent to the provider too. Audited on the case as `referral_update`.
pub async fn update(state: &AppState, actor: Actor<'_>, id: &str, patch: Patch) -> Result<ReferralRecord, AppError> {
    let Some(referral) = state.store.referrals().referral(id).await? else {
        return Err(hidden("referral"));
    };
    let by = match &actor {
        Actor::Staff(staff) => {
            managed_case(state, staff, &referral.case_id, "referral_update").await?;
            staff.id().to_string()
        }
        Actor::Provider { token, source } => {
            if crate::auth::token_hash(token) != referral.provider_token_hash {
                let now = state.clock.now_ms();
                let _ = state
                    .store
                    .audit_log()
                    .audit_from(now, "provider", "referral_update_denied", Some(&referral.case_id), Some(id), source)
                    .await;
                return Err(hidden("referral"));
            }
            if patch.due_at_ms.is_some() {
                return Err(AppError::forbidden("the due date is set by the case manager"));
            }
            "provider".to_string()
        }
    };
    let now = state.clock.now_ms();
    let due_at = check_due(patch.due_at_ms, now)?;
    let feedback = patch.feedback.as_deref().map(|f| check_text("feedback", f, MAX_TEXT)).transpose()?;
    let status = match patch.status.as_deref() {
        None => None,
        Some(s) => {
            let Some(to) = ReferralStatus::parse(s) else {
                let all: Vec<&str> = ReferralStatus::ALL.iter().map(|s| s.as_str()).collect();
                return Err(AppError::bad_field(format!("status must be one of {}", all.join(", "))));
            };
            let from = ReferralStatus::parse(&referral.status).unwrap_or(ReferralStatus::Sent);
            if let Err(allowed) = from.check(to) {
                let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                return Err(AppError::new(ErrorCode::Conflict, format!("a referral {} cannot become {}", from.as_str(), to.as_str()))
                    .with("allowed", serde_json::json!(allowed)));
            }
            Some(to.as_str().to_string())
        }
    };
    if status.is_none() && due_at.is_none() && feedback.is_none() {
        return Err(AppError::bad_field("nothing to change: give status, feedback or due_at_ms"));
    }
    let change = ReferralChange { from: referral.status.clone(), status: status.clone(), due_at, feedback, by: by.clone(), at: now };
    if !state.store.referrals().change(id, &change).await? {
        return Err(AppError::new(ErrorCode::Conflict, "the referral changed meanwhile; read it again"));
    }
    let detail = format!("{id} {}", status.as_deref().unwrap_or("(status kept)"));
    match &actor {
        Actor::Staff(staff) => staff.audit(state, "referral_update", &referral.case_id, Some(&detail)).await,
        Actor::Provider { source, .. } => {
            let _ = state
                .store
                .audit_log()
                .audit_from(now, "provider", "referral_update", Some(&referral.case_id), Some(&detail), source)
                .await;
        }
    }
    let updated = state.store.referrals().referral(id).await?.ok_or_else(|| hidden("referral"))?;
    if let Actor::Staff(_) = actor {
        if let (Some(case), Some(service)) =
            (state.store.cases().case(&updated.case_id).await?, state.store.placements().service(&updated.service_id).await?)
        {
            notify(state, &case, &updated, &service.name, None, "referral_update").await;
        }
    }
    Ok(updated)
}

/// Sets (or, with None, removes) the webhook a service is told of referrals at: admins only (403
/// otherwise); an `http://` URL of at most 2000 characters (the server's client has no TLS yet: an
/// `https://` endpoint is reached through a TLS-terminating proxy). Audited as `service_webhook`.
pub async fn set_webhook(state: &AppState, staff: &Staff, service_id: &str, url: Option<&str>) -> Result<(), AppError> {
    if !staff.is_admin() {
        return Err(staff.refuse(state, "service_webhook", service_id, AppError::forbidden("admins only")).await);
    }
    if state.store.placements().service(service_id).await?.is_none() {
        return Err(hidden("service"));
    }
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    if let Some(u) = url {
        if u.starts_with("https://") {
            return Err(AppError::bad_field("https:// webhooks need TLS for outgoing requests, which this server does not have yet: give the http:// address of a TLS-terminating proxy"));
        }
        let ok = u.starts_with("http://") && u.len() > "http://".len() && u.len() <= 2000 && !u.chars().any(char::is_whitespace);
        if !ok {
            return Err(AppError::bad_field("url must be an http:// URL of at most 2000 characters"));
        }
    }
    state.store.referrals().set_webhook(service_id, url, state.clock.now_ms()).await?;
    staff.audit(state, "service_webhook", service_id, Some(if url.is_some() { "set" } else { "removed" })).await;
    Ok(())
}

/// The JSON a provider's webhook gets: the referral (no identifying details: the case's number and
/// pseudonym), and with a new referral the token and the address to answer at.
fn notice(case: &CaseRecord, r: &ReferralRecord, service_name: &str, token: Option<&str>, kind: &str) -> serde_json::Value {
    let mut body = serde_json::json!({
        "type": kind,
        "referral_id": r.id,
        "status": r.status,
        "service_id": r.service_id,
        "service_name": service_name,
        "case_number": case.number,
        "person_label": case.person_label,
        "helpline": case.helpline,
        "district": case.district,
        "reason": r.reason,
        "due_at": r.due_at.map(rfc3339),
        "feedback": r.feedback,
    });
    if let Some(token) = token {
        body["respond"] = serde_json::json!({
            "method": "PATCH",
            "path": format!("/api/v1/referrals/{}", r.id),
            "authorization": format!("Bearer {token}"),
            "body": {"status": "accepted | declined | completed", "feedback": "…"},
        });
    }
    body
}

/// Posts the notice to the service's webhook, if it has one, in the background; the outcome is
/// audited on the case as `referral_notify` (`delivered <status>` or `failed …`), actor `system`.
async fn notify(state: &AppState, case: &CaseRecord, r: &ReferralRecord, service_name: &str, token: Option<&str>, kind: &str) {
    let url = match state.store.referrals().webhook(&r.service_id).await {
        Ok(Some(url)) => url,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %err, "a service's webhook cannot be read");
            return;
        }
    };
    let body = notice(case, r, service_name, token, kind);
    let (store, clock, case_id, referral_id) = (state.store.clone(), state.clock, case.id.clone(), r.id.clone());
    tokio::spawn(async move {
        let sent = async {
            let client = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build().map_err(|e| e.to_string())?;
            let res = client.post(&url).json(&body).send().await.map_err(|e| e.to_string())?;
            Ok::<u16, String>(res.status().as_u16())
        }
        .await;
        let detail = match sent {
            Ok(code) if (200..300).contains(&code) => format!("{referral_id} delivered {code}"),
            Ok(code) => format!("{referral_id} failed: answered {code}"),
            Err(e) => format!("{referral_id} failed: {e}"),
        };
        if let Err(err) =
            store.audit_log().audit_from(clock.now_ms(), "system", "referral_notify", Some(&case_id), Some(&detail), "webhook").await
        {
            tracing::error!(error = %err, "audit write failed");
        }
    });
}

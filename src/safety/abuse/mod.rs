//! Abusive contacts: counsellors flag them; supervisors block the caller's keyed identifier for a set time (refused calmly) or route them to senior counsellors instead; the check at the door for chats and calls.
//!
//! A block is made from a flagged contact, so nobody sees or types an identifier: for a call it is
//! the caller number's HMAC (`calls.caller_hash`), for a chat the HMAC of the client network (the
//! IPv4 address or IPv6 /64 that [`crate::auth::guard`] counts), keyed with a server secret and stored on the
//! contact. A block holds for the contact's helpline only, until it expires or is lifted. An
//! abusive-seeming caller may still be a victim: mode `senior` keeps them reachable, by the senior
//! counsellors only.
//!
//! This module is the service (the rules and the store calls); [`http`] is its REST edge.

use std::net::IpAddr;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::casework::escalation::Names;
use crate::protocol::{rfc3339, ErrorCode, ServerEvent};
use crate::state::access::{check_text, hidden, Staff};
use crate::state::error::AppError;
use crate::state::AppState;
use crate::store::abuse::{BlockRecord, FlagRecord};
use crate::store::new_id;
use crate::store::users::Role;

pub mod http;
pub use http::router;

/// Name of the HMAC key for chat callers' networks in `server_secrets`.
const ADDRESS_KEY: &str = "caller_address_hmac";
/// Shortest and longest block (a block is reviewed again when it runs out).
pub const MIN_BLOCK_SECS: i64 = 60;
pub const MAX_BLOCK_SECS: i64 = 90 * 24 * 3600;

/// What a chat's caller is told when a block refuses the chat, in the widget's languages.
pub fn unavailable_message(language: &str) -> &'static str {
    match language {
        "ro" => "Nu vă putem prelua conversația acum. Dacă sunteți în pericol, sunați la 112.",
        "ru" => "Сейчас мы не можем принять ваш чат. Если вы в опасности, позвоните 112.",
        "uk" => "Зараз ми не можемо прийняти ваш чат. Якщо ви в небезпеці, телефонуйте 112.",
        _ => "We cannot take your chat right now. If you are in danger, call 112.",
    }
}

/// The HMAC-SHA256 of a client network under the server's key, hex (the address is never stored).
pub fn address_hash(key: &str, network: IpAddr) -> String {
    crate::auth::keyed::caller_hash(key, &format!("net:{network}"))
}

/// What the door says to a new contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Door {
    /// Queue it; only seniors may take it when `senior_only`.
    Open { senior_only: bool },
    /// A block refuses it (calmly).
    Refused { block_id: String },
}

impl Door {
    fn of(block: Option<BlockRecord>) -> Door {
        match block {
            Some(b) if b.mode == "block" => Door::Refused { block_id: b.id },
            Some(_) => Door::Open { senior_only: true },
            None => Door::Open { senior_only: false },
        }
    }
}

/// A new chat from `network` to `helpline`: its caller's keyed identifier (to store on the contact),
/// and what the door says. If the database cannot answer, the chat is let in (a caller is never
/// refused because of a fault) and the error logged.
pub async fn chat_door(state: &AppState, network: IpAddr, helpline: &str, now: i64) -> (Option<String>, Door) {
    let key = match state.store.secrets().secret_or_create(ADDRESS_KEY, now, crate::auth::random_secret).await {
        Ok(k) => k,
        Err(err) => {
            tracing::error!(error = %err, "reading the caller-address key failed; the chat is let in");
            return (None, Door::Open { senior_only: false });
        }
    };
    let hash = address_hash(&key, network);
    match state.store.abuse().block_for("address", &hash, helpline, now).await {
        Ok(block) => (Some(hash), Door::of(block)),
        Err(err) => {
            tracing::error!(error = %err, "checking blocks failed; the chat is let in");
            (Some(hash), Door::Open { senior_only: false })
        }
    }
}

/// A new call from the number hashed `hash` to `helpline`: what the door says (a fault lets it in).
pub async fn call_door(state: &AppState, hash: Option<&str>, helpline: &str, now: i64) -> Door {
    let Some(hash) = hash else { return Door::Open { senior_only: false } };
    match state.store.abuse().block_for("number", hash, helpline, now).await {
        Ok(block) => Door::of(block),
        Err(err) => {
            tracing::error!(error = %err, "checking blocks failed; the call is let in");
            Door::Open { senior_only: false }
        }
    }
}

// ----- flags ---------------------------------------------------------------------------------

/// What a flag needs (the `flag_abusive` frame, or `POST /api/v1/contacts/{id}/flag`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagRequest {
    /// Why (not blank; at most 1000 characters).
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub reason: String,
}

/// Flags a contact as abusive: the counsellor who handled it, or a supervisor of its helpline.
/// Stored (a contact keeps its first flag), audited, and the helpline's supervisors alerted.
/// Anyone else gets `unknown_contact` (audited).
pub async fn flag(state: &AppState, staff: &Staff, contact_id: &str, reason: &str) -> Result<FlagRecord, AppError> {
    let reason = check_text("reason", reason, 1000)?;
    let contact = match state.store.contacts().contact(contact_id).await? {
        Some(c) if c.counsellor_id.as_deref() == Some(staff.id()) || staff.supervises(&c.helpline) => c,
        _ => {
            let refused = AppError::new(ErrorCode::UnknownContact, "no such contact, or not one you handled");
            return Err(staff.refuse(state, "flag_abusive", contact_id, refused).await);
        }
    };
    let now = state.clock.now_ms();
    let record = FlagRecord {
        id: new_id(),
        contact_id: contact.id.clone(),
        helpline: contact.helpline.clone(),
        flagged_by: staff.id().to_string(),
        reason,
        at: now,
    };
    let stored = state.store.abuse().flag_contact(&record).await?;
    staff.audit(state, "flag_abusive", &contact.id, Some(&stored.id)).await;
    if stored.id == record.id {
        state.hub.event_to_supervisors(
            Some(&contact.helpline),
            &ServerEvent::Alert {
                kind: "abusive_contact".into(),
                helpline: Some(contact.helpline.clone()),
                contact_id: Some(contact.id.clone()),
                counsellor_id: Some(staff.id().to_string()),
                message: "a counsellor flagged this contact as abusive: review it (block, or route to seniors)".into(),
                at: rfc3339(now),
            },
        );
    }
    Ok(stored)
}

pub(crate) fn flag_view(f: &FlagRecord, blocked: bool) -> serde_json::Value {
    serde_json::json!({
        "flag_id": f.id, "contact_id": f.contact_id, "helpline": f.helpline, "flagged_by": f.flagged_by,
        "reason": f.reason, "at": rfc3339(f.at), "blocked": blocked,
    })
}

/// Flagged contacts since `days` ago (default 30, at most 366) in the helplines `staff` supervises,
/// newest first, each saying whether a block made from it is in force (supervisors and admins; audited).
pub async fn flags(state: &AppState, staff: &Staff, days: Option<i64>) -> Result<Vec<serde_json::Value>, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(state, "flags_read", "contact_flags", AppError::forbidden("supervisors and admins only")).await);
    }
    let now = state.clock.now_ms();
    let since = now.saturating_sub(days.unwrap_or(30).clamp(1, 366).saturating_mul(24 * 3600 * 1000));
    let blocks = state.store.abuse().blocks(now, false).await?;
    let flags: Vec<serde_json::Value> = state
        .store
        .abuse()
        .flags_since(since)
        .await?
        .iter()
        .filter(|f| staff.supervises(&f.helpline))
        .map(|f| flag_view(f, blocks.iter().any(|b| b.contact_id == f.contact_id)))
        .collect();
    staff.audit(state, "flags_read", "contact_flags", None).await;
    Ok(flags)
}

// ----- blocks --------------------------------------------------------------------------------

/// What a block needs (`POST /api/v1/blocks`): made from a flagged contact; the identifier is the contact's caller's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    #[schema(min_length = 1)]
    pub contact_id: String,
    /// Seconds (60 to 7,776,000, 90 days), or a number with a unit: `"30m"`, `"12h"`, `"7d"`, in that range.
    #[schema(value_type = BlockDuration)]
    pub duration: serde_json::Value,
    /// Why (not blank; at most 1000 characters).
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub reason: String,
    /// `block` (refused calmly; the default) or `senior` (routed to senior counsellors only).
    #[serde(default)]
    #[schema(pattern = "^(block|senior)$")]
    pub mode: Option<String>,
}

/// A block's duration as the OpenAPI document describes it: seconds (60 to 7,776,000, 90 days), or a
/// number with `m`, `h` or `d` (the handler reads the JSON value with [`parse_duration`]).
pub struct BlockDuration;

impl utoipa::PartialSchema for BlockDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(MIN_BLOCK_SECS)).maximum(Some(MAX_BLOCK_SECS));
        let with_unit = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]{1,7}[mhd]?$"));
        OneOfBuilder::new()
            .item(seconds)
            .item(with_unit)
            .description(Some("seconds, or a number with m, h or d (\"30m\", \"12h\", \"7d\"), from 60 s to 90 days"))
            .into()
    }
}

impl utoipa::ToSchema for BlockDuration {}

/// A duration in seconds from `3600`, `"3600"`, `"30m"`, `"12h"` or `"7d"`, within the allowed range.
pub fn parse_duration(v: &serde_json::Value) -> Result<i64, AppError> {
    let bad = || {
        AppError::bad_field(format!(
            "duration: seconds, or a number with m, h or d (\"30m\", \"12h\", \"7d\"), from {MIN_BLOCK_SECS} s to {} days",
            MAX_BLOCK_SECS / 86_400
        ))
    };
    let secs = match v {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        serde_json::Value::String(s) => {
            let s = s.trim();
            let (digits, unit) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], Some(c)),
                _ => (s, None),
            };
            let n: i64 = digits.trim().parse().map_err(|_| bad())?;
            let scale = match unit {
                None | Some('s') => 1,
                Some('m') => 60,
                Some('h') => 3600,
                Some('d') => 86_400,
                Some(_) => return Err(bad()),
            };
            n.checked_mul(scale).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if !(MIN_BLOCK_SECS..=MAX_BLOCK_SECS).contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

/// A block as supervisors see it: never the identifier.
pub(crate) fn block_view(b: &BlockRecord, now: i64) -> serde_json::Value {
    serde_json::json!({
        "block_id": b.id, "contact_id": b.contact_id, "helpline": b.helpline,
        "identifier": if b.kind == "number" { "caller number" } else { "chat network" },
        "mode": b.mode, "reason": b.reason, "reviewer": b.reviewer,
        "created_at": rfc3339(b.created_at), "expires_at": rfc3339(b.expires_at),
        "lifted_at": b.lifted_at.map(rfc3339), "lifted_by": b.lifted_by, "lift_reason": b.lift_reason,
        "active": b.active(now), "attempts": b.attempts,
    })
}

/// A supervisor of the contact's helpline (or an admin) blocks its caller, for that helpline, for the
/// request's duration (audited). The contact must be flagged: `conflict` otherwise, or when its caller
/// has no identifier (a withheld number); a contact out of `staff`'s helplines is hidden (audited).
pub async fn block(state: &AppState, staff: &Staff, req: BlockRequest) -> Result<BlockRecord, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(state, "block_create", &req.contact_id, AppError::forbidden("supervisors and admins only")).await);
    }
    let mode = req.mode.as_deref().unwrap_or("block");
    if !matches!(mode, "block" | "senior") {
        return Err(AppError::bad_field("mode must be \"block\" or \"senior\""));
    }
    let secs = parse_duration(&req.duration)?;
    let reason = check_text("reason", &req.reason, 1000)?;
    let contact = match state.store.contacts().contact(&req.contact_id).await? {
        Some(c) if staff.supervises(&c.helpline) => c,
        _ => return Err(staff.refuse(state, "block_create", &req.contact_id, hidden("contact")).await),
    };
    if state.store.abuse().flag_of(&contact.id).await?.is_none() {
        return Err(AppError::new(ErrorCode::Conflict, "only a flagged contact's caller can be blocked; flag it first"));
    }
    let Some(identifier) = state.store.abuse().caller_identifier(&contact.id).await? else {
        return Err(AppError::new(ErrorCode::Conflict, "this contact's caller cannot be recognised (withheld number)"));
    };
    let now = state.clock.now_ms();
    let block = BlockRecord {
        id: new_id(),
        kind: identifier.kind.to_string(),
        identifier_hash: identifier.hash,
        mode: mode.to_string(),
        helpline: contact.helpline.clone(),
        contact_id: contact.id.clone(),
        reason,
        reviewer: staff.id().to_string(),
        created_at: now,
        expires_at: now.saturating_add(secs.saturating_mul(1000)),
        lifted_at: None,
        lifted_by: None,
        lift_reason: None,
        attempts: 0,
    };
    state.store.abuse().create_block(&block).await?;
    let detail = format!("{} {} until {}", block.id, block.mode, rfc3339(block.expires_at));
    staff.audit(state, "block_create", &contact.id, Some(&detail)).await;
    Ok(block)
}

/// Blocks in force (or, with `all`, every block) in the helplines `staff` supervises, as supervisors
/// see them (supervisors and admins; audited).
pub async fn blocks(state: &AppState, staff: &Staff, all: bool) -> Result<Vec<serde_json::Value>, AppError> {
    if !matches!(staff.user.role, Role::Supervisor | Role::Admin) {
        return Err(staff.refuse(state, "blocks_read", "caller_blocks", AppError::forbidden("supervisors and admins only")).await);
    }
    let now = state.clock.now_ms();
    let all_blocks = state.store.abuse().blocks(now, all).await?;
    let mine: Vec<&BlockRecord> = all_blocks.iter().filter(|b| staff.supervises(&b.helpline)).collect();
    // Who flagged the contact, and the display names, so a dashboard shows people, not ids.
    let mut flags = Vec::with_capacity(mine.len());
    for b in &mine {
        flags.push(state.store.abuse().flag_of(&b.contact_id).await?);
    }
    let mut people: Vec<String> = Vec::with_capacity(mine.len() * 3);
    for (b, flag) in mine.iter().zip(&flags) {
        people.push(b.reviewer.clone());
        people.extend(b.lifted_by.clone());
        people.extend(flag.as_ref().map(|f| f.flagged_by.clone()));
    }
    let names = Names::lookup(&state.store, people).await;
    let list = mine
        .iter()
        .zip(&flags)
        .map(|(b, flag)| {
            let mut view = block_view(b, now);
            view["helpline_name"] = names.helpline(&b.helpline).cloned().into();
            view["reviewer_name"] = names.person(&b.reviewer).cloned().into();
            view["lifted_by_name"] = b.lifted_by.as_deref().and_then(|id| names.person(id)).cloned().into();
            view["flag"] = match flag {
                Some(f) => serde_json::json!({
                    "flagged_by": f.flagged_by, "flagged_by_name": names.person(&f.flagged_by), "reason": f.reason, "at": rfc3339(f.at),
                }),
                None => serde_json::Value::Null,
            };
            view
        })
        .collect();
    staff.audit(state, "blocks_read", "caller_blocks", None).await;
    Ok(list)
}

/// Lifts a block early, with an optional reason kept with it (audited): hidden (404) for a block out
/// of `staff`'s helplines, `conflict` when it was already lifted. Returns the lifted block.
pub async fn lift(state: &AppState, staff: &Staff, id: &str, reason: Option<&str>) -> Result<BlockRecord, AppError> {
    let reason = match reason {
        Some(r) if !r.trim().is_empty() => Some(check_text("reason", r, 1000)?),
        _ => None,
    };
    let block = match state.store.abuse().block(id).await? {
        Some(b) if staff.supervises(&b.helpline) => b,
        _ => return Err(staff.refuse(state, "block_lift", id, hidden("block")).await),
    };
    let now = state.clock.now_ms();
    if !state.store.abuse().lift_block(&block.id, staff.id(), reason.as_deref(), now).await? {
        return Err(AppError::new(ErrorCode::Conflict, "this block was already lifted"));
    }
    staff.audit(state, "block_lift", &block.contact_id, Some(&block.id)).await;
    state.store.abuse().block(&block.id).await?.ok_or_else(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_take_units_and_stay_in_range() {
        assert_eq!(parse_duration(&json!(3600)).unwrap(), 3600);
        assert_eq!(parse_duration(&json!("30m")).unwrap(), 1800);
        assert_eq!(parse_duration(&json!("12h")).unwrap(), 43_200);
        assert_eq!(parse_duration(&json!(" 7d ")).unwrap(), 604_800);
        assert_eq!(parse_duration(&json!("90")).unwrap(), 90);
        for bad in [json!(5), json!("91d"), json!("-1h"), json!("1w"), json!("h"), json!(null), json!(1.5), json!("9999999999999999d")] {
            assert_eq!(parse_duration(&bad).unwrap_err().code, ErrorCode::BadField, "{bad}");
        }
    }

    #[test]
    fn address_hashes_are_keyed_and_hide_the_address() {
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let h = address_hash("k1", a);
        assert_eq!(h, address_hash("k1", a));
        assert_ne!(h, address_hash("k2", a));
        assert_ne!(h, address_hash("k1", "203.0.113.8".parse().unwrap()));
        assert_eq!(h.len(), 64);
    }

    #[test]
    fn the_calm_message_names_the_emergency_number_in_every_language() {
        for l in ["ro", "ru", "uk", "en", "xx"] {
            assert!(unavailable_message(l).contains("112"), "{l}");
        }
    }
}

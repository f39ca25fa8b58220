//! Between the engine's vocabulary and the rest of the server, without I/O: ids, settings and
//! accounts in; durable changes, frames, conversation events and exchange commands out.

use std::collections::BTreeSet;

use crate::chat::channel::{Channels, WebChat};
use crate::chat::exchange::{CallInfo, REPEAT_DAYS};
use crate::chat::hub::Audience;
use crate::chat::relay::RelayCommand;
use crate::protocol::{rfc3339, CounsellorStatus, EarlierContact, ErrorCode, Repeat, ServerEvent, TelephonyCommand};
use crate::routing::away::MISSED_OFFERS;
use crate::routing::{
    ContactId, CounsellorId, CounsellorProfile, EndReason, EngineConfig, HelplineConfig, Input, NewContact, Output, Rejection,
    RevokeReason, Status, StatusReason, WrapUpEnd,
};
use crate::store::commands::CommandChange;
use crate::store::contacts::{Change, ContactRecord};
use crate::store::helplines::Helpline;
use crate::store::users::{AwayNow, User};

/// Converts between the database's UUID strings and the engine's numeric ids.
pub fn parse_uuid(s: &str) -> Option<u128> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.as_u128())
}
pub fn contact_key(s: &str) -> Option<ContactId> {
    parse_uuid(s).map(ContactId)
}
pub fn counsellor_key(s: &str) -> Option<CounsellorId> {
    parse_uuid(s).map(CounsellorId)
}
pub fn contact_str(id: ContactId) -> String {
    uuid::Uuid::from_u128(id.0).to_string()
}
pub fn counsellor_str(id: CounsellorId) -> String {
    uuid::Uuid::from_u128(id.0).to_string()
}

/// The engine's view of a helpline's settings.
pub fn engine_config(helplines: &[Helpline]) -> EngineConfig {
    EngineConfig {
        helplines: helplines
            .iter()
            .map(|h| HelplineConfig {
                name: h.name.clone(),
                ring_timeout_ms: h.ring_timeout_ms,
                backup_after_ms: h.backup_after_ms,
                sla_at_risk_ms: h.sla_at_risk_ms,
                sla_target_ms: h.sla_target_ms,
                caller_grace_ms: h.caller_grace_ms,
                chat_while_on_call: h.chat_while_on_call,
                calls_first: h.calls_first,
                wrapup_limit_ms: h.wrapup_limit_ms,
                away_reasons: h.away_reasons.clone(),
                triage_priority: h.triage_priority.map(|p| i32::try_from(p).unwrap_or(crate::routing::triage::PRIORITY_DANGER)),
                ring_offline_callers: h.ring_offline_callers,
            })
            .collect(),
        misses_before_away: 2,
    }
}

/// The engine's view of an account.
pub fn profile_of(user: &User) -> Option<CounsellorProfile> {
    Some(CounsellorProfile {
        id: counsellor_key(&user.id)?,
        helplines: user.helplines.iter().cloned().collect::<BTreeSet<_>>(),
        backup_helplines: user.backup_helplines.iter().cloned().collect(),
        languages: user.languages.iter().cloned().collect(),
        capacity: u32::try_from(user.capacity.max(0)).unwrap_or(3),
        takes_calls: user.extension.as_deref().is_some_and(|e| !e.trim().is_empty()),
        senior: user.senior,
    })
}

pub fn status_of(s: CounsellorStatus) -> Status {
    match s {
        CounsellorStatus::Available => Status::Available,
        CounsellorStatus::Away => Status::Away,
        CounsellorStatus::Offline => Status::Offline,
    }
}

pub fn counsellor_status(s: Status) -> CounsellorStatus {
    match s {
        Status::Available => CounsellorStatus::Available,
        Status::Away => CounsellorStatus::Away,
        Status::Offline => CounsellorStatus::Offline,
    }
}

/// The input that restores an open contact from the database after a (re)start: in conversation
/// with its counsellor, or waiting with its original arrival time. None when its ids do not parse.
pub fn restore(c: &ContactRecord, now: i64, channels: &Channels) -> Option<Input> {
    let channel = channels.kind_or_web(&c.channel);
    let contact = NewContact {
        id: contact_key(&c.id)?,
        channel: channel.rules(),
        helpline: c.helpline.clone(),
        language: c.language.clone(),
        priority: i32::try_from(c.priority).unwrap_or(0),
        queued_at: c.queued_at,
        // A chat's caller must come back on a socket; a phone caller is still on the line at the exchange.
        caller_connected: channel.present_after_restart(),
        senior_only: c.senior_only,
    };
    Some(match c.counsellor_id.as_deref().and_then(counsellor_key) {
        Some(counsellor) if c.state == "active" => {
            Input::ContactRestoredAssigned { contact, counsellor, answered_at: c.answered_at.unwrap_or(now) }
        }
        _ => Input::ContactQueued(contact),
    })
}

/// A counsellor's restored state: her away reason and since when, her slots in wrap-up and until when.
type Restored = (Option<(String, i64)>, Vec<(ContactId, i64)>);

/// What a (re)start restores of counsellors from the database, at `now`: each one's wrap-ups not
/// over (`wrapups`: contact, counsellor, until) and away reason (`away`: her last status change, while
/// away) as one [`Input::RestoreCounsellor`] each; a wrap-up whose limit passed while the server was
/// down is not restored but ended, as of its limit (handle time runs to it, not to the restart).
pub fn restore_counsellors(now: i64, wrapups: &[(String, String, i64)], away: &[AwayNow]) -> (Vec<Input>, Vec<Change>) {
    let mut by: std::collections::BTreeMap<CounsellorId, Restored> = Default::default();
    let mut ended = Vec::new();
    for (contact, counsellor, until) in wrapups {
        let (Some(x), Some(c)) = (contact_key(contact), counsellor_key(counsellor)) else { continue };
        if *until <= now {
            let reason = wrapup_end(WrapUpEnd::Limit);
            ended.push(Change::WrapUpEnded { contact: contact.clone(), counsellor: counsellor.clone(), reason, at: *until });
        } else {
            by.entry(c).or_default().1.push((x, *until));
        }
    }
    for a in away {
        let Some(c) = counsellor_key(&a.user_id) else { continue };
        // Her own reason; the engine's after missed offers; none when a supervisor set her away.
        let reason = a.away_reason.clone().or_else(|| (a.reason.as_deref() == Some(MISSED_OFFERS)).then(|| MISSED_OFFERS.to_string()));
        if let Some(reason) = reason {
            by.entry(c).or_default().0 = Some((reason, a.at));
        }
    }
    let inputs = by.into_iter().map(|(counsellor, (away, wrapups))| Input::RestoreCounsellor { counsellor, away, wrapups }).collect();
    (inputs, ended)
}

pub fn end_reason(r: EndReason) -> &'static str {
    match r {
        EndReason::CallerEnded => "caller_ended",
        EndReason::CounsellorEnded => "counsellor_ended",
        EndReason::CallerLost => "caller_lost",
    }
}

/// For a `SetStatus` (from the counsellor, or `reason`: a supervisor): the durable change if it
/// changes the status the engine holds (`before`; None: a counsellor it does not know, nothing at
/// all), and the confirmation frame to the counsellor.
pub fn status_change(
    before: Option<Status>,
    input: &Input,
    reason: Option<&'static str>,
    now: i64,
) -> (Vec<Change>, Vec<(String, ServerEvent)>) {
    let Input::SetStatus { counsellor, status } = input else { return (Vec::new(), Vec::new()) };
    let Some(before) = before else { return (Vec::new(), Vec::new()) };
    let mut changes = Vec::new();
    if before != *status {
        changes.push(Change::CounsellorStatus {
            counsellor: counsellor_str(*counsellor),
            status: counsellor_status(*status).as_str(),
            reason,
            at: now,
        });
    }
    let confirm = ServerEvent::Status { status: counsellor_status(*status), reason: reason.map(str::to_string) };
    (changes, vec![(counsellor_str(*counsellor), confirm)])
}

/// For a `SetAway` the engine took (no `AwayRefused` among its `outputs`; `known`: the engine knows
/// the counsellor): the durable change and the confirmation frame, which names the reason.
pub fn away_change(input: &Input, outputs: &[Output], known: bool, now: i64) -> (Vec<Change>, Vec<(String, ServerEvent)>) {
    let Input::SetAway { counsellor, reason } = input else { return (Vec::new(), Vec::new()) };
    if !known || outputs.iter().any(|o| matches!(o, Output::AwayRefused { .. })) {
        return (Vec::new(), Vec::new());
    }
    let change = Change::Away { counsellor: counsellor_str(*counsellor), reason: reason.clone(), at: now };
    let confirm = ServerEvent::Status { status: CounsellorStatus::Away, reason: Some(reason.clone()) };
    (vec![change], vec![(counsellor_str(*counsellor), confirm)])
}

/// The event line of a caller's connection dropping or coming back.
pub fn presence_event(contact: ContactId, online: bool, now: i64) -> Change {
    Change::Event {
        contact: contact_str(contact),
        at: now,
        kind: if online { "caller_reconnected" } else { "caller_disconnected" },
        counsellor: None,
        detail: None,
    }
}

/// The durable record of an output, if it has one.
pub fn change_of(now: i64, output: &Output) -> Option<Change> {
    Some(match output {
        Output::Offer { contact, counsellor, expires_at, as_backup, .. } => Change::Offered {
            contact: contact_str(*contact),
            counsellor: counsellor_str(*counsellor),
            at: now,
            expires_at: *expires_at,
            as_backup: *as_backup,
        },
        Output::OfferRevoked { contact, counsellor, reason } => Change::OfferClosed {
            contact: contact_str(*contact),
            counsellor: counsellor_str(*counsellor),
            outcome: if *reason == RevokeReason::Expired { "expired" } else { "revoked" },
            at: now,
        },
        Output::OfferDeclined { contact, counsellor } => {
            Change::OfferClosed { contact: contact_str(*contact), counsellor: counsellor_str(*counsellor), outcome: "declined", at: now }
        }
        Output::Assigned { contact, counsellor, answered_at } => {
            Change::Assigned { contact: contact_str(*contact), counsellor: counsellor_str(*counsellor), at: *answered_at }
        }
        Output::StatusChanged { counsellor, status, reason } => Change::CounsellorStatus {
            counsellor: counsellor_str(*counsellor),
            status: counsellor_status(*status).as_str(),
            reason: Some(match reason {
                StatusReason::MissedOffers => "missed_offers",
            }),
            at: now,
        },
        Output::SlaAtRisk { contact, waited_ms } => Change::Event {
            contact: contact_str(*contact),
            at: now,
            kind: "sla_at_risk",
            counsellor: None,
            detail: Some(waited_ms.to_string()),
        },
        Output::SlaBreached { contact, waited_ms } => Change::Event {
            contact: contact_str(*contact),
            at: now,
            kind: "sla_breached",
            counsellor: None,
            detail: Some(waited_ms.to_string()),
        },
        Output::BackupOverflow { contact } => {
            Change::Event { contact: contact_str(*contact), at: now, kind: "backup_overflow", counsellor: None, detail: None }
        }
        Output::Ended { contact, reason, abandoned, .. } => {
            Change::Ended { contact: contact_str(*contact), at: now, reason: end_reason(*reason), abandoned: *abandoned }
        }
        Output::Transferred { contact, from, to, helpline } => Change::Transferred {
            contact: contact_str(*contact),
            from: counsellor_str(*from),
            to: to.map(counsellor_str),
            helpline: helpline.clone(),
            at: now,
        },
        Output::WrapUp { counsellor, contact, until } => {
            Change::WrapUp { contact: contact_str(*contact), counsellor: counsellor_str(*counsellor), until: *until, at: now }
        }
        Output::WrapUpEnded { counsellor, contact, reason } => Change::WrapUpEnded {
            contact: contact_str(*contact),
            counsellor: counsellor_str(*counsellor),
            reason: wrapup_end(*reason),
            at: now,
        },
        Output::Triaged { contact, danger, priority, .. } => {
            Change::Triaged { contact: contact_str(*contact), danger: *danger, priority: i64::from(*priority), at: now }
        }
        Output::Positions { .. } | Output::Rejected { .. } | Output::Refused { .. } | Output::AwayRefused { .. } => return None,
    })
}

/// How a wrap-up ended, as stored and sent.
pub fn wrapup_end(r: WrapUpEnd) -> &'static str {
    match r {
        WrapUpEnd::Ready => "ready",
        WrapUpEnd::Limit => "limit",
    }
}

/// Whom an output tells, once its step is committed.
#[derive(Debug)]
pub enum Notice {
    /// A frame to a counsellor's sockets.
    Counsellor(String, ServerEvent),
    /// A frame to the supervisors who may see this helpline (None: all).
    Supervisors(Audience, ServerEvent),
    /// A conversation event for the relay.
    Relay(RelayCommand),
}

/// What the frames of an output need that the output does not say.
#[derive(Debug)]
pub struct Facts<'a> {
    /// An offer's contact's channel (its kind, see [`crate::chat::channel`]).
    pub channel: &'static str,
    /// An offer's call, if it is one.
    pub call: Option<&'a CallInfo>,
    /// The earlier contacts of a repeat caller an offer may show (already audited).
    pub earlier: Vec<EarlierContact>,
    /// An SLA alert's helpline.
    pub helpline: Option<String>,
    /// A status change's counsellor's helplines (first-line and backup): who hears of it.
    pub counsellor_helplines: Vec<String>,
}

impl Default for Facts<'_> {
    fn default() -> Self {
        Facts { channel: WebChat::KIND, call: None, earlier: Vec::new(), helpline: None, counsellor_helplines: Vec::new() }
    }
}

/// What an output tells whom, in order (nothing for the outputs that only leave a record, and for
/// positions, which the task sends once per batch).
pub fn notices(now: i64, output: Output, facts: Facts<'_>) -> Vec<Notice> {
    match output {
        Output::Offer { contact, counsellor, helpline, language, queued_at, expires_at, as_backup, caller_online } => {
            let call = facts.call;
            let frame = ServerEvent::Offer {
                contact_id: contact_str(contact),
                helpline,
                language,
                waited_ms: (now - queued_at).max(0),
                expires_in_ms: (expires_at - now).max(0),
                backup: as_backup,
                channel: facts.channel.into(),
                caller_last2: call.and_then(|c| c.caller_last2.clone()),
                repeat: call.filter(|c| c.repeat > 0).map(|c| Repeat { contacts: c.repeat, days: REPEAT_DAYS }),
                earlier: facts.earlier,
                caller_online,
            };
            vec![Notice::Counsellor(counsellor_str(counsellor), frame)]
        }
        Output::OfferRevoked { contact, counsellor, reason } => {
            let reason = match reason {
                RevokeReason::Expired => "expired",
                RevokeReason::ContactGone => "contact_gone",
                RevokeReason::CounsellorUnavailable => "unavailable",
                RevokeReason::Moved => "moved",
                RevokeReason::CallerAway => "caller_away",
            };
            let frame = ServerEvent::OfferRevoked { contact_id: contact_str(contact), reason: reason.into() };
            vec![Notice::Counsellor(counsellor_str(counsellor), frame)]
        }
        Output::Assigned { contact, counsellor, .. } => {
            vec![Notice::Relay(RelayCommand::Assigned { contact: contact_str(contact), counsellor: counsellor_str(counsellor) })]
        }
        Output::StatusChanged { counsellor, status, reason } => {
            let reason = match reason {
                StatusReason::MissedOffers => "missed_offers",
            };
            let alert = ServerEvent::Alert {
                kind: "counsellor_away".into(),
                helpline: None,
                contact_id: None,
                counsellor_id: Some(counsellor_str(counsellor)),
                message: "set away after two offers in a row rang out".into(),
                at: rfc3339(now),
            };
            let frame = ServerEvent::Status { status: counsellor_status(status), reason: Some(reason.into()) };
            // Only the supervisors of the counsellor's helplines hear of it (none named: nobody does).
            let audience = Audience::Of(facts.counsellor_helplines);
            vec![Notice::Supervisors(audience, alert), Notice::Counsellor(counsellor_str(counsellor), frame)]
        }
        Output::SlaAtRisk { contact, waited_ms } | Output::SlaBreached { contact, waited_ms } => {
            let breached = matches!(output, Output::SlaBreached { .. });
            let alert = ServerEvent::Alert {
                kind: if breached { "wait_15s" } else { "wait_10s" }.into(),
                helpline: facts.helpline.clone(),
                contact_id: Some(contact_str(contact)),
                counsellor_id: None,
                message: format!("waiting {} s without an answer", waited_ms / 1000),
                at: rfc3339(now),
            };
            vec![Notice::Supervisors(Audience::of(facts.helpline.as_deref()), alert)]
        }
        Output::Ended { contact, reason, .. } => {
            vec![Notice::Relay(RelayCommand::Ended { contact: contact_str(contact), reason: end_reason(reason).to_string() })]
        }
        Output::Transferred { contact, from, to, helpline } => vec![Notice::Relay(RelayCommand::Transferred {
            contact: contact_str(contact),
            from: counsellor_str(from),
            to: to.map(counsellor_str),
            helpline,
        })],
        Output::Rejected { counsellor, contact, rejection } => {
            let (code, message) = match rejection {
                Rejection::NoSuchOffer => (ErrorCode::NoSuchOffer, "that offer is no longer ringing for you"),
                Rejection::UnknownContact => (ErrorCode::UnknownContact, "no such open contact"),
                Rejection::NotAssigned => (ErrorCode::UnknownContact, "that contact is not assigned to you"),
                Rejection::UnknownCounsellor => (ErrorCode::NotAllowed, "you are not set up to take contacts"),
            };
            vec![Notice::Counsellor(counsellor_str(counsellor), ServerEvent::error_about(code, message, contact_str(contact)))]
        }
        Output::WrapUp { counsellor, contact, until } => {
            let frame = ServerEvent::WrapUp { contact_id: contact_str(contact), ends_in_ms: (until - now).max(0) };
            vec![Notice::Counsellor(counsellor_str(counsellor), frame)]
        }
        Output::WrapUpEnded { counsellor, contact, reason } => {
            let frame = ServerEvent::WrapUpEnded { contact_id: contact_str(contact), reason: wrapup_end(reason).into() };
            vec![Notice::Counsellor(counsellor_str(counsellor), frame)]
        }
        Output::AwayRefused { counsellor, reason } => {
            let message = format!("{reason:?} is not an away reason of your helplines");
            vec![Notice::Counsellor(counsellor_str(counsellor), ServerEvent::error(ErrorCode::UnknownAwayReason, message))]
        }
        Output::Triaged { contact, helpline, danger: true, .. } => {
            let alert = ServerEvent::Alert {
                kind: "danger".into(),
                helpline: Some(helpline.clone()),
                contact_id: Some(contact_str(contact)),
                counsellor_id: None,
                message: "a caller answered yes to \"are you in danger right now?\"".into(),
                at: rfc3339(now),
            };
            vec![Notice::Supervisors(Audience::Of(vec![helpline]), alert)]
        }
        Output::OfferDeclined { .. }
        | Output::Positions { .. }
        | Output::BackupOverflow { .. }
        | Output::Refused { .. }
        | Output::Triaged { danger: false, .. } => Vec::new(),
    }
}

/// The contact an output is about, if one (not for positions, nor a counsellor's status).
pub fn contact_of(output: &Output) -> Option<ContactId> {
    Some(match output {
        Output::Offer { contact, .. }
        | Output::OfferRevoked { contact, .. }
        | Output::OfferDeclined { contact, .. }
        | Output::Assigned { contact, .. }
        | Output::SlaAtRisk { contact, .. }
        | Output::SlaBreached { contact, .. }
        | Output::BackupOverflow { contact }
        | Output::Ended { contact, .. }
        | Output::Transferred { contact, .. }
        | Output::Rejected { contact, .. }
        | Output::Refused { contact, .. }
        | Output::WrapUp { contact, .. }
        | Output::WrapUpEnded { contact, .. }
        | Output::Triaged { contact, .. } => *contact,
        Output::Positions { .. } | Output::StatusChanged { .. } | Output::AwayRefused { .. } => return None,
    })
}

/// What a routing output means for a call's commands to its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStep {
    /// Pending commands of these kinds are stale.
    Stale(&'static [&'static str]),
    /// The offer stopped ringing unanswered: `cancel`.
    Cancel,
    /// Put the call through to this counsellor: `connect`.
    Connect(CounsellorId),
}

/// The call step of an output, if any (for a call; the caller checks it is one): `cancel` when an
/// offer stops ringing unanswered, `connect` when the call is assigned or transferred to a
/// counsellor; a call offered again or moved back to a queue makes a pending `connect` stale, and
/// an ended call every pending command.
pub fn call_step(output: &Output) -> Option<(ContactId, CallStep)> {
    Some(match output {
        Output::Offer { contact, .. } => (*contact, CallStep::Stale(&["connect"])),
        Output::OfferRevoked { contact, reason, .. } if *reason != RevokeReason::ContactGone => (*contact, CallStep::Cancel),
        Output::OfferDeclined { contact, .. } => (*contact, CallStep::Cancel),
        Output::Assigned { contact, counsellor, .. } => (*contact, CallStep::Connect(*counsellor)),
        Output::Transferred { contact, to: Some(to), .. } => (*contact, CallStep::Connect(*to)),
        Output::Transferred { contact, to: None, .. } => (*contact, CallStep::Stale(&["connect"])),
        Output::Ended { contact, .. } => (*contact, CallStep::Stale(crate::store::commands::ALL_KINDS)),
        _ => return None,
    })
}

/// The command change of a call step at `now`; a `connect` needs the counsellor's `extension`
/// (None: it has none, and there is no command).
pub fn call_command(call: &CallInfo, contact: ContactId, now: i64, step: CallStep, extension: Option<String>) -> Option<CommandChange> {
    let id = Some(contact_str(contact));
    Some(match step {
        CallStep::Stale(kinds) => {
            CommandChange::Supersede { gateway_id: call.gateway_id.clone(), call_id: call.call_id.clone(), kinds, at: now }
        }
        CallStep::Cancel => CommandChange::Issue(crate::chat::exchange::new_command(call, id, now, &["connect"], |command_id, call_id| {
            TelephonyCommand::Cancel { command_id, call_id }
        })),
        CallStep::Connect(counsellor) => {
            let extension = extension?;
            let counsellor = counsellor_str(counsellor);
            CommandChange::Issue(crate::chat::exchange::new_command(call, id, now, &["connect"], |command_id, call_id| {
                TelephonyCommand::Connect { command_id, call_id, counsellor, extension }
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Channel;

    const A: &str = "0190f5f8-7b1c-7000-8000-00000000000a";
    const ANA: &str = "0190f5f8-7b1c-7000-8000-0000000000a1";

    fn ids() -> (ContactId, CounsellorId) {
        (contact_key(A).expect("uuid"), counsellor_key(ANA).expect("uuid"))
    }

    #[test]
    fn ids_go_from_uuid_strings_to_numbers_and_back() {
        let (contact, counsellor) = ids();
        assert_eq!(contact_str(contact), A);
        assert_eq!(counsellor_str(counsellor), ANA);
        assert_eq!(contact_key("not-a-uuid"), None);
        assert_eq!(counsellor_key(""), None);
        for s in [CounsellorStatus::Available, CounsellorStatus::Away, CounsellorStatus::Offline] {
            assert_eq!(counsellor_status(status_of(s)), s);
        }
    }

    fn record(state: &str, counsellor: Option<&str>, channel: &str) -> ContactRecord {
        ContactRecord {
            id: A.into(),
            channel: channel.into(),
            helpline: "children".into(),
            language: "ro".into(),
            priority: 7,
            state: state.into(),
            queued_at: 100,
            first_offered_at: None,
            answered_at: None,
            ended_at: None,
            counsellor_id: counsellor.map(str::to_string),
            end_reason: None,
            senior_only: true,
        }
    }

    #[test]
    fn an_open_contact_is_restored_waiting_or_in_conversation() {
        let (contact, counsellor) = ids();
        let channels = Channels::default();
        match restore(&record("active", Some(ANA), "chat"), 500, &channels) {
            Some(Input::ContactRestoredAssigned { contact: c, counsellor: k, answered_at }) => {
                assert_eq!((c.id, k, answered_at), (contact, counsellor, 500), "no answer time stored: now");
                assert!(!c.caller_connected, "a chat's caller must come back");
                assert!(c.senior_only);
            }
            other => panic!("{other:?}"),
        }
        match restore(&record("queued", None, "call"), 500, &channels) {
            Some(Input::ContactQueued(c)) => {
                assert_eq!((c.channel, c.queued_at, c.priority), (Channel::Call, 100, 7), "its original arrival");
                assert!(c.caller_connected, "a phone caller is still on the line");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(restore(&ContactRecord { id: "x".into(), ..record("queued", None, "chat") }, 0, &channels), None);
    }

    #[test]
    fn a_restart_restores_wrap_ups_and_away_reasons_and_ends_wrap_ups_past_their_limit() {
        let (contact, counsellor) = ids();
        const B: &str = "0190f5f8-7b1c-7000-8000-00000000000b";
        const ION: &str = "0190f5f8-7b1c-7000-8000-0000000000a2";
        const GIL: &str = "0190f5f8-7b1c-7000-8000-0000000000a3";
        let wrapups =
            vec![(A.to_string(), ANA.to_string(), 9_000), (B.to_string(), ANA.to_string(), 4_000), ("x".into(), ANA.into(), 9_000)];
        let away = |user: &str, reason: Option<&str>, away_reason: Option<&str>| AwayNow {
            user_id: user.into(),
            at: 1_000,
            reason: reason.map(str::to_string),
            away_reason: away_reason.map(str::to_string),
        };
        let aways = [away(ANA, None, Some("training")), away(ION, Some("missed_offers"), None), away(GIL, Some("supervisor"), None)];
        let (inputs, changes) = restore_counsellors(5_000, &wrapups, &aways);
        assert_eq!(
            changes,
            vec![Change::WrapUpEnded { contact: B.into(), counsellor: ANA.into(), reason: "limit", at: 4_000 }],
            "over while the server was down: ended at its limit"
        );
        let ion = counsellor_key(ION).expect("uuid");
        assert_eq!(
            inputs,
            vec![
                Input::RestoreCounsellor { counsellor, away: Some(("training".into(), 1_000)), wrapups: vec![(contact, 9_000)] },
                Input::RestoreCounsellor { counsellor: ion, away: Some(("missed_offers".into(), 1_000)), wrapups: vec![] },
            ],
            "a supervisor's away has no reason to restore"
        );
    }

    #[test]
    fn every_output_that_changes_something_leaves_its_record() {
        let (contact, counsellor) = ids();
        let offer = Output::Offer {
            contact,
            counsellor,
            helpline: "children".into(),
            language: "ro".into(),
            queued_at: 0,
            expires_at: 9_000,
            as_backup: true,
            caller_online: true,
        };
        assert_eq!(
            change_of(1_000, &offer),
            Some(Change::Offered { contact: A.into(), counsellor: ANA.into(), at: 1_000, expires_at: 9_000, as_backup: true })
        );
        let expired = Output::OfferRevoked { contact, counsellor, reason: RevokeReason::Expired };
        assert!(matches!(change_of(1, &expired), Some(Change::OfferClosed { outcome: "expired", .. })));
        let moved = Output::OfferRevoked { contact, counsellor, reason: RevokeReason::Moved };
        assert!(matches!(change_of(1, &moved), Some(Change::OfferClosed { outcome: "revoked", .. })));
        let ended =
            Output::Ended { contact, helpline: "children".into(), counsellor: None, reason: EndReason::CallerLost, abandoned: true };
        assert_eq!(change_of(5, &ended), Some(Change::Ended { contact: A.into(), at: 5, reason: "caller_lost", abandoned: true }));
        let breached = Output::SlaBreached { contact, waited_ms: 15_000 };
        assert!(matches!(change_of(5, &breached), Some(Change::Event { kind: "sla_breached", detail: Some(d), .. }) if d == "15000"));
        assert_eq!(change_of(5, &Output::Positions { positions: vec![(contact, 1)] }), None);
        assert_eq!(change_of(5, &Output::Rejected { counsellor, contact, rejection: Rejection::NoSuchOffer }), None);
    }

    #[test]
    fn a_status_change_is_stored_only_if_it_changes_something_and_always_confirmed() {
        let (_, counsellor) = ids();
        let input = Input::SetStatus { counsellor, status: Status::Away };
        let (changes, frames) = status_change(Some(Status::Available), &input, Some("supervisor"), 9);
        assert_eq!(changes, vec![Change::CounsellorStatus { counsellor: ANA.into(), status: "away", reason: Some("supervisor"), at: 9 }]);
        assert_eq!(
            frames,
            vec![(ANA.to_string(), ServerEvent::Status { status: CounsellorStatus::Away, reason: Some("supervisor".into()) })]
        );
        let (changes, frames) = status_change(Some(Status::Away), &input, None, 9);
        assert!(changes.is_empty(), "the same status: nothing to store");
        assert_eq!(frames.len(), 1, "but confirmed");
        assert_eq!(status_change(None, &input, None, 9), (Vec::new(), Vec::new()), "an unknown counsellor: nothing");
        assert_eq!(status_change(Some(Status::Away), &Input::Tick, None, 9), (Vec::new(), Vec::new()));
    }

    #[test]
    fn outputs_tell_counsellors_supervisors_and_the_relay() {
        let (contact, counsellor) = ids();
        let theirs = Facts { counsellor_helplines: vec!["children".into(), "lgbt".into()], ..Facts::default() };
        let away = notices(60_000, Output::StatusChanged { counsellor, status: Status::Away, reason: StatusReason::MissedOffers }, theirs);
        assert!(
            matches!(&away[0], Notice::Supervisors(Audience::Of(to), ServerEvent::Alert { kind, .. })
            if kind == "counsellor_away" && to == &["children".to_string(), "lgbt".to_string()]),
            "only the supervisors of the counsellor's helplines: {away:?}"
        );
        assert!(matches!(&away[1], Notice::Counsellor(u, ServerEvent::Status { status: CounsellorStatus::Away, .. }) if u == ANA));
        let facts = Facts { helpline: Some("children".into()), ..Facts::default() };
        let risk = notices(0, Output::SlaAtRisk { contact, waited_ms: 10_400 }, facts);
        assert!(matches!(&risk[0], Notice::Supervisors(Audience::Of(h), ServerEvent::Alert { kind, message, .. })
            if h == &["children".to_string()] && kind == "wait_10s" && message == "waiting 10 s without an answer"));
        let ended = notices(
            0,
            Output::Ended {
                contact,
                helpline: "children".into(),
                counsellor: Some(counsellor),
                reason: EndReason::CounsellorEnded,
                abandoned: false,
            },
            Facts::default(),
        );
        assert!(matches!(&ended[0], Notice::Relay(RelayCommand::Ended { contact: c, reason }) if c == A && reason == "counsellor_ended"));
        let rejected = notices(0, Output::Rejected { counsellor, contact, rejection: Rejection::NotAssigned }, Facts::default());
        assert!(
            matches!(&rejected[0], Notice::Counsellor(_, ServerEvent::Error { code: ErrorCode::UnknownContact, reference: Some(r), .. }) if r == A)
        );
        assert!(notices(0, Output::BackupOverflow { contact }, Facts::default()).is_empty());
    }

    #[test]
    fn an_offer_of_a_call_shows_the_caller_and_the_audited_history() {
        let (contact, counsellor) = ids();
        let offer = Output::Offer {
            contact,
            counsellor,
            helpline: "children".into(),
            language: "ro".into(),
            queued_at: 1_000,
            expires_at: 12_000,
            as_backup: false,
            caller_online: true,
        };
        let chat = notices(4_000, offer.clone(), Facts::default());
        let [Notice::Counsellor(_, ServerEvent::Offer { channel, waited_ms, expires_in_ms, repeat, .. })] = chat.as_slice() else {
            panic!("{chat:?}")
        };
        assert_eq!((channel.as_str(), *waited_ms, *expires_in_ms, repeat), ("chat", 3_000, 8_000, &None));
        let call =
            CallInfo { gateway_id: "g".into(), call_id: "c".into(), caller_last2: Some("42".into()), repeat: 2, earlier: Vec::new() };
        let shown = EarlierContact {
            contact_id: "e".into(),
            helpline: "children".into(),
            at: "t".into(),
            categories: Vec::new(),
            risk: None,
            outcome: None,
            summary: None,
        };
        let n = notices(
            4_000,
            offer,
            Facts { channel: "call", call: Some(&call), earlier: vec![shown.clone()], helpline: None, counsellor_helplines: Vec::new() },
        );
        let [Notice::Counsellor(_, ServerEvent::Offer { channel, caller_last2, repeat, earlier, .. })] = n.as_slice() else {
            panic!("{n:?}")
        };
        assert_eq!(channel, "call");
        assert_eq!(caller_last2.as_deref(), Some("42"));
        assert_eq!(repeat, &Some(Repeat { contacts: 2, days: REPEAT_DAYS }));
        assert_eq!(earlier, &vec![shown]);
    }

    #[test]
    fn a_call_is_connected_on_assignment_and_cancelled_when_it_stops_ringing() {
        let (contact, counsellor) = ids();
        assert_eq!(call_step(&Output::Assigned { contact, counsellor, answered_at: 0 }), Some((contact, CallStep::Connect(counsellor))));
        assert_eq!(call_step(&Output::OfferDeclined { contact, counsellor }), Some((contact, CallStep::Cancel)));
        assert_eq!(
            call_step(&Output::OfferRevoked { contact, counsellor, reason: RevokeReason::ContactGone }),
            None,
            "the call ended: no cancel"
        );
        let requeued = Output::Transferred { contact, from: counsellor, to: None, helpline: "children".into() };
        assert_eq!(call_step(&requeued), Some((contact, CallStep::Stale(&["connect"]))));
        assert_eq!(call_step(&Output::SlaAtRisk { contact, waited_ms: 1 }), None);
        let call = CallInfo { gateway_id: "g".into(), call_id: "c".into(), caller_last2: None, repeat: 0, earlier: Vec::new() };
        let connect = call_command(&call, contact, 7, CallStep::Connect(counsellor), Some("201".into()));
        let Some(CommandChange::Issue(command)) = connect else { panic!("{connect:?}") };
        assert_eq!((command.kind, command.call_id.as_str(), command.created_at), ("connect", "c", 7));
        assert!(command.frame.contains("\"extension\":\"201\""), "{}", command.frame);
        assert_eq!(call_command(&call, contact, 7, CallStep::Connect(counsellor), None), None, "no extension: no connect");
        assert!(matches!(
            call_command(&call, contact, 7, CallStep::Stale(&["connect"]), None),
            Some(CommandChange::Supersede { at: 7, .. })
        ));
    }
}

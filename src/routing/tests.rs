//! Scenario tests (virtual time, exact outputs) and property tests over random input sequences.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

// ----- helpers ------------------------------------------------------------------------------

pub(super) fn t(ms: i64) -> Millis {
    ms
}

pub(super) fn c(n: u128) -> CounsellorId {
    CounsellorId(n)
}

pub(super) fn x(n: u128) -> ContactId {
    ContactId(n)
}

pub(super) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A first-line profile with capacity 3.
pub(super) fn profile(id: u128, helplines: &[&str], languages: &[&str]) -> CounsellorProfile {
    CounsellorProfile {
        id: c(id),
        helplines: set(helplines),
        backup_helplines: BTreeSet::new(),
        languages: set(languages),
        capacity: 3,
        takes_calls: false,
        senior: false,
    }
}

pub(super) fn children_ro(id: u128) -> CounsellorProfile {
    profile(id, &["children"], &["ro"])
}

/// The scenarios of the rules before wrap-up: wrap-up off, so a slot is free again as soon as its
/// conversation ends (wrap-up has its own scenarios, `waiting_tests.rs`).
pub(super) fn engine() -> Engine {
    engine_with(|h| h.wrapup_limit_ms = 0)
}

/// The three helplines with their defaults, changed by `f`.
pub(super) fn engine_with(f: impl Fn(&mut HelplineConfig)) -> Engine {
    Engine::new(EngineConfig {
        helplines: ["children", "disability", "family_violence"]
            .into_iter()
            .map(|name| {
                let mut h = HelplineConfig::with_defaults(name);
                f(&mut h);
                h
            })
            .collect(),
        misses_before_away: 2,
    })
}

/// Upsert, connect and set Available at `now`; returns the outputs of the last step.
pub(super) fn online(e: &mut Engine, now: Millis, p: CounsellorProfile) -> Vec<Output> {
    let id = p.id;
    assert_eq!(e.handle(now, Input::UpsertCounsellor(p)), vec![]);
    assert_eq!(e.handle(now, Input::CounsellorConnected { counsellor: id }), vec![]);
    e.handle(now, Input::SetStatus { counsellor: id, status: Status::Available })
}

pub(super) fn contact(id: u128, helpline: &str, language: &str, queued_at: Millis) -> NewContact {
    NewContact {
        id: x(id),
        channel: Channel::Chat,
        helpline: helpline.into(),
        language: language.into(),
        priority: 0,
        queued_at,
        caller_connected: true,
        senior_only: false,
    }
}

pub(super) fn chat(id: u128, queued_at: Millis) -> Input {
    Input::ContactQueued(contact(id, "children", "ro", queued_at))
}

pub(super) fn offer_full(
    contact: u128,
    counsellor: u128,
    helpline: &str,
    language: &str,
    queued_at: Millis,
    expires_at: Millis,
    as_backup: bool,
) -> Output {
    Output::Offer {
        contact: x(contact),
        counsellor: c(counsellor),
        helpline: helpline.into(),
        language: language.into(),
        queued_at,
        expires_at,
        as_backup,
        caller_online: true,
    }
}

/// The scenario engine, its helplines ringing callers who dropped (as before offline callers were held).
pub(super) fn ringing_offline() -> Engine {
    engine_with(|h| {
        h.wrapup_limit_ms = 0;
        h.ring_offline_callers = true;
    })
}

/// The offer, its caller offline.
pub(super) fn caller_offline(mut o: Output) -> Output {
    if let Output::Offer { caller_online, .. } = &mut o {
        *caller_online = false;
    }
    o
}

/// A first-line offer of a `children`/`ro` contact.
pub(super) fn offer(contact: u128, counsellor: u128, queued_at: Millis, expires_at: Millis) -> Output {
    offer_full(contact, counsellor, "children", "ro", queued_at, expires_at, false)
}

pub(super) fn positions(ps: &[(u128, u32)]) -> Output {
    Output::Positions { positions: ps.iter().map(|&(id, p)| (x(id), p)).collect() }
}

pub(super) fn accept(counsellor: u128, contact: u128) -> Input {
    Input::Accept { counsellor: c(counsellor), contact: x(contact) }
}

pub(super) fn decline(counsellor: u128, contact: u128) -> Input {
    Input::Decline { counsellor: c(counsellor), contact: x(contact) }
}

pub(super) fn assigned(contact: u128, counsellor: u128, at: Millis) -> Output {
    Output::Assigned { contact: x(contact), counsellor: c(counsellor), answered_at: at }
}

pub(super) fn revoked(contact: u128, counsellor: u128, reason: RevokeReason) -> Output {
    Output::OfferRevoked { contact: x(contact), counsellor: c(counsellor), reason }
}

fn rejected(counsellor: u128, contact: u128, rejection: Rejection) -> Output {
    Output::Rejected { counsellor: c(counsellor), contact: x(contact), rejection }
}

pub(super) fn at_risk(contact: u128, waited_ms: Millis) -> Output {
    Output::SlaAtRisk { contact: x(contact), waited_ms }
}

pub(super) fn breached(contact: u128, waited_ms: Millis) -> Output {
    Output::SlaBreached { contact: x(contact), waited_ms }
}

pub(super) fn overflow(contact: u128) -> Output {
    Output::BackupOverflow { contact: x(contact) }
}

pub(super) fn status(counsellor: u128, status: Status) -> Input {
    Input::SetStatus { counsellor: c(counsellor), status }
}

// ----- scenarios ----------------------------------------------------------------------------

#[test]
fn happy_path() {
    let mut e = engine();
    assert_eq!(online(&mut e, t(0), children_ro(1)), vec![]);
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.handle(t(1_000), chat(1, t(1_000))), vec![offer(1, 1, t(1_000), t(9_000)), positions(&[(1, 1)])]);
    assert_eq!(e.position(x(1)), Some(1));
    assert_eq!(e.next_deadline(), Some(t(9_000)));
    // A second contact waits behind the first (the counsellor rings with one offer at a time).
    assert_eq!(e.handle(t(1_500), chat(2, t(1_500))), vec![positions(&[(2, 2)])]);
    assert_eq!(e.handle(t(3_000), accept(1, 1)), vec![assigned(1, 1, t(3_000)), offer(2, 1, t(1_500), t(11_000)), positions(&[(2, 1)])]);
    assert_eq!(e.position(x(1)), None);
    assert_eq!(e.assigned_counsellor(x(1)), Some(c(1)));
    let v = e.counsellor(c(1)).expect("known");
    assert_eq!(v.active, vec![x(1)]);
    assert_eq!(v.ringing, Some(x(2)));
    assert_eq!(v.idle_since, t(3_000));
    // A repeated accept is ignored; the snapshot shows both contacts.
    assert_eq!(e.handle(t(3_100), accept(1, 1)), vec![]);
    let s = e.snapshot();
    assert_eq!(s.assigned.len(), 1);
    assert_eq!(s.assigned[0].answered_at, t(3_000));
    assert_eq!(s.waiting.len(), 1);
    assert_eq!(s.waiting[0].offered_to, Some(c(1)));
    assert_eq!(s.waiting[0].position, 1);
}

#[test]
fn ring_no_answer_goes_to_next_longest_idle() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(500), children_ro(2));
    assert_eq!(e.handle(t(1_000), chat(1, t(1_000))), vec![offer(1, 1, t(1_000), t(9_000)), positions(&[(1, 1)])]);
    assert_eq!(e.next_deadline(), Some(t(9_000)));
    assert_eq!(e.handle(t(8_999), Input::Tick), vec![]);
    assert_eq!(e.handle(t(9_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired), offer(1, 2, t(1_000), t(17_000))]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.consecutive_misses), Some(1));
    assert_eq!(e.next_deadline(), Some(t(11_000)));
    assert_eq!(e.handle(t(11_000), Input::Tick), vec![at_risk(1, 10_000), overflow(1)]);
    assert_eq!(e.next_deadline(), Some(t(16_000)));
    assert_eq!(e.handle(t(16_000), Input::Tick), vec![breached(1, 15_000)]);
    assert_eq!(e.next_deadline(), Some(t(17_000)));
    // Both have now missed it once; c1's cooldown is over, so it rings c1 again.
    assert_eq!(e.handle(t(17_000), Input::Tick), vec![revoked(1, 2, RevokeReason::Expired), offer(1, 1, t(1_000), t(25_000))]);
    assert_eq!(e.next_deadline(), Some(t(25_000)));
}

#[test]
fn decline_goes_to_next_at_once() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(100), children_ro(2));
    e.handle(t(1_000), chat(1, t(1_000)));
    assert_eq!(
        e.handle(t(2_000), decline(1, 1)),
        vec![Output::OfferDeclined { contact: x(1), counsellor: c(1) }, offer(1, 2, t(1_000), t(10_000))]
    );
    // A second decline of the same offer is stale.
    assert_eq!(e.handle(t(2_100), decline(1, 1)), vec![rejected(1, 1, Rejection::NoSuchOffer)]);
}

#[test]
fn single_decliner_is_reoffered_after_cooldown() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![offer(1, 1, t(0), t(8_000)), positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(1_000), decline(1, 1)), vec![Output::OfferDeclined { contact: x(1), counsellor: c(1) }]);
    assert_eq!(e.next_deadline(), Some(t(9_000)));
    assert_eq!(e.handle(t(8_999), Input::Tick), vec![]);
    assert_eq!(e.handle(t(9_000), Input::Tick), vec![offer(1, 1, t(0), t(17_000))]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.consecutive_misses), Some(0));
}

#[test]
fn away_after_two_misses_in_a_row() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(0), chat(1, t(0)));
    assert_eq!(e.handle(t(8_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired)]);
    assert_eq!(e.handle(t(10_000), Input::Tick), vec![at_risk(1, 10_000), overflow(1)]);
    assert_eq!(e.handle(t(15_000), Input::Tick), vec![breached(1, 15_000)]);
    assert_eq!(e.next_deadline(), Some(t(16_000)));
    assert_eq!(e.handle(t(16_000), Input::Tick), vec![offer(1, 1, t(0), t(24_000))]);
    assert_eq!(
        e.handle(t(24_000), Input::Tick),
        vec![
            revoked(1, 1, RevokeReason::Expired),
            Output::StatusChanged { counsellor: c(1), status: Status::Away, reason: StatusReason::MissedOffers }
        ]
    );
    let v = e.counsellor(c(1)).expect("known");
    assert_eq!((v.status, v.consecutive_misses), (Status::Away, 2));
    // Back to Available: misses reset, but the cooldown for this contact still applies.
    assert_eq!(e.handle(t(25_000), status(1, Status::Available)), vec![]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.consecutive_misses), Some(0));
    assert_eq!(e.next_deadline(), Some(t(32_000)));
    assert_eq!(e.handle(t(32_000), Input::Tick), vec![offer(1, 1, t(0), t(40_000))]);
}

#[test]
fn accept_or_decline_between_misses_resets_count() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(0), chat(1, t(0)));
    assert_eq!(e.handle(t(8_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired)]);
    // x2 is untried by c1: offered at once. Accepting it resets the misses.
    assert_eq!(e.handle(t(8_000), chat(2, t(8_000))), vec![offer(2, 1, t(8_000), t(16_000)), positions(&[(2, 2)])]);
    assert_eq!(e.handle(t(9_000), accept(1, 2)), vec![assigned(2, 1, t(9_000))]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.consecutive_misses), Some(0));
    assert_eq!(e.handle(t(10_000), Input::Tick), vec![at_risk(1, 10_000), overflow(1)]);
    assert_eq!(e.handle(t(15_000), Input::Tick), vec![breached(1, 15_000)]);
    assert_eq!(e.handle(t(16_000), Input::Tick), vec![offer(1, 1, t(0), t(24_000))]);
    // One miss only: still available.
    assert_eq!(e.handle(t(24_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired)]);
    let v = e.counsellor(c(1)).expect("known");
    assert_eq!((v.status, v.consecutive_misses), (Status::Available, 1));
    // A decline also resets.
    e.handle(t(24_000), chat(3, t(24_000)));
    assert_eq!(e.counsellor(c(1)).and_then(|v| v.ringing), Some(x(3)));
    e.handle(t(25_000), decline(1, 3));
    assert_eq!(e.counsellor(c(1)).map(|v| v.consecutive_misses), Some(0));
}

#[test]
fn backup_gets_offer_only_after_overflow() {
    let mut e = engine();
    let mut p = profile(1, &["disability"], &["ro"]);
    p.backup_helplines = set(&["children"]);
    online(&mut e, t(0), p);
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![positions(&[(1, 1)])]);
    assert_eq!(e.next_deadline(), Some(t(10_000)));
    assert_eq!(e.handle(t(9_999), Input::Tick), vec![]);
    assert_eq!(
        e.handle(t(10_000), Input::Tick),
        vec![at_risk(1, 10_000), overflow(1), offer_full(1, 1, "children", "ro", t(0), t(18_000), true)]
    );
    // A first-line counsellor gets a contact at once, with as_backup = false.
    assert_eq!(e.handle(t(11_000), Input::ContactQueued(contact(2, "disability", "ro", t(11_000)))), vec![positions(&[(2, 1)])]);
    assert_eq!(
        e.handle(t(12_000), accept(1, 1)),
        vec![assigned(1, 1, t(12_000)), offer_full(2, 1, "disability", "ro", t(11_000), t(20_000), false)]
    );
}

#[test]
fn sla_events_once_and_not_after_answer() {
    let mut e = engine();
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(0), chat(2, t(0))), vec![positions(&[(2, 2)])]);
    online(&mut e, t(1_000), children_ro(1));
    assert_eq!(e.counsellor(c(1)).and_then(|v| v.ringing), Some(x(1)));
    assert_eq!(e.handle(t(5_000), accept(1, 1)), vec![assigned(1, 1, t(5_000)), offer(2, 1, t(0), t(13_000)), positions(&[(2, 1)])]);
    assert_eq!(e.handle(t(10_000), Input::Tick), vec![at_risk(2, 10_000), overflow(2)]);
    assert_eq!(e.handle(t(10_000), Input::Tick), vec![]);
    assert_eq!(e.handle(t(13_000), Input::Tick), vec![revoked(2, 1, RevokeReason::Expired)]);
    assert_eq!(e.handle(t(15_000), Input::Tick), vec![breached(2, 15_000)]);
    assert_eq!(e.next_deadline(), Some(t(21_000)));
    assert_eq!(e.handle(t(21_000), Input::Tick), vec![offer(2, 1, t(0), t(29_000))]);
    assert_eq!(e.handle(t(22_000), accept(1, 2)), vec![assigned(2, 1, t(22_000))]);
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.handle(t(60_000), Input::Tick), vec![]);
}

#[test]
fn late_tick_processes_deadlines_in_time_order() {
    let mut e = engine();
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(2_000), chat(2, t(2_000)));
    assert_eq!(
        e.handle(t(30_000), Input::Tick),
        vec![at_risk(1, 30_000), overflow(1), at_risk(2, 28_000), overflow(2), breached(1, 30_000), breached(2, 28_000)]
    );
}

#[test]
fn longest_idle_first() {
    let mut e = engine();
    e.handle(t(0), Input::UpsertCounsellor(children_ro(1)));
    e.handle(t(0), Input::UpsertCounsellor(children_ro(2)));
    for id in [1, 2] {
        e.handle(t(0), Input::CounsellorConnected { counsellor: c(id) });
    }
    e.handle(t(100), status(2, Status::Available));
    e.handle(t(200), status(1, Status::Available));
    assert_eq!(e.handle(t(1_000), chat(1, t(1_000))), vec![offer(1, 2, t(1_000), t(9_000)), positions(&[(1, 1)])]);
}

#[test]
fn fewest_active_first() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(100), chat(1, t(100)));
    e.handle(t(200), accept(1, 1));
    // c1 has been idle longer (since 200, c2 since 300) but carries one contact: c2 gets it.
    online(&mut e, t(300), children_ro(2));
    assert_eq!(e.handle(t(1_000), chat(2, t(1_000))), vec![offer(2, 2, t(1_000), t(9_000)), positions(&[(2, 1)])]);
}

#[test]
fn priority_then_fifo() {
    let mut e = engine();
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(100), chat(2, t(100))), vec![positions(&[(2, 2)])]);
    let mut urgent = contact(3, "children", "ro", t(200));
    urgent.priority = 1;
    assert_eq!(e.handle(t(200), Input::ContactQueued(urgent)), vec![positions(&[(3, 1), (1, 2), (2, 3)])]);
    // Same queued_at: id order.
    assert_eq!(e.handle(t(300), chat(5, t(100))), vec![positions(&[(5, 4)])]);
    assert_eq!(e.handle(t(300), chat(4, t(100))), vec![positions(&[(4, 4), (5, 5)])]);
    // A contact in another helpline has its own positions.
    assert_eq!(e.handle(t(300), Input::ContactQueued(contact(6, "disability", "ro", t(300)))), vec![positions(&[(6, 1)])]);
    assert_eq!(online(&mut e, t(400), children_ro(1)), vec![offer(3, 1, t(200), t(8_400))]);
    assert_eq!(online(&mut e, t(400), children_ro(2)), vec![offer(1, 2, t(0), t(8_400))]);
    // Escalating x2 moves it ahead in the queue (positions change) but keeps the ringing offers.
    assert_eq!(e.handle(t(500), Input::SetPriority { contact: x(2), priority: 5 }), vec![positions(&[(2, 1), (3, 2), (1, 3)])]);
    // Setting the priority of an unknown contact is ignored.
    assert_eq!(e.handle(t(500), Input::SetPriority { contact: x(99), priority: 5 }), vec![]);
    assert_eq!(e.position(x(6)), Some(1));
}

#[test]
fn language_and_helpline_matching() {
    let mut e = engine();
    online(&mut e, t(0), profile(1, &["children"], &["ru"]));
    online(&mut e, t(0), profile(2, &["disability"], &["ro"]));
    assert_eq!(e.handle(t(100), chat(1, t(100))), vec![positions(&[(1, 1)])]);
    assert_eq!(online(&mut e, t(200), profile(3, &["children", "disability"], &["ro", "ru"])), vec![offer(1, 3, t(100), t(8_200))]);
    assert_eq!(
        e.handle(t(300), Input::ContactQueued(contact(2, "children", "ru", t(300)))),
        vec![offer_full(2, 1, "children", "ru", t(300), t(8_300), false), positions(&[(2, 2)])]
    );
    // An unknown helpline uses the defaults.
    online(&mut e, t(400), profile(4, &["elderly"], &["ro"]));
    assert_eq!(
        e.handle(t(500), Input::ContactQueued(contact(3, "elderly", "ro", t(500)))),
        vec![offer_full(3, 4, "elderly", "ro", t(500), t(8_500), false), positions(&[(3, 1)])]
    );
}

#[test]
fn capacity_limit_respected() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    for id in 1..=3 {
        e.handle(t(id as i64 * 100), chat(id, t(id as i64 * 100)));
        assert_eq!(e.handle(t(id as i64 * 100), accept(1, id)), vec![assigned(id, 1, t(id as i64 * 100))]);
    }
    assert_eq!(e.handle(t(1_000), chat(4, t(1_000))), vec![positions(&[(4, 1)])]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.active.len()), Some(3));
    assert_eq!(
        e.handle(t(2_000), Input::EndByCounsellor { counsellor: c(1), contact: x(2) }),
        vec![
            Output::Ended {
                contact: x(2),
                helpline: "children".into(),
                counsellor: Some(c(1)),
                reason: EndReason::CounsellorEnded,
                abandoned: false
            },
            offer(4, 1, t(1_000), t(10_000))
        ]
    );
    assert_eq!(e.counsellor(c(1)).map(|v| v.idle_since), Some(t(2_000)));
    // Lowering capacity below active revokes the ringing offer but evicts nobody.
    let mut p = children_ro(1);
    p.capacity = 1;
    assert_eq!(e.handle(t(2_500), Input::UpsertCounsellor(p)), vec![revoked(4, 1, RevokeReason::CounsellorUnavailable)]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.active), Some(vec![x(1), x(3)]));
}

#[test]
fn caller_grace_waiting() {
    // A helpline that still rings callers who dropped (the default holds them: `waiting_tests.rs`).
    let mut e = ringing_offline();
    e.handle(t(0), chat(1, t(0)));
    assert_eq!(e.handle(t(1_000), Input::CallerDisconnected { contact: x(1) }), vec![]);
    assert!(!e.snapshot().waiting[0].caller_connected);
    // A disconnected waiting caller keeps its place and is still offered (saying she is offline).
    assert_eq!(online(&mut e, t(2_000), children_ro(1)), vec![caller_offline(offer(1, 1, t(0), t(10_000)))]);
    assert_eq!(
        e.handle(t(50_000), Input::CallerConnected { contact: x(1) }),
        vec![
            revoked(1, 1, RevokeReason::Expired),
            at_risk(1, 50_000),
            overflow(1),
            breached(1, 50_000),
            // c1 was tried at 10 000 (the expiry is processed at its own time), cooldown long over.
            offer(1, 1, t(0), t(58_000)),
        ]
    );
    assert_eq!(e.handle(t(51_000), status(1, Status::Offline)), vec![revoked(1, 1, RevokeReason::CounsellorUnavailable)]);
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.position(x(1)), Some(1));
    assert_eq!(e.handle(t(200_000), Input::CallerDisconnected { contact: x(1) }), vec![]);
    assert_eq!(e.next_deadline(), Some(t(320_000)));
    assert_eq!(e.handle(t(319_999), Input::Tick), vec![]);
    assert_eq!(
        e.handle(t(320_000), Input::Tick),
        vec![Output::Ended {
            contact: x(1),
            helpline: "children".into(),
            counsellor: None,
            reason: EndReason::CallerLost,
            abandoned: true
        }]
    );
    assert_eq!(e.position(x(1)), None);
    assert_eq!(e.next_deadline(), None);
    assert_eq!(e.handle(t(320_001), Input::EndByCaller { contact: x(1) }), vec![]);
}

#[test]
fn caller_grace_assigned_and_ringing() {
    let mut e = ringing_offline();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(1_000), accept(1, 1));
    e.handle(t(2_000), Input::CallerDisconnected { contact: x(1) });
    assert_eq!(e.handle(t(2_000), chat(2, t(2_000))), vec![offer(2, 1, t(2_000), t(10_000)), positions(&[(2, 1)])]);
    e.handle(t(3_000), Input::CallerDisconnected { contact: x(2) });
    assert_eq!(e.handle(t(4_000), accept(1, 2)), vec![assigned(2, 1, t(4_000))]);
    e.handle(t(5_000), Input::CallerConnected { contact: x(2) });
    assert_eq!(e.next_deadline(), Some(t(122_000)));
    assert_eq!(
        e.handle(t(122_000), Input::Tick),
        vec![Output::Ended {
            contact: x(1),
            helpline: "children".into(),
            counsellor: Some(c(1)),
            reason: EndReason::CallerLost,
            abandoned: false
        }]
    );
    assert_eq!(e.next_deadline(), None);
    // The caller ending while ringing revokes the offer.
    e.handle(t(123_000), chat(3, t(123_000)));
    assert_eq!(
        e.handle(t(124_000), Input::EndByCaller { contact: x(3) }),
        vec![
            revoked(3, 1, RevokeReason::ContactGone),
            Output::Ended { contact: x(3), helpline: "children".into(), counsellor: None, reason: EndReason::CallerEnded, abandoned: true }
        ]
    );
    assert_eq!(
        e.handle(t(125_000), Input::EndByCaller { contact: x(2) }),
        vec![Output::Ended {
            contact: x(2),
            helpline: "children".into(),
            counsellor: Some(c(1)),
            reason: EndReason::CallerEnded,
            abandoned: false
        }]
    );
    assert_eq!(e.counsellor(c(1)).map(|v| (v.active.len(), v.idle_since)), Some((0, t(125_000))));
}

#[test]
fn restart_restore() {
    // Restored chats' callers must come back; this helpline rings them meanwhile (the default
    // holds them until they are back: `waiting_tests.rs`).
    let mut e = ringing_offline();
    let now = t(100_000);
    let mut a = contact(1, "children", "ro", t(90_000));
    a.caller_connected = false;
    let mut b = contact(2, "children", "ro", t(80_000));
    b.caller_connected = false;
    assert_eq!(e.handle(now, Input::ContactQueued(a)), vec![at_risk(1, 10_000), overflow(1), positions(&[(1, 1)])]);
    assert_eq!(
        e.handle(now, Input::ContactQueued(b)),
        vec![at_risk(2, 20_000), overflow(2), breached(2, 20_000), positions(&[(2, 1), (1, 2)])]
    );
    // The same id again: ignored.
    assert_eq!(e.handle(now, chat(2, now)), vec![]);
    // Restored conversations of an unknown counsellor create them offline; capacity counts once upserted.
    for id in [3, 4] {
        assert_eq!(
            e.handle(
                now,
                Input::ContactRestoredAssigned {
                    contact: contact(id, "children", "ro", t(50_000)),
                    counsellor: c(1),
                    answered_at: t(55_000),
                }
            ),
            vec![]
        );
    }
    let v = e.counsellor(c(1)).expect("created");
    assert_eq!((v.status, v.connected, v.capacity), (Status::Offline, false, 0));
    assert_eq!(v.active, vec![x(3), x(4)]);
    assert_eq!(e.assigned_counsellor(x(3)), Some(c(1)));
    let mut p = children_ro(1);
    p.capacity = 2;
    assert_eq!(online(&mut e, t(101_000), p), vec![]);
    assert_eq!(
        e.handle(t(102_000), Input::EndByCaller { contact: x(3) }),
        vec![
            Output::Ended {
                contact: x(3),
                helpline: "children".into(),
                counsellor: Some(c(1)),
                reason: EndReason::CallerEnded,
                abandoned: false
            },
            caller_offline(offer(2, 1, t(80_000), t(110_000)))
        ]
    );
    // x1 keeps its answer clock: breach at 105 000; both callers' grace ends at 220 000.
    assert_eq!(e.next_deadline(), Some(t(105_000)));
    assert_eq!(e.handle(t(105_000), Input::Tick), vec![breached(1, 15_000)]);
    e.handle(t(106_000), accept(1, 2));
    assert_eq!(
        e.handle(t(220_000), Input::Tick),
        vec![
            Output::Ended { contact: x(1), helpline: "children".into(), counsellor: None, reason: EndReason::CallerLost, abandoned: true },
            Output::Ended {
                contact: x(2),
                helpline: "children".into(),
                counsellor: Some(c(1)),
                reason: EndReason::CallerLost,
                abandoned: false
            },
        ]
    );
}

#[test]
fn counsellor_unavailable_while_ringing_and_stale_requests() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(100), children_ro(2));
    e.handle(t(1_000), chat(1, t(1_000)));
    assert_eq!(
        e.handle(t(2_000), Input::CounsellorDisconnected { counsellor: c(1) }),
        vec![revoked(1, 1, RevokeReason::CounsellorUnavailable), offer(1, 2, t(1_000), t(10_000))]
    );
    assert_eq!(e.handle(t(2_100), accept(1, 1)), vec![rejected(1, 1, Rejection::NoSuchOffer)]);
    assert_eq!(e.handle(t(2_100), accept(9, 1)), vec![rejected(9, 1, Rejection::UnknownCounsellor)]);
    assert_eq!(e.handle(t(2_100), accept(2, 7)), vec![rejected(2, 7, Rejection::UnknownContact)]);
    assert_eq!(e.handle(t(3_000), accept(2, 1)), vec![assigned(1, 2, t(3_000))]);
    assert_eq!(e.handle(t(3_100), accept(1, 1)), vec![rejected(1, 1, Rejection::NoSuchOffer)]);
    assert_eq!(
        e.handle(t(3_200), Input::EndByCounsellor { counsellor: c(1), contact: x(1) }),
        vec![rejected(1, 1, Rejection::NotAssigned)]
    );
    assert_eq!(
        e.handle(t(3_200), Input::EndByCounsellor { counsellor: c(9), contact: x(1) }),
        vec![rejected(9, 1, Rejection::UnknownCounsellor)]
    );
    assert_eq!(
        e.handle(t(3_200), Input::EndByCounsellor { counsellor: c(2), contact: x(8) }),
        vec![rejected(2, 8, Rejection::UnknownContact)]
    );
    // Unknown counsellors are silently ignored elsewhere.
    assert_eq!(e.handle(t(3_300), status(9, Status::Available)), vec![]);
    assert_eq!(e.handle(t(3_300), Input::CounsellorConnected { counsellor: c(9) }), vec![]);
    assert_eq!(e.handle(t(3_300), Input::RemoveCounsellor { counsellor: c(9) }), vec![]);
}

#[test]
fn away_remove_and_profile_change_revoke_without_marking_tried() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(1_000), chat(1, t(1_000)));
    assert_eq!(e.handle(t(1_500), status(1, Status::Away)), vec![revoked(1, 1, RevokeReason::CounsellorUnavailable)]);
    // Not tried: offered again as soon as they are back.
    assert_eq!(e.handle(t(2_000), status(1, Status::Available)), vec![offer(1, 1, t(1_000), t(10_000))]);
    assert_eq!(
        e.handle(t(2_500), Input::UpsertCounsellor(profile(1, &["children"], &["ru"]))),
        vec![revoked(1, 1, RevokeReason::CounsellorUnavailable)]
    );
    assert_eq!(e.handle(t(3_000), Input::UpsertCounsellor(children_ro(1))), vec![offer(1, 1, t(1_000), t(11_000))]);
    assert_eq!(e.handle(t(3_500), Input::RemoveCounsellor { counsellor: c(1) }), vec![revoked(1, 1, RevokeReason::CounsellorUnavailable)]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.removed), Some(true));
    assert_eq!(e.handle(t(3_600), accept(1, 1)), vec![rejected(1, 1, Rejection::UnknownCounsellor)]);
    // Re-upserting re-enables them.
    assert_eq!(e.handle(t(4_000), Input::UpsertCounsellor(children_ro(1))), vec![offer(1, 1, t(1_000), t(12_000))]);
    // Same status again: nothing.
    assert_eq!(e.handle(t(4_100), status(1, Status::Available)), vec![]);
    assert_eq!(e.counsellor(c(1)).map(|v| v.idle_since), Some(t(2_000)));
}

#[test]
fn time_going_backwards_uses_last_now() {
    let mut e = engine();
    online(&mut e, t(10_000), children_ro(1));
    assert_eq!(e.handle(t(5_000), chat(1, t(10_000))), vec![offer(1, 1, t(10_000), t(18_000)), positions(&[(1, 1)])]);
}

// ----- properties ---------------------------------------------------------------------------

/// Cases per property: `HELPLINE_FUZZ_CASES` when set (the long fuzz run, see docs/security.md), else `default`.
pub(crate) fn fuzz_cases(default: u32) -> u32 {
    std::env::var("HELPLINE_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// A property's configuration: [`fuzz_cases`] cases, no regression files (failures print their input).
pub(crate) fn fuzz_config(default: u32) -> ProptestConfig {
    ProptestConfig { cases: fuzz_cases(default), failure_persistence: None, ..ProptestConfig::default() }
}

const HELPLINES: [&str; 3] = ["a", "b", "c"];
const LANGUAGES: [&str; 2] = ["ro", "ru"];

#[test]
fn supervisor_offer_to_rings_only_the_named_counsellor() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    // Counsellor 2 speaks Russian only: normally not eligible for a Romanian contact.
    online(&mut e, t(1), profile(2, &["disability"], &["ru"]));
    let out = e.handle(t(10), chat(7, t(10)));
    assert_eq!(out[0], offer(7, 1, 10, 8_010));
    // The supervisor moves it to counsellor 2: 1 stops ringing (moved, not tried), 2 rings.
    let out = e.handle(t(20), Input::OfferTo { contact: x(7), counsellor: c(2) });
    assert_eq!(out[0], revoked(7, 1, RevokeReason::Moved));
    assert_eq!(out[1], offer(7, 2, 10, 8_020));
    // Counsellor 2 declines: normal routing resumes at once, back to counsellor 1.
    let out = e.handle(t(30), decline(2, 7));
    assert_eq!(out[1], offer(7, 1, 10, 8_030));
    // A refused move: unknown contact, contact no longer waiting, counsellor not available.
    assert_eq!(
        e.handle(t(40), Input::OfferTo { contact: x(99), counsellor: c(2) }),
        vec![Output::Refused { contact: x(99), refusal: Refusal::UnknownContact }]
    );
    e.handle(t(50), accept(1, 7));
    assert_eq!(
        e.handle(t(60), Input::OfferTo { contact: x(7), counsellor: c(2) }),
        vec![Output::Refused { contact: x(7), refusal: Refusal::NotWaiting }]
    );
    e.handle(t(70), chat(8, t(70)));
    e.handle(t(71), status(2, Status::Away));
    let out = e.handle(t(80), Input::OfferTo { contact: x(8), counsellor: c(2) });
    assert_eq!(out, vec![Output::Refused { contact: x(8), refusal: Refusal::TargetUnavailable }]);
}

#[test]
fn supervisor_transfer_to_counsellor_and_to_helpline() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(1), profile(2, &["family_violence"], &["ro"]));
    e.handle(t(10), chat(7, t(10)));
    e.handle(t(20), accept(1, 7));
    // To counsellor 2: capacity moves with it; the answer time is kept.
    let out = e.handle(t(30), Input::Transfer { contact: x(7), to: TransferTarget::Counsellor(c(2)) });
    assert_eq!(out, vec![Output::Transferred { contact: x(7), from: c(1), to: Some(c(2)), helpline: "children".into() }]);
    assert_eq!(e.assigned_counsellor(x(7)), Some(c(2)));
    assert!(e.counsellor(c(1)).unwrap().active.is_empty());
    assert_eq!(e.counsellor(c(2)).unwrap().active, vec![x(7)]);
    // To the family-violence helpline's queue: waiting again, ahead of new contacts, offered to a
    // counsellor of that helpline (2 is the only one, and has room).
    let out = e.handle(t(40), Input::Transfer { contact: x(7), to: TransferTarget::Helpline("family_violence".into()) });
    assert_eq!(out[0], Output::Transferred { contact: x(7), from: c(2), to: None, helpline: "family_violence".into() });
    assert_eq!(out[1], offer_full(7, 2, "family_violence", "ro", 40, 8_040, false));
    let w = &e.snapshot().waiting[0];
    assert_eq!((w.priority, w.queued_at), (PRIORITY_TRANSFER, 40));
    // Refusals: not in conversation; target is the same counsellor.
    assert_eq!(
        e.handle(t(50), Input::Transfer { contact: x(7), to: TransferTarget::Counsellor(c(1)) }),
        vec![Output::Refused { contact: x(7), refusal: Refusal::NotAssigned }]
    );
    e.handle(t(60), accept(2, 7));
    assert_eq!(
        e.handle(t(70), Input::Transfer { contact: x(7), to: TransferTarget::Counsellor(c(2)) }),
        vec![Output::Refused { contact: x(7), refusal: Refusal::TargetUnavailable }]
    );
}

#[test]
fn a_counsellor_hands_over_only_a_contact_she_holds() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(1), children_ro(2));
    online(&mut e, t(2), profile(3, &["family_violence"], &["ro"]));
    e.handle(t(10), chat(7, t(10)));
    let ringing = e.counsellor(c(1)).unwrap().ringing.map(|_| 1).unwrap_or(2);
    e.handle(t(20), accept(ringing, 7));
    let other = if ringing == 1 { 2 } else { 1 };
    // Waiting contacts and another's contact are refused as not hers; nothing moves.
    let not_held = vec![Output::Refused { contact: x(7), refusal: Refusal::NotHeld }];
    assert_eq!(e.handle(t(30), Input::HandOver { by: c(other), contact: x(7), to: TransferTarget::Counsellor(c(3)) }), not_held);
    assert_eq!(e.assigned_counsellor(x(7)), Some(c(ringing)));
    assert_eq!(
        e.handle(t(31), Input::HandOver { by: c(1), contact: x(99), to: TransferTarget::Counsellor(c(3)) }),
        vec![Output::Refused { contact: x(99), refusal: Refusal::UnknownContact }]
    );
    // Her own: it moves as a supervisor's transfer moves it, to a colleague of another helpline.
    let out = e.handle(t(40), Input::HandOver { by: c(ringing), contact: x(7), to: TransferTarget::Counsellor(c(3)) });
    assert_eq!(out, vec![Output::Transferred { contact: x(7), from: c(ringing), to: Some(c(3)), helpline: "children".into() }]);
    // Now it is 3's: the first counsellor cannot move it again; 3 sends it to a queue.
    assert_eq!(
        e.handle(t(50), Input::HandOver { by: c(ringing), contact: x(7), to: TransferTarget::Helpline("children".into()) }),
        not_held
    );
    let out = e.handle(t(60), Input::HandOver { by: c(3), contact: x(7), to: TransferTarget::Helpline("family_violence".into()) });
    assert_eq!(out[0], Output::Transferred { contact: x(7), from: c(3), to: None, helpline: "family_violence".into() });
    // Waiting again: no counsellor holds it, so no handover.
    assert_eq!(e.handle(t(70), Input::HandOver { by: c(3), contact: x(7), to: TransferTarget::Counsellor(c(1)) }), not_held);
}

#[test]
fn imminent_risk_in_conversation_keeps_the_counsellor_and_goes_first_if_transferred_back() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(10), chat(7, t(10)));
    e.handle(t(20), accept(1, 7));
    // Raised during the conversation: nothing moves, the snapshot shows it.
    assert_eq!(e.handle(t(30), Input::SetPriority { contact: x(7), priority: PRIORITY_FRONT }), vec![]);
    assert_eq!(e.assigned_counsellor(x(7)), Some(c(1)));
    assert_eq!(e.snapshot().assigned[0].priority, PRIORITY_FRONT);
    // Transferred back to a queue, it keeps the front priority (not only the transfer priority).
    e.handle(t(40), chat(8, t(40)));
    e.handle(t(45), Input::SetPriority { contact: x(8), priority: PRIORITY_TRANSFER + 10 });
    e.handle(t(50), Input::Transfer { contact: x(7), to: TransferTarget::Helpline("children".into()) });
    let w = &e.snapshot().waiting;
    assert_eq!((w[0].contact, w[0].priority), (x(7), PRIORITY_FRONT), "{w:?}");
}

fn prop_config() -> EngineConfig {
    EngineConfig {
        helplines: vec![
            HelplineConfig::with_defaults("a"),
            HelplineConfig {
                name: "b".into(),
                ring_timeout_ms: 5_000,
                backup_after_ms: 4_000,
                sla_at_risk_ms: 8_000,
                sla_target_ms: 12_000,
                caller_grace_ms: 30_000,
                chat_while_on_call: false,
                calls_first: true,
                // A short wrap-up, reasons of its own, and the triage question.
                wrapup_limit_ms: 3_000,
                away_reasons: vec!["break".into(), "lunch".into()],
                triage_priority: Some(triage::PRIORITY_DANGER),
                ring_offline_callers: false,
            },
        ],
        misses_before_away: 2,
    }
}

fn prop_config_for(h: &str) -> HelplineConfig {
    prop_config().helplines.into_iter().find(|c| c.name == h).unwrap_or_else(|| HelplineConfig::with_defaults(h))
}

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        c: u8,
        first: u8,
        backup: u8,
        langs: u8,
        cap: u32,
    },
    Remove {
        c: u8,
    },
    Connect {
        c: u8,
    },
    Disconnect {
        c: u8,
    },
    Status {
        c: u8,
        s: u8,
    },
    Queue {
        h: u8,
        l: u8,
        prio: i32,
        back: i64,
        connected: bool,
    },
    Restore {
        h: u8,
        l: u8,
        c: u8,
        connected: bool,
    },
    Accept {
        c: u8,
        x: u8,
    },
    AcceptRinging {
        x: u8,
    },
    Decline {
        c: u8,
        x: u8,
    },
    DeclineRinging {
        x: u8,
    },
    EndByCounsellor {
        c: u8,
        x: u8,
    },
    EndOwn {
        x: u8,
    },
    EndByCaller {
        x: u8,
    },
    CallerDisconnected {
        x: u8,
    },
    CallerConnected {
        x: u8,
    },
    Priority {
        x: u8,
        p: i32,
    },
    Tick {
        dt: i64,
    },
    TickAtDeadline,
    /// A counsellor says she is ready: one of her wrap-ups (or any contact).
    Ready {
        c: u8,
        x: u8,
    },
    ReadyOwn {
        i: u8,
    },
    Away {
        c: u8,
        r: u8,
    },
    Triage {
        x: u8,
        danger: bool,
    },
}

/// Away reasons the property tests give: defaults, helpline b's own, and unknown ones.
const REASONS: [&str; 4] = ["break", "lunch", "training", "nap"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..5, 0u8..8, 0u8..8, 0u8..4, prop_oneof![1 => Just(0u32), 4 => 1u32..4])
            .prop_map(|(c, first, backup, langs, cap)| Op::Upsert { c, first, backup, langs, cap }),
        1 => (0u8..5).prop_map(|c| Op::Remove { c }),
        2 => (0u8..5).prop_map(|c| Op::Connect { c }),
        1 => (0u8..5).prop_map(|c| Op::Disconnect { c }),
        3 => (0u8..5, 0u8..4).prop_map(|(c, s)| Op::Status { c, s }),
        5 => (0u8..3, 0u8..2, -1i32..2, prop_oneof![3 => Just(0i64), 1 => 0i64..40_000], any::<bool>())
            .prop_map(|(h, l, prio, back, connected)| Op::Queue { h, l, prio, back, connected }),
        1 => (0u8..3, 0u8..2, 0u8..5, any::<bool>())
            .prop_map(|(h, l, c, connected)| Op::Restore { h, l, c, connected }),
        1 => (0u8..5, any::<u8>()).prop_map(|(c, x)| Op::Accept { c, x }),
        4 => any::<u8>().prop_map(|x| Op::AcceptRinging { x }),
        1 => (0u8..5, any::<u8>()).prop_map(|(c, x)| Op::Decline { c, x }),
        2 => any::<u8>().prop_map(|x| Op::DeclineRinging { x }),
        1 => (0u8..5, any::<u8>()).prop_map(|(c, x)| Op::EndByCounsellor { c, x }),
        2 => any::<u8>().prop_map(|x| Op::EndOwn { x }),
        1 => any::<u8>().prop_map(|x| Op::EndByCaller { x }),
        1 => any::<u8>().prop_map(|x| Op::CallerDisconnected { x }),
        1 => any::<u8>().prop_map(|x| Op::CallerConnected { x }),
        1 => (any::<u8>(), -2i32..3).prop_map(|(x, p)| Op::Priority { x, p }),
        4 => prop_oneof![0i64..3_000, 0i64..40_000].prop_map(|dt| Op::Tick { dt }),
        3 => Just(Op::TickAtDeadline),
        1 => (0u8..5, any::<u8>()).prop_map(|(c, x)| Op::Ready { c, x }),
        2 => any::<u8>().prop_map(|i| Op::ReadyOwn { i }),
        1 => (0u8..5, 0u8..4).prop_map(|(c, r)| Op::Away { c, r }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(x, danger)| Op::Triage { x, danger }),
    ]
}

fn mask_set<const N: usize>(mask: u8, names: [&str; N]) -> BTreeSet<String> {
    names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n.to_string()).collect()
}

/// What the test knows independently of the engine, built from the outputs alone.
#[derive(Default)]
struct Model {
    live: BTreeSet<ContactId>,
    ended: BTreeSet<ContactId>,
    answered: BTreeSet<ContactId>,
    at_risk: BTreeSet<ContactId>,
    breached: BTreeSet<ContactId>,
    /// Ringing offers: contact -> (counsellor, expires_at).
    ringing: BTreeMap<ContactId, (CounsellorId, Millis)>,
    tried: BTreeMap<(ContactId, CounsellorId), Millis>,
    positions: BTreeMap<ContactId, u32>,
    /// Counsellors whose capacity was lowered or who got restored contacts: may exceed capacity.
    may_exceed: BTreeSet<CounsellorId>,
    capacity: BTreeMap<CounsellorId, u32>,
    contacts: Vec<ContactId>,
    /// Slots in wrap-up: (counsellor, ended contact) -> until.
    wrapups: BTreeMap<(CounsellorId, ContactId), Millis>,
    /// The wrap-up a `Ready` input names (it may end only that one).
    ready: Option<(CounsellorId, ContactId)>,
    /// Contacts whose triage answer was taken (only the first counts).
    triaged: BTreeSet<ContactId>,
}

/// Whether `cv` may be offered `w` at `now` (ignoring ringing and tried); `Some(as_backup)`.
/// In the property tests, every third contact is a call ...
fn is_test_call(x: ContactId) -> bool {
    x.0.is_multiple_of(3)
}

/// ... and counsellors with even ids have an extension.
fn has_extension(c: CounsellorId) -> bool {
    c.0.is_multiple_of(2)
}

/// Every fifth contact is senior-only (its caller was routed to senior counsellors) ...
fn is_test_senior_only(x: ContactId) -> bool {
    x.0.is_multiple_of(5)
}

/// ... and counsellors 1, 4, 7, … are senior.
fn is_test_senior(c: CounsellorId) -> bool {
    c.0 % 3 == 1
}

fn model_eligible(cv: &CounsellorView, w: &WaitingView, now: Millis) -> Option<bool> {
    // Slots in wrap-up are taken; a caller who is gone rings nobody (no helpline here rings them).
    if cv.removed
        || !cv.connected
        || cv.status != Status::Available
        || (cv.active.len() + cv.wrapping_up.len()) as u64 >= u64::from(cv.capacity)
        || !cv.languages.contains(&w.language)
        || !w.caller_connected
    {
        return None;
    }
    // Calls are every third contact id; counsellors with even ids have an extension.
    let on_call = cv.active.iter().any(|&a| is_test_call(a));
    if on_call || (is_test_call(w.contact) && !has_extension(cv.id)) {
        return None;
    }
    if is_test_senior_only(w.contact) && !is_test_senior(cv.id) {
        return None;
    }
    if cv.helplines.contains(&w.helpline) {
        return Some(false);
    }
    let cfg = prop_config_for(&w.helpline);
    if cv.backup_helplines.contains(&w.helpline) && now - w.queued_at >= cfg.backup_after_ms {
        return Some(true);
    }
    None
}

fn counsellor_id(c: u8, n: u8) -> CounsellorId {
    if c < n {
        CounsellorId(u128::from(c) + 1)
    } else {
        CounsellorId(99)
    }
}

fn pick(m: &Model, i: u8) -> ContactId {
    if m.contacts.is_empty() {
        ContactId(999)
    } else {
        m.contacts[usize::from(i) % m.contacts.len()]
    }
}

/// A contact ringing now, if any (else any contact).
fn pick_ringing(m: &Model, i: u8) -> ContactId {
    let ringing: Vec<ContactId> = m.ringing.keys().copied().collect();
    if ringing.is_empty() {
        pick(m, i)
    } else {
        ringing[usize::from(i) % ringing.len()]
    }
}

/// A contact in conversation, if any (else any contact).
fn pick_assigned(m: &Model, e: &Engine, i: u8) -> ContactId {
    let assigned: Vec<ContactId> = e.snapshot().assigned.iter().map(|a| a.contact).collect();
    if assigned.is_empty() {
        pick(m, i)
    } else {
        assigned[usize::from(i) % assigned.len()]
    }
}

fn to_input(op: &Op, e: &Engine, m: &mut Model, now: &mut Millis, n: u8, next_id: &mut u128) -> Input {
    let cid = |c: u8| counsellor_id(c, n);
    match *op {
        Op::Upsert { c, first, backup, langs, cap } => {
            let id = cid(c);
            if m.capacity.get(&id).is_some_and(|&old| cap < old) {
                m.may_exceed.insert(id);
            }
            m.capacity.insert(id, cap);
            Input::UpsertCounsellor(CounsellorProfile {
                id,
                helplines: mask_set(first, HELPLINES),
                backup_helplines: mask_set(backup, HELPLINES),
                languages: mask_set(langs, LANGUAGES),
                capacity: cap,
                // Every other counsellor has an extension.
                takes_calls: has_extension(id),
                senior: is_test_senior(id),
            })
        }
        Op::Remove { c } => Input::RemoveCounsellor { counsellor: cid(c) },
        Op::Connect { c } => Input::CounsellorConnected { counsellor: cid(c) },
        Op::Disconnect { c } => Input::CounsellorDisconnected { counsellor: cid(c) },
        Op::Status { c, s } => Input::SetStatus {
            counsellor: cid(c),
            status: match s {
                0 | 1 => Status::Available,
                2 => Status::Away,
                _ => Status::Offline,
            },
        },
        Op::Queue { h, l, prio, back, connected } => {
            *next_id += 1;
            let id = ContactId(*next_id);
            m.contacts.push(id);
            m.live.insert(id);
            Input::ContactQueued(NewContact {
                id,
                // Every third contact is a call.
                channel: if is_test_call(id) { Channel::Call } else { Channel::Chat },
                helpline: HELPLINES[usize::from(h)].into(),
                language: LANGUAGES[usize::from(l)].into(),
                priority: prio,
                queued_at: now.saturating_sub(back),
                caller_connected: connected,
                senior_only: is_test_senior_only(id),
            })
        }
        Op::Restore { h, l, c, connected } => {
            *next_id += 1;
            let id = ContactId(*next_id);
            m.contacts.push(id);
            m.live.insert(id);
            m.answered.insert(id);
            let counsellor = cid(c);
            m.may_exceed.insert(counsellor);
            Input::ContactRestoredAssigned {
                contact: NewContact {
                    id,
                    channel: if is_test_call(id) { Channel::Call } else { Channel::Chat },
                    helpline: HELPLINES[usize::from(h)].into(),
                    language: LANGUAGES[usize::from(l)].into(),
                    priority: 0,
                    queued_at: now.saturating_sub(30_000),
                    caller_connected: connected,
                    senior_only: is_test_senior_only(id),
                },
                counsellor,
                answered_at: now.saturating_sub(10_000),
            }
        }
        Op::Accept { c, x } => Input::Accept { counsellor: cid(c), contact: pick(m, x) },
        Op::AcceptRinging { x } => {
            let contact = pick_ringing(m, x);
            let counsellor = m.ringing.get(&contact).map_or(CounsellorId(1), |r| r.0);
            Input::Accept { counsellor, contact }
        }
        Op::Decline { c, x } => Input::Decline { counsellor: cid(c), contact: pick(m, x) },
        Op::DeclineRinging { x } => {
            let contact = pick_ringing(m, x);
            let counsellor = m.ringing.get(&contact).map_or(CounsellorId(1), |r| r.0);
            Input::Decline { counsellor, contact }
        }
        Op::EndByCounsellor { c, x } => Input::EndByCounsellor { counsellor: cid(c), contact: pick(m, x) },
        Op::EndOwn { x } => {
            let contact = pick_assigned(m, e, x);
            let counsellor = e.assigned_counsellor(contact).unwrap_or(CounsellorId(1));
            Input::EndByCounsellor { counsellor, contact }
        }
        Op::EndByCaller { x } => Input::EndByCaller { contact: pick(m, x) },
        Op::CallerDisconnected { x } => Input::CallerDisconnected { contact: pick(m, x) },
        Op::CallerConnected { x } => Input::CallerConnected { contact: pick(m, x) },
        Op::Priority { x, p } => Input::SetPriority { contact: pick(m, x), priority: p },
        Op::Tick { dt } => {
            *now = now.saturating_add(dt);
            Input::Tick
        }
        Op::TickAtDeadline => {
            *now = e.next_deadline().unwrap_or(now.saturating_add(1));
            Input::Tick
        }
        Op::Ready { c, x } => {
            let (counsellor, contact) = (cid(c), pick(m, x));
            m.ready = Some((counsellor, contact));
            Input::Ready { counsellor, contact }
        }
        Op::ReadyOwn { i } => {
            let keys: Vec<_> = m.wrapups.keys().copied().collect();
            let (counsellor, contact) = if keys.is_empty() { (CounsellorId(1), ContactId(1)) } else { keys[usize::from(i) % keys.len()] };
            m.ready = Some((counsellor, contact));
            Input::Ready { counsellor, contact }
        }
        Op::Away { c, r } => Input::SetAway { counsellor: cid(c), reason: REASONS[usize::from(r) % REASONS.len()].into() },
        Op::Triage { x, danger } => Input::Triage { contact: pick(m, x), danger },
    }
}

/// Check one handle's outputs against the model and the snapshots before and after.
fn check_step(m: &mut Model, now: Millis, before: &Snapshot, out: &[Output], e: &Engine) -> Result<(), TestCaseError> {
    let after = e.snapshot();
    let cv_after: BTreeMap<CounsellorId, &CounsellorView> = after.counsellors.iter().map(|v| (v.id, v)).collect();
    let cv_before: BTreeMap<CounsellorId, &CounsellorView> = before.counsellors.iter().map(|v| (v.id, v)).collect();
    let waiting: BTreeMap<ContactId, &WaitingView> = after.waiting.iter().map(|w| (w.contact, w)).collect();

    let mut seen_positions = false;
    let mut offers_made = Vec::new();
    for o in out {
        prop_assert!(!seen_positions, "Positions must be last: {:?}", out);
        match o {
            Output::Offer { contact, counsellor, .. } => {
                prop_assert!(m.live.contains(contact), "offer of unknown {:?}", contact);
                // Calls (every third id) ring only counsellors with an extension (even ids), and
                // nobody on a call is rung with anything (no helpline here allows chats on a call).
                let on_call =
                    cv_after.get(counsellor).is_some_and(|v| v.ringing == Some(*contact) && v.active.iter().any(|&a| is_test_call(a)));
                prop_assert!(!on_call, "{:?} rung with {:?} while on a call", counsellor, contact);
                if is_test_call(*contact) {
                    prop_assert!(has_extension(*counsellor), "call {:?} offered to {:?} without an extension", contact, counsellor);
                }
                // A senior-only contact is never offered to a counsellor who is not senior.
                if is_test_senior_only(*contact) {
                    prop_assert!(is_test_senior(*counsellor), "senior-only {:?} offered to {:?}, not senior", contact, counsellor);
                }
                prop_assert!(!m.answered.contains(contact), "offer of assigned {:?}", contact);
                prop_assert!(!m.ringing.contains_key(contact), "two offers for {:?}", contact);
                prop_assert!(!m.ringing.values().any(|r| r.0 == *counsellor), "{:?} rings twice", counsellor);
                offers_made.push(o.clone());
                if let Output::Offer { expires_at, .. } = o {
                    m.ringing.insert(*contact, (*counsellor, *expires_at));
                }
            }
            Output::OfferRevoked { contact, counsellor, reason } => {
                prop_assert!(offers_made.is_empty(), "revocation after offers: {:?}", out);
                let r = m.ringing.remove(contact);
                prop_assert_eq!(r.map(|r| r.0), Some(*counsellor));
                if *reason == RevokeReason::Expired {
                    let (_, exp) = r.unwrap_or((*counsellor, now));
                    prop_assert!(exp <= now);
                    m.tried.insert((*contact, *counsellor), exp);
                }
            }
            Output::Transferred { .. } | Output::Refused { .. } => {
                prop_assert!(false, "supervisor outputs without supervisor inputs: {:?}", o);
            }
            Output::OfferDeclined { contact, counsellor } => {
                let r = m.ringing.remove(contact);
                prop_assert_eq!(r.map(|r| r.0), Some(*counsellor));
                m.tried.insert((*contact, *counsellor), now);
            }
            Output::Assigned { contact, counsellor, answered_at } => {
                prop_assert_eq!(*answered_at, now);
                let r = m.ringing.remove(contact);
                prop_assert_eq!(r.map(|r| r.0), Some(*counsellor));
                prop_assert!(m.answered.insert(*contact), "assigned twice");
                let b = cv_before.get(counsellor);
                prop_assert!(
                    b.is_some_and(|b| ((b.active.len() + b.wrapping_up.len()) as u64) < u64::from(b.capacity)),
                    "assigned to a full counsellor (wrap-ups count)"
                );
            }
            Output::Ended { contact, counsellor, abandoned, .. } => {
                prop_assert!(m.live.remove(contact), "Ended for a contact not live: {:?}", contact);
                prop_assert!(m.ended.insert(*contact), "Ended twice");
                prop_assert!(!m.ringing.contains_key(contact), "ended while ringing");
                prop_assert_eq!(*abandoned, counsellor.is_none());
                prop_assert_eq!(*abandoned, !m.answered.contains(contact));
                m.positions.remove(contact);
            }
            Output::SlaAtRisk { contact, waited_ms } => {
                let right_wait = waiting
                    .get(contact)
                    .is_none_or(|w| *waited_ms == now - w.queued_at && *waited_ms >= prop_config_for(&w.helpline).sla_at_risk_ms);
                prop_assert!(right_wait, "wrong waited_ms");
                prop_assert!(m.live.contains(contact) && !m.answered.contains(contact));
                prop_assert!(m.at_risk.insert(*contact), "SlaAtRisk twice");
            }
            Output::SlaBreached { contact, waited_ms } => {
                let right_wait = waiting
                    .get(contact)
                    .is_none_or(|w| *waited_ms == now - w.queued_at && *waited_ms >= prop_config_for(&w.helpline).sla_target_ms);
                prop_assert!(right_wait, "wrong waited_ms");
                prop_assert!(m.live.contains(contact) && !m.answered.contains(contact));
                prop_assert!(m.breached.insert(*contact), "SlaBreached twice");
            }
            Output::BackupOverflow { contact } => {
                prop_assert!(m.live.contains(contact) && !m.answered.contains(contact));
            }
            Output::Positions { positions } => {
                seen_positions = true;
                prop_assert!(!positions.is_empty());
                for (id, p) in positions {
                    prop_assert!(m.positions.get(id) != Some(p), "unchanged position reported");
                    m.positions.insert(*id, *p);
                }
            }
            Output::WrapUp { counsellor, contact, until } => {
                // Right after its contact ended in conversation with this counsellor.
                let ended_here = m.ended.contains(contact) && m.answered.contains(contact);
                prop_assert!(ended_here, "wrap-up of {:?}, not ended in conversation", contact);
                let cfg = cv_after.get(counsellor).map(|_| ());
                prop_assert!(cfg.is_some(), "wrap-up for unknown {:?}", counsellor);
                prop_assert!(*until > now);
                m.wrapups.insert((*counsellor, *contact), *until);
            }
            Output::WrapUpEnded { counsellor, contact, reason } => {
                let until = m.wrapups.remove(&(*counsellor, *contact));
                prop_assert!(until.is_some(), "end of a wrap-up that was not on: {:?}", o);
                match reason {
                    WrapUpEnd::Limit => prop_assert!(until.is_some_and(|u| u <= now), "limit not reached"),
                    WrapUpEnd::Ready => prop_assert_eq!(m.ready, Some((*counsellor, *contact))),
                }
            }
            Output::Triaged { contact, priority, danger, .. } => {
                prop_assert!(m.live.contains(contact));
                prop_assert!(m.triaged.insert(*contact), "a second triage answer counted");
                let now_priority = waiting
                    .get(contact)
                    .map(|w| w.priority)
                    .or_else(|| after.assigned.iter().find(|a| a.contact == *contact).map(|a| a.priority));
                prop_assert_eq!(now_priority, Some(*priority));
                if *danger {
                    prop_assert!(*priority >= triage::PRIORITY_DANGER);
                }
            }
            Output::StatusChanged { .. } | Output::Rejected { .. } | Output::AwayRefused { .. } => {}
        }
    }
    m.ready = None;
    // The engine's wrap-ups are the model's.
    let engine_wrapups: BTreeMap<(CounsellorId, ContactId), Millis> =
        after.counsellors.iter().flat_map(|c| c.wrapping_up.iter().map(move |&(x, u)| ((c.id, x), u))).collect();
    prop_assert_eq!(&engine_wrapups, &m.wrapups);
    m.positions.retain(|id, _| waiting.contains_key(id));

    // No contact lost; engine and model agree on who is where.
    let in_engine: BTreeSet<ContactId> = after.waiting.iter().map(|w| w.contact).chain(after.assigned.iter().map(|a| a.contact)).collect();
    prop_assert_eq!(&in_engine, &m.live);
    for a in &after.assigned {
        prop_assert!(m.answered.contains(&a.contact));
        prop_assert!(cv_after.get(&a.counsellor).is_some_and(|c| c.active.contains(&a.contact)));
    }
    let total_active: usize = after.counsellors.iter().map(|c| c.active.len()).sum();
    prop_assert_eq!(total_active, after.assigned.len());

    // Ringing state is consistent and matches the output stream.
    for w in &after.waiting {
        prop_assert!(!m.answered.contains(&w.contact));
        prop_assert_eq!(w.offered_to, m.ringing.get(&w.contact).map(|r| r.0));
        if let Some(cid) = w.offered_to {
            prop_assert_eq!(cv_after.get(&cid).and_then(|c| c.ringing), Some(w.contact));
        }
        prop_assert_eq!(m.positions.get(&w.contact), Some(&w.position));
        prop_assert_eq!(e.position(w.contact), Some(w.position));
    }
    for cv in &after.counsellors {
        if let Some(xid) = cv.ringing {
            prop_assert_eq!(waiting.get(&xid).and_then(|w| w.offered_to), Some(cv.id));
        }
        if !m.may_exceed.contains(&cv.id) {
            prop_assert!((cv.active.len() + cv.wrapping_up.len()) as u64 <= u64::from(cv.capacity), "over capacity (wrap-ups count)");
        }
    }

    // Every ringing offer is still held by an eligible counsellor (others were revoked).
    for w in &after.waiting {
        if let Some(cid) = w.offered_to {
            let cv = cv_after.get(&cid);
            prop_assert!(
                cv.is_some_and(|cv| model_eligible(cv, w, now).is_some()),
                "{:?} keeps ringing with {:?} while ineligible",
                cid,
                w.contact
            );
        }
    }

    // Every offer made went to a counsellor eligible at that moment.
    for o in &offers_made {
        if let Output::Offer { contact, counsellor, expires_at, as_backup, helpline, .. } = o {
            let w = waiting.get(contact);
            let cv = cv_after.get(counsellor);
            prop_assert!(w.is_some() && cv.is_some());
            if let (Some(w), Some(cv)) = (w, cv) {
                prop_assert_eq!(model_eligible(cv, w, now), Some(*as_backup), "offer to ineligible");
                if let Some(&tried_at) = m.tried.get(&(*contact, *counsellor)) {
                    prop_assert!(now >= tried_at + prop_config_for(helpline).ring_timeout_ms);
                }
            }
            prop_assert_eq!(*expires_at, now + prop_config_for(helpline).ring_timeout_ms);
        }
    }

    // Work conservation.
    for w in after.waiting.iter().filter(|w| w.offered_to.is_none()) {
        let ring = prop_config_for(&w.helpline).ring_timeout_ms;
        for cv in after.counsellors.iter().filter(|c| c.ringing.is_none()) {
            let cooling = m.tried.get(&(w.contact, cv.id)).is_some_and(|&at| now < at + ring);
            prop_assert!(cooling || model_eligible(cv, w, now).is_none(), "{:?} idles while {:?} waits", cv.id, w.contact);
        }
    }

    // Deadlines: in the future, and a Tick there makes progress.
    if let Some(d) = e.next_deadline() {
        prop_assert!(d > now, "deadline {} not after now {}", d, now);
        // Nothing is due before the deadline...
        if d - 1 > now {
            let mut early = e.clone();
            let o = early.handle(d - 1, Input::Tick);
            prop_assert!(o.is_empty(), "something was due before next_deadline {}: {:?}", d, o);
        }
        // ...and a Tick at it makes progress.
        let mut probe = e.clone();
        let o = probe.handle(d, Input::Tick);
        let later = probe.next_deadline().is_none_or(|d2| d2 > d);
        prop_assert!(!o.is_empty() || later, "Tick at deadline made no progress");
    }
    Ok(())
}

proptest! {
    // No regression files: this folder is also built from a scratch crate, which must not write outside it.
    #![proptest_config(fuzz_config(512))]

    #[test]
    fn invariants_hold_over_random_sequences(
        n in 2u8..=4,
        setup in prop::collection::vec((1u8..8, 0u8..8, 1u8..4, 1u32..4), 4),
        // The third number sets the clock back for that step: the engine must act at its last `now`.
        ops in prop::collection::vec((0i64..2_000, op(), prop_oneof![6 => Just(0i64), 1 => 1i64..50_000]), 1..60),
    ) {
        let mut e = Engine::new(prop_config());
        let mut m = Model::default();
        let mut now: Millis = 1_000_000;
        let mut next_id = 0u128;
        // Most counsellors start online with a random (non-empty) profile.
        let mut script: Vec<(i64, Op, i64)> = Vec::new();
        for (i, &(first, backup, langs, cap)) in setup.iter().enumerate().take(usize::from(n)) {
            let c = i as u8;
            script.push((0, Op::Upsert { c, first, backup, langs, cap }, 0));
            script.push((0, Op::Connect { c }, 0));
            script.push((0, Op::Status { c, s: 0 }, 0));
        }
        script.extend(ops.iter().cloned());
        for (dt, op, back) in &script {
            let before = e.snapshot();
            let out = if *back > 0 {
                // A clock set back (NTP, a VM resumed): an earlier time than the last step's; the
                // engine must go on at the last one, which is what the model checks against.
                let mut ignored = now;
                let input = to_input(op, &e, &mut m, &mut ignored, n, &mut next_id);
                e.handle(now - back, input)
            } else {
                now += dt;
                let input = to_input(op, &e, &mut m, &mut now, n, &mut next_id);
                e.handle(now, input)
            };
            check_step(&mut m, now, &before, &out, &e)?;
        }
    }

    #[test]
    fn same_inputs_same_outputs(
        n in 2u8..=4,
        ops in prop::collection::vec((0i64..2_000, op()), 1..40),
    ) {
        let run = || {
            let mut e = Engine::new(prop_config());
            let mut m = Model::default();
            let mut now: Millis = 0;
            let mut next_id = 0u128;
            let mut all = Vec::new();
            for (dt, op) in &ops {
                now += dt;
                let input = to_input(op, &e, &mut m, &mut now, n, &mut next_id);
                let out = e.handle(now, input);
                for o in &out {
                    if let Output::Offer { contact, counsellor, expires_at, .. } = o {
                        m.ringing.insert(*contact, (*counsellor, *expires_at));
                    }
                }
                all.push(out);
            }
            (all, e.snapshot())
        };
        prop_assert_eq!(run(), run());
    }
}

proptest! {
    #![proptest_config(fuzz_config(256))]

    /// Extreme times and nonsensical timings must not panic (no overflow, no unwrap).
    #[test]
    fn never_panics_on_extreme_values(
        timings in prop::collection::vec(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), -5i64..5, any::<i64>()],
            5,
        ),
        misses in 0u32..3,
        steps in prop::collection::vec(
            (prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>(), 0i64..20_000], op()),
            1..40,
        ),
    ) {
        let mut e = Engine::new(EngineConfig {
            helplines: vec![HelplineConfig {
                name: "a".into(),
                ring_timeout_ms: timings[0],
                backup_after_ms: timings[1],
                sla_at_risk_ms: timings[2],
                sla_target_ms: timings[3],
                caller_grace_ms: timings[4],
                chat_while_on_call: false,
                calls_first: true,
                // Extreme values here too: a wrap-up limit and a triage priority.
                wrapup_limit_ms: timings[0],
                away_reasons: Vec::new(),
                triage_priority: Some(timings[1].clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
                ring_offline_callers: misses == 1,
            }],
            misses_before_away: misses,
        });
        let mut m = Model::default();
        let mut next_id = 0u128;
        for (at, op) in &steps {
            let mut now = *at;
            let input = to_input(op, &e, &mut m, &mut now, 3, &mut next_id);
            let _ = e.handle(now, input);
            let _ = e.snapshot();
            let _ = e.next_deadline();
        }
        for (i, &at) in steps.iter().map(|(at, _)| at).enumerate() {
            let id = ContactId(1_000 + i as u128);
            let _ = e.handle(at, Input::ContactQueued(NewContact {
                id,
                channel: Channel::Chat,
                helpline: HELPLINES[i % 3].into(),
                language: "ro".into(),
                priority: i32::MIN,
                queued_at: at,
                caller_connected: i % 2 == 0,
                senior_only: i % 4 == 0,
            }));
            let _ = e.handle(at, Input::Tick);
            let _ = e.position(id);
        }
        let _ = e.handle(i64::MAX, Input::Tick);
        let _ = e.snapshot();
    }
}

// ----- calls ----------------------------------------------------------------------------------

fn with_extension(id: u128) -> CounsellorProfile {
    CounsellorProfile { takes_calls: true, ..children_ro(id) }
}

fn call(id: u128, queued_at: Millis) -> Input {
    Input::ContactQueued(NewContact { channel: Channel::Call, ..contact(id, "children", "ro", queued_at) })
}

fn offered_to(out: &[Output]) -> Vec<(ContactId, CounsellorId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Offer { contact, counsellor, .. } => Some((*contact, *counsellor)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_is_never_offered_to_a_counsellor_without_an_extension() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    let out = e.handle(t(1_000), call(10, t(1_000)));
    assert_eq!(offered_to(&out), vec![]);
    // A chat still goes to them.
    let out = e.handle(t(1_100), chat(11, t(1_100)));
    assert_eq!(offered_to(&out), vec![(x(11), c(1))]);
    // A counsellor with an extension gets the call.
    let out = online(&mut e, t(2_000), with_extension(2));
    assert_eq!(offered_to(&out), vec![(x(10), c(2))]);
}

#[test]
fn a_counsellor_on_a_call_gets_no_other_call_and_no_chat() {
    let mut e = engine();
    online(&mut e, t(0), with_extension(1));
    let out = e.handle(t(1_000), call(10, t(1_000)));
    assert_eq!(offered_to(&out), vec![(x(10), c(1))]);
    e.handle(t(2_000), accept(1, 10));
    // Room for two more contacts, but on a call: neither the call nor the chat rings for them.
    let out = e.handle(t(3_000), call(11, t(3_000)));
    assert_eq!(offered_to(&out), vec![]);
    let out = e.handle(t(3_100), chat(12, t(3_100)));
    assert_eq!(offered_to(&out), vec![]);
    // Another counsellor with an extension takes the waiting call first (calls rank above chats).
    let out = online(&mut e, t(4_000), with_extension(2));
    assert_eq!(offered_to(&out), vec![(x(11), c(2))]);
    // The first call ends: the chat goes to the counsellor now free of calls.
    let out = e.handle(t(5_000), Input::EndByCaller { contact: x(10) });
    assert_eq!(offered_to(&out), vec![(x(12), c(1))]);
}

#[test]
fn a_helpline_may_allow_chats_during_a_call() {
    let mut config = HelplineConfig::with_defaults("children");
    config.chat_while_on_call = true;
    let mut e = Engine::new(EngineConfig { helplines: vec![config], misses_before_away: 2 });
    online(&mut e, t(0), with_extension(1));
    e.handle(t(1_000), call(10, t(1_000)));
    e.handle(t(2_000), accept(1, 10));
    let out = e.handle(t(3_000), chat(12, t(3_000)));
    assert_eq!(offered_to(&out), vec![(x(12), c(1))]);
    // But never a second call.
    e.handle(t(3_500), accept(1, 12));
    let out = e.handle(t(4_000), call(13, t(4_000)));
    assert_eq!(offered_to(&out), vec![]);
}

#[test]
fn calls_rank_above_chats_at_equal_priority_unless_the_helpline_says_otherwise() {
    for calls_first in [true, false] {
        let mut config = HelplineConfig::with_defaults("children");
        config.calls_first = calls_first;
        let mut e = Engine::new(EngineConfig { helplines: vec![config], misses_before_away: 2 });
        e.handle(t(1_000), chat(10, t(1_000)));
        e.handle(t(2_000), call(11, t(2_000)));
        assert_eq!(e.position(x(11)), Some(if calls_first { 1 } else { 2 }));
        let out = online(&mut e, t(3_000), with_extension(1));
        let first = if calls_first { x(11) } else { x(10) };
        assert_eq!(offered_to(&out), vec![(first, c(1))]);
        // A chat of higher priority still goes first.
        let mut e2 = e.clone();
        e2.handle(t(3_100), Input::SetPriority { contact: x(10), priority: 5 });
        assert_eq!(e2.position(x(10)), Some(1));
    }
}

#[test]
fn a_call_not_picked_up_moves_to_the_next_counsellor() {
    let mut e = engine();
    online(&mut e, t(0), with_extension(1));
    online(&mut e, t(100), with_extension(2));
    let out = e.handle(t(1_000), call(10, t(1_000)));
    assert_eq!(offered_to(&out), vec![(x(10), c(1))]);
    let out = e.handle(t(9_000), Input::Tick);
    assert!(out.contains(&Output::OfferRevoked { contact: x(10), counsellor: c(1), reason: RevokeReason::Expired }));
    assert_eq!(offered_to(&out), vec![(x(10), c(2))]);
}

#[test]
fn losing_the_extension_revokes_a_ringing_call() {
    let mut e = engine();
    online(&mut e, t(0), with_extension(1));
    e.handle(t(1_000), call(10, t(1_000)));
    let out = e.handle(t(2_000), Input::UpsertCounsellor(children_ro(1)));
    assert_eq!(out, vec![Output::OfferRevoked { contact: x(10), counsellor: c(1), reason: RevokeReason::CounsellorUnavailable }]);
}

// ----- senior-only contacts ------------------------------------------------------------------

fn senior(id: u128) -> CounsellorProfile {
    CounsellorProfile { senior: true, ..children_ro(id) }
}

fn senior_only(id: u128, queued_at: Millis) -> Input {
    Input::ContactQueued(NewContact { senior_only: true, ..contact(id, "children", "ro", queued_at) })
}

#[test]
fn a_senior_only_contact_waits_for_a_senior_and_raises_the_usual_alerts() {
    let mut e = engine();
    // A free counsellor who is not senior, idle longest: never rung with it.
    online(&mut e, t(0), children_ro(1));
    let out = e.handle(t(1_000), senior_only(10, t(1_000)));
    assert_eq!(offered_to(&out), vec![]);
    let out = e.handle(t(11_000), Input::Tick);
    assert!(out.contains(&Output::SlaAtRisk { contact: x(10), waited_ms: 10_000 }), "{out:?}");
    let out = e.handle(t(16_000), Input::Tick);
    assert!(out.contains(&Output::SlaBreached { contact: x(10), waited_ms: 15_000 }), "{out:?}");
    // A supervisor cannot ring the non-senior with it either.
    let out = e.handle(t(16_500), Input::OfferTo { contact: x(10), counsellor: c(1) });
    assert_eq!(out, vec![Output::Refused { contact: x(10), refusal: Refusal::TargetUnavailable }]);
    // An ordinary contact still goes to the non-senior at once.
    let out = e.handle(t(17_000), Input::ContactQueued(contact(11, "children", "ro", t(17_000))));
    assert_eq!(offered_to(&out), vec![(x(11), c(1))]);
    // A senior comes online: rung at once.
    let out = online(&mut e, t(18_000), senior(2));
    assert_eq!(offered_to(&out), vec![(x(10), c(2))]);
}

#[test]
fn a_senior_only_conversation_is_not_transferred_to_a_non_senior() {
    let mut e = engine();
    online(&mut e, t(0), senior(1));
    online(&mut e, t(0), children_ro(2));
    let out = e.handle(t(1_000), senior_only(10, t(1_000)));
    assert_eq!(offered_to(&out), vec![(x(10), c(1))]);
    e.handle(t(2_000), Input::Accept { counsellor: c(1), contact: x(10) });
    let out = e.handle(t(3_000), Input::Transfer { contact: x(10), to: TransferTarget::Counsellor(c(2)) });
    assert_eq!(out, vec![Output::Refused { contact: x(10), refusal: Refusal::TargetUnavailable }]);
    // Back into the queue it stays senior-only: the free non-senior is not rung, the senior is.
    let out = e.handle(t(4_000), Input::Transfer { contact: x(10), to: TransferTarget::Helpline("children".into()) });
    assert_eq!(offered_to(&out), vec![(x(10), c(1))]);
}

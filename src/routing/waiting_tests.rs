//! Scenario tests (virtual time, exact outputs) of wrap-up, away reasons, offline callers and
//! triage. The property tests of `tests.rs` and `equivalence.rs` cover them over random sequences.

use super::tests::*;
use super::*;

fn with_capacity(id: u128, capacity: u32) -> CounsellorProfile {
    CounsellorProfile { capacity, ..children_ro(id) }
}

/// A children's helpline contact's end.
fn ended(contact: u128, counsellor: Option<u128>, reason: EndReason) -> Output {
    ended_at("children", contact, counsellor, reason)
}

fn ended_at(helpline: &str, contact: u128, counsellor: Option<u128>, reason: EndReason) -> Output {
    Output::Ended { contact: x(contact), helpline: helpline.into(), counsellor: counsellor.map(c), reason, abandoned: counsellor.is_none() }
}

fn wrap_up(counsellor: u128, contact: u128, until: Millis) -> Output {
    Output::WrapUp { counsellor: c(counsellor), contact: x(contact), until }
}

fn wrap_up_ended(counsellor: u128, contact: u128, reason: WrapUpEnd) -> Output {
    Output::WrapUpEnded { counsellor: c(counsellor), contact: x(contact), reason }
}

fn ready(counsellor: u128, contact: u128) -> Input {
    Input::Ready { counsellor: c(counsellor), contact: x(contact) }
}

fn away(counsellor: u128, reason: &str) -> Input {
    Input::SetAway { counsellor: c(counsellor), reason: reason.into() }
}

fn view(e: &Engine, id: u128) -> CounsellorView {
    e.counsellor(c(id)).expect("known counsellor")
}

// ----- wrap-up ---------------------------------------------------------------------------------

#[test]
fn a_slot_stays_in_wrap_up_until_the_counsellor_is_ready() {
    let mut e = engine_with(|_| {});
    online(&mut e, t(0), with_capacity(1, 1));
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![offer(1, 1, t(0), t(8_000)), positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(1_000), accept(1, 1)), vec![assigned(1, 1, t(1_000))]);
    assert_eq!(e.handle(t(2_000), chat(2, t(2_000))), vec![positions(&[(2, 1)])]);
    // The conversation ends: its slot goes into wrap-up, and the waiting chat is not offered.
    assert_eq!(
        e.handle(t(5_000), Input::EndByCounsellor { counsellor: c(1), contact: x(1) }),
        vec![ended(1, Some(1), EndReason::CounsellorEnded), wrap_up(1, 1, t(65_000))]
    );
    assert_eq!(view(&e, 1).wrapping_up, vec![(x(1), t(65_000))]);
    assert!(view(&e, 1).active.is_empty());
    // Someone else's ready, or a ready for another contact, changes nothing.
    assert_eq!(e.handle(t(5_500), ready(2, 1)), vec![]);
    assert_eq!(e.handle(t(5_500), ready(1, 2)), vec![]);
    // She is ready: the slot takes the waiting chat at once.
    assert_eq!(e.handle(t(6_000), ready(1, 1)), vec![wrap_up_ended(1, 1, WrapUpEnd::Ready), offer(2, 1, t(2_000), t(14_000))]);
    assert!(view(&e, 1).wrapping_up.is_empty());
    // A second ready for the same contact: nothing.
    assert_eq!(e.handle(t(6_500), ready(1, 1)), vec![]);
}

#[test]
fn a_wrap_up_ends_by_itself_at_the_helplines_limit() {
    let mut e = engine_with(|h| {
        if h.name == "disability" {
            h.wrapup_limit_ms = 0;
        }
        if h.name == "family_violence" {
            h.wrapup_limit_ms = 30_000;
        }
    });
    let mut p = profile(1, &["children", "disability", "family_violence"], &["ro"]);
    p.capacity = 1;
    online(&mut e, t(0), p);
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(1_000), accept(1, 1));
    // The caller ends it: wrap-up all the same, for the children's line's 60 s.
    assert_eq!(
        e.handle(t(2_000), Input::EndByCaller { contact: x(1) }),
        vec![ended(1, Some(1), EndReason::CallerEnded), wrap_up(1, 1, t(62_000))]
    );
    assert_eq!(e.next_deadline(), Some(t(62_000)));
    assert_eq!(e.handle(t(61_999), Input::Tick), vec![]);
    e.handle(t(61_999), Input::ContactQueued(contact(2, "family_violence", "ro", t(61_999))));
    assert_eq!(
        e.handle(t(62_000), Input::Tick),
        vec![wrap_up_ended(1, 1, WrapUpEnd::Limit), offer_full(2, 1, "family_violence", "ro", t(61_999), t(70_000), false)]
    );
    // A family-violence conversation: 30 s.
    e.handle(t(63_000), accept(1, 2));
    assert_eq!(
        e.handle(t(64_000), Input::EndByCounsellor { counsellor: c(1), contact: x(2) }),
        vec![ended_at("family_violence", 2, Some(1), EndReason::CounsellorEnded), wrap_up(1, 2, t(94_000))]
    );
    e.handle(t(94_000), Input::Tick);
    // A disability conversation: no wrap-up at all.
    e.handle(t(95_000), Input::ContactQueued(contact(3, "disability", "ro", t(95_000))));
    e.handle(t(96_000), accept(1, 3));
    assert_eq!(
        e.handle(t(97_000), Input::EndByCounsellor { counsellor: c(1), contact: x(3) }),
        vec![ended_at("disability", 3, Some(1), EndReason::CounsellorEnded)]
    );
    assert!(view(&e, 1).wrapping_up.is_empty());
}

#[test]
fn a_caller_lost_in_conversation_leaves_a_wrap_up_and_other_slots_still_take_offers() {
    let mut e = engine_with(|_| {});
    online(&mut e, t(0), with_capacity(1, 2));
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(1_000), accept(1, 1));
    e.handle(t(2_000), Input::CallerDisconnected { contact: x(1) });
    assert_eq!(e.next_deadline(), Some(t(122_000)));
    assert_eq!(e.handle(t(122_000), Input::Tick), vec![ended(1, Some(1), EndReason::CallerLost), wrap_up(1, 1, t(182_000))]);
    // One slot in wrap-up, the other free: a new chat rings.
    assert_eq!(e.handle(t(123_000), chat(2, t(123_000))), vec![offer(2, 1, t(123_000), t(131_000)), positions(&[(2, 1)])]);
    e.handle(t(124_000), accept(1, 2));
    // Now one conversation and one wrap-up fill her capacity of 2.
    assert_eq!(e.handle(t(125_000), chat(3, t(125_000))), vec![positions(&[(3, 1)])]);
    assert_eq!(e.handle(t(126_000), ready(1, 1)), vec![wrap_up_ended(1, 1, WrapUpEnd::Ready), offer(3, 1, t(125_000), t(134_000))]);
}

// ----- away reasons -------------------------------------------------------------------------------

#[test]
fn away_takes_a_reason_of_the_counsellors_helplines_and_refuses_others() {
    let mut e = engine_with(|h| {
        if h.name == "family_violence" {
            h.away_reasons = vec!["debrief".into()];
        }
    });
    online(&mut e, t(0), children_ro(1));
    online(&mut e, t(0), profile(2, &["family_violence"], &["ro"]));
    assert_eq!(e.handle(t(1_000), away(1, "break")), vec![]);
    let v = view(&e, 1);
    assert_eq!((v.status, v.away_reason.as_deref(), v.status_since), (Status::Away, Some("break"), t(1_000)));
    // Another reason while away: kept, the time away runs on.
    assert_eq!(e.handle(t(2_000), away(1, "training")), vec![]);
    assert_eq!((view(&e, 1).away_reason.as_deref(), view(&e, 1).status_since), (Some("training"), t(1_000)));
    // Family violence names its own: the defaults are not among them.
    let refused = |reason: &str| Output::AwayRefused { counsellor: c(2), reason: reason.into() };
    assert_eq!(e.handle(t(3_000), away(2, "break")), vec![refused("break")]);
    assert_eq!(view(&e, 2).status, Status::Available, "a refused reason changes nothing");
    assert_eq!(e.handle(t(3_000), away(2, "debrief")), vec![]);
    assert_eq!(e.handle(t(3_000), away(1, "debrief")), vec![Output::AwayRefused { counsellor: c(1), reason: "debrief".into() }]);
    assert_eq!(e.handle(t(3_000), away(9, "break")), vec![], "an unknown counsellor: nothing");
    // Any other status clears the reason.
    e.handle(t(4_000), status(1, Status::Available));
    assert_eq!(view(&e, 1).away_reason, None);
    // Going away while an offer rings takes it back (not a miss).
    assert_eq!(e.handle(t(5_000), chat(1, t(5_000))), vec![offer(1, 1, t(5_000), t(13_000)), positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(6_000), away(1, "admin")), vec![revoked(1, 1, RevokeReason::CounsellorUnavailable)]);
    assert_eq!(view(&e, 1).consecutive_misses, 0);
}

#[test]
fn missed_offers_set_away_with_their_own_reason() {
    let mut e = engine();
    online(&mut e, t(0), children_ro(1));
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(0), chat(2, t(0)));
    e.handle(t(8_000), Input::Tick);
    e.handle(t(16_000), Input::Tick);
    let v = view(&e, 1);
    assert_eq!((v.status, v.away_reason.as_deref()), (Status::Away, Some(away::MISSED_OFFERS)));
}

// ----- offline callers ----------------------------------------------------------------------------

#[test]
fn a_caller_who_dropped_keeps_her_place_but_rings_nobody_until_she_is_back() {
    let mut e = engine_with(|_| {});
    online(&mut e, t(0), children_ro(1));
    assert_eq!(e.handle(t(0), chat(1, t(0))), vec![offer(1, 1, t(0), t(8_000)), positions(&[(1, 1)])]);
    // Her socket goes: the ringing offer is taken back at once, and it is not the counsellor's miss.
    assert_eq!(e.handle(t(1_000), Input::CallerDisconnected { contact: x(1) }), vec![revoked(1, 1, RevokeReason::CallerAway)]);
    assert_eq!(e.position(x(1)), Some(1), "she keeps her place");
    assert_eq!(view(&e, 1).consecutive_misses, 0);
    // The chat behind her is offered; she is not.
    assert_eq!(e.handle(t(2_000), chat(2, t(2_000))), vec![offer(2, 1, t(2_000), t(10_000)), positions(&[(2, 2)])]);
    assert_eq!(e.handle(t(2_500), accept(1, 2)), vec![assigned(2, 1, t(2_500))]);
    // Back within the grace period: offered at once, saying she is online.
    assert_eq!(e.handle(t(3_000), Input::CallerConnected { contact: x(1) }), vec![offer(1, 1, t(0), t(11_000))]);
    // Gone again: taken back; her answer clock runs on, and nobody rings until the grace ends.
    assert_eq!(e.handle(t(4_000), Input::CallerDisconnected { contact: x(1) }), vec![revoked(1, 1, RevokeReason::CallerAway)]);
    assert_eq!(e.handle(t(100_000), Input::Tick), vec![at_risk(1, 100_000), overflow(1), breached(1, 100_000)]);
    assert_eq!(e.handle(t(124_000), Input::Tick), vec![ended(1, None, EndReason::CallerLost)]);
    let v = view(&e, 1);
    assert_eq!((v.status, v.consecutive_misses), (Status::Available, 0), "gone callers never set her away");
}

#[test]
fn a_restored_chat_waits_for_its_caller_to_come_back() {
    let mut e = engine_with(|_| {});
    online(&mut e, t(0), children_ro(1));
    let mut a = contact(1, "children", "ro", t(0));
    a.caller_connected = false;
    assert_eq!(e.handle(t(1_000), Input::ContactQueued(a)), vec![positions(&[(1, 1)])]);
    assert_eq!(e.handle(t(2_000), Input::CallerConnected { contact: x(1) }), vec![offer(1, 1, t(0), t(10_000))]);
}

#[test]
fn where_offline_callers_still_ring_the_offer_says_so_and_a_ring_out_is_no_miss() {
    let mut e = engine_with(|h| h.ring_offline_callers = true);
    online(&mut e, t(0), children_ro(1));
    e.handle(t(0), chat(1, t(0)));
    assert_eq!(e.handle(t(500), Input::CallerDisconnected { contact: x(1) }), vec![], "still ringing");
    assert_eq!(e.handle(t(8_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired)]);
    // Rung again once the cooldown is over, saying she is offline; ringing out again sets nobody away.
    assert_eq!(
        e.handle(t(16_000), Input::Tick),
        vec![at_risk(1, 16_000), overflow(1), breached(1, 16_000), caller_offline(offer(1, 1, t(0), t(24_000)))]
    );
    assert_eq!(e.handle(t(24_000), Input::Tick), vec![revoked(1, 1, RevokeReason::Expired)]);
    let v = view(&e, 1);
    assert_eq!((v.status, v.consecutive_misses), (Status::Available, 0));
}

// ----- triage ------------------------------------------------------------------------------------

#[test]
fn a_triage_yes_jumps_the_queue_at_once_and_only_the_first_answer_counts() {
    let mut e = engine_with(|h| {
        if h.name == "children" {
            h.triage_priority = Some(triage::PRIORITY_DANGER);
        }
    });
    e.handle(t(0), chat(1, t(0)));
    assert_eq!(e.handle(t(1_000), chat(2, t(1_000))), vec![positions(&[(2, 2)])]);
    let triaged =
        |contact: u128, danger: bool, priority: i32| Output::Triaged { contact: x(contact), helpline: "children".into(), danger, priority };
    assert_eq!(
        e.handle(t(2_000), Input::Triage { contact: x(2), danger: true }),
        vec![triaged(2, true, triage::PRIORITY_DANGER), positions(&[(2, 1), (1, 2)])]
    );
    assert_eq!(e.handle(t(2_500), Input::Triage { contact: x(2), danger: false }), vec![], "answered already");
    assert_eq!(e.handle(t(3_000), Input::Triage { contact: x(1), danger: false }), vec![triaged(1, false, 0)]);
    assert_eq!(e.handle(t(3_000), Input::Triage { contact: x(9), danger: true }), vec![], "unknown contact");
    // A helpline that does not ask ignores answers.
    e.handle(t(3_000), Input::ContactQueued(contact(3, "disability", "ro", t(3_000))));
    assert_eq!(e.handle(t(3_500), Input::Triage { contact: x(3), danger: true }), vec![]);
    // The first counsellor gets the caller in danger first.
    assert_eq!(online(&mut e, t(4_000), children_ro(1)), vec![offer(2, 1, t(1_000), t(12_000))]);
}

// ----- a restart -------------------------------------------------------------------------------

#[test]
fn a_restart_restores_away_reasons_and_wrap_ups_before_the_counsellor_connects() {
    let mut e = engine_with(|_| {});
    // Restored from the database: Ana away for training since 1 s before, Ion with a slot in wrap-up
    // until 40 s and another already past its limit.
    let restore_ana = Input::RestoreCounsellor { counsellor: c(1), away: Some(("training".into(), t(9_000))), wrapups: vec![] };
    assert_eq!(e.handle(t(10_000), restore_ana), vec![]);
    let restore_ion = Input::RestoreCounsellor { counsellor: c(2), away: None, wrapups: vec![(x(7), t(40_000)), (x(8), t(5_000))] };
    assert_eq!(e.handle(t(10_000), restore_ion), vec![wrap_up_ended(2, 8, WrapUpEnd::Limit)], "a wrap-up past its limit ends at once");
    assert_eq!(
        (view(&e, 1).status, view(&e, 1).away_reason.as_deref(), view(&e, 1).status_since),
        (Status::Away, Some("training"), t(9_000))
    );
    // They connect with the status they last chose: Ana stays away for training, Ion's slot stays in wrap-up.
    let ana = with_capacity(1, 1);
    e.handle(t(11_000), Input::UpsertCounsellor(ana));
    e.handle(t(11_000), Input::CounsellorConnected { counsellor: c(1) });
    assert_eq!(e.handle(t(11_000), Input::SetStatus { counsellor: c(1), status: Status::Away }), vec![]);
    assert_eq!(view(&e, 1).away_reason.as_deref(), Some("training"), "the reason survives the restart");
    online(&mut e, t(11_000), with_capacity(2, 1));
    assert_eq!(view(&e, 2).wrapping_up, vec![(x(7), t(40_000))]);
    assert_eq!(e.handle(t(12_000), chat(1, t(12_000))), vec![positions(&[(1, 1)])], "Ion's only slot is in wrap-up");
    // At its limit the slot takes the waiting chat (after the chat's SLA events, due earlier).
    let out = e.handle(t(40_000), Input::Tick);
    assert!(out.ends_with(&[wrap_up_ended(2, 7, WrapUpEnd::Limit), offer(1, 2, t(12_000), t(48_000))]), "{out:?}");
}

#[test]
fn new_waiting_settings_apply_from_then_on() {
    let mut e = engine_with(|_| {});
    online(&mut e, t(0), with_capacity(1, 2));
    e.handle(t(0), chat(1, t(0)));
    e.handle(t(1_000), accept(1, 1));
    // Triage not asked: an answer is ignored. Then children asks it, wrap-ups last 10 s, and "lunch" is a reason.
    e.handle(t(1_000), chat(2, t(1_000)));
    assert_eq!(e.handle(t(1_500), Input::Triage { contact: x(2), danger: true }), vec![]);
    e.set_waiting("children", 10_000, vec!["lunch".into()], Some(70));
    assert_eq!(e.helpline_config("children").map(|h| h.triage_priority), Some(Some(70)));
    e.handle(t(2_000), chat(3, t(2_000)));
    let out = e.handle(t(2_500), Input::Triage { contact: x(3), danger: true });
    assert!(out.contains(&Output::Triaged { contact: x(3), helpline: "children".into(), danger: true, priority: 70 }), "{out:?}");
    let out = e.handle(t(3_000), Input::EndByCounsellor { counsellor: c(1), contact: x(1) });
    assert!(out.contains(&wrap_up(1, 1, t(13_000))), "the new limit: {out:?}");
    assert_eq!(e.handle(t(4_000), away(1, "break")), vec![Output::AwayRefused { counsellor: c(1), reason: "break".into() }]);
    e.handle(t(4_000), away(1, "lunch"));
    assert_eq!(view(&e, 1).away_reason.as_deref(), Some("lunch"));
}

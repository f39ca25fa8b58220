//! Equivalence property tests: the incremental [`super::Engine`] against the straightforward
//! full-scan engine in `reference.rs`, step by step over random input sequences: identical
//! outputs (same order), snapshots, positions and deadlines, and indexes that match the state.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::reference;
use super::*;

const HELPLINES: [&str; 4] = ["a", "b", "c", "unconfigured"];
const LANGUAGES: [&str; 2] = ["ro", "ru"];
const COUNSELLORS: u8 = 5;
/// Contact ids are drawn from a small range so that ids are reused after a contact ends.
const CONTACTS: u8 = 14;

fn config() -> EngineConfig {
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
                // Chats alongside a call; calls queue with chats in plain FIFO.
                chat_while_on_call: true,
                calls_first: false,
                // A short wrap-up, its own away reasons, the triage question; offline callers still ring.
                wrapup_limit_ms: 3_000,
                away_reasons: vec!["lunch".into(), "break".into()],
                triage_priority: Some(triage::PRIORITY_DANGER),
                ring_offline_callers: true,
            },
            // Nonsensical values: clamped ring timeout, backups at once, SLA events already due.
            HelplineConfig {
                name: "c".into(),
                ring_timeout_ms: 0,
                backup_after_ms: -1,
                sla_at_risk_ms: 0,
                sla_target_ms: 3_000,
                caller_grace_ms: -5,
                chat_while_on_call: true,
                calls_first: true,
                // No wrap-up (a nonsensical limit), no reasons at all, triage below a transfer.
                wrapup_limit_ms: -1,
                away_reasons: Vec::new(),
                triage_priority: Some(1),
                ring_offline_callers: false,
            },
        ],
        misses_before_away: 2,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        c: u8,
        first: u8,
        backup: u8,
        langs: u8,
        cap: u32,
        /// Has an extension (takes calls).
        calls: bool,
        senior: bool,
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
        x: u8,
        h: u8,
        l: u8,
        prio: i32,
        back: i64,
        connected: bool,
        call: bool,
        /// Only seniors may take it.
        senior_only: bool,
    },
    Restore {
        x: u8,
        h: u8,
        l: u8,
        c: u8,
        connected: bool,
        back: i64,
        call: bool,
    },
    Accept {
        c: u8,
        x: u8,
    },
    AcceptRinging {
        i: u8,
    },
    Decline {
        c: u8,
        x: u8,
    },
    DeclineRinging {
        i: u8,
    },
    EndByCounsellor {
        c: u8,
        x: u8,
    },
    EndOwn {
        i: u8,
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
    OfferTo {
        x: u8,
        c: u8,
    },
    TransferTo {
        i: u8,
        c: u8,
    },
    TransferToHelpline {
        i: u8,
        h: u8,
    },
    /// A counsellor's own handover: `by` may or may not hold the contact.
    HandOver {
        by: u8,
        i: u8,
        h: u8,
    },
    Tick {
        dt: i64,
    },
    TickAtDeadline,
    /// A `now` earlier than the last one (the engine must use the last one).
    Backwards {
        dt: i64,
    },
    Ready {
        c: u8,
        x: u8,
    },
    /// `Ready` for the i-th slot in wrap-up.
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
    /// A restart's restore of a counsellor's away reason and wrap-ups (`dt`: how far from now they end).
    RestoreCounsellor {
        c: u8,
        away: Option<u8>,
        wrapups: Vec<(u8, i64)>,
    },
}

/// Away reasons: defaults, helpline b's own, and an unknown one.
const REASONS: [&str; 4] = ["break", "lunch", "admin", "nap"];

fn op() -> impl Strategy<Value = Op> {
    let c = || 0u8..=COUNSELLORS; // COUNSELLORS itself is an unknown counsellor
    let x = || 0u8..=CONTACTS;
    prop_oneof![
        3 => (c(), 0u8..16, 0u8..16, 0u8..4, prop_oneof![1 => Just(0u32), 4 => 1u32..4], any::<bool>(), any::<bool>())
            .prop_map(|(c, first, backup, langs, cap, calls, senior)| Op::Upsert { c, first, backup, langs, cap, calls, senior }),
        1 => c().prop_map(|c| Op::Remove { c }),
        2 => c().prop_map(|c| Op::Connect { c }),
        1 => c().prop_map(|c| Op::Disconnect { c }),
        3 => (c(), 0u8..4).prop_map(|(c, s)| Op::Status { c, s }),
        6 => (x(), 0u8..4, 0u8..2, -1i32..3, prop_oneof![3 => Just(0i64), 1 => 0i64..40_000], any::<bool>(), any::<bool>(), prop_oneof![3 => Just(false), 1 => Just(true)])
            .prop_map(|(x, h, l, prio, back, connected, call, senior_only)| Op::Queue { x, h, l, prio, back, connected, call, senior_only }),
        1 => (x(), 0u8..4, 0u8..2, c(), any::<bool>(), 0i64..40_000, any::<bool>())
            .prop_map(|(x, h, l, c, connected, back, call)| Op::Restore { x, h, l, c, connected, back, call }),
        1 => (c(), x()).prop_map(|(c, x)| Op::Accept { c, x }),
        4 => any::<u8>().prop_map(|i| Op::AcceptRinging { i }),
        1 => (c(), x()).prop_map(|(c, x)| Op::Decline { c, x }),
        2 => any::<u8>().prop_map(|i| Op::DeclineRinging { i }),
        1 => (c(), x()).prop_map(|(c, x)| Op::EndByCounsellor { c, x }),
        2 => any::<u8>().prop_map(|i| Op::EndOwn { i }),
        1 => x().prop_map(|x| Op::EndByCaller { x }),
        1 => x().prop_map(|x| Op::CallerDisconnected { x }),
        1 => x().prop_map(|x| Op::CallerConnected { x }),
        2 => (x(), -2i32..3).prop_map(|(x, p)| Op::Priority { x, p }),
        2 => (x(), c()).prop_map(|(x, c)| Op::OfferTo { x, c }),
        1 => (any::<u8>(), c()).prop_map(|(i, c)| Op::TransferTo { i, c }),
        1 => (any::<u8>(), 0u8..4).prop_map(|(i, h)| Op::TransferToHelpline { i, h }),
        1 => (c(), any::<u8>(), 0u8..4).prop_map(|(by, i, h)| Op::HandOver { by, i, h }),
        4 => prop_oneof![0i64..3_000, 0i64..40_000].prop_map(|dt| Op::Tick { dt }),
        3 => Just(Op::TickAtDeadline),
        1 => (1i64..5_000).prop_map(|dt| Op::Backwards { dt }),
        1 => (c(), x()).prop_map(|(c, x)| Op::Ready { c, x }),
        2 => any::<u8>().prop_map(|i| Op::ReadyOwn { i }),
        1 => (c(), 0u8..4).prop_map(|(c, r)| Op::Away { c, r }),
        1 => (x(), any::<bool>()).prop_map(|(x, danger)| Op::Triage { x, danger }),
        1 => (c(), proptest::option::of(0u8..4), proptest::collection::vec((x(), -5_000i64..70_000), 0..3))
            .prop_map(|(c, away, wrapups)| Op::RestoreCounsellor { c, away, wrapups }),
    ]
}

fn mask_set<const N: usize>(mask: u8, names: [&str; N]) -> BTreeSet<String> {
    names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| n.to_string()).collect()
}

fn cid(c: u8) -> CounsellorId {
    CounsellorId(u128::from(c) + 1)
}

fn xid(x: u8) -> ContactId {
    ContactId(u128::from(x) + 100)
}

fn nth<T: Copy>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(i) % items.len()])
}

/// The input for `op`, chosen from the reference engine's state; moves `now`.
fn to_input(op: &Op, r: &reference::Engine, now: &mut Millis) -> Input {
    let snap = r.snapshot();
    let ringing: Vec<(ContactId, CounsellorId)> = snap.waiting.iter().filter_map(|w| Some((w.contact, w.offered_to?))).collect();
    let assigned: Vec<(ContactId, CounsellorId)> = snap.assigned.iter().map(|a| (a.contact, a.counsellor)).collect();
    let info = |x: u8, h: u8, l: u8, prio: i32, queued_at: Millis, connected: bool, call: bool, senior_only: bool| NewContact {
        id: xid(x),
        channel: if call { Channel::Call } else { Channel::Chat },
        helpline: HELPLINES[usize::from(h)].into(),
        language: LANGUAGES[usize::from(l)].into(),
        priority: prio,
        queued_at,
        caller_connected: connected,
        senior_only,
    };
    match *op {
        Op::Upsert { c, first, backup, langs, cap, calls, senior } => Input::UpsertCounsellor(CounsellorProfile {
            id: cid(c),
            helplines: mask_set(first, HELPLINES),
            backup_helplines: mask_set(backup, HELPLINES),
            languages: mask_set(langs, LANGUAGES),
            capacity: cap,
            takes_calls: calls,
            senior,
        }),
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
        Op::Queue { x, h, l, prio, back, connected, call, senior_only } => {
            Input::ContactQueued(info(x, h, l, prio, now.saturating_sub(back), connected, call, senior_only))
        }
        Op::Restore { x, h, l, c, connected, back, call } => Input::ContactRestoredAssigned {
            contact: info(
                x,
                h,
                l,
                0,
                now.saturating_sub(back.saturating_add(5_000)),
                connected,
                call,
                // A restored conversation may be senior-only too (the contact with the seniors' rule).
                x % 2 == 0,
            ),
            counsellor: cid(c),
            answered_at: now.saturating_sub(back),
        },
        Op::Accept { c, x } => Input::Accept { counsellor: cid(c), contact: xid(x) },
        Op::AcceptRinging { i } => {
            let (contact, counsellor) = nth(&ringing, i).unwrap_or((xid(0), cid(0)));
            Input::Accept { counsellor, contact }
        }
        Op::Decline { c, x } => Input::Decline { counsellor: cid(c), contact: xid(x) },
        Op::DeclineRinging { i } => {
            let (contact, counsellor) = nth(&ringing, i).unwrap_or((xid(0), cid(0)));
            Input::Decline { counsellor, contact }
        }
        Op::EndByCounsellor { c, x } => Input::EndByCounsellor { counsellor: cid(c), contact: xid(x) },
        Op::EndOwn { i } => {
            let (contact, counsellor) = nth(&assigned, i).unwrap_or((xid(0), cid(0)));
            Input::EndByCounsellor { counsellor, contact }
        }
        Op::EndByCaller { x } => Input::EndByCaller { contact: xid(x) },
        Op::CallerDisconnected { x } => Input::CallerDisconnected { contact: xid(x) },
        Op::CallerConnected { x } => Input::CallerConnected { contact: xid(x) },
        Op::Priority { x, p } => Input::SetPriority { contact: xid(x), priority: p },
        Op::OfferTo { x, c } => Input::OfferTo { contact: xid(x), counsellor: cid(c) },
        Op::TransferTo { i, c } => {
            Input::Transfer { contact: nth(&assigned, i).map_or(xid(0), |a| a.0), to: TransferTarget::Counsellor(cid(c)) }
        }
        Op::TransferToHelpline { i, h } => Input::Transfer {
            contact: nth(&assigned, i).map_or(xid(0), |a| a.0),
            to: TransferTarget::Helpline(HELPLINES[usize::from(h)].into()),
        },
        Op::HandOver { by, i, h } => Input::HandOver {
            by: cid(by),
            contact: nth(&assigned, i).map_or(xid(0), |a| a.0),
            to: TransferTarget::Helpline(HELPLINES[usize::from(h)].into()),
        },
        Op::Tick { dt } => {
            *now = now.saturating_add(dt);
            Input::Tick
        }
        Op::TickAtDeadline => {
            *now = r.next_deadline().unwrap_or(now.saturating_add(1));
            Input::Tick
        }
        Op::Backwards { dt } => {
            *now = now.saturating_sub(dt);
            Input::Tick
        }
        Op::Ready { c, x } => Input::Ready { counsellor: cid(c), contact: xid(x) },
        Op::ReadyOwn { i } => {
            let slots: Vec<(CounsellorId, ContactId)> =
                snap.counsellors.iter().flat_map(|c| c.wrapping_up.iter().map(move |&(x, _)| (c.id, x))).collect();
            let (counsellor, contact) = nth(&slots, i).unwrap_or((cid(0), xid(0)));
            Input::Ready { counsellor, contact }
        }
        Op::Away { c, r } => Input::SetAway { counsellor: cid(c), reason: REASONS[usize::from(r) % REASONS.len()].into() },
        Op::Triage { x, danger } => Input::Triage { contact: xid(x), danger },
        Op::RestoreCounsellor { c, away, ref wrapups } => Input::RestoreCounsellor {
            counsellor: cid(c),
            away: away.map(|r| (REASONS[usize::from(r) % REASONS.len()].to_string(), now.saturating_sub(1_000))),
            wrapups: wrapups.iter().map(|&(x, dt)| (xid(x), now.saturating_add(dt))).collect(),
        },
    }
}

/// Run both engines over the same inputs; fail at the first step where they differ.
fn run_both(config: EngineConfig, start: Millis, script: &[(i64, Op)]) -> Result<(), TestCaseError> {
    let mut fast = Engine::new(config.clone());
    let mut slow = reference::Engine::new(config);
    let mut now = start;
    for (step, (dt, op)) in script.iter().enumerate() {
        now = now.saturating_add(*dt);
        let input = to_input(op, &slow, &mut now);
        let expected = slow.handle(now, input.clone());
        let got = fast.handle(now, input.clone());
        prop_assert_eq!(&got, &expected, "step {}: outputs differ for {:?} at {}", step, input, now);
        prop_assert_eq!(fast.snapshot(), slow.snapshot(), "step {}: snapshots differ after {:?}", step, input);
        prop_assert_eq!(fast.next_deadline(), slow.next_deadline(), "step {}: deadlines differ after {:?}", step, input);
        for x in 0..=CONTACTS {
            let id = xid(x);
            prop_assert_eq!(fast.position(id), slow.position(id), "step {}: position of {:?}", step, id);
            prop_assert_eq!(fast.helpline_of(id), slow.helpline_of(id));
            prop_assert_eq!(fast.assigned_counsellor(id), slow.assigned_counsellor(id));
        }
        for c in 0..=COUNSELLORS {
            prop_assert_eq!(fast.counsellor(cid(c)), slow.counsellor(cid(c)));
        }
        if let Err(e) = fast.index_consistent() {
            return Err(TestCaseError::fail(format!("step {step}: after {input:?}: {e}")));
        }
    }
    Ok(())
}

/// Counsellors 0..n upserted, connected and available at the start.
fn setup(profiles: &[(u8, u8, u8, u32)]) -> Vec<(i64, Op)> {
    let mut script = Vec::new();
    for (i, &(first, backup, langs, cap)) in profiles.iter().enumerate() {
        let c = i as u8;
        script.push((0, Op::Upsert { c, first, backup, langs, cap, calls: i % 2 == 0, senior: i % 3 == 0 }));
        script.push((0, Op::Connect { c }));
        script.push((0, Op::Status { c, s: 0 }));
    }
    script
}

proptest! {
    // No regression files: this folder is also built from a scratch crate, which must not write outside it.
    #![proptest_config(super::tests::fuzz_config(768))]

    #[test]
    fn incremental_engine_matches_reference(
        profiles in prop::collection::vec((1u8..16, 0u8..16, 1u8..4, 1u32..4), 0..=usize::from(COUNSELLORS)),
        ops in prop::collection::vec((0i64..2_000, op()), 1..120),
    ) {
        let mut script = setup(&profiles);
        script.extend(ops);
        run_both(config(), 1_000_000, &script)?;
    }
}

proptest! {
    #![proptest_config(super::tests::fuzz_config(256))]

    /// Random (also nonsensical) timings and extreme times.
    #[test]
    fn incremental_engine_matches_reference_with_random_timings(
        timings in prop::collection::vec(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), -5i64..5, 0i64..20_000, any::<i64>()],
            5,
        ),
        misses in 0u32..3,
        flags in (any::<bool>(), any::<bool>()),
        start in prop_oneof![Just(i64::MIN), Just(i64::MAX - 50_000), Just(0i64), any::<i64>()],
        profiles in prop::collection::vec((1u8..16, 0u8..16, 1u8..4, 1u32..4), 0..=usize::from(COUNSELLORS)),
        ops in prop::collection::vec((prop_oneof![0i64..2_000, Just(i64::MAX)], op()), 1..80),
    ) {
        let config = EngineConfig {
            helplines: vec![HelplineConfig {
                name: "a".into(),
                ring_timeout_ms: timings[0],
                backup_after_ms: timings[1],
                sla_at_risk_ms: timings[2],
                sla_target_ms: timings[3],
                caller_grace_ms: timings[4],
                chat_while_on_call: flags.0,
                calls_first: flags.1,
                wrapup_limit_ms: timings[0],
                away_reasons: vec!["break".into()],
                triage_priority: Some(timings[1].clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
                ring_offline_callers: flags.0,
            }],
            misses_before_away: misses,
        };
        let mut script = setup(&profiles);
        script.extend(ops);
        run_both(config, start, &script)?;
    }
}

/// A long busy run: many contacts per helpline, priorities moving, counsellors coming and going.
#[test]
fn long_random_run_matches_reference() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec((0i64..1_500, op()), 3_000);
    for _ in 0..4 {
        let ops = strategy.new_tree(&mut runner).expect("strategy").current();
        let mut script = setup(&[(1, 2, 1, 3), (3, 4, 3, 2), (5, 0, 2, 3), (15, 15, 3, 1)]);
        script.extend(ops);
        if let Err(e) = run_both(config(), 1_000_000, &script) {
            panic!("{e}");
        }
    }
}

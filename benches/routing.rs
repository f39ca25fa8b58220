//! Cost of one routing decision in the pure engine (`helpline::routing::Engine`), by size.
//!
//! State: C counsellors (capacity 3, serving `children` in `ro`), and W contacts waiting on
//! `family_violence`, which nobody on shift serves (a queue building on one helpline while another
//! has free counsellors: the night-shift case). Each measured cycle:
//!   1. `ContactQueued` of a `children` contact → an `Offer` (timed as `queued_to_offer`),
//!   2. `Accept` of that offer → `Assigned` (timed as `accept`),
//!   3. `EndByCounsellor` to return to the same state (not timed).
//!
//! `now` stays fixed, so no timers fire and every cycle sees the same state.
//!
//! Two variants: `one_free` (one counsellor available, the others away) and `all_free` (all C
//! available: dispatch chooses among C free counsellors; making them available is itself C steps).
//! Sizes: C ∈ {100, 1000, 10000} × W ∈ {1000, 10000, 100000}. The state is built through
//! `Engine::handle` (the only way in), one contact per step, so building W costs Σ step(W);
//! cases whose construction (growing W, or making all C available) would exceed
//! `HELPLINE_BENCH_SETUP_SECS` (default 120 s) are skipped, with the per-step cost measured while
//! building printed instead. Note that each queued `family_violence` contact joins the middle of
//! its queue (`queued_at` cycles over 1 s), so its step reports the changed positions of everyone
//! behind it: building W is inherently Σ W/2 position updates. `HELPLINE_BENCH_SIZES=100x1000,1000x10000`
//! picks cases.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use helpline::routing::{
    Channel, ContactId, CounsellorId, CounsellorProfile, Engine, EngineConfig, HelplineConfig, Input, NewContact, Output, Status,
};

const NOW: i64 = 1_700_000_000_000;

fn config() -> EngineConfig {
    EngineConfig {
        helplines: ["children", "disability", "family_violence"].iter().map(|h| HelplineConfig::with_defaults(*h)).collect(),
        misses_before_away: 2,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn counsellor(i: u128) -> CounsellorId {
    CounsellorId(1_000_000_000 + i)
}

fn contact(helpline: &str, id: u128, queued_at: i64) -> NewContact {
    NewContact {
        id: ContactId(id),
        channel: Channel::Chat,
        helpline: helpline.into(),
        language: "ro".into(),
        priority: 0,
        queued_at,
        caller_connected: true,
        senior_only: false,
    }
}

/// C counsellors, connected; the first one available, the others away.
fn with_counsellors(c: usize) -> Engine {
    let mut e = Engine::new(config());
    for i in 0..c as u128 {
        let id = counsellor(i);
        let profile = CounsellorProfile {
            id,
            helplines: set(&["children"]),
            backup_helplines: BTreeSet::new(),
            languages: set(&["ro"]),
            capacity: 3,
            takes_calls: false,
            senior: false,
        };
        e.handle(NOW, Input::UpsertCounsellor(profile));
        e.handle(NOW, Input::CounsellorConnected { counsellor: id });
        let status = if i == 0 { Status::Available } else { Status::Away };
        e.handle(NOW, Input::SetStatus { counsellor: id, status });
    }
    e
}

/// Adds waiting `family_violence` contacts until there are `w`; returns the mean step cost of the last 100,
/// or None when the budget ran out (with how many were added).
fn grow_waiting(e: &mut Engine, from: usize, w: usize, budget: Duration) -> Result<Duration, (usize, Duration)> {
    let started = Instant::now();
    let mut last = Instant::now();
    let mut recent = Duration::ZERO;
    for i in from..w {
        let t = Instant::now();
        black_box(e.handle(NOW, Input::ContactQueued(contact("family_violence", 10 + i as u128, NOW - 1_000 + (i as i64 % 1000)))));
        let d = t.elapsed();
        if i + 100 >= w {
            recent += d;
        }
        if started.elapsed() > budget {
            return Err((i + 1, d));
        }
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!("    … {} waiting contacts, last step {:?}", i + 1, d);
            last = Instant::now();
        }
    }
    Ok(recent / 100)
}

/// Runs one cycle; returns (queued→offer, accept) times.
fn cycle(e: &mut Engine, next: &mut u128) -> (Duration, Duration) {
    *next += 1;
    let id = ContactId(*next);
    let t = Instant::now();
    let out = e.handle(NOW, Input::ContactQueued(contact("children", *next, NOW)));
    let queued = t.elapsed();
    let Some(cid) = out.iter().find_map(|o| match o {
        Output::Offer { contact, counsellor, .. } if *contact == id => Some(*counsellor),
        _ => None,
    }) else {
        panic!("no offer for the new contact: {out:?}");
    };
    let t = Instant::now();
    let out = e.handle(NOW, Input::Accept { counsellor: cid, contact: id });
    let accept = t.elapsed();
    assert!(out.iter().any(|o| matches!(o, Output::Assigned { .. })), "accept did not assign: {out:?}");
    black_box(e.handle(NOW, Input::EndByCounsellor { counsellor: cid, contact: id }));
    (queued, accept)
}

fn bench_state(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, variant: &str, c: usize, w: usize, e: &mut Engine) {
    let mut next: u128 = 1u128 << 100;
    let label = format!("{variant}/C={c}/W={w}");
    g.bench_function(BenchmarkId::new("queued_to_offer", &label), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| cycle(e, &mut next).0).sum())
    });
    g.bench_function(BenchmarkId::new("accept", &label), |b| b.iter_custom(|iters| (0..iters).map(|_| cycle(e, &mut next).1).sum()));
}

fn routing(cr: &mut Criterion) {
    let budget = Duration::from_secs(std::env::var("HELPLINE_BENCH_SETUP_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(120));
    let wanted: Option<Vec<(usize, usize)>> = std::env::var("HELPLINE_BENCH_SIZES").ok().map(|v| {
        v.split(',').filter_map(|p| p.split_once('x')).filter_map(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))).collect()
    });
    let mut g = cr.benchmark_group("routing");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for c in [100usize, 1_000, 10_000] {
        let sizes: Vec<usize> =
            [1_000usize, 10_000, 100_000].into_iter().filter(|w| wanted.as_ref().is_none_or(|l| l.contains(&(c, *w)))).collect();
        if sizes.is_empty() {
            continue;
        }
        let t = Instant::now();
        let mut e = with_counsellors(c);
        eprintln!("setup: {c} counsellors in {:?}", t.elapsed());
        let mut have = 0;
        for w in sizes {
            let t = Instant::now();
            match grow_waiting(&mut e, have, w, budget) {
                Ok(step) => eprintln!(
                    "setup: C={c} grew to W={w} waiting in {:?}; a queued step (no offer) costs {step:?} at this size",
                    t.elapsed()
                ),
                Err((n, d)) => {
                    eprintln!(
                        "SKIPPED C={c} W={w}: building the state exceeded {budget:?} after {n} waiting contacts (last ContactQueued step {d:?}); larger W skipped too"
                    );
                    break;
                }
            }
            have = w;
            bench_state(&mut g, "one_free", c, w, &mut e);
            // All counsellors available: dispatch has C free counsellors to choose from on every step
            // (the full-scan engine met every waiting contact × every free counsellor here).
            let t = Instant::now();
            let mut all = e.clone();
            let mut made = 1;
            for i in 1..c as u128 {
                all.handle(NOW, Input::SetStatus { counsellor: counsellor(i), status: Status::Available });
                made += 1;
                if t.elapsed() > budget {
                    break;
                }
            }
            if made < c {
                eprintln!("SKIPPED all_free C={c} W={w}: making counsellors available exceeded {budget:?} after {made} of {c}");
                continue;
            }
            eprintln!("setup: all {c} available with W={w} waiting in {:?}", t.elapsed());
            bench_state(&mut g, "all_free", c, w, &mut all);
        }
    }
    g.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);

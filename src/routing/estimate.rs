//! Estimated wait for a waiting caller: from her place in the queue and the helpline's recent
//! answer times, as a pure rule with the time passed in (`docs/metrics.md`, "Estimated wait").
//!
//! The basis is the contacts of the helpline answered in the last [`WINDOW_MS`] (at most the last
//! [`SAMPLES`]): their mean wait `w` (queued → answered) and the mean interval `g` between one answer
//! and the next. The caller first in line is expected to wait about `w`; each caller ahead of her
//! adds one answer interval, never counted longer than `w` (at a quiet hour answers are far apart
//! only because nobody was waiting):
//!
//! ```text
//! estimate(p) = w + (p − 1) · min(g, w)      rounded up to whole seconds
//! ```
//!
//! With no answer in the window there is no basis, and no estimate (`None`): the frames then carry none.

use std::collections::{BTreeMap, VecDeque};

use super::types::Millis;

/// Answers older than this are not a basis (one hour).
pub const WINDOW_MS: Millis = 3_600_000;
/// At most this many recent answers per helpline are kept and used.
pub const SAMPLES: usize = 20;

/// The estimate in whole seconds for the caller at 1-based `position`, from recent answers given as
/// `(answered_at, waited_ms)` in answer order; None with no answers.
pub fn estimated_wait_s(position: u32, answers: &[(Millis, Millis)]) -> Option<u32> {
    if answers.is_empty() {
        return None;
    }
    let n = answers.len() as i128;
    let w = answers.iter().map(|&(_, waited)| i128::from(waited.max(0))).sum::<i128>() / n;
    let g = match (answers.first(), answers.last()) {
        (Some(&(first, _)), Some(&(last, _))) if answers.len() > 1 => i128::from((last - first).max(0)) / (n - 1),
        _ => w,
    };
    let ms = w + i128::from(position.max(1) - 1) * g.min(w);
    let secs = (ms + 999) / 1000;
    Some(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The recent answers of each helpline, kept by the engine task (pure: the time is passed in).
#[derive(Debug, Clone, Default)]
pub struct AnswerTimes {
    by_helpline: BTreeMap<String, VecDeque<(Millis, Millis)>>,
}

impl AnswerTimes {
    /// A contact of `helpline` queued at `queued_at` was answered at `answered_at`.
    pub fn record(&mut self, helpline: &str, queued_at: Millis, answered_at: Millis) {
        let q = self.by_helpline.entry(helpline.to_string()).or_default();
        // Answers come in time order; one restored out of order is placed where it belongs.
        let at = q.iter().rposition(|&(t, _)| t <= answered_at).map_or(0, |i| i + 1);
        q.insert(at, (answered_at, answered_at - queued_at));
        while q.len() > SAMPLES {
            q.pop_front();
        }
    }

    /// Seeded from stored answers (after a restart): `(helpline, queued_at, answered_at)` in any order;
    /// those answered over [`WINDOW_MS`] before `now` are no basis and left out.
    pub fn seeded(now: Millis, answers: impl IntoIterator<Item = (String, Millis, Millis)>) -> AnswerTimes {
        let mut t = AnswerTimes::default();
        for (helpline, queued_at, answered_at) in answers {
            if now - answered_at <= WINDOW_MS {
                t.record(&helpline, queued_at, answered_at);
            }
        }
        t
    }

    /// The estimate for the caller at `position` of `helpline` at `now` (see the module).
    pub fn estimate_s(&self, helpline: &str, position: u32, now: Millis) -> Option<u32> {
        let q = self.by_helpline.get(helpline)?;
        let recent: Vec<(Millis, Millis)> = q.iter().copied().filter(|&(t, _)| now - t <= WINDOW_MS).collect();
        estimated_wait_s(position, &recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_basis_no_estimate() {
        assert_eq!(estimated_wait_s(1, &[]), None);
        let mut t = AnswerTimes::default();
        assert_eq!(t.estimate_s("children", 1, 0), None);
        t.record("children", 0, 30_000);
        assert_eq!(t.estimate_s("disability", 1, 30_000), None, "another helpline's answers are no basis");
        assert_eq!(t.estimate_s("children", 1, 30_000 + WINDOW_MS + 1), None, "an answer over an hour old is no basis");
    }

    #[test]
    fn one_answer_is_a_basis() {
        let mut t = AnswerTimes::default();
        t.record("children", 1_000, 13_500);
        assert_eq!(t.estimate_s("children", 1, 14_000), Some(13), "12.5 s rounds up to 13");
        assert_eq!(t.estimate_s("children", 3, 14_000), Some(38), "with one answer the interval is taken as the wait");
    }

    #[test]
    fn each_caller_ahead_adds_one_answer_interval_at_most_the_wait() {
        // A busy hour: 60 s waits, an answer every 6 s.
        let busy: Vec<(Millis, Millis)> = (0..10).map(|i| (i * 6_000, 60_000)).collect();
        assert_eq!(estimated_wait_s(1, &busy), Some(60));
        assert_eq!(estimated_wait_s(5, &busy), Some(84));
        // A quiet hour: 5 s waits, answers 20 minutes apart: the interval counts as 5 s.
        let quiet = [(0, 5_000), (1_200_000, 5_000), (2_400_000, 5_000)];
        assert_eq!(estimated_wait_s(3, &quiet), Some(15));
    }

    #[test]
    fn only_the_last_samples_count() {
        let mut t = AnswerTimes::default();
        for i in 0..(SAMPLES as i64) {
            t.record("children", i * 1000, i * 1000 + 600_000);
        }
        for i in 0..(SAMPLES as i64) {
            t.record("children", 700_000 + i * 1000, 700_000 + i * 1000 + 2_000);
        }
        assert_eq!(t.estimate_s("children", 1, 800_000), Some(2));
    }

    #[test]
    fn seeded_from_stored_answers_it_estimates_as_if_it_had_seen_them() {
        let rows = vec![
            ("children".to_string(), 10_000, 40_000),
            ("children".to_string(), 0, 20_000),
            ("disability".to_string(), 0, 5_000),
            ("children".to_string(), -5_000_000, -4_000_000),
        ];
        let now = 50_000;
        let seeded = AnswerTimes::seeded(now, rows.clone());
        let mut seen = AnswerTimes::default();
        seen.record("children", 0, 20_000);
        seen.record("children", 10_000, 40_000);
        seen.record("disability", 0, 5_000);
        for p in 1..4 {
            assert_eq!(seeded.estimate_s("children", p, now), seen.estimate_s("children", p, now));
        }
        // Waits of 20 s and 30 s, 20 s apart: 25 s first in line, 45 s second.
        assert_eq!(seeded.estimate_s("children", 1, now), Some(25));
        assert_eq!(seeded.estimate_s("children", 2, now), Some(45));
        assert_eq!(seeded.estimate_s("disability", 1, now), Some(5));
        assert_eq!(AnswerTimes::seeded(now, Vec::new()).estimate_s("children", 1, now), None, "nothing stored: no basis");
        let old = AnswerTimes::seeded(now, rows.into_iter().filter(|r| r.2 < 0));
        assert_eq!(old.estimate_s("children", 1, now), None, "an answer over an hour old is no basis");
    }

    proptest! {
        /// Present with a basis; never shorter for a caller further back; at least the mean wait.
        #[test]
        fn the_estimate_grows_with_the_position(
            waits in proptest::collection::vec((0i64..60_000, 0i64..600_000), 0..30),
            p in 1u32..500,
        ) {
            let mut answers: Vec<(Millis, Millis)> = waits.iter().map(|&(gap, w)| (gap, w)).collect();
            let mut t = 0;
            for a in &mut answers { t += a.0; a.0 = t; }
            let here = estimated_wait_s(p, &answers);
            prop_assert_eq!(here.is_some(), !answers.is_empty());
            if let Some(e) = here {
                prop_assert!(estimated_wait_s(p + 1, &answers).unwrap() >= e);
                let mean = answers.iter().map(|a| a.1).sum::<i64>() / answers.len() as i64;
                prop_assert!(i64::from(e) * 1000 >= mean);
            }
        }
    }
}

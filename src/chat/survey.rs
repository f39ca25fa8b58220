//! The caller's survey after a chat: its questions, their choices, and who may answer (pure rules; the
//! route is `POST /api/v1/caller/survey`, the counts `store::surveys`). Anonymous by construction: an
//! answer is only counted, per helpline, UTC day, question and choice (docs/web-agent.md, "The survey").

/// The questions, each with its choices: "Did this chat help you?" and "Would you contact us again?".
pub const QUESTIONS: &[(&str, &[&str])] = &[("helped", &["yes", "somewhat", "no"]), ("again", &["yes", "maybe", "no"])];

/// How long after a chat ends its caller may still answer.
pub const ANSWER_WITHIN_MS: i64 = 24 * 3_600_000;

const DAY_MS: i64 = 24 * 3_600_000;

/// The answers given (`(question, choice)`, each question at most once, in [`QUESTIONS`]' order),
/// or what is wrong with them. Every question is optional; a survey answers at least one.
pub fn check(given: &[(&str, Option<&str>)]) -> Result<Vec<(&'static str, &'static str)>, String> {
    let mut out = Vec::new();
    for (question, choices) in QUESTIONS {
        let Some(answer) = given.iter().find(|(q, _)| q == question).and_then(|(_, a)| *a) else { continue };
        let Some(choice) = choices.iter().find(|c| **c == answer) else {
            return Err(format!("`{question}` is one of {}", choices.join(", ")));
        };
        out.push((*question, *choice));
    }
    if out.is_empty() {
        return Err("answer at least one question".into());
    }
    Ok(out)
}

/// Whether the caller of a contact may answer now: its chat was answered by a counsellor, has ended,
/// and ended at most [`ANSWER_WITHIN_MS`] ago.
pub fn may_answer(open: bool, answered_at: Option<i64>, ended_at: Option<i64>, now: i64) -> Result<(), &'static str> {
    if open {
        return Err("the chat has not ended yet");
    }
    if answered_at.is_none() {
        return Err("only a chat with a counsellor has a survey");
    }
    match ended_at {
        Some(end) if now - end <= ANSWER_WITHIN_MS => Ok(()),
        _ => Err("the survey of this chat is closed"),
    }
}

/// The start of the UTC day of `ms`: the only time an answer is counted under.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn answers_are_known_choices_and_at_least_one() {
        assert_eq!(check(&[("helped", Some("yes")), ("again", None)]), Ok(vec![("helped", "yes")]));
        assert_eq!(check(&[("again", Some("maybe")), ("helped", Some("no"))]), Ok(vec![("helped", "no"), ("again", "maybe")]));
        assert!(check(&[("helped", None), ("again", None)]).is_err());
        assert!(check(&[]).is_err());
        assert!(check(&[("helped", Some("maybe"))]).unwrap_err().contains("helped"));
        assert!(check(&[("again", Some("YES"))]).is_err());
    }

    #[test]
    fn only_an_answered_chat_that_ended_lately() {
        assert_eq!(may_answer(false, Some(1), Some(10), 20), Ok(()));
        assert!(may_answer(true, Some(1), None, 20).is_err());
        assert!(may_answer(false, None, Some(10), 20).is_err());
        assert!(may_answer(false, Some(1), Some(10), 10 + ANSWER_WITHIN_MS + 1).is_err());
        assert!(may_answer(false, Some(1), None, 20).is_err());
    }

    proptest! {
        #[test]
        fn a_day_starts_at_or_before_and_within_a_day(ms in 0i64..4_000_000_000_000) {
            let d = day_of(ms);
            prop_assert!(d <= ms && ms - d < DAY_MS);
            prop_assert_eq!(d % DAY_MS, 0);
        }
    }
}

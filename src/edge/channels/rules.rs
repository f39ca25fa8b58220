//! The messaging channels' rules, without I/O (the time passed in): which outbox rows are due and
//! in what order, what an attempt to send makes of a row (sent, tried again later with back-off,
//! failed for good), which way a delivery report may move a row, and when an answered conversation
//! has been silent long enough to close. Kannel's own vocabulary (its `sendsms` answer, its delivery
//! report codes, the coding of a text) is in [`kannel`].

/// How the outbox retries a reply the provider did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; doubled after each next one.
    pub base_ms: i64,
    /// The longest wait between two attempts.
    pub cap_ms: i64,
    /// Attempts before a reply is given up (the counsellor is told).
    pub max_attempts: i64,
    /// How long one attempt holds its row (another node takes it over after that).
    pub lease_ms: i64,
}

impl Default for RetryPolicy {
    /// 2 s, doubling up to 5 minutes, for 12 attempts: about 35 minutes of trying.
    fn default() -> RetryPolicy {
        RetryPolicy { base_ms: 2_000, cap_ms: 300_000, max_attempts: 12, lease_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts (from 1).
    pub fn backoff(&self, attempts: i64) -> i64 {
        let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.base_ms.saturating_mul(1_i64 << doublings).min(self.cap_ms).max(0)
    }
}

/// What one attempt to hand a reply to the provider gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The provider took it (with its reference for the message, if it gives one).
    Accepted { provider_ref: Option<String> },
    /// The provider could not be reached or answered that it cannot take it now: try again.
    Unreachable(String),
    /// The provider refused it for good (bad credentials, a bad address): do not try again.
    Refused(String),
}

/// What to record of a row after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Sent { provider_ref: Option<String> },
    Retry { at: i64, error: String },
    Failed { error: String },
}

/// What an attempt (the `attempts`-th, from 1) at `now` makes of its row.
pub fn after_attempt(policy: &RetryPolicy, attempts: i64, outcome: Attempt, now: i64) -> Settle {
    match outcome {
        Attempt::Accepted { provider_ref } => Settle::Sent { provider_ref },
        Attempt::Refused(error) => Settle::Failed { error },
        Attempt::Unreachable(error) if attempts >= policy.max_attempts => {
            Settle::Failed { error: format!("gave up after {attempts} attempts: {error}") }
        }
        Attempt::Unreachable(error) => Settle::Retry { at: now + policy.backoff(attempts), error },
    }
}

/// A pending row as the picker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<'a> {
    pub contact: &'a str,
    pub seq: i64,
    pub next_at: i64,
}

/// Which pending rows to attempt now: a conversation's replies go out in order, so only its lowest
/// pending seq, and only once it is due. Returns indexes into `rows`.
pub fn due(rows: &[Pending<'_>], now: i64) -> Vec<usize> {
    let mut first: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        match first.get(r.contact) {
            Some(&j) if rows[j].seq <= r.seq => {}
            _ => {
                first.insert(r.contact, i);
            }
        }
    }
    let mut out: Vec<usize> = first.into_values().filter(|&i| rows[i].next_at <= now).collect();
    out.sort_by_key(|&i| (rows[i].next_at, i));
    out
}

/// The delivery states of a reply, in the order they are reached.
pub const STATES: [&str; 5] = ["pending", "sent", "delivered", "read", "failed"];

/// The states a row may be in for a delivery report to move it to `to` (a report never moves a row
/// back: a late `sent` after `delivered` changes nothing; a failure report fails only a row not yet delivered).
pub fn report_may_move(to: &str) -> &'static [&'static str] {
    match to {
        "sent" => &["pending"],
        "delivered" => &["pending", "sent"],
        "read" => &["pending", "sent", "delivered"],
        "failed" => &["pending", "sent"],
        _ => &[],
    }
}

/// Whether an answered conversation (`state` of its contact) silent since `last_activity` is over
/// its channel's `idle_limit_ms` at `now`. A waiting one is never closed for silence: it waits in the
/// queue whatever its activity.
pub fn idle_over(state: &str, last_activity: i64, idle_limit_ms: i64, now: i64) -> bool {
    state == "active" && idle_limit_ms > 0 && now.saturating_sub(last_activity) >= idle_limit_ms
}

/// Kannel's vocabulary (`sendsms`, delivery reports, codings), without I/O.
pub mod kannel {
    /// Kannel's delivery report bits we ask for (`dlr-mask`): delivered, undelivered, buffered,
    /// accepted by the SMSC, rejected by the SMSC.
    pub const DLR_MASK: u32 = 1 | 2 | 4 | 8 | 16;

    /// What a delivery report's type (`%d`) means for a reply: None for "buffered" (still on its way).
    pub fn report_state(kind: i64) -> Option<&'static str> {
        match kind {
            1 => Some("delivered"),
            2 | 16 => Some("failed"),
            8 => Some("sent"),
            _ => None,
        }
    }

    /// Kannel's `coding` for a text: 0 (7-bit, GSM) for plain ASCII, 2 (UCS-2) otherwise
    /// (Romanian, Russian and Ukrainian letters), sent with `charset=UTF-8`.
    pub fn coding(text: &str) -> u8 {
        if text.chars().all(|c| c.is_ascii() && (c >= ' ' || c == '\n' || c == '\r')) {
            0
        } else {
            2
        }
    }

    /// What Kannel's `sendsms` answer (status and body) makes of an attempt: 2xx takes it ("0:
    /// Accepted for delivery", "3: Queued for later delivery"); 4xx refuses it for good (bad
    /// credentials, a missing field); anything else is tried again.
    pub fn sendsms_outcome(status: u16, body: &str) -> super::Attempt {
        let body = body.trim().chars().take(200).collect::<String>();
        match status {
            200..=299 => super::Attempt::Accepted { provider_ref: None },
            400..=499 => super::Attempt::Refused(format!("Kannel refused it ({status}): {body}")),
            _ => super::Attempt::Unreachable(format!("Kannel answered {status}: {body}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_its_cap_and_gives_up_after_the_last_attempt() {
        let p = RetryPolicy { base_ms: 1_000, cap_ms: 5_000, max_attempts: 4, lease_ms: 10_000 };
        assert_eq!([1, 2, 3, 4, 5].map(|n| p.backoff(n)), [1_000, 2_000, 4_000, 5_000, 5_000]);
        let down = || Attempt::Unreachable("connection refused".into());
        assert_eq!(after_attempt(&p, 1, down(), 100), Settle::Retry { at: 1_100, error: "connection refused".into() });
        assert_eq!(after_attempt(&p, 3, down(), 100), Settle::Retry { at: 4_100, error: "connection refused".into() });
        assert!(matches!(after_attempt(&p, 4, down(), 100), Settle::Failed { error } if error.contains("4 attempts")));
        assert_eq!(after_attempt(&p, 1, Attempt::Refused("403".into()), 0), Settle::Failed { error: "403".into() });
        assert_eq!(after_attempt(&p, 9, Attempt::Accepted { provider_ref: None }, 0), Settle::Sent { provider_ref: None });
        assert_eq!(RetryPolicy { base_ms: i64::MAX / 2, ..p }.backoff(60), 5_000, "no overflow");
    }

    #[test]
    fn a_conversations_replies_go_out_in_order_and_only_when_due() {
        let rows = [
            Pending { contact: "a", seq: 3, next_at: 0 },
            Pending { contact: "a", seq: 2, next_at: 50 },
            Pending { contact: "b", seq: 5, next_at: 10 },
            Pending { contact: "c", seq: 1, next_at: 5 },
        ];
        // a's seq 2 is retrying until 50: its seq 3 waits behind it.
        assert_eq!(due(&rows, 20), vec![3, 2]);
        assert_eq!(due(&rows, 60), vec![3, 2, 1]);
        assert!(due(&rows, 0).is_empty());
    }

    #[test]
    fn delivery_reports_only_move_forward_and_silence_closes_only_answered_conversations() {
        assert_eq!(report_may_move("delivered"), &["pending", "sent"]);
        assert!(!report_may_move("sent").contains(&"delivered"), "a late `sent` does not undo `delivered`");
        assert!(!report_may_move("failed").contains(&"delivered"));
        assert!(report_may_move("bogus").is_empty());
        assert!(STATES.iter().all(|s| *s == "pending" || !report_may_move(s).is_empty()));
        assert!(idle_over("active", 0, 1_000, 1_000));
        assert!(!idle_over("active", 0, 1_000, 999));
        assert!(!idle_over("queued", 0, 1_000, 1_000_000), "a waiting contact waits whatever its silence");
        assert!(!idle_over("active", 0, 0, 1_000_000), "no limit: never");
    }

    #[test]
    fn kannel_codes_and_answers() {
        assert_eq!([1, 2, 4, 8, 16].map(kannel::report_state), [Some("delivered"), Some("failed"), None, Some("sent"), Some("failed")]);
        assert_eq!(kannel::coding("Hello, how are you?"), 0);
        assert_eq!(kannel::coding("Bună, sunt aici"), 2);
        assert_eq!(kannel::coding("Привіт"), 2);
        assert_eq!(kannel::sendsms_outcome(202, "0: Accepted for delivery"), Attempt::Accepted { provider_ref: None });
        assert!(matches!(kannel::sendsms_outcome(403, "Authorization failed for sendsms"), Attempt::Refused(_)));
        assert!(matches!(kannel::sendsms_outcome(503, "x"), Attempt::Unreachable(_)));
    }
}

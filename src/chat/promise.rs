//! The promise to a person typing: **a message the server has read is never left unanswered**.
//!
//! Within [`ANSWER_WITHIN`] of reading a message from a socket, the server has acknowledged it
//! (after its commit), refused it with a reason (`overloaded` with `retry_after_ms`: send it again,
//! same `client_id`), or closed the socket with a code the client resumes from. The server may
//! delay *reading* a socket (TCP then holds the sender back, which the sender sees); it may not
//! read a message and say nothing.
//!
//! Each socket session keeps an [`Unanswered`]: the messages it read and has not yet seen answered,
//! with the time each is due. When one falls due, the session refuses it itself (the relay may be
//! stuck on a slow commit, or the leader's answer lost between nodes). A refusal never loses a
//! message: a copy that was stored after all is acknowledged (not stored again) when the client
//! sends it again, and its late ack may still arrive first.
//!
//! Pure: the time is passed in (milliseconds of the caller's clock), no I/O.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Default: how long after reading a message the server answers it at the latest. The promise
/// made to clients is 10 s; the server keeps half of it as a margin.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Default `retry_after_ms` of an `overloaded` refusal (clients add up to half again at random,
/// so that refused senders do not all come back at once).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The messages a socket read and has not seen answered, oldest first.
#[derive(Debug, Default)]
pub struct Unanswered {
    /// (due, client id, read number) in the order read; an entry whose read number no longer
    /// matches `open` was answered (removed lazily).
    due: VecDeque<(i64, String, u64)>,
    /// Client ids waiting for an answer, with the number of the read that made them wait.
    open: HashMap<String, u64>,
    reads: u64,
}

impl Unanswered {
    pub fn new() -> Unanswered {
        Unanswered::default()
    }

    /// The socket read message `client_id` at `now`; it must be answered by `now + within`.
    /// A copy sent again while the first still waits keeps the first one's deadline.
    pub fn read(&mut self, client_id: &str, now: i64, within: Duration) {
        if self.open.contains_key(client_id) {
            return;
        }
        self.reads += 1;
        self.open.insert(client_id.to_string(), self.reads);
        let due = now.saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX));
        self.due.push_back((due, client_id.to_string(), self.reads));
    }

    /// An answer to `client_id` (an ack, or an error naming it) is going out.
    pub fn answered(&mut self, client_id: &str) {
        self.open.remove(client_id);
    }

    /// When the oldest waiting message falls due, if any waits.
    pub fn next_due(&mut self) -> Option<i64> {
        self.drop_answered();
        self.due.front().map(|(due, _, _)| *due)
    }

    /// The messages due at `now` (oldest first): the caller refuses them. They no longer wait.
    pub fn take_due(&mut self, now: i64) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            self.drop_answered();
            match self.due.front() {
                Some((due, _, _)) if *due <= now => {
                    if let Some((_, id, _)) = self.due.pop_front() {
                        self.open.remove(&id);
                        out.push(id);
                    }
                }
                _ => return out,
            }
        }
    }

    /// How many messages wait for an answer.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn drop_answered(&mut self) {
        while let Some((_, id, read)) = self.due.front() {
            if self.open.get(id) == Some(read) {
                return;
            }
            self.due.pop_front();
        }
    }
}

/// Whether a message read at `read_at` may still be taken at `now`: false once half its time to be
/// answered is gone (committing it then would likely answer after the socket refused it, and
/// under overload a refused sender's copy would be stored twice over: once late, once resent).
pub fn still_timely(read_at: i64, now: i64, within: Duration) -> bool {
    let half = i64::try_from(within.as_millis() / 2).unwrap_or(i64::MAX);
    now.saturating_sub(read_at) <= half
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: Duration = Duration::from_millis(5_000);

    #[test]
    fn answered_messages_never_fall_due() {
        let mut u = Unanswered::new();
        u.read("a", 0, W);
        u.read("b", 100, W);
        u.answered("a");
        assert_eq!(u.next_due(), Some(5_100));
        assert_eq!(u.take_due(5_099), Vec::<String>::new());
        assert_eq!(u.take_due(5_100), vec!["b".to_string()]);
        assert!(u.is_empty());
        assert_eq!(u.next_due(), None);
    }

    #[test]
    fn a_resend_keeps_the_first_deadline_and_a_later_read_waits_again() {
        let mut u = Unanswered::new();
        u.read("a", 0, W);
        u.read("a", 4_000, W);
        assert_eq!(u.len(), 1);
        assert_eq!(u.take_due(5_000), vec!["a".to_string()]);
        // Refused, sent again: waits anew.
        u.read("a", 6_000, W);
        assert_eq!(u.next_due(), Some(11_000));
        // Answered then read again (a client resending after an ack it missed): a fresh wait.
        u.answered("a");
        u.read("a", 7_000, W);
        assert_eq!(u.take_due(11_000), Vec::<String>::new());
        assert_eq!(u.take_due(12_000), vec!["a".to_string()]);
    }

    #[test]
    fn timeliness_is_half_the_answer_time() {
        assert!(still_timely(1_000, 3_500, W));
        assert!(!still_timely(1_000, 3_501, W));
    }

    proptest! {
        /// Whatever the order of reads, answers and clock ticks: a message read and not answered is
        /// handed out exactly once, no earlier than its deadline and at the first look after it; an
        /// answered one never is.
        #[test]
        fn every_unanswered_message_falls_due_once_at_its_time(
            ops in proptest::collection::vec((0u8..3, 0usize..6, 0i64..3_000), 1..200)
        ) {
            let mut u = Unanswered::new();
            let mut now = 0i64;
            // Model: client id -> deadline of the read waiting.
            let mut waiting: HashMap<String, i64> = HashMap::new();
            for (op, id, dt) in ops {
                let id = format!("m{id}");
                match op {
                    0 => {
                        u.read(&id, now, W);
                        waiting.entry(id).or_insert(now + 5_000);
                    }
                    1 => {
                        u.answered(&id);
                        waiting.remove(&id);
                    }
                    _ => {
                        now += dt;
                        let mut due = u.take_due(now);
                        due.sort();
                        let mut expected: Vec<String> =
                            waiting.iter().filter(|(_, d)| **d <= now).map(|(id, _)| id.clone()).collect();
                        expected.sort();
                        prop_assert_eq!(&due, &expected);
                        waiting.retain(|_, d| *d > now);
                    }
                }
                prop_assert_eq!(u.len(), waiting.len());
                prop_assert_eq!(u.next_due(), waiting.values().min().copied());
            }
        }
    }
}

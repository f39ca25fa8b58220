//! Settings every socket session gets from the shared state: keepalive and the per-socket frame rate.

use std::time::Duration;

/// How often the server pings an idle socket.
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// A socket silent (no frame, no pong) for this long is closed: the phone is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A caller socket whose client pings (the widget does, every 2 s) and then sends no frame for this
/// long counts as stalled: her counsellor is told at once (`caller_presence`), long before the idle
/// timeout closes the socket.
pub const CALLER_STALL: Duration = Duration::from_secs(8);

/// The timing of every socket: ping interval and idle timeout (defaults [`PING_EVERY`],
/// [`IDLE_TIMEOUT`]), and how soon a message read is answered at the latest
/// ([`crate::chat::promise::ANSWER_WITHIN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub ping_every: Duration,
    /// Silent this long: closed (4000). A frame that cannot be written for this long: closed (4008).
    pub idle_timeout: Duration,
    /// A message read and not acknowledged this long after is refused (`overloaded`), so nobody's
    /// message goes unanswered ([`crate::chat::promise`]); the relay refuses rather than stores a
    /// message it takes after half of this.
    pub answer_within: Duration,
    /// A caller socket that pings and then is silent this long is stalled ([`CALLER_STALL`]).
    pub caller_stall: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            ping_every: PING_EVERY,
            idle_timeout: IDLE_TIMEOUT,
            answer_within: crate::chat::promise::ANSWER_WITHIN,
            caller_stall: CALLER_STALL,
        }
    }
}

/// Default frames a socket may send in a burst, and per second after that: far above any person's
/// typing, far below a script's flood. Set with `--ws-burst` / `--ws-rate-per-sec`.
pub const RATE_BURST: f64 = 40.0;
pub const RATE_PER_SEC: f64 = 20.0;

/// A per-socket frame rate limit; `per_sec <= 0` means unlimited (load tests of the relay's ceiling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub burst: f64,
    pub per_sec: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { burst: RATE_BURST, per_sec: RATE_PER_SEC }
    }
}

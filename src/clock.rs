//! Wall-clock milliseconds derived from tokio's clock, so paused-time tests move it too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, read from one anchor pair (wall time, tokio instant).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_wall_ms: i64,
    base: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { base_wall_ms: i64::try_from(wall.as_millis()).unwrap_or(i64::MAX / 2), base: Instant::now() }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.base_wall_ms + i64::try_from(self.base.elapsed().as_millis()).unwrap_or(0)
    }

    /// The tokio instant at which the wall clock reads `ms` (now, if that is past).
    pub fn instant_at(&self, ms: i64) -> Instant {
        let offset = ms.saturating_sub(self.base_wall_ms).max(0);
        let target = self.base + Duration::from_millis(u64::try_from(offset).unwrap_or(0));
        target.max(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

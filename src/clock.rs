//! Wall-clock milliseconds derived from tokio's clock, so paused-time tests move it too.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, read from one anchor pair (wall time, tokio instant), plus an
/// offset that only [`Clock::advance`] moves (tests jump days ahead to reach deadlines without sleeping).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_wall_ms: i64,
    base: Instant,
    /// Shared by every copy of an adjustable clock (one allocation per server, kept for the process's
    /// life); None for a plain clock.
    offset: Option<&'static AtomicI64>,
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock { base_wall_ms: i64::try_from(wall.as_millis()).unwrap_or(i64::MAX / 2), base: Instant::now(), offset: None }
    }

    /// A clock that [`Clock::advance`] can move (the server's: one per server).
    pub fn adjustable() -> Clock {
        Clock { offset: Some(Box::leak(Box::new(AtomicI64::new(0)))), ..Clock::new() }
    }

    /// Moves an adjustable clock (and every copy of it) `ms` ahead: deadlines, timers and listings see
    /// the new time. A plain clock does not move.
    pub fn advance(&self, ms: i64) {
        if let Some(offset) = self.offset {
            offset.fetch_add(ms, Ordering::SeqCst);
        }
    }

    fn offset_ms(&self) -> i64 {
        self.offset.map_or(0, |o| o.load(Ordering::SeqCst))
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.base_wall_ms + self.offset_ms() + i64::try_from(self.base.elapsed().as_millis()).unwrap_or(0)
    }

    /// The tokio instant at which the wall clock reads `ms` (now, if that is past).
    pub fn instant_at(&self, ms: i64) -> Instant {
        let offset = ms.saturating_sub(self.base_wall_ms + self.offset_ms()).max(0);
        let target = self.base + Duration::from_millis(u64::try_from(offset).unwrap_or(0));
        target.max(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
/// Paces a background loop: [`Ticker::next`] completes at once, then every `period`, and returns false
/// once the server starts shutting down.
#[derive(Debug)]
pub struct Ticker {
    interval: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Ticker {
    /// Missed ticks (a slow step) are not made up: the next one comes a whole period later.
    pub fn new(shutdown: tokio::sync::watch::Receiver<bool>, period: Duration) -> Ticker {
        Ticker::with_missed(shutdown, period, tokio::time::MissedTickBehavior::Delay)
    }

    pub fn with_missed(shutdown: tokio::sync::watch::Receiver<bool>, period: Duration, missed: tokio::time::MissedTickBehavior) -> Ticker {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(missed);
        Ticker { interval, shutdown }
    }

    /// Waits for the next tick; false when the server is shutting down.
    pub async fn next(&mut self) -> bool {
        let ticked = tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.shutdown.wait_for(|stop| *stop) => false,
        };
        ticked && !*self.shutdown.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ticker_ticks_at_once_then_every_period_and_stops_at_shutdown() {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut ticker = Ticker::new(shutdown, Duration::from_secs(5));
        let start = Instant::now();
        assert!(ticker.next().await);
        assert_eq!(start.elapsed(), Duration::ZERO, "the first tick comes at once");
        assert!(ticker.next().await);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // Shutdown while waiting for a tick: false at once, not at the next tick.
        let waiting = tokio::spawn(async move { ticker.next().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).expect("the ticker listens");
        assert!(!waiting.await.expect("no panic"));
        assert_eq!(start.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticker_whose_server_is_gone_stops() {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut ticker = Ticker::new(shutdown, Duration::from_secs(5));
        assert!(ticker.next().await);
        drop(stop);
        assert!(!ticker.next().await);
    }
}

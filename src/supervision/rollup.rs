//! Report roll-ups in the server: the background step (the roll-ups themselves, and the reads over
//! them, are in `store::rollup`).

use crate::store::rollup::roll_up;
use crate::store::Store;

/// One background roll-up run (every `report_rollup_every`, from `app::loops`): rolls up settled hours
/// a month at a time, so that a first run on a big database does not hold the write lock for long,
/// until none remain or the server shuts down. A failure is logged: reports stay correct (computed live).
pub async fn catch_up(store: &Store, clock: &crate::clock::Clock, shutdown: &tokio::sync::watch::Receiver<bool>) {
    loop {
        match roll_up(store, clock.now_ms(), 24 * 31).await {
            Ok(p) if p.remaining > 0 && p.rolled > 0 => tokio::task::yield_now().await,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "report roll-up failed; reports stay correct (computed live)");
                return;
            }
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

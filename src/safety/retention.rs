//! Retention (`--retention-days`): the conversations of contacts that no case holds are deleted once
//! they ended longer ago than the retention period; case data (contacts linked to a case, the case
//! itself, its people, entries and placements) is kept. Run by the server every hour and by
//! `helpline retention`, with progress. Each run that deletes something writes one audit line.
//!
//! What is deleted: the messages. What stays: the contact row (times, helpline, channel, outcome, so
//! reports do not change), its contact form, flags, escalations and call record (which never holds a
//! number in clear). See `docs/security.md` (Privacy).

use crate::store::retention::PurgeStep;
use crate::store::{Store, StoreResult};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Contacts per write transaction: short enough not to hold the write lock for long.
pub const BATCH: i64 = 200;

/// The end of the retention window: contacts that ended before it are due.
pub fn cutoff(now: i64, days: u32) -> i64 {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

/// Totals of a retention run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub contacts: u64,
    pub messages: u64,
}

/// Deletes every due conversation at `now`, in batches, calling `progress` after each batch. Writes
/// one audit line (actor `system`) when something was deleted.
pub async fn run(store: &Store, now: i64, days: u32, mut progress: impl FnMut(&PurgeStep, &Totals)) -> StoreResult<Totals> {
    let cut = cutoff(now, days);
    let mut totals = Totals::default();
    loop {
        let step = store.retention().purge_step(cut, now, BATCH).await?;
        totals.contacts += step.contacts;
        totals.messages += step.messages;
        progress(&step, &totals);
        if step.contacts == 0 || step.remaining == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    if totals.contacts > 0 {
        let detail = format!(
            "{} conversations ({} messages) of contacts without a case, ended more than {days} days ago",
            totals.contacts, totals.messages
        );
        store.audit_log().audit(now, "system", "retention_purge", None, Some(&detail)).await?;
    }
    Ok(totals)
}

/// `helpline retention --days N`: runs retention now, printing progress.
pub async fn run_to_completion(store: &Store, days: u32) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let now = crate::clock::Clock::new().now_ms();
    let totals = run(store, now, days, |step, totals| {
        eprintln!(
            "retention: {} conversations deleted ({} messages), {} to go ({:.1} s)",
            totals.contacts,
            totals.messages,
            step.remaining,
            started.elapsed().as_secs_f64()
        );
    })
    .await?;
    println!(
        "retention: deleted the conversations of {} contacts without a case that ended more than {days} days ago ({} messages); case data kept",
        totals.contacts, totals.messages
    );
    Ok(())
}

/// In the server (every `retention_every`, from `app::loops`): one retention run with the server's clock.
pub async fn run_once(store: &Store, now: i64, days: u32) {
    match run(store, now, days, |_, _| {}).await {
        Ok(t) if t.contacts > 0 => tracing::info!(contacts = t.contacts, messages = t.messages, "retention: conversations deleted"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "retention failed; it runs again at the next interval"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_days_back_and_never_overflows() {
        assert_eq!(cutoff(10 * DAY_MS, 3), 7 * DAY_MS);
        assert_eq!(cutoff(0, u32::MAX), 0i64.saturating_sub(i64::from(u32::MAX) * DAY_MS));
        assert_eq!(cutoff(i64::MIN + 1, u32::MAX), i64::MIN);
    }
}

//! The server's background loops, all started here ([`start`]) and all paced by one helper
//! ([`Ticker`](crate::clock::Ticker)): each runs its step at once and then every period until the server shuts down. The
//! steps themselves belong to their domains; this file only says how often and with what.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::app::Settings;
use crate::chat::engine_task::counsellor_key;
use crate::clock::Ticker;
use crate::routing::Input;
use crate::state::AppState;

/// Starts every background loop of a built server.
pub fn start(state: &AppState, settings: &Settings) {
    let ticker = |period| Ticker::new(state.shutdown.clone(), period);

    // Every second: whether the database answers (`Store::answering`).
    let (s, mut t) = (state.clone(), ticker(Duration::from_secs(1)));
    tokio::spawn(async move {
        while t.next().await {
            check_database(&s).await;
        }
    });

    // Every `account_check_every`: close the sockets of disabled or logged-out accounts.
    let (s, mut t) = (state.clone(), ticker(settings.account_check_every));
    tokio::spawn(async move {
        while t.next().await {
            close_disabled_accounts(&s).await;
        }
    });

    // Every second: the supervisors' board (a board that falls behind skips, it does not catch up).
    let s = state.clone();
    let mut t = Ticker::with_missed(state.shutdown.clone(), crate::supervision::board::BOARD_EVERY, MissedTickBehavior::Skip);
    tokio::spawn(async move {
        let mut feed = crate::supervision::board::Feed::default();
        while t.next().await {
            feed.step(&s).await;
        }
    });

    // Every minute: forget the rate-limit state of quiet addresses (so a flood from many addresses
    // does not grow memory for ever).
    let (s, mut t) = (state.clone(), ticker(Duration::from_secs(60)));
    tokio::spawn(async move {
        while t.next().await {
            s.guard.forget_idle();
        }
    });

    // Single node: hand the exchanges' commands that no socket holds to their sockets (in cluster
    // mode the cluster link sweeps, knowing which nodes are alive).
    if state.cluster.is_none() {
        let (s, mut t) = (state.clone(), ticker(crate::chat::exchange::GATEWAY_SWEEP));
        tokio::spawn(async move {
            while t.next().await {
                crate::chat::exchange::sweep(&s.store, &s.hub, s.clock.now_ms(), &[], 0).await;
            }
        });
    }

    // Every `report_rollup_every` (five minutes by default): roll up the settled hours reports need.
    if let Some(period) = settings.report_rollup_every {
        let (s, mut t) = (state.clone(), ticker(period));
        tokio::spawn(async move {
            while t.next().await {
                crate::supervision::rollup::catch_up(&s.store, &s.clock, &s.shutdown).await;
            }
        });
    }

    // Every second: alert every supervisor of escalations unacknowledged for 2 minutes.
    let (s, mut t) = (state.clone(), ticker(Duration::from_secs(1)));
    tokio::spawn(async move {
        while t.next().await {
            crate::casework::escalation::alert_unacknowledged(&s.store, &s.hub, s.clock.now_ms()).await;
        }
    });

    // Every `retention_every` (an hour by default): every class with each helpline's periods, the
    // conversations' default `--retention-days`, the audit log's `--audit-retention-days`.
    let policy = crate::safety::retention::Policy { conversation_days: settings.retention_days, audit_days: settings.audit_retention_days };
    let (s, mut t) = (state.clone(), ticker(settings.retention_every));
    tokio::spawn(async move {
        while t.next().await {
            crate::safety::retention::run_once(&s.store, s.clock.now_ms(), policy).await;
        }
    });
}

async fn check_database(state: &AppState) {
    let checked_from = std::time::Instant::now();
    let check = state.store.check().await;
    if state.store.set_answering(check, checked_from) {
        if state.store.answering() {
            tracing::warn!("the database answers again: accepting work");
        } else {
            tracing::error!("the database does not answer: refusing what needs it (unavailable) until it does");
        }
    }
}

/// Closes the sockets of accounts disabled (by `helpline user disable` or an admin) or logged out
/// while connected, and takes them out of routing.
async fn close_disabled_accounts(state: &AppState) {
    let online = state.hub.online_staff();
    if online.is_empty() {
        return;
    }
    let disabled = match state.store.accounts().disabled_users().await {
        Ok(d) => d,
        Err(err) => {
            tracing::warn!(error = %err, "checking disabled accounts failed");
            return;
        }
    };
    for user in online.into_iter().filter(|u| disabled.contains(u)) {
        tracing::info!(user = %user, "account disabled: closing its sockets");
        cut_off(state, &user, "account disabled").await;
    }
}

/// Closes every staff socket of an account and takes it out of routing (it keeps its open contacts until they end).
pub async fn cut_off(state: &AppState, user: &str, reason: &'static str) {
    state.hub.close_staff(user, crate::protocol::close::REVOKED, reason);
    if let Some(key) = counsellor_key(user) {
        if state.hub.counsellor_online(user) {
            state.engine.input(Input::RemoveCounsellor { counsellor: key }).await;
        }
    }
}

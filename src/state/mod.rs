//! What the edges and the domains share: [`AppState`] (the handles every request and session gets),
//! the one error type ([`error::AppError`]).

pub mod access;
pub mod error;
pub mod sockets;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use crate::auth::{AuthKeys, Tickets};
use crate::chat::engine_task::EngineHandle;
use crate::chat::hub::Hub;
use crate::chat::relay::RelayHandle;
use crate::clock::Clock;
use crate::store::helplines::Helpline;
use crate::store::Store;

/// Shared handles, cloned into every request and session.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub hub: Arc<Hub>,
    pub engine: EngineHandle,
    pub relay: RelayHandle,
    pub auth: Arc<AuthKeys>,
    pub tickets: Arc<Tickets>,
    pub clock: Clock,
    pub helplines: Arc<Vec<Helpline>>,
    /// Becomes true when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    pub sessions: Arc<Sessions>,
    /// See [`Settings::allowed_origins`].
    pub allowed_origins: Arc<Vec<String>>,
    /// See [`Settings::metrics_token`]: `GET /metrics` asks for it when set.
    pub metrics_token: Option<Arc<str>>,
    pub rate_limit: crate::state::sockets::RateLimit,
    /// Per-address abuse limits.
    pub guard: Arc<crate::auth::guard::Guard>,
    /// This node's cluster membership (cluster mode only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub keepalive: crate::state::sockets::Keepalive,
}

impl Sessions {
    /// Waits until no session is live.
    pub async fn all_done(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts live WebSocket sessions, so shutdown can wait for them to finish.
#[derive(Default)]
pub struct Sessions {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a session while it runs.
pub struct SessionGuard(Arc<Sessions>);

impl Sessions {
    pub fn enter(self: &Arc<Self>) -> SessionGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        SessionGuard(self.clone())
    }
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Completes when the server starts shutting down.
pub async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        // The sender is gone: the server is going away too.
    }
}

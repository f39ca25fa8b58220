//! Wiring: `Application::build` opens the database, restores the router, binds the listener; `run_until` serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{random_secret, AuthKeys, Tickets};
use crate::clock::Clock;
use crate::engine_task::{self, counsellor_key, EngineHandle};
use crate::hub::Hub;
use crate::relay::{self, RelayHandle};
use crate::routing::Input;
use crate::store::helplines::Helpline;
use crate::store::Store;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// `sqlite:PATH` or `postgres://…`.
    pub database_url: String,
    /// HS256 key for access tokens; when None, one is generated once and kept in the database.
    pub jwt_secret: Option<String>,
    /// The key being rotated out: tokens it signed are still accepted (by their `kid`) until they expire.
    pub jwt_previous_secret: Option<String>,
    /// Lifetime of access tokens (default 15 minutes; the pages refresh them before they expire).
    pub token_ttl: Duration,
    /// How long a login lasts through refreshes (default 12 hours, a night shift).
    pub refresh_ttl: Duration,
    /// Seed demo accounts (and helplines) if missing.
    pub demo: bool,
    /// How often to look for disabled accounts whose sockets must close.
    pub account_check_every: Duration,
    /// How often settled hours are rolled up for reports (`None`: never in the background).
    pub report_rollup_every: Option<Duration>,
    /// Delete the conversations of contacts without a case this many days after they ended
    /// ([`crate::retention`]); None: keep them.
    pub retention_days: Option<u32>,
    /// How often retention runs (when `retention_days` is set).
    pub retention_every: Duration,
    /// Origins allowed to open the caller socket (exact, e.g. `https://www.116111.md`). Empty: only
    /// pages served by this server (Origin matching Host), and clients that send no Origin.
    pub allowed_origins: Vec<String>,
    /// Per-socket frame rate limit.
    pub rate_limit: crate::ws::RateLimit,
    /// Per-address limits: sockets, new chats, logins; trusted proxies.
    pub guard: crate::guard::GuardSettings,
    /// Cluster mode (PostgreSQL and Redis); None: a single node.
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// Ping interval and idle timeout of every socket.
    pub keepalive: crate::ws::Keepalive,
}

impl Settings {
    /// Defaults for a database URL: loopback, port 0, 15-minute access tokens refreshed for up to
    /// 12 hours (a night shift), no demo data.
    pub fn for_database(database_url: impl Into<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            jwt_secret: None,
            jwt_previous_secret: None,
            token_ttl: crate::auth::DEFAULT_ACCESS_TTL,
            refresh_ttl: crate::auth::DEFAULT_REFRESH_TTL,
            demo: false,
            account_check_every: Duration::from_secs(1),
            report_rollup_every: Some(Duration::from_secs(300)),
            retention_days: None,
            retention_every: RETENTION_EVERY,
            allowed_origins: Vec::new(),
            rate_limit: crate::ws::RateLimit::default(),
            guard: crate::guard::GuardSettings::default(),
            cluster: None,
            keepalive: crate::ws::Keepalive::default(),
        }
    }
}

/// How often the server runs retention (`--retention-days`).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

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
    pub rate_limit: crate::ws::RateLimit,
    /// Per-address abuse limits.
    pub guard: Arc<crate::guard::Guard>,
    /// This node's cluster membership (cluster mode only).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub keepalive: crate::ws::Keepalive,
}

/// Every second: whether the database answers ([`Store::answering`](crate::store::Store::answering)).
async fn watch_database(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::ws::stopping(&mut shutdown) => return,
        }
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
    async fn all_done(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    /// The engine and relay tasks of a single node (in cluster mode they belong to the leadership).
    engine_task: Option<tokio::task::JoinHandle<()>>,
    relay_task: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Connects and migrates the database, seeds helplines (and demo accounts), restores the router, binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::connect(&settings.database_url).await.context("opening the database")?;
        store.migrate().await.context("migrating the database")?;
        let clock = Clock::adjustable();
        crate::demo::seed_helplines(&store).await?;
        if settings.demo {
            crate::demo::seed_accounts(&store, clock.now_ms()).await?;
            crate::demo::seed_services(&store, clock.now_ms()).await?;
        }
        let secret = match &settings.jwt_secret {
            Some(s) if !s.is_empty() => s.clone(),
            _ => store.secret_or_create("jwt_hs256", clock.now_ms(), random_secret).await?,
        };
        let previous = settings.jwt_previous_secret.clone().unwrap_or_default();
        let auth = Arc::new(
            AuthKeys::new(secret.as_bytes(), settings.token_ttl)
                .with_previous(previous.as_bytes())
                .with_refresh_ttl(settings.refresh_ttl),
        );
        let helplines = store.helplines().await?;
        let (hub, engine, relay, engine_task, relay_task, cluster) = match &settings.cluster {
            None => {
                let hub = Arc::new(Hub::new());
                // The exchanges' sockets that held commands are gone with the last process.
                store.release_node_commands(crate::telephony::LOCAL_NODE).await?;
                let (relay, relay_task) = relay::spawn(store.clone(), hub.clone(), clock).await?;
                let (engine, engine_task) =
                    engine_task::spawn(store.clone(), hub.clone(), relay.clone(), clock, &helplines).await?;
                (hub, engine, relay, Some(engine_task), Some(relay_task), None)
            }
            Some(cluster) => {
                // Socket ids are carried between nodes: each node numbers from a random base.
                let hub = Arc::new(Hub::with_id_base(u64::from(rand::random::<u32>()) << 24));
                let cluster =
                    crate::cluster::Cluster::start(cluster.clone(), store.clone(), hub.clone(), clock, helplines.clone())
                        .await
                        .context("joining the cluster")?;
                let engine = EngineHandle::clustered(cluster.link.clone());
                let relay = RelayHandle::clustered(cluster.link.clone());
                (hub, engine, relay, None, None, Some(cluster))
            }
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            store,
            hub,
            engine,
            relay,
            auth,
            tickets: Arc::new(Tickets::default()),
            clock,
            helplines: Arc::new(helplines),
            shutdown,
            sessions: Arc::new(Sessions::default()),
            allowed_origins: Arc::new(settings.allowed_origins.clone()),
            rate_limit: settings.rate_limit,
            guard: Arc::new(crate::guard::Guard::new(settings.guard.clone())),
            cluster,
            keepalive: settings.keepalive,
        };
        tokio::spawn(watch_database(state.clone()));
        tokio::spawn(watch_disabled_accounts(state.clone(), settings.account_check_every));
        tokio::spawn(crate::supervise::run_feed(state.clone()));
        tokio::spawn(forget_idle_limits(state.clone()));
        if state.cluster.is_none() {
            // (In cluster mode the link sweeps, knowing which nodes are alive.)
            tokio::spawn(sweep_gateways(state.clone()));
        }
        if let Some(every) = settings.report_rollup_every {
            tokio::spawn(roll_up_reports(state.clone(), every));
        }
        tokio::spawn(crate::api::escalations::run_ack_watch(state.clone()));
        if let Some(days) = settings.retention_days {
            tokio::spawn(crate::retention::run_periodically(state.clone(), days, settings.retention_every));
        }
        let listener = TcpListener::bind(&settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        if let (Some(cluster), Ok(addr)) = (&state.cluster, listener.local_addr()) {
            cluster.set_address(addr.to_string());
        }
        Ok(Application { listener, state, shutdown_tx, engine_task, relay_task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then shuts down gracefully: stop accepting, tell every
    /// socket to reconnect, let sessions finish, drain the relay and router (every write finished), close the database.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, state, shutdown_tx, engine_task, relay_task } = self;
        let router = crate::http::router()
            .layer(RequestBodyLimitLayer::new(crate::http::MAX_BODY_BYTES))
            .layer(TraceLayer::new_for_http())
            .with_state(state.clone());
        let stop = shutdown_tx.clone();
        // Small frames must not wait for Nagle's algorithm: every chat message is latency-sensitive.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: no new connections; asking clients to reconnect");
                let _ = stop.send(true);
            })
            .await
            .context("serving")?;
        let _ = shutdown_tx.send(true);
        if tokio::time::timeout(Duration::from_secs(10), state.sessions.all_done()).await.is_err() {
            tracing::warn!(live = state.sessions.live(), "sessions still open after 10 s; closing anyway");
        }
        let store = state.store.clone();
        if let Some(cluster) = &state.cluster {
            cluster.leave().await;
        }
        drop(state);
        // The engine task waits for a database that is away (see `EngineTask::commit`); it ends once
        // every handle is gone. A session stuck past the wait above still holds one: stop waiting then.
        if let Some(task) = engine_task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(15), task).await.is_err() {
                tracing::warn!("router still waiting for the database after 15 s; stopping it (a restart restores from the database)");
                abort.abort();
            }
        }
        if let Some(task) = relay_task {
            let _ = task.await;
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Closes the sockets of accounts disabled (by `helpline user disable` or an admin) or logged out
/// while connected, and takes them out of routing. Runs every `every` (1 s by default).
async fn watch_disabled_accounts(state: AppState, every: Duration) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::ws::stopping(&mut shutdown) => return,
        }
        let online = state.hub.online_staff();
        if online.is_empty() {
            continue;
        }
        let disabled = match state.store.disabled_users().await {
            Ok(d) => d,
            Err(err) => {
                tracing::warn!(error = %err, "checking disabled accounts failed");
                continue;
            }
        };
        for user in online.into_iter().filter(|u| disabled.contains(u)) {
            tracing::info!(user = %user, "account disabled: closing its sockets");
            cut_off(&state, &user, "account disabled").await;
        }
    }
}

/// Closes every staff socket of an account and takes it out of routing (it keeps its open contacts until they end).
pub async fn cut_off(state: &AppState, user: &str, reason: &'static str) {
    state.hub.close_staff(user, crate::ws::close::REVOKED, reason);
    if let Some(key) = counsellor_key(user) {
        if state.hub.agent_online(user) {
            state.engine.input(Input::RemoveCounsellor { counsellor: key }).await;
        }
    }
}

/// Runs `step` at once and then every `period` (missed ticks are not made up), until the server
/// shuts down. For the server's housekeeping: roll-ups, retention, forgetting idle limits.
pub(crate) async fn every<F, Fut>(state: &AppState, period: Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::ws::stopping(&mut shutdown) => return,
        }
        step().await;
    }
}

/// At start and then `every` (five minutes by default), rolls up the settled hours reports need ([`crate::rollup`]), a month
/// of hours per step so that a first run on a big database does not hold the write lock for long.
async fn roll_up_reports(state: AppState, period: Duration) {
    every(&state, period, || async {
        loop {
            match crate::rollup::roll_up(&state.store, state.clock.now_ms(), 24 * 31).await {
                Ok(p) if p.remaining > 0 && p.rolled > 0 => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "report roll-up failed; reports stay correct (computed live)");
                    break;
                }
            }
            if *state.shutdown.borrow() {
                return;
            }
        }
    })
    .await;
}

/// Every [`crate::cluster::link::GATEWAY_SWEEP`], hands the exchanges' commands that no socket holds to their sockets.
async fn sweep_gateways(state: AppState) {
    every(&state, crate::cluster::link::GATEWAY_SWEEP, || async {
        crate::telephony::sweep(&state.store, &state.hub, state.clock.now_ms(), &[], 0).await;
    })
    .await;
}

/// Every minute, drops the rate-limit state of addresses that have been quiet (so a flood from
/// many addresses does not grow memory for ever).
async fn forget_idle_limits(state: AppState) {
    every(&state, Duration::from_secs(60), || async { state.guard.forget_idle() }).await;
}

//! The binary: the command line ([`cli`]), `Application::build` (open the database, restore the router,
//! bind the listener), the background loops ([`loops`]), `run_until` (serve until shutdown).

pub mod backup_cli;
pub mod channel_cli;
pub mod cli;
pub mod demo;
pub mod hours_cli;
pub mod loops;
pub mod service_cli;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::{AppState, Sessions};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{AuthKeys, Tickets};
use crate::chat::engine_task::{self, EngineHandle};
use crate::chat::hub::Hub;
use crate::chat::relay::{self, RelayHandle};
use crate::clock::Clock;
use crate::store::Store;

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// `sqlite:PATH` or `postgres://…`.
    pub database_url: String,
    /// HS256 key for access tokens (at least [`MIN_JWT_SECRET_LEN`] bytes); when None, the key file's.
    pub jwt_secret: Option<String>,
    /// The key file (`--key-file`, `HELPLINE_KEY_FILE`; docs/security.md): None for SQLite means the
    /// one beside the database file; a PostgreSQL node refuses to start without one.
    pub key_file: Option<std::path::PathBuf>,
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
    /// ([`crate::safety::retention`]); None: keep them.
    pub retention_days: Option<u32>,
    /// Prune the audit log's lines older than this many days, from the head (the keyed anchor keeps
    /// the chain verifiable); None: keep them.
    pub audit_retention_days: Option<u32>,
    /// How often retention runs (every class, with each helpline's periods: `helpline retention set`).
    pub retention_every: Duration,
    /// Origins allowed to open the caller socket (exact, e.g. `https://www.116111.md`). Empty: only
    /// pages served by this server (Origin matching Host), and clients that send no Origin.
    pub allowed_origins: Vec<String>,
    /// `GET /metrics` asks for `Authorization: Bearer <this>` when set (docs/metrics.md); None: open.
    pub metrics_token: Option<String>,
    /// Per-socket frame rate limit.
    pub rate_limit: crate::state::sockets::RateLimit,
    /// Per-address limits: sockets, new chats, logins; trusted proxies.
    pub guard: crate::auth::guard::GuardSettings,
    /// Cluster mode (PostgreSQL and Redis); None: a single node.
    pub cluster: Option<crate::cluster::ClusterSettings>,
    /// Ping interval and idle timeout of every socket.
    pub keepalive: crate::state::sockets::Keepalive,
    /// Kinds of contact besides the core's web chat and phone (a messaging app), registered with the
    /// hub before the router is restored ([`crate::chat::channel`]).
    pub channels: Vec<Arc<dyn crate::chat::channel::ContactChannel>>,
    /// The messaging channels' worker: its pace and the outbox's retries (docs/channels.md).
    pub messaging: crate::edge::channels::MessagingSettings,
}

impl Settings {
    /// Defaults for a database URL: loopback, port 0, 15-minute access tokens refreshed for up to
    /// 12 hours (a night shift), no demo data.
    pub fn for_database(database_url: impl Into<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            jwt_secret: None,
            key_file: None,
            jwt_previous_secret: None,
            token_ttl: crate::auth::DEFAULT_ACCESS_TTL,
            refresh_ttl: crate::auth::DEFAULT_REFRESH_TTL,
            demo: false,
            account_check_every: Duration::from_secs(1),
            report_rollup_every: Some(Duration::from_secs(300)),
            retention_days: None,
            audit_retention_days: None,
            retention_every: RETENTION_EVERY,
            allowed_origins: Vec::new(),
            metrics_token: None,
            rate_limit: crate::state::sockets::RateLimit::default(),
            guard: crate::auth::guard::GuardSettings::default(),
            cluster: None,
            keepalive: crate::state::sockets::Keepalive::default(),
            channels: Vec::new(),
            messaging: crate::edge::channels::MessagingSettings::default(),
        }
    }
}

/// Registers the kinds of contact the settings add (before anything restores contacts of them).
fn register_channels(hub: &Hub, settings: &Settings, messaging: &[Arc<dyn crate::chat::channel::ContactChannel>]) {
    for channel in messaging.iter().chain(&settings.channels) {
        tracing::info!(kind = channel.kind(), "channel registered");
        hub.channels.register(channel.clone());
    }
}

/// The shortest `HELPLINE_JWT_SECRET` accepted (bytes): 256 bits.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// How often the server runs retention (`--retention-days`).
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

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
        let key_file = settings.key_file.clone().or_else(|| crate::store::keys::remembered_key_file(&settings.database_url));
        if key_file.is_none() && !settings.database_url.starts_with("sqlite:") {
            anyhow::bail!("{}", crate::store::keys::KeyError::Missing);
        }
        let store = Store::connect_with(&settings.database_url, key_file.as_deref()).await.context("opening the database")?;
        store.migrate().await.context("migrating the database")?;
        let clock = Clock::adjustable();
        crate::store::defaults::seed_helplines(&store).await?;
        if settings.demo {
            crate::app::demo::seed_accounts(&store, clock.now_ms()).await?;
            crate::app::demo::seed_services(&store, clock.now_ms()).await?;
        }
        let keys = store.keys().snapshot()?;
        let (secret, previous) = match &settings.jwt_secret {
            Some(s) if !s.is_empty() => {
                if s.len() < MIN_JWT_SECRET_LEN {
                    anyhow::bail!("HELPLINE_JWT_SECRET is {} bytes long: it must be at least {MIN_JWT_SECRET_LEN} (or leave it unset: the key file's signing key is used)", s.len());
                }
                (s.clone(), settings.jwt_previous_secret.clone().unwrap_or_default())
            }
            // The key file's newest signing key signs; the one before it still verifies (rotation).
            _ => {
                let mut newest = keys.signing.iter().rev().map(|k| k.key.clone());
                (newest.next().unwrap_or_default(), newest.next().unwrap_or_default())
            }
        };
        let auth = Arc::new(
            AuthKeys::new(secret.as_bytes(), settings.token_ttl).with_previous(previous.as_bytes()).with_refresh_ttl(settings.refresh_ttl),
        );
        let helplines = store.directory().helplines().await?;
        // The messaging channels (SMS, …): registered before contacts of them are restored.
        let (messaging, nudges) = crate::edge::channels::channels();
        let (hub, engine, relay, engine_task, relay_task, cluster) = match &settings.cluster {
            None => {
                let hub = Arc::new(Hub::new());
                register_channels(&hub, &settings, &messaging);
                // The exchanges' sockets that held commands are gone with the last process.
                store.commands().release_node_commands(crate::chat::exchange::LOCAL_NODE).await?;
                let (relay, relay_task) = relay::spawn(store.clone(), hub.clone(), clock).await?;
                let (engine, engine_task) = engine_task::spawn(store.clone(), hub.clone(), relay.clone(), clock, &helplines).await?;
                (hub, engine, relay, Some(engine_task), Some(relay_task), None)
            }
            Some(cluster) => {
                // Socket ids are carried between nodes: each node numbers from a random base.
                let hub = Arc::new(Hub::with_id_base(u64::from(rand::random::<u32>()) << 24));
                register_channels(&hub, &settings, &messaging);
                let cluster = crate::cluster::Cluster::start(cluster.clone(), store.clone(), hub.clone(), clock, helplines.clone())
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
            metrics_token: settings.metrics_token.clone().filter(|t| !t.is_empty()).map(Arc::from),
            rate_limit: settings.rate_limit,
            guard: Arc::new(crate::auth::guard::Guard::new(settings.guard.clone())),
            cluster,
            keepalive: settings.keepalive,
        };
        loops::start(&state, &settings);
        crate::edge::channels::spawn(state.clone(), nudges, settings.messaging);
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
        let router = crate::edge::router()
            .layer(RequestBodyLimitLayer::new(crate::edge::rest::MAX_BODY_BYTES))
            // Spans name the path, never the query: a socket's `?ticket=` is a credential until used.
            .layer(TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<_>| tracing::debug_span!("request", method = %req.method(), path = %req.uri().path()),
            ))
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

//! Cluster mode: several nodes on one PostgreSQL and one Redis; one leader (by lease and fencing token) runs the engine and the relay.
//!
//! Every node serves sockets. The node holding the Redis lease runs the engine task and
//! the relay task exactly as a single node does, on a store fenced with its token;
//! the others forward their sessions' commands to it ([`link`]) and deliver what it
//! sends to the sockets they hold. When the leader changes, the new one rebuilds the
//! engine from PostgreSQL (as after a restart) and every node registers its live sockets
//! with it again ([`wire::ToLeader::Rejoin`]): they stay open.

pub mod lease;
pub mod link;
pub mod wire;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::json;
use tokio::sync::watch;

use crate::chat::hub::Hub;
use crate::clock::Clock;
use crate::store::cluster::FenceToken;
use crate::store::helplines::Helpline;
use crate::store::{Backend, Store};
use link::{Keys, Link, Local};

/// Default lease: a dead leader is replaced within this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://HOST:PORT[/DB]`.
    pub redis_url: String,
    /// This node's id (unique in the cluster); None: a random one.
    pub node_id: Option<String>,
    /// The leader lease; renewed every third of it.
    pub lease: Duration,
    /// Prefix of every Redis key (several clusters, or tests, can share one Redis).
    pub prefix: String,
}

impl ClusterSettings {
    pub fn new(redis_url: impl Into<String>) -> ClusterSettings {
        ClusterSettings { redis_url: redis_url.into(), node_id: None, lease: DEFAULT_LEASE, prefix: "helpline".into() }
    }
}

/// What this node leads while it is the leader.
struct Leadership {
    token: i64,
    value: String,
    stop_reader: watch::Sender<bool>,
    /// The engine and relay tasks: they end once their queues close.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// When the lease may have run out in Redis if no renewal got through since.
    valid_until: tokio::time::Instant,
}

/// This node's membership of the cluster.
pub struct Cluster {
    pub node: String,
    settings: ClusterSettings,
    keys: Keys,
    client: redis::Client,
    redis: ConnectionManager,
    pub link: Arc<Link>,
    store: Store,
    hub: Arc<Hub>,
    clock: Clock,
    helplines: Vec<Helpline>,
    address: Mutex<String>,
    leadership: tokio::sync::Mutex<Option<Leadership>>,
    /// The holder last seen: (node, token).
    seen: Mutex<Option<(String, i64)>>,
    stop: watch::Sender<bool>,
    /// This node's database's cluster id ([`Store::cluster_id`]).
    cluster_id: String,
    /// Set when the nodes on this Redis prefix share another database: this node then neither
    /// follows nor leads, and `/readyz` says why.
    foreign: Mutex<Option<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish_non_exhaustive()
    }
}

/// The cluster id the nodes on this prefix share, when it is not `ours` (written first if Redis has none).
async fn identity_mismatch(redis: &mut ConnectionManager, keys: &Keys, ours: &str) -> redis::RedisResult<Option<String>> {
    let (_, theirs): (Option<String>, String) =
        redis::pipe().cmd("SET").arg(keys.cluster_id()).arg(ours).arg("NX").cmd("GET").arg(keys.cluster_id()).query_async(redis).await?;
    Ok((theirs != ours).then_some(theirs))
}

fn foreign_message(ours: &str, theirs: &str, prefix: &str) -> String {
    format!(
        "this node's database is cluster {ours}, but the nodes on Redis prefix {prefix:?} share the database of cluster \
         {theirs}: refusing to join them (point DATABASE_URL at their database, or give this cluster its own --redis-prefix)"
    )
}

/// A connection to Redis that reconnects by itself; `reads` for blocking stream reads.
async fn connect(client: &redis::Client, reads: bool) -> redis::RedisResult<ConnectionManager> {
    let timeout = if reads { Duration::from_secs(5) } else { Duration::from_secs(2) };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_max_delay(Duration::from_millis(500));
    client.get_connection_manager_with_config(config).await
}

impl Cluster {
    /// Joins the cluster: connects to Redis, starts the link and the lease loop. The node is a
    /// follower until it wins the lease (at once, if nobody holds it).
    pub async fn start(
        settings: ClusterSettings,
        store: Store,
        hub: Arc<Hub>,
        clock: Clock,
        helplines: Vec<Helpline>,
    ) -> anyhow::Result<Arc<Cluster>> {
        if store.backend() != Backend::Postgres {
            anyhow::bail!("cluster mode needs PostgreSQL (DATABASE_URL=postgres://…): SQLite is one machine's");
        }
        let client = redis::Client::open(settings.redis_url.as_str()).context("bad REDIS_URL")?;
        let mut redis = connect(&client, false).await.context("connecting to Redis")?;
        let node = settings.node_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
        let keys = Keys { prefix: settings.prefix.clone() };
        // One cluster, one database: a node pointed at another database must not follow this
        // prefix's leader (its callers would be routed by a leader writing elsewhere).
        let cluster_id =
            store.fencing().cluster_id(&uuid::Uuid::new_v4().simple().to_string()).await.context("reading this database's cluster id")?;
        if let Some(theirs) = identity_mismatch(&mut redis, &keys, &cluster_id).await.context("Redis")? {
            anyhow::bail!("{}", foreign_message(&cluster_id, &theirs, &settings.prefix));
        }
        // Items left on this node's stream by an earlier process of the same id were for sockets that are gone.
        let _: () = redis::cmd("DEL").arg(keys.node(&node)).query_async(&mut redis).await.context("Redis")?;
        // So were the exchanges' commands it held.
        hub.gateways.set_node(&node);
        store.commands().release_node_commands(&node).await.context("releasing this node's telephony commands")?;
        let link = Link::start(&node, keys.clone(), hub.clone(), store.clone(), clock, redis.clone());
        let weak = Arc::downgrade(&link);
        // A follower keeps what each of its sockets was sent, for the next leader (see `Hub::note_seen`).
        hub.track_seen(true);
        hub.set_detach_hook(Box::new(move |caller, key, conn| {
            if let Some(link) = weak.upgrade() {
                link.detached(caller, key, conn);
            }
        }));
        let weak = Arc::downgrade(&link);
        hub.set_supervisor_hook(Box::new(move |audience, text| {
            if let Some(link) = weak.upgrade() {
                link.supervisors_to_peers(audience, text.as_str());
            }
        }));
        let weak = Arc::downgrade(&link);
        hub.gateways.set_wake_hook(Box::new(move |gateway| {
            if let Some(link) = weak.upgrade() {
                link.wake_gateway(gateway);
            }
        }));
        let (stop, stopped) = watch::channel(false);
        let reads = connect(&client, true).await.context("connecting to Redis")?;
        tokio::spawn(link::node_reader(link.clone(), reads, stopped.clone()));
        tokio::spawn(link::gateway_sweep(link.clone(), settings.lease * 2, stopped.clone()));
        let cluster = Arc::new(Cluster {
            node,
            settings,
            keys,
            client,
            redis,
            link,
            store,
            hub,
            clock,
            helplines,
            address: Mutex::new(String::new()),
            leadership: tokio::sync::Mutex::new(None),
            seen: Mutex::new(None),
            stop,
            cluster_id,
            foreign: Mutex::new(None),
        });
        tracing::info!(node = %cluster.node, "joined the cluster as a follower");
        tokio::spawn(cluster.clone().run(stopped));
        Ok(cluster)
    }

    /// The address this node serves on (shown in the node list).
    pub fn set_address(&self, addr: String) {
        *self.address.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    fn lease_ms(&self) -> u64 {
        self.settings.lease.as_millis().max(300) as u64
    }

    pub fn is_leader(&self) -> bool {
        self.link.is_leader()
    }

    /// The lease loop: heartbeat, renew (leader) or watch and take over (follower), every third of the lease.
    async fn run(self: Arc<Self>, stopped: watch::Receiver<bool>) {
        let every = self.settings.lease / 3;
        let mut ticker = crate::clock::Ticker::new(stopped, every);
        while ticker.next().await {
            self.heartbeat().await;
            let mut leadership = self.leadership.lock().await;
            if !self.check_identity().await {
                self.step_down(&mut leadership, "the nodes on this Redis prefix share another database", true).await;
                continue;
            }
            match leadership.as_mut() {
                Some(lead) if lead.tasks.iter().any(|t| t.is_finished()) => {
                    // The engine stopped: a routing step could not be stored. With the lease still
                    // ours the database is unreachable, and the sockets stay; else we were fenced.
                    let mut redis = self.redis.clone();
                    let ours = lease::current(&mut redis, &self.keys)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|(n, t, _)| n == self.node && t == lead.token);
                    self.step_down(&mut leadership, "a routing step was not stored", !ours).await;
                }
                Some(lead) => {
                    let started = tokio::time::Instant::now();
                    let mut redis = self.redis.clone();
                    match lease::renew(&mut redis, &self.keys, &lead.value, self.lease_ms()).await {
                        Ok(true) => {
                            lead.valid_until = started + self.settings.lease - every;
                            self.link.extend(lead.valid_until);
                        }
                        Ok(false) => self.step_down(&mut leadership, "the lease is held by another node", true).await,
                        Err(err) => {
                            tracing::warn!(error = %err, "renewing the lease failed");
                            if tokio::time::Instant::now() >= lead.valid_until {
                                self.step_down(&mut leadership, "the lease could not be renewed in time", true).await;
                            }
                        }
                    }
                }
                None => self.follow(&mut leadership).await,
            }
        }
    }

    /// Checks this node's database is still the cluster's (the prefix's cluster id in Redis, written
    /// again if Redis lost it). False (logged once, and shown by `/readyz`) when it is another's.
    async fn check_identity(&self) -> bool {
        let mut redis = self.redis.clone();
        let theirs = match identity_mismatch(&mut redis, &self.keys, &self.cluster_id).await {
            Ok(theirs) => theirs,
            Err(err) => {
                tracing::warn!(error = %err, "reading the cluster id failed");
                return self.identity_error().is_none();
            }
        };
        let mut foreign = self.foreign.lock().unwrap_or_else(|p| p.into_inner());
        match theirs {
            Some(theirs) => {
                let message = foreign_message(&self.cluster_id, &theirs, &self.settings.prefix);
                if foreign.is_none() {
                    tracing::error!("{message}");
                    // Its sockets go elsewhere (to a ready node): this one no longer follows the leader.
                    self.hub.close_local(crate::protocol::close::RESTART, "reconnect and resume");
                }
                *foreign = Some(message);
                false
            }
            None => {
                *foreign = None;
                true
            }
        }
    }

    /// Why this node refuses to take part (its database is not the cluster's), for `/readyz`.
    pub fn identity_error(&self) -> Option<String> {
        self.foreign.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Writes this node's heartbeat and reads the other live nodes' (for the board and alerts).
    async fn heartbeat(&self) {
        let now = self.clock.now_ms();
        let info = json!({
            "address": *self.address.lock().unwrap_or_else(|p| p.into_inner()),
            "leader": self.is_leader(),
            "supervisors": self.hub.counts().2,
        });
        let mut redis = self.redis.clone();
        let alive_since = now - self.settings.lease.as_millis() as i64;
        let done: redis::RedisResult<(Vec<String>, std::collections::HashMap<String, String>)> = redis::pipe()
            .cmd("ZADD")
            .arg(self.keys.nodes())
            .arg(now)
            .arg(&self.node)
            .ignore()
            .cmd("HSET")
            .arg(self.keys.node_info())
            .arg(&self.node)
            .arg(info.to_string())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.nodes())
            .arg("-inf")
            .arg(now - 3_600_000)
            .ignore()
            .cmd("ZRANGEBYSCORE")
            .arg(self.keys.nodes())
            .arg(alive_since)
            .arg("+inf")
            .cmd("HGETALL")
            .arg(self.keys.node_info())
            .query_async(&mut redis)
            .await;
        match done {
            Ok((alive, infos)) => {
                let peers = alive
                    .into_iter()
                    .filter(|id| *id != self.node)
                    .map(|id| {
                        let info: serde_json::Value = infos.get(&id).and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
                        link::Peer { supervisors: info["supervisors"].as_u64().unwrap_or(0) > 0, id }
                    })
                    .collect();
                self.link.set_peers(peers);
            }
            Err(err) => tracing::warn!(error = %err, "cluster heartbeat failed"),
        }
    }

    /// A follower's tick: notice a new leader, or take the lease when it is free.
    async fn follow(&self, leadership: &mut Option<Leadership>) {
        let mut redis = self.redis.clone();
        match lease::current(&mut redis, &self.keys).await {
            Ok(Some((node, token, _))) => self.observe(&node, token),
            Ok(None) => self.try_lead(leadership).await,
            Err(err) => tracing::warn!(error = %err, "reading the lease failed"),
        }
    }

    /// Records the holder; when it changed, drops replies the old leader will never send and (on a
    /// follower) registers this node's live sockets with the new leader, so they stay open.
    fn observe(&self, node: &str, token: i64) {
        let changed = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let changed = seen.as_ref().is_none_or(|(n, t)| n != node || *t != token);
            *seen = Some((node.to_string(), token));
            changed
        };
        if changed {
            self.link.fail_pending();
            if node != self.node {
                self.link.rejoin_leader(token);
            }
            tracing::info!(leader = %node, token, "the cluster has a new leader");
        }
    }

    async fn try_lead(&self, leadership: &mut Option<Leadership>) {
        let floor = match self.store.fencing().fence().await {
            Ok((token, _)) => token,
            Err(err) => {
                tracing::warn!(error = %err, "reading the fence failed: not taking the lead");
                return;
            }
        };
        let mut redis = self.redis.clone();
        // Where to read commands from if no leader recorded its progress: from before the lease is
        // taken (Redis's clock), so that the other nodes' rejoins, sent once they see it taken, are read.
        let before: (i64, i64) = match redis::cmd("TIME").query_async(&mut redis).await {
            Ok(time) => time,
            Err(err) => {
                tracing::warn!(error = %err, "reading Redis's clock failed");
                return;
            }
        };
        let started = tokio::time::Instant::now();
        let token = match lease::acquire(&mut redis, &self.keys, &self.node, self.lease_ms(), floor).await {
            Ok(Some(token)) => token,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "taking the lease failed");
                return;
            }
        };
        let value = lease::value(&self.node, token);
        let valid_until = started + self.settings.lease - self.settings.lease / 3;
        let previous = self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(node, _)| node.clone());
        let now_ms = before.0 * 1000 + before.1 / 1000;
        match self.lead(token, valid_until, now_ms, previous).await {
            Ok((stop_reader, tasks)) => {
                *leadership = Some(Leadership { token, value, stop_reader, tasks, valid_until });
                self.observe(&self.node, token);
                tracing::info!(node = %self.node, token, "took the lead: routing engine rebuilt from the database");
            }
            Err(err) => {
                tracing::error!(error = %err, token, "could not take the lead; giving the lease back");
                self.hub.track_seen(true);
                let _ = lease::release(&mut redis, &self.keys, &value).await;
            }
        }
    }

    /// Raises the fence, rebuilds the engine and relay from PostgreSQL on a fenced store, registers
    /// the live sockets of every node again, and starts reading commands where the last leader stopped.
    /// `redis_ms`: Redis's clock before the lease was taken; `previous`: the last leader.
    async fn lead(
        &self,
        token: i64,
        valid_until: tokio::time::Instant,
        redis_ms: i64,
        previous: Option<String>,
    ) -> anyhow::Result<(watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>)> {
        if !self.store.fencing().raise_fence(token, &self.node, self.clock.now_ms()).await? {
            anyhow::bail!("the fence is already at or above token {token}");
        }
        // Which socket is whose is registered again below, by every node; this node's own sockets
        // are sent to directly from now on (what they were sent is no longer kept).
        let seen = self.hub.track_seen(false);
        self.hub.reset_routes();
        let store = self.store.fenced(FenceToken::new(token));
        let (relay, relay_task) = crate::chat::relay::spawn(store.clone(), self.hub.clone(), self.clock).await?;
        let (engine, engine_task) =
            crate::chat::engine_task::spawn(store, self.hub.clone(), relay.clone(), self.clock, &self.helplines).await?;
        let (Some(engine), Some(relay)) = (engine.local_sender(), relay.local_sender()) else {
            anyhow::bail!("engine or relay not local");
        };
        // Commands from where the last leader recorded it had handed them over (at most a minute
        // back); without a record, from before the lease was taken. Commands handed over but not yet
        // recorded are carried out again: messages are stored once by client id, inputs are idempotent.
        let mut redis = self.redis.clone();
        let done: Option<String> = redis::cmd("GET").arg(self.keys.progress()).query_async(&mut redis).await?;
        let oldest = redis_ms - 60_000;
        let start = match done {
            Some(id) if link::id_ms(&id) >= oldest => id,
            Some(_) => format!("{oldest}-0"),
            None => format!("{redis_ms}-0"),
        };
        let local = Local { engine, relay };
        // The live sockets: this node's at once; the other nodes' as their rejoins arrive (asked
        // for here; each also rejoins on noticing the new lease), before any other command is read.
        let peers: std::collections::HashSet<String> =
            self.link.peers().into_iter().map(|p| p.id).filter(|id| Some(id) != previous.as_ref()).collect();
        for peer in &peers {
            self.link.request_rejoin(peer, token);
        }
        self.link.rejoin(&self.node, self.hub.roles(), self.hub.watches(), seen, &local).await;
        let mut reads = connect(&self.client, true).await?;
        self.link.await_rejoins(&mut reads, &start, peers, self.settings.lease / 4, &local).await;
        let (stop_reader, stopped) = watch::channel(false);
        self.link.set_local(Some((local, valid_until)));
        tokio::spawn(link::command_reader(self.link.clone(), reads, start, stopped));
        Ok((stop_reader, vec![engine_task, relay_task]))
    }

    /// Stops leading: the engine and relay queues close (whatever they still commit is refused by
    /// the fence) and the lease is given back if still ours. `close`: this node's sockets are asked to
    /// resume (it lost the lease: it was paused or cut off, and what they show may be stale); otherwise
    /// they stay open and register with the next leader like every other node's.
    async fn step_down(&self, leadership: &mut Option<Leadership>, why: &str, close: bool) {
        let Some(lead) = leadership.take() else { return };
        tracing::warn!(node = %self.node, token = lead.token, why, "stepping down as leader");
        self.link.set_local(None);
        let _ = lead.stop_reader.send(true);
        let mut redis = self.redis.clone();
        let _ = lease::release(&mut redis, &self.keys, &lead.value).await;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.hub.reset_routes();
        self.hub.track_seen(true);
        if close {
            self.hub.close_local(crate::protocol::close::RESTART, "reconnect and resume");
        }
        self.link.fail_pending();
    }

    /// Leaves the cluster (graceful shutdown): lets the engine and relay finish their writes, then
    /// gives the lease back so another node takes over at once.
    pub async fn leave(&self) {
        let _ = self.stop.send(true);
        let mut leadership = self.leadership.lock().await;
        if let Some(lead) = leadership.take() {
            self.link.set_local(None);
            let _ = lead.stop_reader.send(true);
            for task in lead.tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
            let mut redis = self.redis.clone();
            let _ = lease::release(&mut redis, &self.keys, &lead.value).await;
            tracing::info!(node = %self.node, "left the cluster; lease released");
        }
    }

    /// True when Redis answers (for `/readyz`).
    pub async fn redis_ready(&self) -> bool {
        let mut redis = self.redis.clone();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut redis).await;
        pong.is_ok() && self.link.redis_ok.load(Ordering::SeqCst)
    }

    /// What `GET /api/v1/cluster` shows.
    pub async fn status(&self) -> anyhow::Result<serde_json::Value> {
        let mut redis = self.redis.clone();
        let now = self.clock.now_ms();
        let holder = lease::current(&mut redis, &self.keys).await?;
        let beats: Vec<(String, i64)> =
            redis::cmd("ZRANGE").arg(self.keys.nodes()).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut redis).await?;
        let infos: std::collections::HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.keys.node_info()).query_async(&mut redis).await?;
        let alive_within = self.settings.lease.as_millis() as i64;
        let nodes: Vec<serde_json::Value> = beats
            .into_iter()
            .filter(|(_, at)| now - at <= alive_within)
            .map(|(id, at)| {
                let info: serde_json::Value = infos.get(&id).and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
                json!({ "id": id, "address": info["address"], "leader": info["leader"], "last_seen_ms_ago": (now - at).max(0) })
            })
            .collect();
        let last_ms = |key: String| {
            let mut redis = self.redis.clone();
            async move {
                let last: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut redis)
                    .await
                    .unwrap_or_default();
                last.first().and_then(|(id, _)| id.split('-').next()?.parse::<i64>().ok()).unwrap_or(0)
            }
        };
        let commands_written = last_ms(self.keys.commands()).await;
        let items_written = last_ms(self.keys.node(&self.node)).await;
        let (fence, fence_holder) = self.store.fencing().fence().await?;
        let lag = |written: i64, read: i64| (written - read).max(0);
        let sees = self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(node, _)| node.clone());
        Ok(json!({
            "node": self.node,
            "role": if self.is_leader() { "leader" } else { "follower" },
            "sees_leader": sees,
            "redis_ok": self.link.redis_ok.load(Ordering::SeqCst),
            "leader": holder.as_ref().map(|(node, token, left)| json!({ "node": node, "token": token, "lease_ms_left": left })),
            "lease_ms": self.lease_ms(),
            "fence": { "token": fence, "holder": fence_holder },
            "nodes": nodes,
            "lag": {
                "commands_ms": if self.is_leader() { Some(lag(commands_written, self.link.commands_read_ms.load(Ordering::Relaxed))) } else { None },
                "this_node_items_ms": lag(items_written, self.link.items_read_ms.load(Ordering::Relaxed)),
            },
        }))
    }
}

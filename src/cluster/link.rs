//! The traffic between nodes: commands forwarded to the leader's engine and relay, and frames and replies back to the node holding a socket.
//!
//! Every node has one stream of items for its sockets (`<prefix>:node:<id>`), read by
//! [`node_reader`]; the leader reads the command stream (`<prefix>:cmd`) with
//! [`command_reader`]. One publisher task per node writes both, in order, pipelined.
//! Redis Streams keep entries across a reader's reconnect; a command carries an id, and
//! the leader handles each id once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::StreamReadReply;
use tokio::sync::{mpsc, oneshot, watch};

use super::wire::{self, CommandError, Envelope, ForNode, NodeItem, Remote, ReplyId, ToLeader, PROTOCOL, UNVERSIONED};
use crate::chat::engine_task::{contact_key, profile_of, status_of, EngineCommand};
use crate::chat::forward::{from_session, Answer, Local as Here, Translate};
use crate::chat::hub::{Audience, ConnId, Hub, Outbox, Outgoing, RemotePush, Role, Seen, Watch};
use crate::chat::relay::{Rejoining, RelayCommand};
use crate::protocol::CounsellorStatus;
use crate::routing::Input;
use crate::store::Store;

/// Entries kept per stream (approximate trimming): far more than any backlog a live reader has.
const STREAM_MAXLEN: usize = 100_000;
/// Command ids remembered by the leader to drop repeats.
const SEEN_IDS: usize = 50_000;
/// Items waiting for the publisher at most; past that new ones are dropped (and the socket resumes).
const OUTBOX: usize = 65_536;

/// Redis key names under a prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn commands(&self) -> String {
        format!("{}:cmd", self.prefix)
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
    pub fn lease(&self) -> String {
        format!("{}:lease", self.prefix)
    }
    pub fn token(&self) -> String {
        format!("{}:token", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub fn node_info(&self) -> String {
        format!("{}:nodeinfo", self.prefix)
    }
    /// The cluster id of the database the nodes on this prefix share (see `Store::cluster_id`).
    pub fn cluster_id(&self) -> String {
        format!("{}:cluster_id", self.prefix)
    }
    /// The id of the last command-stream entry the leader has handed to its engine and relay.
    pub fn progress(&self) -> String {
        format!("{}:cmd_done", self.prefix)
    }
}

/// Another live node, as its last heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    /// It has supervisor sockets (it wants the board).
    pub supervisors: bool,
}

/// What the publisher writes.
enum Publish {
    Command {
        json: String,
        reqs: Vec<ReplyId>,
    },
    ToNode {
        node: String,
        json: String,
    },
    /// The leader has handed the command stream up to this entry id to its engine and relay.
    Progress {
        id: String,
    },
}

type Pending = Box<dyn FnOnce(Option<serde_json::Value>) + Send>;

/// The leader's engine and relay queues, while this node is the leader.
#[derive(Clone)]
pub struct Local {
    pub engine: mpsc::Sender<EngineCommand>,
    pub relay: mpsc::Sender<RelayCommand>,
}

/// This node's end of the traffic between nodes.
pub struct Link {
    pub node: Arc<str>,
    pub keys: Keys,
    hub: Arc<Hub>,
    /// For reading accounts when counsellors' sockets rejoin a new leader, and exchanges' commands.
    store: Store,
    clock: crate::clock::Clock,
    me: Weak<Link>,
    /// The local queues while this node leads, and until when its lease is surely still valid.
    local: RwLock<Option<(Local, tokio::time::Instant)>>,
    out: mpsc::Sender<Publish>,
    pending: Mutex<HashMap<ReplyId, Pending>>,
    next_req: AtomicU64,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
    /// Milliseconds (stream id time) of the last entry read from the command stream / this node's stream.
    pub commands_read_ms: AtomicI64,
    pub items_read_ms: AtomicI64,
    /// False while this node's stream cannot be read (Redis unreachable).
    pub redis_ok: AtomicBool,
    /// The highest leader token this node has registered its sockets with ([`ToLeader::Rejoin`]).
    rejoined: AtomicI64,
    /// The other live nodes (from the heartbeats).
    peers: RwLock<Vec<Peer>>,
    /// Entries of another protocol version refused so far, per (node or stream, version): for the log.
    refusals: Mutex<HashMap<(String, u32), u64>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Link {
    /// A link for node `node`; its publisher writes through `conn`.
    pub fn start(node: &str, keys: Keys, hub: Arc<Hub>, store: Store, clock: crate::clock::Clock, conn: ConnectionManager) -> Arc<Link> {
        let (out, rx) = mpsc::channel(OUTBOX);
        let link = Arc::new_cyclic(|me| Link {
            node: node.into(),
            keys,
            hub,
            store,
            clock,
            me: me.clone(),
            local: RwLock::new(None),
            out,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(rand::random::<u32>() as u64),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            commands_read_ms: AtomicI64::new(0),
            items_read_ms: AtomicI64::new(0),
            redis_ok: AtomicBool::new(true),
            rejoined: AtomicI64::new(0),
            peers: RwLock::new(Vec::new()),
            refusals: Mutex::new(HashMap::new()),
        });
        tokio::spawn(publisher(link.clone(), conn, rx));
        link
    }

    /// Installs (leader, lease valid until `until`) or removes (follower) the local engine and relay queues.
    pub fn set_local(&self, local: Option<(Local, tokio::time::Instant)>) {
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = local;
    }

    /// A renewal went through: the lease is valid until `until`.
    pub fn extend(&self, until: tokio::time::Instant) {
        if let Some((_, valid)) = self.local.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            *valid = until;
        }
    }

    /// The local queues, only while the lease is surely ours: a leader that was paused past its
    /// lease neither routes nor serves commands (its writes would be fenced anyway; this also stops
    /// its reads and frames) until it has renewed or stepped down.
    fn local(&self) -> Option<Local> {
        let local = self.local.read().unwrap_or_else(|p| p.into_inner());
        local.as_ref().filter(|(_, until)| tokio::time::Instant::now() < *until).map(|(l, _)| l.clone())
    }

    /// Where a command goes now: the local queues (leading, lease valid), or None (following). While
    /// this node leads but its lease is in doubt (a late renewal, a pause), waits for the renewal or
    /// the step-down instead of guessing.
    async fn route(&self) -> Option<Local> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(local) = self.local() {
                return Some(local);
            }
            if !self.is_leader() || tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn is_leader(&self) -> bool {
        self.local.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Drops every reply this node waits for: the sessions waiting hear "no answer".
    pub fn fail_pending(&self) {
        let all: Vec<Pending> = self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, p)| p).collect();
        for p in all {
            p(None);
        }
    }

    fn fail(&self, reqs: &[ReplyId]) {
        for req in reqs {
            let p = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(req);
            if let Some(p) = p {
                p(None);
            }
        }
    }

    /// Registers a reply channel under a new request id (returned): the leader's answer to it is sent on the channel.
    fn register<T: Answer>(&self, tx: oneshot::Sender<T>) -> ReplyId {
        let req = self.next_req.fetch_add(1, Ordering::Relaxed);
        let call: Pending = Box::new(move |value| {
            if let Some(answer) = value.and_then(|v| serde_json::from_value::<T>(v).ok()) {
                let _ = tx.send(answer);
            }
        });
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(req, call);
        req
    }

    /// On the leader: a reply channel whose answer goes back to `node` as request `req`.
    fn replier<T: Answer>(&self, node: &str, req: ReplyId) -> oneshot::Sender<T> {
        let (tx, rx) = oneshot::channel::<T>();
        let link = self.me.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            let value = rx.await.ok().and_then(|t| serde_json::to_value(t).ok());
            if let Some(link) = link.upgrade() {
                let item = NodeItem::Reply { req, answered: value.is_some(), value: value.unwrap_or_default() };
                link.to_node(&node, &item);
            }
        });
        tx
    }

    fn remote_outbox(&self, node: &str, conn: ConnId) -> Outbox {
        if node == &*self.node {
            if let Some(o) = self.hub.local_outbox(conn) {
                return o;
            }
        }
        let me: Arc<dyn RemotePush> = match self.me.upgrade() {
            Some(me) => me,
            None => return self.hub.new_connection().0,
        };
        Outbox::remote(node.into(), conn, me)
    }

    fn to_node(&self, node: &str, item: &NodeItem) -> bool {
        let Ok(json) = wire::encode_item(item) else { return false };
        self.publish_to_node(node, json)
    }

    fn publish_to_node(&self, node: &str, json: String) -> bool {
        match self.out.try_send(Publish::ToNode { node: node.to_string(), json }) {
            Ok(()) => true,
            Err(_) => {
                tracing::error!("cluster publisher queue full or gone: an item for another node was dropped");
                false
            }
        }
    }

    /// A command for the leader, with its own id, as the command stream carries it.
    fn envelope(&self, reqs: Vec<ReplyId>, command: ToLeader) -> serde_json::Result<String> {
        wire::encode_command(uuid::Uuid::new_v4().simple().to_string(), self.node.to_string(), reqs, command)
    }

    async fn forward(&self, command: ToLeader, reqs: Vec<ReplyId>) -> bool {
        let Ok(json) = self.envelope(reqs.clone(), command) else {
            self.fail(&reqs);
            return false;
        };
        if self.out.send(Publish::Command { json, reqs: reqs.clone() }).await.is_err() {
            self.fail(&reqs);
            return false;
        }
        true
    }

    /// An engine command from a session of this node: to the local engine on the leader, else over Redis.
    pub async fn engine(&self, cmd: EngineCommand) -> bool {
        if let Some(local) = self.route().await {
            return local.engine.send(cmd).await.is_ok();
        }
        // The engine task's own inputs never come from another node.
        if let EngineCommand::Input(input) | EngineCommand::Intervene { input, .. } = &cmd {
            if !from_session(input) {
                return false;
            }
        }
        let mut leaving = Leaving { link: self, reqs: Vec::new() };
        // The board is built from the leader's engine; a follower has no copy (its sender is dropped: None).
        // Reattach is the leader's own, after a rejoin.
        let Some(cmd) = cmd.translate(&mut leaving) else { return false };
        self.forward(ToLeader::Engine(cmd), leaving.reqs).await
    }

    /// A relay command from a session of this node: to the local relay on the leader, else over Redis.
    pub async fn relay(&self, cmd: RelayCommand) -> bool {
        if let Some(local) = self.route().await {
            return local.relay.send(cmd).await.is_ok();
        }
        let mut leaving = Leaving { link: self, reqs: Vec::new() };
        // Conversation events come from the leader's own engine task, never from a session.
        let Some(cmd) = cmd.translate(&mut leaving) else { return false };
        self.forward(ToLeader::Relay(cmd), leaving.reqs).await
    }

    /// A socket of this node was detached: the leader's registry forgets it too.
    pub fn detached(&self, caller: bool, key: &str, conn: ConnId) {
        if self.is_leader() {
            return;
        }
        if let Ok(json) = self.envelope(Vec::new(), ToLeader::Detach { caller, key: key.to_string(), conn }) {
            let _ = self.out.try_send(Publish::Command { json, reqs: vec![] });
        }
    }

    /// True the first time a command id is seen.
    fn first_time(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.contains(id) {
            return false;
        }
        seen.0.insert(id.to_string());
        seen.1.push_back(id.to_string());
        if seen.1.len() > SEEN_IDS {
            if let Some(old) = seen.1.pop_front() {
                seen.0.remove(&old);
            }
        }
        true
    }

    /// On the leader: carries out a command forwarded by node `env.from`.
    async fn dispatch(&self, env: Envelope) {
        if !self.first_time(&env.id) {
            return;
        }
        let Some(local) = self.route().await else { return };
        let from = env.from.as_str();
        let mut arriving = Arriving { link: self, from };
        match env.command {
            ToLeader::Detach { caller, key, conn } => self.hub.detach_remote(caller, &key, conn),
            ToLeader::Rejoin { sockets, watches, seen, .. } => self.rejoin(from, sockets, watches, seen, &local).await,
            ToLeader::Engine(cmd) => {
                if let EngineCommand::Input(input) | EngineCommand::Intervene { input, .. } = &cmd {
                    if !from_session(input) {
                        tracing::warn!(node = %from, ?input, "an engine input only the leader makes came from another node: dropped");
                        return;
                    }
                }
                // A console closed on that node, but the counsellor has another open (on any
                // node: its detach came first on the same stream): they are still connected.
                if let EngineCommand::Input(Input::CounsellorDisconnected { counsellor }) = &cmd {
                    if self.hub.counsellor_online(&crate::chat::engine_task::counsellor_str(*counsellor)) {
                        return;
                    }
                }
                let Some(cmd) = cmd.translate(&mut arriving) else { return };
                let _ = local.engine.send(cmd).await;
            }
            ToLeader::Relay(cmd) => {
                let Some(cmd) = cmd.translate(&mut arriving) else { return };
                let _ = local.relay.send(cmd).await;
            }
        }
    }

    /// On the leader: a command of another protocol version (`theirs`) from node `from` is not
    /// carried out; the requests its node waits for on it are answered as refused, if that node
    /// can read the answer (see [`wire`]).
    fn refuse(&self, theirs: u32, from: Option<String>, replies: Vec<ReplyId>) {
        let node = from.clone().unwrap_or_else(|| "unknown".into());
        if self.count_refusal(&node, theirs) {
            tracing::error!(
                node = %node,
                theirs,
                ours = PROTOCOL,
                "a command of another protocol version on the command stream: not carried out (nodes of two releases that cannot understand each other)"
            );
        }
        match from {
            Some(from) if theirs != UNVERSIONED && !replies.is_empty() => match wire::encode_refusal(replies) {
                Ok(json) => {
                    self.publish_to_node(&from, json);
                }
                Err(err) => tracing::error!(error = %err, "encoding a refusal failed"),
            },
            _ => {}
        }
    }

    /// Counts a refusal of version `theirs` from `node`; true when it is worth a log line.
    fn count_refusal(&self, node: &str, theirs: u32) -> bool {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let n = refusals.entry((node.to_string(), theirs)).or_default();
        *n += 1;
        wire::worth_logging(*n)
    }

    /// An entry read from this node's stream.
    fn read_entry(&self, json: &str) {
        match wire::decode_node(json) {
            Ok(ForNode::Item(item)) => self.deliver(item),
            Ok(ForNode::Refused { by, replies }) => {
                if self.count_refusal("leader", by) {
                    tracing::error!(
                        theirs = by,
                        ours = PROTOCOL,
                        requests = replies.len(),
                        "the leader refused this node's commands: it speaks another protocol version"
                    );
                }
                self.fail(&replies);
            }
            Ok(ForNode::Version { theirs }) => {
                if self.count_refusal("items", theirs) {
                    tracing::error!(theirs, ours = PROTOCOL, "an item of another protocol version on this node's stream: dropped");
                }
            }
            Err(err) => tracing::error!(error = %err, "undecodable item on this node's stream"),
        }
    }

    /// An item read from this node's stream: to one of its sockets, or a reply to a waiting session.
    fn deliver(&self, item: NodeItem) {
        match item {
            NodeItem::Frame { conn, text } => {
                self.note_seen(conn, &text);
                self.hub.push_local(conn, Outgoing::Frame(text.into()));
            }
            NodeItem::Frames { conn, texts } => {
                for text in &texts {
                    self.note_seen(conn, text);
                }
                self.hub.push_local(conn, Outgoing::Frames(texts.into_iter().map(Into::into).collect()));
            }
            NodeItem::Ended { conn, contact, text } => {
                self.hub.push_local(conn, Outgoing::Ended { contact_id: contact, frame: text.into() });
            }
            NodeItem::Answer { conn, client_id, text } => {
                // An ack names its seq: the socket has seen it (a new leader sends it nothing older).
                self.note_seen(conn, &text);
                self.hub.push_local(conn, Outgoing::Answer { client_id, frame: text.into() });
            }
            NodeItem::Close { conn, code } => {
                self.hub.push_local(conn, Outgoing::Close { code, reason: close_reason(code) });
            }
            NodeItem::Reply { req, answered, value } => {
                let p = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&req);
                if let Some(p) = p {
                    p(answered.then_some(value));
                }
            }
            NodeItem::Rejoin { token } => self.rejoin_leader(token),
            NodeItem::GatewayWake { gateway } => {
                if self.hub.gateways.connected(&gateway) {
                    let (store, hub, now) = (self.store.clone(), self.hub.clone(), self.clock.now_ms());
                    tokio::spawn(async move { crate::chat::exchange::deliver_pending_to(&store, &hub, now, &gateway, None).await });
                }
            }
            NodeItem::Supervisors { audience, text } => self.hub.text_to_supervisors(&audience, text.into()),
            NodeItem::Board { json } => match serde_json::from_str::<crate::protocol::board::Dashboard>(&json) {
                Ok(board) => self.hub.board_to_supervisors(&board),
                Err(err) => tracing::error!(error = %err, "undecodable supervisor board from the leader"),
            },
        }
    }

    /// Keeps the newest message seq a frame for socket `conn` carries (see [`Hub::note_seen`]).
    fn note_seen(&self, conn: ConnId, frame: &str) {
        if let Some((contact, seq)) = seq_of(frame) {
            self.hub.note_seen(conn, &contact, seq);
        }
    }

    /// A follower: registers this node's live sockets with the leader holding `token`, once per
    /// token (on its request, or on noticing it), so that they stay open through the leader change.
    pub fn rejoin_leader(&self, token: i64) {
        if self.rejoined.fetch_max(token, Ordering::SeqCst) >= token {
            return;
        }
        let (sockets, watches, seen) = (self.hub.roles(), self.hub.watches(), self.hub.seen());
        tracing::info!(token, sockets = sockets.len(), watches = watches.len(), "registering this node's sockets with the new leader");
        match self.envelope(Vec::new(), ToLeader::Rejoin { token, sockets, watches, seen }) {
            Ok(json) => {
                if self.out.try_send(Publish::Command { json, reqs: vec![] }).is_err() {
                    tracing::error!("cluster publisher queue full: sockets not registered with the new leader");
                }
            }
            Err(err) => tracing::error!(error = %err, "encoding a rejoin failed"),
        }
    }

    /// On the leader: registers node `from`'s live sockets (this node's own too) in the registry,
    /// connects their callers and counsellors in the engine, silently, and hands the conversations
    /// its supervisor sockets watch to the relay, silently too. Idempotent.
    pub async fn rejoin(&self, from: &str, sockets: Vec<(ConnId, Role)>, watches: Vec<Watch>, seen: Vec<Seen>, local: &Local) {
        let mut seen_by_conn: HashMap<ConnId, Vec<(String, i64)>> = HashMap::new();
        for Seen { conn, contact, seq } in seen {
            seen_by_conn.entry(conn).or_default().push((contact, seq));
        }
        let mut callers = Vec::new();
        let mut users: Vec<String> = Vec::new();
        let mut rejoining = Vec::with_capacity(sockets.len());
        for (conn, role) in sockets {
            match &role {
                Role::Caller { contact } => {
                    let Some(key) = contact_key(contact) else { continue };
                    callers.push(key);
                }
                Role::Counsellor { user } => {
                    if !users.contains(user) {
                        users.push(user.clone());
                    }
                }
            }
            let seen = seen_by_conn.remove(&conn).unwrap_or_default();
            rejoining.push(Rejoining { outbox: self.remote_outbox(from, conn), role, seen });
        }
        // The relay sends each socket what it missed and attaches it; the engine hears of them after.
        if !rejoining.is_empty() {
            let (done, attached) = oneshot::channel();
            if local.relay.send(RelayCommand::Rejoin { sockets: rejoining, done }).await.is_ok() {
                let _ = attached.await;
            }
        }
        // Every rejoining counsellor's account in one read.
        let accounts = if users.is_empty() {
            Vec::new()
        } else {
            match self.store.accounts().users_by_ids(&users).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(error = %err, counsellors = users.len(), "reading the rejoining counsellors failed");
                    Vec::new()
                }
            }
        };
        // In the order their sockets came, as when they were read one by one.
        let mut accounts = accounts;
        accounts.sort_by_key(|user| users.iter().position(|u| *u == user.id));
        let counsellors: Vec<_> = accounts
            .iter()
            .filter(|user| !user.disabled)
            .filter_map(|user| {
                let status = CounsellorStatus::parse(&user.status).unwrap_or(CounsellorStatus::Offline);
                profile_of(user).map(|profile| (profile, status_of(status)))
            })
            .collect();
        tracing::info!(node = %from, callers = callers.len(), counsellors = counsellors.len(), watches = watches.len(), "sockets rejoined");
        if !callers.is_empty() || !counsellors.is_empty() {
            let _ = local.engine.send(EngineCommand::Reattach { callers, counsellors }).await;
        }
        for Watch { conn, contact, joined } in watches {
            let outbox = self.remote_outbox(from, conn);
            let after = seen_by_conn.get(&conn).and_then(|s| s.iter().find(|(c, _)| *c == contact)).map(|(_, seq)| *seq);
            let _ = local.relay.send(RelayCommand::Rewatch { contact, outbox, joined, after }).await;
        }
    }

    /// A new leader, before it serves commands: reads the command stream from `start` for at most
    /// `wait`, registering the sockets of the nodes in `expect` as their rejoins arrive, so that the
    /// commands waiting since the old leader stopped find every live socket registered.
    pub async fn await_rejoins(
        &self,
        conn: &mut ConnectionManager,
        start: &str,
        mut expect: HashSet<String>,
        wait: Duration,
        local: &Local,
    ) {
        let deadline = tokio::time::Instant::now() + wait;
        let key = self.keys.commands();
        let mut last = start.to_string();
        while !expect.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let mut xread = redis::cmd("XREAD");
            xread.arg("COUNT").arg(512).arg("BLOCK").arg(left.as_millis().max(1) as u64).arg("STREAMS").arg(&key).arg(&last);
            let reply =
                match tokio::time::timeout(left + Duration::from_millis(200), xread.query_async::<Option<StreamReadReply>>(conn)).await {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "reading rejoins failed");
                        break;
                    }
                    Err(_) => break,
                };
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                last = entry.id.clone();
                let Some(json) = entry_json(&entry.map) else { continue };
                // Anything else (of this version or not) is read again by the command reader.
                let Ok(env) = wire::decode_command(&json) else { continue };
                if let ToLeader::Rejoin { sockets, watches, seen, .. } = env.command {
                    if self.first_time(&env.id) {
                        expect.remove(&env.from);
                        self.rejoin(&env.from, sockets, watches, seen, local).await;
                    }
                }
            }
        }
        if !expect.is_empty() {
            tracing::warn!(nodes = ?expect, "nodes did not rejoin at once; their sockets are registered when their rejoin is read");
        }
    }

    /// A new leader asks node `node` to register its live sockets ([`NodeItem::Rejoin`]).
    pub fn request_rejoin(&self, node: &str, token: i64) {
        self.to_node(node, &NodeItem::Rejoin { token });
    }

    /// The other live nodes (refreshed by the heartbeat).
    pub fn set_peers(&self, peers: Vec<Peer>) {
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Some other node has supervisors (it wants the board).
    pub fn peers_want_board(&self) -> bool {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).iter().any(|p| p.supervisors)
    }

    /// A frame for supervisors, to every other live node (alerts are not repeated by a later board).
    pub fn supervisors_to_peers(&self, audience: &Audience, text: &str) {
        for peer in self.peers() {
            self.to_node(&peer.id, &NodeItem::Supervisors { audience: audience.clone(), text: text.to_string() });
        }
    }

    /// A command of exchange `gateway` found no socket on this node: the other nodes hand it over.
    pub fn wake_gateway(&self, gateway: &str) {
        for peer in self.peers() {
            self.to_node(&peer.id, &NodeItem::GatewayWake { gateway: gateway.to_string() });
        }
    }

    /// The leader's board, to every other node with supervisors (a lost one is replaced by the next, a second later).
    pub fn board_to_peers(&self, board: &crate::protocol::board::Dashboard) {
        let Ok(json) = serde_json::to_string(board) else { return };
        for peer in self.peers().into_iter().filter(|p| p.supervisors) {
            self.to_node(&peer.id, &NodeItem::Board { json: json.clone() });
        }
    }
}

impl crate::chat::forward::Forward for Link {
    fn engine(&self, cmd: EngineCommand) -> crate::chat::forward::Sent<'_> {
        Box::pin(Link::engine(self, cmd))
    }
    fn relay(&self, cmd: RelayCommand) -> crate::chat::forward::Sent<'_> {
        Box::pin(Link::relay(self, cmd))
    }
}

/// A command leaving this node for the leader: sockets go as their ids, reply channels are
/// registered as requests the leader's answers complete.
struct Leaving<'a> {
    link: &'a Link,
    reqs: Vec<ReplyId>,
}

impl Translate<Here, Remote> for Leaving<'_> {
    fn socket(&mut self, outbox: Outbox) -> ConnId {
        outbox.id
    }
    fn reply<T: Answer>(&mut self, tx: oneshot::Sender<T>) -> ReplyId {
        let req = self.link.register(tx);
        self.reqs.push(req);
        req
    }
}

/// A command arriving at the leader from node `from`: its sockets are that node's, and answers go
/// back to it as replies to its requests.
struct Arriving<'a> {
    link: &'a Link,
    from: &'a str,
}

impl Translate<Remote, Here> for Arriving<'_> {
    fn socket(&mut self, conn: ConnId) -> Outbox {
        self.link.remote_outbox(self.from, conn)
    }
    fn reply<T: Answer>(&mut self, req: ReplyId) -> oneshot::Sender<T> {
        self.link.replier(self.from, req)
    }
}

impl RemotePush for Link {
    fn push(&self, node: &str, conn: ConnId, item: Outgoing) -> bool {
        let item = match item {
            Outgoing::Frame(text) => NodeItem::Frame { conn, text: text.as_str().to_string() },
            Outgoing::Frames(texts) => NodeItem::Frames { conn, texts: texts.iter().map(|t| t.as_str().to_string()).collect() },
            Outgoing::Ended { contact_id, frame } => NodeItem::Ended { conn, contact: contact_id, text: frame.as_str().to_string() },
            Outgoing::Answer { client_id, frame } => NodeItem::Answer { conn, client_id, text: frame.as_str().to_string() },
            Outgoing::Close { code, .. } => NodeItem::Close { conn, code },
        };
        self.to_node(node, &item)
    }
}

/// The reason sent with a close code that came from another node.
/// The conversation and newest message seq a frame gives its socket, if it carries messages:
/// `message` and `ack` (its seq), `assigned` and `monitoring` (the last of the history, 0 if none).
fn seq_of(frame: &str) -> Option<(String, i64)> {
    const CARRY: [&str; 4] = [r#"{"type":"message","#, r#"{"type":"ack","#, r#"{"type":"assigned","#, r#"{"type":"monitoring","#];
    if !CARRY.iter().any(|start| frame.starts_with(start)) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct SeqOnly {
        seq: i64,
    }
    #[derive(serde::Deserialize)]
    struct Carrier {
        contact_id: String,
        seq: Option<i64>,
        #[serde(default)]
        history: Vec<SeqOnly>,
    }
    let c: Carrier = serde_json::from_str(frame).ok()?;
    let seq = c.seq.unwrap_or_else(|| c.history.last().map_or(0, |m| m.seq));
    Some((c.contact_id, seq))
}

fn close_reason(code: u16) -> &'static str {
    use crate::protocol::close;
    match code {
        close::REVOKED => "account disabled",
        close::TOO_SLOW => "too slow: reconnect and resume",
        close::RATE_LIMITED => "too many frames",
        close::IDLE => "idle",
        _ => "reconnect and resume",
    }
}

/// Writes commands and node items in order, a batch per pipeline. A batch that cannot be written
/// is retried once; then its commands' waiting sessions hear "no answer" and the items are lost
/// (the node whose items they were resynchronises its sockets when its own reads fail).
async fn publisher(link: Arc<Link>, mut conn: ConnectionManager, mut rx: mpsc::Receiver<Publish>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut pipe = redis::pipe();
        for p in &batch {
            let (key, json) = match p {
                Publish::Command { json, .. } => (link.keys.commands(), json),
                Publish::ToNode { node, json } => (link.keys.node(node), json),
                Publish::Progress { id } => {
                    pipe.cmd("SET").arg(link.keys.progress()).arg(id).ignore();
                    continue;
                }
            };
            pipe.cmd("XADD").arg(key).arg("MAXLEN").arg("~").arg(STREAM_MAXLEN).arg("*").arg("d").arg(json).ignore();
        }
        let mut result: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(err) = &result {
            tracing::warn!(error = %err, "writing to Redis failed; retrying once");
            tokio::time::sleep(Duration::from_millis(100)).await;
            result = pipe.query_async(&mut conn).await;
        }
        if let Err(err) = result {
            tracing::error!(error = %err, n = batch.len(), "writing to Redis failed: commands not forwarded");
            for p in &batch {
                if let Publish::Command { reqs, .. } = p {
                    link.fail(reqs);
                }
            }
        }
        batch.clear();
    }
}

/// The millisecond part of a stream entry id.
pub fn id_ms(id: &str) -> i64 {
    id.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or(0)
}

fn entry_json(map: &HashMap<String, redis::Value>) -> Option<String> {
    redis::from_redis_value_ref::<String>(map.get("d")?).ok()
}

/// Reads `key` from `start` on, handing each entry's JSON to `handle`, until `stop` turns true.
/// `on_error(true)` after a failed read, `on_error(false)` after the next good one.
async fn read_stream(
    mut conn: ConnectionManager,
    key: String,
    start: String,
    mut stop: watch::Receiver<bool>,
    mut handle: impl FnMut(String, i64) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    mut on_error: impl FnMut(bool),
    mut after_batch: impl FnMut(&str),
) {
    let mut last = start;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let mut xread = redis::cmd("XREAD");
        xread.arg("COUNT").arg(512).arg("BLOCK").arg(1000).arg("STREAMS").arg(&key).arg(&last);
        let read = xread.query_async::<Option<StreamReadReply>>(&mut conn);
        let reply = tokio::select! {
            r = read => r,
            _ = stop.changed() => return,
        };
        match reply {
            Ok(reply) => {
                if failing {
                    failing = false;
                    on_error(false);
                }
                let before = last.clone();
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    last = entry.id.clone();
                    if let Some(json) = entry_json(&entry.map) {
                        if let Some(fut) = handle(json, id_ms(&entry.id)) {
                            fut.await;
                        }
                    }
                }
                if last != before {
                    after_batch(&last);
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, stream = %key, "reading from Redis failed");
                    failing = true;
                    on_error(true);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every node: delivers the items on its own stream. After Redis was unreachable (items may be
/// lost), it asks its sockets to reconnect and resume: they resynchronise from PostgreSQL.
pub async fn node_reader(link: Arc<Link>, conn: ConnectionManager, stop: watch::Receiver<bool>) {
    let key = link.keys.node(&link.node);
    let deliver = link.clone();
    let errors = link.clone();
    read_stream(
        conn,
        key,
        "0-0".into(),
        stop,
        move |json, ms| {
            deliver.items_read_ms.store(ms, Ordering::Relaxed);
            deliver.read_entry(&json);
            None
        },
        move |failed| {
            errors.redis_ok.store(!failed, Ordering::SeqCst);
            if !failed {
                let n = errors.hub.close_local(crate::protocol::close::RESTART, "reconnect and resume");
                errors.fail_pending();
                tracing::warn!(sockets = n, "Redis is back: sockets asked to resume (frames may have been lost)");
            }
        },
        |_| {},
    )
    .await;
}

/// How often a node hands its exchanges' pending commands over in any case: what repairs a lost wake-up.
pub use crate::chat::exchange::GATEWAY_SWEEP;

/// Every node: every [`GATEWAY_SWEEP`], for each exchange with a socket here, the claims of nodes
/// no longer alive (not seen for `dead_after`) are released, and the pending commands no socket
/// holds go to its socket here (each at most once per socket), so a wake-up lost between nodes, or a
/// node that died holding commands, delays a command, never loses it.
pub async fn gateway_sweep(link: Arc<Link>, dead_after: Duration, stop: watch::Receiver<bool>) {
    let mut ticker = crate::clock::Ticker::new(stop, GATEWAY_SWEEP);
    while ticker.next().await {
        let now = link.clock.now_ms();
        let alive: Vec<String> = link.peers().into_iter().map(|p| p.id).collect();
        crate::chat::exchange::sweep(&link.store, &link.hub, now, &alive, now - dead_after.as_millis() as i64).await;
    }
}

/// The leader: carries out the commands forwarded by other nodes, from `start` on, until `stop`.
pub async fn command_reader(link: Arc<Link>, conn: ConnectionManager, start: String, stop: watch::Receiver<bool>) {
    let key = link.keys.commands();
    let run = link.clone();
    let progress = link.clone();
    read_stream(
        conn,
        key,
        start,
        stop,
        move |json, ms| {
            run.commands_read_ms.store(ms, Ordering::Relaxed);
            match wire::decode_command(&json) {
                Ok(env) => {
                    let link = run.clone();
                    Some(Box::pin(async move { link.dispatch(env).await }))
                }
                Err(CommandError::Version { theirs, from, replies }) => {
                    run.refuse(theirs, from, replies);
                    None
                }
                Err(CommandError::Undecodable(err)) => {
                    tracing::error!(error = %err, "undecodable command on the command stream");
                    None
                }
            }
        },
        |_| {},
        // Where a next leader starts reading: only while this node surely still leads.
        move |last| {
            if progress.local().is_some() {
                let _ = progress.out.try_send(Publish::Progress { id: last.to_string() });
            }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::seq_of;
    use crate::protocol::{MessageView, Party, ServerEvent};

    fn message(seq: i64) -> MessageView {
        MessageView {
            contact_id: "c-1".into(),
            seq,
            from: Party::Caller,
            text: "{\"type\":\"ack\",\"seq\":99}".into(),
            at: "2026-11-23T10:00:00.000Z".into(),
            client_id: "k1".into(),
            notice: None,
        }
    }

    #[test]
    fn frames_that_carry_messages_give_their_conversation_and_newest_seq() {
        let seq = |e: ServerEvent| seq_of(&e.to_json());
        assert_eq!(seq(ServerEvent::Message(message(7))), Some(("c-1".into(), 7)));
        assert_eq!(seq(ServerEvent::Ack { contact_id: "c-1".into(), client_id: "k".into(), seq: 8 }), Some(("c-1".into(), 8)));
        let monitoring = |history| ServerEvent::Monitoring { contact_id: "c-1".into(), counsellor: None, history };
        assert_eq!(seq(monitoring(vec![message(1), message(2)])), Some(("c-1".into(), 2)));
        assert_eq!(seq(monitoring(vec![])), Some(("c-1".into(), 0)), "an empty history: seen up to 0");
        let whisper = ServerEvent::Whisper { contact_id: "c-1".into(), from: "S".into(), text: "x".into(), at: "t".into() };
        assert_eq!(seq(whisper), None, "frames without messages carry nothing");
        assert_eq!(seq_of("{\"type\":\"message\",\"broken"), None, "a frame that does not parse carries nothing");
    }
}

//! Cluster mode on PostgreSQL and Redis: the lease and its fence, three nodes as child processes of the real binary, failover under SIGKILL and SIGSTOP, and Redis going away.
//!
//! PostgreSQL and Redis only (`HELPLINE_TEST_POSTGRES`, `HELPLINE_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`). Each test uses a Redis key prefix of its own, so they run
//! in parallel on one Redis. Outside CI (`CI` / `HELPLINE_REQUIRE_POSTGRES` unset) a
//! missing service is reported as SKIPPED.

use std::time::{Duration, Instant};

use helpline::chat::relay::actor::store_messages;
use helpline::chat::relay::conversations::NextSeqs;
use helpline::cluster::lease;
use helpline::cluster::link::Keys;
use helpline::store::cluster::FenceToken;
use helpline::store::contacts::Change;
use helpline::store::messages::NewMessage;
use helpline::store::users::Role;
use helpline::store::{Store, StoreError};
use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;

use crate::exchange::{now_ms, Exchange};
use crate::helpers::{add_user, Backend, TestDb, Ws, FRAME_TIMEOUT};
use crate::supervisor::{until, waiting_ids};

/// Lease used by the multi-node tests: short, so failovers are quick.
const LEASE_MS: u64 = 1500;

fn redis_url() -> String {
    std::env::var("HELPLINE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn services_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("HELPLINE_REQUIRE_POSTGRES").is_some()
}

/// A connection to the test Redis; None (SKIPPED) when it is absent outside CI.
async fn redis() -> Option<ConnectionManager> {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    match tokio::time::timeout(Duration::from_secs(5), client.get_connection_manager()).await {
        Ok(Ok(conn)) => Some(conn),
        other => {
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if services_required() {
                panic!("Redis is required in CI but {url} is unreachable: {why}");
            }
            eprintln!("SKIPPED: cluster test (no Redis at {url}: {why}); set HELPLINE_TEST_REDIS");
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("helpline-it-{}", uuid::Uuid::new_v4().simple())
}

/// A PostgreSQL database with the helplines, two counsellors and an admin; and Redis.
async fn prepare() -> Option<(TestDb, Store, ConnectionManager)> {
    let conn = redis().await?;
    let db = TestDb::new(Backend::Postgres).await?;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 1).await;
    add_user(&store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    add_user(&store, "root", Role::Admin, &[], &[], &[], 0).await;
    Some((db, store, conn))
}

// ---------------------------------------------------------------------------------------------
// (1) The lease and the fence, at the library level.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_has_one_holder_rising_tokens_and_fenced_writes() {
    let Some(mut conn) = redis().await else { return };
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    let keys = Keys { prefix: fresh_prefix() };

    // Ten nodes race for a free lease: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..10 {
        let mut c = conn.clone();
        let k = keys.clone();
        racers.push(tokio::spawn(async move { lease::acquire(&mut c, &k, &format!("n{i}"), 60_000, 0).await.expect("acquire") }));
    }
    let mut winners = Vec::new();
    for r in racers {
        if let Some(token) = r.await.expect("racer") {
            winners.push(token);
        }
    }
    assert_eq!(winners.len(), 1, "one holder at a time");
    let (holder, t1, left) = lease::current(&mut conn, &keys).await.expect("current").expect("held");
    assert_eq!(t1, winners[0]);
    assert!(left > 0 && left <= 60_000);

    // The holder raises the fence and writes.
    assert!(store.fencing().raise_fence(t1, &holder, 1).await.expect("raise"));
    let old = store.fenced(FenceToken::new(t1));
    let contact = crate::helpers::stored_contact(&store).await;
    old.contacts().apply_changes(&[event(&contact, "first")]).await.expect("the current leader writes");
    store_messages(&old, &mut NextSeqs::default(), &[message(&contact, "m1")]).await.expect("the current leader stores messages");

    // The holder pauses past its lease; another node takes over with a higher token.
    let value = lease::value(&holder, t1);
    let _: () = redis::cmd("DEL").arg(keys.lease()).query_async(&mut conn).await.expect("expire");
    assert!(!lease::renew(&mut conn, &keys, &value, 60_000).await.expect("renew"), "a lost lease is not renewed");
    let t2 = lease::acquire(&mut conn, &keys, "other", 60_000, 0).await.expect("acquire").expect("free");
    assert!(t2 > t1, "tokens rise: {t2} > {t1}");
    assert!(store.fencing().raise_fence(t2, "other", 2).await.expect("raise"));
    assert!(!store.fencing().raise_fence(t1, &holder, 3).await.expect("raise"), "the fence never goes down");

    // The old holder's writes are refused by PostgreSQL, and nothing of them is stored.
    let refused = old.contacts().apply_changes(&[event(&contact, "stale")]).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "stale routing write refused: {refused:?}");
    let refused = store_messages(&old, &mut NextSeqs::default(), &[message(&contact, "m2")]).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "stale message write refused");
    let kinds: Vec<String> = store.contacts().contact_events(&contact).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"first".to_string()) && !kinds.contains(&"stale".to_string()), "{kinds:?}");
    assert_eq!(store.messages().messages_after(&contact, 0).await.unwrap().len(), 1);
    let new = store.fenced(FenceToken::new(t2));
    new.contacts().apply_changes(&[event(&contact, "fresh")]).await.expect("the new leader writes");

    // Redis loses its data (restart without persistence): the next token still rises above PostgreSQL's.
    let _: () = redis::cmd("DEL").arg(keys.lease()).arg(keys.token()).query_async(&mut conn).await.expect("wipe");
    let (floor, _) = store.fencing().fence().await.expect("fence");
    let t3 = lease::acquire(&mut conn, &keys, "third", 60_000, floor).await.expect("acquire").expect("free");
    assert!(t3 > t2, "after a Redis wipe the token still rises: {t3} > {t2}");
    assert!(store.fencing().raise_fence(t3, "third", 4).await.expect("raise"));
    let _: () = redis::cmd("DEL").arg(keys.lease()).arg(keys.token()).query_async(&mut conn).await.expect("cleanup");
}

/// The fence at the store level, without Redis: a takeover racing the old leader's writes, then every kind of
/// leader write (routing steps, message batches with and without repeats) of the old token refused by
/// PostgreSQL, leaving nothing; the new token and an unfenced store write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fence_token_refuses_every_leader_write() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    let contact = crate::helpers::stored_contact(&store).await;
    assert!(store.fencing().raise_fence(1, "old", 1).await.expect("raise"));
    let old = store.fenced(FenceToken::new(1));

    // Writes in flight while a newer leader raises the fence: each is stored whole or refused whole.
    let writes: Vec<_> = (0..20)
        .map(|i| {
            let (old, contact) = (old.clone(), contact.clone());
            tokio::spawn(async move {
                let change = Change::Event { contact, at: 2, kind: "sla_at_risk", counsellor: None, detail: Some(format!("racing {i}")) };
                old.contacts().apply_changes(&[change]).await
            })
        })
        .collect();
    assert!(store.fencing().raise_fence(2, "new", 2).await.expect("raise"), "the takeover waits for the writes in flight, then raises");
    let mut went_through = 0;
    for w in writes {
        match w.await.expect("task") {
            Ok(()) => went_through += 1,
            Err(StoreError::Fenced) => {}
            Err(other) => panic!("a racing write failed otherwise: {other}"),
        }
    }
    let racing = |events: &[helpline::store::contacts::ContactEvent]| {
        events.iter().filter(|e| e.detail.as_deref().is_some_and(|d| d.starts_with("racing"))).count()
    };
    assert_eq!(
        racing(&store.contacts().contact_events(&contact).await.expect("read")),
        went_through,
        "stored exactly the writes that passed"
    );

    let refused = old.contacts().apply_changes(&[event(&contact, "stale")]).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "stale routing write refused: {refused:?}");
    let refused = store_messages(&old, &mut NextSeqs::default(), &[message(&contact, "m1"), message(&contact, "m2")]).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "stale message batch refused: {refused:?}");
    let refused = store_messages(&old, &mut NextSeqs::default(), &[message(&contact, "m1"), message(&contact, "m1")]).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "stale batch with a repeat refused: {refused:?}");
    let kinds: Vec<String> = store.contacts().contact_events(&contact).await.expect("read").into_iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&"stale".to_string()), "{kinds:?}");
    assert!(store.messages().messages_after(&contact, 0).await.expect("read").is_empty());

    let new = store.fenced(FenceToken::new(2));
    new.contacts().apply_changes(&[event(&contact, "fresh")]).await.expect("the new leader writes");
    store_messages(&new, &mut NextSeqs::default(), &[message(&contact, "m1"), message(&contact, "m1")])
        .await
        .expect("the new leader stores messages");
    store.contacts().apply_changes(&[event(&contact, "unfenced")]).await.expect("a store that is not fenced checks nothing");
    assert_eq!(store.messages().messages_after(&contact, 0).await.expect("read").len(), 1);
}

fn event(contact: &str, kind: &'static str) -> Change {
    Change::Event { contact: contact.into(), at: 2, kind, counsellor: None, detail: None }
}

fn message(contact: &str, client_id: &str) -> NewMessage {
    NewMessage { contact_id: contact.into(), sender: "caller", sender_id: None, client_id: client_id.into(), body: "text".into(), at: 3 }
}

// ---------------------------------------------------------------------------------------------
// Nodes as child processes of the real binary.

struct Node {
    id: String,
    child: Child,
    addr: String,
    http: reqwest::Client,
    /// Its log lines, when started with [`Node::start_logged`].
    log: crate::durability::Log,
}

impl Node {
    async fn start(db_url: &str, redis_url: &str, prefix: &str, id: &str) -> Node {
        Node::start_with(db_url, redis_url, prefix, id, &[]).await
    }

    /// A node with environment variables `env` (e.g. `FAILPOINTS`).
    async fn start_with(db_url: &str, redis_url: &str, prefix: &str, id: &str, env: &[(&str, &str)]) -> Node {
        let lease = LEASE_MS.to_string();
        let log = std::env::var("TEST_NODE_LOG").unwrap_or_else(|_| "warn".into());
        let flags = ["--redis", redis_url, "--node-id", id, "--redis-prefix", prefix, "--lease-ms", &lease];
        let secret = "cluster-test-secret-cluster-test-secret";
        let (child, addr) = crate::durability::spawn_helpline_with(db_url, &flags, env, secret, &log).await;
        Node { id: id.to_string(), child, addr, http: reqwest::Client::new(), log: Default::default() }
    }

    /// A node whose log lines the test reads (`self.log`), at level `warn`.
    async fn start_logged(db_url: &str, redis_url: &str, prefix: &str, id: &str) -> Node {
        let lease = LEASE_MS.to_string();
        let flags = ["--redis", redis_url, "--node-id", id, "--redis-prefix", prefix, "--lease-ms", &lease];
        let secret = "cluster-test-secret-cluster-test-secret";
        let (child, addr, log) = crate::durability::spawn_helpline_logged(db_url, &flags, &[], secret, "warn", true).await;
        Node { id: id.to_string(), child, addr, http: reqwest::Client::new(), log }
    }

    async fn token(&self, username: &str) -> String {
        let res = self
            .http
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"username": username, "password": format!("{username}-password")}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 200, "login of {username} on {}", self.id);
        res.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_string()
    }

    /// A staff socket (`/ws/agent`, `/ws/supervisor`) of `username` on this node.
    async fn staff(&self, username: &str, path: &str) -> Ws {
        let token = self.token(username).await;
        let res = self.http.post(format!("http://{}/api/v1/ws-ticket", self.addr)).bearer_auth(token).send().await.expect("ticket");
        let ticket = res.json::<Value>().await.expect("json")["ticket"].as_str().expect("ticket").to_string();
        Ws::connect(&format!("ws://{}{path}?ticket={ticket}", self.addr)).await
    }

    /// A counsellor's socket on this node; the `hello` is read and returned.
    async fn agent(&self, username: &str) -> (Ws, Value) {
        let mut ws = self.staff(username, "/ws/agent").await;
        let hello = ws.expect("hello").await;
        (ws, hello)
    }

    async fn available_agent(&self, username: &str) -> Ws {
        let (mut ws, _) = self.agent(username).await;
        ws.send(json!({"type": "status", "status": "available"})).await;
        assert_eq!(ws.expect("status").await["status"], "available");
        ws
    }

    async fn caller(&self) -> Ws {
        Ws::connect_from(&format!("ws://{}/ws/caller", self.addr), &crate::helpers::caller_address()).await
    }

    /// `GET /api/v1/cluster` as the admin; None while the node cannot answer.
    async fn status(&self, admin: &str) -> Option<Value> {
        let res = self
            .http
            .get(format!("http://{}/api/v1/cluster", self.addr))
            .bearer_auth(admin)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        if res.status() != 200 {
            return None;
        }
        res.json().await.ok()
    }

    /// The status `GET /readyz` answers.
    async fn readyz(&self) -> u16 {
        let res = self.http.get(format!("http://{}/readyz", self.addr)).timeout(Duration::from_secs(5)).send().await;
        res.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid").to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid}");
    }

    async fn sigkill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("wait");
        assert!(!status.success());
    }
}

/// Three nodes on one database and Redis prefix, once every node sees the same leader: (leader, followers).
async fn three_nodes(db: &TestDb, redis_url: &str, prefix: &str) -> (Node, Vec<Node>, String) {
    three_nodes_on(&db.url, redis_url, prefix).await
}

/// [`three_nodes`] on the database at `db_url`.
async fn three_nodes_on(db_url: &str, redis_url: &str, prefix: &str) -> (Node, Vec<Node>, String) {
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push(Node::start(db_url, redis_url, prefix, id).await);
    }
    let admin = nodes[0].token("root").await;
    let leader = settled(&nodes, &admin, None).await;
    let i = nodes.iter().position(|n| n.id == leader).expect("leader is one of the nodes");
    let leader = nodes.remove(i);
    (leader, nodes, admin)
}

/// Waits until every node answers, names the same leader (not `not`) and follows it; returns its id.
async fn settled(nodes: &[Node], admin: &str, not: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = Vec::new();
        for n in nodes {
            let Some(s) = n.status(admin).await else { break };
            let leader = s["leader"]["node"].as_str().unwrap_or_default().to_string();
            if s["sees_leader"].as_str() != Some(leader.as_str()) || (s["role"] == "leader") != (leader == n.id) {
                break;
            }
            leaders.push(leader);
        }
        if leaders.len() == nodes.len()
            && leaders.windows(2).all(|w| w[0] == w[1])
            && !leaders[0].is_empty()
            && not != Some(leaders[0].as_str())
        {
            return leaders[0].clone();
        }
        assert!(Instant::now() < deadline, "the cluster did not settle on a leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A caller starts a chat; returns (socket, contact id, resume token).
async fn start_chat(node: &Node) -> (Ws, String, String) {
    let mut caller = node.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let queued = caller.expect("queued").await;
    (caller, queued["contact_id"].as_str().unwrap().to_string(), queued["resume_token"].as_str().unwrap().to_string())
}

/// Ana, available on `agent_node`, answers a caller who starts a chat on `caller_node`: (Ana's
/// socket, the caller's, the contact id, its resume token).
async fn answered_chat(agent_node: &Node, caller_node: &Node) -> (Ws, Ws, String, String) {
    let mut ana = agent_node.available_agent("ana").await;
    let (mut caller, contact, token) = start_chat(caller_node).await;
    assert_eq!(ana.expect("offer").await["contact_id"], contact.as_str());
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    (ana, caller, contact, token)
}

/// Caller and counsellor exchange `n` messages each way, starting at `from`; returns the acked seqs.
async fn chat(caller: &mut Ws, agent: &mut Ws, contact: &str, tag: &str, n: usize) -> Vec<i64> {
    let mut acked = Vec::new();
    for i in 0..n {
        caller.send(json!({"type": "message", "client_id": format!("{tag}c{i}"), "text": format!("caller {tag} {i}")})).await;
        let ack = caller.expect("ack").await;
        let seq = ack["seq"].as_i64().unwrap();
        acked.push(seq);
        let got = agent.expect("message").await;
        assert_eq!((got["seq"].as_i64().unwrap(), got["from"].as_str().unwrap()), (seq, "caller"));
        agent.send(json!({"type": "message", "contact_id": contact, "client_id": format!("{tag}a{i}"), "text": format!("counsellor {tag} {i}")})).await;
        let seq = agent.expect("ack").await["seq"].as_i64().unwrap();
        acked.push(seq);
        let got = caller.expect("message").await;
        assert_eq!((got["seq"].as_i64().unwrap(), got["from"].as_str().unwrap()), (seq, "counsellor"));
    }
    acked
}

/// The caller resumes on `node`; returns the socket and its `resumed` frame (the missed messages follow).
async fn resume(node: &Node, token: &str, last_seq: i64) -> (Ws, Value) {
    let mut caller = node.caller().await;
    caller.send(json!({"type": "resume", "resume_token": token, "last_seq": last_seq})).await;
    let resumed = caller.expect("resumed").await;
    (caller, resumed)
}

// ---------------------------------------------------------------------------------------------
// (2) A caller on one node, a counsellor on another, the engine on a third.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_and_counsellor_on_different_nodes_chat() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    let (leader, followers, admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    let mut ana = b.available_agent("ana").await;
    let (mut caller, contact, _) = start_chat(a).await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["contact_id"], contact.as_str());
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = ana.expect("assigned").await;
    assert_eq!(assigned["contact_id"], contact.as_str());
    assert!(caller.expect("connected").await["counsellor"].as_str().unwrap().contains("ana"));

    let acked = chat(&mut caller, &mut ana, &contact, "x", 5).await;
    assert_eq!(acked, (1..=10).collect::<Vec<_>>(), "acks in seq order, both ways");
    // Typing crosses nodes too.
    caller.send(json!({"type": "typing", "active": true})).await;
    let typing = ana.recv().await;
    assert_eq!((typing["type"].as_str(), typing["active"].as_bool()), (Some("typing"), Some(true)));

    // The counsellor ends it; the caller hears it on the other node.
    ana.send(json!({"type": "end", "contact_id": contact})).await;
    assert_eq!(caller.expect("contact_ended").await["reason"], "counsellor_ended");
    assert_eq!(store.messages().messages_after(&contact, 0).await.unwrap().len(), 10);

    let status = a.status(&admin).await.expect("status");
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["leader"]["node"], leader.id.as_str());
    assert_eq!(status["fence"]["token"], status["leader"]["token"]);
    drop(leader);
}

/// Writes a raw entry to a stream, as another node would.
async fn xadd(conn: &mut ConnectionManager, key: &str, json: &Value) {
    let _: String = redis::cmd("XADD").arg(key).arg("*").arg("d").arg(json.to_string()).query_async(conn).await.expect("XADD");
}

/// The first entry of `key` after the start, waiting up to five seconds.
async fn first_entry(conn: &mut ConnectionManager, key: &str) -> Option<Value> {
    let reply: Option<redis::streams::StreamReadReply> =
        redis::cmd("XREAD").arg("BLOCK").arg(5000).arg("STREAMS").arg(key).arg("0-0").query_async(conn).await.expect("XREAD");
    let entry = reply?.keys.into_iter().flat_map(|k| k.ids).next()?;
    let text: String = redis::from_redis_value_ref(entry.map.get("d")?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Nodes of two releases side by side: a command of another protocol version (or of a release
/// before versions) is refused, never misread: the leader answers the requests its node waits for
/// as refused, on that node's stream, and carries out nothing of it; the cluster goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_another_protocol_version_is_refused_not_misread() {
    use helpline::cluster::wire::PROTOCOL;
    let Some((db, store, mut conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    let node = Node::start_logged(&db.url, &redis_url(), &prefix, "n1").await;
    let admin = node.token("root").await;
    settled(std::slice::from_ref(&node), &admin, None).await;
    let (mut ana, mut caller, contact, _) = answered_chat(&node, &node).await;
    let keys = Keys { prefix: prefix.clone() };

    // A release before versions posts to the conversation, in its own form.
    let post = |text: &str| {
        json!({"Relay": {"Post": {
            "contact": contact, "party": "caller", "sender_id": null, "client_id": text, "text": text, "outbox": 1
        }}})
    };
    xadd(&mut conn, &keys.commands(), &json!({"id": "old-1", "from": "n0", "cmd": post("from an older release")})).await;
    // A newer release posts in exactly this release's form, under its own version, and waits for
    // request 77 (the outer fields are the same in every version).
    let newer = json!({"v": PROTOCOL + 1, "id": "new-1", "from": "n9", "replies": [77], "command": post("from a newer release")});
    xadd(&mut conn, &keys.commands(), &newer).await;

    let refusal = first_entry(&mut conn, &keys.node("n9")).await.expect("the newer node hears its command was refused");
    assert_eq!(refusal, json!({"v": PROTOCOL, "refused": {"replies": [77]}}));
    // The leader says so in its log, clearly: which node, both versions, and that nothing was done.
    let ours = format!("ours={PROTOCOL}");
    let theirs = format!("theirs={}", PROTOCOL + 1);
    let line = crate::durability::log_line(&node.log, &["another protocol version", "not carried out", "n9", &ours, &theirs]).await;
    assert!(line.contains("ERROR"), "{line}");
    crate::durability::log_line(&node.log, &["another protocol version", "theirs=1", "n0"]).await;
    // Neither was carried out: the next message is the conversation's first.
    caller.send(json!({"type": "message", "client_id": "real", "text": "hello"})).await;
    assert_eq!(caller.expect("ack").await["seq"], 1);
    let got = ana.expect("message").await;
    assert_eq!((got["seq"].as_i64(), got["text"].as_str()), (Some(1), Some("hello")));
    let stored = store.messages().messages_after(&contact, 0).await.expect("messages");
    assert_eq!(stored.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), vec!["hello"]);
    // The older release's node gets no answer it could not read.
    let mut quiet: Option<redis::streams::StreamReadReply> =
        redis::cmd("XREAD").arg("STREAMS").arg(keys.node("n0")).arg("0-0").query_async(&mut conn).await.expect("XREAD");
    assert!(quiet.take().is_none_or(|r| r.keys.is_empty()), "nothing written for a release before versions");
    drop(node);
}

// ---------------------------------------------------------------------------------------------
// (3) The leader killed with SIGKILL under live chats and waiting contacts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_another_takes_over_and_nothing_is_lost() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    let (leader, followers, admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // Ana (capacity 1) on A chats with a caller on B; two more callers wait; one rings for Ion, unanswered.
    let (mut ana, mut caller, chat_id, chat_token) = answered_chat(a, b).await;
    let acked = chat(&mut caller, &mut ana, &chat_id, "k", 3).await;
    let (mut w1, id1, _) = start_chat(b).await;
    let (_w2, id2, _) = start_chat(a).await;
    let mut ion = b.available_agent("ion").await;
    let ringing = ion.expect("offer").await;
    assert_eq!(ringing["contact_id"], id1.as_str(), "the oldest waiting contact rings first");
    let queued_at = [
        store.contacts().contact(&id1).await.unwrap().unwrap().queued_at,
        store.contacts().contact(&id2).await.unwrap().unwrap().queued_at,
    ];
    let token_before = a.status(&admin).await.expect("status")["leader"]["token"].as_i64().unwrap();

    // Power cut on the leader.
    let killed_at = Instant::now();
    let killed = leader.id.clone();
    leader.sigkill().await;
    let new_leader = settled(&followers, &admin, Some(&killed)).await;
    let takeover = killed_at.elapsed();
    println!("cluster: new leader {new_leader} took over {} ms after the SIGKILL (lease {LEASE_MS} ms)", takeover.as_millis());
    assert!(takeover < Duration::from_millis(LEASE_MS * 2 + 1000), "takeover within the lease time (+ a renew period): {takeover:?}");
    let status = a.status(&admin).await.expect("status");
    assert!(status["leader"]["token"].as_i64().unwrap() > token_before, "a higher fencing token: {status}");

    // The sockets on the surviving nodes stay open and go on working: the chat continues both ways
    // on the same sockets, with the next seqs.
    let after = chat(&mut caller, &mut ana, &chat_id, "after", 1).await;
    assert_eq!(after, vec![acked.len() as i64 + 1, acked.len() as i64 + 2], "the chat goes on after the failover");

    // A caller who resumes (a socket that did drop) gets every acknowledged message, once, in order.
    let (mut again, resumed) = resume(b, &chat_token, 0).await;
    assert_eq!(resumed["state"], "active");
    let mut seqs = Vec::new();
    for _ in 0..acked.len() + 2 {
        let m = again.expect("message").await;
        seqs.push(m["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=acked.len() as i64 + 2).collect::<Vec<_>>(), "every acknowledged message, once, in order");
    again.close().await;

    // Ion, still connected and available, is offered both waiting contacts again, oldest first,
    // each answered once; the waiting caller's socket hears `connected`.
    let (mut offered, mut assigned) = (Vec::new(), Vec::new());
    while assigned.len() < 2 {
        let frame = ion.recv().await;
        match frame["type"].as_str() {
            Some("offer") => {
                let id = frame["contact_id"].as_str().unwrap().to_string();
                if offered.is_empty() {
                    let reoffered = killed_at.elapsed();
                    println!("cluster: waiting contact re-offered {} ms after the SIGKILL", reoffered.as_millis());
                    // The takeover (bounded above) plus the new leader's wait for the rejoins (a quarter
                    // of the lease) and a margin for a loaded machine.
                    assert!(reoffered < takeover + Duration::from_millis(LEASE_MS + 5_000), "re-offered {reoffered:?} after the SIGKILL");
                }
                assert!(frame["waited_ms"].as_i64().unwrap() > 0, "the answer clock runs from the original arrival");
                ion.send(json!({"type": "accept", "contact_id": id})).await;
                offered.push(id);
            }
            Some("assigned") => assigned.push(frame["contact_id"].as_str().unwrap().to_string()),
            Some("status") => {}
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(offered, vec![id1.clone(), id2.clone()], "offered again, oldest first");
    assert_eq!(w1.expect("connected").await["contact_id"], id1.as_str());
    for (id, at) in [(&id1, queued_at[0]), (&id2, queued_at[1])] {
        let c = store.contacts().contact(id).await.unwrap().unwrap();
        assert_eq!((c.queued_at, c.state.as_str()), (at, "active"), "kept its arrival time");
        let answers = store.contacts().contact_events(id).await.unwrap().into_iter().filter(|e| e.kind == "answered").count();
        assert_eq!(answers, 1, "assigned once");
    }
    assert_eq!(store.messages().messages_after(&chat_id, 0).await.unwrap().len(), acked.len() + 2, "nothing lost, nothing doubled");
}

// ---------------------------------------------------------------------------------------------
// (3b) A supervisor on a follower: the board and the alerts come from the leader, over Redis.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_on_a_follower_sees_a_wait_appear_and_go() {
    let Some((db, store, _conn)) = prepare().await else { return };
    // Short answer clocks, so that the wait alerts come within the test.
    for mut h in store.directory().helplines().await.expect("helplines") {
        h.sla_at_risk_ms = 300;
        h.sla_target_ms = 600;
        store.directory().upsert_helpline(&h).await.expect("helpline");
    }
    let prefix = fresh_prefix();
    let (leader, followers, _admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // The supervisor's dashboard is on A, the caller on B, the engine on the leader.
    let mut sup = a.staff("root", "/ws/supervisor").await;
    let empty = until(&mut sup, "dashboard", |_| true).await;
    assert!(waiting_ids(&empty, "children").is_empty(), "{empty}");
    let (mut caller, contact, _) = start_chat(b).await;
    // The wait appears on the board on A, and the alerts of the leader's engine reach A, in order
    // (an alert may come before the next board).
    let (mut shown, mut alerts) = (None, Vec::new());
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while shown.is_none() || alerts.len() < 2 {
        assert!(Instant::now() < deadline, "board {shown:?}, alerts {alerts:?}");
        let v = sup.recv().await;
        match v["type"].as_str() {
            Some("dashboard") if waiting_ids(&v, "children").contains(&contact) => shown = Some(v),
            Some("alert") if v["contact_id"] == contact.as_str() => {
                assert_eq!(v["helpline"], "children", "{v}");
                alerts.push(v["kind"].as_str().unwrap_or_default().to_string());
            }
            _ => {}
        }
    }
    assert_eq!(alerts, ["wait_10s", "wait_15s"]);
    let board = shown.unwrap_or_default();
    let helpline = board["helplines"].as_array().unwrap().iter().find(|h| h["name"] == "children").unwrap().clone();
    assert_eq!(helpline["waiting"][0]["caller_online"], true, "{helpline}");

    // Ana (on B) answers; the wait leaves the board on A.
    let mut ana = b.available_agent("ana").await;
    assert_eq!(ana.expect("offer").await["contact_id"], contact.as_str());
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let board = until(&mut sup, "dashboard", |d| !waiting_ids(d, "children").contains(&contact)).await;
    let ana_id = store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    let row = board["counsellors"].as_array().unwrap().iter().find(|c| c["user_id"] == ana_id.as_str()).cloned();
    assert!(row.is_some_and(|r| r["active"].as_array().unwrap().iter().any(|c| c == contact.as_str())), "{board}");
    drop(leader);
}

// ---------------------------------------------------------------------------------------------
// (3c) Supervisors watching a conversation from followers keep it through a leader change: the
// one who monitors still sees every later message, once; the one who joined can still write.

/// The `message` frames a supervisor socket gets until the one with seq `last` (boards, alerts and
/// replies skipped): their seqs, in the order they came.
async fn seqs_until(sup: &mut Ws, last: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while seqs.last() != Some(&last) {
        assert!(Instant::now() < deadline, "no message {last} in time; got {seqs:?}");
        let v = sup.recv().await;
        match v["type"].as_str() {
            Some("message") => seqs.push(v["seq"].as_i64().unwrap()),
            Some("dashboard" | "alert" | "done" | "ack" | "typing" | "caller_presence") => {}
            _ => panic!("unexpected frame for a supervisor: {v} (messages so far {seqs:?})"),
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_watching_from_followers_survive_a_leader_kill() {
    let Some((db, store, _conn)) = prepare().await else { return };
    add_user(&store, "sue", Role::Supervisor, &["children"], &[], &[], 0).await;
    let prefix = fresh_prefix();
    let (leader, followers, admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // Ana on A chats with a caller on B; the admin monitors from A, Sue joins from B.
    let (mut ana, mut caller, contact, _) = answered_chat(a, b).await;
    assert_eq!(chat(&mut caller, &mut ana, &contact, "w", 1).await, vec![1, 2]);
    let mut watcher = a.staff("root", "/ws/supervisor").await;
    watcher.send(json!({"type": "monitor", "contact_id": contact})).await;
    assert_eq!(until(&mut watcher, "monitoring", |_| true).await["history"].as_array().unwrap().len(), 2);
    let mut sue = b.staff("sue", "/ws/supervisor").await;
    sue.send(json!({"type": "join", "contact_id": contact})).await;
    until(&mut sue, "done", |d| d["request"] == "join").await;
    assert_eq!(caller.expect("message").await["from"], "system");
    assert_eq!(ana.expect("message").await["seq"], 3);
    assert_eq!(seqs_until(&mut watcher, 3).await, vec![3]);

    // Power cut on the leader; another takes over.
    let killed = leader.id.clone();
    leader.sigkill().await;
    let new_leader = settled(&followers, &admin, Some(&killed)).await;
    println!("cluster: {new_leader} leads; the supervisors' sockets on the followers stayed open");

    // The chat goes on; the supervisor who joined still writes, and the caller and Ana see it.
    assert_eq!(chat(&mut caller, &mut ana, &contact, "after", 1).await, vec![4, 5]);
    sue.send(json!({"type": "message", "contact_id": contact, "client_id": "sue-1", "text": "Sunt aici și eu."})).await;
    let seqs = seqs_until(&mut sue, 5).await;
    assert_eq!(until(&mut sue, "ack", |_| true).await["seq"], 6, "the joined supervisor writes after the failover (saw {seqs:?})");
    let from_sue = caller.expect("message").await;
    assert_eq!((from_sue["seq"].as_i64(), from_sue["text"].as_str()), (Some(6), Some("Sunt aici și eu.")));
    assert_eq!(ana.expect("message").await["seq"], 6);
    // One more from Ana: the monitoring supervisor has seen every message since the join, once, in order.
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "after-last", "text": "bine"})).await;
    assert_eq!(ana.expect("ack").await["seq"], 7);
    assert_eq!(caller.expect("message").await["seq"], 7);
    assert_eq!(seqs_until(&mut watcher, 7).await, vec![4, 5, 6, 7], "every later message, once");
    assert_eq!(seqs_until(&mut sue, 7).await, vec![7], "the joined supervisor sees the conversation go on");
    assert_eq!(store.messages().messages_after(&contact, 0).await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counsellor_with_consoles_on_two_nodes_stays_online_when_one_closes() {
    let Some((db, _store, _conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    let (_leader, followers, _admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // Ion, available, has a console on A and another on B (a desk and a laptop); he closes the one on A.
    let ion_a = a.available_agent("ion").await;
    let (mut ion_b, hello) = b.agent("ion").await;
    assert_eq!(hello["status"], "available");
    ion_a.close().await;

    // A caller arrives: Ion is still connected (on B) and is offered the chat there.
    let (_caller, contact, _) = start_chat(a).await;
    let offer = ion_b.expect("offer").await;
    assert_eq!(offer["contact_id"], contact.as_str(), "the counsellor's other console still gets offers");
}

/// The message a leader armed with `FAILPOINTS` commits and then dies, before acknowledging or sending it on.
const FATAL_TEXT: &str = "the leader dies after committing this";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_committed_by_a_dying_leader_reaches_the_sockets_that_stayed_open() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    // n1 leads (it starts alone), armed to die right after the commit of FATAL_TEXT.
    let failpoint = format!("relay-after-commit=return({FATAL_TEXT})");
    let leader = Node::start_with(&db.url, &redis_url(), &prefix, "n1", &[("FAILPOINTS", failpoint.as_str())]).await;
    let admin = leader.token("root").await;
    assert_eq!(settled(std::slice::from_ref(&leader), &admin, None).await, "n1");
    let followers = vec![Node::start(&db.url, &redis_url(), &prefix, "n2").await, Node::start(&db.url, &redis_url(), &prefix, "n3").await];
    let mut all = followers;
    all.push(leader);
    assert_eq!(settled(&all, &admin, None).await, "n1");
    let leader = all.pop().expect("n1");
    let (a, b) = (&all[0], &all[1]);

    // Ana on A chats with a caller on B; the admin monitors from A.
    let (mut ana, mut caller, contact, _) = answered_chat(a, b).await;
    assert_eq!(chat(&mut caller, &mut ana, &contact, "k", 2).await, vec![1, 2, 3, 4]);
    let mut watcher = a.staff("root", "/ws/supervisor").await;
    watcher.send(json!({"type": "monitor", "contact_id": contact})).await;
    assert_eq!(until(&mut watcher, "monitoring", |_| true).await["history"].as_array().unwrap().len(), 4);

    // The caller's next message is committed as seq 5, and the leader dies before anyone hears of it.
    caller.send(json!({"type": "message", "client_id": "fatal", "text": FATAL_TEXT})).await;
    let mut leader = leader;
    let status = tokio::time::timeout(FRAME_TIMEOUT, leader.child.wait()).await.expect("the armed leader died").expect("wait");
    assert!(!status.success(), "the leader was killed by its fault injection point");
    let new_leader = settled(&all, &admin, Some("n1")).await;
    println!("cluster: {new_leader} leads after n1 died between a commit and sending it on");

    // The sockets that stayed open get it from the new leader, once, before anything newer: Ana and
    // the supervisor as the caller's message, the caller as its own (what a resume would give it).
    let got = ana.expect("message").await;
    assert_eq!((got["seq"].as_i64(), got["text"].as_str(), got["from"].as_str()), (Some(5), Some(FATAL_TEXT), Some("caller")));
    let own = caller.expect("message").await;
    assert_eq!((own["seq"].as_i64(), own["client_id"].as_str()), (Some(5), Some("fatal")));
    assert_eq!(seqs_until(&mut watcher, 5).await, vec![5]);
    // Sent again with the same client id (its ack was lost), it is acknowledged as seq 5, not stored twice.
    caller.send(json!({"type": "message", "client_id": "fatal", "text": FATAL_TEXT})).await;
    assert_eq!(caller.expect("ack").await["seq"], 5);
    // The chat goes on with the next seqs; nobody sees seq 5 twice.
    assert_eq!(chat(&mut caller, &mut ana, &contact, "after", 1).await, vec![6, 7]);
    assert_eq!(seqs_until(&mut watcher, 7).await, vec![6, 7], "the supervisor sees every message once");
    assert_eq!(store.messages().messages_after(&contact, 0).await.unwrap().len(), 7, "nothing lost, nothing doubled");
}

// ---------------------------------------------------------------------------------------------
// (4) The leader paused (SIGSTOP) until another took over, then resumed (SIGCONT): it assigns nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_old_leader_is_fenced() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let prefix = fresh_prefix();
    let (leader, followers, admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // Ion's console is on the leader; a caller on A rings for him.
    let mut ion = leader.available_agent("ion").await;
    let (mut caller, contact, _) = start_chat(a).await;
    assert_eq!(ion.expect("offer").await["contact_id"], contact.as_str());

    leader.signal("-STOP");
    let paused_at = Instant::now();
    let new_leader = settled(&followers, &admin, Some(&leader.id)).await;
    println!("cluster: {new_leader} took over {} ms after the SIGSTOP", paused_at.elapsed().as_millis());

    // The caller's socket on A stays open; Ana answers it through the new leader.
    let mut ana = b.available_agent("ana").await;
    assert_eq!(ana.expect("offer").await["contact_id"], contact.as_str());
    ana.send(json!({"type": "accept", "contact_id": contact})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;

    // The old leader wakes up; Ion accepts the offer it still shows him, at once.
    leader.signal("-CONT");
    ion.send(json!({"type": "accept", "contact_id": contact})).await;
    // He is never told it is his: his socket is closed (reconnect and resume) without an `assigned`.
    loop {
        let next = tokio::time::timeout(FRAME_TIMEOUT, futures_util::StreamExt::next(&mut ion.stream)).await.expect("old leader closes");
        match next {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_ne!(v["type"], "assigned", "a fenced leader assigned a contact: {v}");
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    // The database agrees: answered once, by Ana.
    let c = store.contacts().contact(&contact).await.unwrap().unwrap();
    let ana_id = store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    assert_eq!(c.counsellor_id.as_deref(), Some(ana_id.as_str()));
    let answered: Vec<_> = store.contacts().contact_events(&contact).await.unwrap().into_iter().filter(|e| e.kind == "answered").collect();
    assert_eq!(answered.len(), 1, "{answered:?}");
    // The old leader is a follower now, and the chat goes on.
    let deadline = Instant::now() + FRAME_TIMEOUT;
    while leader.status(&admin).await.is_none_or(|s| s["role"] != "follower") {
        assert!(Instant::now() < deadline, "the old leader stepped down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = chat(&mut caller, &mut ana, &contact, "p", 1).await;
    assert_eq!(acked, vec![1, 2]);
}

// ---------------------------------------------------------------------------------------------
// (5) Redis restarted: simulated with a proxy in front of the shared Redis that drops every
// connection, refuses new ones for a second and wipes this test's keys (a restart without
// persistence), then lets them through again.

/// A TCP proxy a test can cut: while cut, every connection through it is dropped and new ones are
/// closed at once (as a server that went away).
struct TcpProxy {
    addr: String,
    /// Odd while cut.
    down: tokio::sync::watch::Sender<u64>,
}

impl TcpProxy {
    async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let (down, generation) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let mut generation = generation.clone();
                let born = *generation.borrow_and_update();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // Refuse while "restarting" (an odd generation).
                    if born % 2 == 1 {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = generation.changed() => {}
                    }
                });
            }
        });
        TcpProxy { addr, down }
    }

    fn cut(&self) {
        self.down.send_modify(|g| *g += 1 - *g % 2);
    }

    fn restore(&self) {
        self.down.send_modify(|g| *g += *g % 2);
    }

    /// Redis restarting without persistence: connections dropped, new ones refused for `pause`, the
    /// keys under `prefix` wiped.
    async fn restart_redis(&self, conn: &mut ConnectionManager, prefix: &str, pause: Duration) {
        self.cut();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(conn).await.expect("keys");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(conn).await.expect("wipe");
        }
        tokio::time::sleep(pause).await;
        self.restore();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_nothing_acknowledged() {
    let Some((db, store, mut conn)) = prepare().await else { return };
    let upstream = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_string();
    let proxy = TcpProxy::start(upstream).await;
    let prefix = fresh_prefix();
    let (leader, followers, admin) = three_nodes(&db, &format!("redis://{}", proxy.addr), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    let (mut ana, mut caller, contact, token) = answered_chat(a, b).await;
    let acked = chat(&mut caller, &mut ana, &contact, "r", 3).await;
    let (mut waiting, waiting_id, waiting_token) = start_chat(a).await;
    let token_before = a.status(&admin).await.expect("status")["leader"]["token"].as_i64().unwrap();

    proxy.restart_redis(&mut conn, &prefix, Duration::from_millis(1000)).await;
    let nodes = [&leader, a, b];
    // Every node reconnects and the cluster settles again, with a higher token.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ok = 0;
        let mut token = 0;
        for n in nodes {
            if let Some(s) = n.status(&admin).await {
                if s["nodes"].as_array().is_some_and(|l| l.len() == 3) && s["sees_leader"] == s["leader"]["node"] && s["redis_ok"] == true {
                    ok += 1;
                    token = s["leader"]["token"].as_i64().unwrap_or(0);
                }
            }
        }
        if ok == 3 && token > token_before {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not recover from the Redis restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sockets were asked to resume; everything acknowledged is there, and the chat goes on.
    for ws in [&mut ana, &mut caller, &mut waiting] {
        assert_eq!(ws.closed().await, Some(helpline::edge::ws::close::RESTART));
    }
    let (mut caller, resumed) = resume(b, &token, 0).await;
    assert_eq!(resumed["state"], "active");
    for seq in &acked {
        assert_eq!(caller.expect("message").await["seq"], *seq);
    }
    let (mut ana, _) = a.agent("ana").await;
    assert_eq!(ana.expect("assigned").await["history"].as_array().unwrap().len(), acked.len());
    let more = chat(&mut caller, &mut ana, &contact, "s", 1).await;
    assert_eq!(more, vec![acked.len() as i64 + 1, acked.len() as i64 + 2]);
    let (mut waiting, resumed) = resume(a, &waiting_token, 0).await;
    assert_eq!(resumed["state"], "queued");
    assert_eq!(store.contacts().contact(&waiting_id).await.unwrap().unwrap().state, "queued", "the waiting contact still waits");
    assert_eq!(store.messages().messages_after(&contact, 0).await.unwrap().len(), acked.len() + 2);

    // The waiting contact is offered once a counsellor is free, with its answer clock running from
    // its arrival, and answered once.
    let queued_at = store.contacts().contact(&waiting_id).await.unwrap().unwrap().queued_at;
    let mut ion = b.available_agent("ion").await;
    let offer = ion.expect("offer").await;
    assert_eq!(offer["contact_id"], waiting_id.as_str());
    println!("cluster: after the Redis restart the waiting contact was offered having waited {} ms", offer["waited_ms"]);
    assert!(offer["waited_ms"].as_i64().unwrap() > 1000, "the answer clock runs from the original arrival: {offer}");
    ion.send(json!({"type": "accept", "contact_id": waiting_id})).await;
    ion.expect("assigned").await;
    waiting.expect("connected").await;
    let c = store.contacts().contact(&waiting_id).await.unwrap().unwrap();
    assert_eq!((c.queued_at, c.state.as_str()), (queued_at, "active"), "kept its arrival time");
    let answers = store.contacts().contact_events(&waiting_id).await.unwrap().into_iter().filter(|e| e.kind == "answered").count();
    assert_eq!(answers, 1, "assigned once");
}

// ---------------------------------------------------------------------------------------------
// (6) PostgreSQL unreachable (a proxy in front of it, cut): every node says so on /readyz and
// refuses what needs it with `unavailable`, acknowledges nothing, and recovers by itself.

/// `url` with its host and port replaced by `addr`; and the original host:port.
fn via(url: &str, addr: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let host = if host.contains(':') { host.to_string() } else { format!("{host}:5432") };
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    let proxied = format!("{scheme}://{user}{addr}/{path}");
    // The same database through the proxy: the same key file.
    if let Some(keys) = helpline::store::keys::remembered_key_file(url) {
        helpline::store::keys::remember_key_file(&proxied, &keys);
    }
    (proxied, host)
}

/// Polls until every node's `/readyz` answers `status`.
async fn all_ready(nodes: &[&Node], status: u16) {
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let mut seen = Vec::new();
        for n in nodes {
            seen.push(n.readyz().await);
        }
        if seen.iter().all(|s| *s == status) {
            return;
        }
        assert!(Instant::now() < deadline, "/readyz answered {seen:?}, not all {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_refuses_then_recovers() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let (_, upstream) = via(&db.url, "");
    let proxy = TcpProxy::start(upstream).await;
    let (url, _) = via(&db.url, &proxy.addr);
    let prefix = fresh_prefix();
    let (leader, followers, _admin) = three_nodes_on(&url, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    let (mut ana, mut caller, contact, _) = answered_chat(a, b).await;
    assert_eq!(chat(&mut caller, &mut ana, &contact, "pg", 1).await, vec![1, 2]);

    proxy.cut();
    let nodes = [&leader, a, b];
    all_ready(&nodes, 503).await;
    // Nothing is acknowledged: each party hears, by name, that its message was not stored.
    caller.send(json!({"type": "message", "client_id": "while-down-c", "text": "are you there?"})).await;
    let refused = caller.expect("error").await;
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("unavailable"), Some("while-down-c")), "{refused}");
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "while-down-a", "text": "yes"})).await;
    let refused = ana.expect("error").await;
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("unavailable"), Some("while-down-a")), "{refused}");
    // A new chat is refused too, with the same code.
    let mut late = a.caller().await;
    late.send(json!({"type": "start", "helpline": "children"})).await;
    assert_eq!(late.expect("error").await["code"], "unavailable");

    // PostgreSQL comes back: the nodes see it by themselves, and the chat goes on, on the same
    // sockets; the refused messages, sent again, are stored once each.
    proxy.restore();
    all_ready(&nodes, 200).await;
    caller.send(json!({"type": "message", "client_id": "while-down-c", "text": "are you there?"})).await;
    assert_eq!(caller.expect("ack").await["seq"], 3);
    assert_eq!(ana.expect("message").await["seq"], 3);
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "while-down-a", "text": "yes"})).await;
    assert_eq!(ana.expect("ack").await["seq"], 4);
    assert_eq!(caller.expect("message").await["seq"], 4);
    late.send(json!({"type": "start", "helpline": "children"})).await;
    assert_eq!(late.expect("queued").await["position"], 1);
    let stored: Vec<String> = store.messages().messages_after(&contact, 0).await.unwrap().into_iter().map(|m| m.client_id).collect();
    assert_eq!(stored, ["pgc0", "pga0", "while-down-c", "while-down-a"]);
}

// ---------------------------------------------------------------------------------------------
// (7) A telephone exchange connected to a follower: its calls are routed by the leader, and the
// commands for them (`connect`, a counsellor's `hold`) reach it from wherever they are committed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_on_a_follower_gets_its_commands() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let ana_id = store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    store.accounts().set_user_extension(&ana_id, Some("201")).await.expect("extension");
    let token = format!("pbx-token-{}", uuid::Uuid::new_v4().simple());
    store.exchanges().create_gateway("pbx", &helpline::auth::token_hash(&token), 0).await.expect("gateway");
    let prefix = fresh_prefix();
    let (leader, followers, _admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // The exchange is on A, Ana's console on B, the engine on the leader.
    let mut pbx = Exchange::connect_to(&a.addr, &token, true).await;
    let mut ana = b.available_agent("ana").await;
    let t0 = now_ms();
    pbx.offer("x1", "116111", "069111222", t0).await;
    let offer = ana.expect("offer").await;
    assert_eq!(offer["channel"], "call", "{offer}");
    let call = offer["contact_id"].as_str().unwrap().to_string();
    ana.send(json!({"type": "accept", "contact_id": call})).await;
    ana.expect("assigned").await;
    let connect = pbx.expect("connect").await;
    assert_eq!((connect["call_id"].as_str(), connect["extension"].as_str()), (Some("x1"), Some("201")), "{connect}");
    pbx.ack_command(&connect).await;
    pbx.answer("x1", t0 + 1_000).await;

    // Ana (on B) puts the call on hold: the command is committed on B and reaches the exchange on A.
    ana.send(json!({"type": "call_hold", "contact_id": call})).await;
    assert_eq!(ana.expect("call_control").await["action"], "hold");
    let hold = pbx.expect("hold").await;
    assert_eq!(hold["call_id"], "x1");
    pbx.ack_command(&hold).await;

    pbx.hang_up("x1", "caller", t0 + 9_000).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], call.as_str());
    let record = store.calls().call_record(&call).await.expect("read").expect("call record");
    assert_eq!(record.outcome.as_deref(), Some("answered"));
    drop(leader);
}

// ---------------------------------------------------------------------------------------------
// (8) An exchange connected to two nodes: each command is handed to one of its sockets only, and to
// the other only once that one closed without acknowledging it.

/// Frames the exchange gets over `window` (it keeps asking: ping, pong), with nothing expected:
/// the sweeps of every node (every 2 s) run meanwhile, so a command handed to a second socket shows.
async fn commands_within(pbx: &mut Exchange, window: Duration) -> Vec<Value> {
    let until = Instant::now() + window;
    let mut got = Vec::new();
    while Instant::now() < until {
        got.extend(pbx.quiet().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_on_two_nodes_gets_each_command_once() {
    let Some((db, store, _conn)) = prepare().await else { return };
    let ana_id = store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    store.accounts().set_user_extension(&ana_id, Some("201")).await.expect("extension");
    let token = format!("pbx-token-{}", uuid::Uuid::new_v4().simple());
    let gateway = store.exchanges().create_gateway("pbx", &helpline::auth::token_hash(&token), 0).await.expect("gateway");
    let prefix = fresh_prefix();
    let (leader, followers, _admin) = three_nodes(&db, &redis_url(), &prefix).await;
    let (a, b) = (&followers[0], &followers[1]);

    // The exchange holds a socket on A and one on B; Ana's console is on B; the engine on the leader.
    let mut on_a = Exchange::connect_to(&a.addr, &token, true).await;
    let mut on_b = Exchange::connect_to(&b.addr, &token, true).await;
    let mut ana = b.available_agent("ana").await;
    let t0 = now_ms();
    on_a.offer("d1", "116111", "069777888", t0).await;
    let call = ana.expect("offer").await["contact_id"].as_str().unwrap().to_string();
    ana.send(json!({"type": "accept", "contact_id": call})).await;
    ana.expect("assigned").await;

    // The `connect` is committed on the leader, which holds no socket of the exchange: it reaches one
    // of the two sockets, and, unacknowledged through several sweeps of both nodes, never the other.
    let (connect, holder_is_a) = tokio::select! {
        c = on_a.expect("connect") => (c, true),
        c = on_b.expect("connect") => (c, false),
    };
    assert_eq!(connect["call_id"], "d1");
    let (holder, other) = if holder_is_a { (&mut on_a, &mut on_b) } else { (&mut on_b, &mut on_a) };
    let window = Duration::from_millis(5_000);
    let (seen_holder, seen_other) = tokio::join!(commands_within(holder, window), commands_within(other, window));
    assert!(seen_holder.is_empty(), "the holding socket got nothing more: {seen_holder:?}");
    assert!(seen_other.is_empty(), "the other socket got nothing: {seen_other:?}");
    holder.ack_command(&connect).await;
    on_a.answer("d1", t0 + 1_000).await;

    // Ana (on B) puts the call on hold: B holds a socket of the exchange, which gets the command.
    ana.send(json!({"type": "call_hold", "contact_id": call})).await;
    assert_eq!(ana.expect("call_control").await["action"], "hold");
    let hold = on_b.expect("hold").await;
    assert!(on_a.quiet().await.is_empty(), "one socket only");
    // B's socket closes before acknowledging it: the same command goes to the socket on A, once.
    on_b.close().await;
    let again = on_a.expect("hold").await;
    assert_eq!(again["command_id"], hold["command_id"], "the same command, on the other socket");
    on_a.ack_command(&again).await;
    assert!(commands_within(&mut on_a, Duration::from_millis(2_500)).await.is_empty(), "handed over once");

    on_a.hang_up("d1", "caller", t0 + 9_000).await;
    assert_eq!(ana.expect("contact_ended").await["contact_id"], call.as_str());
    let kinds: Vec<(String, bool, bool)> = store.commands().call_commands(&gateway.id, "d1").await.unwrap();
    assert_eq!(kinds, [("connect".to_string(), true, false), ("hold".to_string(), true, false)]);
    drop(leader);
}

/// Cluster identity: a database carries a cluster id, and a node whose database is not the one the
/// nodes on its Redis prefix share refuses to join (a clear error at start), instead of following
/// their leader; a running node that finds the prefix held by another database's cluster is no
/// longer ready (`/readyz` 503, saying why), and is again once it is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_database_refuses_to_join() {
    let Some((db, store, mut conn)) = prepare().await else { return };
    let Some(other) = TestDb::new(crate::helpers::Backend::Postgres).await else { return };
    {
        let s = Store::connect(&other.url).await.expect("connect");
        s.migrate().await.expect("migrate");
        helpline::store::defaults::seed_helplines(&s).await.expect("seed");
        s.close().await;
    }
    let prefix = fresh_prefix();
    let n1 = Node::start(&db.url, &redis_url(), &prefix, "n1").await;
    all_ready(&[&n1], 200).await;
    let key = format!("{prefix}:cluster_id");
    let ours: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await.expect("cluster id in Redis");
    assert_eq!(ours, store.fencing().cluster_id("unused").await.expect("cluster id"), "the prefix holds the database's cluster id");

    // A node on another database, on the same prefix: it does not start, and says why.
    let started = tokio::process::Command::new(env!("CARGO_BIN_EXE_helpline"))
        .args(["--database", &other.url, "serve", "--listen", "127.0.0.1:0", "--redis", &redis_url(), "--node-id", "n2"])
        .args(["--redis-prefix", &prefix])
        .env("HELPLINE_JWT_SECRET", "cluster-test-secret-cluster-test-secret")
        .envs(crate::helpers::key_file_env(&other.url))
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(FRAME_TIMEOUT, started).await.expect("the node gave up in time").expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a node of another database started: {stderr}");
    assert!(stderr.contains("refusing to join") && stderr.contains(&ours), "{stderr}");

    // The prefix taken by another database's cluster (Redis lost the key, another came first): n1 stops being ready.
    let _: () = redis::cmd("SET").arg(&key).arg("another-cluster").query_async(&mut conn).await.expect("set");
    let deadline = Instant::now() + FRAME_TIMEOUT;
    loop {
        let res = n1.http.get(format!("http://{}/readyz", n1.addr)).send().await.expect("readyz");
        if res.status() == 503 {
            let body: Value = res.json().await.expect("json");
            assert!(body["message"].as_str().is_some_and(|m| m.contains("refusing to join") && m.contains("another-cluster")), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "n1 stayed ready on a prefix of another cluster");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: () = redis::cmd("SET").arg(&key).arg(&ours).query_async(&mut conn).await.expect("set");
    all_ready(&[&n1], 200).await;
}

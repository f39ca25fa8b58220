//! Durability: the real binary killed with SIGKILL while contacts wait and chats are open, restarted on the same database; and a graceful SIGTERM.

use std::process::Stdio;

use helpline::store::users::Role;
use helpline::store::Store;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{add_user, Backend, TestDb, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(sigkill_loses_nothing, sigterm_tells_clients_to_reconnect);

/// The `helpline` binary running as a child process (also used by the telephony restart tests and `faults`).
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) http: reqwest::Client,
}

/// Starts the built `helpline` binary on `db_url` with `extra` serve flags; returns the child and the
/// address it printed (stdout is drained so the child never blocks on a full pipe).
pub(crate) async fn spawn_helpline(db_url: &str, extra: &[&str], secret: &str, log: &str) -> (tokio::process::Child, String) {
    spawn_helpline_with(db_url, extra, &[], secret, log).await
}

/// [`spawn_helpline`] with environment variables `env` (e.g. `FAILPOINTS`).
pub(crate) async fn spawn_helpline_with(
    db_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    secret: &str,
    log: &str,
) -> (tokio::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helpline"))
        .args(["--database", db_url, "serve", "--trusted-proxies", "127.0.0.1"])
        // A random port unless `extra` names one (a restart on the same address).
        .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] })
        .args(extra)
        .envs(env.iter().copied())
        .envs(crate::helpers::key_file_env(db_url))
        .env("HELPLINE_JWT_SECRET", secret)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start helpline");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(FRAME_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("helpline is listening on http://") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("server start timed out")
    .expect("server printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

impl Server {
    pub(crate) async fn start(db_url: &str) -> Server {
        let (child, addr) = spawn_helpline(db_url, &[], "durability-test-secret-durability", "warn").await;
        Server { child, addr, http: reqwest::Client::new() }
    }

    pub(crate) async fn login_agent(&self, username: &str) -> Ws {
        let res = self
            .http
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"username": username, "password": format!("{username}-password")}))
            .send()
            .await
            .expect("login");
        let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
        let res = self.http.post(format!("http://{}/api/v1/ws-ticket", self.addr)).bearer_auth(token).send().await.expect("ticket");
        let ticket = res.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_string();
        Ws::connect(&format!("ws://{}/ws/agent?ticket={ticket}", self.addr)).await
    }

    pub(crate) async fn caller(&self) -> Ws {
        Ws::connect_from(&format!("ws://{}/ws/caller", self.addr), &crate::helpers::caller_address()).await
    }

    pub(crate) async fn sigkill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let status = self.child.wait().await.expect("wait");
        assert!(!status.success(), "killed, not exited");
    }
}

async fn prepare(backend: Backend) -> Option<(TestDb, Store)> {
    let db = TestDb::new(backend).await?;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 1).await;
    add_user(&store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    Some((db, store))
}

async fn sigkill_loses_nothing(backend: Backend) {
    let Some((db, store)) = prepare(backend).await else { return };
    let server = Server::start(&db.url).await;

    // Ana (capacity 1) takes one chat; two more callers wait behind it.
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    ana.send(json!({"type": "status", "status": "available"})).await;
    ana.expect("status").await;
    let mut caller = server.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let queued = caller.expect("queued").await;
    let chat = queued["contact_id"].as_str().unwrap().to_string();
    let token = queued["resume_token"].as_str().unwrap().to_string();
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": chat})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let mut acked = Vec::new();
    for i in 0..5 {
        caller.send(json!({"type": "message", "client_id": format!("c{i}"), "text": format!("caller {i}")})).await;
        acked.push(caller.expect("ack").await["seq"].as_i64().unwrap());
        ana.expect("message").await;
        ana.send(json!({"type": "message", "contact_id": chat, "client_id": format!("a{i}"), "text": format!("ana {i}")})).await;
        acked.push(ana.expect("ack").await["seq"].as_i64().unwrap());
        caller.expect("message").await;
    }
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut w = server.caller().await;
        w.send(json!({"type": "start", "helpline": "children"})).await;
        let queued = w.expect("queued").await;
        let id = queued["contact_id"].as_str().unwrap().to_string();
        waiting.push((id, queued["resume_token"].as_str().unwrap().to_string(), w));
    }
    let queued_at: Vec<i64> = {
        let mut v = Vec::new();
        for (id, _, _) in &waiting {
            v.push(store.contacts().contact(id).await.unwrap().unwrap().queued_at);
        }
        v
    };

    // Power cut.
    server.sigkill().await;
    let waiting: Vec<(String, String)> = waiting.into_iter().map(|(id, resume, _)| (id, resume)).collect();
    drop((ana, caller));

    // Same database, new process.
    let server = Server::start(&db.url).await;
    let still_waiting = waiting_ids(&store, &queued_at).await;
    let times: Vec<i64> = still_waiting.iter().map(|(_, at)| *at).collect();
    assert_eq!(times, queued_at, "waiting contacts kept with their original arrival times");

    // The caller resumes: every acknowledged message, once, in order.
    let mut caller = server.caller().await;
    caller.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    assert_eq!(caller.recv().await["state"], "active");
    let mut seqs = Vec::new();
    for _ in 0..acked.len() {
        let m = caller.recv().await;
        assert_eq!(m["type"], "message");
        seqs.push(m["seq"].as_i64().unwrap());
    }
    acked.sort();
    assert_eq!(seqs, acked);
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // Ana reconnects: her open conversation and its history are back.
    let mut ana = server.login_agent("ana").await;
    let hello = ana.expect("hello").await;
    assert_eq!(hello["conversations"][0]["contact_id"], chat.as_str());
    let history = ana.expect("assigned").await["history"].as_array().unwrap().len();
    assert_eq!(history, 10);
    ana.send(json!({"type": "message", "contact_id": chat, "client_id": "after", "text": "still here"})).await;
    assert_eq!(ana.expect("ack").await["seq"], 11);
    assert_eq!(caller.expect("message").await["seq"], 11);

    // The waiting callers' widgets reconnect (a waiting caller whose socket is gone keeps her place
    // but is offered only once she is back: docs/protocol.md, "offline callers").
    let mut back = Vec::new();
    for (_, resume) in &waiting {
        let mut w = server.caller().await;
        w.send(json!({"type": "resume", "resume_token": resume, "last_seq": 0})).await;
        assert_eq!(w.recv().await["state"], "queued");
        back.push(w);
    }

    // Ion comes on: both waiting contacts are offered again, oldest first.
    let mut ion = server.login_agent("ion").await;
    ion.expect("hello").await;
    ion.send(json!({"type": "status", "status": "available"})).await;
    ion.expect("status").await;
    let ids: Vec<String> = waiting_ids(&store, &queued_at).await.into_iter().map(|(id, _)| id).collect();
    // Offers and assignments interleave (the next offer may come before the previous `assigned`).
    let (mut offered, mut assigned) = (Vec::new(), Vec::new());
    while assigned.len() < ids.len() {
        let frame = ion.recv().await;
        match frame["type"].as_str() {
            Some("offer") => {
                let id = frame["contact_id"].as_str().unwrap().to_string();
                assert!(frame["waited_ms"].as_i64().unwrap() > 0, "the answer clock runs from the original arrival");
                ion.send(json!({"type": "accept", "contact_id": id})).await;
                offered.push(id);
            }
            Some("assigned") => assigned.push(frame["contact_id"].as_str().unwrap().to_string()),
            _ => panic!("unexpected frame {frame}"),
        }
    }
    assert_eq!(offered, ids, "offered again, oldest first");
    assert_eq!(assigned, ids);
    // Nothing duplicated in the database.
    assert_eq!(store.messages().messages_after(&chat, 0).await.unwrap().len(), 11);
}

/// The waiting contacts' ids, oldest first, matched to the arrival times recorded before the kill.
async fn waiting_ids(store: &Store, queued_at: &[i64]) -> Vec<(String, i64)> {
    let open = store.contacts().open_contacts().await.unwrap();
    let ids: Vec<(String, i64)> = open.into_iter().filter(|c| c.state == "queued").map(|c| (c.id, c.queued_at)).collect();
    assert_eq!(ids.len(), queued_at.len(), "every waiting contact is still waiting");
    ids
}

async fn sigterm_tells_clients_to_reconnect(backend: Backend) {
    let Some((db, _store)) = prepare(backend).await else { return };
    let mut server = Server::start(&db.url).await;
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    let mut caller = server.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    caller.expect("queued").await;

    let pid = server.child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    for ws in [&mut ana, &mut caller] {
        assert_eq!(ws.expect("reconnect").await["type"], "reconnect");
        assert_eq!(ws.closed().await, Some(helpline::edge::ws::close::RESTART));
    }
    let exit = tokio::time::timeout(FRAME_TIMEOUT, server.child.wait()).await.expect("exits").expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

//! Durability: the real binary killed with SIGKILL while contacts wait and chats are open, restarted on the same database; and a graceful SIGTERM.

use std::process::Stdio;

use helpline::store::users::Role;
use helpline::store::Store;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{add_user, Backend, TestDb, Ws, FRAME_TIMEOUT};

crate::on_both_backends!(sigkill_loses_nothing, sigterm_tells_clients_to_reconnect, an_upgrade_stop_migrate_start_resumes_every_socket);

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
    let (child, addr, _) = spawn_helpline_logged(db_url, extra, env, secret, log, false).await;
    (child, addr)
}

/// The lines a server wrote to its log (standard error), as they come.
pub(crate) type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`spawn_helpline_with`], and with `capture` its log lines kept in the returned [`Log`] (and still
/// shown on this process's standard error); without, the log goes to ours and the [`Log`] stays empty.
pub(crate) async fn spawn_helpline_logged(
    db_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    secret: &str,
    log: &str,
    capture: bool,
) -> (tokio::process::Child, String, Log) {
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
        .stderr(if capture { Stdio::piped() } else { Stdio::inherit() })
        .kill_on_drop(true)
        .spawn()
        .expect("start helpline");
    let lines = Log::default();
    if let Some(stderr) = child.stderr.take() {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = r.next_line().await {
                eprintln!("{line}");
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(without_colours(&line));
            }
        });
    }
    let stdout = child.stdout.take().expect("stdout");
    let mut out = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(FRAME_TIMEOUT, async {
        while let Ok(Some(line)) = out.next_line().await {
            if let Some(rest) = line.strip_prefix("helpline is listening on http://") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("server start timed out")
    .expect("server printed its address");
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, addr, lines)
}

/// A log line without its terminal colour codes (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until a line of `log` contains every one of `words`; returns it.
pub(crate) async fn log_line(log: &Log, words: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        let found = log.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|l| words.iter().all(|w| l.contains(w))).cloned();
        if let Some(line) = found {
            return line;
        }
        assert!(tokio::time::Instant::now() < deadline, "no log line with {words:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
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

/// The single node's upgrade (docs/deployment.md, "Upgrades"): stop (SIGTERM: every socket is told to
/// reconnect), `helpline migrate`, start: every socket resumes, no conversation loses a message, and
/// the conversation goes on.
async fn an_upgrade_stop_migrate_start_resumes_every_socket(backend: Backend) {
    let Some((db, store)) = prepare(backend).await else { return };
    let mut server = Server::start(&db.url).await;
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    ana.send(json!({"type": "status", "status": "available"})).await;
    ana.expect("status").await;
    let mut caller = server.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let queued = caller.expect("queued").await;
    let (chat, token) = (queued["contact_id"].as_str().unwrap().to_string(), queued["resume_token"].as_str().unwrap().to_string());
    ana.expect("offer").await;
    ana.send(json!({"type": "accept", "contact_id": chat})).await;
    ana.expect("assigned").await;
    caller.expect("connected").await;
    let mut said = Vec::new();
    for i in 0..3 {
        caller.send(json!({"type": "message", "client_id": format!("c{i}"), "text": format!("caller {i}")})).await;
        caller.expect("ack").await;
        ana.expect("message").await;
        ana.send(json!({"type": "message", "contact_id": chat, "client_id": format!("a{i}"), "text": format!("ana {i}")})).await;
        ana.expect("ack").await;
        caller.expect("message").await;
        said.extend([format!("caller {i}"), format!("ana {i}")]);
    }
    // A second caller waits (Ana has one slot).
    let mut waiting = server.caller().await;
    waiting.send(json!({"type": "start", "helpline": "children"})).await;
    let waiting_token = waiting.expect("queued").await["resume_token"].as_str().unwrap().to_string();

    // Stop: every socket hears `reconnect` and is closed with 1012; the process exits 0.
    let pid = server.child.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    for ws in [&mut ana, &mut caller, &mut waiting] {
        assert_eq!(ws.expect("reconnect").await["type"], "reconnect");
        assert_eq!(ws.closed().await, Some(helpline::edge::ws::close::RESTART));
    }
    let exit = tokio::time::timeout(FRAME_TIMEOUT, server.child.wait()).await.expect("exits").expect("wait");
    assert!(exit.success(), "{exit:?}");

    // Migrate (the new release's migrations), then start.
    let url = db.url.clone();
    let migrated = tokio::task::spawn_blocking(move || crate::cli::helpline(&url, &["migrate"], None)).await.unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&migrated.stdout), String::from_utf8_lossy(&migrated.stderr));
    assert!(migrated.status.success() && out.contains("database migrated"), "{out}");
    let server = Server::start(&db.url).await;

    // Every socket resumes: the caller with every message, in order; the waiting caller still waiting;
    // Ana with her conversation and its whole history.
    let mut caller = server.caller().await;
    caller.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    assert_eq!(caller.expect("resumed").await["state"], "active");
    let mut history = Vec::new();
    for _ in 0..said.len() {
        history.push(caller.expect("message").await["text"].as_str().unwrap().to_string());
    }
    assert_eq!(history, said);
    let mut waiting = server.caller().await;
    waiting.send(json!({"type": "resume", "resume_token": waiting_token, "last_seq": 0})).await;
    assert_eq!(waiting.expect("resumed").await["state"], "queued");
    let mut ana = server.login_agent("ana").await;
    let hello = ana.expect("hello").await;
    assert_eq!(hello["conversations"][0]["contact_id"], chat.as_str());
    assert_eq!(ana.expect("assigned").await["history"].as_array().unwrap().len(), said.len());
    // The conversation goes on where it was.
    ana.send(json!({"type": "message", "contact_id": chat, "client_id": "after-upgrade", "text": "still here"})).await;
    assert_eq!(ana.expect("ack").await["seq"], said.len() + 1);
    assert_eq!(caller.expect("message").await["text"], "still here");
    assert_eq!(store.messages().messages_after(&chat, 0).await.unwrap().len(), said.len() + 1);
}

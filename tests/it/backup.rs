//! Backup, restore and erasure (issue 27): the real binary serves live chats over real sockets while
//! `helpline backup` copies the database; `helpline restore` puts the copy into a fresh, empty database
//! (and refuses one that holds data); a server started on it with the same key file has every message
//! that was acknowledged before the backup, and the conversations are whole prefixes of what was
//! acknowledged (nothing half-written). An erasure made after the backup is applied again by the
//! restore, so erased data never comes back. On SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use helpline::store::users::Role;
use helpline::store::Store;
use serde_json::{json, Value};

use crate::cli::helpline;
use crate::durability::Server;
use crate::helpers::{add_user, Backend, TestDb, Ws};

crate::on_both_backends!(a_backup_under_live_chats_restores_every_acknowledged_message, a_restore_never_brings_erased_data_back);

/// (contact, seq) → text of every acknowledged message.
type Acked = BTreeMap<(String, i64), String>;

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A fresh database with the helplines and Ana (three chats at once); its key file.
async fn prepare(backend: Backend) -> Option<(TestDb, Store, PathBuf)> {
    let db = TestDb::new(backend).await?;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    helpline::store::defaults::seed_helplines(&store).await.expect("seed");
    add_user(&store, "ana", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    add_user(&store, "maria", Role::Supervisor, &["children"], &[], &["ro"], 3).await;
    let key_file = helpline::store::keys::remembered_key_file(&db.url).expect("the test database's key file");
    Some((db, store, key_file))
}

/// Ana answers `n` chats; the callers' sockets, contact ids and resume tokens.
async fn open_chats(server: &Server, ana: &mut Ws, n: usize) -> Vec<(Ws, String, String)> {
    let mut chats = Vec::new();
    for _ in 0..n {
        let mut caller = server.caller().await;
        caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
        let queued = caller.expect("queued").await;
        let id = queued["contact_id"].as_str().unwrap().to_string();
        let offer = ana.expect("offer").await;
        assert_eq!(offer["contact_id"], id.as_str());
        ana.send(json!({"type": "accept", "contact_id": id})).await;
        ana.expect("assigned").await;
        caller.expect("connected").await;
        chats.push((caller, id, queued["resume_token"].as_str().unwrap().to_string()));
    }
    chats
}

/// Sends `frame` until it is acknowledged, as a client does: a `rate_limited` refusal is sent again
/// after the `retry_after_ms` the server names. Returns the `ack`.
async fn send_acked(ws: &mut Ws, frame: Value) -> Value {
    ws.send(frame.clone()).await;
    loop {
        let v = ws.recv().await;
        match v["type"].as_str() {
            Some("ack") => return v,
            Some("error") if v["code"] == "rate_limited" => {
                let wait = v["retry_after_ms"].as_u64().unwrap_or(100);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                ws.send(frame.clone()).await;
            }
            Some("position" | "typing" | "caller_presence") => {}
            _ => panic!("expected an ack, got {v}"),
        }
    }
}

/// One exchange on chat `i`: the caller writes, Ana reads and answers, the caller reads; both acks
/// recorded.
async fn exchange(ana: &mut Ws, chat: &mut (Ws, String, String), tag: &str, acked: &mut Acked) {
    let (caller, id, _) = chat;
    let said = format!("caller {tag}");
    let ack = send_acked(caller, json!({"type": "message", "client_id": format!("c-{tag}"), "text": said})).await;
    acked.insert((id.clone(), ack["seq"].as_i64().unwrap()), said);
    ana.expect("message").await;
    let said = format!("ana {tag}");
    let ack = send_acked(ana, json!({"type": "message", "contact_id": id, "client_id": format!("a-{tag}"), "text": said})).await;
    acked.insert((id.clone(), ack["seq"].as_i64().unwrap()), said);
    caller.expect("message").await;
}

/// Ana's conversations as a freshly connected console gets them: contact → [(seq, text)].
async fn histories(server: &Server, n: usize) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut ana = server.login_agent("ana").await;
    let hello = ana.expect("hello").await;
    assert_eq!(hello["conversations"].as_array().map(Vec::len), Some(n), "{hello}");
    let mut out = BTreeMap::new();
    while out.len() < n {
        let assigned = ana.expect("assigned").await;
        let history: Vec<(i64, String)> = assigned["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["seq"].as_i64().unwrap(), m["text"].as_str().unwrap().to_string()))
            .collect();
        out.insert(assigned["contact_id"].as_str().unwrap().to_string(), history);
    }
    out
}

/// Runs `helpline ARGS` on `url` off the runtime's threads.
async fn run(url: &str, args: &[&str]) -> std::process::Output {
    let (url, args): (String, Vec<String>) = (url.to_string(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || helpline(&url, &args.iter().map(String::as_str).collect::<Vec<_>>(), None)).await.expect("cli")
}

/// A fresh, empty database of the same engine to restore into (SQLite: a new file in `dir`).
async fn fresh(backend: Backend, dir: &Path) -> TestDb {
    match backend {
        Backend::Sqlite => TestDb::sqlite_at(&dir.join("restored.db")),
        Backend::Postgres => TestDb::new(backend).await.expect("a second PostgreSQL database"),
    }
}

async fn a_backup_under_live_chats_restores_every_acknowledged_message(backend: Backend) {
    let Some((db, store, key_file)) = prepare(backend).await else { return };
    let server = Server::start(&db.url).await;
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    ana.send(json!({"type": "status", "status": "available"})).await;
    ana.expect("status").await;
    let mut chats = open_chats(&server, &mut ana, 3).await;
    let mut before = Acked::new();
    for round in 0..4 {
        for (i, chat) in chats.iter_mut().enumerate() {
            exchange(&mut ana, chat, &format!("{i}-{round}"), &mut before).await;
        }
    }

    // The chats go on while the backup runs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(if backend == Backend::Sqlite { "backup.db" } else { "backup.pgdump" });
    let stop = Arc::new(AtomicBool::new(false));
    let talking = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut during = Acked::new();
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) || round < 2 {
                for (i, chat) in chats.iter_mut().enumerate() {
                    exchange(&mut ana, chat, &format!("{i}-during-{round}"), &mut during).await;
                }
                round += 1;
            }
            (ana, chats, during)
        })
    };
    let out = run(&db.url, &["backup", "--to", file.to_str().unwrap()]).await;
    stop.store(true, Ordering::SeqCst);
    let (_ana, chats, during) = talking.await.expect("the chats went on during the backup");
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("backup written to") && said.contains("holds no key"), "{said}");
    if backend == Backend::Sqlite {
        assert!(said.contains("while the server serves") && said.contains("quick_check ok"), "progress: {said}");
        // No key of the key file is in the copy.
        let bytes = std::fs::read(&file).unwrap();
        let keys = helpline::store::keys::read_key_file(&key_file).unwrap();
        for secret in keys.all_secrets() {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a key is in the backup");
        }
    } else {
        assert!(said.contains("pg_dump"), "the command says it runs pg_dump: {said}");
    }
    // The same file again is refused (a backup never overwrites one).
    let again = run(&db.url, &["backup", "--to", file.to_str().unwrap()]).await;
    assert!(!again.status.success() && text(&again).contains("exists"), "{}", text(&again));

    // A restore refuses a database that holds data, and needs the key file.
    let key = key_file.to_str().unwrap();
    let refused = run(&db.url, &["--key-file", key, "restore", "--from", file.to_str().unwrap()]).await;
    assert!(!refused.status.success() && text(&refused).contains("not empty"), "{}", text(&refused));
    let target_dir = tempfile::tempdir().unwrap();
    let target = fresh(backend, target_dir.path()).await;
    let no_key = run(&target.url, &["--key-file", "/nonexistent/helpline.keys", "restore", "--from", file.to_str().unwrap()]).await;
    assert!(!no_key.status.success() && text(&no_key).contains("needs the key file"), "{}", text(&no_key));

    let restored = run(&target.url, &["--key-file", key, "restore", "--from", file.to_str().unwrap()]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    let said = text(&restored);
    assert!(said.contains("into the empty database") && said.contains("migrating") && said.contains("restored "), "{said}");

    // A server on the restored database, with the same key file.
    helpline::store::keys::remember_key_file(&target.url, &key_file);
    let second = Server::start(&target.url).await;
    let found = histories(&second, chats.len()).await;
    for ((id, seq), said) in &before {
        let history = &found[id];
        assert!(history.iter().any(|(s, t)| s == seq && t == said), "acknowledged message {id}:{seq} {said:?} lost: {history:?}");
    }
    // Each restored conversation is a whole prefix of what was acknowledged, without a gap.
    let all: Acked = before.iter().chain(&during).map(|(k, v)| (k.clone(), v.clone())).collect();
    for (id, history) in &found {
        for (n, (seq, said)) in history.iter().enumerate() {
            assert_eq!(*seq, n as i64 + 1, "gap-free seqs in {id}");
            assert_eq!(all.get(&(id.clone(), *seq)), Some(said), "{id}:{seq} is what was acknowledged");
        }
    }
    // A caller's socket resumes on the restored server.
    let (_, id, token) = &chats[0];
    let mut caller = second.caller().await;
    caller.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    let resumed = caller.expect("resumed").await;
    assert_eq!((resumed["contact_id"].as_str(), resumed["state"].as_str()), (Some(id.as_str()), Some("active")), "{resumed}");
    drop(store);
}

async fn a_restore_never_brings_erased_data_back(backend: Backend) {
    let Some((db, store, key_file)) = prepare(backend).await else { return };
    let server = Server::start(&db.url).await;
    let mut ana = server.login_agent("ana").await;
    ana.expect("hello").await;
    ana.send(json!({"type": "status", "status": "available"})).await;
    ana.expect("status").await;
    let mut chats = open_chats(&server, &mut ana, 2).await;
    let mut acked = Acked::new();
    for (i, chat) in chats.iter_mut().enumerate() {
        exchange(&mut ana, chat, &format!("{i}"), &mut acked).await;
    }
    for (_, id, _) in &chats {
        ana.send(json!({"type": "end", "contact_id": id})).await;
        assert_eq!(ana.expect("contact_ended").await["contact_id"], id.as_str());
    }
    let (erased, kept) = (chats[0].1.clone(), chats[1].1.clone());
    // Ana's contact form on the chat that will be erased.
    let token = server_login(&server, "ana").await;
    let form = json!({"draft": true, "form": {"summary": "SECRET-SUMMARY"}});
    let res = reqwest::Client::new()
        .put(format!("http://{}/api/v1/contacts/{erased}/form", server.addr))
        .bearer_auth(&token)
        .json(&form)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "form: {}", res.text().await.unwrap());
    assert!(store.forms().form(&erased).await.unwrap().is_some());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup");
    let out = run(&db.url, &["backup", "--to", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out));

    // After the backup: the counsellor may not erase; the supervisor erases the first chat over REST.
    let erase = |token: String, id: String, body: Value| {
        let url = format!("http://{}/api/v1/contacts/{id}/erase", server.addr);
        async move {
            let res = reqwest::Client::new().post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(erase(token.clone(), erased.clone(), json!({"reason": "request 7"})).await.0, 403);
    let maria = server_login(&server, "maria").await;
    let (status, body) = erase(maria.clone(), erased.clone(), json!({})).await;
    assert_eq!(status, 400, "a reason is required: {body}");
    let (status, body) = erase(maria.clone(), erased.clone(), json!({"reason": "data subject request 7"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"]["messages"], 2, "{body}");
    assert_eq!(body["removed"]["forms"], 1, "{body}");
    assert!(store.messages().messages_after(&erased, 0).await.unwrap().is_empty());
    assert!(store.forms().form(&erased).await.unwrap().is_none());
    // The redaction record: who, when, why; never the data.
    let trail = store.audit_log().audit_for(&erased).await.unwrap();
    let maria_id = store.accounts().user_with_hash("maria").await.unwrap().unwrap().0.id;
    assert!(trail.iter().any(|(actor, action)| action == "contact_erase" && *actor == maria_id), "{trail:?}");
    // The record beside the key file holds the id and the time, nothing else.
    let record = std::fs::read_to_string(helpline::store::erasures::erasures_file(&key_file)).unwrap();
    assert!(record.starts_with(&format!("{erased} ")) && !record.contains("SECRET") && !record.contains("caller"), "{record}");
    // The command line too: a second contact, then an unknown one.
    let out = run(&db.url, &["erase", "--contact", "no-such-contact", "--reason", "x"]).await;
    assert!(!out.status.success() && text(&out).contains("no contact"), "{}", text(&out));

    // Restore the backup (taken before the erasure) into a fresh database.
    let target_dir = tempfile::tempdir().unwrap();
    let target = fresh(backend, target_dir.path()).await;
    let key = key_file.to_str().unwrap();
    let restored = run(&target.url, &["--key-file", key, "restore", "--from", file.to_str().unwrap()]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(text(&restored).contains("1 erasures recorded"), "{}", text(&restored));
    let back = Store::connect_with(&target.url, Some(key_file.as_path())).await.unwrap();
    assert!(back.messages().messages_after(&erased, 0).await.unwrap().is_empty(), "erased messages came back");
    assert!(back.forms().form(&erased).await.unwrap().is_none(), "an erased form came back");
    assert!(back.privacy().erased_at(&erased).await.unwrap().is_some());
    assert_eq!(back.messages().messages_after(&kept, 0).await.unwrap().len(), 2, "the other chat is whole");
    let _ = acked;
}

/// An access token of `username` on the binary `server`.
async fn server_login(server: &Server, username: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/login", server.addr))
        .json(&json!({"username": username, "password": format!("{username}-password")}))
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

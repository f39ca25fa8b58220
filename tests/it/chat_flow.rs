//! End to end: a counsellor and a caller, from login to the stored contact, over real sockets.

use helpline::chat::relay::actor::store_messages;
use helpline::chat::relay::conversations::NextSeqs;
use helpline::store::messages::{NewMessage, MAX_ROWS_PER_INSERT};
use helpline::store::users::Role;
use serde_json::json;

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(
    chat_end_to_end,
    caller_typing_while_waiting_is_kept,
    counsellor_reconnect_gets_hello_and_history,
    graceful_restart_keeps_everything,
    concurrent_writers_lose_nothing,
    caller_end_by_beacon,
    message_batches_mix_contacts_and_repeats
);

async fn chat_end_to_end(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro", "en"], 3).await;

    // The counsellor logs in and goes available.
    let (mut agent, hello) = app.agent("ana").await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["username"], "ana");
    assert_eq!(hello["conversations"], json!([]));
    agent.send(json!({"type": "status", "status": "available"})).await;
    assert_eq!(agent.expect("status").await["status"], "available");

    // A caller starts a chat.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = caller.expect("queued").await;
    let contact_id = queued["contact_id"].as_str().unwrap().to_string();
    let resume_token = queued["resume_token"].as_str().unwrap().to_string();
    assert_eq!(queued["position"], 1);
    assert!(resume_token.len() >= 22, "at least 128 random bits");

    // The counsellor is offered the contact and accepts.
    let offer = agent.expect("offer").await;
    assert_eq!(offer["contact_id"], contact_id.as_str());
    assert_eq!(offer["helpline"], "children");
    assert_eq!(offer["language"], "ro");
    assert_eq!(offer["backup"], false);
    assert!(offer["expires_in_ms"].as_i64().unwrap() <= 8_000);
    agent.send(json!({"type": "accept", "contact_id": contact_id})).await;
    let assigned = agent.expect("assigned").await;
    assert_eq!(assigned["contact_id"], contact_id.as_str());
    assert_eq!(assigned["history"], json!([]));
    let connected = caller.expect("connected").await;
    assert_eq!(connected["counsellor"], "ana display");

    // Messages both ways, each acknowledged with its seq, delivered to the other side.
    caller.send(json!({"type": "message", "client_id": "c1", "text": "Bună, am nevoie de ajutor"})).await;
    let ack = caller.expect("ack").await;
    assert_eq!((ack["client_id"].as_str(), ack["seq"].as_i64()), (Some("c1"), Some(1)));
    let got = agent.expect("message").await;
    assert_eq!((got["seq"].as_i64(), got["from"].as_str()), (Some(1), Some("caller")));
    assert_eq!(got["text"], "Bună, am nevoie de ajutor");

    agent.send(json!({"type": "message", "contact_id": contact_id, "client_id": "a1", "text": "Sunt aici. Ce s-a întâmplat?"})).await;
    let ack = agent.expect("ack").await;
    assert_eq!(ack["seq"], 2);
    let got = caller.expect("message").await;
    assert_eq!((got["seq"].as_i64(), got["from"].as_str()), (Some(2), Some("counsellor")));

    // A repeated client_id gets the same ack and is stored once.
    caller.send(json!({"type": "message", "client_id": "c1", "text": "Bună, am nevoie de ajutor"})).await;
    let again = caller.expect("ack").await;
    assert_eq!((again["client_id"].as_str(), again["seq"].as_i64()), (Some("c1"), Some(1)));

    // The caller's connection drops; meanwhile the counsellor writes twice.
    caller.close().await;
    assert_eq!(agent.expect("caller_presence").await["online"], false);
    for (i, text) in ["Ești în siguranță acum?", "Sunt aici cât ai nevoie."].iter().enumerate() {
        agent.send(json!({"type": "message", "contact_id": contact_id, "client_id": format!("a{}", i + 2), "text": text})).await;
        agent.expect("ack").await;
    }

    // It resumes having seen seq 2: it gets exactly seq 3 and 4, in order, nothing twice.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "resume", "resume_token": resume_token, "last_seq": 2})).await;
    let resumed = caller.recv().await;
    assert_eq!(resumed["type"], "resumed");
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["counsellor"], "ana display");
    let m3 = caller.recv().await;
    let m4 = caller.recv().await;
    assert_eq!((m3["type"].as_str(), m3["seq"].as_i64()), (Some("message"), Some(3)));
    assert_eq!((m4["type"].as_str(), m4["seq"].as_i64()), (Some("message"), Some(4)));
    assert_eq!(m4["text"], "Sunt aici cât ai nevoie.");
    assert_eq!(agent.expect("caller_presence").await["online"], true);

    // The conversation goes on after the resume.
    caller.send(json!({"type": "message", "client_id": "c2", "text": "Da, mulțumesc"})).await;
    assert_eq!(caller.expect("ack").await["seq"], 5);
    assert_eq!(agent.expect("message").await["seq"], 5);

    // The caller ends; both sides are told.
    caller.send(json!({"type": "end"})).await;
    assert_eq!(caller.expect("contact_ended").await["reason"], "caller_ended");
    let ended = agent.expect("contact_ended").await;
    assert_eq!(ended["contact_id"], contact_id.as_str());

    // The stored contact has its times, in order, and every message once.
    let c = app.store.contacts().contact(&contact_id).await.unwrap().unwrap();
    assert_eq!(c.state, "ended");
    assert_eq!(c.end_reason.as_deref(), Some("caller_ended"));
    let (queued_at, offered, answered, ended) = (c.queued_at, c.first_offered_at.unwrap(), c.answered_at.unwrap(), c.ended_at.unwrap());
    assert!(queued_at <= offered && offered <= answered && answered <= ended, "{c:?}");
    let messages = app.store.messages().messages_after(&contact_id, 0).await.unwrap();
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let kinds: Vec<String> = app.store.contacts().contact_events(&contact_id).await.unwrap().into_iter().map(|e| e.kind).collect();
    for k in ["queued", "offered", "answered", "caller_disconnected", "caller_reconnected", "ended"] {
        assert!(kinds.iter().any(|x| x == k), "event {k} missing from {kinds:?}");
    }
}

async fn caller_typing_while_waiting_is_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ion", Role::Counsellor, &["family_violence"], &["ro"], 3).await;

    // Nobody is available: the caller waits and writes.
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let queued = caller.expect("queued").await;
    let contact_id = queued["contact_id"].as_str().unwrap().to_string();
    caller.send(json!({"type": "message", "client_id": "w1", "text": "El e acasă, nu pot vorbi la telefon"})).await;
    assert_eq!(caller.expect("ack").await["seq"], 1);

    // The counsellor comes, accepts, and sees what was written while waiting.
    let mut agent = app.available_agent("ion").await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["language"], "ro", "the helpline's first language is the default");
    agent.send(json!({"type": "accept", "contact_id": contact_id})).await;
    let assigned = agent.expect("assigned").await;
    let history = assigned["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["text"], "El e acasă, nu pot vorbi la telefon");
    caller.expect("connected").await;

    // Typing goes both ways.
    caller.send(json!({"type": "typing"})).await;
    let typing = agent.recv().await;
    assert_eq!((typing["type"].as_str(), typing["from"].as_str()), (Some("typing"), Some("caller")));
    agent.send(json!({"type": "typing", "contact_id": contact_id, "active": false})).await;
    let typing = caller.recv().await;
    assert_eq!((typing["type"].as_str(), typing["active"].as_bool()), (Some("typing"), Some(false)));

    // The counsellor ends the conversation.
    agent.send(json!({"type": "end", "contact_id": contact_id})).await;
    assert_eq!(agent.expect("contact_ended").await["reason"], "counsellor_ended");
    assert_eq!(caller.expect("contact_ended").await["reason"], "counsellor_ended");
    // After the end the caller's socket can start again, and its old contact takes no messages.
    caller.send(json!({"type": "message", "client_id": "late", "text": "hello?"})).await;
    assert_eq!(caller.expect("error").await["code"], "not_allowed");
}

async fn counsellor_reconnect_gets_hello_and_history(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("olena", Role::Counsellor, &["disability"], &["uk"], 3).await;
    let mut agent = app.available_agent("olena").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "disability", "language": "uk"})).await;
    let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    agent.expect("offer").await;
    agent.send(json!({"type": "accept", "contact_id": contact_id})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    caller.send(json!({"type": "message", "client_id": "1", "text": "Привіт"})).await;
    caller.expect("ack").await;
    agent.expect("message").await;

    // The laptop sleeps: the socket drops. Messages keep arriving meanwhile.
    agent.close().await;
    caller.send(json!({"type": "message", "client_id": "2", "text": "Ви тут?"})).await;
    assert_eq!(caller.expect("ack").await["seq"], 2);

    // On reconnect: hello with the open conversation, then its whole history.
    let (mut agent, hello) = app.agent("olena").await;
    assert_eq!(hello["status"], "available", "the chosen status is kept");
    let convs = hello["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["contact_id"], contact_id.as_str());
    assert_eq!(convs[0]["caller_online"], true);
    let assigned = agent.expect("assigned").await;
    let seqs: Vec<i64> = assigned["history"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2]);
    agent.send(json!({"type": "message", "contact_id": contact_id, "client_id": "r1", "text": "Так, я тут"})).await;
    assert_eq!(agent.expect("ack").await["seq"], 3);
    assert_eq!(caller.expect("message").await["seq"], 3);
}

async fn graceful_restart_keeps_everything(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut agent = app.available_agent("ana").await;
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let queued = caller.expect("queued").await;
    let (contact_id, token) = (queued["contact_id"].as_str().unwrap().to_string(), queued["resume_token"].as_str().unwrap().to_string());
    agent.expect("offer").await;
    agent.send(json!({"type": "accept", "contact_id": contact_id})).await;
    agent.expect("assigned").await;
    caller.expect("connected").await;
    caller.send(json!({"type": "message", "client_id": "1", "text": "before the restart"})).await;
    caller.expect("ack").await;
    agent.expect("message").await;

    // SIGTERM-like shutdown: both sockets are told to reconnect, then closed with 1012.
    let restarting = tokio::spawn(async move { app.restart().await });
    assert_eq!(caller.expect("reconnect").await["reason"], "server restarting");
    assert_eq!(caller.closed().await, Some(helpline::edge::ws::close::RESTART));
    assert_eq!(agent.expect("reconnect").await["type"], "reconnect");
    let app = restarting.await.unwrap();

    let mut caller = app.caller().await;
    caller.send(json!({"type": "resume", "resume_token": token, "last_seq": 0})).await;
    assert_eq!(caller.recv().await["state"], "active");
    assert_eq!(caller.recv().await["text"], "before the restart");
    let (mut agent, hello) = app.agent("ana").await;
    assert_eq!(hello["conversations"][0]["contact_id"], contact_id.as_str());
    agent.expect("assigned").await;
    agent.send(json!({"type": "message", "contact_id": contact_id, "client_id": "2", "text": "after"})).await;
    assert_eq!(agent.expect("ack").await["seq"], 2);
    assert_eq!(caller.expect("message").await["seq"], 2);
}

/// Many callers starting and writing at once (contacts, routing steps and message batches all
/// writing concurrently): every message is acknowledged once, in order, and nothing fails.
async fn concurrent_writers_lose_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut agent = app.available_agent("ana").await;
    let mut tasks = Vec::new();
    for caller_no in 0..20 {
        let mut caller = app.caller().await;
        tasks.push(tokio::spawn(async move {
            caller.send(json!({"type": "start", "helpline": "children"})).await;
            let contact_id = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
            for i in 0..15 {
                caller.send(json!({"type": "message", "client_id": format!("{caller_no}-{i}"), "text": format!("m{i}")})).await;
            }
            let mut seqs = Vec::new();
            while seqs.len() < 15 {
                let v = caller.recv().await;
                match v["type"].as_str() {
                    Some("ack") => seqs.push(v["seq"].as_i64().unwrap()),
                    Some("position" | "connected") => {}
                    _ => panic!("caller {caller_no}: unexpected {v}"),
                }
            }
            assert_eq!(seqs, (1..=15).collect::<Vec<_>>(), "acks in order, no gaps");
            (contact_id, caller)
        }));
    }
    // Meanwhile the counsellor takes offers as they come.
    let accept = async {
        let mut assigned = 0;
        while assigned < 3 {
            let v = agent.recv().await;
            match v["type"].as_str() {
                Some("offer") => agent.send(json!({"type": "accept", "contact_id": v["contact_id"]})).await,
                Some("assigned") => assigned += 1,
                Some("message" | "caller_presence" | "typing") => {}
                _ => panic!("counsellor: unexpected {v}"),
            }
        }
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(tasks), accept);
    for r in results {
        let (contact_id, _caller) = r.expect("caller task");
        let stored = app.store.messages().messages_after(&contact_id, 0).await.unwrap();
        assert_eq!(stored.len(), 15);
    }
}

/// Quick exit without a socket: the widget's beacon ends the contact; a wrong token learns nothing.
async fn caller_end_by_beacon(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "family_violence"})).await;
    let queued = caller.expect("queued").await;
    let contact_id = queued["contact_id"].as_str().unwrap().to_string();
    let end = |body: String| app.http.post(app.url("/api/v1/caller/end")).body(body).send();
    assert_eq!(end(json!({"resume_token": "guess"}).to_string()).await.unwrap().status(), 204);
    assert_eq!(end("nonsense".into()).await.unwrap().status(), 400);
    assert_eq!(end(json!({"resume_token": queued["resume_token"]}).to_string()).await.unwrap().status(), 204);
    assert_eq!(caller.expect("contact_ended").await["reason"], "caller_ended");
    let c = app.store.contacts().contact(&contact_id).await.unwrap().unwrap();
    assert_eq!(c.state, "abandoned");
}

fn caller_message(contact: &str, client_id: &str, text: &str) -> NewMessage {
    NewMessage { contact_id: contact.into(), sender: "caller", sender_id: None, client_id: client_id.into(), body: text.into(), at: 3 }
}

/// The relay's batch write (`relay::actor::store_messages`: numbered by the relay's rules with the
/// next seqs kept in memory, written as numbered by `Store::write_messages`): several contacts mixed
/// in one batch, more messages than one multi-row INSERT takes, repeats of stored messages and of an
/// earlier message of the same batch. Seqs stay per contact, from 1, gap-free, in
/// the order given; a repeat gets the earlier copy and stores nothing; the known seqs are kept; a
/// stale known seq (another writer) is refused by the database, nothing of that batch is stored, and
/// the next try reads the seq again.
async fn message_batches_mix_contacts_and_repeats(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let store = &app.store;
    let (a, b, c) = (
        crate::helpers::stored_contact(store).await,
        crate::helpers::stored_contact(store).await,
        crate::helpers::stored_contact(store).await,
    );
    let mut next = NextSeqs::default();

    // A first batch: a and b interleaved, more rows than one INSERT takes (power-of-two chunks).
    let n = MAX_ROWS_PER_INSERT + 37;
    let batch: Vec<NewMessage> =
        (0..n).map(|i| caller_message(if i % 3 == 0 { &b } else { &a }, &format!("x{i}"), &format!("t{i}"))).collect();
    let stored = store_messages(store, &mut next, &batch).await.expect("first batch");
    assert_eq!(stored.len(), n);
    let (mut sa, mut sb) = (0, 0);
    for (i, s) in stored.iter().enumerate() {
        assert!(!s.duplicate);
        let expected = if i % 3 == 0 {
            sb += 1;
            sb
        } else {
            sa += 1;
            sa
        };
        assert_eq!(s.message.seq, expected, "message {i}");
        assert_eq!(s.message.client_id, format!("x{i}"));
    }
    assert_eq!((next.get(&a), next.get(&b), next.get(&c)), (Some(sa + 1), Some(sb + 1), None));

    // A second batch mixing new messages (c is new to the relay), repeats of stored ones (with
    // another text: the earlier copy wins), and a repeat of an earlier message of this batch.
    let batch = vec![
        caller_message(&a, "y1", "new a"),
        caller_message(&c, "z1", "new c"),
        caller_message(&a, "x1", "changed"),
        caller_message(&b, "y1", "new b"),
        caller_message(&a, "y1", "again"),
        caller_message(&c, "z2", "new c 2"),
        caller_message(&a, "y2", "new a 2"),
    ];
    let stored = store_messages(store, &mut next, &batch).await.expect("batch with repeats");
    let got: Vec<(i64, bool, &str)> = stored.iter().map(|s| (s.message.seq, s.duplicate, s.message.body.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (sa + 1, false, "new a"),
            (1, false, "new c"),
            (1, true, "t1"), // x1 was a's first message (x0 was b's)
            (sb + 1, false, "new b"),
            (sa + 1, true, "new a"),
            (2, false, "new c 2"),
            (sa + 2, false, "new a 2"),
        ]
    );
    assert_eq!((next.get(&a), next.get(&b), next.get(&c)), (Some(sa + 3), Some(sb + 2), Some(3)));

    // Another writer (not the relay) adds to a behind the relay's back: the relay's known seq is
    // stale; its batch is refused whole (nothing of b's message is stored either), a's is forgotten,
    // and the next try is numbered from the database.
    store_messages(store, &mut NextSeqs::default(), &[caller_message(&a, "other", "elsewhere")]).await.expect("other writer");
    let batch = vec![caller_message(&b, "w1", "b w1"), caller_message(&a, "w2", "a w2")];
    assert!(store_messages(store, &mut next, &batch).await.is_err(), "a seq already taken is refused");
    assert_eq!((next.get(&a), next.get(&b)), (None, None));
    let stored = store_messages(store, &mut next, &batch).await.expect("after reading the seqs again");
    assert_eq!(stored.iter().map(|s| s.message.seq).collect::<Vec<_>>(), vec![sb + 2, sa + 4]);

    // What is stored: every contact numbered 1..n without a gap, each client id once.
    for (contact, count) in [(&a, sa + 4), (&b, sb + 2), (&c, 2)] {
        let all = store.messages().messages_after(contact, 0).await.expect("read");
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=count).collect::<Vec<_>>());
        let mut ids: Vec<&str> = all.iter().map(|m| m.client_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len() as i64, count, "each client id once");
    }
}

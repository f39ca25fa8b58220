//! The contact-channel seam (`helpline::chat::channel`): a kind of contact whose caller holds no
//! socket, added as a module of its own and registered at start-up, with no change to the core.
//!
//! `TestSms` stands for a messaging app: its caller's side comes in as a provider's webhook would
//! bring it (`chat::channel::inbound`), and what the core sends the caller goes to its outbox (the
//! stand-in for the HTTP send to the provider). The counsellor is on the real console socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use helpline::chat::channel::{inbound, ContactChannel, ToCaller};
use helpline::chat::hub::{Outbox, Outgoing};
use helpline::routing::Channel;
use helpline::store::users::Role;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::helpers::{Backend, TestApp, FRAME_TIMEOUT};

crate::on_both_backends!(a_channel_without_a_socket_is_routed_answered_and_ended);

/// A messaging channel for the test: sends go to `sent`; the caller is present while the provider
/// says so (`quiet`: no recent activity), not by a socket.
#[derive(Debug)]
struct TestSms {
    sent: mpsc::UnboundedSender<(String, Value, bool)>,
    quiet: Mutex<Vec<String>>,
}

impl ContactChannel for TestSms {
    fn kind(&self) -> &'static str {
        "test_sms"
    }
    fn rules(&self) -> Channel {
        // A text conversation: the chat rules (no extension needed, ranked with chats).
        Channel::Chat
    }
    fn present_after_restart(&self) -> bool {
        true
    }
    fn deliver(&self, frame: ToCaller<'_>, _sockets: &[Outbox]) {
        let Ok(event) = serde_json::from_str::<Value>(frame.text.as_str()) else { return };
        // The caller's own message comes back to "their other sockets": a phone has none.
        if event["type"] == "message" && event["from"] == "caller" {
            return;
        }
        let _ = self.sent.send((frame.contact.to_string(), event, frame.ending));
    }
    fn present(&self, contact: &str, _sockets: usize) -> bool {
        !self.quiet.lock().expect("lock").iter().any(|c| c == contact)
    }
}

/// The next frame the channel sent its caller.
async fn sent(rx: &mut mpsc::UnboundedReceiver<(String, Value, bool)>, kind: &str) -> (String, Value, bool) {
    loop {
        let got = tokio::time::timeout(FRAME_TIMEOUT, rx.recv()).await.expect("a frame to the channel in time").expect("channel open");
        if got.1["type"] == kind {
            return got;
        }
        assert!(got.1["type"] == "position", "expected {kind}, the channel was sent {:?}", got.1);
    }
}

/// The next frame on the webhook's own outbox (the acks of the caller's messages).
async fn acked(inbox: &mut helpline::chat::hub::Inbox) -> Value {
    let item = tokio::time::timeout(FRAME_TIMEOUT, inbox.rx.recv()).await.expect("an ack in time").expect("outbox open");
    // An ack (or a refusal) answers the message it names: the outbox gets it as an answer.
    let Outgoing::Answer { client_id, frame } = item else { panic!("{item:?}") };
    let v: Value = serde_json::from_str(frame.as_str()).expect("json");
    assert_eq!(v["client_id"].as_str().or(v["ref"].as_str()), Some(client_id.as_str()), "{v}");
    v
}

async fn a_channel_without_a_socket_is_routed_answered_and_ended(backend: Backend) {
    let (tx, mut outbox) = mpsc::unbounded_channel();
    let sms = Arc::new(TestSms { sent: tx, quiet: Mutex::new(Vec::new()) });
    // Registering it at start-up is the only thing the server is told of it.
    let registered: Arc<dyn ContactChannel> = sms.clone();
    let Some((app, state)) = TestApp::spawn_with_state(backend, move |s| s.channels.push(registered)).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut agent = app.available_agent("ana").await;

    // A first text arrives at the provider's webhook: a new contact of the channel, queued.
    let arrival =
        inbound::Arrival { helpline: "children".into(), language: "ro".into(), priority: 0, caller_hash: None, senior_only: false };
    let contact =
        inbound::start(&state.store, &state.engine, &state.relay, sms.as_ref(), arrival, state.clock.now_ms()).await.expect("stored");
    let (to, queued, _) = sent(&mut outbox, "queued").await;
    assert_eq!((to.as_str(), queued["contact_id"].as_str()), (contact.as_str(), Some(contact.as_str())));
    // Its text is stored like a chat's message; the webhook hears the ack (and answers the provider).
    let (webhook, mut acks) = state.hub.new_connection();
    assert!(inbound::message(&state.relay, &contact, "sms-1".into(), "Bună, am nevoie de ajutor".into(), webhook.clone()).await);
    let ack = acked(&mut acks).await;
    assert_eq!((ack["type"].as_str(), ack["client_id"].as_str(), ack["seq"].as_i64()), (Some("ack"), Some("sms-1"), Some(1)));

    // Routed and offered to the counsellor on the real console, who sees what kind of contact it is.
    let offer = agent.expect("offer").await;
    assert_eq!(offer["contact_id"], contact.as_str());
    assert_eq!(offer["channel"], "test_sms");
    agent.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = agent.expect("assigned").await;
    assert_eq!(assigned["channel"], "test_sms");
    assert_eq!(assigned["caller_online"], true, "present by the channel's measure, without a socket");
    assert_eq!(assigned["history"][0]["text"], "Bună, am nevoie de ajutor");
    let (_, connected, _) = sent(&mut outbox, "connected").await;
    assert_eq!(connected["counsellor"], "ana display");

    // The counsellor writes: it goes out through the channel (the provider's send).
    agent.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": "Sunt aici."})).await;
    assert_eq!(agent.expect("ack").await["seq"], 2);
    let (_, message, ending) = sent(&mut outbox, "message").await;
    assert_eq!(
        (message["from"].as_str(), message["text"].as_str(), message["seq"].as_i64()),
        (Some("counsellor"), Some("Sunt aici."), Some(2))
    );
    assert!(!ending);

    // The caller answers through the webhook's path; a provider's retry of the same text is stored once.
    assert!(inbound::typing(&state.relay, &contact, true).await);
    assert_eq!(agent.expect("typing").await["active"], true);
    for _ in 0..2 {
        assert!(inbound::message(&state.relay, &contact, "sms-2".into(), "Mulțumesc".into(), webhook.clone()).await);
        assert_eq!(acked(&mut acks).await["seq"], 3);
    }
    let got = agent.expect("message").await;
    assert_eq!((got["from"].as_str(), got["text"].as_str(), got["seq"].as_i64()), (Some("caller"), Some("Mulțumesc"), Some(3)));

    // Presence by activity: the provider's caller goes quiet, then writes again.
    sms.quiet.lock().expect("lock").push(contact.clone());
    assert!(inbound::presence(&state.engine, &contact, false).await);
    assert_eq!(agent.expect("caller_presence").await["online"], false);
    sms.quiet.lock().expect("lock").clear();
    assert!(inbound::presence(&state.engine, &contact, true).await);
    assert_eq!(agent.expect("caller_presence").await["online"], true);

    // The caller ends it: the channel hears the last frame, the counsellor too.
    assert!(inbound::end(&state.engine, &contact).await);
    let (to, ended, ending) = sent(&mut outbox, "contact_ended").await;
    assert_eq!((to.as_str(), ended["reason"].as_str(), ending), (contact.as_str(), Some("caller_ended"), true));
    assert_eq!(agent.expect("contact_ended").await["contact_id"], contact.as_str());
    assert_eq!(state.hub.channels.bound(), 0, "the contact's channel is forgotten with its conversation");

    // Stored as a contact of its channel, its messages once each, in order.
    let c = app.store.contacts().contact(&contact).await.expect("read").expect("stored");
    assert_eq!((c.channel.as_str(), c.state.as_str(), c.end_reason.as_deref()), ("test_sms", "ended", Some("caller_ended")));
    let seqs: Vec<i64> = app.store.messages().messages_after(&contact, 0).await.expect("read").iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    state.hub.forget(webhook.id);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(outbox.try_recv().is_err(), "nothing after the last frame");
}

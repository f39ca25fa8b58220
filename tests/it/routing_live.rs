//! Routing rules seen from real sockets, with short timeouts set on the helpline: ring-no-answer, decline, away after two misses.

use helpline::store::users::Role;
use serde_json::json;

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(ring_no_answer_then_next_counsellor_and_away);

async fn ring_no_answer_then_next_counsellor_and_away(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |helplines| {
        for h in helplines.iter_mut() {
            h.ring_timeout_ms = 1_000; // short, with room for a loaded CI machine
        }
    })
    .await
    else {
        return;
    };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    // Ana became available first, so she has been idle longest and is offered first.
    let mut ana = app.available_agent("ana").await;
    let mut ion = app.available_agent("ion").await;

    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children"})).await;
    let c1 = caller.expect("queued").await["contact_id"].as_str().unwrap().to_string();
    assert_eq!(ana.expect("offer").await["contact_id"], c1.as_str());
    // Ana lets it ring out: revoked, and it goes to Ion.
    let revoked = ana.expect("offer_revoked").await;
    assert_eq!((revoked["contact_id"].as_str(), revoked["reason"].as_str()), (Some(c1.as_str()), Some("expired")));
    assert_eq!(ion.expect("offer").await["contact_id"], c1.as_str());
    // Ion declines: straight back to Ana (the only other counsellor) after her cooldown.
    ion.send(json!({"type": "decline", "contact_id": c1})).await;
    assert_eq!(ana.expect("offer").await["contact_id"], c1.as_str());
    // Ana misses a second time in a row: she is set away and told why.
    assert_eq!(ana.expect("offer_revoked").await["reason"], "expired");
    let status = ana.expect("status").await;
    assert_eq!((status["status"].as_str(), status["reason"].as_str()), (Some("away"), Some("missed_offers")));
    // Ion takes it.
    assert_eq!(ion.expect("offer").await["contact_id"], c1.as_str());
    ion.send(json!({"type": "accept", "contact_id": c1})).await;
    ion.expect("assigned").await;
    caller.expect("connected").await;
    // The away status is stored with its reason; the offers are on record.
    let ana_user = app.store.accounts().user_with_hash("ana").await.unwrap().unwrap().0;
    assert_eq!(ana_user.status, "away");
    let kinds: Vec<String> = app.store.contacts().contact_events(&c1).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "offered").count(), 4, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "offer_expired").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "offer_declined").count(), 1, "{kinds:?}");
}

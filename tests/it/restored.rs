//! What the router keeps across a restart (issue 22): a slot in wrap-up stays in wrap-up, an away
//! reason stays given, and the estimated wait has its basis at once — the server stopped and started
//! again on the same database, on both backends.

use helpline::store::users::Role;
use serde_json::json;

use crate::helpers::{start_chat_ro as start, until, Backend, TestApp, Ws};
use crate::supervisor::{supervisor, until as sup_until};

crate::on_both_backends!(
    a_slot_in_wrap_up_stays_in_wrap_up_after_a_restart,
    an_away_reason_survives_a_restart,
    the_estimated_wait_has_a_basis_right_after_a_restart
);

/// Ana (one slot) answers a chat and ends it: her slot is in wrap-up. Returns the contact's id.
async fn answer_and_end(app: &TestApp, ana: &mut Ws) -> String {
    let (_caller, _) = start(app).await;
    let offer = until(ana, "offer", &[]).await;
    let id = offer["contact_id"].as_str().expect("id").to_string();
    ana.send(json!({"type": "accept", "contact_id": id})).await;
    until(ana, "assigned", &[]).await;
    ana.send(json!({"type": "end", "contact_id": id})).await;
    let wrap_up = until(ana, "wrap_up", &["contact_ended"]).await;
    assert_eq!(wrap_up["contact_id"], id.as_str());
    id
}

async fn a_slot_in_wrap_up_stays_in_wrap_up_after_a_restart(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    let mut ana = app.available_agent("ana").await;
    let first = answer_and_end(&app, &mut ana).await;
    drop(ana);
    let app = app.restart().await;
    // Back on the restarted server: a chat waits, and Ana's only slot is still in wrap-up.
    let mut ana = app.available_agent("ana").await;
    let (_caller, queued) = start(&app).await;
    let second = queued["contact_id"].as_str().expect("id").to_string();
    ana.send(json!({"type": "ping"})).await;
    until(&mut ana, "pong", &[]).await;
    let board_ana = {
        app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
        let mut maria = supervisor(&app, "maria").await;
        let board = sup_until(&mut maria, "dashboard", |b| crate::supervisor::waiting_ids(b, "children").contains(&second)).await;
        board["counsellors"].as_array().unwrap().iter().find(|c| c["wrap_up"][0] == first.as_str()).cloned()
    };
    let row = board_ana.expect("the board shows Ana's slot in wrap-up after the restart");
    assert_eq!(row["state"], "wrap_up", "{row}");
    // She is ready: the slot takes the waiting chat.
    ana.send(json!({"type": "ready", "contact_id": first})).await;
    let ended = until(&mut ana, "wrap_up_ended", &[]).await;
    assert_eq!((ended["contact_id"].as_str(), ended["reason"].as_str()), (Some(first.as_str()), Some("ready")));
    let offer = until(&mut ana, "offer", &[]).await;
    assert_eq!(offer["contact_id"], second.as_str());
    let stored = app.store.contacts().contact_events(&first).await.unwrap();
    assert!(stored.iter().any(|e| e.kind == "wrap_up_ended" && e.detail.as_deref() == Some("ready")), "{stored:?}");
}

async fn an_away_reason_survives_a_restart(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    ana.send(json!({"type": "status", "status": "away", "reason": "training"})).await;
    let s = until(&mut ana, "status", &[]).await;
    assert_eq!(s["reason"], "training");
    drop(ana);
    let app = app.restart().await;
    let ana_id = app.store.accounts().user_with_hash("ana").await.unwrap().unwrap().0.id;
    // Ana comes back to the restarted server: still away, for training, and a waiting chat is not hers.
    let (_ana, hello) = app.agent("ana").await;
    assert_eq!(hello["status"], "away", "{hello}");
    let (_caller, _) = start(&app).await;
    let mut maria = supervisor(&app, "maria").await;
    let board = sup_until(&mut maria, "dashboard", |b| {
        b["counsellors"].as_array().is_some_and(|cs| cs.iter().any(|c| c["user_id"] == ana_id.as_str() && c["connected"] == true))
    })
    .await;
    let row = board["counsellors"].as_array().unwrap().iter().find(|c| c["user_id"] == ana_id.as_str()).unwrap();
    assert_eq!((row["status"].as_str(), row["away_reason"].as_str()), (Some("away"), Some("training")), "{row}");
}

async fn the_estimated_wait_has_a_basis_right_after_a_restart(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 1).await;
    let mut ana = app.available_agent("ana").await;
    let (_first, queued) = start(&app).await;
    assert!(queued.get("estimated_wait_s").is_none(), "no answer yet: {queued}");
    let offer = until(&mut ana, "offer", &[]).await;
    ana.send(json!({"type": "accept", "contact_id": offer["contact_id"]})).await;
    until(&mut ana, "assigned", &[]).await;
    drop(ana);
    let app = app.restart().await;
    // Right after the restart, before anything is answered again: the stored answer is the basis.
    let (_second, queued) = start(&app).await;
    assert!(queued["estimated_wait_s"].as_u64().is_some(), "{queued}");
}

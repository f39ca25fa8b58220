//! A counsellor's transfer and consult (issue 24) over real sockets: cold and warm, to a colleague
//! and to another helpline's queue, with the history and the contact form going along; a consult the
//! caller never sees (on her socket, and in the stored messages); refusals by stable code.

use serde_json::{json, Value};

use crate::abuse::sql_text;
use crate::helpers::{call, start_chat_ro, until, Backend, TestApp, Ws};
use helpline::store::users::Role;

crate::on_both_backends!(
    cold_transfer_to_a_colleague_keeps_history_and_form,
    cold_transfer_to_another_helplines_queue_keeps_the_form,
    warm_transfer_with_a_consult_the_caller_never_sees,
    warm_transfer_to_another_helplines_queue,
    a_plain_consult_and_the_refusals
);

async fn user_id(app: &TestApp, username: &str) -> String {
    app.store.accounts().user_with_hash(username).await.unwrap().unwrap().0.id
}

/// Reads frames until one of each of `kinds` came, in any order (the router's and the relay's frames
/// race), passing over `skip`; returns them in the order of `kinds`.
async fn each(ws: &mut Ws, kinds: &[&str], skip: &[&str]) -> Vec<Value> {
    let mut got: Vec<Option<Value>> = vec![None; kinds.len()];
    while got.iter().any(Option::is_none) {
        let v = ws.recv().await;
        let kind = v["type"].as_str().unwrap_or_default();
        match kinds.iter().position(|k| *k == kind) {
            Some(i) if got[i].is_none() => got[i] = Some(v),
            _ => assert!(skip.contains(&kind), "expected {kinds:?}, got {v}"),
        }
    }
    got.into_iter().flatten().collect()
}

/// A caller in conversation with `counsellor` (already available), who wrote one message; returns
/// the caller's socket and the contact id.
async fn in_conversation(app: &TestApp, counsellor: &mut Ws) -> (Ws, String) {
    let (mut caller, queued) = start_chat_ro(app).await;
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    until(counsellor, "offer", &[]).await;
    counsellor.send(json!({"type": "accept", "contact_id": contact})).await;
    until(counsellor, "assigned", &[]).await;
    until(&mut caller, "connected", &["position"]).await;
    caller.send(json!({"type": "message", "client_id": "c1", "text": "mi-e frică acasă"})).await;
    until(&mut caller, "ack", &[]).await;
    until(counsellor, "message", &[]).await;
    (caller, contact)
}

/// Saves a form draft as `username`; the form's summary is what must go along.
async fn draft(app: &TestApp, username: &str, contact: &str, summary: &str) {
    let token = app.login(username).await;
    let body = json!({"draft": true, "form": {"summary": summary, "categories": ["violence.family"]}});
    let (status, saved) = call(app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(body)).await;
    assert_eq!(status, 200, "{saved}");
}

/// The form as `username` reads it.
async fn form_of(app: &TestApp, username: &str, contact: &str) -> Value {
    let token = app.login(username).await;
    let (status, form) = call(app, &token, "GET", &format!("/api/v1/contacts/{contact}/form"), None).await;
    assert_eq!(status, 200, "{form}");
    form
}

async fn audit_actions(app: &TestApp, contact: &str) -> Vec<String> {
    app.store.audit_log().audit_for(contact).await.unwrap().into_iter().map(|(_, a)| a).collect()
}

async fn cold_transfer_to_a_colleague_keeps_history_and_form(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 2).await;
    let (ana_id, ion_id) = (user_id(&app, "ana").await, user_id(&app, "ion").await);
    let mut ana = app.available_agent("ana").await;
    let (mut caller, contact) = in_conversation(&app, &mut ana).await;
    draft(&app, "ana", &contact, "Tatăl bea; ea se ascunde.").await;
    let mut ion = app.available_agent("ion").await;

    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id, "reason": "ion knows the family"})).await;
    let [done, ended] = &each(&mut ana, &["handover", "contact_ended"], &[]).await[..] else { unreachable!() };
    assert_eq!((done["state"].as_str(), done["warm"].as_bool()), (Some("done"), Some(false)), "{done}");
    assert_eq!(ended["reason"], "transferred");
    // Ion: told, and the conversation with its history and who handed it over, and why.
    let [told, assigned] = &each(&mut ion, &["handover", "assigned"], &[]).await[..] else { unreachable!() };
    assert_eq!(told["state"], "done");
    assert_eq!(assigned["history"][0]["text"], "mi-e frică acasă");
    let note = &assigned["handover"];
    assert_eq!((note["from_counsellor_id"].as_str(), note["from"].as_str()), (Some(ana_id.as_str()), Some("ana display")), "{assigned}");
    assert_eq!((note["reason"].as_str(), note["warm"].as_bool()), (Some("ion knows the family"), Some(false)));
    assert_eq!(until(&mut caller, "connected", &[]).await["counsellor"], "ion display");
    // The conversation goes on with Ion, and the form went along: he reads Ana's draft and submits it.
    ion.send(json!({"type": "message", "contact_id": contact, "client_id": "i1", "text": "Sunt Ion."})).await;
    until(&mut ion, "ack", &[]).await;
    assert_eq!(until(&mut caller, "message", &[]).await["text"], "Sunt Ion.");
    let form = form_of(&app, "ion", &contact).await;
    assert_eq!((form["status"].as_str(), form["form"]["summary"].as_str()), (Some("draft"), Some("Tatăl bea; ea se ascunde.")), "{form}");
    let token = app.login("ion").await;
    let full = json!({"draft": false, "form": {"caller_type": "person_concerned", "age_group": "10_14", "gender": "female", "district": "Chișinău",
        "categories": ["violence.family"], "summary": "Tatăl bea; ea se ascunde. Plan de siguranță.", "outcome": "counselling", "risk": "medium"}});
    let (status, saved) = call(&app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(full)).await;
    assert_eq!((status, saved["status"].as_str()), (200, Some("submitted")), "{saved}");
    // Ana no longer holds it: her messages are refused.
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "late", "text": "x"})).await;
    assert_eq!(until(&mut ana, "error", &[]).await["code"], "unknown_contact");
    let c = app.store.contacts().contact(&contact).await.unwrap().unwrap();
    assert_eq!((c.state.as_str(), c.counsellor_id.as_deref()), ("active", Some(ion_id.as_str())));
    assert!(audit_actions(&app, &contact).await.contains(&"transfer".to_string()));
    // The reason is sealed at rest.
    let stored = sql_text(&app, &format!("SELECT reason FROM handovers WHERE contact_id = '{contact}'")).await;
    assert!(stored.starts_with("hl1.") && !stored.contains("family"), "{stored}");
}

async fn cold_transfer_to_another_helplines_queue_keeps_the_form(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("dan", Role::Counsellor, &["family_violence"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;
    let (mut caller, contact) = in_conversation(&app, &mut ana).await;
    draft(&app, "ana", &contact, "Mama e lovită.").await;

    ana.send(json!({"type": "transfer", "contact_id": contact, "helpline": "family_violence", "reason": "violence against the mother"}))
        .await;
    let [done, ended] = &each(&mut ana, &["handover", "contact_ended"], &[]).await[..] else { unreachable!() };
    assert_eq!((done["state"].as_str(), done["helpline"].as_str()), (Some("done"), Some("family_violence")));
    assert_eq!(ended["reason"], "transferred");
    assert_eq!(until(&mut caller, "transferred", &["position"]).await["helpline"], "family_violence");
    // Whoever answers in that queue sees who handed it over and why, with the history.
    let mut dan = app.available_agent("dan").await;
    let offer = until(&mut dan, "offer", &[]).await;
    assert_eq!(offer["contact_id"], contact.as_str());
    dan.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = until(&mut dan, "assigned", &[]).await;
    assert_eq!(assigned["helpline"], "family_violence");
    assert_eq!(assigned["history"][0]["text"], "mi-e frică acasă");
    assert_eq!(
        (assigned["handover"]["from"].as_str(), assigned["handover"]["reason"].as_str()),
        (Some("ana display"), Some("violence against the mother"))
    );
    assert_eq!(until(&mut caller, "connected", &["position"]).await["counsellor"], "dan display");
    assert_eq!(form_of(&app, "dan", &contact).await["form"]["summary"], "Mama e lovită.");
}

async fn warm_transfer_with_a_consult_the_caller_never_sees(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 2).await;
    let (ana_id, ion_id) = (user_id(&app, "ana").await, user_id(&app, "ion").await);
    let mut ana = app.available_agent("ana").await;
    let (mut caller, contact) = in_conversation(&app, &mut ana).await;
    draft(&app, "ana", &contact, "Are 12 ani.").await;
    let mut ion = app.available_agent("ion").await;

    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id, "warm": true, "reason": "she asks for a man"}))
        .await;
    let pending = until(&mut ana, "handover", &[]).await;
    assert_eq!((pending["state"].as_str(), pending["warm"].as_bool()), (Some("pending"), Some(true)));
    let asked = until(&mut ion, "handover", &[]).await;
    assert_eq!(
        (asked["state"].as_str(), asked["reason"].as_str(), asked["from"].as_str()),
        (Some("pending"), Some("she asks for a man"), Some("ana display"))
    );
    // The briefing, both ways.
    ana.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": ion_id, "text": "Ea are 12 ani, tatăl e acasă."})).await;
    let c1 = until(&mut ion, "consult", &[]).await;
    assert_eq!((c1["text"].as_str(), c1["from_counsellor_id"].as_str()), (Some("Ea are 12 ani, tatăl e acasă."), Some(ana_id.as_str())));
    assert_eq!(until(&mut ana, "consult", &[]).await["text"], "Ea are 12 ani, tatăl e acasă.");
    ion.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": ana_id, "text": "Bine, o preiau."})).await;
    assert_eq!(until(&mut ana, "consult", &[]).await["text"], "Bine, o preiau.");
    until(&mut ion, "consult", &[]).await;
    // Meanwhile Ana still holds the conversation; the caller's next frame is Ana's message, no consult.
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "a1", "text": "Te dau unui coleg."})).await;
    until(&mut ana, "ack", &[]).await;
    let next = caller.recv().await;
    assert_eq!((next["type"].as_str(), next["text"].as_str()), (Some("message"), Some("Te dau unui coleg.")), "{next}");

    ion.send(json!({"type": "transfer_accept", "contact_id": contact})).await;
    let [done, assigned] = &each(&mut ion, &["handover", "assigned"], &[]).await[..] else { unreachable!() };
    assert_eq!(done["state"], "done");
    let consult: Vec<&str> = assigned["handover"]["consult"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(consult, ["Ea are 12 ani, tatăl e acasă.", "Bine, o preiau."]);
    assert_eq!(assigned["handover"]["warm"], true);
    let [done, ended] = &each(&mut ana, &["handover", "contact_ended"], &[]).await[..] else { unreachable!() };
    assert_eq!((done["state"].as_str(), ended["reason"].as_str()), (Some("done"), Some("transferred")));
    // The caller hears only who answers now; her history holds only the conversation.
    let connected = caller.recv().await;
    assert_eq!((connected["type"].as_str(), connected["counsellor"].as_str()), (Some("connected"), Some("ion display")), "{connected}");
    let texts: Vec<String> = app.store.messages().messages_after(&contact, 0).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(texts, ["mi-e frică acasă", "Te dau unui coleg."]);
    assert_eq!(form_of(&app, "ion", &contact).await["form"]["summary"], "Are 12 ani.");
    // The consult is stored, sealed.
    assert_eq!(
        sql_text(&app, &format!("SELECT CAST(COUNT(*) AS TEXT) FROM consults WHERE contact_id = '{contact}' AND body LIKE 'hl1.%'")).await,
        "2"
    );
    assert_eq!(sql_text(&app, "SELECT CAST(COUNT(*) AS TEXT) FROM consults WHERE body LIKE '%12 ani%'").await, "0");
    let actions = audit_actions(&app, &contact).await;
    for a in ["transfer_request", "consult", "transfer_accept"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

async fn warm_transfer_to_another_helplines_queue(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("dan", Role::Counsellor, &["family_violence"], &["ro"], 2).await;
    let dan_id = user_id(&app, "dan").await;
    let mut ana = app.available_agent("ana").await;
    let (mut caller, contact) = in_conversation(&app, &mut ana).await;
    draft(&app, "ana", &contact, "Mama e lovită.").await;
    // Dan is briefed while away; the contact then waits in his helpline's queue.
    let (mut dan, _) = app.agent("dan").await;
    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": dan_id, "helpline": "family_violence", "warm": true}))
        .await;
    assert_eq!(until(&mut dan, "handover", &[]).await["helpline"], "family_violence");
    ana.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": dan_id, "text": "Mama e rănită."})).await;
    until(&mut dan, "consult", &[]).await;
    dan.send(json!({"type": "transfer_accept", "contact_id": contact})).await;
    assert_eq!(until(&mut dan, "handover", &[]).await["state"], "done");
    assert_eq!(until(&mut caller, "transferred", &["position"]).await["helpline"], "family_violence");
    dan.send(json!({"type": "status", "status": "available"})).await;
    until(&mut dan, "status", &[]).await;
    assert_eq!(until(&mut dan, "offer", &[]).await["contact_id"], contact.as_str());
    dan.send(json!({"type": "accept", "contact_id": contact})).await;
    let assigned = until(&mut dan, "assigned", &[]).await;
    assert_eq!(assigned["handover"]["consult"][0]["text"], "Mama e rănită.");
    assert_eq!(form_of(&app, "dan", &contact).await["form"]["summary"], "Mama e lovită.");
    let c = app.store.contacts().contact(&contact).await.unwrap().unwrap();
    assert_eq!((c.helpline.as_str(), c.counsellor_id.as_deref()), ("family_violence", Some(dan_id.as_str())));
}

async fn a_plain_consult_and_the_refusals(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("eva", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 2).await;
    let (ana_id, ion_id, eva_id, maria_id) =
        (user_id(&app, "ana").await, user_id(&app, "ion").await, user_id(&app, "eva").await, user_id(&app, "maria").await);
    let mut ana = app.available_agent("ana").await;
    let (mut caller, contact) = in_conversation(&app, &mut ana).await;
    let (mut ion, _) = app.agent("ion").await;
    let (mut eva, _) = app.agent("eva").await;
    let code = |v: Value| v["code"].as_str().unwrap_or_default().to_string();

    // A consult without a transfer: Ion answers; Eva, never asked, cannot write to Ana about it.
    eva.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": ana_id, "text": "?"})).await;
    assert_eq!(code(until(&mut eva, "error", &[]).await), "unknown_contact");
    ana.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": ion_id, "text": "Ce servicii sunt în Bălți?"})).await;
    assert_eq!(until(&mut ion, "consult", &[]).await["text"], "Ce servicii sunt în Bălți?");
    until(&mut ana, "consult", &[]).await;
    ion.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": ana_id, "text": "Centrul de zi."})).await;
    assert_eq!(until(&mut ana, "consult", &[]).await["text"], "Centrul de zi.");
    until(&mut ion, "consult", &[]).await;
    ion.send(json!({"type": "consult", "contact_id": contact, "counsellor_id": eva_id, "text": "x"})).await;
    assert_eq!(code(until(&mut ion, "error", &[]).await), "unknown_contact", "only back to the holder");

    // Transfers refused by code; nothing moves and the sockets live on.
    let refusals = [
        (1, json!({"type": "transfer", "contact_id": contact, "counsellor_id": eva_id}), "unknown_contact"),
        (0, json!({"type": "transfer", "contact_id": contact, "helpline": "nope"}), "unknown_helpline"),
        (0, json!({"type": "transfer", "contact_id": contact, "counsellor_id": "01a20000-0000-7000-8000-000000000000"}), "not_found"),
        (0, json!({"type": "transfer", "contact_id": contact, "counsellor_id": maria_id}), "not_found"),
        (0, json!({"type": "transfer", "contact_id": contact, "counsellor_id": ana_id}), "bad_field"),
        (0, json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id, "helpline": "children"}), "bad_field"),
        (0, json!({"type": "transfer", "contact_id": contact}), "bad_field"),
        (0, json!({"type": "transfer", "contact_id": contact, "helpline": "children", "warm": true}), "bad_field"),
        (0, json!({"type": "transfer", "contact_id": "no-such-contact", "helpline": "children"}), "unknown_contact"),
        (1, json!({"type": "transfer_accept", "contact_id": contact}), "not_allowed"),
    ];
    for (who, frame, expected) in refusals {
        let ws = if who == 0 { &mut ana } else { &mut ion };
        ws.send(frame.clone()).await;
        assert_eq!(code(until(ws, "error", &[]).await), expected, "{frame}");
    }
    // A colleague who is not connected cannot take it.
    app.add_user("dan", Role::Counsellor, &["children"], &["ro"], 2).await;
    let dan_id = user_id(&app, "dan").await;
    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": dan_id})).await;
    assert_eq!(until(&mut ana, "handover", &[]).await["state"], "failed");
    assert_eq!(code(until(&mut ana, "error", &[]).await), "not_allowed");

    // Warm: a second request while one waits is a conflict; only Ion answers; Ana may cancel.
    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id, "warm": true})).await;
    until(&mut ana, "handover", &[]).await;
    until(&mut ion, "handover", &[]).await;
    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": eva_id, "warm": true})).await;
    assert_eq!(code(until(&mut ana, "error", &[]).await), "conflict");
    eva.send(json!({"type": "transfer_accept", "contact_id": contact})).await;
    assert_eq!(code(until(&mut eva, "error", &[]).await), "not_allowed");
    ana.send(json!({"type": "transfer_accept", "contact_id": contact})).await;
    assert_eq!(code(until(&mut ana, "error", &[]).await), "not_allowed");
    ion.send(json!({"type": "transfer_decline", "contact_id": contact})).await;
    assert_eq!(until(&mut ana, "handover", &[]).await["state"], "declined");
    assert_eq!(until(&mut ion, "handover", &[]).await["state"], "declined");
    ana.send(json!({"type": "transfer", "contact_id": contact, "counsellor_id": ion_id, "warm": true})).await;
    until(&mut ana, "handover", &[]).await;
    until(&mut ion, "handover", &[]).await;
    ana.send(json!({"type": "transfer_cancel", "contact_id": contact})).await;
    assert_eq!(until(&mut ana, "handover", &[]).await["state"], "cancelled");
    assert_eq!(until(&mut ion, "handover", &[]).await["state"], "cancelled");

    // Still Ana's; the caller saw none of it.
    ana.send(json!({"type": "message", "contact_id": contact, "client_id": "a2", "text": "Sunt aici."})).await;
    until(&mut ana, "ack", &[]).await;
    let next = caller.recv().await;
    assert_eq!(next["text"], "Sunt aici.", "{next}");
    for ws in [&mut ana, &mut ion, &mut eva] {
        ws.send(json!({"type": "ping"})).await;
        until(ws, "pong", &[]).await;
    }
    let texts: Vec<String> = app.store.messages().messages_after(&contact, 0).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(texts, ["mi-e frică acasă", "Sunt aici."]);
    let actions = audit_actions(&app, &contact).await;
    for a in ["consult", "consult_denied", "transfer_denied", "transfer_request", "transfer_decline", "transfer_cancel"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

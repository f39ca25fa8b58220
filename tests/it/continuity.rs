//! Continuity between contacts (issue 24) through the real server: the colleagues a counsellor may
//! transfer to or consult; the search of past contacts each role may see (and nothing of another
//! helpline's); links between contacts, audited; a chat caller's anonymous return code that shows her
//! next counsellor her earlier chat, and a database that holds nothing of the code but its keyed hash.

use serde_json::{json, Value};

use crate::helpers::{call, until, Backend, TestApp, Ws};
use helpline::store::users::Role;

crate::on_both_backends!(
    colleagues_say_who_could_take_a_conversation,
    search_and_link_within_the_access_rules,
    a_return_code_shows_her_next_counsellor_her_earlier_chat
);

/// A POST without a bearer (the widget's own REST calls).
async fn public_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).json(&body).send().await.expect("post");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn user_id(app: &TestApp, username: &str) -> String {
    app.store.accounts().user_with_hash(username).await.unwrap().unwrap().0.id
}

/// A chat on `helpline` answered by `counsellor` (available, alone on it): (caller socket, contact id, resume token).
async fn answered(app: &TestApp, counsellor: &mut Ws, helpline: &str, return_code: Option<&str>) -> (Ws, String, String, Option<Value>) {
    let mut caller = app.caller().await;
    let mut start = json!({"type": "start", "helpline": helpline, "language": "ro"});
    if let Some(code) = return_code {
        start["return_code"] = json!(code);
    }
    caller.send(start).await;
    let mut known = None;
    let queued = loop {
        let v = caller.recv().await;
        match v["type"].as_str() {
            Some("return_code") => known = Some(v),
            Some("queued") => break v,
            _ => panic!("expected return_code or queued, got {v}"),
        }
    };
    let contact = queued["contact_id"].as_str().unwrap().to_string();
    let offer = until(counsellor, "offer", &["wrap_up", "wrap_up_ended", "status"]).await;
    assert_eq!(offer["contact_id"], contact.as_str());
    counsellor.send(json!({"type": "accept", "contact_id": contact})).await;
    until(counsellor, "assigned", &[]).await;
    until(&mut caller, "connected", &["position"]).await;
    (
        caller,
        contact,
        queued["resume_token"].as_str().unwrap().to_string(),
        known.map(|k| json!({"known": k["known"], "offer": offer})).or(Some(json!({"offer": offer}))),
    )
}

/// Submits a full form for `contact` as `username`.
async fn submit(app: &TestApp, username: &str, contact: &str, category: &str, risk: &str, summary: &str) {
    let token = app.login(username).await;
    let form = json!({"draft": false, "form": {"caller_type": "person_concerned", "age_group": "10_14", "gender": "female", "district": "Chișinău",
        "categories": [category], "summary": summary, "outcome": "counselling", "risk": risk}});
    let (status, saved) = call(app, &token, "PUT", &format!("/api/v1/contacts/{contact}/form"), Some(form)).await;
    assert_eq!((status, saved["status"].as_str()), (200, Some("submitted")), "{saved}");
}

async fn end(counsellor: &mut Ws, contact: &str) {
    counsellor.send(json!({"type": "end", "contact_id": contact})).await;
    until(counsellor, "contact_ended", &["wrap_up", "wrap_up_ended", "status"]).await;
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap_or_else(|| panic!("a list: {list}")).iter().map(|c| c["contact_id"].as_str().unwrap().to_string()).collect()
}

async fn audit_actions(app: &TestApp, target: &str) -> Vec<String> {
    app.store.audit_log().audit_for(target).await.unwrap().into_iter().map(|(_, a)| a).collect()
}

async fn colleagues_say_who_could_take_a_conversation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("dan", Role::Counsellor, &["family_violence"], &["ro"], 2).await;
    app.add_user("eva", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("sue", Role::Supervisor, &["children"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;
    let (_caller, contact, _, _) = answered(&app, &mut ana, "children", None).await;
    let _ion = app.available_agent("ion").await;
    let _dan = app.available_agent("dan").await;
    let (_eva, _) = app.agent("eva").await; // signed in, but not available

    let token = app.login("ana").await;
    let (status, list) = call(&app, &token, "GET", &format!("/api/v1/colleagues?contact_id={contact}"), None).await;
    assert_eq!(status, 200, "{list}");
    let by_name = |name: &str| list.as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    assert!(by_name("ana display").is_none(), "not herself: {list}");
    let ion = by_name("ion display").expect("ion is signed in");
    assert_eq!((ion["eligible"].as_bool(), ion["status"].as_str()), (Some(true), Some("available")), "{ion}");
    assert_eq!(ion["counsellor_id"], user_id(&app, "ion").await.as_str());
    assert_eq!(by_name("dan display").expect("dan is signed in")["eligible"], false, "another helpline");
    let eva = by_name("eva display").expect("eva is signed in");
    assert_eq!(eva["eligible"], false, "not available: {eva}");
    // Without a contact: who is signed in, none eligible.
    let (_, all) = call(&app, &token, "GET", "/api/v1/colleagues", None).await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(all.as_array().unwrap().iter().all(|c| c["eligible"] == false));
    // A conversation that is not hers: 404, audited; a supervisor: 403.
    let ion_token = app.login("ion").await;
    let (status, body) = call(&app, &ion_token, "GET", &format!("/api/v1/colleagues?contact_id={contact}"), None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_contact")), "{body}");
    assert!(audit_actions(&app, &contact).await.contains(&"colleagues_denied".to_string()));
    let sue = app.login("sue").await;
    assert_eq!(call(&app, &sue, "GET", "/api/v1/colleagues", None).await.0, 403);
}

async fn search_and_link_within_the_access_rules(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 2).await;
    app.add_user("dan", Role::Counsellor, &["family_violence"], &["ro"], 2).await;
    app.add_user("sue", Role::Supervisor, &["children"], &["ro"], 2).await;
    app.add_user("fay", Role::Supervisor, &["family_violence"], &["ro"], 2).await;
    let mut ana = app.available_agent("ana").await;
    let mut dan = app.available_agent("dan").await;

    // Ana's first chat (submitted: school, high risk), Dan's chat on another helpline, Ana's second chat.
    let (_c1, first, _, _) = answered(&app, &mut ana, "children", None).await;
    submit(&app, "ana", &first, "violence.emotional", "high", "Bullied at school; afraid to go back.").await;
    end(&mut ana, &first).await;
    let (_c2, theirs, _, _) = answered(&app, &mut dan, "family_violence", None).await;
    submit(&app, "dan", &theirs, "violence.family", "high", "Violence at home.").await;
    end(&mut dan, &theirs).await;
    let (_c3, second, _, _) = answered(&app, &mut ana, "children", None).await;

    // Ana finds her own contacts only, newest first, with the form's facts.
    let ana_token = app.login("ana").await;
    let (status, found) = call(&app, &ana_token, "GET", "/api/v1/contacts", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(ids(&found), vec![second.clone(), first.clone()]);
    let hit = &found[1];
    assert_eq!((hit["risk"].as_str(), hit["form_status"].as_str()), (Some("high"), Some("submitted")), "{hit}");
    assert_eq!(hit["categories"], json!(["violence.emotional"]));
    assert_eq!(hit["summary"], "Bullied at school; afraid to go back.");
    // Each filter narrows.
    for (query, expected) in [
        ("?risk=high", vec![first.clone()]),
        ("?category=violence.emotional", vec![first.clone()]),
        ("?category=violence.family", vec![]),
        ("?helpline=children&limit=1", vec![second.clone()]),
        ("?from=2000-01-01&to=2000-01-02", vec![]),
        ("?to=2000-01-01", vec![]),
        ("?from=2000-01-01", vec![second.clone(), first.clone()]),
        // Another helpline's: nothing (a counsellor sees what she handled).
        ("?helpline=family_violence", vec![]),
    ] {
        let (status, got) = call(&app, &ana_token, "GET", &format!("/api/v1/contacts{query}"), None).await;
        assert_eq!(status, 200, "{query}: {got}");
        assert_eq!(ids(&got), expected, "{query}");
    }
    for bad in ["?risk=extreme", "?limit=0", "?limit=x", "?from=yesterday", "?from=2026-12-02&to=2026-12-01"] {
        let (status, body) = call(&app, &ana_token, "GET", &format!("/api/v1/contacts{bad}"), None).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")), "{bad}: {body}");
    }
    assert_eq!(call(&app, &ana_token, "GET", "/api/v1/contacts?helpline=nowhere", None).await.0, 404);
    assert!(audit_actions(&app, "contacts").await.contains(&"contact_search".to_string()));

    // A supervisor sees her helplines' contacts, not another's; an admin sees all.
    let sue = app.login("sue").await;
    let (_, got) = call(&app, &sue, "GET", "/api/v1/contacts", None).await;
    assert_eq!(ids(&got), vec![second.clone(), first.clone()]);
    let (_, got) = call(&app, &sue, "GET", "/api/v1/contacts?helpline=family_violence", None).await;
    assert_eq!(ids(&got), Vec::<String>::new());
    let fay = app.login("fay").await;
    let (_, got) = call(&app, &fay, "GET", "/api/v1/contacts", None).await;
    assert_eq!(ids(&got), vec![theirs.clone()]);

    // By case number: Ana opens a case from her first contact.
    let (status, case) = call(&app, &ana_token, "POST", "/api/v1/cases", Some(json!({"contact_id": first}))).await;
    assert_eq!(status, 201, "{case}");
    let number = case["number"].as_str().or(case["case"]["number"].as_str()).unwrap_or_else(|| panic!("a case number: {case}")).to_string();
    let (_, got) = call(&app, &ana_token, "GET", &format!("/api/v1/contacts?case_number={number}"), None).await;
    assert_eq!(ids(&got), vec![first.clone()]);
    assert_eq!(got[0]["case_numbers"], json!([number]));
    let (_, got) = call(&app, &fay, "GET", &format!("/api/v1/contacts?case_number={number}"), None).await;
    assert_eq!(ids(&got), Vec::<String>::new(), "another helpline's case");

    // Ana links her new contact to the earlier one (twice changes nothing); both see the link.
    let (status, links) =
        call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact_id": first}))).await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(ids(&links), vec![first.clone()]);
    assert_eq!(
        (links[0]["earlier"].as_bool(), links[0]["contact"]["summary"].as_str()),
        (Some(true), Some("Bullied at school; afraid to go back."))
    );
    assert_eq!(links[0]["linked_by"], user_id(&app, "ana").await.as_str());
    let (_, again) = call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact_id": first}))).await;
    assert_eq!(again.as_array().unwrap().len(), 1);
    let (status, back) = call(&app, &ana_token, "GET", &format!("/api/v1/contacts/{first}/links"), None).await;
    assert_eq!((status, ids(&back)), (200, vec![second.clone()]));
    assert_eq!(back[0]["earlier"], false);
    assert!(audit_actions(&app, &second).await.contains(&"contact_link".to_string()));
    assert!(audit_actions(&app, &first).await.contains(&"view_links".to_string()));

    // Refusals: a contact she may not see (404, audited), itself, an unknown one, a bad body.
    let (status, body) =
        call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact_id": theirs}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(audit_actions(&app, &theirs).await.contains(&"contact_link_denied".to_string()));
    let (status, _) = call(&app, &ana_token, "GET", &format!("/api/v1/contacts/{theirs}/links"), None).await;
    assert_eq!(status, 404);
    assert_eq!(
        call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact_id": second}))).await.0,
        400
    );
    assert_eq!(call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact": first}))).await.0, 400);
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        call(&app, &ana_token, "POST", &format!("/api/v1/contacts/{second}/links"), Some(json!({"contact_id": unknown}))).await.0,
        404
    );
    // Dan (another helpline) sees neither Ana's contacts nor their links.
    let dan_token = app.login("dan").await;
    assert_eq!(call(&app, &dan_token, "GET", &format!("/api/v1/contacts/{first}/links"), None).await.0, 404);
    let (_, got) = call(&app, &dan_token, "GET", "/api/v1/contacts?helpline=children", None).await;
    assert_eq!(ids(&got), Vec::<String>::new());
    // Fay, supervising the other helpline, sees the link from Dan's side of nothing: Ana's contacts are hidden.
    assert_eq!(call(&app, &fay, "GET", &format!("/api/v1/contacts/{second}/links"), None).await.0, 404);
    assert_eq!(call(&app, &sue, "GET", &format!("/api/v1/contacts/{second}/links"), None).await.0, 200);
}

async fn a_return_code_shows_her_next_counsellor_her_earlier_chat(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 5).await; // every ended chat keeps a slot in wrap-up
    let mut ana = app.available_agent("ana").await;

    // Her first chat, answered, its form submitted, ended.
    let (_caller, first, token, _) = answered(&app, &mut ana, "children", None).await;
    // Not before it ends.
    let (status, body) = public_post(&app, "/api/v1/caller/return-code", json!({"resume_token": token})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_allowed")), "{body}");
    submit(&app, "ana", &first, "violence.emotional", "medium", "Bullied at school; told her teacher.").await;
    end(&mut ana, &first).await;
    let (status, body) = public_post(&app, "/api/v1/caller/return-code", json!({"resume_token": token})).await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 14, "{code}");
    // Once per chat; an unknown token tells nothing.
    let (status, _) = public_post(&app, "/api/v1/caller/return-code", json!({"resume_token": token})).await;
    assert_eq!(status, 409);
    let (status, _) = public_post(&app, "/api/v1/caller/return-code", json!({"resume_token": "nope"})).await;
    assert_eq!(status, 401);

    // A wrong code: she is told it is not known, and her counsellor sees nothing earlier.
    let (_c, other, _, seen) = answered(&app, &mut ana, "children", Some("ABCD-EFGH-JKMN")).await;
    let seen = seen.unwrap();
    assert_eq!(seen["known"], false, "{seen}");
    assert!(seen["offer"].get("earlier").is_none(), "{seen}");
    end(&mut ana, &other).await;

    // Her later chat with the code (typed in lower case, without dashes): known, and the offer shows
    // the earlier chat's summary, audited as a read of its form by the counsellor offered it.
    let typed = code.replace('-', " ").to_lowercase();
    let (_c, later, later_token, seen) = answered(&app, &mut ana, "children", Some(&typed)).await;
    let seen = seen.unwrap();
    assert_eq!(seen["known"], true, "{seen}");
    let earlier = &seen["offer"]["earlier"];
    assert_eq!(earlier.as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(earlier[0]["contact_id"], first.as_str());
    assert_eq!(earlier[0]["summary"], "Bullied at school; told her teacher.");
    assert_eq!(earlier[0]["risk"], "medium");
    let reads = app.store.audit_log().audit_for(&first).await.unwrap();
    assert!(reads.iter().any(|(_, a)| a == "form_read"), "{reads:?}");
    // This chat keeps the same code: asking for another is refused.
    end(&mut ana, &later).await;
    let (status, _) = public_post(&app, "/api/v1/caller/return-code", json!({"resume_token": later_token})).await;
    assert_eq!(status, 409);
    // A third chat with the code sees both earlier ones, newest first.
    submit(&app, "ana", &later, "violence.emotional", "low", "Came back: things are better.").await;
    let (_c, _third, _, seen) = answered(&app, &mut ana, "children", Some(&code)).await;
    assert_eq!(ids(&seen.unwrap()["offer"]["earlier"]), vec![later.clone(), first.clone()]);

    // The database holds no plain code, in any spelling: only keyed hashes.
    let plain = code.replace('-', "");
    for (what, bytes) in crate::secrets::database_bytes(&app).await {
        for spelling in [code.as_str(), plain.as_str(), &plain.to_lowercase()] {
            assert!(!crate::secrets::contains(&bytes, spelling.as_bytes()), "{spelling:?} found in the {what}");
        }
    }
    let hashes = crate::abuse::sql_text(&app, &format!("SELECT code_hash FROM return_codes WHERE contact_id = '{first}'")).await;
    assert_eq!(hashes.len(), 64, "a keyed hash: {hashes}");
}

//! Retention for every class (issue 27): each helpline's periods for conversations, contact forms,
//! call records and closed cases, and the audit log pruned from its head; an open case holds what it
//! holds (legal hold); the audit chain still verifies. The periods are set with the command line, the
//! run is the server's own (`run_all`, with the server's clock moved ahead), on both backends.

use helpline::safety::retention::{run_all, Policy};
use helpline::store::users::Role;
use serde_json::json;

use crate::abuse::{get, helpline_cli, post, sql_execute};
use crate::helpers::{Backend, TestApp};
use crate::privacy::chat_with_messages;

crate::on_both_backends!(every_class_goes_after_its_period_and_open_cases_hold_theirs, a_helplines_periods_over_rest);

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn every_class_goes_after_its_period_and_open_cases_hold_theirs(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut ana = app.available_agent("ana").await;
    let token = app.login("ana").await;
    // Three chats: one on its own, one in an open case, one in a case that will be closed.
    let alone = chat_with_messages(&app, &mut ana, "singur").await;
    let held = chat_with_messages(&app, &mut ana, "in caz deschis").await;
    let closed_contact = chat_with_messages(&app, &mut ana, "in caz inchis").await;
    for id in [&alone, &held, &closed_contact] {
        let res = app
            .http
            .put(app.url(&format!("/api/v1/contacts/{id}/form")))
            .bearer_auth(&token)
            .json(&json!({"draft": true, "form": {"summary": "SUMMARY"}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        // A call record (as an exchange's would be), to see the call records' period at work.
        sql_execute(&app, &format!("INSERT INTO calls (contact_id, call_id, offered_at) VALUES ('{id}', 'call-{id}', 1)")).await;
    }
    let mut cases = Vec::new();
    for id in [&held, &closed_contact] {
        let (status, case) = post(&app, &token, "/api/v1/cases", json!({"contact_id": id, "district": "Cahul"})).await;
        assert_eq!(status, 201, "{case}");
        let case_id = case["id"].as_str().or(case["case"]["id"].as_str()).unwrap().to_string();
        let res = app
            .http
            .put(app.url(&format!("/api/v1/cases/{case_id}/person")))
            .bearer_auth(&token)
            .json(&json!({"full_name": "Ion Popescu"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        cases.push(case_id);
    }
    let (open_case, closed_case) = (cases[0].clone(), cases[1].clone());
    sql_execute(&app, &format!("UPDATE cases SET stage = 'closed' WHERE id = '{closed_case}'")).await;

    // The periods, per helpline, with the command line (audited); `show` lists them.
    let (code, out) = helpline_cli(
        &app,
        &["retention", "set", "children", "--conversations-days", "30", "--forms-days", "30", "--calls-days", "30", "--cases-days", "30"],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = helpline_cli(&app, &["retention", "set", "pizza", "--forms-days", "1"]).await;
    assert!(code != Some(0) && out.contains("unknown helpline"), "{out}");
    let (_, out) = helpline_cli(&app, &["retention", "show"]).await;
    let line = out.lines().find(|l| l.starts_with("children")).unwrap_or_default();
    assert!(line.contains("forms 30 d") && line.contains("closed cases 30 d"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("disability") && l.contains("forms keep")), "{out}");

    // Ten days on, nothing is due.
    let now = app.clock.now_ms();
    let policy = Policy { conversation_days: None, audit_days: Some(20) };
    let t = run_all(&app.store, now + 10 * DAY_MS, policy, |_| {}).await.unwrap();
    assert_eq!(t, Default::default());
    let calls = |id: String| {
        let store = app.store.clone();
        async move { store.calls().call_record(&id).await.unwrap().is_some() }
    };
    assert!(calls(alone.clone()).await);

    // Forty days on: the lone contact's conversation, form and call record go; the open case's contact
    // keeps everything; the closed case's content goes (its row stays); the audit log loses its head.
    let audit_before = app.store.audit_log().verify_audit_chain().await.unwrap().lines;
    let mut progress = Vec::new();
    let t = run_all(&app.store, now + 40 * DAY_MS, policy, |l| progress.push(l)).await.unwrap();
    assert_eq!((t.conversations.contacts, t.forms, t.calls, t.cases), (1, 1, 1, 1), "{t:?} {progress:?}");
    assert!(t.audit_lines > 0 && audit_before > 0, "{t:?}");
    assert!(progress.iter().any(|l| l.contains("audit lines pruned")), "{progress:?}");
    assert!(app.store.messages().messages_after(&alone, 0).await.unwrap().is_empty());
    assert!(app.store.forms().form(&alone).await.unwrap().is_none());
    assert!(!calls(alone.clone()).await);
    assert_eq!(app.store.messages().messages_after(&held, 0).await.unwrap().len(), 2, "legal hold of the open case");
    assert!(app.store.forms().form(&held).await.unwrap().is_some());
    assert!(calls(held.clone()).await);
    assert!(app.store.retention().case_purged_at(&open_case).await.unwrap().is_none());
    assert!(app.store.cases().case_person(&open_case).await.unwrap().full_name.is_some());
    assert!(app.store.retention().case_purged_at(&closed_case).await.unwrap().is_some());
    assert!(app.store.cases().case_person(&closed_case).await.unwrap().full_name.is_none());
    assert!(app.store.cases().case(&closed_case).await.unwrap().is_some(), "the closed case's row stays");
    // The chain verifies from its anchor; the run left its own line.
    let report = app.store.audit_log().verify_audit_chain().await.unwrap();
    assert!(report.intact(), "{report:?}");
    let (code, out) = helpline_cli(&app, &["audit", "verify"]).await;
    assert_eq!(code, Some(0), "{out}");
    // A second run finds nothing more of these classes (the closed case's contact is free now: its
    // conversation goes with the next run, like any contact without a case).
    let t = run_all(&app.store, now + 40 * DAY_MS, Policy::default(), |_| {}).await.unwrap();
    assert_eq!((t.forms, t.calls, t.cases), (1, 1, 0), "the closed case's contact's form and call record: {t:?}");

    // The command runs every class, with progress.
    let (code, out) = helpline_cli(&app, &["retention", "--days", "30"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("retention: deleted the conversations of"), "{out}");
}

/// `GET`/`PUT /api/v1/helplines/{name}/retention`: admins set, the helpline's supervisors read,
/// counsellors neither; out-of-range periods named; the command line sees the same periods.
async fn a_helplines_periods_over_rest(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["en"], 1).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let (root, maria, ana) = (app.login("root").await, app.login("maria").await, app.login("ana").await);
    let put = |token: &str, name: &str, body: serde_json::Value| {
        let req = app.http.put(app.url(&format!("/api/v1/helplines/{name}/retention"))).bearer_auth(token).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let periods = json!({"conversations_days": 90, "forms_days": 365, "calls_days": null, "cases_days": 1825});
    let (status, body) = put(&root, "children", periods.clone()).await;
    assert_eq!((status, &body), (200, &periods));
    assert_eq!(get(&app, &maria, "/api/v1/helplines/children/retention").await, (200, periods.clone()));
    assert_eq!(get(&app, &maria, "/api/v1/helplines/disability/retention").await.0, 403, "not her helpline");
    assert_eq!(get(&app, &ana, "/api/v1/helplines/children/retention").await.0, 403);
    assert_eq!(put(&maria, "children", periods.clone()).await.0, 403, "admins only");
    assert_eq!(put(&root, "pizza", periods.clone()).await.0, 404);
    let (status, body) = put(&root, "children", json!({"forms_days": 0})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_settings")), "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("forms_days"), "{body}");
    assert_eq!(put(&root, "children", json!({"forms_days": 1, "colour": "red"})).await.0, 400);
    // Audited, and the command line reads the same periods.
    let root_id = app.store.accounts().user_with_hash("root").await.unwrap().unwrap().0.id;
    let trail = app.store.audit_log().audit_for("children").await.unwrap();
    assert!(trail.iter().any(|(actor, action)| action == "retention_set" && *actor == root_id), "{trail:?}");
    let (_, out) = helpline_cli(&app, &["retention", "show"]).await;
    let line = out.lines().find(|l| l.starts_with("children")).unwrap_or_default().to_string();
    assert!(line.contains("conversations 90 d") && line.contains("calls keep") && line.contains("closed cases 1825 d"), "{out}");
    let (code, out) = helpline_cli(&app, &["retention", "set", "children", "--forms-days", "99999"]).await;
    assert!(code != Some(0) && out.contains("forms_days"), "{out}");
}

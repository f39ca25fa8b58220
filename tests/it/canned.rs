//! Canned responses over REST (issue 23): supervisors of a helpline (and admins) write them, audited;
//! counsellors read those of the helplines they serve; a supervisor of another helpline neither sees
//! nor changes them (403 for a helpline named, 404 for a response); bad input answered by code.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::call;
use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(canned_responses_crud_scope_and_audit, canned_responses_refuse_bad_input);

const PATH: &str = "/api/v1/canned-responses";

async fn people(app: &TestApp) {
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("vera", Role::CaseManager, &[], &["ro"], 1).await;
}

fn titles(list: &Value) -> Vec<String> {
    list["canned_responses"].as_array().expect("a list").iter().map(|c| c["title"].as_str().expect("title").to_string()).collect()
}

async fn canned_responses_crud_scope_and_audit(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    let (ana, ion, maria, petru, root, vera) = (
        app.login("ana").await,
        app.login("ion").await,
        app.login("maria").await,
        app.login("petru").await,
        app.login("root").await,
        app.login("vera").await,
    );

    // maria writes for her helpline, in two of its languages.
    let greeting =
        json!({"helpline": "family_violence", "language": "ro", "title": "Salut", "body": "Bună, sunt aici. Ești în siguranță acum?"});
    let (status, created) = call(&app, &maria, "POST", PATH, Some(greeting)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!((created["helpline"].as_str(), created["language"].as_str()), (Some("family_violence"), Some("ro")));
    assert_eq!(created["body"], "Bună, sunt aici. Ești în siguranță acum?");
    let ru = json!({"helpline": "family_violence", "language": "ru", "title": "Привет", "body": "Здравствуйте, я здесь."});
    assert_eq!(call(&app, &maria, "POST", PATH, Some(ru)).await.0, 201);
    // The admin writes for another helpline.
    let children = json!({"helpline": "children", "language": "ro", "title": "Bun venit", "body": "Salut! Cu ce te pot ajuta?"});
    assert_eq!(call(&app, &root, "POST", PATH, Some(children.clone())).await.0, 201);

    // Not maria's helpline, nor a counsellor's or a case manager's to write: 403, nothing stored.
    let (status, answer) = call(&app, &maria, "POST", PATH, Some(children.clone())).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")), "{answer}");
    for token in [&ana, &vera] {
        let (status, answer) =
            call(&app, token, "POST", PATH, Some(json!({"helpline": "family_violence", "language": "ro", "title": "x", "body": "y"})))
                .await;
        assert_eq!(status, 403, "{answer}");
    }

    // Reading: each counsellor those of the helplines she serves; supervisors theirs; admins all.
    let (status, list) = call(&app, &ana, "GET", PATH, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(titles(&list), ["Salut", "Привет"]);
    let (_, list) = call(&app, &ana, "GET", &format!("{PATH}?language=ro"), None).await;
    assert_eq!(titles(&list), ["Salut"], "filtered by language");
    let (_, list) = call(&app, &ion, "GET", PATH, None).await;
    assert_eq!(titles(&list), ["Bun venit"], "ion serves children only");
    let (status, answer) = call(&app, &ion, "GET", &format!("{PATH}?helpline=family_violence"), None).await;
    assert_eq!(status, 403, "not ion's helpline: {answer}");
    let (_, list) = call(&app, &petru, "GET", PATH, None).await;
    assert!(!list.to_string().contains(&id), "petru sees nothing of family_violence: {list}");
    let (_, list) = call(&app, &maria, "GET", &format!("{PATH}?helpline=family_violence&language=ru"), None).await;
    assert_eq!(titles(&list), ["Привет"]);
    let (_, list) = call(&app, &root, "GET", PATH, None).await;
    assert_eq!(titles(&list).len(), 3, "the admin sees every helpline's: {list}");
    assert_eq!(call(&app, &vera, "GET", PATH, None).await.0, 403, "case managers have no console");

    // A supervisor of another helpline cannot change or delete it: 404, as if it did not exist.
    let change = json!({"helpline": "family_violence", "language": "ro", "title": "Salut", "body": "schimbat de petru"});
    let (status, answer) = call(&app, &petru, "PUT", &format!("{PATH}/{id}"), Some(change)).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")), "{answer}");
    assert_eq!(call(&app, &petru, "DELETE", &format!("{PATH}/{id}"), None).await.0, 404);
    assert_eq!(call(&app, &ana, "DELETE", &format!("{PATH}/{id}"), None).await.0, 403, "counsellors do not delete");
    // Nor may maria move it into a helpline she does not supervise.
    let moved = json!({"helpline": "children", "language": "ro", "title": "Salut", "body": "mutat"});
    assert_eq!(call(&app, &maria, "PUT", &format!("{PATH}/{id}"), Some(moved)).await.0, 403);
    let (_, list) = call(&app, &ana, "GET", &format!("{PATH}?language=ro"), None).await;
    assert_eq!(list["canned_responses"][0]["body"], "Bună, sunt aici. Ești în siguranță acum?", "untouched");

    // maria changes it; the admin deletes it.
    let change = json!({"helpline": "family_violence", "language": "ro", "title": "Salut (scurt)", "body": "Bună, sunt aici."});
    let (status, updated) = call(&app, &maria, "PUT", &format!("{PATH}/{id}"), Some(change)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["id"].as_str(), updated["title"].as_str()), (Some(id.as_str()), Some("Salut (scurt)")));
    let (_, list) = call(&app, &ana, "GET", &format!("{PATH}?language=ro"), None).await;
    assert_eq!(titles(&list), ["Salut (scurt)"]);
    assert_eq!(call(&app, &root, "DELETE", &format!("{PATH}/{id}"), None).await.0, 204);
    let (_, list) = call(&app, &ana, "GET", &format!("{PATH}?language=ro"), None).await;
    assert_eq!(titles(&list), Vec::<String>::new(), "deleted");
    assert_eq!(call(&app, &root, "DELETE", &format!("{PATH}/{id}"), None).await.0, 404, "gone");
    let gone = json!({"helpline": "family_violence", "language": "ro", "title": "x", "body": "y"});
    assert_eq!(call(&app, &maria, "PUT", &format!("{PATH}/{id}"), Some(gone)).await.0, 404);

    // Every write audited, and petru's refused attempt too.
    let actions: Vec<String> = app.store.audit_log().audit_for(&id).await.expect("audit").into_iter().map(|(_, a)| a).collect();
    for action in ["canned_create", "canned_update", "canned_delete", "canned_update_denied", "canned_delete_denied"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

async fn canned_responses_refuse_bad_input(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    people(&app).await;
    let maria = app.login("maria").await;
    let long_title = "t".repeat(81);
    let long_body = "b".repeat(2001);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"helpline": "family_violence", "language": "ro", "title": "  ", "body": "text"}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "ro", "title": "Title", "body": ""}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "ro", "title": long_title, "body": "text"}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "ro", "title": "Title", "body": long_body}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "xx", "title": "Title", "body": "text"}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "ro", "title": "Title"}), 400, "bad_field"),
        (json!({"helpline": "family_violence", "language": "ro", "title": "Title", "body": "text", "extra": 1}), 400, "bad_field"),
        (json!({"helpline": "nowhere", "language": "ro", "title": "Title", "body": "text"}), 404, "unknown_helpline"),
        (json!(["not", "an", "object"]), 400, "bad_field"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = call(&app, &maria, "POST", PATH, Some(body.clone())).await;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{body} → {answer}");
    }
    // Not JSON at all.
    let res = app.http.post(app.url(PATH)).bearer_auth(&maria).body("{title").send().await.expect("request");
    assert_eq!(res.status().as_u16(), 400);
    // Without a token.
    let res = app.http.get(app.url(PATH)).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let (_, list) = call(&app, &maria, "GET", PATH, None).await;
    assert_eq!(titles(&list), Vec::<String>::new(), "nothing stored");
}

//! The admin page's REST routes (issue 27): accounts listed, created, changed, disabled and enabled by
//! admins, one-time password reset codes redeemed by their owners, every change audited; refusals by
//! stable code (an empty username, a bad role, an unknown helpline, the last admin); anyone else 403.
//! The dialled-number map, the gateways (a token shown once, revoked) and a helpline's own contact-form
//! categories over REST, the same way.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{call, Backend, TestApp};

crate::on_both_backends!(
    accounts_are_created_changed_and_disabled_by_admins_only,
    a_reset_code_sets_a_password_once_before_it_expires,
    numbers_gateways_and_categories_by_admins_only,
    user_edit_and_reset_on_the_command_line
);

async fn people(app: &TestApp) -> (String, String, String) {
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children", "disability", "family_violence"], &["ro"], 3).await;
    (app.login("root").await, app.login("ana").await, app.login("maria").await)
}

/// Signs in with a password: the status.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> u16 {
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login");
    res.status().as_u16()
}

/// The actions of the audit log's lines about `target`, newest first.
async fn audited(app: &TestApp, root: &str, target: &str) -> Vec<String> {
    let (status, body) = call(app, root, "GET", &format!("/api/v1/audit?target={target}&limit=100"), None).await;
    assert_eq!(status, 200, "{body}");
    body["lines"].as_array().expect("lines").iter().map(|l| l["action"].as_str().unwrap_or_default().to_string()).collect()
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["code"].as_str())
}

async fn accounts_are_created_changed_and_disabled_by_admins_only(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (root, ana, maria) = people(&app).await;

    // Only admins: a counsellor and a supervisor are refused every route, and the refusal is audited.
    for token in [&ana, &maria] {
        assert_eq!(call(&app, token, "GET", "/api/v1/users", None).await.0, 403);
        assert_eq!(call(&app, token, "GET", "/api/v1/users/ana", None).await.0, 403);
        assert_eq!(call(&app, token, "POST", "/api/v1/users", Some(json!({"username": "x", "role": "admin"}))).await.0, 403);
        assert_eq!(call(&app, token, "PATCH", "/api/v1/users/ana", Some(json!({"role": "admin"}))).await.0, 403);
        assert_eq!(call(&app, token, "POST", "/api/v1/users/ana/reset", None).await.0, 403);
    }
    assert!(audited(&app, &root, "ana").await.iter().any(|a| a == "user_edit_denied"), "the refusal is audited");

    // Created with a password: she signs in with it.
    let dana = json!({"username": "dana", "password": "a long passphrase", "role": "counsellor", "display_name": "Dana P.",
        "helplines": ["children"], "backup_helplines": ["disability"], "languages": ["ro", "ru"], "capacity": 2, "extension": "204"});
    let (status, created) = call(&app, &root, "POST", "/api/v1/users", Some(dana)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["reset"], Value::Null, "a password was given: no code");
    let account = &created["account"];
    assert_eq!(
        (account["username"].as_str(), account["display_name"].as_str(), account["role"].as_str()),
        (Some("dana"), Some("Dana P."), Some("counsellor"))
    );
    assert_eq!((account["capacity"].as_i64(), account["extension"].as_str()), (Some(2), Some("204")));
    assert_eq!(account["backup_helplines"], json!(["disability"]));
    assert_eq!(sign_in(&app, "dana", "a long passphrase").await, 200);
    let id = account["id"].as_str().expect("id").to_string();

    // Refusals, each by its stable code; nothing is created.
    let refuse = |body: Value| call(&app, &root, "POST", "/api/v1/users", Some(body));
    let empty = refuse(json!({"username": "  ", "role": "counsellor"})).await;
    assert_eq!((code(&empty), empty.1["field"].as_str()), ((422, Some("invalid_account")), Some("username")), "{}", empty.1);
    let role = refuse(json!({"username": "eve", "role": "boss"})).await;
    assert_eq!((code(&role), role.1["field"].as_str()), ((422, Some("invalid_account")), Some("role")), "{}", role.1);
    assert_eq!(code(&refuse(json!({"username": "eve", "helplines": ["pizza"]})).await), (404, Some("unknown_helpline")));
    assert_eq!(code(&refuse(json!({"username": "eve", "capacity": 0})).await).1, Some("invalid_account"));
    assert_eq!(code(&refuse(json!({"username": "eve", "languages": ["Romanian"]})).await).1, Some("invalid_account"));
    assert_eq!(code(&refuse(json!({"username": "eve", "password": "short"})).await), (422, Some("weak_password")));
    assert_eq!(code(&refuse(json!({"username": "eve", "colour": "red"})).await), (400, Some("bad_field")), "unknown fields are refused");
    assert_eq!(code(&refuse(json!({"username": "dana"})).await), (409, Some("conflict")));
    let (_, list) = call(&app, &root, "GET", "/api/v1/users", None).await;
    let names: Vec<&str> = list["accounts"].as_array().expect("accounts").iter().filter_map(|a| a["username"].as_str()).collect();
    assert_eq!(names, ["ana", "dana", "maria", "root"], "nothing created by the refusals");

    // Changed: only the fields given; an extension taken away with null.
    let change = json!({"helplines": ["family_violence"], "languages": ["ro", "uk"], "capacity": 4, "extension": null, "senior": true});
    let (status, changed) = call(&app, &root, "PATCH", "/api/v1/users/Dana", Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["helplines"].clone(), changed["languages"].clone()), (json!(["family_violence"]), json!(["ro", "uk"])));
    assert_eq!(
        (changed["capacity"].as_i64(), changed["extension"].clone(), changed["senior"].as_bool()),
        (Some(4), Value::Null, Some(true))
    );
    assert_eq!(changed["backup_helplines"], json!(["disability"]), "untouched");
    let (_, vera) =
        call(&app, &root, "PATCH", "/api/v1/users/dana", Some(json!({"role": "case_manager", "districts": ["Orhei", "Ungheni"]}))).await;
    assert_eq!((vera["role"].as_str(), vera["districts"].clone()), (Some("case_manager"), json!(["Orhei", "Ungheni"])));
    let (_, read) = call(&app, &root, "GET", "/api/v1/users/dana", None).await;
    assert_eq!(read["districts"], json!(["Orhei", "Ungheni"]));
    assert_eq!(
        code(&call(&app, &root, "PATCH", "/api/v1/users/dana", Some(json!({"backup_helplines": ["nowhere"]}))).await),
        (404, Some("unknown_helpline"))
    );
    assert_eq!(code(&call(&app, &root, "PATCH", "/api/v1/users/dana", Some(json!({"capacity": 51}))).await).1, Some("invalid_account"));
    assert_eq!(code(&call(&app, &root, "PATCH", "/api/v1/users/nobody", Some(json!({"capacity": 2}))).await).0, 404);

    // Disabled: she cannot sign in; enabled: she can again.
    let (_, off) = call(&app, &root, "PATCH", "/api/v1/users/dana", Some(json!({"disabled": true}))).await;
    assert_eq!(off["disabled"], true);
    assert_eq!(sign_in(&app, "dana", "a long passphrase").await, 401);
    call(&app, &root, "PATCH", "/api/v1/users/dana", Some(json!({"disabled": false}))).await;
    assert_eq!(sign_in(&app, "dana", "a long passphrase").await, 200);

    // The last enabled admin is neither disabled nor demoted; with a second one, she may be.
    assert_eq!(code(&call(&app, &root, "PATCH", "/api/v1/users/root", Some(json!({"disabled": true}))).await), (409, Some("last_admin")));
    assert_eq!(
        code(&call(&app, &root, "PATCH", "/api/v1/users/root", Some(json!({"role": "supervisor"}))).await),
        (409, Some("last_admin"))
    );
    assert_eq!(call(&app, &root, "PATCH", "/api/v1/users/maria", Some(json!({"role": "admin"}))).await.0, 200);
    assert_eq!(call(&app, &root, "PATCH", "/api/v1/users/root", Some(json!({"role": "supervisor"}))).await.0, 200);

    // Every change is audited, by whom.
    let maria = app.login("maria").await;
    let actions = audited(&app, &maria, &id).await;
    for action in ["user_add", "user_edit", "user_disable", "user_enable"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
    }
}

async fn a_reset_code_sets_a_password_once_before_it_expires(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (root, ana, _) = people(&app).await;
    let redeem = |code: String, password: &str| {
        let body = json!({"code": code, "password": password});
        let req = app.http.post(app.url("/api/v1/auth/reset")).json(&body);
        async move {
            let res = req.send().await.expect("reset");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Created without a password: the answer carries her first code; no password signs her in before it.
    let (status, created) =
        call(&app, &root, "POST", "/api/v1/users", Some(json!({"username": "eve", "role": "supervisor", "helplines": ["children"]}))).await;
    assert_eq!(status, 201, "{created}");
    let first = created["reset"]["code"].as_str().expect("a code").to_string();
    assert!(created["reset"]["link"].as_str().expect("link").starts_with("/reset#"), "{created}");
    // A weak password leaves the code unused; then the code sets hers, once.
    assert_eq!(code(&redeem(first.clone(), "short").await), (422, Some("weak_password")));
    assert_eq!(redeem(first.to_lowercase(), "a brand new passphrase of hers").await.0, 204, "any case");
    assert_eq!(sign_in(&app, "eve", "a brand new passphrase of hers").await, 200);
    assert_eq!(code(&redeem(first.clone(), "another long passphrase").await), (422, Some("invalid_reset_code")), "used once");
    assert_eq!(code(&redeem("ABCD-EFGH".into(), "another long passphrase").await), (422, Some("invalid_reset_code")));

    // ana's reset: her password works until she uses the code; then only the new one, and her sessions end.
    let (status, reset) = call(&app, &root, "POST", "/api/v1/users/ana/reset", None).await;
    assert_eq!(status, 201, "{reset}");
    let code_ana = reset["code"].as_str().expect("code").to_string();
    assert_eq!(sign_in(&app, "ana", "ana-password").await, 200, "untouched until used");
    assert_eq!(call(&app, &ana, "GET", "/api/v1/me", None).await.0, 200);
    // A second code voids the first.
    let (_, again) = call(&app, &root, "POST", "/api/v1/users/ana/reset", None).await;
    let second = again["code"].as_str().expect("code").to_string();
    assert_eq!(code(&redeem(code_ana, "the counsellor's second passphrase").await).1, Some("invalid_reset_code"), "voided by the second");
    assert_eq!(redeem(second, "the counsellor's second passphrase").await.0, 204);
    assert_eq!(sign_in(&app, "ana", "ana-password").await, 401);
    assert_eq!(sign_in(&app, "ana", "the counsellor's second passphrase").await, 200);
    assert_eq!(call(&app, &ana, "GET", "/api/v1/me", None).await.0, 401, "her sessions ended");
    assert_eq!(code(&call(&app, &root, "POST", "/api/v1/users/nobody/reset", None).await).0, 404);

    // An expired code does nothing.
    let ana_id = app.store.accounts().user_with_hash("ana").await.expect("read").expect("ana").0.id;
    let now = helpline::clock::Clock::new().now_ms();
    let old = helpline::auth::accounts::new_reset_code();
    app.store
        .accounts()
        .create_reset(&ana_id, &helpline::auth::accounts::reset_code_hash(&old), "test", now - 100_000, now - 1)
        .await
        .expect("stored");
    assert_eq!(code(&redeem(old, "a third long passphrase").await), (422, Some("invalid_reset_code")), "expired");
    assert_eq!(sign_in(&app, "ana", "the counsellor's second passphrase").await, 200, "unchanged");

    let actions = audited(&app, &root, &ana_id).await;
    for action in ["password_reset_code", "password_reset_redeemed"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
    }
}

async fn numbers_gateways_and_categories_by_admins_only(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let (root, ana, maria) = people(&app).await;
    for token in [&ana, &maria] {
        assert_eq!(call(&app, token, "GET", "/api/v1/dialled-numbers", None).await.0, 403);
        assert_eq!(call(&app, token, "PUT", "/api/v1/dialled-numbers/116111", Some(json!({"helpline": "children"}))).await.0, 403);
        assert_eq!(call(&app, token, "GET", "/api/v1/gateways", None).await.0, 403);
        assert_eq!(call(&app, token, "POST", "/api/v1/gateways", Some(json!({"name": "pbx"}))).await.0, 403);
        let cats = json!({"categories": [{"code": "x", "label": "X"}]});
        assert_eq!(call(&app, token, "PUT", "/api/v1/helplines/children/taxonomy", Some(cats)).await.0, 403);
    }

    // The dialled-number map.
    let (status, set) =
        call(&app, &root, "PUT", "/api/v1/dialled-numbers/+373%20800%2011%20116", Some(json!({"helpline": "family_violence"}))).await;
    assert_eq!((status, set["number"].as_str()), (200, Some("37380011116")), "{set}");
    assert_eq!(
        code(&call(&app, &root, "PUT", "/api/v1/dialled-numbers/555", Some(json!({"helpline": "pizza"}))).await),
        (404, Some("unknown_helpline"))
    );
    assert_eq!(
        code(&call(&app, &root, "PUT", "/api/v1/dialled-numbers/abc", Some(json!({"helpline": "children"}))).await),
        (400, Some("bad_field"))
    );
    let (_, map) = call(&app, &root, "GET", "/api/v1/dialled-numbers", None).await;
    assert!(
        map["numbers"].as_array().expect("numbers").iter().any(|n| n["number"] == "37380011116" && n["helpline"] == "family_violence"),
        "{map}"
    );
    assert_eq!(call(&app, &root, "DELETE", "/api/v1/dialled-numbers/37380011116", None).await.0, 204);
    assert_eq!(call(&app, &root, "DELETE", "/api/v1/dialled-numbers/37380011116", None).await.0, 404);
    assert!(audited(&app, &root, "37380011116").await.iter().any(|a| a == "number_set"));

    // A gateway: its token shown once works at the webhook until it is revoked.
    let (status, made) = call(&app, &root, "POST", "/api/v1/gateways", Some(json!({"name": "asterisk-chisinau"}))).await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().expect("token").to_string();
    let (_, listed) = call(&app, &root, "GET", "/api/v1/gateways", None).await;
    assert!(!listed.to_string().contains(&token), "the token is never shown again");
    assert_eq!(
        code(&call(&app, &root, "POST", "/api/v1/gateways", Some(json!({"name": "asterisk-chisinau"}))).await),
        (409, Some("conflict"))
    );
    assert_eq!(code(&call(&app, &root, "POST", "/api/v1/gateways", Some(json!({"name": "Bad Name"}))).await), (400, Some("bad_field")));
    let webhook = |token: String| {
        let req = app.http.post(app.url("/api/v1/telephony/events")).bearer_auth(token).json(&json!({"events": []}));
        async move { req.send().await.expect("webhook").status().as_u16() }
    };
    assert_eq!(webhook(token.clone()).await, 400, "the new token is taken (the body is then refused)");
    assert_eq!(call(&app, &root, "POST", "/api/v1/gateways/asterisk-chisinau/revoke", None).await.0, 204);
    assert_eq!(webhook(token).await, 401, "revoked");
    assert_eq!(call(&app, &root, "POST", "/api/v1/gateways/nowhere/revoke", None).await.0, 404);

    // A helpline's own categories: the form offers them from then on, and checks against them.
    let cats = json!({"categories": [{"code": "violence.physical", "label": "Violence: physical"}, {"code": "bullying_online", "label": "Bullying online"}]});
    let (status, taxonomy) = call(&app, &root, "PUT", "/api/v1/helplines/children/taxonomy", Some(cats)).await;
    assert_eq!((status, taxonomy["own_categories"].as_bool()), (200, Some(true)), "{taxonomy}");
    let (_, seen) = call(&app, &ana, "GET", "/api/v1/helplines/children/taxonomy", None).await;
    let codes: Vec<&str> = seen["categories"].as_array().expect("categories").iter().filter_map(|c| c["code"].as_str()).collect();
    assert_eq!(codes, ["violence.physical", "bullying_online"]);
    let (_, other) = call(&app, &ana, "GET", "/api/v1/helplines/disability/taxonomy", None).await;
    assert_eq!(other["own_categories"], false, "another helpline keeps the built-in ones");
    let twice = json!({"categories": [{"code": "a", "label": "A"}, {"code": "a", "label": "B"}]});
    assert_eq!(code(&call(&app, &root, "PUT", "/api/v1/helplines/children/taxonomy", Some(twice)).await), (400, Some("bad_field")));
    assert_eq!(
        code(&call(&app, &root, "PUT", "/api/v1/helplines/children/taxonomy", Some(json!({"categories": []}))).await),
        (400, Some("bad_field"))
    );
    assert_eq!(
        code(
            &call(&app, &root, "PUT", "/api/v1/helplines/pizza/taxonomy", Some(json!({"categories": [{"code": "a", "label": "A"}]}))).await
        )
        .1,
        Some("unknown_helpline")
    );
    assert!(audited(&app, &root, "children").await.iter().any(|a| a == "taxonomy_set"));
}

async fn user_edit_and_reset_on_the_command_line(backend: Backend) {
    use crate::cli::helpline;
    let Some(db) = crate::helpers::TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let code = tokio::task::spawn_blocking(move || {
        let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(helpline(&url, &["migrate"], None).status.success());
        for (username, role) in [("root", "admin"), ("dana", "counsellor")] {
            let o = helpline(
                &url,
                &["user", "add", "--username", username, "--role", role, "--helplines", "children", "--password-stdin"],
                Some("correct horse battery staple 42\n"),
            );
            assert!(o.status.success(), "{}", text(&o));
        }
        let edit = [
            "user",
            "edit",
            "--username",
            "Dana",
            "--helplines",
            "disability",
            "--backup-helplines",
            "children",
            "--capacity",
            "2",
            "--extension",
            "205",
            "--languages",
            "ro,uk",
        ];
        let o = helpline(&url, &edit, None);
        assert!(
            o.status.success()
                && text(&o).contains(
                    "changed dana (counsellor): helplines disability (backup children), languages ro,uk, capacity 2, extension 205"
                ),
            "{}",
            text(&o)
        );
        let o = helpline(&url, &["user", "edit", "--username", "dana", "--helplines", "pizza"], None);
        assert!(!o.status.success() && text(&o).contains("unknown helpline"), "{}", text(&o));
        let o = helpline(&url, &["user", "edit", "--username", "dana", "--capacity", "0"], None);
        assert!(!o.status.success() && text(&o).contains("capacity"), "{}", text(&o));
        let o = helpline(&url, &["user", "edit", "--username", "root", "--role", "counsellor"], None);
        assert!(!o.status.success() && text(&o).contains("last enabled admin"), "{}", text(&o));
        let o = helpline(&url, &["user", "edit", "--username", "nobody", "--capacity", "2"], None);
        assert!(!o.status.success() && text(&o).contains("no account"), "{}", text(&o));
        let o = helpline(&url, &["user", "reset", "--username", "dana"], None);
        assert!(o.status.success(), "{}", text(&o));
        let printed = String::from_utf8_lossy(&o.stdout).to_string();
        printed.lines().nth(1).expect("the code on its own line").trim().to_string()
    })
    .await
    .expect("commands");
    let store = helpline::store::Store::connect(&db.url).await.expect("connect");
    let (dana, _) = store.accounts().user_with_hash("dana").await.expect("read").expect("dana");
    assert_eq!(
        (dana.helplines.clone(), dana.backup_helplines.clone(), dana.capacity, dana.extension.as_deref()),
        (vec!["disability".to_string()], vec!["children".to_string()], 2, Some("205"))
    );
    let now = helpline::clock::Clock::new().now_ms();
    let hash = helpline::auth::accounts::reset_code_hash(&code);
    assert_eq!(
        store.accounts().reset_account(&hash, now).await.expect("read").map(|u| u.id),
        Some(dana.id.clone()),
        "the printed code is dana's"
    );
    let audit = store.audit_log().audit_for(&dana.id).await.expect("audit");
    for action in ["user_edit", "password_reset_code"] {
        assert!(audit.contains(&("cli".to_string(), action.to_string())), "{action}: {audit:?}");
    }
}

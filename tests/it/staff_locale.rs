//! The staff pages' language kept per account (issue 23, item 1): `PUT /api/v1/me/locale` sets it for
//! the signed-in account only; the login, a refresh and `GET /api/v1/me` return it; anything but `ro`,
//! `ru`, `uk`, `en` is refused with `422 unknown_locale` and changes nothing.

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

crate::on_both_backends!(the_locale_is_kept_per_account_and_checked);

async fn put_locale(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.put(app.url("/api/v1/me/locale")).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("locale request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn me(app: &TestApp, token: &str) -> Value {
    let res = app.http.get(app.url("/api/v1/me")).bearer_auth(token).send().await.expect("me");
    assert_eq!(res.status(), 200);
    res.json().await.expect("me json")
}

async fn login_body(app: &TestApp, username: &str) -> Value {
    let res = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": username, "password": format!("{username}-password")}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200);
    res.json().await.expect("login json")
}

async fn the_locale_is_kept_per_account_and_checked(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("vera", Role::CaseManager, &[], &["ro"], 3).await;
    let maria = app.login("maria").await;
    let ana = app.login("ana").await;

    // None until chosen: the page follows the browser.
    assert_eq!(me(&app, &maria).await["locale"], Value::Null);

    // Set, answered with the account, read back by /me.
    let (status, body) = put_locale(&app, Some(&maria), json!({"locale": "ro"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["username"].as_str(), body["locale"].as_str()), (Some("maria"), Some("ro")));
    assert_eq!(me(&app, &maria).await["locale"], "ro");

    // A new login, and a refresh, start in it.
    let login = login_body(&app, "maria").await;
    assert_eq!(login["user"]["locale"], "ro");
    let res = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .expect("refresh");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("refresh json")["user"]["locale"], "ro");

    // Written any case with spaces: kept as the code. Changed again: the last choice holds.
    let (status, body) = put_locale(&app, Some(&maria), json!({"locale": " UK "})).await;
    assert_eq!((status, body["locale"].as_str()), (200, Some("uk")));
    assert_eq!(me(&app, &maria).await["locale"], "uk");

    // A language without a catalogue: 422 with a stable code, and nothing changes.
    for bad in ["de", "", "ro-MD", "english", "<script>"] {
        let (status, body) = put_locale(&app, Some(&maria), json!({ "locale": bad })).await;
        assert_eq!((status, body["code"].as_str()), (422, Some("unknown_locale")), "{bad:?}: {body}");
    }
    assert_eq!(me(&app, &maria).await["locale"], "uk");
    // Not the body asked for: 400 bad_field (a missing field, an unknown one, not a string).
    for bad in [json!({}), json!({"locale": "ro", "user_id": "someone"}), json!({"locale": 7})] {
        let (status, body) = put_locale(&app, Some(&maria), bad.clone()).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_field")), "{bad}: {body}");
    }

    // Scope: one's own account only. Ana's choice does not touch Maria's, and the other way round;
    // every role may choose (a counsellor, a case manager); no token, no change.
    let (status, body) = put_locale(&app, Some(&ana), json!({"locale": "ru"})).await;
    assert_eq!((status, body["username"].as_str(), body["locale"].as_str()), (200, Some("ana"), Some("ru")));
    assert_eq!(me(&app, &maria).await["locale"], "uk");
    assert_eq!(me(&app, &ana).await["locale"], "ru");
    let vera = app.login("vera").await;
    assert_eq!(put_locale(&app, Some(&vera), json!({"locale": "en"})).await.0, 200);
    assert_eq!(me(&app, &vera).await["locale"], "en");
    let (status, body) = put_locale(&app, None, json!({"locale": "ro"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = put_locale(&app, Some("not-a-token"), json!({"locale": "ro"})).await;
    assert_eq!(status, 401);
    assert_eq!(me(&app, &ana).await["locale"], "ru");

    // Kept in the database: a restarted server still knows it.
    let app = app.restart().await;
    let maria = app.login("maria").await;
    assert_eq!(me(&app, &maria).await["locale"], "uk");
}

//! Logins nobody can use to lock a shift out (issue 20, part B): lockouts per (account, address) with
//! growing delays for the account, an admin's unlock (API and CLI), lockouts audited and listed for
//! supervisors; the second factor (TOTP) with recovery codes; the password rule on every path.

use std::time::{Duration, Instant};

use helpline::store::users::Role;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb};

crate::on_both_backends!(
    a_guesser_locks_out_only_their_own_address,
    an_admin_unlocks_by_api_and_cli,
    failures_from_anywhere_slow_the_account_down,
    totp_enrolment_login_and_recovery_codes,
    the_password_rule_holds_on_every_path,
    user_add_works_on_a_fresh_database,
    lockouts_are_listed_only_in_the_supervisors_scope,
    a_lockout_says_how_long_is_left,
    failures_are_counted_across_nodes_sharing_a_database,
);

/// A login attempt from the client address `from` (a trusted proxy on loopback forwards it).
async fn attempt(app: &TestApp, from: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url("/api/v1/auth/login")).header("x-forwarded-for", from).json(&body).send().await.expect("login request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn login_from(app: &TestApp, from: &str, username: &str, password: &str) -> u16 {
    attempt(app, from, json!({"username": username, "password": password})).await.0
}

/// Every audit line as (actor, action, target, detail).
async fn audit_lines(app: &TestApp) -> Vec<(String, String, Option<String>, Option<String>)> {
    let q = helpline::store::audit::AuditQuery { target: None, actor: None, since: None, limit: 1000 };
    app.store.audit_log().audit_lines(&q).await.expect("audit").into_iter().map(|e| (e.actor, e.action, e.target, e.detail)).collect()
}

fn helpline_cli(db: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let out = crate::cli::helpline(db, args, stdin);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn cli(db: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let (db, args, stdin) = (db.to_string(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), stdin.map(str::to_string));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helpline_cli(&db, &args, stdin.as_deref())
    })
    .await
    .expect("cli")
}

/// The attack from the issue: six wrong passwords a minute for `ion` (as `ion`, `ION`, `Ion`) from one
/// address. That address is locked out of `ion` (even with the right password), but `ion` still signs
/// in from another address, in any case; the lockout is audited, with no typed name in clear, and
/// supervisors see it.
async fn a_guesser_locks_out_only_their_own_address(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ion = crate::helpers::add_user(&app.store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let attacker = "198.51.100.66";
    for (i, name) in ["ion", "ION", "Ion", "ion", "ION", "Ion"].into_iter().enumerate() {
        assert_eq!(login_from(&app, attacker, name, &format!("guess-{i}")).await, 401, "guess {i} is just wrong");
    }
    let (status, body) = attempt(&app, attacker, json!({"username": "ion", "password": "ion-password"})).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "the guesser's address is locked out: {body}");
    assert_eq!(login_from(&app, attacker, "Ion", "ion-password").await, 429, "in any case");
    // The night shift: the right password from another address gets in, whatever the case.
    assert_eq!(login_from(&app, "203.0.113.10", "ion", "ion-password").await, 200);
    assert_eq!(login_from(&app, "203.0.113.11", "ION", "ion-password").await, 200);
    assert_eq!(login_from(&app, "203.0.113.12", " Ion ", "ion-password").await, 200);
    assert_eq!(login_from(&app, attacker, "ana", "ana-password").await, 200, "the address may still sign in to other accounts");

    // Supervisors see the lockout; counsellors may not.
    let maria = app.login("maria").await;
    let res = app.http.get(app.url("/api/v1/lockouts")).bearer_auth(&maria).send().await.expect("lockouts");
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0]["username"].as_str(), list[0]["address"].as_str()), (Some("ion"), Some(attacker)));
    assert_eq!(list[0]["strikes"], 1);
    let ana = app.login("ana").await;
    let res = app.http.get(app.url("/api/v1/lockouts")).bearer_auth(&ana).send().await.expect("lockouts");
    assert_eq!(res.status(), 403);

    // A name that is no account: counted and audited, but never stored as typed.
    for i in 0..3 {
        assert_eq!(login_from(&app, attacker, "Secret-Typed-Name", &format!("x{i}")).await, 401);
    }
    let lines = audit_lines(&app).await;
    let about_ion: Vec<&str> = lines.iter().filter(|l| l.2.as_deref() == Some(ion.as_str())).map(|l| l.1.as_str()).collect();
    assert_eq!(about_ion.iter().filter(|a| **a == "login_failed").count(), 6);
    assert_eq!(about_ion.iter().filter(|a| **a == "login_locked").count(), 1, "{about_ion:?}");
    assert_eq!(about_ion.iter().filter(|a| **a == "login_throttled").count(), 2);
    let locked = lines.iter().find(|l| l.1 == "login_locked").expect("locked line");
    assert!(locked.3.as_deref().unwrap_or("").contains(attacker), "the lockout names the address: {locked:?}");
    let unknown: Vec<_> = lines.iter().filter(|l| l.1 == "login_failed" && l.2.as_deref() != Some(ion.as_str())).collect();
    assert_eq!(unknown.len(), 3);
    assert!(unknown.iter().all(|l| l.2.as_deref().is_some_and(|t| t.starts_with("name:") && t.len() > 40)), "{unknown:?}");
    assert!(unknown.windows(2).all(|w| w[0].2 == w[1].2), "one name, one hash");
    for line in &lines {
        let text = format!("{line:?}").to_lowercase();
        assert!(!text.contains("secret-typed-name") && !text.contains("\"ion\""), "a typed name in the audit log: {line:?}");
    }
}

/// Six wrong passwords for `ion` from `from`: that address is locked out of `ion`.
async fn lock_out(app: &TestApp, from: &str) {
    for i in 0..6 {
        assert_eq!(login_from(app, from, "ion", &format!("wrong-{i}")).await, 401);
    }
    assert_eq!(login_from(app, from, "ion", "ion-password").await, 429);
}

/// An access token for `username` with `password`.
async fn token(app: &TestApp, username: &str, password: &str) -> String {
    let (status, body) = attempt(app, "192.0.2.99", json!({"username": username, "password": password})).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

/// An admin lifts a lockout through the API (any case of the name) and through `helpline user unlock`;
/// both are audited; others may not.
async fn an_admin_unlocks_by_api_and_cli(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let ion = crate::helpers::add_user(&app.store, "ion", Role::Counsellor, &["children"], &[], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    let from = "198.51.100.70";
    lock_out(&app, from).await;
    let root = app.login("root").await;
    let maria = app.login("maria").await;
    let res = app.http.post(app.url("/api/v1/users/ION/unlock")).bearer_auth(&maria).send().await.expect("unlock");
    assert_eq!(res.status(), 403, "supervisors see lockouts but only admins lift them");
    let res = app.http.post(app.url("/api/v1/users/nobody/unlock")).bearer_auth(&root).send().await.expect("unlock");
    assert_eq!(res.status(), 404);
    let res = app.http.post(app.url("/api/v1/users/ION/unlock")).bearer_auth(&root).send().await.expect("unlock");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json")["lifted"], 1);
    assert_eq!(login_from(&app, from, "ion", "ion-password").await, 200, "unlocked");

    lock_out(&app, from).await;
    let (ok, out) = cli(&app.db.url, &["user", "unlock", "Ion"], None).await;
    assert!(ok && out.contains("1 lockout"), "{out}");
    let (ok, out) = cli(&app.db.url, &["user", "unlock", "nobody"], None).await;
    assert!(!ok && out.contains("no account"), "{out}");
    assert_eq!(login_from(&app, from, "ion", "ion-password").await, 200, "unlocked from the command line");
    let res = app.http.get(app.url("/api/v1/lockouts")).bearer_auth(&maria).send().await.expect("lockouts");
    assert_eq!(res.json::<Value>().await.expect("json"), json!([]));

    let unlocks: Vec<(String, String)> =
        app.store.audit_log().audit_for(&ion).await.expect("audit").into_iter().filter(|(_, action)| action == "login_unlock").collect();
    assert_eq!(unlocks.len(), 2, "{unlocks:?}");
    assert_eq!(unlocks[1].0, "cli");
    assert_eq!(app.store.audit_log().audit_for(&ion).await.expect("audit").iter().filter(|(_, a)| a == "login_locked").count(), 2);
}

/// Failures from many addresses (each under its own limit) slow the account down with growing delays,
/// but never refuse it: the right password still gets in.
async fn failures_from_anywhere_slow_the_account_down(backend: Backend) {
    let Some(app) = TestApp::spawn_with_settings(backend, |s| s.guard.login_delay_ms = 200).await else { return };
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    for i in 0..helpline::auth::guard::ACCOUNT_FREE_FAILURES {
        assert_eq!(login_from(&app, &format!("198.51.100.{i}"), "ion", "wrong-password").await, 401);
    }
    let mut took = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        assert_eq!(login_from(&app, &format!("203.0.113.{i}"), "ION", "wrong-password").await, 401, "slowed, never refused");
        took.push(started.elapsed());
    }
    // The first of these had no delay yet (the free failures were all used): then 200 ms, then 400 ms.
    assert!(took[1] >= Duration::from_millis(200), "{took:?}");
    assert!(took[2] >= Duration::from_millis(400), "{took:?}");
    let started = Instant::now();
    assert_eq!(login_from(&app, "192.0.2.200", "ion", "ion-password").await, 200, "the right password gets in");
    assert!(started.elapsed() >= Duration::from_millis(800), "after the account's delay: {:?}", started.elapsed());
}

fn code(secret: &str, account: &str, app: &TestApp) -> String {
    let now = u64::try_from(app.clock.now_ms() / 1000).expect("time");
    helpline::auth::totp::code_at(secret, account, now).expect("code")
}

/// With `--require-totp`, an admin must enrol: the secret and its otpauth URI, then a login with the
/// app's code confirms it and returns recovery codes (once). From then on a code is needed; a code is
/// not accepted twice; each recovery code works once; an admin can reset the second factor.
async fn totp_enrolment_login_and_recovery_codes(backend: Backend) {
    let Some(app) = TestApp::spawn_with_settings(backend, |s| s.guard.totp_required = true).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("boss", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let from = "198.51.100.90";
    let password = json!({"username": "root", "password": "root-password"});
    let (status, body) = attempt(&app, from, password.clone()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("totp_enrolment_required")), "{body}");
    assert!(body.get("access_token").is_none());
    assert_eq!(login_from(&app, from, "ana", "ana-password").await, 200, "counsellors are not required to");

    let enrol = |body: Value| app.http.post(app.url("/api/v1/auth/totp/enrol")).header("x-forwarded-for", from).json(&body).send();
    let res = enrol(json!({"username": "root", "password": "wrong-password"})).await.expect("enrol");
    assert_eq!(res.status(), 401);
    let res = enrol(password.clone()).await.expect("enrol");
    assert_eq!(res.status(), 200);
    let enrolled: Value = res.json().await.expect("json");
    let secret = enrolled["secret"].as_str().expect("secret").to_string();
    let uri = enrolled["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/helpline:root?") && uri.contains(&secret), "{uri}");

    let with_code = |c: &str| json!({"username": "root", "password": "root-password", "totp_code": c});
    let (status, body) = attempt(&app, from, with_code("000000")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "a wrong code: {body}");
    let (status, body) =
        attempt(&app, from, json!({"username": "root", "password": "wrong", "totp_code": code(&secret, "root", &app)})).await;
    assert_eq!(status, 401, "a code does not stand in for the password: {body}");
    let first = code(&secret, "root", &app);
    let (status, body) = attempt(&app, from, with_code(&first)).await;
    assert_eq!(status, 200, "the code confirms the enrolment: {body}");
    let recovery: Vec<String> =
        body["recovery_codes"].as_array().expect("recovery codes").iter().map(|c| c.as_str().expect("code").to_string()).collect();
    assert_eq!(recovery.len(), 10);

    // From now on the code is required; the same code is not taken twice.
    let (status, body) = attempt(&app, from, password.clone()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("totp_required")), "{body}");
    let (status, _) = attempt(&app, from, with_code(&first)).await;
    assert_eq!(status, 401, "a code is used once");
    app.clock.advance(30_000);
    let (status, body) = attempt(&app, from, with_code(&code(&secret, "root", &app))).await;
    assert_eq!(status, 200, "the next step's code: {body}");
    assert!(body.get("recovery_codes").is_none(), "recovery codes are shown once");
    let res = enrol(password.clone()).await.expect("enrol");
    assert_eq!(res.status(), 409, "no silent re-enrolment over a working second factor");

    // A recovery code stands in for the app, once.
    let (status, _) = attempt(&app, "198.51.100.91", with_code(&recovery[3].to_uppercase())).await;
    assert_eq!(status, 200);
    let (status, _) = attempt(&app, "198.51.100.91", with_code(&recovery[3])).await;
    assert_eq!(status, 401, "a recovery code is used once");
    let (status, _) = attempt(&app, "198.51.100.91", with_code(&recovery[4])).await;
    assert_eq!(status, 200);

    // The codes are kept hashed only.
    let lines = audit_lines(&app).await;
    assert!(lines.iter().any(|l| l.1 == "totp_enabled") && lines.iter().filter(|l| l.1 == "recovery_code_used").count() == 2);

    // Another admin resets a lost phone: root must enrol again.
    app.clock.advance(30_000);
    let boss_secret = {
        let res = enrol(json!({"username": "boss", "password": "boss-password"})).await.expect("enrol");
        res.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_string()
    };
    let (status, body) =
        attempt(&app, from, json!({"username": "boss", "password": "boss-password", "totp_code": code(&boss_secret, "boss", &app)})).await;
    assert_eq!(status, 200, "{body}");
    let boss = body["access_token"].as_str().expect("token").to_string();
    let res = app.http.delete(app.url("/api/v1/users/root/totp")).bearer_auth(&boss).send().await.expect("reset");
    assert_eq!(res.status(), 204);
    let (status, body) = attempt(&app, from, password).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("totp_enrolment_required")), "{body}");
}

/// The rule (12+ characters, not blank, not the username, not a common password) on a password change,
/// an admin's reset, `user add` and `user passwd`; the weak passwords are refused on each.
async fn the_password_rule_holds_on_every_path(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["children"], &["ro"], 3).await;
    let weak = ["password", "12345678", "aaaaaaaa", "        ", "               ", "my name is ANA!", "password1234", "qwertyuiop123"];
    let ana = app.login("ana").await;
    let change = |current: &str, new: &str| {
        app.http
            .post(app.url("/api/v1/auth/password"))
            .bearer_auth(&ana)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    for w in weak {
        let res = change("ana-password", w).await.expect("change");
        assert_eq!(res.status(), 422, "{w:?}");
        assert_eq!(res.json::<Value>().await.expect("json")["code"], "weak_password", "{w:?}");
    }
    assert_eq!(change("not-the-password", "orchard lamp violet").await.expect("change").status(), 401);
    assert_eq!(change("ana-password", "orchard lamp violet").await.expect("change").status(), 204);
    assert_eq!(login_from(&app, "192.0.2.10", "ana", "ana-password").await, 401, "the old password is gone");
    assert_eq!(login_from(&app, "192.0.2.11", "ana", "orchard lamp violet").await, 200);

    // An admin's reset: the same rule; the account's tokens end.
    let root = app.login("root").await;
    let reset = |token: &str, new: &str| {
        app.http.post(app.url("/api/v1/users/ana/password")).bearer_auth(token).json(&json!({"password": new})).send()
    };
    for w in weak {
        let res = reset(&root, w).await.expect("reset");
        assert_eq!(res.status(), 422, "{w:?}");
    }
    let fresh = token(&app, "ana", "orchard lamp violet").await;
    assert_eq!(reset(&fresh, "tide harbour maple").await.expect("reset").status(), 403, "admins only");
    assert_eq!(reset(&root, "tide harbour maple").await.expect("reset").status(), 204);
    let me = app.http.get(app.url("/api/v1/me")).bearer_auth(&fresh).send().await.expect("me");
    assert_eq!(me.status(), 401, "a reset ends the account's sessions");
    assert_eq!(login_from(&app, "192.0.2.12", "ana", "tide harbour maple").await, 200);

    // The command line: `user add` and `user passwd`.
    let url = app.db.url.clone();
    for w in weak {
        // The one with the username names the account at hand.
        let add = w.replace("ANA", "DANA");
        let (ok, out) =
            cli(&url, &["user", "add", "--username", "dana", "--role", "admin", "--password-stdin"], Some(&format!("{add}\n"))).await;
        assert!(!ok && out.contains("password"), "{add:?}: {out}");
        let passwd = w.replace("ANA", "ROOT");
        let (ok, out) = cli(&url, &["user", "passwd", "--username", "root", "--password-stdin"], Some(&format!("{passwd}\n"))).await;
        assert!(!ok && out.contains("password"), "{passwd:?}: {out}");
    }
    let (ok, out) =
        cli(&url, &["user", "add", "--username", "dana", "--role", "admin", "--password-stdin"], Some("my dana password\n")).await;
    assert!(!ok && out.contains("must not contain the username"), "{out}");
    let (ok, out) =
        cli(&url, &["user", "add", "--username", "dana", "--role", "admin", "--password-stdin"], Some("quiet river stones\n")).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&url, &["user", "passwd", "--username", "ROOT", "--password-stdin"], Some("copper kettle dawn\n")).await;
    assert!(ok, "{out}");
    assert_eq!(login_from(&app, "192.0.2.13", "root", "copper kettle dawn").await, 200);
    assert_eq!(login_from(&app, "192.0.2.14", "dana", "quiet river stones").await, 200);
}

/// `helpline user add --helplines children` on a database nothing has touched yet works (the
/// helplines are seeded as by `migrate`).
async fn user_add_works_on_a_fresh_database(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let (ok, out) = cli(
        &db.url,
        &["user", "add", "--username", "ion", "--role", "counsellor", "--helplines", "children", "--languages", "ro", "--password-stdin"],
        Some("a long passphrase\n"),
    )
    .await;
    assert!(ok && out.contains("created ion"), "{out}");
}

/// `GET /api/v1/lockouts` lists only lockouts of accounts in the supervisor's scope: a supervisor of
/// children sees ion's (children), not ana's (family_violence) nor a name that is no account; a
/// supervisor of no helpline sees none; an admin sees them all.
async fn lockouts_are_listed_only_in_the_supervisors_scope(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    app.add_user("ana", Role::Counsellor, &["family_violence"], &["ro"], 3).await;
    app.add_user("maria", Role::Supervisor, &["children"], &["ro"], 3).await;
    app.add_user("petru", Role::Supervisor, &["family_violence"], &["ro"], 3).await;
    app.add_user("nobody", Role::Supervisor, &[], &["ro"], 3).await;
    app.add_user("root", Role::Admin, &[], &["ro"], 3).await;
    for (name, from) in [("ion", "198.51.100.80"), ("ana", "198.51.100.81"), ("no-such-name", "198.51.100.82")] {
        for i in 0..6 {
            assert_eq!(login_from(&app, from, name, &format!("wrong-{i}")).await, 401);
        }
        assert_eq!(login_from(&app, from, name, "whatever-it-is").await, 429, "{name} is locked out from {from}");
    }
    let listed = |who: &'static str| {
        let app = &app;
        async move {
            let token = app.login(who).await;
            let res = app.http.get(app.url("/api/v1/lockouts")).bearer_auth(&token).send().await.expect("lockouts");
            assert_eq!(res.status(), 200, "{who}");
            let list: Value = res.json().await.expect("json");
            let mut addresses: Vec<String> =
                list.as_array().expect("array").iter().map(|l| l["address"].as_str().expect("address").to_string()).collect();
            addresses.sort();
            addresses
        }
    };
    assert_eq!(listed("maria").await, ["198.51.100.80"], "a supervisor of children: ion's only");
    assert_eq!(listed("petru").await, ["198.51.100.81"], "a supervisor of family_violence: ana's only");
    assert!(listed("nobody").await.is_empty(), "a supervisor of no helpline: none");
    assert_eq!(listed("root").await, ["198.51.100.80", "198.51.100.81", "198.51.100.82"], "an admin: all");
}

/// A locked-out pair is told how long is left, in the `Retry-After` header and the body, and the
/// time shrinks as the lockout runs down.
async fn a_lockout_says_how_long_is_left(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    app.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let from = "198.51.100.90";
    for i in 0..6 {
        assert_eq!(login_from(&app, from, "ion", &format!("wrong-{i}")).await, 401);
    }
    let retry_after = || async {
        let res = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"username": "ion", "password": "ion-password"}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), 429);
        let header: u64 = res.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["retry_after_s"].as_u64(), Some(header), "{body}");
        header
    };
    let first = retry_after().await;
    assert!((55..=60).contains(&first), "a first lockout lasts a minute: {first}");
    app.clock.advance(40_000);
    let later = retry_after().await;
    assert!(later <= first - 39 && later >= 1, "40 s later: {later} (was {first})");
    app.clock.advance(21_000);
    assert_eq!(login_from(&app, from, "ion", "ion-password").await, 200, "the lockout is over");
}

/// Two nodes on one database: a guesser who spreads tries over both gets no more of them than on one
/// (failures are counted in the database), and the lockout holds on both.
async fn failures_are_counted_across_nodes_sharing_a_database(backend: Backend) {
    let Some(one) = TestApp::spawn(backend).await else { return };
    one.add_user("ion", Role::Counsellor, &["children"], &["ro"], 3).await;
    let mut two = one.another_on_the_same_database().await;
    let from = "198.51.100.95";
    for i in 0..3 {
        assert_eq!(login_from(&one, from, "ion", &format!("one-{i}")).await, 401);
        assert_eq!(login_from(&two, from, "ion", &format!("two-{i}")).await, 401);
    }
    assert_eq!(login_from(&one, from, "ion", "ion-password").await, 429, "six failures over two nodes lock the pair on the first");
    assert_eq!(login_from(&two, from, "ion", "ion-password").await, 429, "and on the second");
    assert_eq!(login_from(&two, "203.0.113.95", "ion", "ion-password").await, 200, "another address still gets in");
    two.shutdown().await;
}

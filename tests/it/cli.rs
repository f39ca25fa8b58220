//! The `helpline` command line: migrate, user add / list / disable, with their errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::helpers::{Backend, TestDb};

crate::on_both_backends!(user_commands, casework_commands);

fn helpline(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helpline"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run helpline");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn user_commands(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let m = helpline(&url, &["migrate"], None);
        assert!(m.status.success(), "{}", text(&m));
        let add = ["user", "add", "--username", "dana", "--role", "counsellor", "--helplines", "children,disability",
            "--languages", "ro,ru", "--password-stdin"];
        let ok = helpline(&url, &add, Some("a long passphrase\n"));
        assert!(ok.status.success(), "{}", text(&ok));
        assert!(text(&ok).contains("created dana (counsellor)"));
        // Errors: taken username, short password, no --password-stdin, unknown helpline, bad username.
        let again = helpline(&url, &add, Some("a long passphrase\n"));
        assert!(!again.status.success() && text(&again).contains("taken"), "{}", text(&again));
        let mut short = add.to_vec();
        short[3] = "eve";
        let o = helpline(&url, &short, Some("short\n"));
        assert!(!o.status.success() && text(&o).contains("at least 8"), "{}", text(&o));
        let o = helpline(&url, &["user", "add", "--username", "eve", "--role", "admin"], None);
        assert!(!o.status.success() && text(&o).contains("--password-stdin"), "{}", text(&o));
        let o = helpline(&url, &["user", "add", "--username", "eve", "--role", "counsellor", "--helplines", "pizza",
            "--password-stdin"], Some("a long passphrase\n"));
        assert!(!o.status.success() && text(&o).contains("unknown helpline"), "{}", text(&o));
        let o = helpline(&url, &["user", "add", "--username", "Eve Smith", "--role", "admin", "--password-stdin"],
            Some("a long passphrase\n"));
        assert!(!o.status.success() && text(&o).contains("usernames"), "{}", text(&o));
        let o = helpline(&url, &["user", "add", "--username", "eve", "--role", "boss", "--password-stdin"], None);
        assert!(!o.status.success(), "{}", text(&o));

        let list = helpline(&url, &["user", "list"], None);
        assert!(list.status.success());
        let listing = text(&list);
        let line = listing.lines().find(|l| l.starts_with("dana")).expect("dana listed");
        assert!(line.contains("counsellor") && line.contains("enabled") && line.contains("children,disability"));
        assert!(!listing.contains("eve"), "failed adds created nothing");

        let off = helpline(&url, &["user", "disable", "--username", "dana"], None);
        assert!(off.status.success(), "{}", text(&off));
        let listing = text(&helpline(&url, &["user", "list"], None));
        assert!(listing.lines().any(|l| l.starts_with("dana") && l.contains("disabled")));
        let o = helpline(&url, &["user", "disable", "--username", "nobody"], None);
        assert!(!o.status.success() && text(&o).contains("no account"));
        let on = helpline(&url, &["user", "enable", "--username", "dana"], None);
        assert!(on.status.success());
    })
    .await;
    out.expect("cli checks");
    // The password works for login, and the account changes are audited.
    let store = helpline::store::Store::connect(&db.url).await.unwrap();
    let (user, hash) = store.user_with_hash("dana").await.unwrap().unwrap();
    assert!(helpline::auth::verify_password("a long passphrase", &hash));
    assert!(!user.disabled);
    let actions: Vec<String> = store.audit_for(&user.id).await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions, ["user_add", "user_disable", "user_enable"]);
}

/// `user add --role case_manager --districts`, `service add|list`, with their errors.
async fn casework_commands(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let check_url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let m = helpline(&url, &["migrate"], None);
        assert!(m.status.success(), "{}", text(&m));
        let add = ["user", "add", "--username", "vera", "--role", "case_manager", "--districts", "Cahul,Orhei", "--password-stdin"];
        let o = helpline(&url, &add, Some("a long passphrase\n"));
        assert!(o.status.success() && text(&o).contains("created vera (case_manager)"), "{}", text(&o));
        let service = ["service", "add", "--name", "Centrul Cahul", "--kind", "family_violence_centre", "--district", "Cahul",
            "--capacity", "4", "--in-use", "1", "--always-open", "--helplines", "family_violence"];
        let o = helpline(&url, &service, None);
        assert!(o.status.success() && text(&o).contains("added Centrul Cahul"), "{}", text(&o));
        let mut bad = service.to_vec();
        bad[5] = "castle";
        let o = helpline(&url, &bad, None);
        assert!(!o.status.success() && text(&o).contains("kind must be one of"), "{}", text(&o));
        let o = helpline(&url, &["service", "list"], None);
        assert!(o.status.success() && text(&o).contains("3/4"), "free/capacity listed: {}", text(&o));
    })
    .await
    .expect("cli");
    let store = helpline::store::Store::connect(&check_url).await.unwrap();
    let (vera, _) = store.user_with_hash("vera").await.unwrap().unwrap();
    assert_eq!(vera.role, helpline::store::users::Role::CaseManager);
    assert_eq!(store.user_districts(&vera.id).await.unwrap(), ["Cahul", "Orhei"]);
    store.close().await;
}

//! The `helpline` command line: migrate, user add / list / disable, with their errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::helpers::{Backend, TestDb};

crate::on_both_backends!(user_commands, casework_commands, grant_all_helplines_command);

/// Runs the built `helpline` binary on `db` with `args` (and `stdin`, if any); its output.
pub(crate) fn helpline(db: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helpline"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(crate::helpers::key_file_env(db))
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
        let add = [
            "user",
            "add",
            "--username",
            "dana",
            "--role",
            "counsellor",
            "--helplines",
            "children,disability",
            "--languages",
            "ro,ru",
            "--password-stdin",
        ];
        let ok = helpline(&url, &add, Some("a long passphrase\n"));
        assert!(ok.status.success(), "{}", text(&ok));
        assert!(text(&ok).contains("created dana (counsellor)"));
        // Errors: taken username, short password, no --password-stdin, unknown helpline, bad username.
        let again = helpline(&url, &add, Some("a long passphrase\n"));
        assert!(!again.status.success() && text(&again).contains("taken"), "{}", text(&again));
        let mut short = add.to_vec();
        short[3] = "eve";
        let o = helpline(&url, &short, Some("short\n"));
        assert!(!o.status.success() && text(&o).contains("at least 12"), "{}", text(&o));
        let o = helpline(&url, &["user", "add", "--username", "eve", "--role", "admin"], None);
        assert!(!o.status.success() && text(&o).contains("--password-stdin"), "{}", text(&o));
        let o = helpline(
            &url,
            &["user", "add", "--username", "eve", "--role", "counsellor", "--helplines", "pizza", "--password-stdin"],
            Some("a long passphrase\n"),
        );
        assert!(!o.status.success() && text(&o).contains("unknown helpline"), "{}", text(&o));
        let o =
            helpline(&url, &["user", "add", "--username", "Eve Smith", "--role", "admin", "--password-stdin"], Some("a long passphrase\n"));
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
    let (user, hash) = store.accounts().user_with_hash("dana").await.unwrap().unwrap();
    assert!(helpline::auth::verify_password("a long passphrase", &hash));
    assert!(!user.disabled);
    let actions: Vec<String> = store.audit_log().audit_for(&user.id).await.unwrap().into_iter().map(|(_, a)| a).collect();
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
        let service = [
            "service",
            "add",
            "--name",
            "Centrul Cahul",
            "--kind",
            "family_violence_centre",
            "--district",
            "Cahul",
            "--capacity",
            "4",
            "--in-use",
            "1",
            "--always-open",
            "--helplines",
            "family_violence",
        ];
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
    let (vera, _) = store.accounts().user_with_hash("vera").await.unwrap().unwrap();
    assert_eq!(vera.role, helpline::store::users::Role::CaseManager);
    assert_eq!(store.accounts().user_districts(&vera.id).await.unwrap(), ["Cahul", "Orhei"]);
    store.close().await;
}

/// `helpline simulate` plays a week of Poisson traffic through the real engine (capacity 1, no abandonment,
/// answered at once: Erlang C's assumptions) and its service level and occupancy agree with Erlang C's.
/// λ = 180/h, AHT 240 s: A = 12 Erlangs on 15 counsellors. (How long a week takes: BENCHMARKS.md.)
#[test]
fn simulate_a_week_agrees_with_erlang_c() {
    let args = [
        "simulate",
        "--rate-per-hour",
        "180",
        "--aht-s",
        "240",
        "--hours",
        "168",
        "--counsellors",
        "15",
        "--helplines",
        "children",
        "--languages",
        "ro",
        "--answer-delay-s",
        "0",
        "--json",
    ];
    let out = helpline("sqlite::memory:", &args, None);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let f = &report["figures"];
    let offered = f["offered"].as_i64().unwrap();
    assert!((29_000..31_500).contains(&offered), "about 180 × 168 contacts: {offered}");
    assert_eq!((f["answered"].as_i64(), f["abandoned"].as_i64()), (Some(offered), Some(0)), "{f}");
    assert_eq!((report["end_ms"].as_i64().unwrap() - report["start_ms"].as_i64().unwrap()) / 3_600_000, 168, "a week");
    let erlang = helpline::supervision::staffing::service_level(15, 12.0, 240.0, 15.0);
    let sl = f["service_level"].as_f64().unwrap();
    assert!((sl - erlang).abs() < 0.03, "simulated SL {sl:.4}, Erlang C {erlang:.4}");
    let asa = helpline::supervision::staffing::asa_s(15, 12.0, 240.0) * 1000.0;
    let got = f["asa_ms"].as_f64().unwrap();
    assert!((got - asa).abs() < 0.2 * asa, "simulated ASA {got:.0} ms, Erlang C {asa:.0} ms");
    let occupancy = f["occupancy"].as_f64().unwrap();
    assert!((occupancy - 0.8).abs() < 0.03, "occupancy {occupancy:.3}, A ÷ m = 0.8");
}

/// "All helplines" is an explicit, audited grant to a supervisor (an empty helpline list is none),
/// and can be taken back; other roles and unknown names are refused.
async fn grant_all_helplines_command(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let m = helpline(&url, &["migrate"], None);
        assert!(m.status.success(), "{}", text(&m));
        for (username, role) in [("ilie", "supervisor"), ("dorin", "counsellor")] {
            let add = ["user", "add", "--username", username, "--role", role, "--password-stdin"];
            let ok = helpline(&url, &add, Some("correct horse battery staple 42\n"));
            assert!(ok.status.success(), "{}", text(&ok));
        }
        let o = helpline(&url, &["user", "grant-all-helplines", "--username", "ilie"], None);
        assert!(o.status.success() && text(&o).contains("granted ilie"), "{}", text(&o));
        let o = helpline(&url, &["user", "grant-all-helplines", "--username", "dorin"], None);
        assert!(!o.status.success() && text(&o).contains("only supervisors"), "{}", text(&o));
        let o = helpline(&url, &["user", "grant-all-helplines", "--username", "nobody"], None);
        assert!(!o.status.success() && text(&o).contains("no account"), "{}", text(&o));
    })
    .await
    .expect("commands");
    let store = helpline::store::Store::connect(&db.url).await.expect("connect");
    let (ilie, _) = store.accounts().user_with_hash("ilie").await.unwrap().unwrap();
    assert!(ilie.all_helplines);
    let audit = store.audit_log().audit_for(&ilie.id).await.unwrap();
    assert!(audit.contains(&("cli".to_string(), "user_grant_all_helplines".to_string())), "{audit:?}");
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let o = helpline(&url, &["user", "revoke-all-helplines", "--username", "ilie"], None);
        assert!(o.status.success(), "{}", text(&o));
    })
    .await
    .expect("revoke");
    assert!(!store.accounts().user_with_hash("ilie").await.unwrap().unwrap().0.all_helplines);
}

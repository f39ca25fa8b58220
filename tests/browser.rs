//! The browser front ends (`/chat`, `/agent`, `/supervisor`) in real headless Chromium, against the real server.
//!
//! Starts the server in this process (SQLite in a temporary directory, demo accounts; the family
//! violence helpline's wait alerts come after 1 s and 2 s instead of 10 s and 15 s, so the dashboard
//! test sees a waiting row turn amber and red without waiting 15 s; a message containing
//! `REFUSED-ONCE` is refused once as `overloaded`, for the resend rule), then runs
//! `node --test` in `tests/browser/` with `HELPLINE_URL` pointing at it (and `HELPLINE_GATEWAY_TOKEN`, a
//! telephony gateway's token for the simulated exchange), streaming its output, and
//! expects it to pass. Needs node, `tests/browser/node_modules` (`npm ci` there) and Chromium at
//! `/usr/bin/chromium` (or `HELPLINE_CHROMIUM`). Without them the test prints `SKIPPED: …` and passes,
//! except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use helpline::app::{Application, Settings};
use helpline::store::Store;

/// The helpline whose answer clock is shortened for the dashboard test (see [`tune_helplines`]).
const FAST_HELPLINE: &str = "family_violence";

/// The helpline of the transfer and consult test between two consoles (see [`tune_helplines`]).
const TRANSFER_HELPLINE: &str = "relay";

/// The helpline with wrap-up on, for `console_shift.test.mjs` (see [`tune_helplines`]).
const SHIFT_HELPLINE: &str = "night";

/// Seeds the helplines before the server starts, with `FAST_HELPLINE`'s at-risk and target times
/// shortened to 1 s and 2 s (only its `wait_10s`/`wait_15s` alerts and its service level change;
/// ringing, backup and grace times stay as they are).
async fn tune_helplines(database_url: &str) {
    let store = Store::connect(database_url).await.expect("connect the test database");
    store.migrate().await.expect("migrate the test database");
    for mut h in helpline::store::defaults::default_helplines() {
        // The pages end many chats with the same counsellors within a minute, and each ended chat's
        // slot would stay in wrap-up for the default 60 s: wrap-up is off on these helplines (the
        // console's Ready button is tested on SHIFT_HELPLINE, below; tests/it/wrapup.rs and the
        // engine's tests cover the rest).
        h.wrapup_limit_ms = 0;
        // The disability helpline asks the triage question (widget_phone.test.mjs answers it).
        if h.name == "disability" {
            h.triage_priority = Some(90);
        }
        if h.name == FAST_HELPLINE {
            h.sla_at_risk_ms = 1_000;
            h.sla_target_ms = 2_000;
        }
        store.directory().upsert_helpline(&h).await.expect("seed a helpline");
    }
    // Wrap-up on (the default 60 s) for console_shift.test.mjs, which presses Ready: a helpline of its
    // own, in English, and its one counsellor, nina (two slots, password `nina-demo`).
    let night = helpline::store::helplines::Helpline::with_defaults(SHIFT_HELPLINE, "Night line (browser test)", &["en"]);
    assert!(night.wrapup_limit_ms > 0, "the shift test's helpline has wrap-up on");
    store.directory().upsert_helpline(&night).await.expect("seed the shift test's helpline");
    let nina = helpline::store::users::NewUser {
        username: "nina".into(),
        display_name: "Nina".into(),
        password_hash: helpline::auth::hash_password("nina-demo").expect("hash"),
        role: helpline::store::users::Role::Counsellor,
        helplines: vec![SHIFT_HELPLINE.into()],
        backup_helplines: Vec::new(),
        languages: vec!["en".into()],
        capacity: 2,
    };
    store.accounts().create_user(&nina, 0).await.expect("the shift test's counsellor");
    // The console in ro, ru and uk (`staff_i18n.test.mjs`): a counsellor of her own, since the language
    // she chooses stays with her account (the other tests expect their counsellors' consoles in English).
    let lena = helpline::store::users::NewUser {
        username: "lena".into(),
        display_name: "Lena".into(),
        password_hash: helpline::auth::hash_password("lena-demo").expect("hash"),
        role: helpline::store::users::Role::Counsellor,
        helplines: vec!["children".into()],
        backup_helplines: Vec::new(),
        languages: vec!["ro".into(), "ru".into(), "uk".into(), "en".into()],
        capacity: 3,
    };
    store.accounts().create_user(&lena, 0).await.expect("the language test's counsellor");
    // Transfer and consult between two consoles (`transfer_consult.test.mjs`): a helpline of their own,
    // in English, without wrap-up, and its two counsellors, tara and toma (password `<name>-demo`).
    let mut relay = helpline::store::helplines::Helpline::with_defaults(TRANSFER_HELPLINE, "Transfer line (browser test)", &["en"]);
    relay.wrapup_limit_ms = 0;
    store.directory().upsert_helpline(&relay).await.expect("seed the transfer test's helpline");
    for (name, display) in [("tara", "Tara"), ("toma", "Toma")] {
        let user = helpline::store::users::NewUser {
            username: name.into(),
            display_name: display.into(),
            password_hash: helpline::auth::hash_password(&format!("{name}-demo")).expect("hash"),
            role: helpline::store::users::Role::Counsellor,
            helplines: vec![TRANSFER_HELPLINE.into()],
            backup_helplines: Vec::new(),
            languages: vec!["en".into()],
            capacity: 2,
        };
        store.accounts().create_user(&user, 0).await.expect("a transfer test's counsellor");
    }
    store.exchanges().create_gateway("browser-pbx", &helpline::auth::token_hash(GATEWAY_TOKEN), 0).await.expect("a gateway");
    // An SMS channel for `sms_console.test.mjs`, which calls its webhook itself as Kannel would; its
    // replies go to a Kannel that is not there, so they wait in the outbox (`retrying`).
    let sms = helpline::store::channels::NewChannel {
        name: "browser-sms".into(),
        kind: "sms".into(),
        helpline: "children".into(),
        language: "ro".into(),
        public_url: "http://127.0.0.1".into(),
        api_base: "http://127.0.0.1:9".into(),
        account: Some("helpline".into()),
        sender: None,
        token: "browser-sms-password".into(),
        inbound_secret: SMS_SECRET.into(),
        idle_limit_ms: 0,
    };
    store.channels().add(&sms, 0).await.expect("an SMS channel");
    // Supervisors of their own for `second_factor.test.mjs`, which sets up their second factors.
    for name in ["tess", "theo"] {
        let user = helpline::store::users::NewUser {
            username: name.into(),
            display_name: name.into(),
            password_hash: helpline::auth::hash_password(&format!("{name}-second-factor")).expect("hash"),
            role: helpline::store::users::Role::Supervisor,
            helplines: vec!["children".into()],
            backup_helplines: Vec::new(),
            languages: vec!["en".into()],
            capacity: 3,
        };
        store.accounts().create_user(&user, 0).await.expect("a supervisor");
    }
    // A supervisor granted every helpline, for the lockout list of `second_factor.test.mjs`.
    let gail = helpline::store::users::NewUser {
        username: "gail".into(),
        display_name: "gail".into(),
        password_hash: helpline::auth::hash_password("gail-every-helpline").expect("hash"),
        role: helpline::store::users::Role::Supervisor,
        helplines: vec!["children".into()],
        backup_helplines: Vec::new(),
        languages: vec!["en".into()],
        capacity: 3,
    };
    store.accounts().create_user(&gail, 0).await.expect("a supervisor");
    store.accounts().set_user_all_helplines("gail", true).await.expect("the all-helplines grant");
    // Supervisors of every demo helpline for `wall.test.mjs` and `staff_i18n.test.mjs`: their language is
    // kept with the account, so they are not the demo's maria (the other tests expect her pages in English).
    for (name, display) in [("wanda", "Wanda"), ("lidia", "Lidia")] {
        let user = helpline::store::users::NewUser {
            username: name.into(),
            display_name: display.into(),
            password_hash: helpline::auth::hash_password(&format!("{name}-wall-screen")).expect("hash"),
            role: helpline::store::users::Role::Supervisor,
            helplines: vec!["children".into(), "disability".into(), "family_violence".into()],
            backup_helplines: Vec::new(),
            languages: vec!["ro".into(), "ru".into(), "uk".into(), "en".into()],
            capacity: 3,
        };
        store.accounts().create_user(&user, 0).await.expect("a supervisor");
    }
}

/// Messages containing this are refused once by the relay (`relay-refuse-once`).
const REFUSED_ONCE: &str = "REFUSED-ONCE";

/// The service token of the simulated telephone exchange `call_controls.test.mjs` drives over the webhook.
const GATEWAY_TOKEN: &str = "browser-test-gateway-token-0123456789";

/// The browser test's SMS channel's inbound secret (`HELPLINE_SMS_SECRET`).
const SMS_SECRET: &str = "browser-test-sms-secret";

/// The whole node run may take this long before it is killed (the files run one after another; the
/// wall and language tests of the dashboard alone take about three minutes on a loaded machine).
const NODE_TIMEOUT: Duration = Duration::from_secs(720);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("HELPLINE_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What is missing to run the browser tests, if anything.
fn missing_prerequisite() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {}
        _ => return Some("node is not installed (node 20 or later is needed)".into()),
    }
    if !browser_dir().join("node_modules").join("playwright-core").is_dir() || !browser_dir().join("node_modules").join("axe-core").is_dir()
    {
        return Some("tests/browser/node_modules is missing: run `npm ci` in tests/browser".into());
    }
    if !chromium().exists() {
        return Some(format!("{} is missing: apt-get install chromium", chromium().display()));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_front_ends() {
    if let Some(why) = missing_prerequisite() {
        if std::env::var_os("CI").is_some() {
            panic!("browser tests cannot run in CI: {why}");
        }
        eprintln!("SKIPPED: browser tests ({why})");
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite:{}", dir.path().join("helpline.db").display());
    tune_helplines(&database_url).await;
    let mut settings = Settings::for_database(database_url);
    settings.demo = true;
    // Every page of every browser test opens its chats from 127.0.0.1: the per-address chat limit
    // (tested in tests/it/adversarial.rs) would cut the suite short.
    settings.guard.contacts_per_ip_per_min = 0;
    settings.jwt_secret = Some("browser-test-secret-browser-test-secret".into());
    // The resend rule (chat_flow.test.mjs): a message containing this marker is refused once as
    // `overloaded`, as under overload; the widget sends it again and it is delivered once.
    fail::cfg("relay-refuse-once", &format!("return({REFUSED_ONCE})")).expect("arm relay-refuse-once");
    let app = Application::build(settings).await.expect("build the server");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let url = format!("http://{addr}");
    eprintln!("browser tests against {url}");
    // stdout and stderr are inherited: node's report streams as it runs.
    // HELPLINE_BROWSER_TESTS narrows the run to some files, e.g. `tests/chat_flow.test.mjs`.
    let files = std::env::var("HELPLINE_BROWSER_TESTS").unwrap_or_else(|_| "tests/".into());
    let mut child = tokio::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(files.split_whitespace())
        .current_dir(browser_dir())
        .env("HELPLINE_URL", &url)
        .env("HELPLINE_GATEWAY_TOKEN", GATEWAY_TOKEN)
        .env("HELPLINE_SMS_SECRET", SMS_SECRET)
        .env("HELPLINE_CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let status = match tokio::time::timeout(NODE_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("wait for node"),
        Err(_) => {
            let _ = child.kill().await;
            panic!("the browser tests took longer than {NODE_TIMEOUT:?}");
        }
    };

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    assert!(status.success(), "node --test failed ({status}): see its output above");
}

//! Test harness: start the real server on a random port over SQLite or PostgreSQL, and talk to it with real clients.

use std::sync::Once;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use helpline::app::{Application, Settings};
use helpline::auth::hash_password;
use helpline::store::helplines::Helpline;
use helpline::store::users::{NewUser, Role};
use helpline::store::Store;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame before failing. Generous: CI runs the whole suite on two
/// loaded cores, where `cases::contact_form_drafts_and_required_fields::postgres` once waited over 10 s for an
/// alert behind a backlog of board frames. Only a failing test ever waits this long.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite` and `postgres` tests that run the same scenario `fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            helpline::app::telemetry::init(helpline::app::telemetry::LogFormat::Text);
        }
    });
}

/// Prometheus's `promtool` (Debian's `prometheus` package, which `.ci/run` installs; `PROMTOOL` names
/// another): in CI its absence fails the test, elsewhere the check is skipped with a line saying so.
pub fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PROMTOOL").map(std::path::PathBuf::from).unwrap_or_else(|| "/usr/bin/promtool".into());
    if path.exists() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "{} is missing: .ci/run installs Debian's prometheus package", path.display());
    eprintln!("SKIPPED: promtool checks ({} not found; apt-get install prometheus)", path.display());
    None
}

/// Runs `program args` with `input` on its standard input: whether it exited 0, and what it printed
/// (standard output and error).
pub fn run_with_stdin(program: &std::path::Path, args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), printed)
}

/// The PostgreSQL server used for tests (a database is created per test on it).
pub fn postgres_admin_url() -> String {
    std::env::var("HELPLINE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when PostgreSQL tests must run (CI): an unreachable server then fails the test instead of skipping it.
fn postgres_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("HELPLINE_REQUIRE_POSTGRES").is_some()
}

/// A database for one test; a PostgreSQL one is dropped when this is dropped.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// An SQLite database at `path` (its directory is the caller's to clean up).
    pub fn sqlite_at(path: &std::path::Path) -> TestDb {
        TestDb { url: format!("sqlite:{}", path.display()), pg_name: None, _dir: None }
    }

    /// A fresh, empty database; None (with a SKIPPED line) when PostgreSQL is not reachable outside CI.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("helpline.db").display());
                Some(TestDb { url, pg_name: None, _dir: Some(dir) })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&admin)).await;
                let pool = match conn {
                    Ok(Ok(pool)) => pool,
                    other => {
                        let why = match other {
                            Ok(Err(e)) => e.to_string(),
                            Err(_) => "timed out".into(),
                            Ok(Ok(_)) => unreachable!(),
                        };
                        if postgres_required() {
                            panic!("PostgreSQL is required in CI but {admin} is unreachable: {why}");
                        }
                        eprintln!("SKIPPED: PostgreSQL test (no server at {admin}: {why}); set HELPLINE_TEST_POSTGRES");
                        return None;
                    }
                };
                let name = format!("helpline_it_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
                let url = format!("{base}/{name}");
                // A PostgreSQL node needs a key file: one per test database, known to every store and
                // server this process opens on it, and passed to the binaries it starts (`key_file_env`).
                let dir = tempfile::tempdir().expect("temp dir");
                helpline::store::keys::remember_key_file(&url, &dir.path().join("helpline.keys"));
                Some(TestDb { url, pg_name: Some(name), _dir: Some(dir) })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// The environment that gives a `helpline` binary started on `url` its key file (a PostgreSQL test
/// database's; an SQLite one's sits beside the database file and needs none).
pub fn key_file_env(url: &str) -> Vec<(&'static str, std::path::PathBuf)> {
    helpline::store::keys::remembered_key_file(url).map(|p| ("HELPLINE_KEY_FILE", p)).into_iter().collect()
}

/// A running server, in this process.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub store: Store,
    pub http: reqwest::Client,
    /// The server's clock: `clock.advance(ms)` moves server time ahead (deadlines, timers) without sleeping.
    pub clock: helpline::clock::Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

impl TestApp {
    /// Starts a server on a fresh database with the default helplines.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server, letting the test change the helplines' settings first (e.g. shorter timeouts).
    pub async fn spawn_with(backend: Backend, tune: impl FnOnce(&mut Vec<Helpline>)) -> Option<TestApp> {
        let (db, store) = Self::prepare(backend, tune).await?;
        Some(Self::start(db, store).await)
    }

    /// Starts a server with the default helplines, letting the test change the server's settings
    /// (e.g. run retention every 100 ms).
    pub async fn spawn_with_settings(backend: Backend, tune: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let (db, store) = Self::prepare(backend, |_| {}).await?;
        Some(Self::start_tuned(db, store, tune).await)
    }

    /// A fresh, migrated database with the (tuned) default helplines.
    async fn prepare(backend: Backend, tune: impl FnOnce(&mut Vec<Helpline>)) -> Option<(TestDb, Store)> {
        init_tracing();
        let db = TestDb::new(backend).await?;
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut helplines = helpline::store::defaults::default_helplines();
        tune(&mut helplines);
        for h in &helplines {
            store.directory().upsert_helpline(h).await.expect("helpline");
        }
        Some((db, store))
    }

    async fn start(db: TestDb, store: Store) -> TestApp {
        Self::start_tuned(db, store, |_| {}).await
    }

    /// Starts a server on `db` (already migrated; `store` is the test's own handle on it), with the
    /// test's changes to the settings (e.g. a `database_url` that goes through a proxy).
    pub async fn start_tuned(db: TestDb, store: Store, tune: impl FnOnce(&mut Settings)) -> TestApp {
        Self::launch(db, store, tune).await.0
    }

    /// Starts a server with the default helplines and the test's changes to the settings, and
    /// returns its shared state too: what a module of the server holds (e.g. a channel's webhook
    /// handler, `tests/it/channel.rs`). Drop the state before waiting for a shutdown.
    pub async fn spawn_with_state(backend: Backend, tune: impl FnOnce(&mut Settings)) -> Option<(TestApp, helpline::state::AppState)> {
        let (db, store) = Self::prepare(backend, |_| {}).await?;
        Some(Self::launch(db, store, tune).await)
    }

    async fn launch(db: TestDb, store: Store, tune: impl FnOnce(&mut Settings)) -> (TestApp, helpline::state::AppState) {
        init_tracing();
        let mut settings = Settings::for_database(db.url.clone());
        settings.jwt_secret = Some("test-secret-test-secret-test-secret".into());
        // The test database's key file (PostgreSQL's; SQLite's is beside the file), kept when a test
        // points the server at the database another way (through a proxy).
        settings.key_file = helpline::store::keys::remembered_key_file(&db.url);
        settings.account_check_every = Duration::from_millis(100);
        // Report tests roll hours up themselves (`helpline::store::rollup::roll_up`), when they choose.
        settings.report_rollup_every = None;
        // Callers reach the test server "through a proxy" on loopback, each with its own address
        // (see `caller_address`), so the per-address limits stay at their defaults in every test.
        settings.guard.trusted_proxies = vec![std::net::Ipv4Addr::LOCALHOST.into()];
        tune(&mut settings);
        let app = Application::build(settings).await.expect("build");
        let addr = app.local_addr();
        let state = app.state().clone();
        let clock = state.clock;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (TestApp { addr, store, http: reqwest::Client::new(), clock, stop: Some(stop), server: Some(server), db }, state)
    }

    /// A second server on this one's database (which stays this one's to drop): two nodes sharing a
    /// database, each with its own in-memory state.
    pub async fn another_on_the_same_database(&self) -> TestApp {
        let db = TestDb { url: self.db.url.clone(), pg_name: None, _dir: None };
        let store = Store::connect(&db.url).await.expect("connect");
        Self::start(db, store).await
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown().await;
        let db = std::mem::replace(&mut self.db, TestDb { url: String::new(), pg_name: None, _dir: None });
        let store = Store::connect(&db.url).await.expect("reconnect");
        Self::start(db, store).await
    }

    /// Graceful shutdown (as on SIGTERM); waits until the server has finished.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates an account directly in the store.
    pub async fn add_user(&self, username: &str, role: Role, helplines: &[&str], languages: &[&str], capacity: i64) {
        add_user(&self.store, username, role, helplines, &[], languages, capacity).await;
    }

    /// Logs in over HTTP; returns the access token.
    pub async fn login(&self, username: &str) -> String {
        let res = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "username": username, "password": format!("{username}-password") }))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login of {username}");
        let body: Value = res.json().await.expect("login json");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// A counsellor's socket, authenticated with a fresh ticket; the `hello` is read and returned.
    pub async fn agent(&self, username: &str) -> (Ws, Value) {
        let token = self.login(username).await;
        let mut ws = self.agent_with_token(&token).await;
        let hello = ws.expect("hello").await;
        (ws, hello)
    }

    pub async fn agent_with_token(&self, token: &str) -> Ws {
        let res = self.http.post(self.url("/api/v1/ws-ticket")).bearer_auth(token).send().await.expect("ticket request");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("ticket json");
        let ticket = body["ticket"].as_str().expect("ticket");
        Ws::connect(&format!("ws://{}/ws/agent?ticket={ticket}", self.addr)).await
    }

    /// An agent who logs in, connects and goes available; returns the socket after the status confirmation.
    pub async fn available_agent(&self, username: &str) -> Ws {
        let (mut ws, _) = self.agent(username).await;
        ws.send(json!({"type": "status", "status": "available"})).await;
        let status = ws.expect("status").await;
        assert_eq!(status["status"], "available");
        ws
    }

    /// A caller's socket, from an address of its own (a person on their own phone).
    pub async fn caller(&self) -> Ws {
        Ws::connect_from(&format!("ws://{}/ws/caller", self.addr), &caller_address()).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates an account with password `<username>-password`.
pub async fn add_user(
    store: &Store,
    username: &str,
    role: Role,
    helplines: &[&str],
    backup: &[&str],
    languages: &[&str],
    capacity: i64,
) -> String {
    let to_vec = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let user = NewUser {
        username: username.into(),
        display_name: format!("{username} display"),
        password_hash: hash_password(&format!("{username}-password")).expect("hash"),
        role,
        helplines: to_vec(helplines),
        backup_helplines: to_vec(backup),
        languages: to_vec(languages),
        capacity,
    };
    store.accounts().create_user(&user, 0).await.expect("create user").id
}

/// A fresh client address for a caller (10.x.y.z), different on every call.
pub fn caller_address() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// A WebSocket client speaking JSON text frames.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let request = url.into_client_request().expect("request");
        let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connect");
        Ws { stream }
    }

    /// Connects as a client at `address`, as a trusted proxy on loopback would forward it (`X-Forwarded-For`).
    pub async fn connect_from(url: &str, address: &str) -> Ws {
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("x-forwarded-for", address.parse().expect("header value"));
        let (stream, _) = tokio_tungstenite::connect_async(request).await.expect("websocket connect");
        Ws { stream }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.stream.send(m).await.expect("send raw");
    }

    /// The next JSON frame (pings are answered by the library and skipped).
    pub async fn recv(&mut self) -> Value {
        self.recv_by(tokio::time::Instant::now() + FRAME_TIMEOUT).await
    }

    /// The next text frame, by `deadline` at the latest: the server's pings (every 15 s) do not
    /// extend the wait, so a frame that never comes fails the test instead of hanging it.
    async fn recv_by(&mut self, deadline: tokio::time::Instant) -> Value {
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await.expect("timed out waiting for a frame");
            match next {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("server sent JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads frames until one of `kind` arrives (within [`FRAME_TIMEOUT`] in all), skipping `position`
    /// and `typing` updates, the `unavailable` a caller hears after `queued` when nobody is on
    /// shift (tests/it/hours.rs reads it), and a counsellor's `wrap_up` / `wrap_up_ended` after a
    /// contact ends (tests/it/wrapup.rs reads them); panics on anything else.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            let v = self.recv_by(deadline).await;
            if v["type"] == kind {
                return v;
            }
            if v["type"] == "position"
                || v["type"] == "typing"
                || v["type"] == "caller_presence"
                || v["type"] == "unavailable"
                || v["type"] == "wrap_up"
                || v["type"] == "wrap_up_ended"
            {
                continue;
            }
            panic!("expected a {kind:?} frame, got {v}");
        }
    }

    /// Reads until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await.expect("timed out waiting for close");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A waiting chat contact on the children's helpline stored directly (queued at 1 ms); its id.
pub async fn stored_contact(store: &helpline::store::Store) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let record = helpline::store::contacts::NewContactRecord {
        id: id.clone(),
        channel: "chat".into(),
        helpline: "children".into(),
        language: "ro".into(),
        priority: 0,
        resume_token_hash: format!("hash-{id}"),
        queued_at: 1,
    };
    store.contacts().create_contact(&record).await.expect("contact");
    id
}

/// An HTTP call with a bearer token: the status and the JSON body (Null when not JSON).
pub async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = app.url(path);
    let req = match method {
        "GET" => app.http.get(url),
        "POST" => app.http.post(url),
        "PUT" => app.http.put(url),
        "DELETE" => app.http.delete(url),
        "PATCH" => app.http.patch(url),
        other => panic!("method {other}"),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req.bearer_auth(token).send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Reads frames until one of `kind`, passing over those of `skip` (anything else fails).
pub async fn until(ws: &mut Ws, kind: &str, skip: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {kind} in time");
        let v = ws.recv().await;
        if v["type"] == kind {
            return v;
        }
        let kind_of = v["type"].as_str().unwrap_or("");
        assert!(skip.contains(&kind_of), "expected {kind}, got {v}");
    }
}

/// A caller starts a chat on children; returns her socket and the `queued` frame.
pub async fn start_chat_ro(app: &TestApp) -> (Ws, Value) {
    let mut caller = app.caller().await;
    caller.send(json!({"type": "start", "helpline": "children", "language": "ro"})).await;
    let queued = until(&mut caller, "queued", &[]).await;
    (caller, queued)
}

//! The server under test: a spawned `helpline serve`, an external one, one in this process, or the bare relay.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use helpline::auth::{hash_password, random_secret, AuthKeys};
use helpline::protocol::ServerEvent;
use helpline::store::users::{NewUser, Role};
use helpline::store::Store;
use serde_json::json;

use crate::client::{self, Ws};
use crate::procfs::Meter;

/// The password of every counsellor the load tool creates.
pub const LOAD_PASSWORD: &str = "load-test-password";

/// What kind of server it is.
pub enum Kind {
    /// The real server, with direct access to its database (to create counsellors and mint tokens).
    Helpline { store: Store, auth: Box<AuthKeys> },
    /// The in-memory bare relay: any username logs in.
    Bare,
    /// The peer: Prosody (XMPP over WebSocket), its archive in SQLite (`load-tests/peer/prosody.sh`).
    Prosody,
}

/// A counsellor account the tool can connect as.
#[derive(Debug, Clone)]
pub struct Counsellor {
    pub username: String,
    pub id: String,
    pub token: String,
}

pub struct Target {
    pub addr: SocketAddr,
    /// The server's process (for /proc figures).
    pub pid: u32,
    pub kind: Kind,
    /// `helpline (sqlite)`, `helpline (postgres)`, `bare`.
    pub label: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
    /// Cluster mode: every node's address (the first is `addr`); empty for one server.
    nodes: Vec<SocketAddr>,
    /// Cluster mode: the other nodes' processes.
    others: Vec<Child>,
}

fn label_of(url: &str) -> String {
    if url.starts_with("postgres") {
        "helpline (postgres)".into()
    } else {
        "helpline (sqlite)".into()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("http client")
}

/// Creates the schema, the helplines and the signing key; returns the store and the keys.
async fn prepare(url: &str, key_file: Option<&Path>) -> anyhow::Result<(Store, AuthKeys)> {
    let store = Store::connect_with(url, key_file).await.with_context(|| format!("opening {url}"))?;
    store.migrate().await.context("migrating")?;
    helpline::store::defaults::seed_helplines(&store).await?;
    // The server signs tokens with the key file's newest signing key (an SQLite file's key file is
    // beside it; a PostgreSQL server's is the one it is given): the tool signs with the same.
    let keys = store.keys().snapshot().map_err(|e| anyhow!("the key file of {url}: {e}"))?;
    let secret = keys.signing.last().map(|k| k.key.clone()).ok_or_else(|| anyhow!("the key file of {url} has no signing key"))?;
    Ok((store, AuthKeys::new(secret.as_bytes(), Duration::from_secs(12 * 3600))))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Starts a child process and waits for its `… listening on http://ADDR` line on stdout.
fn spawn_and_parse(mut cmd: Command, marker: &str) -> anyhow::Result<(Child, SocketAddr, String)> {
    cmd.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut sent = false;
        // Keep draining stdout so the child never blocks on a full pipe.
        while let Some(Ok(line)) = lines.next() {
            if !sent {
                sent = line_has_addr(&line);
                let _ = tx.send(line);
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not print its address (looking for {marker:?})");
            }
        };
        if let Some(rest) = line.split(marker).nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let addr: SocketAddr = addr.parse().with_context(|| format!("parsing address in {line:?}"))?;
            return Ok((child, addr, line));
        }
    }
}

fn line_has_addr(line: &str) -> bool {
    line.contains("listening on http://")
}

impl Target {
    /// Starts `BINARY --database URL serve --listen 127.0.0.1:0` on a fresh database:
    /// a temporary SQLite file when `database` is None, or a new database on the given PostgreSQL server.
    pub async fn spawn_helpline(binary: &Path, database: Option<&str>) -> anyhow::Result<Target> {
        Target::spawn_nodes(binary, database, 1, None).await
    }

    /// Starts `nodes` helpline processes on one fresh database; with `redis`, as a cluster
    /// (`--redis URL --node-id load-N`, a key prefix of their own). The first node started is
    /// normally the leader; clients are spread over all of them.
    pub async fn spawn_nodes(binary: &Path, database: Option<&str>, nodes: usize, redis: Option<&str>) -> anyhow::Result<Target> {
        let (url, dir, pg_drop) = match database {
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite:{}", dir.path().join("helpline.db").display());
                (url, Some(dir), None)
            }
            Some(u) if u.starts_with("postgres") => {
                let dir = tempfile::tempdir()?;
                let name = format!("helpline_load_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(u).await.with_context(|| format!("connecting to {u}"))?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await?;
                pool.close().await;
                let base = u.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or_else(|| u.to_string());
                (format!("{base}/{name}"), Some(dir), Some((u.to_string(), name)))
            }
            Some(u) => (u.to_string(), None, None),
        };
        // PostgreSQL: every node and the tool share a key file of the run's own (an SQLite file's is beside it).
        let key_file = if url.starts_with("postgres") { dir.as_ref().map(|d| d.path().join("helpline.keys")) } else { None };
        let (store, auth) = prepare(&url, key_file.as_deref()).await?;
        let prefix = format!("helpline-load-{}", uuid::Uuid::new_v4().simple());
        let mut started = Vec::new();
        for i in 0..nodes.max(1) {
            let mut cmd = Command::new(binary);
            cmd.args(["--database", &url]);
            if let Some(k) = &key_file {
                cmd.arg("--key-file").arg(k);
            }
            cmd.args(["serve", "--listen", "127.0.0.1:0"]);
            if let Some(r) = redis {
                cmd.args(["--redis", r, "--node-id", &format!("load-{i}")]).env("HELPLINE_REDIS_PREFIX", &prefix);
            }
            cmd.env("RUST_LOG", std::env::var("HELPLINE_LOAD_SERVER_LOG").unwrap_or_else(|_| "warn".into()));
            cmd.env_remove("HELPLINE_JWT_SECRET");
            // The load comes from a handful of loopback addresses: the per-address abuse limits
            // (sockets, new chats per minute) would measure the guard, not the hub's capacity.
            cmd.env("HELPLINE_SOCKETS_PER_IP", "0").env("HELPLINE_CONTACTS_PER_IP_PER_MIN", "0");
            let (child, addr, _) = spawn_and_parse(cmd, "listening on http://")?;
            started.push((child, addr));
        }
        let (child, addr) = started.remove(0);
        let mut label = label_of(&url);
        let nodes: Vec<SocketAddr> = if redis.is_some() {
            label = format!("helpline (postgres, {} nodes)", started.len() + 1);
            std::iter::once(addr).chain(started.iter().map(|(_, a)| *a)).collect()
        } else {
            vec![]
        };
        let pid = child.id();
        Ok(Target {
            addr,
            pid,
            kind: Kind::Helpline { store, auth: Box::new(auth) },
            label,
            http: http(),
            child: Some(child),
            _dir: dir,
            pg_drop,
            nodes,
            others: started.into_iter().map(|(c, _)| c).collect(),
        })
    }

    /// Node `i` (modulo the number of nodes) a client should use: spreads clients over a cluster.
    pub fn node(&self, i: usize) -> SocketAddr {
        if self.nodes.is_empty() {
            self.addr
        } else {
            self.nodes[i % self.nodes.len()]
        }
    }

    /// CPU and memory of every server process (all nodes of a cluster, summed) from now on.
    pub fn meter(&self) -> Meter {
        let mut pids = vec![self.pid];
        pids.extend(self.others.iter().map(|c| c.id()));
        Meter::start_many(&pids)
    }

    /// A helpline already running at `addr` on database `url` (the tool creates counsellors there).
    /// Tokens are signed with the server's key file (`HELPLINE_KEY_FILE` when set, else an SQLite
    /// file's own beside it), so the server must not run with `HELPLINE_JWT_SECRET`.
    pub async fn external(addr: SocketAddr, url: &str, pid: u32) -> anyhow::Result<Target> {
        let key_file = std::env::var_os("HELPLINE_KEY_FILE").map(std::path::PathBuf::from);
        let (store, auth) = prepare(url, key_file.as_deref()).await?;
        Ok(Target {
            addr,
            pid,
            kind: Kind::Helpline { store, auth: Box::new(auth) },
            label: label_of(url),
            http: http(),
            child: None,
            _dir: None,
            pg_drop: None,
            nodes: vec![],
            others: vec![],
        })
    }

    /// A helpline running in this process (tests): its store and signing secret.
    pub fn in_process(addr: SocketAddr, store: Store, jwt_secret: &str, label: &str) -> Target {
        let auth = AuthKeys::new(jwt_secret.as_bytes(), Duration::from_secs(3600));
        Target {
            addr,
            pid: std::process::id(),
            kind: Kind::Helpline { store, auth: Box::new(auth) },
            label: label.into(),
            http: http(),
            child: None,
            _dir: None,
            pg_drop: None,
            nodes: vec![],
            others: vec![],
        }
    }

    /// Starts the bare relay as a child process (`EXE bare-server`), so its CPU and RSS are its own.
    pub fn spawn_bare(exe: &Path) -> anyhow::Result<Target> {
        let mut cmd = Command::new(exe);
        cmd.args(["bare-server", "--listen", "127.0.0.1:0"]);
        let (child, addr, _) = spawn_and_parse(cmd, "listening on http://")?;
        let pid = child.id();
        Ok(Target {
            addr,
            pid,
            kind: Kind::Bare,
            label: "bare".into(),
            http: http(),
            child: Some(child),
            _dir: None,
            pg_drop: None,
            nodes: vec![],
            others: vec![],
        })
    }

    /// Starts the Prosody peer with `script` (`load-tests/peer/prosody.sh DIR HTTP_PORT C2S_PORT`) in a
    /// temporary directory. `pid` is Prosody's own process (the script prints it), for CPU and RSS.
    pub fn spawn_prosody(script: &Path) -> anyhow::Result<Target> {
        let dir = tempfile::tempdir()?;
        let free_port = || -> anyhow::Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
        let (http_port, c2s_port) = (free_port()?, free_port()?);
        let mut cmd = Command::new("bash");
        cmd.arg(script).arg(dir.path()).arg(http_port.to_string()).arg(c2s_port.to_string());
        let (child, addr, line) = spawn_and_parse(cmd, "listening on http://")?;
        let pid = line.split(" pid ").nth(1).and_then(|p| p.trim().parse().ok()).ok_or_else(|| anyhow!("no pid in {line:?}"))?;
        Ok(Target {
            addr,
            pid,
            kind: Kind::Prosody,
            label: "prosody (sqlite)".into(),
            http: http(),
            child: Some(child),
            _dir: Some(dir),
            pg_drop: None,
            nodes: vec![],
            others: vec![],
        })
    }

    /// Prosody only, after [`Target::stop`]: what its archive holds and how SQLite was set up
    /// (`journal_mode` as stored in the file; Prosody sets no `synchronous`, so SQLite's default applies).
    pub async fn prosody_archive(&self) -> anyhow::Result<(String, i64)> {
        let dir = self._dir.as_ref().ok_or_else(|| anyhow!("no data directory"))?;
        let file = dir.path().join("data").join("prosody.sqlite");
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.with_context(|| format!("opening {}", file.display()))?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await?;
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM prosodyarchive WHERE store = 'archive'").fetch_one(&pool).await?;
        pool.close().await;
        Ok((mode, rows))
    }

    /// The bare relay inside this process (tests).
    pub async fn bare_in_process() -> anyhow::Result<Target> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(crate::bare::serve(listener));
        Ok(Target {
            addr,
            pid: std::process::id(),
            kind: Kind::Bare,
            label: "bare".into(),
            http: http(),
            child: None,
            _dir: None,
            pg_drop: None,
            nodes: vec![],
            others: vec![],
        })
    }

    pub fn is_bare(&self) -> bool {
        matches!(self.kind, Kind::Bare)
    }

    /// Creates `n` counsellors (`{prefix}{i}`) serving all helplines and languages with this capacity,
    /// and gives each an access token (minted with the server's key; no Argon2 login per account).
    pub async fn counsellors(&self, prefix: &str, n: usize, capacity: i64) -> anyhow::Result<Vec<Counsellor>> {
        self.accounts(prefix, n, capacity, Role::Counsellor).await
    }

    /// Creates `n` accounts with this role (see [`Target::counsellors`]); supervisors are granted every helpline (an empty list is none).
    pub async fn accounts(&self, prefix: &str, n: usize, capacity: i64, role: Role) -> anyhow::Result<Vec<Counsellor>> {
        match &self.kind {
            Kind::Prosody => bail!("the peer has no counsellors (the relay scenario logs in XMPP users)"),
            Kind::Bare => Ok((0..n)
                .map(|i| {
                    let u = format!("{prefix}{i}");
                    Counsellor { username: u.clone(), id: u.clone(), token: u }
                })
                .collect()),
            Kind::Helpline { store, auth } => {
                let hash = tokio::task::spawn_blocking(|| hash_password(LOAD_PASSWORD)).await?.map_err(|e| anyhow!("hash: {e}"))?;
                let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let username = format!("{prefix}{i}");
                    let user = NewUser {
                        username: username.clone(),
                        display_name: format!("Counsellor {i}"),
                        password_hash: hash.clone(),
                        role,
                        helplines: list(&["children", "disability", "family_violence"]),
                        backup_helplines: vec![],
                        languages: list(&["ro", "ru", "uk", "en"]),
                        capacity,
                    };
                    let created = store.accounts().create_user(&user, now_ms()).await.with_context(|| format!("creating {username}"))?;
                    if role == Role::Supervisor {
                        // Every helpline, as an explicit grant (the board's and the reports' totals
                        // over all of them, as the scenarios compare).
                        store
                            .accounts()
                            .set_user_all_helplines(&username, true)
                            .await
                            .with_context(|| format!("granting {username} every helpline"))?;
                    }
                    let (token, _) = auth.issue(&created.id, role, now_ms())?;
                    out.push(Counsellor { username, id: created.id, token });
                }
                Ok(out)
            }
        }
    }

    /// Gives a counsellor a phone extension (only counsellors with one are offered calls).
    pub async fn set_extension(&self, c: &Counsellor, extension: &str) -> anyhow::Result<()> {
        let Kind::Helpline { store, .. } = &self.kind else { bail!("only helpline has extensions") };
        store.accounts().set_user_extension(&c.id, Some(extension)).await.context("setting an extension")?;
        Ok(())
    }

    /// Registers a telephone exchange (`helpline gateway add NAME`) and returns its service token.
    pub async fn gateway(&self, name: &str) -> anyhow::Result<String> {
        let Kind::Helpline { store, .. } = &self.kind else { bail!("only helpline has gateways") };
        let token = random_secret();
        store.exchanges().create_gateway(name, &helpline::auth::token_hash(&token), now_ms()).await.context("creating a gateway")?;
        Ok(token)
    }

    /// Logs in over HTTP (Argon2 on the server): for checking the login path, not needed for load.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let res = self
            .http
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("login of {username}: HTTP {}", res.status());
        }
        let body: serde_json::Value = res.json().await?;
        body["access_token"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no access_token"))
    }

    /// A counsellor's socket: ticket, upgrade, `hello` read.
    pub async fn agent_socket(&self, c: &Counsellor, source: Option<IpAddr>) -> anyhow::Result<Ws> {
        self.agent_socket_on(self.addr, c, source).await
    }

    /// [`Target::agent_socket`] on a given node (the ticket is asked from the same node).
    pub async fn agent_socket_on(&self, node: SocketAddr, c: &Counsellor, source: Option<IpAddr>) -> anyhow::Result<Ws> {
        let mut ws = self.staff_socket_on(node, c, "/ws/agent", source).await?;
        client::expect(&mut ws, Duration::from_secs(30), |e| matches!(e, ServerEvent::Hello { .. }).then_some(())).await?;
        Ok(ws)
    }

    /// A staff socket (`/ws/agent`, `/ws/supervisor`) opened with a single-use ticket.
    pub async fn staff_socket(&self, c: &Counsellor, path: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
        self.staff_socket_on(self.addr, c, path, source).await
    }

    async fn staff_socket_on(&self, node: SocketAddr, c: &Counsellor, path: &str, source: Option<IpAddr>) -> anyhow::Result<Ws> {
        let res = self.http.post(format!("http://{node}/api/v1/ws-ticket")).bearer_auth(&c.token).send().await.context("ticket request")?;
        if !res.status().is_success() {
            bail!("ticket for {}: HTTP {}", c.username, res.status());
        }
        let body: serde_json::Value = res.json().await?;
        let ticket = body["ticket"].as_str().ok_or_else(|| anyhow!("no ticket"))?;
        client::connect(node, &format!("{path}?ticket={ticket}"), source).await
    }

    /// Stops a spawned server (SIGTERM, then SIGKILL after 15 s).
    pub fn stop(&mut self) {
        let others: Vec<Child> = self.others.drain(..).collect();
        // Followers first: stopping the leader first would make them take over.
        for mut child in others.into_iter().chain(self.child.take()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Stops the server and drops a PostgreSQL database the tool created.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Kind::Helpline { store, .. } = &self.kind {
            store.close().await;
        }
        if let Some((admin, name)) = self.pg_drop.take() {
            if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                pool.close().await;
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

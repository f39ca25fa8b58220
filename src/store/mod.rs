//! Persistence: one `Store` handle over SQLite (embedded default) or PostgreSQL, one submodule per concern.
//!
//! Every query is written once, in SQL both engines accept (`$1` placeholders,
//! BIGINT integers, TEXT ids), and run on whichever pool is configured through
//! the [`on_pool!`] macro, which expands the same code for each driver (it hides no `?` or `return`:
//! those stay at the call site). What runs inside an open transaction is a method of a small trait
//! implemented for both engines' connections with one body ([`both_engines!`]); the leader's writes
//! run only in a [`cluster::LeaderTx`], which only [`Store::begin_leader_write`] opens (fenced).

pub mod abuse;
pub mod audit;
pub mod backup;
pub mod callbacks;
pub mod calls;
pub mod canned;
pub mod cases;
pub mod channels;
pub mod cluster;
pub mod commands;
pub mod contacts;
pub mod continuity;
pub mod defaults;
pub mod erasures;
pub mod figures;
pub mod forms;
pub mod gateways;
pub mod handovers;
pub mod helplines;
pub mod hours;
pub mod keys;
pub mod messages;
pub mod privacy;
pub mod referrals;
pub mod retention;
pub mod rollup;
pub mod sealed;
pub mod secrets;
pub mod services;
pub mod sessions;
pub mod surveys;
pub mod tasks;
pub mod transfers;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Errors from storage. Callers map them to `AppError`; the details go to the log, never to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("bad database url: {0}")]
    BadUrl(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Cluster mode: this node's fencing token is no longer the current one (a newer leader took
    /// over); the write was refused and nothing was stored.
    #[error("fenced: a newer leader holds the routing lease")]
    Fenced,
    /// A write stored together with others failed (the error the group's commit got).
    #[error("stored in a group that failed: {0}")]
    GroupFailed(String),
    /// A sealed value did not open (altered, moved from another row, or its key is not in the key file).
    #[error("sealed value: {0}")]
    Sealed(String),
    /// The key file is missing, unreadable or not the one this database was sealed with.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict`, leaving other errors as they are.
    pub(crate) fn from_insert(err: sqlx::Error, what: &str) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict(what.to_string());
            }
        }
        StoreError::Sqlx(err)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap-to-clone handle on the database pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: Pool,
    /// Cluster mode, on the leader: the fencing token its routing and message writes must still hold.
    pub(crate) fence: Option<cluster::FenceToken>,
    /// Whether the last durable writes went through (for `/readyz`).
    health: std::sync::Arc<WriteHealth>,
    /// New contacts are stored in groups, one transaction at a time ([`contacts::Creations`]).
    pub(crate) creations: std::sync::Arc<contacts::Creations>,
    /// The keys, from the key file (never from the database): [`keys`].
    pub(crate) keys: keys::Keys,
}

/// How long SQLite's one writer connection waits for the database lock held by another process before
/// its write fails (`unavailable`). Writers queued behind it in the pool wait their turn on top, at most
/// the pool's acquire timeout (10 s): a 10 s wait here made a queue of five writers take a minute.
pub const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a failed write keeps `/readyz` at "not ready" when no write has succeeded since.
/// (A write that succeeds clears it at once; without traffic the flag ages out, and the next failure sets it again.)
pub const WRITE_FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// What a check of the database gave ([`Store::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Answered,
    /// It answered with an error (connection refused, I/O error, …).
    Failed,
    /// No answer within the time: down, or the server too busy to get a connection (see [`BUSY_GRACE`]).
    TimedOut,
}

/// A check that times out within this long after a durable write went through means the server is
/// busy, not cut off from its database (see [`Store::check_says_down`]).
pub const BUSY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The outcome of the durable writes (messages, routing steps, new contacts): a database that
/// answers `SELECT 1` but cannot write (a lock held elsewhere, a full disk) is not ready either.
#[derive(Debug, Default)]
struct WriteHealth {
    /// When the last write failed, if none has succeeded since.
    failing: std::sync::Mutex<Option<std::time::Instant>>,
    /// The database did not answer the server's last check ([`Store::set_answering`]) and no write
    /// has gone through since.
    unreachable: std::sync::atomic::AtomicBool,
    /// When a durable write last went through.
    last_ok: std::sync::Mutex<Option<std::time::Instant>>,
}

impl WriteHealth {
    fn note(&self, ok: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *failing = if ok { None } else { Some(std::time::Instant::now()) };
        if ok {
            // A write went through: the database is back, whatever the last check said.
            *self.last_ok.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(std::time::Instant::now());
            self.unreachable.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn ok(&self) -> bool {
        let failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failing.is_none_or(|at| at.elapsed() > WRITE_FAILURE_MEMORY)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    /// SQLite: reads on `read` (several connections: WAL readers do not wait for the writer), write
    /// transactions on `write`, one connection: writers queue for it in order, in the pool, instead of
    /// in SQLite's busy handler, which retries a locked database after sleeps of 1, 2, 5, 10 … 100 ms
    /// (at 100 new chats a second, four connections taking turns that way put 10–20 ms sleeps in the
    /// tail of routing steps). An in-memory database is one pool.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store holds: `on_pool!(self, pool => expr)`.
/// `pool` is bound to `&SqlitePool` or `&PgPool`, so `sqlx::query(..).execute(pool)` type-checks in both arms.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite { read: $pool, .. } => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// [`on_pool!`] for code that opens a write transaction (`pool.begin_write()`): on SQLite, the
/// writers' pool ([`Pool::Sqlite`]).
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite { write: $pool, .. } => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_writer;

/// Implements a trait for the SQLite and the PostgreSQL type given, with one body written once:
/// `both_engines!(impl Trait for SqliteType, PgType { async fn … })`. It generates the two impls and
/// nothing else; a call site calls the trait's methods and shows their `.await?` itself.
macro_rules! both_engines {
    (impl $trait:ident for $sqlite:ty, $postgres:ty { $($body:tt)* }) => {
        impl $trait for $sqlite {
            $($body)*
        }
        impl $trait for $postgres {
            $($body)*
        }
    };
}
pub(crate) use both_engines;

/// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at the
/// start, so a transaction that reads before it writes waits for the lock (busy timeout) instead of
/// failing with "database is locked" when another connection commits in between.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// The options of an SQLite pool of at most `connections`.
fn sqlite_pool(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        // A COMMIT refused by SQLite (a full disk: SQLITE_FULL) leaves sqlx counting a
        // transaction that SQLite has already rolled back, so the ROLLBACK queued when the
        // transaction is dropped fails and every later `BEGIN IMMEDIATE` on that connection
        // is refused ("non-zero transaction depth"). Such a connection is closed on release
        // (the ping first runs the queued rollback); a fresh one replaces it.
        .after_release(|conn, _meta| {
            Box::pin(async move {
                use sqlx::Connection;
                conn.ping().await?;
                let clean = !conn.is_in_transaction();
                if !clean {
                    tracing::warn!("closing a database connection left inside a failed transaction");
                }
                Ok(clean)
            })
        })
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects to `url` ([`Store::connect_with`]) with the key file this process knows for it
    /// ([`keys::remember_key_file`]) or, for an SQLite file, the one beside it.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Store::connect_with(url, None).await
    }

    /// Connects to `url` with the key file at `key_file` (created when missing). Without one: an
    /// SQLite file's is beside it (`<file>.keys`), an in-memory database's keys live in memory, and a
    /// PostgreSQL store has none unless this process was told of one ([`keys::remember_key_file`]):
    /// what needs a key then fails with [`keys::KeyError::Missing`].
    pub async fn connect_with(url: &str, key_file: Option<&std::path::Path>) -> StoreResult<Store> {
        let path =
            key_file.map(std::path::Path::to_path_buf).or_else(|| keys::remembered_key_file(url)).or_else(|| keys::default_key_file(url));
        let now = crate::clock::Clock::new().now_ms();
        let keys = match &path {
            Some(p) => keys::Keys::open(p, now)?,
            None if url.starts_with("sqlite:") => keys::Keys::ephemeral(),
            None => keys::Keys::missing(),
        };
        if let Some(p) = &path {
            keys::remember_key_file(url, p);
        }
        let mut store = Store::connect_pool(url).await?;
        store.keys = keys;
        Ok(store)
    }

    /// Connects to `url` without opening any key file (none is created): for `helpline backup` and
    /// the checks of `helpline restore`, which read no sealed value.
    pub async fn connect_without_keys(url: &str) -> StoreResult<Store> {
        Store::connect_pool(url).await
    }

    /// SQLite: copies the WAL into the database file and empties it, so pages from before a key was
    /// deleted or a row sealed are gone from the WAL too (best effort; nothing on PostgreSQL).
    pub(crate) async fn truncate_wal(&self) {
        if let Pool::Sqlite { write, .. } = &self.pool {
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(write).await {
                tracing::warn!(error = %err, "emptying the WAL failed");
            }
        }
    }

    /// The keys this store holds (the key file's content).
    pub fn keys(&self) -> &keys::Keys {
        &self.keys
    }

    /// Connects to `url`: `sqlite:path` / `sqlite://path` (created if missing) or `postgres://…`.
    /// SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk before it returns.
    async fn connect_pool(url: &str) -> StoreResult<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // A transaction left open by a paused process (a cluster leader stopped mid-commit) must
            // not hold its locks for ever: the server ends it after 5 s. JIT compilation is off: our
            // queries are short, and compiling them cost more than running them (reports, roll-ups).
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .options([("idle_in_transaction_session_timeout", "5000"), ("jit", "off")]);
            let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect_with(opts).await?;
            Ok(Store {
                pool: Pool::Postgres(pool),
                fence: None,
                health: Default::default(),
                creations: Default::default(),
                keys: keys::Keys::missing(),
            })
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // Deleted and overwritten rows are zeroed, not left in free pages: a key moved out of
                // `server_secrets`, a row's clear text replaced by its sealed value (docs/security.md).
                .pragma("secure_delete", "ON")
                .busy_timeout(Duration::from_secs(10));
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let read = sqlite_pool(4).connect_with(opts.clone()).await?;
            // The writer waits less for SQLite's lock than the readers (which may write a row outside a
            // transaction): another process can hold it (`helpline` on the command line, an operator's
            // `sqlite3`), and in-process writers queue behind the one waiting, each for its turn.
            let opts = opts.busy_timeout(WRITER_BUSY_TIMEOUT);
            let write = if in_memory { read.clone() } else { sqlite_pool(1).connect_with(opts).await? };
            Ok(Store {
                pool: Pool::Sqlite { read, write },
                fence: None,
                health: Default::default(),
                creations: Default::default(),
                keys: keys::Keys::missing(),
            })
        } else {
            Err(StoreError::BadUrl(format!("expected sqlite:PATH or postgres://…, got {:?}", url.split(':').next().unwrap_or_default())))
        }
    }

    /// Applies the embedded migrations (idempotent); moves keys still kept in `server_secrets` into the
    /// key file and checks the key file is this database's ([`secrets::Secrets::settle_keys`]); seals
    /// the rows written in clear before sealing existed, with progress ([`secrets::Secrets::seal_existing_rows`]);
    /// then chains audit lines written before the audit log's hash chain existed (once).
    pub async fn migrate(&self) -> StoreResult<()> {
        on_pool!(self, pool => MIGRATOR.run(pool).await)?;
        self.secrets().settle_keys().await?;
        self.secrets().seal_existing_rows().await?;
        self.audit_log().rekey_chain().await?;
        self.audit_log().seal_audit_log().await
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Asks the database `SELECT 1`, waiting at most 2 s (see [`Check`]).
    pub async fn check(&self) -> Check {
        let ping = async { on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())) };
        match tokio::time::timeout(std::time::Duration::from_secs(2), ping).await {
            Ok(Ok(())) => Check::Answered,
            Ok(Err(_)) => Check::Failed,
            Err(_) => Check::TimedOut,
        }
    }

    /// Whether a check begun at `checked_from` that gave `check` says the database is down: an error
    /// does, unless a durable write went through after the check began; no answer within the time
    /// does only when no durable write has gone through for [`BUSY_GRACE`] either (a server that
    /// is overloaded, with writes still going through, is busy, not cut off from its database).
    pub fn check_says_down(&self, check: Check, checked_from: std::time::Instant) -> bool {
        let last_ok = *self.health.last_ok.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match check {
            Check::Answered => false,
            Check::Failed => last_ok.is_none_or(|at| at <= checked_from),
            Check::TimedOut => last_ok.is_none_or(|at| at + BUSY_GRACE <= checked_from),
        }
    }

    /// Cluster mode: this store's writes are fenced (it is a leader's).
    pub fn is_fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// False while the database is known to be unreachable: its last check failed (see
    /// [`Store::set_answering`]) and no durable write has gone through since. Sessions then refuse what
    /// needs the database at once, with `unavailable`, and `/readyz` answers 503.
    pub fn answering(&self) -> bool {
        !self.health.unreachable.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records the outcome of a check of the database (every second) begun at `checked_from`;
    /// returns whether the state changed. A check that does not say the database is down
    /// ([`Store::check_says_down`]) while it did not answer changes nothing.
    pub fn set_answering(&self, check: Check, checked_from: std::time::Instant) -> bool {
        let up = match check {
            Check::Answered => true,
            _ if self.check_says_down(check, checked_from) => false,
            _ => return false,
        };
        self.health.unreachable.swap(!up, std::sync::atomic::Ordering::SeqCst) == up
    }

    /// False while durable writes fail: the last one failed (less than [`WRITE_FAILURE_MEMORY`] ago) and none has succeeded since.
    pub fn writes_ok(&self) -> bool {
        self.health.ok()
    }

    /// Records the outcome of a durable write (see [`Store::writes_ok`]). A write refused by the
    /// cluster fence is not a database failure: the database answered.
    pub(crate) fn note_write<T>(&self, result: &StoreResult<T>) {
        self.health.note(matches!(result, Ok(_) | Err(StoreError::Fenced)));
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        if let Pool::Sqlite { write, .. } = &self.pool {
            write.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }
}

/// The store by concern: each view holds one concern's queries (`store.cases().case(id)`), so a caller
/// names the parts it needs (`tests/layers.rs` checks which each domain may name).
impl Store {
    /// Flags, blocks of a caller's keyed identifier, refused chats and calls.
    pub fn abuse(&self) -> abuse::Abuse<'_> {
        abuse::Abuse(self)
    }

    /// Staff accounts: roles, status, extension, districts.
    pub fn accounts(&self) -> users::Accounts<'_> {
        users::Accounts(self)
    }

    /// The audit log and its hash chain.
    pub fn audit_log(&self) -> audit::AuditLog<'_> {
        audit::AuditLog(self)
    }

    /// What the database holds (row counts) and SQLite's online copy: `helpline backup` / `restore`.
    pub fn backup(&self) -> backup::Backup<'_> {
        backup::Backup(self)
    }

    /// Phone calls: their records and events.
    pub fn calls(&self) -> calls::Calls<'_> {
        calls::Calls(self)
    }

    /// Cases: their contacts, entries, stages, managers, persons; stage deadlines.
    pub fn cases(&self) -> cases::Cases<'_> {
        cases::Cases(self)
    }

    /// Durable commands to exchanges: issue, claim, acknowledge, release.
    pub fn commands(&self) -> commands::Commands<'_> {
        commands::Commands(self)
    }

    /// Contacts and their event log; a routing step's changes.
    pub fn contacts(&self) -> contacts::Contacts<'_> {
        contacts::Contacts(self)
    }

    /// Helplines and the dialled-number map.
    pub fn directory(&self) -> helplines::Directory<'_> {
        helplines::Directory(self)
    }

    /// The exchanges' accounts (gateways) and their tokens.
    pub fn exchanges(&self) -> gateways::Exchanges<'_> {
        gateways::Exchanges(self)
    }

    /// Cluster mode's fence row (raise, read).
    pub fn fencing(&self) -> cluster::Fencing<'_> {
        cluster::Fencing(self)
    }

    /// Contact forms and escalations.
    pub fn forms(&self) -> forms::Forms<'_> {
        forms::Forms(self)
    }

    /// Conversation messages: numbering, group writes, history.
    pub fn messages(&self) -> messages::Messages<'_> {
        messages::Messages(self)
    }

    /// Services, suggestions and placements.
    pub fn placements(&self) -> services::Placements<'_> {
        services::Placements(self)
    }

    /// Referrals of cases to services, and the services' webhooks.
    pub fn referrals(&self) -> referrals::Referrals<'_> {
        referrals::Referrals(self)
    }

    /// What is held about a contact or an identifier (access requests).
    pub fn privacy(&self) -> privacy::Privacy<'_> {
        privacy::Privacy(self)
    }

    /// What is due for purging, and the purge.
    pub fn retention(&self) -> retention::Retention<'_> {
        retention::Retention(self)
    }

    /// The report roll-ups' tables.
    pub fn rollups(&self) -> rollup::Rollups<'_> {
        rollup::Rollups(self)
    }

    /// Server secrets kept in the database.
    pub fn secrets(&self) -> secrets::Secrets<'_> {
        secrets::Secrets(self)
    }

    /// Logout everywhere and refresh tokens.
    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions(self)
    }

    /// The callers' survey after a chat: counts per helpline, day, question and choice.
    pub fn surveys(&self) -> surveys::Surveys<'_> {
        surveys::Surveys(self)
    }

    /// Canned responses: staff text per helpline and language, for the console.
    pub fn canned(&self) -> canned::Canned<'_> {
        canned::Canned(self)
    }

    /// Messaging channels: their settings, conversations (reply addresses sealed), inbound ids, the outbox.
    pub fn channels(&self) -> channels::Channels<'_> {
        channels::Channels(self)
    }
}

/// A new time-ordered row id (UUIDv7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Splits a stored comma-separated list.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect()
}

/// Joins a list for storage.
pub(crate) fn join_list<S: AsRef<str>>(items: &[S]) -> String {
    items.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(",")
}

/// What the store's unit tests share: an in-memory SQLite store, migrated, with the default helplines.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) async fn seeded() -> Store {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        store.migrate().await.expect("migrate");
        defaults::seed_helplines(&store).await.expect("seed");
        store
    }

    /// A write transaction on the writers' pool (SQLite: `BEGIN IMMEDIATE`).
    pub(crate) async fn write_tx(store: &Store) -> sqlx::Transaction<'static, sqlx::Sqlite> {
        let Pool::Sqlite { write, .. } = &store.pool else { panic!("an SQLite store") };
        write.begin_write().await.expect("begin")
    }

    /// A waiting chat on the children's helpline, queued at `queued_at`; its id.
    pub(crate) async fn queued_chat(store: &Store, queued_at: i64) -> String {
        let id = new_id();
        let record = contacts::NewContactRecord {
            id: id.clone(),
            channel: "chat".into(),
            helpline: "children".into(),
            language: "ro".into(),
            priority: 0,
            resume_token_hash: format!("token {id}"),
            queued_at,
        };
        store.contacts().create_contact(&record).await.expect("stored");
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_goes_through_overrides_a_failed_check_begun_before_it() {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        assert!(store.answering(), "a new store is taken as answering");
        let begun = std::time::Instant::now();
        store.note_write(&Ok::<(), StoreError>(()));
        assert!(!store.set_answering(Check::Failed, begun), "a check older than a good write changes nothing");
        assert!(store.answering());
        assert!(store.set_answering(Check::Failed, std::time::Instant::now()), "a newer failed check marks it unreachable");
        assert!(!store.answering());
        store.note_write(&Err::<(), StoreError>(StoreError::Fenced));
        assert!(store.answering(), "a fenced write is an answer from the database");
        assert!(store.set_answering(Check::Failed, std::time::Instant::now()));
        store.note_write(&Ok::<(), StoreError>(()));
        assert!(store.answering(), "a write that goes through ends the outage at once");
    }

    /// Writes go through the writers' pool, one connection; readers see its commits at once.
    #[tokio::test]
    async fn one_writer_connection_and_readers_see_its_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("h.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let Pool::Sqlite { read, write } = &store.pool else { panic!("sqlite") };
        assert_eq!(write.options().get_max_connections(), 1, "one writer");
        assert!(read.options().get_max_connections() > 1, "several readers");
        let writes = (0..50).map(|i| {
            let store = store.clone();
            async move { store.audit_log().audit(i, "test", "fill", Some("target"), Some("x")).await }
        });
        for result in futures_util::future::join_all(writes).await {
            result.expect("concurrent writes queue for the writer, none is refused");
        }
        assert_eq!(store.audit_log().audit_for("target").await.expect("read").len(), 50, "readers see the writer's commits");
    }

    fn new_chat(n: u64) -> contacts::NewContactRecord {
        contacts::NewContactRecord {
            id: new_id(),
            channel: "chat".into(),
            helpline: "children".into(),
            language: "ro".into(),
            priority: 0,
            resume_token_hash: format!("token {n}"),
            queued_at: 1,
        }
    }

    /// New contacts arriving while one group commits are stored together in the next group (one
    /// transaction), and each hears its own outcome; a group that fails fails each of its contacts.
    #[tokio::test]
    async fn new_contacts_arriving_together_are_stored_in_one_group() {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        store.migrate().await.expect("migrate");
        crate::store::defaults::seed_helplines(&store).await.expect("seed");
        // Hold the group lock, as a group being committed would; 20 chats arrive meanwhile.
        let committing = store.creations.committing.lock().await;
        let records: Vec<_> = (0..20).map(new_chat).collect();
        let mut waiting: Vec<_> = records
            .iter()
            .map(|r| {
                let (store, r) = (store.clone(), r.clone());
                tokio::spawn(async move { store.contacts().create_contact(&r).await })
            })
            .collect();
        while store.creations.pending.lock().unwrap_or_else(|p| p.into_inner()).len() < 20 {
            tokio::task::yield_now().await;
        }
        drop(committing);
        for w in waiting.drain(..) {
            w.await.expect("task").expect("stored");
        }
        assert_eq!(store.creations.groups.load(std::sync::atomic::Ordering::SeqCst), 1, "one transaction for all 20");
        for r in &records {
            assert!(store.contacts().contact(&r.id).await.expect("read").is_some());
        }
        // A group with a row the database refuses (an id already stored) fails for every contact in it.
        let committing = store.creations.committing.lock().await;
        let fresh = new_chat(99);
        let (a, b) = (store.clone(), store.clone());
        let (repeat, fresh_clone) = (records[0].clone(), fresh.clone());
        let first = tokio::spawn(async move { a.contacts().create_contact(&repeat).await });
        let second = tokio::spawn(async move { b.contacts().create_contact(&fresh_clone).await });
        while store.creations.pending.lock().unwrap_or_else(|p| p.into_inner()).len() < 2 {
            tokio::task::yield_now().await;
        }
        drop(committing);
        assert!(first.await.expect("task").is_err());
        assert!(second.await.expect("task").is_err(), "stored with a failing row: refused too, to be tried again");
        assert!(store.contacts().contact(&fresh.id).await.expect("read").is_none(), "nothing of a failed group is stored");
        store.contacts().create_contact(&fresh).await.expect("alone it is stored");
    }

    /// A routing batch's event-log lines are written several to a statement, more than one statement's
    /// worth included, in order, each once.
    #[tokio::test]
    async fn a_batch_of_changes_writes_every_event_line_in_order() {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        store.migrate().await.expect("migrate");
        crate::store::defaults::seed_helplines(&store).await.expect("seed");
        let chat = new_chat(1);
        store.contacts().create_contact(&chat).await.expect("stored");
        const KINDS: [&str; 3] = ["sla_at_risk", "sla_breached", "caller_disconnected"];
        let changes: Vec<contacts::Change> = (0..300)
            .map(|i| contacts::Change::Event {
                contact: chat.id.clone(),
                at: 10 + i,
                kind: KINDS[(i % 3) as usize],
                counsellor: None,
                detail: Some(format!("line {i}")),
            })
            .collect();
        store.contacts().apply_changes(&changes).await.expect("one transaction");
        let events = store.contacts().contact_events(&chat.id).await.expect("read");
        assert_eq!(events.len(), 301, "the queued line and the 300 of the batch");
        assert_eq!(events[0].kind, "queued");
        for (i, e) in events[1..].iter().enumerate() {
            assert_eq!((e.at, e.detail.as_deref()), (10 + i as i64, Some(format!("line {i}").as_str())));
            assert_eq!(e.kind, KINDS[i % 3]);
        }
    }

    #[tokio::test]
    async fn a_check_that_times_out_while_writes_go_through_is_busy_not_down() {
        let store = Store::connect("sqlite::memory:").await.expect("connect");
        store.note_write(&Ok::<(), StoreError>(()));
        let now = std::time::Instant::now();
        assert!(!store.set_answering(Check::TimedOut, now), "writes went through a moment ago: busy, not down");
        assert!(store.answering());
        let later = now + BUSY_GRACE + std::time::Duration::from_secs(1);
        assert!(store.check_says_down(Check::TimedOut, later), "no write for longer than the grace: down");
        assert!(store.set_answering(Check::TimedOut, later));
        assert!(!store.answering());
        assert!(store.set_answering(Check::Answered, later), "an answer ends it");
        assert!(store.answering());
    }
}

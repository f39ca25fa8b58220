//! Backups and restores (`helpline backup`, `helpline restore`; docs/deployment.md, "Backup" and
//! "Restore"). SQLite: an online copy with `VACUUM INTO` (a consistent snapshot taken in one read
//! transaction, while the server goes on writing through the WAL), restored by copying it back the
//! same way. PostgreSQL: `pg_dump` and `pg_restore` (run by the command line, not here). Neither
//! copy holds a key: the keys are in the key file (docs/security.md, "Keys and sealing").

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::{on_pool, Pool, Store, StoreError, StoreResult};

/// The tables whose rows make a database "not empty" for a restore, and which the progress lines
/// count: what an operator would lose if a restore overwrote them.
pub const HELD_TABLES: [&str; 7] = ["contacts", "messages", "contact_forms", "calls", "cases", "users", "audit_log"];

/// A view of the store: what it holds, and SQLite's online copy ([`Store::backup`]).
#[derive(Clone, Copy, Debug)]
pub struct Backup<'a>(pub(super) &'a Store);

impl Backup<'_> {
    /// The rows of each of [`HELD_TABLES`]; a table that does not exist yet (a database never
    /// migrated) counts 0.
    pub async fn held(self) -> StoreResult<Vec<(&'static str, u64)>> {
        // A database that does not answer is an error, not an empty one.
        on_pool!(self.0, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        let mut counts = Vec::new();
        for table in HELD_TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: Result<(i64,), sqlx::Error> = on_pool!(self.0, pool => sqlx::query_as(&sql).fetch_one(pool).await);
            counts.push((table, n.map_or(0, |(n,)| u64::try_from(n).unwrap_or(0))));
        }
        Ok(counts)
    }

    /// SQLite: writes a consistent copy of the database to `to` (which must not exist) while the
    /// server serves (`VACUUM INTO`: one read transaction; writers go on through the WAL). The copy
    /// is checked (`PRAGMA quick_check`) before this returns.
    pub async fn copy_to(self, to: &Path) -> StoreResult<()> {
        let Pool::Sqlite { read, .. } = &self.0.pool else {
            return Err(StoreError::BadUrl("an online copy is for SQLite; back PostgreSQL up with pg_dump".into()));
        };
        let target = to.to_str().ok_or_else(|| StoreError::BadUrl(format!("{} is not a UTF-8 path", to.display())))?;
        sqlx::query("VACUUM INTO $1").bind(target).execute(read).await?;
        check_sqlite_file(to).await
    }
}

/// Opens the SQLite file at `path` read-only, on one connection.
async fn read_only(path: &Path) -> StoreResult<sqlx::SqlitePool> {
    let opts = SqliteConnectOptions::new().filename(path).read_only(true).create_if_missing(false);
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?)
}

/// Checks that the SQLite file at `path` is a whole database (`PRAGMA quick_check`).
pub async fn check_sqlite_file(path: &Path) -> StoreResult<()> {
    let pool = read_only(path).await?;
    let (result,): (String,) = sqlx::query_as("PRAGMA quick_check").fetch_one(&pool).await?;
    pool.close().await;
    if result != "ok" {
        return Err(StoreError::Conflict(format!("{} is damaged: {result}", path.display())));
    }
    Ok(())
}

/// The file of an SQLite database URL (`sqlite:/x/h.db?mode=rwc` → `/x/h.db`); None for an
/// in-memory database or another engine.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory")).then(|| PathBuf::from(path))
}

/// SQLite: replaces the (empty: the caller checked) database at `url` with a copy of the backup
/// `from`, checked first. The database's own files (`-wal`, `-shm`) are removed before.
pub async fn restore_sqlite_file(from: &Path, url: &str) -> StoreResult<()> {
    let to = sqlite_file(url).ok_or_else(|| StoreError::BadUrl("restore needs an SQLite file, not an in-memory database".into()))?;
    SqliteConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    check_sqlite_file(from).await?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", to.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Conflict(format!("cannot replace {}: {e}", file.display()))),
        }
    }
    let target = to.to_str().ok_or_else(|| StoreError::BadUrl(format!("{} is not a UTF-8 path", to.display())))?;
    let pool = read_only(from).await?;
    sqlx::query("VACUUM INTO $1").bind(target).execute(&pool).await?;
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sqlite_url_names_its_file() {
        assert_eq!(sqlite_file("sqlite:/x/h.db"), Some(PathBuf::from("/x/h.db")));
        assert_eq!(sqlite_file("sqlite:///x/h.db?mode=rwc"), Some(PathBuf::from("/x/h.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}

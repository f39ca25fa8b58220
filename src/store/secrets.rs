//! The server's secrets: kept in the key file ([`super::keys`]), never in the database. The database
//! keeps only a keyed check of each key (`key_checks`). Before the key file existed they were rows of
//! `server_secrets`; [`Secrets::settle_keys`] moves such rows into the key file and deletes them.

use super::keys::{KeyEntry, KeyError, LEGACY_SIGNING_NAME};
use super::sealed::{self, SEALED_COLUMNS};
use super::{on_pool, on_writer, BeginWrite, Store, StoreError, StoreResult};

/// A view of the store: the server's secrets, from the key file ([`Store::secrets`]).
#[derive(Clone, Copy, Debug)]
pub struct Secrets<'a>(pub(super) &'a Store);

/// Rows sealed per transaction when sealing existing rows.
const SEAL_PAGE: i64 = 500;

impl Secrets<'_> {
    /// The keyed hash key called `name` from the key file; one not there yet is made with `generate()`
    /// and added to the key file (and its check to the database).
    pub async fn secret_or_create(self, name: &str, now: i64, generate: impl FnOnce() -> String) -> StoreResult<String> {
        if let Some(found) = self.0.keys.with(|k| k.hmac.get(name).cloned())? {
            return Ok(found);
        }
        let value = generate();
        let value = self.0.keys.update(|k| k.hmac.entry(name.to_string()).or_insert(value).clone())?;
        self.record_checks(now).await?;
        Ok(value)
    }

    /// Moves the keys still kept in `server_secrets` (a database from before the key file) into the key
    /// file, then deletes them from the database: the keyed hashes' keys as they were (stored hashes
    /// keep matching), the signing key as the one that signs (tokens it signed keep verifying). Then
    /// checks every key the database knows of against the key file (a key file that is not this
    /// database's is refused: [`KeyError::Mismatch`]) and records the checks of new keys.
    pub(crate) async fn settle_keys(self) -> StoreResult<()> {
        if self.0.keys.is_missing() {
            return Ok(());
        }
        let now = crate::clock::Clock::new().now_ms();
        let legacy: Vec<(String, String)> =
            on_pool!(self.0, pool => sqlx::query_as("SELECT name, value FROM server_secrets ORDER BY name").fetch_all(pool).await)?;
        if !legacy.is_empty() {
            self.0.keys.update(|k| {
                for (name, value) in &legacy {
                    if name == LEGACY_SIGNING_NAME {
                        if !k.signing.iter().any(|s| &s.key == value) {
                            let kid = format!("s0-{}", &super::keys::hmac_hex(value.as_bytes(), b"kid")[..8]);
                            k.signing.push(KeyEntry { kid, key: value.clone(), created_at: now });
                        }
                    } else {
                        k.hmac.insert(name.clone(), value.clone());
                    }
                }
            })?;
            // Checks of keys the move replaced (an HMAC key created with the file) go too.
            on_pool!(self.0, pool => sqlx::query("DELETE FROM key_checks WHERE name LIKE 'hmac:%'").execute(pool).await.map(|_| ()))?;
            on_pool!(self.0, pool => sqlx::query("DELETE FROM server_secrets").execute(pool).await.map(|_| ()))?;
            self.0.truncate_wal().await;
            tracing::info!(keys = legacy.len(), "keys moved from the database into the key file");
        }
        let stored: Vec<(String, String)> = on_pool!(self.0, pool => sqlx::query_as("SELECT name, mac FROM key_checks WHERE name NOT LIKE 'audit-chain:%' AND name NOT LIKE 'sealed:%'").fetch_all(pool).await)?;
        let ours = self.0.keys.with(|k| k.checks())?;
        for (name, mac) in &stored {
            match ours.iter().find(|(n, _)| n == name) {
                Some((_, m)) if m == mac => {}
                Some(_) => return Err(KeyError::Mismatch(format!("key {name} differs")).into()),
                None => return Err(KeyError::Mismatch(format!("key {name} is not in it")).into()),
            }
        }
        self.record_checks(now).await
    }

    /// Records the checks of keys the database has not seen yet.
    async fn record_checks(self, now: i64) -> StoreResult<()> {
        for (name, mac) in self.0.keys.with(|k| k.checks())? {
            on_pool!(self.0, pool => sqlx::query("INSERT INTO key_checks (name, mac, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(&name).bind(&mac).bind(now).execute(pool).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// Seals every value of [`SEALED_COLUMNS`] written in clear (rows from before sealing existed),
    /// page by page, each page one transaction, with a log line per page; once per column (a
    /// `sealed:<place>` line in `key_checks` records that the column is done).
    pub(crate) async fn seal_existing_rows(self) -> StoreResult<()> {
        if self.0.keys.is_missing() {
            return Ok(());
        }
        let done: Vec<(String,)> =
            on_pool!(self.0, pool => sqlx::query_as("SELECT name FROM key_checks WHERE name LIKE 'sealed:%'").fetch_all(pool).await)?;
        for (place, key, whole) in SEALED_COLUMNS {
            if done.iter().any(|(d,)| d.strip_prefix("sealed:") == Some(*place)) {
                continue;
            }
            let sealed = self.seal_column(place, key, *whole).await?;
            let now = crate::clock::Clock::new().now_ms();
            on_pool!(self.0, pool => sqlx::query("INSERT INTO key_checks (name, mac, created_at) VALUES ($1, '', $2) ON CONFLICT (name) DO NOTHING")
                .bind(format!("sealed:{place}")).bind(now).execute(pool).await.map(|_| ()))?;
            if sealed > 0 {
                tracing::info!(column = place, rows = sealed, "existing rows sealed");
                self.0.truncate_wal().await;
            }
        }
        Ok(())
    }

    /// Seals one column's clear values, in pages by key; returns how many it sealed.
    async fn seal_column(self, place: &str, key: &[&str], whole: bool) -> StoreResult<u64> {
        let (table, column) = place.split_once('.').ok_or_else(|| StoreError::Sealed(format!("bad place {place}")))?;
        let (first, seq) = (key[0], key.get(1).copied());
        let (select, update) = match seq {
            None => (
                format!("SELECT {first}, CAST(0 AS BIGINT), {column} FROM {table} WHERE {first} > $1 AND {column} IS NOT NULL ORDER BY {first} LIMIT {SEAL_PAGE}"),
                format!("UPDATE {table} SET {column} = $1 WHERE {first} = $2"),
            ),
            Some(s) => (
                format!("SELECT {first}, {s}, {column} FROM {table} WHERE ({first} > $1 OR ({first} = $1 AND {s} > $2)) AND {column} IS NOT NULL ORDER BY {first}, {s} LIMIT {SEAL_PAGE}"),
                format!("UPDATE {table} SET {column} = $1 WHERE {first} = $2 AND {s} = $3"),
            ),
        };
        let (mut after, mut after_seq) = (String::new(), i64::MIN);
        let mut sealed = 0u64;
        loop {
            let page: Vec<(String, i64, String)> = on_pool!(self.0, pool => {
                let q = sqlx::query_as(&select).bind(&after);
                let q = if seq.is_some() { q.bind(after_seq) } else { q };
                q.fetch_all(pool).await
            })?;
            let Some(last) = page.last() else { break };
            (after, after_seq) = (last.0.clone(), last.1);
            let mut changes = Vec::new();
            for (id, n, value) in &page {
                let row = if seq.is_some() { format!("{id}:{n}") } else { id.clone() };
                let new = if whole {
                    if sealed::is_sealed(value) {
                        continue;
                    }
                    self.0.seal(place, &row, value)?
                } else {
                    self.0.seal_form(&row, value)?
                };
                if &new != value {
                    changes.push((new, id.clone(), *n));
                }
            }
            if !changes.is_empty() {
                on_writer!(self.0, pool => async {
                    let mut tx = pool.begin_write().await?;
                    for (value, id, n) in &changes {
                        let q = sqlx::query(&update).bind(value).bind(id);
                        let q = if seq.is_some() { q.bind(*n) } else { q };
                        q.execute(&mut *tx).await?;
                    }
                    tx.commit().await
                }.await)?;
                sealed += changes.len() as u64;
                tracing::info!(column = place, sealed, "sealing existing rows");
            }
            if i64::try_from(page.len()).unwrap_or(0) < SEAL_PAGE {
                break;
            }
        }
        Ok(sealed)
    }
}

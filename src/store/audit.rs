//! The append-only audit log: who did what to which object, when, and from where; read by admins.
//! Tamper-evident, and unforgeable without the audit key: every line is chained to the one before
//! by an HMAC-SHA256 under the audit key, which lives in the key file, never in the database.
//!
//! Line `seq` (1, 2, …) stores `prev_hash` (line `seq - 1`'s hash, or [`GENESIS`], or the pruning
//! anchor's) and `hash = HMAC-SHA256(audit key, prev_hash "\n" canonical)`, where `canonical` is the
//! JSON array `[seq, id, at, actor, action, target, detail, source]`. Lines are appended under the
//! write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `LOCK TABLE … IN EXCLUSIVE MODE`), so the chain is
//! one line long on both engines. Editing, deleting or inserting a line breaks the chain from that
//! line on, and [`AuditLog::verify_audit_chain`] names the first broken line; a database writer
//! cannot recompute the hashes after an edit (no key). Dropping the newest lines leaves a shorter
//! intact chain: the operator's checkpoint ([`AuditLog::checkpoint`], `helpline audit checkpoint`,
//! kept outside the database) shows it ([`AuditLog::verify_against`]). Pruning old lines
//! ([`AuditLog::prune_through`]) leaves an anchor, MACed with the audit key, where the chain now starts.

use sha2::{Digest, Sha256};

use super::keys::{decode_key, hmac_hex};

use super::{both_engines, new_id, on_pool, on_writer, BeginWrite, Store, StoreResult};

/// The `prev_hash` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source: Option<String>,
}

/// Which lines to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub target: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
    pub limit: i64,
}

/// A line with its place in the chain.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ChainedLine {
    seq: Option<i64>,
    prev_hash: Option<String>,
    hash: Option<String>,
    id: String,
    at: i64,
    actor: String,
    action: String,
    target: Option<String>,
    detail: Option<String>,
    source: Option<String>,
}

/// The first line where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChainBreak {
    /// The line's place (None for a line outside the chain).
    pub seq: Option<i64>,
    pub id: String,
    pub problem: String,
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// Lines checked (up to the first break).
    pub lines: i64,
    /// The last good line's hash.
    pub head: String,
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The hash of a line: HMAC-SHA256 under the audit key over the previous hash and the line's
/// canonical content, hex (`key` None: the plain SHA-256 of chains from before the audit key).
#[allow(clippy::too_many_arguments)]
pub fn line_hash(
    key: Option<&[u8; 32]>,
    prev_hash: &str,
    seq: i64,
    id: &str,
    at: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
    source: Option<&str>,
) -> String {
    // A JSON array of plain values: one spelling for one content (strings escaped the same way every time).
    let canonical = serde_json::json!([seq, id, at, actor, action, target, detail, source]).to_string();
    if let Some(key) = key {
        return hmac_hex(key, format!("{prev_hash}\n{canonical}").as_bytes());
    }
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The head of the chain at one time, kept by the operator outside the database: `seq:mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub mac: String,
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.mac)
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Checkpoint, String> {
        let (seq, mac) = s.trim().split_once(':').ok_or("expected SEQ:MAC (as `helpline audit checkpoint` prints it)")?;
        let seq = seq.parse::<i64>().map_err(|_| format!("{seq:?} is not a line number"))?;
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the MAC is 64 hex digits".into());
        }
        Ok(Checkpoint { seq, mac: mac.to_ascii_lowercase() })
    }
}

/// The audit key's MAC over a pruning anchor.
fn anchor_mac(key: &[u8; 32], seq: i64, hash: &str) -> String {
    hmac_hex(key, format!("pruned up to {seq}\n{hash}").as_bytes())
}

impl ChainedLine {
    fn expected_hash(&self, key: Option<&[u8; 32]>, prev: &str, seq: i64) -> String {
        line_hash(
            key,
            prev,
            seq,
            &self.id,
            self.at,
            &self.actor,
            &self.action,
            self.target.as_deref(),
            self.detail.as_deref(),
            self.source.as_deref(),
        )
    }
}

const CHAIN_COLUMNS: &str = "seq, prev_hash, hash, id, at, actor, action, target, detail, source";

/// The audit log's write lock, inside a write transaction. On PostgreSQL `LOCK TABLE … IN EXCLUSIVE MODE`;
/// on SQLite nothing: write transactions begin `IMMEDIATE`, so they hold the database's one write lock.
trait AuditLock {
    async fn lock_audit_log(&mut self) -> Result<(), sqlx::Error>;
}

impl AuditLock for sqlx::SqliteConnection {
    async fn lock_audit_log(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl AuditLock for sqlx::PgConnection {
    async fn lock_audit_log(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE").execute(self).await?;
        Ok(())
    }
}

/// Appending lines at the end of the chain, inside a write transaction.
trait AppendLines {
    /// Takes the audit log's lock ([`AuditLock`]), then chains `lines` after the last chained line, in order.
    async fn append_lines(&mut self, key: &[u8; 32], lines: &[ChainedLine]) -> Result<(), sqlx::Error>;
}

both_engines!(impl AppendLines for sqlx::SqliteConnection, sqlx::PgConnection {
    async fn append_lines(&mut self, key: &[u8; 32], lines: &[ChainedLine]) -> Result<(), sqlx::Error> {
        self.lock_audit_log().await?;
        let last: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *self).await?;
        // Every line pruned: the chain goes on from the anchor.
        let last = match last {
            Some(l) => Some(l),
            None => sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1").fetch_optional(&mut *self).await?,
        };
        let (mut seq, mut prev) = last.unwrap_or((0, GENESIS.to_string()));
        for l in lines {
            seq += 1;
            let hash = l.expected_hash(Some(key), &prev, seq);
            sqlx::query(
                "INSERT INTO audit_log (id, at, actor, action, target, detail, source, seq, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, prev_hash = excluded.prev_hash, hash = excluded.hash")
                .bind(&l.id).bind(l.at).bind(&l.actor).bind(&l.action).bind(&l.target).bind(&l.detail).bind(&l.source)
                .bind(seq).bind(&prev).bind(&hash)
                .execute(&mut *self).await?;
            prev = hash;
        }
        Ok(())
    }
});

/// A view of the store: the audit log and its hash chain ([`Store::audit_log`]).
#[derive(Clone, Copy, Debug)]
pub struct AuditLog<'a>(pub(super) &'a Store);

impl AuditLog<'_> {
    /// Appends one line to the audit log (at the end of its hash chain).
    pub async fn audit(self, at: i64, actor: &str, action: &str, target: Option<&str>, detail: Option<&str>) -> StoreResult<()> {
        self.append_audit(at, actor, action, target, detail, None).await
    }

    /// Audit lines about one target, oldest first (for tests and admin tools).
    pub async fn audit_for(self, target: &str) -> StoreResult<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT actor, action FROM audit_log WHERE target = $1 ORDER BY id")
            .bind(target).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Appends one line with its source (client address, or the socket it came on). Lines are never
    /// updated or deleted.
    pub async fn audit_from(
        self,
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
        source: &str,
    ) -> StoreResult<()> {
        self.append_audit(at, actor, action, target, detail, Some(source)).await
    }

    /// Appends one line at the end of the chain, under the write lock.
    pub(crate) async fn append_audit(
        self,
        at: i64,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
        source: Option<&str>,
    ) -> StoreResult<()> {
        let line = ChainedLine {
            seq: None,
            prev_hash: None,
            hash: None,
            id: new_id(),
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.map(str::to_string),
            source: source.map(str::to_string),
        };
        let key = self.key()?;
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            tx.append_lines(&key, std::slice::from_ref(&line)).await?;
            tx.commit().await
        }.await)?;
        Ok(())
    }

    /// Chains the lines written before the chain existed (in id order), once: only while no line is
    /// chained yet. A line slipped in later stays outside the chain, and verification names it.
    pub(crate) async fn seal_audit_log(self) -> StoreResult<()> {
        let (chained, loose): (i64, i64) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT COUNT(seq), COUNT(*) - COUNT(seq) FROM audit_log").fetch_one(pool).await)?;
        if chained > 0 || loose == 0 {
            return Ok(());
        }
        let sql = format!("SELECT {CHAIN_COLUMNS} FROM audit_log WHERE seq IS NULL ORDER BY id");
        let key = self.key()?;
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            // Checked again under the lock: another process may have sealed them meanwhile.
            let (chained_now,): (i64,) = sqlx::query_as("SELECT COUNT(seq) FROM audit_log").fetch_one(&mut *tx).await?;
            if chained_now == 0 {
                let lines: Vec<ChainedLine> = sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                tx.append_lines(&key, &lines).await?;
            }
            tx.commit().await
        }.await)?;
        tracing::info!(lines = loose, "audit log: earlier lines chained");
        Ok(())
    }

    /// The audit key, from the key file.
    fn key(self) -> StoreResult<[u8; 32]> {
        let key = self.0.keys.with(|k| decode_key(&k.audit.key))?;
        key.ok_or_else(|| super::StoreError::Sealed("the key file's audit key is damaged".into()))
    }

    /// The audit key's id (the chain was re-keyed with it once: `key_checks` `audit-chain:<kid>`).
    fn key_id(self) -> StoreResult<String> {
        Ok(self.0.keys.with(|k| k.audit.kid.clone())?)
    }

    /// Re-chains, once, a chain written before the audit key existed (plain SHA-256) with the audit
    /// key, as far as it is intact: lines after a break keep their old hashes, so the break still
    /// shows. Run at start ([`Store::migrate`]).
    pub(crate) async fn rekey_chain(self) -> StoreResult<()> {
        if self.0.keys.is_missing() {
            return Ok(());
        }
        let marker = format!("audit-chain:{}", self.key_id()?);
        let done: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as("SELECT name FROM key_checks WHERE name = $1")
            .bind(&marker).fetch_optional(pool).await)?;
        if done.is_some() {
            return Ok(());
        }
        let key = self.key()?;
        let old = self.walk(None).await?;
        if let Some(b) = &old.first_break {
            tracing::error!(seq = ?b.seq, problem = %b.problem, "audit log: the chain was already broken before it was keyed; lines from the break on keep their old hashes");
        }
        let sql = format!("SELECT {CHAIN_COLUMNS} FROM audit_log WHERE seq IS NOT NULL AND seq <= $1 ORDER BY seq");
        let now = crate::clock::Clock::new().now_ms();
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            tx.lock_audit_log().await?;
            let lines: Vec<ChainedLine> = sqlx::query_as(&sql).bind(old.lines).fetch_all(&mut *tx).await?;
            let mut prev = GENESIS.to_string();
            for l in &lines {
                let seq = l.seq.unwrap_or_default();
                let hash = l.expected_hash(Some(&key), &prev, seq);
                sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE id = $3")
                    .bind(&prev).bind(&hash).bind(&l.id).execute(&mut *tx).await?;
                prev = hash;
            }
            sqlx::query("INSERT INTO key_checks (name, mac, created_at) VALUES ($1, '', $2) ON CONFLICT (name) DO NOTHING")
                .bind(&marker).bind(now).execute(&mut *tx).await?;
            tx.commit().await
        }.await)?;
        if old.lines > 0 {
            tracing::info!(lines = old.lines, "audit log: chain keyed with the audit key");
        }
        Ok(())
    }

    /// Walks the chain from its start (the pruning anchor, or the first line): each line's place, its
    /// link to the line before, and its HMAC under the audit key over its content; then looks for
    /// lines outside the chain. Stops at the first break.
    pub async fn verify_audit_chain(self) -> StoreResult<ChainReport> {
        let key = self.key()?;
        self.walk(Some(&key)).await
    }

    /// The pruning anchor, checked: `(seq, hash)` where the chain starts, or a break when its MAC
    /// is not the audit key's (a database writer made or changed it).
    async fn anchor(self, key: Option<&[u8; 32]>) -> StoreResult<Result<(i64, String), ChainBreak>> {
        let row: Option<(i64, String, String)> =
            on_pool!(self.0, pool => sqlx::query_as("SELECT seq, hash, mac FROM audit_anchor WHERE id = 1").fetch_optional(pool).await)?;
        let Some((seq, hash, mac)) = row else { return Ok(Ok((0, GENESIS.to_string()))) };
        match key {
            Some(k) if anchor_mac(k, seq, &hash) != mac => Ok(Err(ChainBreak {
                seq: Some(seq),
                id: "anchor".into(),
                problem: "the pruning anchor's MAC is not the audit key's (forged or edited)".into(),
            })),
            _ => Ok(Ok((seq, hash))),
        }
    }

    async fn walk(self, key: Option<&[u8; 32]>) -> StoreResult<ChainReport> {
        const PAGE: i64 = 1000;
        let (start, mut prev) = match self.anchor(key).await? {
            Ok(anchor) => anchor,
            Err(b) => return Ok(ChainReport { lines: 0, head: GENESIS.to_string(), first_break: Some(b) }),
        };
        let mut expected = start + 1;
        let sql = format!("SELECT {CHAIN_COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2");
        let broken = |l: &ChainedLine, problem: String| ChainBreak { seq: l.seq, id: l.id.clone(), problem };
        // Lines at or before the anchor are pruned: one still there was put back.
        let early_sql = format!("SELECT {CHAIN_COLUMNS} FROM audit_log WHERE seq <= $1 ORDER BY seq LIMIT 1");
        let early: Option<ChainedLine> = on_pool!(self.0, pool => sqlx::query_as(&early_sql).bind(start).fetch_optional(pool).await)?;
        if let Some(l) = early {
            return Ok(ChainReport { lines: start, head: prev, first_break: Some(broken(&l, "it lies before the pruning anchor".into())) });
        }
        loop {
            let page: Vec<ChainedLine> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(expected).bind(PAGE).fetch_all(pool).await)?;
            let n = page.len();
            for l in page {
                let seq = l.seq.unwrap_or_default();
                let problem = if seq != expected {
                    Some(format!("line {expected} is missing (the next line is {seq})"))
                } else if l.prev_hash.as_deref() != Some(prev.as_str()) {
                    Some(format!("its prev_hash does not match line {}'s hash", expected - 1))
                } else if l.hash.as_deref() != Some(l.expected_hash(key, &prev, seq).as_str()) {
                    Some("its content does not match its hash (edited, or its hash recomputed without the audit key)".to_string())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Ok(ChainReport { lines: expected - 1, head: prev, first_break: Some(broken(&l, problem)) });
                }
                prev = l.hash.unwrap_or_default();
                expected += 1;
            }
            if i64::try_from(n).unwrap_or(0) < PAGE {
                break;
            }
        }
        let loose_sql = format!("SELECT {CHAIN_COLUMNS} FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT 1");
        let loose: Option<ChainedLine> = on_pool!(self.0, pool => sqlx::query_as(&loose_sql).fetch_optional(pool).await)?;
        let first_break = loose.map(|l| broken(&l, "it is outside the chain (inserted directly)".to_string()));
        Ok(ChainReport { lines: expected - 1, head: prev, first_break })
    }

    /// The chain's head now, to keep outside the database (`helpline audit checkpoint`): `seq:mac`
    /// of the last line of the intact chain. Fails when the chain is broken.
    pub async fn checkpoint(self) -> StoreResult<Checkpoint> {
        let report = self.verify_audit_chain().await?;
        if let Some(b) = report.first_break {
            return Err(super::StoreError::Conflict(format!("the audit log is broken at line {:?}: {}", b.seq, b.problem)));
        }
        Ok(Checkpoint { seq: report.lines, mac: report.head })
    }

    /// Verifies the chain and that it still reaches a checkpoint taken earlier: its line is there with
    /// the same MAC (a truncated tail, or a chain rebuilt from that line on, fails), or was pruned
    /// behind a genuine anchor. The report's `first_break` names what is wrong.
    pub async fn verify_against(self, checkpoint: &Checkpoint) -> StoreResult<ChainReport> {
        let mut report = self.verify_audit_chain().await?;
        if report.first_break.is_some() {
            return Ok(report);
        }
        let problem = if report.lines < checkpoint.seq {
            Some(format!("the chain ends at line {} but the checkpoint names line {}: its tail was cut off", report.lines, checkpoint.seq))
        } else {
            let at: Option<(String, Option<String>)> = on_pool!(self.0, pool => sqlx::query_as(
                "SELECT id, hash FROM audit_log WHERE seq = $1").bind(checkpoint.seq).fetch_optional(pool).await)?;
            match at {
                Some((_, hash)) if hash.as_deref() == Some(checkpoint.mac.as_str()) => None,
                Some(_) => {
                    Some(format!("line {} is not the line the checkpoint names (its MAC differs): the chain was rebuilt", checkpoint.seq))
                }
                // Pruned behind the anchor (checked above), or the empty log's checkpoint: fine.
                None => {
                    let anchor = self.anchor(None).await?.map(|a| a.0).unwrap_or(0);
                    (checkpoint.seq > anchor).then(|| format!("line {} is missing", checkpoint.seq))
                }
            }
        };
        if let Some(problem) = problem {
            report.first_break = Some(ChainBreak { seq: Some(checkpoint.seq), id: "checkpoint".into(), problem });
        }
        Ok(report)
    }

    /// Retention of the audit log: deletes the lines up to `seq` (at most up to the newest) and
    /// leaves an anchor MACed with the audit key (`audit_anchor`: the last pruned line's seq and hash),
    /// where verification then starts. Only an intact chain is pruned. Returns the lines deleted.
    pub async fn prune_through(self, seq: i64, now: i64) -> StoreResult<u64> {
        let report = self.verify_audit_chain().await?;
        if let Some(b) = report.first_break {
            return Err(super::StoreError::Conflict(format!("the audit log is broken at line {:?} ({}): not pruned", b.seq, b.problem)));
        }
        let key = self.key()?;
        let upto = seq.min(report.lines);
        let deleted = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            tx.lock_audit_log().await?;
            let row: Option<(String,)> = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = $1").bind(upto).fetch_optional(&mut *tx).await?;
            let Some((hash,)) = row else { return Ok::<u64, sqlx::Error>(0) };
            let mac = anchor_mac(&key, upto, &hash);
            sqlx::query("INSERT INTO audit_anchor (id, seq, hash, mac, at) VALUES (1, $1, $2, $3, $4)
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, at = excluded.at")
                .bind(upto).bind(&hash).bind(&mac).bind(now).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM audit_log WHERE seq <= $1").bind(upto).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        }.await)?;
        if deleted > 0 {
            tracing::info!(up_to = upto, lines = deleted, "audit log: old lines pruned, anchor left");
        }
        Ok(deleted)
    }

    /// Audit lines, newest first.
    pub async fn audit_lines(self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<AuditEntry> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, at, actor, action, target, detail, source FROM audit_log
             WHERE ($1 IS NULL OR target = $1) AND ($2 IS NULL OR actor = $2) AND at >= $3
             ORDER BY id DESC LIMIT $4")
            .bind(q.target.as_deref()).bind(q.actor.as_deref()).bind(q.since.unwrap_or(0)).bind(q.limit.clamp(1, 1000))
            .fetch_all(pool).await)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{seeded, write_tx};

    fn loose(id: &str, at: i64) -> ChainedLine {
        ChainedLine {
            seq: None,
            prev_hash: None,
            hash: None,
            id: id.into(),
            at,
            actor: "admin".into(),
            action: "test".into(),
            target: Some("t".into()),
            detail: None,
            source: None,
        }
    }

    /// `append_lines` chains lines after the last chained one, in order, in the caller's transaction.
    #[tokio::test]
    async fn appended_lines_continue_the_chain_in_order() {
        let store = seeded().await;
        store.audit_log().audit(1, "admin", "first", Some("t"), None).await.expect("one line");
        let mut tx = write_tx(&store).await;
        let key = store.audit_log().key().expect("key");
        tx.append_lines(&key, &[loose("b-line", 2), loose("a-line", 3)]).await.expect("append");
        tx.append_lines(&key, &[]).await.expect("nothing to append");
        tx.commit().await.expect("commit");
        let report = store.audit_log().verify_audit_chain().await.expect("verify");
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.lines, 3);
        let ids: Vec<String> = store
            .audit_log()
            .audit_lines(&AuditQuery { limit: 10, ..AuditQuery::default() })
            .await
            .expect("read")
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert!(ids.contains(&"b-line".to_string()) && ids.contains(&"a-line".to_string()));
        let seqs: Vec<(String, i64)> =
            on_pool!(store, pool => sqlx::query_as("SELECT id, seq FROM audit_log WHERE seq > 1 ORDER BY seq").fetch_all(pool).await)
                .expect("read");
        assert_eq!(seqs, vec![("b-line".to_string(), 2), ("a-line".to_string(), 3)], "in the order given");
    }

    #[test]
    fn a_line_hash_covers_every_field_and_the_previous_hash() {
        let h = |prev: &str, detail: Option<&str>| line_hash(Some(&[7; 32]), prev, 1, "id", 5, "actor", "action", Some("t"), detail, None);
        let base = h(GENESIS, Some("d"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, h(GENESIS, Some("d")), "deterministic");
        assert_ne!(base, h(GENESIS, Some("e")), "content");
        assert_ne!(base, h(GENESIS, None), "a null is not an empty value");
        assert_ne!(base, h(&base, Some("d")), "the previous hash");
        assert_ne!(base, line_hash(Some(&[8; 32]), GENESIS, 1, "id", 5, "actor", "action", Some("t"), Some("d"), None), "the key");
        assert_ne!(base, line_hash(None, GENESIS, 1, "id", 5, "actor", "action", Some("t"), Some("d"), None), "keyed or not");
        // Fields cannot be shifted into one another.
        let a = line_hash(None, GENESIS, 1, "id", 5, "ab", "c", None, None, None);
        let b = line_hash(None, GENESIS, 1, "id", 5, "a", "bc", None, None, None);
        assert_ne!(a, b);
    }
}

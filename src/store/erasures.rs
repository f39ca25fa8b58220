//! Erasure of one contact (a data subject's request: `helpline erase --contact ID`,
//! `POST /api/v1/contacts/{id}/erase`), and the record of erasures kept beside the key file.
//!
//! What an erasure removes: the conversation (messages), the contact form, the call record (with the
//! caller's keyed hash and last digits), the chat's keyed network hash, the callback number, the
//! survey mark, consults, a handover's reason, an escalation's reason, the flag and the blocks made
//! from the contact (and their refused attempts), the contact's links to cases and placements. What
//! stays: the contact row (times, helpline, channel, outcome: reports do not change) marked
//! `erased_at`, its event log (kinds and times), and the audit log (which names the contact's id, never
//! its data).
//!
//! The record (`<key file>.erasures`): one line per erasure, `<contact id> <ms since the epoch>`, no
//! personal data. It is written (and synced) before the database is changed, and it is not in the
//! database, so a database backup taken earlier does not hold it: `helpline restore` reads it and
//! erases again every contact it names, so a restore never brings erased data back.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::privacy::Privacy;
use super::{on_writer, BeginWrite, StoreResult};

/// The record of erasures that belongs to the key file at `key_file`: `<key file>.erasures`.
pub fn erasures_file(key_file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.erasures", key_file.display()))
}

/// Whether `id` can be a contact's id in the record (letters, digits, `-`, `_`; 1 to 64 characters):
/// the record holds ids and times, nothing else.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Appends an erasure to the record at `path` (created with mode 0600 when missing) and syncs it to
/// disk before returning.
pub fn record_erasure(path: &Path, contact_id: &str, at: i64) -> std::io::Result<()> {
    if !valid_id(contact_id) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a contact id"));
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{contact_id} {at}")?;
    file.sync_all()
}

/// The erasures in the record at `path`, in order (none when there is no record). A line that is not
/// `<id> <ms>` is an error naming its number: a damaged record must not be half applied unseen.
pub fn recorded_erasures(path: &Path) -> std::io::Result<Vec<(String, i64)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let bad = || {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} line {}: expected `<contact id> <ms>`", path.display(), n + 1),
                )
            };
            let (id, at) = line.trim().split_once(' ').ok_or_else(bad)?;
            let at: i64 = at.trim().parse().map_err(|_| bad())?;
            if !valid_id(id) {
                return Err(bad());
            }
            Ok((id.to_string(), at))
        })
        .collect()
}

/// What one erasure removed (rows), for the command's output and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub messages: u64,
    pub forms: u64,
    pub calls: u64,
    /// Other rows: callback number, survey mark, consults, flag, blocks and their attempts, case links.
    pub other: u64,
}

impl Privacy<'_> {
    /// Erases what is held on contact `id` (see the module's documentation) in one write transaction,
    /// at `now`. None when there is no such contact. Idempotent: erasing again removes nothing more.
    pub async fn erase_contact(self, id: &str, now: i64) -> StoreResult<Option<Erased>> {
        const OTHER: [&str; 7] = [
            "DELETE FROM callback_numbers WHERE contact_id = $1",
            "DELETE FROM survey_answered WHERE contact_id = $1",
            "DELETE FROM consults WHERE contact_id = $1",
            "DELETE FROM blocked_attempts WHERE block_id IN (SELECT b.id FROM caller_blocks b WHERE b.contact_id = $1)",
            "DELETE FROM caller_blocks WHERE contact_id = $1",
            "DELETE FROM contact_flags WHERE contact_id = $1",
            "DELETE FROM case_contacts WHERE contact_id = $1",
        ];
        on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let found = sqlx::query("UPDATE contacts SET caller_hash = NULL, erased_at = COALESCE(erased_at, $2), purged_at = COALESCE(purged_at, $2) WHERE id = $1")
                .bind(id).bind(now).execute(&mut *tx).await?.rows_affected();
            if found == 0 {
                return Ok::<_, sqlx::Error>(None);
            }
            let mut erased = Erased {
                messages: sqlx::query("DELETE FROM messages WHERE contact_id = $1").bind(id).execute(&mut *tx).await?.rows_affected(),
                forms: sqlx::query("DELETE FROM contact_forms WHERE contact_id = $1").bind(id).execute(&mut *tx).await?.rows_affected(),
                calls: sqlx::query("DELETE FROM calls WHERE contact_id = $1").bind(id).execute(&mut *tx).await?.rows_affected(),
                other: 0,
            };
            for sql in OTHER {
                erased.other += sqlx::query(sql).bind(id).execute(&mut *tx).await?.rows_affected();
            }
            sqlx::query("UPDATE handovers SET reason = NULL WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("UPDATE escalations SET reason = '(erased)' WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("UPDATE placements SET contact_id = NULL WHERE contact_id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(erased))
        }.await)
        .map_err(Into::into)
    }

    /// When contact `id` was erased, if it was.
    pub async fn erased_at(self, id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(Option<i64>,)> = super::on_pool!(self.0, pool => sqlx::query_as("SELECT erased_at FROM contacts WHERE id = $1").bind(id).fetch_optional(pool).await)?;
        Ok(row.and_then(|(a,)| a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_holds_ids_and_times_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = erasures_file(&dir.path().join("h.keys"));
        assert_eq!(recorded_erasures(&path).unwrap(), vec![]);
        record_erasure(&path, "0193-abc", 5).unwrap();
        record_erasure(&path, "0194-def", 7).unwrap();
        assert_eq!(recorded_erasures(&path).unwrap(), vec![("0193-abc".into(), 5), ("0194-def".into(), 7)]);
        assert!(record_erasure(&path, "a b", 1).is_err());
        assert!(record_erasure(&path, "", 1).is_err());
        std::fs::write(&path, "0193-abc 5\nsomething else\n").unwrap();
        let err = recorded_erasures(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}

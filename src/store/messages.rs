//! Conversation messages: numbered per contact without gaps, idempotent per sender and client id, written in batches.

use std::collections::HashMap;

use super::cluster::{Fenced, LeaderTx};
use super::{both_engines, on_pool, Store, StoreResult};

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub contact_id: String,
    /// `caller`, `counsellor` or `system`.
    pub sender: &'static str,
    /// The counsellor's user id (None for the caller).
    pub sender_id: Option<String>,
    pub client_id: String,
    pub body: String,
    pub at: i64,
}

impl NewMessage {
    /// This message as stored with `seq`.
    fn stored(&self, seq: i64) -> StoredMessage {
        StoredMessage {
            contact_id: self.contact_id.clone(),
            seq,
            sender: self.sender.to_string(),
            sender_id: self.sender_id.clone(),
            client_id: self.client_id.clone(),
            body: self.body.clone(),
            at: self.at,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct StoredMessage {
    pub contact_id: String,
    pub seq: i64,
    pub sender: String,
    pub sender_id: Option<String>,
    pub client_id: String,
    pub body: String,
    pub at: i64,
}

/// What storing one message gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub message: StoredMessage,
    /// True when this (contact, sender, client id) was already stored: nothing new was written.
    pub duplicate: bool,
}

const MESSAGE_COLUMNS: &str = "contact_id, seq, sender, sender_id, client_id, body, at";

/// Most rows in one multi-row `INSERT`: 7 bound parameters a row, 896 in all, under SQLite's
/// smallest limit (999). A batch goes in chunks of powers of two (128, 64, …, 1), so each
/// connection prepares at most eight `INSERT` texts.
pub const MAX_ROWS_PER_INSERT: usize = 128;

/// The next seq of each contact the relay wrote to (it is the only writer of messages), so that a
/// batch needs no `MAX(seq)` read. A contact missing is read from the database on first use; the
/// relay forgets a contact when it ends, and every contact of a batch whose commit failed (it may
/// have committed with its answer lost). A wrong entry cannot write a gap or a second copy: a seq
/// already taken is refused by the primary key, and the batch fails (and is retried from the database).
#[derive(Debug, Default)]
pub struct NextSeqs(HashMap<String, i64>);

impl NextSeqs {
    /// Forgets a contact (ended, or its last commit's outcome is unknown).
    pub fn forget(&mut self, contact: &str) {
        self.0.remove(contact);
    }

    /// The next seq known for `contact`, if any.
    pub fn get(&self, contact: &str) -> Option<i64> {
        self.0.get(contact).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `INSERT` of `rows` messages: `($1, …, $7), ($8, …)`, repeats skipped, new rows' seqs returned.
/// On SQLite the parameters are anonymous (`?`, bound in order): sqlx looks up every numbered
/// parameter's name, and SQLite finds a name by scanning the list of all of them, so 896 numbered
/// parameters cost 896²/2 steps per statement (the top symbol of a profile of the relay at its
/// ceiling, `sqlite3_bind_parameter_name`).
fn insert_sql(rows: usize, backend: super::Backend) -> String {
    let mut sql = String::with_capacity(120 + rows * 40);
    sql.push_str("INSERT INTO messages (contact_id, seq, sender, sender_id, client_id, body, at) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let b = r * 7;
        match backend {
            super::Backend::Sqlite => sql.push_str("(?, ?, ?, ?, ?, ?, ?)"),
            super::Backend::Postgres => {
                sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7))
            }
        }
    }
    sql.push_str(" ON CONFLICT (contact_id, sender, client_id) DO NOTHING RETURNING seq");
    sql
}

/// Sizes of the `INSERT`s for a batch of `n`: powers of two, largest first, at most [`MAX_ROWS_PER_INSERT`].
fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = if n >= MAX_ROWS_PER_INSERT { MAX_ROWS_PER_INSERT } else { 1 << (usize::BITS - 1 - n.leading_zeros()) };
        n -= size;
        Some(size)
    })
}

/// Storing a batch of messages: implemented only for the leader's write transactions ([`Fenced`], which
/// only [`Store::begin_leader_write`] opens, after the fence check).
trait WriteMessages {
    /// The first seq of each contact in `batch`: known in `next`, or read once.
    async fn first_seqs<'b>(&mut self, batch: &'b [NewMessage], next: &NextSeqs) -> Result<HashMap<&'b str, i64>, sqlx::Error>;
    /// Inserts `batch` with `seqs` in a few multi-row `INSERT`s; false as soon as one is a repeat (the
    /// transaction is then to be rolled back).
    async fn insert_new(&mut self, batch: &[NewMessage], seqs: &[i64], backend: super::Backend) -> Result<bool, sqlx::Error>;
    /// Inserts `batch` one message at a time from the seqs in `next_seq`, which it advances: a repeat
    /// inserts nothing and gets the earlier copy.
    async fn insert_one_by_one<'b>(
        &mut self,
        batch: &'b [NewMessage],
        next_seq: &mut HashMap<&'b str, i64>,
    ) -> Result<Vec<Stored>, sqlx::Error>;
}

both_engines!(impl WriteMessages for Fenced<sqlx::Sqlite>, Fenced<sqlx::Postgres> {
    async fn first_seqs<'b>(&mut self, batch: &'b [NewMessage], next: &NextSeqs) -> Result<HashMap<&'b str, i64>, sqlx::Error> {
        let mut first: HashMap<&str, i64> = HashMap::new();
        for m in batch {
            if first.contains_key(m.contact_id.as_str()) {
                continue;
            }
            let seq = match next.get(&m.contact_id) {
                Some(s) => s,
                None => {
                    let (max,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE contact_id = $1")
                        .bind(&m.contact_id)
                        .fetch_one(&mut **self)
                        .await?;
                    max + 1
                }
            };
            first.insert(&m.contact_id, seq);
        }
        Ok(first)
    }

    async fn insert_new(&mut self, batch: &[NewMessage], seqs: &[i64], backend: super::Backend) -> Result<bool, sqlx::Error> {
        let mut at = 0;
        for size in chunk_sizes(batch.len()) {
            let sql = insert_sql(size, backend);
            let mut q = sqlx::query_as::<_, (i64,)>(&sql);
            for (m, seq) in batch[at..at + size].iter().zip(&seqs[at..at + size]) {
                q = q.bind(&m.contact_id).bind(*seq).bind(m.sender).bind(&m.sender_id).bind(&m.client_id).bind(&m.body).bind(m.at);
            }
            let inserted = q.fetch_all(&mut **self).await?;
            at += size;
            if inserted.len() < size {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn insert_one_by_one<'b>(
        &mut self,
        batch: &'b [NewMessage],
        next_seq: &mut HashMap<&'b str, i64>,
    ) -> Result<Vec<Stored>, sqlx::Error> {
        let select_dup = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = $1 AND sender = $2 AND client_id = $3");
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            let seq = next_seq.get(m.contact_id.as_str()).copied().unwrap_or(1);
            let inserted: Option<(i64,)> = sqlx::query_as(
                "INSERT INTO messages (contact_id, seq, sender, sender_id, client_id, body, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (contact_id, sender, client_id) DO NOTHING RETURNING seq")
                .bind(&m.contact_id).bind(seq).bind(m.sender).bind(&m.sender_id)
                .bind(&m.client_id).bind(&m.body).bind(m.at)
                .fetch_optional(&mut **self).await?;
            if inserted.is_none() {
                let earlier: StoredMessage = sqlx::query_as(&select_dup)
                    .bind(&m.contact_id).bind(m.sender).bind(&m.client_id)
                    .fetch_one(&mut **self).await?;
                out.push(Stored { message: earlier, duplicate: true });
                continue;
            }
            next_seq.insert(&m.contact_id, seq + 1);
            out.push(Stored { message: m.stored(seq), duplicate: false });
        }
        Ok(out)
    }
});

impl Store {
    /// Stores a batch of messages in one transaction (group commit) and returns, for each,
    /// its seq, or the earlier copy if it is a repeat. Messages of one contact get consecutive
    /// seqs in the order given. (Reads each contact's last seq; the relay uses [`Store::store_messages`].)
    pub async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<Stored>> {
        self.store_messages(batch, &mut NextSeqs::default()).await
    }

    /// [`Store::insert_messages`] with the next seqs known in `next`, which it keeps up to date:
    /// entries are added on commit, and the batch's contacts are forgotten when it fails.
    pub async fn store_messages(&self, batch: &[NewMessage], next: &mut NextSeqs) -> StoreResult<Vec<Stored>> {
        let result = self.store_messages_once(batch, next).await;
        if result.is_err() {
            for m in batch {
                next.forget(&m.contact_id);
            }
        }
        self.note_write(&result);
        result
    }

    /// In the leader's write transactions ([`Store::begin_leader_write`]: fenced in cluster mode).
    async fn store_messages_once(&self, batch: &[NewMessage], next: &mut NextSeqs) -> StoreResult<Vec<Stored>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_leader_write().await?;
        let first = match &mut tx {
            LeaderTx::Sqlite(t) => t.first_seqs(batch, next).await?,
            LeaderTx::Postgres(t) => t.first_seqs(batch, next).await?,
        };

        // The common case: no repeats. Consecutive seqs, a few multi-row INSERTs.
        let mut seqs = Vec::with_capacity(batch.len());
        let mut next_seq = first.clone();
        for m in batch {
            let s = next_seq.entry(&m.contact_id).or_insert(1);
            seqs.push(*s);
            *s += 1;
        }
        let backend = self.backend();
        let all_new = match &mut tx {
            LeaderTx::Sqlite(t) => t.insert_new(batch, &seqs, backend).await?,
            LeaderTx::Postgres(t) => t.insert_new(batch, &seqs, backend).await?,
        };
        if all_new {
            tx.commit().await?;
            let out = batch.iter().zip(seqs).map(|(m, seq)| Stored { message: m.stored(seq), duplicate: false }).collect();
            for (contact, seq) in next_seq {
                next.0.insert(contact.to_string(), seq);
            }
            return Ok(out);
        }

        // A repeat (same contact, sender and client id as a stored message, or as an earlier
        // one of this batch): undo, and go one message at a time; a repeat inserts nothing,
        // keeps the seq free for the next message, and gets the earlier copy.
        tx.rollback().await?;
        let mut tx = self.begin_leader_write().await?;
        let mut next_seq = first;
        let out = match &mut tx {
            LeaderTx::Sqlite(t) => t.insert_one_by_one(batch, &mut next_seq).await?,
            LeaderTx::Postgres(t) => t.insert_one_by_one(batch, &mut next_seq).await?,
        };
        tx.commit().await?;
        for (contact, seq) in next_seq {
            next.0.insert(contact.to_string(), seq);
        }
        Ok(out)
    }

    /// The newest message seq of each of `contacts` that has messages (one read per 500).
    pub async fn latest_seqs(&self, contacts: &[String]) -> StoreResult<HashMap<String, i64>> {
        let mut all = HashMap::with_capacity(contacts.len());
        for chunk in contacts.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT contact_id, MAX(seq) FROM messages WHERE contact_id IN ({}) GROUP BY contact_id",
                marks.join(", ")
            );
            let rows: Vec<(String, i64)> = on_pool!(self, pool => {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id);
                }
                query.fetch_all(pool).await
            })?;
            all.extend(rows);
        }
        Ok(all)
    }

    /// The contact's messages with seq greater than `after`, in order.
    pub async fn messages_after(&self, contact: &str, after: i64) -> StoreResult<Vec<StoredMessage>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = $1 AND seq > $2 ORDER BY seq");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql).bind(contact).bind(after).fetch_all(pool).await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{queued_chat, seeded};

    fn message(contact: &str, client_id: &str) -> NewMessage {
        NewMessage { contact_id: contact.into(), sender: "caller", sender_id: None, client_id: client_id.into(), body: client_id.into(), at: 3 }
    }

    /// A batch without repeats goes in a few multi-row inserts; a batch with one (of a stored message, or of
    /// an earlier one in the batch) is stored one message at a time, the repeat getting the earlier copy.
    #[tokio::test]
    async fn batches_number_messages_without_gaps_and_repeats_get_the_earlier_copy() {
        let store = seeded().await;
        let (a, b) = (queued_chat(&store, 1).await, queued_chat(&store, 2).await);
        let mut next = NextSeqs::default();
        let batch: Vec<NewMessage> = (0..200).map(|i| message(if i % 2 == 0 { &a } else { &b }, &format!("m{i}"))).collect();
        let stored = store.store_messages(&batch, &mut next).await.expect("stored");
        assert!(stored.iter().all(|s| !s.duplicate));
        assert_eq!((stored[0].message.seq, stored[198].message.seq, stored[199].message.seq), (1, 100, 100));
        assert_eq!((next.get(&a), next.get(&b)), (Some(101), Some(101)));

        let repeats = [message(&a, "m0"), message(&a, "new"), message(&a, "new"), message(&b, "other")];
        let stored = store.store_messages(&repeats, &mut next).await.expect("stored");
        let got: Vec<(i64, bool)> = stored.iter().map(|s| (s.message.seq, s.duplicate)).collect();
        assert_eq!(got, vec![(1, true), (101, false), (101, true), (101, false)]);
        assert_eq!(stored[0].message.body, "m0", "the earlier copy");
        assert_eq!((next.get(&a), next.get(&b)), (Some(102), Some(102)));
        assert_eq!(store.messages_after(&a, 0).await.expect("read").len(), 101, "no gap, no second copy");
    }

    #[test]
    fn batch_inserts_number_their_parameters_only_where_they_must() {
        let lite = insert_sql(2, crate::store::Backend::Sqlite);
        assert!(lite.contains("VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"), "{lite}");
        assert!(!lite.contains('$'), "{lite}");
        let pg = insert_sql(2, crate::store::Backend::Postgres);
        assert!(pg.contains("VALUES ($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14) ON CONFLICT"), "{pg}");
        assert_eq!(chunk_sizes(300).collect::<Vec<_>>(), vec![MAX_ROWS_PER_INSERT, MAX_ROWS_PER_INSERT, 32, 8, 4]);
    }
}

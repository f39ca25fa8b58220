//! Conversation messages: written in batches of rows numbered by the relay; the store refuses a
//! seq already taken and names the stored copies of repeats.

use std::borrow::Borrow;
use std::collections::HashMap;

use super::cluster::{Fenced, LeaderTx};
use super::sealed::place::MESSAGE_BODY;
use super::{both_engines, on_pool, Store, StoreResult};

/// The row id a message body is sealed for (`contact:seq`).
pub(super) fn message_row(contact: &str, seq: i64) -> String {
    format!("{contact}:{seq}")
}

/// A stored message with its body opened.
fn opened(store: &Store, mut m: StoredMessage) -> StoreResult<StoredMessage> {
    m.body = store.open(MESSAGE_BODY, &message_row(&m.contact_id, m.seq), &m.body)?;
    Ok(m)
}

/// A message to store, not numbered yet (its writer, the relay, numbers it; [`NewMessage::stored`] gives the row).
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
    pub fn stored(&self, seq: i64) -> StoredMessage {
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

/// A stored message (or one numbered, to be stored: a row of [`Messages::write_messages`]).
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

/// What writing a batch's rows gave ([`Messages::write_messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Every row is stored (committed).
    All,
    /// Nothing is stored: some rows repeat a stored message's (contact, sender, client id). These
    /// are the stored copies of every row that has one, in the rows' order.
    Repeats(Vec<StoredMessage>),
}

const MESSAGE_COLUMNS: &str = "contact_id, seq, sender, sender_id, client_id, body, at";

/// Most rows in one multi-row `INSERT`: 7 bound parameters a row, 896 in all, under SQLite's
/// smallest limit (999). A batch goes in chunks of powers of two (128, 64, …, 1), so each
/// connection prepares at most eight `INSERT` texts.
pub const MAX_ROWS_PER_INSERT: usize = 128;

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

/// Writing a batch of rows: implemented only for the leader's write transactions ([`Fenced`], which
/// only [`Store::begin_leader_write`] opens, after the fence check).
trait WriteMessages {
    /// Inserts `rows` in a few multi-row `INSERT`s, each with its body as sealed (`bodies`, one per
    /// row); false as soon as one is a repeat (the transaction is then to be rolled back).
    async fn insert_rows<M: Borrow<StoredMessage> + Sync>(
        &mut self,
        rows: &[M],
        bodies: &[String],
        backend: super::Backend,
    ) -> Result<bool, sqlx::Error>;
}

both_engines!(impl WriteMessages for Fenced<sqlx::Sqlite>, Fenced<sqlx::Postgres> {
    async fn insert_rows<M: Borrow<StoredMessage> + Sync>(&mut self, rows: &[M], bodies: &[String], backend: super::Backend) -> Result<bool, sqlx::Error> {
        let mut at = 0;
        for size in chunk_sizes(rows.len()) {
            let sql = insert_sql(size, backend);
            let mut q = sqlx::query_as::<_, (i64,)>(&sql);
            for (m, body) in rows[at..at + size].iter().zip(&bodies[at..at + size]) {
                let m = m.borrow();
                q = q.bind(&m.contact_id).bind(m.seq).bind(&m.sender).bind(&m.sender_id).bind(&m.client_id).bind(body).bind(m.at);
            }
            let inserted = q.fetch_all(&mut **self).await?;
            at += size;
            if inserted.len() < size {
                return Ok(false);
            }
        }
        Ok(true)
    }
});

/// A view of the store: conversation messages: numbering, group writes, history ([`Store::messages`]).
#[derive(Clone, Copy, Debug)]
pub struct Messages<'a>(pub(super) &'a Store);

impl Messages<'_> {
    /// The newest seq of each of `contacts` (a contact without messages is missing), read to number
    /// new messages (one read per 500). A failure counts as a failed write: the messages cannot be stored.
    pub async fn last_seqs(self, contacts: &[String]) -> StoreResult<HashMap<String, i64>> {
        let result = self.latest_seqs(contacts).await;
        if result.is_err() {
            self.0.note_write(&result);
        }
        result
    }

    /// Writes a batch of numbered rows in one transaction (group commit, a few multi-row `INSERT`s),
    /// as they are: the store numbers nothing (the relay does). A seq already taken is refused by
    /// the `(contact_id, seq)` key (an error: nothing is stored). A row repeating a stored message's
    /// (contact, sender, client id) stores nothing of the batch, and the stored copies of the rows
    /// are read, one row at a time, and returned ([`Written::Repeats`]) for the batch to be numbered again.
    /// In the leader's write transactions ([`Store::begin_leader_write`]: fenced in cluster mode).
    pub async fn write_messages<M: Borrow<StoredMessage> + Sync>(self, rows: &[M]) -> StoreResult<Written> {
        let result = self.write_messages_once(rows).await;
        self.0.note_write(&result);
        result
    }

    async fn write_messages_once<M: Borrow<StoredMessage> + Sync>(self, rows: &[M]) -> StoreResult<Written> {
        if rows.is_empty() {
            return Ok(Written::All);
        }
        // Sealed before the transaction begins: the writer's lock is not held while encrypting.
        let bodies = rows
            .iter()
            .map(|m| {
                let m = m.borrow();
                self.0.seal(MESSAGE_BODY, &message_row(&m.contact_id, m.seq), &m.body)
            })
            .collect::<StoreResult<Vec<String>>>()?;
        let mut tx = self.0.begin_leader_write().await?;
        let backend = self.0.backend();
        let all_new = match &mut tx {
            LeaderTx::Sqlite(t) => t.insert_rows(rows, &bodies, backend).await?,
            LeaderTx::Postgres(t) => t.insert_rows(rows, &bodies, backend).await?,
        };
        if all_new {
            tx.commit().await?;
            return Ok(Written::All);
        }
        // A repeat: undo, and find the stored copy of each row, one at a time.
        tx.rollback().await?;
        let select = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = $1 AND sender = $2 AND client_id = $3");
        let mut earlier = Vec::new();
        for m in rows {
            let m = m.borrow();
            let copy: Option<StoredMessage> = on_pool!(self.0, pool => {
                sqlx::query_as(&select).bind(&m.contact_id).bind(&m.sender).bind(&m.client_id).fetch_optional(pool).await
            })?;
            if let Some(copy) = copy {
                earlier.push(opened(self.0, copy)?);
            }
        }
        Ok(Written::Repeats(earlier))
    }

    /// The newest message seq of each of `contacts` that has messages (one read per 500).
    pub async fn latest_seqs(self, contacts: &[String]) -> StoreResult<HashMap<String, i64>> {
        let mut all = HashMap::with_capacity(contacts.len());
        for chunk in contacts.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT contact_id, MAX(seq) FROM messages WHERE contact_id IN ({}) GROUP BY contact_id", marks.join(", "));
            let rows: Vec<(String, i64)> = on_pool!(self.0, pool => {
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
    pub async fn messages_after(self, contact: &str, after: i64) -> StoreResult<Vec<StoredMessage>> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = $1 AND seq > $2 ORDER BY seq");
        let rows: Vec<StoredMessage> = on_pool!(self.0, pool => sqlx::query_as(&sql).bind(contact).bind(after).fetch_all(pool).await)?;
        rows.into_iter().map(|m| opened(self.0, m)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{queued_chat, seeded};

    fn row(contact: &str, seq: i64, client_id: &str) -> StoredMessage {
        NewMessage {
            contact_id: contact.into(),
            sender: "caller",
            sender_id: None,
            client_id: client_id.into(),
            body: client_id.into(),
            at: 3,
        }
        .stored(seq)
    }

    /// The store writes the rows it is given, numbered: a batch without repeats in a few multi-row
    /// inserts; a batch with a repeat of a stored message stores nothing and names the stored copies;
    /// a seq already taken is refused, nothing of its batch stored.
    #[tokio::test]
    async fn batches_are_written_as_numbered_and_repeats_name_the_stored_copy() {
        let store = seeded().await;
        let (a, b) = (queued_chat(&store, 1).await, queued_chat(&store, 2).await);
        assert!(store.messages().last_seqs(&[a.clone(), b.clone()]).await.expect("read").is_empty(), "no messages yet");
        let rows: Vec<StoredMessage> = (0..200).map(|i| row(if i % 2 == 0 { &a } else { &b }, i / 2 + 1, &format!("m{i}"))).collect();
        assert_eq!(store.messages().write_messages(&rows).await.expect("stored"), Written::All);
        let last = store.messages().last_seqs(&[a.clone(), b.clone()]).await.expect("read");
        assert_eq!((last.get(&a), last.get(&b)), (Some(&100), Some(&100)));
        assert_eq!(store.messages().messages_after(&a, 98).await.expect("read"), vec![rows[196].clone(), rows[198].clone()]);

        // A repeat of a stored message (another text: the stored copy wins), among new rows.
        let repeats = [row(&a, 101, "new"), row(&a, 102, "m0"), row(&b, 101, "other"), row(&b, 102, "m3")];
        let got = store.messages().write_messages(&repeats).await.expect("answered");
        assert_eq!(got, Written::Repeats(vec![rows[0].clone(), rows[3].clone()]), "the stored copies, in the rows' order");
        assert_eq!(store.messages().messages_after(&a, 100).await.expect("read"), vec![], "nothing of that batch stored");
        assert_eq!(store.messages().messages_after(&b, 100).await.expect("read"), vec![]);

        // Numbered again around the repeats, it goes through.
        assert_eq!(store.messages().write_messages(&[row(&a, 101, "new"), row(&b, 101, "other")]).await.expect("stored"), Written::All);

        // A seq already taken (a wrong numbering) is refused whole.
        assert!(store.messages().write_messages(&[row(&b, 102, "fine"), row(&a, 101, "late")]).await.is_err(), "a seq already taken");
        assert_eq!(store.messages().messages_after(&b, 101).await.expect("read"), vec![], "nothing of that batch stored");
        assert_eq!(store.messages().write_messages::<StoredMessage>(&[]).await.expect("nothing to write"), Written::All);
        assert_eq!(store.messages().messages_after(&a, 0).await.expect("read").len(), 101, "no gap, no second copy");
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

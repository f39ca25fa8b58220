//! Conversation messages: numbered per contact without gaps, idempotent per sender and client id, written in batches.

use std::collections::HashMap;

use super::{on_pool, BeginWrite, Store, StoreResult};

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

impl Store {
    /// Stores a batch of messages in one transaction (group commit) and returns, for each,
    /// its seq, or the earlier copy if it is a repeat. Messages of one contact get consecutive
    /// seqs in the order given.
    pub async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<Stored>> {
        let result = self.insert_messages_once(batch).await;
        self.note_write(&result);
        result
    }

    async fn insert_messages_once(&self, batch: &[NewMessage]) -> StoreResult<Vec<Stored>> {
        let select_dup = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = $1 AND sender = $2 AND client_id = $3"
        );
        on_pool!(self, pool => async {
            let mut tx = pool.begin_write().await?;
            super::cluster::fence_check!(self, tx);
            let mut next_seq: HashMap<&str, i64> = HashMap::new();
            let mut out = Vec::with_capacity(batch.len());
            for m in batch {
                let seq = match next_seq.get(m.contact_id.as_str()) {
                    Some(s) => *s,
                    None => {
                        let (max,): (i64,) = sqlx::query_as(
                            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE contact_id = $1")
                            .bind(&m.contact_id).fetch_one(&mut *tx).await?;
                        max + 1
                    }
                };
                // One statement in the common case; a repeat (same sender and client id) inserts
                // nothing, keeps the seq free for the next message, and returns the earlier copy.
                let inserted: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO messages (contact_id, seq, sender, sender_id, client_id, body, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (contact_id, sender, client_id) DO NOTHING RETURNING seq")
                    .bind(&m.contact_id).bind(seq).bind(m.sender).bind(&m.sender_id)
                    .bind(&m.client_id).bind(&m.body).bind(m.at)
                    .fetch_optional(&mut *tx).await?;
                if inserted.is_none() {
                    let earlier: StoredMessage = sqlx::query_as(&select_dup)
                        .bind(&m.contact_id).bind(m.sender).bind(&m.client_id)
                        .fetch_one(&mut *tx).await?;
                    next_seq.insert(&m.contact_id, seq);
                    out.push(Stored { message: earlier, duplicate: true });
                    continue;
                }
                next_seq.insert(&m.contact_id, seq + 1);
                out.push(Stored {
                    message: StoredMessage {
                        contact_id: m.contact_id.clone(),
                        seq,
                        sender: m.sender.to_string(),
                        sender_id: m.sender_id.clone(),
                        client_id: m.client_id.clone(),
                        body: m.body.clone(),
                        at: m.at,
                    },
                    duplicate: false,
                });
            }
            tx.commit().await?;
            Ok::<_, super::StoreError>(out)
        }.await)
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

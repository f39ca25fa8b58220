//! Cluster mode's fence in PostgreSQL: the current leader's fencing token, raised at takeover and checked by every leader write
//! (the leader's write transactions are [`LeaderTx`], which only [`Store::begin_leader_write`] opens, after the check).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::{on_pool, BeginWrite, Pool, Store, StoreError, StoreResult};

/// The token a leader's writes must still hold; shared by the store clones of one leadership.
#[derive(Debug, Clone)]
pub struct FenceToken(Arc<AtomicI64>);

impl FenceToken {
    pub fn new(token: i64) -> FenceToken {
        FenceToken(Arc::new(AtomicI64::new(token)))
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Read at the start of a leader's write transaction on PostgreSQL. `FOR SHARE`: leader transactions do not
/// wait for each other, but a takeover's `UPDATE` waits for those in flight, and those after it see the new token.
pub(crate) const FENCE_CHECK: &str = "SELECT token FROM cluster_fence WHERE id = 1 FOR SHARE";

/// Refuses the transaction unless `row` (from [`FENCE_CHECK`]) is `token`.
pub(crate) fn check(row: Option<(i64,)>, token: i64) -> Result<(), StoreError> {
    match row {
        Some((current,)) if current == token => Ok(()),
        _ => Err(StoreError::Fenced),
    }
}

/// Reading the fence row inside a write transaction.
trait ReadFence {
    async fn read_fence(&mut self) -> Result<Option<(i64,)>, sqlx::Error>;
}

impl ReadFence for sqlx::PgConnection {
    async fn read_fence(&mut self) -> Result<Option<(i64,)>, sqlx::Error> {
        sqlx::query_as(FENCE_CHECK).fetch_optional(self).await
    }
}

/// SQLite is never fenced in practice (cluster mode needs PostgreSQL), and has no `FOR SHARE`: its write
/// transactions begin `IMMEDIATE`, holding the database's one write lock, so a plain read serves.
impl ReadFence for sqlx::SqliteConnection {
    async fn read_fence(&mut self) -> Result<Option<(i64,)>, sqlx::Error> {
        sqlx::query_as("SELECT token FROM cluster_fence WHERE id = 1").fetch_optional(self).await
    }
}

/// A write transaction that [`Store::begin_leader_write`] opened: its fence was checked if the store is
/// fenced. Its field is private to this module, so nothing else makes one out of a plain transaction;
/// the leader's writes (routing steps, messages) are implemented for this type only.
pub(crate) struct Fenced<DB: sqlx::Database>(sqlx::Transaction<'static, DB>);

impl<DB: sqlx::Database> std::ops::Deref for Fenced<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.0
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Fenced<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.0
    }
}

/// Checks the fence inside `tx` when `fence` is set: refuses (and rolls back) unless it is still current.
async fn check_fence<DB>(mut tx: sqlx::Transaction<'static, DB>, fence: Option<&FenceToken>) -> StoreResult<Fenced<DB>>
where
    DB: sqlx::Database,
    DB::Connection: ReadFence,
{
    if let Some(fence) = fence {
        let row = tx.read_fence().await?;
        check(row, fence.get())?;
    }
    Ok(Fenced(tx))
}

/// The leader's write transaction, on whichever engine the store runs: see [`Store::begin_leader_write`].
pub(crate) enum LeaderTx {
    Sqlite(Fenced<sqlx::Sqlite>),
    Postgres(Fenced<sqlx::Postgres>),
}

impl LeaderTx {
    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            LeaderTx::Sqlite(tx) => tx.0.commit().await?,
            LeaderTx::Postgres(tx) => tx.0.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> StoreResult<()> {
        match self {
            LeaderTx::Sqlite(tx) => tx.0.rollback().await?,
            LeaderTx::Postgres(tx) => tx.0.rollback().await?,
        }
        Ok(())
    }
}

/// A view of the store: cluster mode's fence row (raise, read) ([`Store::fencing`]).
#[derive(Clone, Copy, Debug)]
pub struct Fencing<'a>(pub(super) &'a Store);

impl Store {
    /// Begins a write transaction of the leader's (routing steps, messages): the only way to get a
    /// [`LeaderTx`]. When the store is fenced (cluster mode, on the leader) it first reads the fence row
    /// and refuses with [`StoreError::Fenced`] unless this store's token is still the current one; a
    /// single node's store is not fenced and checks nothing.
    pub(crate) async fn begin_leader_write(&self) -> StoreResult<LeaderTx> {
        let fence = self.fence.as_ref();
        Ok(match &self.pool {
            Pool::Sqlite { write, .. } => LeaderTx::Sqlite(check_fence(write.begin_write().await?, fence).await?),
            Pool::Postgres(pool) => LeaderTx::Postgres(check_fence(pool.begin_write().await?, fence).await?),
        })
    }

    /// A clone of this store whose routing and message writes are refused once `token` is no longer current.
    pub fn fenced(&self, token: FenceToken) -> Store {
        Store {
            pool: self.pool.clone(),
            fence: Some(token),
            health: self.health.clone(),
            creations: self.creations.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl Fencing<'_> {
    /// This database's cluster id: `candidate` if none was written yet (the first node to start on
    /// it writes its own), else the one written then. Nodes compare it before following a leader.
    pub async fn cluster_id(self, candidate: &str) -> StoreResult<String> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO cluster_identity (id, cluster_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(candidate).execute(pool).await.map(|_| ()))?;
        let (id,): (String,) = on_pool!(self.0, pool => sqlx::query_as("SELECT cluster_id FROM cluster_identity WHERE id = 1")
            .fetch_one(pool).await)?;
        Ok(id)
    }
}

impl Fencing<'_> {
    /// Raises the fence to `token` for `holder` (a takeover); false if it is already at or above it
    /// (a newer leader exists). Waits for leader transactions in flight to finish.
    pub async fn raise_fence(self, token: i64, holder: &str, at: i64) -> StoreResult<bool> {
        let done = on_pool!(self.0, pool => sqlx::query(
            "UPDATE cluster_fence SET token = $1, holder = $2, raised_at = $3 WHERE id = 1 AND token < $1")
            .bind(token).bind(holder).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The current fence: (token, holder).
    pub async fn fence(self) -> StoreResult<(i64, Option<String>)> {
        Ok(on_pool!(self.0, pool => sqlx::query_as("SELECT token, holder FROM cluster_fence WHERE id = 1")
            .fetch_one(pool).await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contacts::Change;
    use crate::store::messages::{NewMessage, StoredMessage};
    use crate::store::test_support::{queued_chat, seeded};

    fn line(contact: &str, detail: &str) -> Change {
        Change::Event { contact: contact.into(), at: 2, kind: "sla_at_risk", counsellor: None, detail: Some(detail.into()) }
    }

    fn message(contact: &str, seq: i64, client_id: &str) -> StoredMessage {
        NewMessage {
            contact_id: contact.into(),
            sender: "caller",
            sender_id: None,
            client_id: client_id.into(),
            body: "text".into(),
            at: 3,
        }
        .stored(seq)
    }

    #[test]
    fn only_the_current_token_passes() {
        assert!(check(Some((7,)), 7).is_ok());
        assert!(matches!(check(Some((8,)), 7), Err(StoreError::Fenced)), "a newer leader");
        assert!(matches!(check(Some((6,)), 7), Err(StoreError::Fenced)), "not raised to ours yet");
        assert!(matches!(check(None, 7), Err(StoreError::Fenced)), "no fence row");
    }

    /// Every leader write opens its transaction through `begin_leader_write`: once a newer token is raised,
    /// the older leader's routing steps and message batches are refused and nothing of them is stored.
    #[tokio::test]
    async fn a_stale_fence_token_refuses_every_leader_write_and_stores_nothing() {
        let store = seeded().await;
        let contact = queued_chat(&store, 1).await;
        assert!(store.fencing().raise_fence(1, "a", 1).await.expect("raise"));
        let old = store.fenced(FenceToken::new(1));
        assert!(old.is_fenced() && !store.is_fenced());
        old.contacts().apply_changes(&[line(&contact, "first")]).await.expect("the current leader writes");
        old.messages().write_messages(&[message(&contact, 1, "m1")]).await.expect("the current leader stores messages");

        assert!(store.fencing().raise_fence(2, "b", 2).await.expect("raise"));
        assert!(matches!(old.begin_leader_write().await, Err(StoreError::Fenced)));
        let refused = old.contacts().apply_changes(&[line(&contact, "stale")]).await;
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
        let refused = old.messages().write_messages(&[message(&contact, 2, "m2")]).await;
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
        // A batch with a repeat (the path that reads the stored copies) is refused as well.
        let refused = old.messages().write_messages(&[message(&contact, 2, "m1"), message(&contact, 3, "m3")]).await;
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
        assert!(old.writes_ok(), "a fenced write is not a database failure");

        let details: Vec<Option<String>> =
            store.contacts().contact_events(&contact).await.expect("read").into_iter().map(|e| e.detail).collect();
        assert!(details.contains(&Some("first".into())) && !details.contains(&Some("stale".into())), "{details:?}");
        assert_eq!(store.messages().messages_after(&contact, 0).await.expect("read").len(), 1);

        // The new token writes; a single node's store (not fenced) checks nothing.
        store.fenced(FenceToken::new(2)).contacts().apply_changes(&[line(&contact, "fresh")]).await.expect("the new leader writes");
        store.contacts().apply_changes(&[line(&contact, "single node")]).await.expect("not fenced");
        store.messages().write_messages(&[message(&contact, 2, "m4")]).await.expect("not fenced");
    }
}

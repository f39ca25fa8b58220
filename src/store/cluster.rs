//! Cluster mode's fence in PostgreSQL: the current leader's fencing token, raised at takeover and checked by every leader write.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::{on_pool, Store, StoreError, StoreResult};

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

/// Read at the start of a leader's write transaction. `FOR SHARE`: leader transactions do not wait
/// for each other, but a takeover's `UPDATE` waits for those in flight, and those after it see the new token.
pub(crate) const FENCE_CHECK: &str = "SELECT token FROM cluster_fence WHERE id = 1 FOR SHARE";

/// Refuses the transaction unless `row` (from [`FENCE_CHECK`]) is `token`.
pub(crate) fn check(row: Option<(i64,)>, token: i64) -> Result<(), StoreError> {
    match row {
        Some((current,)) if current == token => Ok(()),
        _ => Err(StoreError::Fenced),
    }
}

/// Runs the fence check inside an open transaction when the store is fenced (cluster leader).
macro_rules! fence_check {
    ($store:expr, $tx:expr) => {
        if let Some(fence) = &$store.fence {
            let row: Option<(i64,)> = sqlx::query_as($crate::store::cluster::FENCE_CHECK).fetch_optional(&mut *$tx).await?;
            $crate::store::cluster::check(row, fence.get())?;
        }
    };
}
pub(crate) use fence_check;

impl Store {
    /// A clone of this store whose routing and message writes are refused once `token` is no longer current.
    pub fn fenced(&self, token: FenceToken) -> Store {
        Store { pool: self.pool.clone(), fence: Some(token), health: self.health.clone(), creations: self.creations.clone() }
    }

    /// Raises the fence to `token` for `holder` (a takeover); false if it is already at or above it
    /// (a newer leader exists). Waits for leader transactions in flight to finish.
    pub async fn raise_fence(&self, token: i64, holder: &str, at: i64) -> StoreResult<bool> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE cluster_fence SET token = $1, holder = $2, raised_at = $3 WHERE id = 1 AND token < $1")
            .bind(token).bind(holder).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The current fence: (token, holder).
    pub async fn fence(&self) -> StoreResult<(i64, Option<String>)> {
        Ok(on_pool!(self, pool => sqlx::query_as("SELECT token, holder FROM cluster_fence WHERE id = 1")
            .fetch_one(pool).await)?)
    }
}

//! Session revocation: logging out refuses every access token of the account issued before that moment.

use super::{on_pool, Store, StoreResult};

impl Store {
    /// Records that the account's tokens issued before `at` (ms) are void.
    pub async fn revoke_sessions(&self, user_id: &str, at: i64) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO session_revocations (user_id, revoked_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET revoked_at = excluded.revoked_at")
            .bind(user_id).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// When the account last logged out everywhere (ms), if ever.
    pub async fn sessions_revoked_at(&self, user_id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT revoked_at FROM session_revocations WHERE user_id = $1")
            .bind(user_id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }
}

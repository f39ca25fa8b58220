//! Sessions: logout refuses every access token of the account issued before that moment; refresh tokens (stored hashed, rotated on each use, a reused one revokes its family).

use super::{on_pool, on_writer, BeginWrite, Store, StoreResult};

/// A view of the store: logout everywhere and refresh tokens ([`Store::sessions`]).
#[derive(Clone, Copy, Debug)]
pub struct Sessions<'a>(pub(super) &'a Store);

impl Sessions<'_> {
    /// Records that the account's tokens issued before `at` (ms) are void.
    pub async fn revoke_sessions(self, user_id: &str, at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO session_revocations (user_id, revoked_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET revoked_at = excluded.revoked_at")
            .bind(user_id).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// When the account last logged out everywhere (ms), if ever.
    pub async fn sessions_revoked_at(self, user_id: &str) -> StoreResult<Option<i64>> {
        let row: Option<(i64,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT revoked_at FROM session_revocations WHERE user_id = $1")
            .bind(user_id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }
}

/// A refresh token's row: family, account, expiry, when used, when revoked.
type RefreshRow = (String, String, i64, Option<i64>, Option<i64>);

/// What presenting a refresh token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// It was valid: it is now used, and `new` (same family, same absolute expiry) replaces it.
    Rotated { user_id: String, family_id: String, expires_at: i64 },
    /// It had been used before: the whole family is revoked now (a copy was stolen or replayed).
    Reused { user_id: String, family_id: String },
    /// Unknown, expired, or revoked (logout, disabling, or an earlier reuse).
    Refused,
}

impl Sessions<'_> {
    /// Stores a new refresh token (its SHA-256 only) at the start of a family.
    pub async fn create_refresh_token(self, hash: &str, family_id: &str, user_id: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash).bind(family_id).bind(user_id).bind(now).bind(expires_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Uses the refresh token hashed `hash` once, in one write transaction: a valid one is marked used
    /// and replaced by `new_hash` in its family; one used before revokes its family.
    pub async fn rotate_refresh_token(self, hash: &str, new_hash: &str, now: i64) -> StoreResult<Refresh> {
        let outcome = on_writer!(self.0, pool => async {
            let mut tx = pool.begin_write().await?;
            let row: Option<RefreshRow> = sqlx::query_as(
                "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash).fetch_optional(&mut *tx).await?;
            let Some((family_id, user_id, expires_at, used_at, revoked_at)) = row else {
                tx.commit().await?;
                return Ok::<_, sqlx::Error>(Refresh::Refused);
            };
            if revoked_at.is_some() || expires_at <= now {
                tx.commit().await?;
                return Ok(Refresh::Refused);
            }
            // Marked used only if nobody used it first (two requests racing with one token: the second is a reuse).
            let first = used_at.is_none()
                && sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                    .bind(now).bind(hash).execute(&mut *tx).await?.rows_affected() == 1;
            if !first {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                    .bind(now).bind(&family_id).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Refresh::Reused { user_id, family_id });
            }
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(new_hash).bind(&family_id).bind(&user_id).bind(now).bind(expires_at).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Refresh::Rotated { user_id, family_id, expires_at })
        }.await)?;
        Ok(outcome)
    }

    /// Revokes every refresh token of an account (logout, disabling).
    pub async fn revoke_refresh_tokens(self, user_id: &str, now: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now).bind(user_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

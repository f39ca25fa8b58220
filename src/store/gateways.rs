//! Telephony gateways: the exchanges allowed to send call events, each with a service token stored hashed.

use super::{new_id, on_pool, Store, StoreError, StoreResult};

/// An exchange's account (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Gateway {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A view of the store: the exchanges' accounts (gateways) and their tokens ([`Store::exchanges`]).
#[derive(Clone, Copy, Debug)]
pub struct Exchanges<'a>(pub(super) &'a Store);

impl Exchanges<'_> {
    /// Creates a gateway with the SHA-256 `token_hash` of its service token; `Conflict` if the name is taken.
    pub async fn create_gateway(self, name: &str, token_hash: &str, now: i64) -> StoreResult<Gateway> {
        let id = new_id();
        let res = on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO gateways (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id).bind(name).bind(token_hash).bind(now).execute(pool).await.map(|_| ()));
        res.map_err(|e| StoreError::from_insert(e, "gateway name taken"))?;
        Ok(Gateway { id, name: name.to_string(), created_at: now, revoked_at: None })
    }

    /// Every gateway, revoked ones included, by name.
    pub async fn gateways(self) -> StoreResult<Vec<Gateway>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, name, created_at, revoked_at FROM gateways ORDER BY name").fetch_all(pool).await)?)
    }

    /// Revokes a gateway's token (its sockets are refused from the next upgrade on); `NotFound` if unknown.
    pub async fn revoke_gateway(self, name: &str, now: i64) -> StoreResult<()> {
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE gateways SET revoked_at = COALESCE(revoked_at, $1) WHERE name = $2")
            .bind(now).bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The gateway whose token hashes to `token_hash`, if it is not revoked.
    pub async fn gateway_by_token_hash(self, token_hash: &str) -> StoreResult<Option<Gateway>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT id, name, created_at, revoked_at FROM gateways WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(token_hash).fetch_optional(pool).await)?)
    }
}

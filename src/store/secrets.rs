//! Secrets the server generates once and keeps in its database (e.g. the JWT signing key when none is configured).

use super::{on_pool, Store, StoreResult};

/// A view of the store: server secrets kept in the database ([`Store::secrets`]).
#[derive(Clone, Copy, Debug)]
pub struct Secrets<'a>(pub(super) &'a Store);

impl Secrets<'_> {
    /// Returns the secret called `name`, creating it with `generate()` the first time.
    /// Safe against two nodes racing: the first insert wins and both read it back.
    pub async fn secret_or_create(self, name: &str, now: i64, generate: impl FnOnce() -> String) -> StoreResult<String> {
        // Read first: after the first time this is a plain read, with no write lock taken.
        let found: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_optional(pool).await)?;
        if let Some((value,)) = found {
            return Ok(value);
        }
        let value = generate();
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name).bind(&value).bind(now).execute(pool).await.map(|_| ()))?;
        let (stored,): (String,) = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(pool).await)?;
        Ok(stored)
    }
}

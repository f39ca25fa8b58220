//! Callback numbers (part of the [`Contacts`] view): the number a caller asked to be called back
//! on, kept only while the callback needs it. It is written by [`Contacts::keep_callback_number`]
//! and read by [`Contacts::callback_number`] only (sealed at rest with the data key, [`super::sealed`]), and deleted in
//! the routing step that ends its contact ([`super::contacts::Change::ForgetCallback`]).

use super::contacts::Contacts;
use super::sealed::place::CALLBACK_NUMBER;
use super::{on_pool, StoreResult};

impl Contacts<'_> {
    /// Keeps `number` for contact `contact`'s callback (replacing any earlier one).
    pub async fn keep_callback_number(self, contact: &str, number: &str, at: i64) -> StoreResult<()> {
        let number = self.0.seal(CALLBACK_NUMBER, contact, number)?;
        let number = number.as_str();
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO callback_numbers (contact_id, number, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (contact_id) DO UPDATE SET number = excluded.number, created_at = excluded.created_at")
            .bind(contact).bind(number).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The number to call back for contact `contact`, while it is kept.
    pub async fn callback_number(self, contact: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT number FROM callback_numbers WHERE contact_id = $1").bind(contact).fetch_optional(pool).await)?;
        row.map(|r| self.0.open(CALLBACK_NUMBER, contact, &r.0)).transpose()
    }

    /// Deletes contact `contact`'s callback number now (a request that was not taken).
    pub async fn forget_callback_number(self, contact: &str) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query("DELETE FROM callback_numbers WHERE contact_id = $1")
            .bind(contact).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

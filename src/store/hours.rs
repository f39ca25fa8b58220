//! Helplines' opening hours (part of the [`Directory`] view): stored as the JSON of
//! [`crate::routing::hours::Hours`]; a helpline without hours is open 24/7.

use super::helplines::Directory;
use super::{on_pool, StoreError, StoreResult};
use crate::routing::hours::Hours;

fn parse(helpline: &str, json: &str) -> StoreResult<Hours> {
    serde_json::from_str(json).map_err(|e| StoreError::Conflict(format!("stored hours of {helpline} do not parse: {e}")))
}

impl Directory<'_> {
    /// A helpline's hours; None when it has none set (open 24/7).
    pub async fn hours(self, helpline: &str) -> StoreResult<Option<Hours>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT hours FROM helpline_hours WHERE helpline = $1").bind(helpline).fetch_optional(pool).await)?;
        row.map(|(json,)| parse(helpline, &json)).transpose()
    }

    /// Every helpline's hours that are set, by helpline name.
    pub async fn all_hours(self) -> StoreResult<Vec<(String, Hours)>> {
        let rows: Vec<(String, String)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT helpline, hours FROM helpline_hours ORDER BY helpline").fetch_all(pool).await)?;
        rows.into_iter().map(|(h, json)| parse(&h, &json).map(|hours| (h, hours))).collect()
    }

    /// Sets a helpline's hours (checked by the caller: [`Hours::schedule`]), replacing any.
    pub async fn set_hours(self, helpline: &str, hours: &Hours, at: i64) -> StoreResult<()> {
        let json = serde_json::to_string(hours).map_err(|e| StoreError::Conflict(e.to_string()))?;
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO helpline_hours (helpline, hours, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (helpline) DO UPDATE SET hours = excluded.hours, updated_at = excluded.updated_at")
            .bind(helpline).bind(&json).bind(at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

//! Helplines: their names, languages and answer-clock settings.

use super::{join_list, on_pool, split_list, Store, StoreResult};

/// A helpline as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Helpline {
    pub name: String,
    pub display_name: String,
    /// Languages served; the first is the default.
    pub languages: Vec<String>,
    pub ring_timeout_ms: i64,
    pub backup_after_ms: i64,
    pub sla_at_risk_ms: i64,
    pub sla_target_ms: i64,
    pub caller_grace_ms: i64,
    pub service_level_target_pct: i64,
}

impl Helpline {
    /// A helpline with the product's default timings (8 s ring, 10 s backup and at-risk, 15 s target, 120 s grace, 90 %).
    pub fn with_defaults(name: &str, display_name: &str, languages: &[&str]) -> Helpline {
        Helpline {
            name: name.into(),
            display_name: display_name.into(),
            languages: languages.iter().map(|l| l.to_string()).collect(),
            ring_timeout_ms: 8_000,
            backup_after_ms: 10_000,
            sla_at_risk_ms: 10_000,
            sla_target_ms: 15_000,
            caller_grace_ms: 120_000,
            service_level_target_pct: 90,
        }
    }
}

#[derive(sqlx::FromRow)]
struct HelplineRow {
    name: String,
    display_name: String,
    languages: String,
    ring_timeout_ms: i64,
    backup_after_ms: i64,
    sla_at_risk_ms: i64,
    sla_target_ms: i64,
    caller_grace_ms: i64,
    service_level_target_pct: i64,
}

impl From<HelplineRow> for Helpline {
    fn from(r: HelplineRow) -> Self {
        Helpline {
            name: r.name,
            display_name: r.display_name,
            languages: split_list(&r.languages),
            ring_timeout_ms: r.ring_timeout_ms,
            backup_after_ms: r.backup_after_ms,
            sla_at_risk_ms: r.sla_at_risk_ms,
            sla_target_ms: r.sla_target_ms,
            caller_grace_ms: r.caller_grace_ms,
            service_level_target_pct: r.service_level_target_pct,
        }
    }
}

impl Store {
    /// Creates or replaces a helpline's settings.
    pub async fn upsert_helpline(&self, h: &Helpline) -> StoreResult<()> {
        let languages = join_list(&h.languages);
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO helplines (name, display_name, languages, ring_timeout_ms, backup_after_ms,
                 sla_at_risk_ms, sla_target_ms, caller_grace_ms, service_level_target_pct)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name,
                 languages = excluded.languages, ring_timeout_ms = excluded.ring_timeout_ms,
                 backup_after_ms = excluded.backup_after_ms, sla_at_risk_ms = excluded.sla_at_risk_ms,
                 sla_target_ms = excluded.sla_target_ms, caller_grace_ms = excluded.caller_grace_ms,
                 service_level_target_pct = excluded.service_level_target_pct")
            .bind(&h.name).bind(&h.display_name).bind(&languages).bind(h.ring_timeout_ms)
            .bind(h.backup_after_ms).bind(h.sla_at_risk_ms).bind(h.sla_target_ms)
            .bind(h.caller_grace_ms).bind(h.service_level_target_pct)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Creates a helpline only if none of that name exists (seeding never overwrites an operator's settings).
    pub async fn insert_helpline_if_missing(&self, h: &Helpline) -> StoreResult<bool> {
        if self.helpline(&h.name).await?.is_some() {
            return Ok(false);
        }
        self.upsert_helpline(h).await?;
        Ok(true)
    }

    /// All helplines, by name.
    pub async fn helplines(&self) -> StoreResult<Vec<Helpline>> {
        let rows: Vec<HelplineRow> = on_pool!(self, pool =>
            sqlx::query_as("SELECT * FROM helplines ORDER BY name").fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Helpline::from).collect())
    }

    pub async fn helpline(&self, name: &str) -> StoreResult<Option<Helpline>> {
        let row: Option<HelplineRow> = on_pool!(self, pool =>
            sqlx::query_as("SELECT * FROM helplines WHERE name = $1").bind(name).fetch_optional(pool).await)?;
        Ok(row.map(Helpline::from))
    }
}

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
    /// Whether a counsellor on a call may still be offered this helpline's chats.
    pub chat_while_on_call: bool,
    /// Whether calls go ahead of chats of equal priority.
    pub calls_first: bool,
    /// How long a slot stays in wrap-up after a conversation ends, at most (0: no wrap-up).
    pub wrapup_limit_ms: i64,
    /// The reasons its counsellors may give for being away.
    pub away_reasons: Vec<String>,
    /// Whether it asks the triage question, and the priority a yes gives (None: not asked).
    pub triage_priority: Option<i64>,
    /// Whether waiting callers who dropped are still offered (default: they wait without ringing).
    pub ring_offline_callers: bool,
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
            chat_while_on_call: false,
            calls_first: true,
            wrapup_limit_ms: 60_000,
            away_reasons: ["break", "training", "supervision", "admin"].map(String::from).to_vec(),
            triage_priority: None,
            ring_offline_callers: false,
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
    chat_while_on_call: bool,
    calls_first: bool,
    wrapup_limit_ms: i64,
    away_reasons: String,
    triage_priority: Option<i64>,
    ring_offline_callers: bool,
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
            chat_while_on_call: r.chat_while_on_call,
            calls_first: r.calls_first,
            wrapup_limit_ms: r.wrapup_limit_ms,
            away_reasons: split_list(&r.away_reasons),
            triage_priority: r.triage_priority,
            ring_offline_callers: r.ring_offline_callers,
        }
    }
}

/// A view of the store: helplines and the dialled-number map ([`Store::directory`]).
#[derive(Clone, Copy, Debug)]
pub struct Directory<'a>(pub(super) &'a Store);

impl Directory<'_> {
    /// Creates or replaces a helpline's settings.
    pub async fn upsert_helpline(self, h: &Helpline) -> StoreResult<()> {
        // The answer target decides what "answered in target" means in every rolled-up hour.
        let target_changed = self.helpline(&h.name).await?.is_some_and(|old| old.sla_target_ms != h.sla_target_ms);
        let languages = join_list(&h.languages);
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO helplines (name, display_name, languages, ring_timeout_ms, backup_after_ms,
                 sla_at_risk_ms, sla_target_ms, caller_grace_ms, service_level_target_pct,
                 chat_while_on_call, calls_first, wrapup_limit_ms, away_reasons, triage_priority, ring_offline_callers)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name,
                 languages = excluded.languages, ring_timeout_ms = excluded.ring_timeout_ms,
                 backup_after_ms = excluded.backup_after_ms, sla_at_risk_ms = excluded.sla_at_risk_ms,
                 sla_target_ms = excluded.sla_target_ms, caller_grace_ms = excluded.caller_grace_ms,
                 service_level_target_pct = excluded.service_level_target_pct,
                 chat_while_on_call = excluded.chat_while_on_call, calls_first = excluded.calls_first,
                 wrapup_limit_ms = excluded.wrapup_limit_ms, away_reasons = excluded.away_reasons,
                 triage_priority = excluded.triage_priority, ring_offline_callers = excluded.ring_offline_callers")
            .bind(&h.name).bind(&h.display_name).bind(&languages).bind(h.ring_timeout_ms)
            .bind(h.backup_after_ms).bind(h.sla_at_risk_ms).bind(h.sla_target_ms)
            .bind(h.caller_grace_ms).bind(h.service_level_target_pct)
            .bind(h.chat_while_on_call).bind(h.calls_first)
            .bind(h.wrapup_limit_ms).bind(join_list(&h.away_reasons)).bind(h.triage_priority).bind(h.ring_offline_callers)
            .execute(pool).await.map(|_| ()))?;
        if target_changed {
            self.0.rollups().clear_rollups().await?;
        }
        Ok(())
    }

    /// Sets a helpline's waiting settings (checked by the caller): wrap-up limit, away reasons, and
    /// the triage question's priority (None: not asked). False when there is no such helpline.
    pub async fn set_waiting(
        self,
        name: &str,
        wrapup_limit_ms: i64,
        away_reasons: &[String],
        triage_priority: Option<i64>,
    ) -> StoreResult<bool> {
        let reasons = join_list(away_reasons);
        let n = on_pool!(self.0, pool => sqlx::query(
            "UPDATE helplines SET wrapup_limit_ms = $1, away_reasons = $2, triage_priority = $3 WHERE name = $4")
            .bind(wrapup_limit_ms).bind(&reasons).bind(triage_priority).bind(name)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Creates a helpline only if none of that name exists (seeding never overwrites an operator's settings).
    pub async fn insert_helpline_if_missing(self, h: &Helpline) -> StoreResult<bool> {
        if self.helpline(&h.name).await?.is_some() {
            return Ok(false);
        }
        self.upsert_helpline(h).await?;
        Ok(true)
    }

    /// All helplines, by name.
    pub async fn helplines(self) -> StoreResult<Vec<Helpline>> {
        let rows: Vec<HelplineRow> = on_pool!(self.0, pool =>
            sqlx::query_as("SELECT * FROM helplines ORDER BY name").fetch_all(pool).await)?;
        Ok(rows.into_iter().map(Helpline::from).collect())
    }

    pub async fn helpline(self, name: &str) -> StoreResult<Option<Helpline>> {
        let row: Option<HelplineRow> = on_pool!(self.0, pool =>
            sqlx::query_as("SELECT * FROM helplines WHERE name = $1").bind(name).fetch_optional(pool).await)?;
        Ok(row.map(Helpline::from))
    }
}

/// The entry of the dialled-number map that catches numbers not listed.
pub const DEFAULT_NUMBER: &str = "*";

impl Directory<'_> {
    /// The helpline a dialled number reaches: its own entry, else `None` (see [`Directory::default_call_helpline`]).
    pub async fn helpline_for_number(self, number: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT helpline FROM dialled_numbers WHERE number = $1").bind(number).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// The helpline that answers calls to numbers not in the map (the `*` entry).
    pub async fn default_call_helpline(self) -> StoreResult<Option<String>> {
        self.helpline_for_number(DEFAULT_NUMBER).await
    }

    /// Maps a dialled number (or `*`) to a helpline, replacing any earlier mapping.
    pub async fn set_dialled_number(self, number: &str, helpline: &str) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO dialled_numbers (number, helpline) VALUES ($1, $2)
             ON CONFLICT (number) DO UPDATE SET helpline = excluded.helpline")
            .bind(number).bind(helpline).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Adds a mapping only if the number has none (seeding never overwrites an operator's map).
    pub async fn insert_dialled_number_if_missing(self, number: &str, helpline: &str) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO dialled_numbers (number, helpline) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING")
            .bind(number).bind(helpline).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The whole map, by number.
    pub async fn dialled_numbers(self) -> StoreResult<Vec<(String, String)>> {
        Ok(on_pool!(self.0, pool => sqlx::query_as(
            "SELECT number, helpline FROM dialled_numbers ORDER BY number").fetch_all(pool).await)?)
    }
}

impl Directory<'_> {
    /// Removes a dialled number from the map; false when it was not there.
    pub async fn remove_dialled_number(self, number: &str) -> StoreResult<bool> {
        let n = on_pool!(self.0, pool => sqlx::query("DELETE FROM dialled_numbers WHERE number = $1")
            .bind(number).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// A helpline's own contact-form categories (the JSON an admin set), if it has any.
    pub async fn categories(self, helpline: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self.0, pool => sqlx::query_as(
            "SELECT categories FROM helpline_categories WHERE helpline = $1").bind(helpline).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Sets a helpline's own contact-form categories (checked JSON), replacing earlier ones.
    pub async fn set_categories(self, helpline: &str, categories: &str, by: &str, now: i64) -> StoreResult<()> {
        on_pool!(self.0, pool => sqlx::query(
            "INSERT INTO helpline_categories (helpline, categories, updated_by, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (helpline) DO UPDATE SET categories = excluded.categories,
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at")
            .bind(helpline).bind(categories).bind(by).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

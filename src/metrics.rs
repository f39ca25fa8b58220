//! Contact-centre figures (service level, ASA, abandonment, AHT, occupancy): one definition, used by live views and reports alike.
//! (Being written; see docs/metrics.md.)

use serde::Serialize;

use crate::store::{Store, StoreResult};

/// Figures over a time window, per `docs/metrics.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub offered: i64,
    pub answered: i64,
    pub answered_in_target: i64,
    pub abandoned: i64,
    pub abandoned_short: i64,
    /// answered within target ÷ (offered − short abandons); None when nothing was offered.
    pub service_level: Option<f64>,
    pub asa_ms: Option<f64>,
    pub abandonment_rate: Option<f64>,
    pub aht_ms: Option<f64>,
    pub occupancy: Option<f64>,
}

/// Figures for contacts that entered the queue in `[from_ms, to_ms)`, for one helpline or all.
pub async fn figures(_store: &Store, _helpline: Option<&str>, _from_ms: i64, _to_ms: i64) -> StoreResult<Figures> {
    Ok(Figures::default())
}

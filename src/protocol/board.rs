//! The supervisors' board as it goes over the wire (the `dashboard` frame): plain data, built by
//! `supervision::board` from the engine's snapshot and the figures (`docs/metrics.md` defines them).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::protocol::CounsellorStatus;

/// Figures over a time window, per `docs/metrics.md`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    /// Contacts that entered a queue in the window.
    pub offered: i64,
    /// Of those, answered (by the time the figures were computed).
    pub answered: i64,
    /// Answered with `answered_at − queued_at ≤` the helpline's target (15 s).
    pub answered_in_target: i64,
    /// Ended while still waiting (state `abandoned`), short abandons included.
    pub abandoned: i64,
    /// Abandoned less than `SHORT_ABANDON_MS` after being queued.
    pub abandoned_short: i64,
    /// answered within target ÷ (offered − short abandons − still waiting within target);
    /// None when that denominator is 0.
    pub service_level: Option<f64>,
    /// Mean of `answered_at − queued_at` over answered contacts, in ms.
    pub asa_ms: Option<f64>,
    /// (abandoned − short) ÷ (answered + abandoned − short); None when that denominator is 0.
    pub abandonment_rate: Option<f64>,
    /// Mean of `ended_at − answered_at` over answered contacts that have ended, in ms (no wrap-up time yet).
    pub aht_ms: Option<f64>,
    /// Time in conversation ÷ time staffed, over counsellors (see `occupancy_series`); None when nobody was staffed.
    pub occupancy: Option<f64>,
    /// Still waiting when the figures were computed.
    pub waiting: i64,
    /// Of those, waiting no longer than their target so far: left out of the service level (not yet decided).
    pub waiting_in_target: i64,
    /// Answered and still in conversation when the figures were computed (in ASA and service level, not in AHT).
    pub in_conversation: i64,
    /// Answered and ended: the contacts AHT is taken over.
    pub handled: i64,
    /// Percentiles (nearest rank) of `answered_at − queued_at` over answered contacts, in ms.
    pub answer_p50_ms: Option<i64>,
    pub answer_p90_ms: Option<i64>,
    pub answer_p99_ms: Option<i64>,
}

/// The whole board, as one `dashboard` frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub at: String,
    pub helplines: Vec<HelplineBoard>,
    pub counsellors: Vec<CounsellorBoard>,
    /// All helplines this supervisor sees, together.
    pub overall: Windows,
    /// The helpline of every contact on the board (waiting, in conversation, ringing): what
    /// [`Dashboard::scoped`] cuts by. Goes between cluster nodes, never to a supervisor.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub contact_helplines: HashMap<String, String>,
}

/// Figures over the last 15 minutes, the last hour and today (since midnight UTC), as defined in `docs/metrics.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Windows {
    pub last_15m: Figures,
    pub last_hour: Figures,
    pub today: Figures,
}

/// One helpline's part of the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HelplineBoard {
    pub name: String,
    pub display_name: String,
    pub waiting: Vec<WaitingBoard>,
    pub longest_wait_ms: i64,
    /// Counsellors serving this helpline first-line, by state.
    pub available: usize,
    pub busy: usize,
    pub away: usize,
    pub offline: usize,
    /// Serving counsellors with no free slot because some are in wrap-up (state `wrap_up`).
    #[serde(default)]
    pub wrap_up: usize,
    pub service_level_target_pct: i64,
    /// The helpline's answer-clock thresholds: a wait is "at risk" from the first, "over target" from the second.
    pub sla_at_risk_ms: i64,
    pub sla_target_ms: i64,
    pub figures: Windows,
    /// Waiting contacts by language.
    pub waiting_by_language: HashMap<String, usize>,
    /// Messages callers left for later and not yet answered (waiting for the line to open, or queued).
    #[serde(default)]
    pub messages_waiting: i64,
    /// Callback requests not yet answered (waiting for the line to open, or queued).
    #[serde(default)]
    pub callbacks_waiting: i64,
}

/// A waiting contact on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitingBoard {
    pub contact_id: String,
    pub language: String,
    pub priority: i32,
    pub position: u32,
    pub waited_ms: i64,
    /// Ringing for this counsellor (user id) now.
    pub offered_to: Option<String>,
    pub caller_online: bool,
}

/// A counsellor on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounsellorBoard {
    pub user_id: String,
    pub display_name: String,
    /// `available` (free room), `busy` (at capacity), `wrap_up` (no free room, some of it in wrap-up),
    /// `away` or `offline` (chosen, or disconnected).
    pub state: String,
    pub status: CounsellorStatus,
    pub connected: bool,
    pub active: Vec<String>,
    /// Open conversations whose priority was raised (escalated at imminent risk, or the form's risk set
    /// to `imminent`): the dashboard marks them.
    #[serde(default)]
    pub urgent: Vec<String>,
    pub capacity: u32,
    pub ringing: Option<String>,
    pub in_state_ms: i64,
    pub helplines: Vec<String>,
    pub languages: Vec<String>,
    /// Contacts whose slot is in wrap-up (ended; the form or `ready` still to come).
    #[serde(default)]
    pub wrap_up: Vec<String>,
    /// Why they are away (`break`, `training`, …, or `missed_offers`), while away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_reason: Option<String>,
}

impl Dashboard {
    /// The part of the board a supervisor who sees `scope` (None: all) may see: their helplines' rows,
    /// the counsellors serving one of them first-line with only those helplines' contacts, and the
    /// overall figures of their helplines alone.
    pub fn scoped(&self, scope: Option<&[String]>) -> Dashboard {
        let mut b = self.clone();
        let contact_helplines = std::mem::take(&mut b.contact_helplines);
        let Some(scope) = scope else { return b };
        b.helplines.retain(|h| scope.contains(&h.name));
        b.counsellors.retain(|c| c.helplines.iter().any(|h| scope.contains(h)));
        let visible = |contact: &String| contact_helplines.get(contact).is_some_and(|h| scope.contains(h));
        for c in &mut b.counsellors {
            c.active.retain(visible);
            c.urgent.retain(visible);
            c.ringing = c.ringing.take().filter(visible);
        }
        b.overall = match b.helplines.as_slice() {
            [one] => one.figures.clone(),
            several => {
                let windows: Vec<&Windows> = several.iter().map(|h| &h.figures).collect();
                Windows {
                    last_15m: Figures::together(windows.iter().map(|w| &w.last_15m)),
                    last_hour: Figures::together(windows.iter().map(|w| &w.last_hour)),
                    today: Figures::together(windows.iter().map(|w| &w.today)),
                }
            }
        };
        b
    }
}

impl Figures {
    /// Several helplines' figures together: counts add up and the ratios and means follow from them
    /// (`docs/metrics.md`); occupancy and the percentiles cannot be combined and are left out.
    pub fn together<'a>(parts: impl Iterator<Item = &'a Figures>) -> Figures {
        let mut t = Figures::default();
        let (mut answer_ms, mut handle_ms) = (0.0, 0.0);
        for f in parts {
            t.offered += f.offered;
            t.answered += f.answered;
            t.answered_in_target += f.answered_in_target;
            t.abandoned += f.abandoned;
            t.abandoned_short += f.abandoned_short;
            t.waiting += f.waiting;
            t.waiting_in_target += f.waiting_in_target;
            t.in_conversation += f.in_conversation;
            t.handled += f.handled;
            answer_ms += f.asa_ms.unwrap_or(0.0) * f.answered as f64;
            handle_ms += f.aht_ms.unwrap_or(0.0) * f.handled as f64;
        }
        let ratio = |num: f64, den: i64| (den > 0).then(|| num / den as f64);
        t.service_level = ratio(t.answered_in_target as f64, t.offered - t.abandoned_short - t.waiting_in_target);
        t.abandonment_rate = ratio((t.abandoned - t.abandoned_short) as f64, t.answered + t.abandoned - t.abandoned_short);
        t.asa_ms = ratio(answer_ms, t.answered);
        t.aht_ms = ratio(handle_ms, t.handled);
        t
    }
}

//! The supervisors' live board: built every second from the engine's snapshot and the figures, sent to every supervisor socket.

use std::collections::HashMap;
use std::time::Duration;

use crate::chat::engine_task::{contact_str, counsellor_status, counsellor_str};
use crate::protocol::board::Figures;
use crate::protocol::{rfc3339, ServerEvent};
use crate::routing::{CounsellorView, Snapshot, Status};
use crate::state::AppState;

/// How often the board is sent.
pub const BOARD_EVERY: Duration = Duration::from_secs(1);

pub use crate::protocol::board::{CounsellorBoard, Dashboard, HelplineBoard, WaitingBoard, Windows};

/// The board state of a counsellor: what a supervisor needs at a glance.
pub fn state_of(c: &CounsellorView) -> &'static str {
    if !c.connected || c.removed || c.status == Status::Offline {
        "offline"
    } else if c.status == Status::Away {
        "away"
    } else if ((c.active.len() + c.wrapping_up.len()) as u64) >= u64::from(c.capacity) {
        if c.wrapping_up.is_empty() {
            "busy"
        } else {
            "wrap_up"
        }
    } else {
        "available"
    }
}

/// Start of the current UTC day, in ms.
fn midnight(now: i64) -> i64 {
    now - now.rem_euclid(86_400_000)
}

/// The three windows' figures of every helpline (in `state.helplines` order) and overall: one read per window.
async fn windows(state: &AppState, now: i64) -> (Vec<Windows>, Windows) {
    let names: Vec<&str> = state.helplines.iter().map(|h| h.name.as_str()).collect();
    let get = |from: i64| {
        let names = &names;
        async move {
            crate::store::figures::figures_split_at(&state.store, names, from, now + 1, now)
                .await
                .unwrap_or_else(|_| (vec![Figures::default(); names.len()], Figures::default()))
        }
    };
    let (last_15m, last_hour, today) = (get(now - 15 * 60_000).await, get(now - 3_600_000).await, get(midnight(now)).await);
    let per_helpline = (0..names.len())
        .map(|i| Windows { last_15m: last_15m.0[i].clone(), last_hour: last_hour.0[i].clone(), today: today.0[i].clone() })
        .collect();
    (per_helpline, Windows { last_15m: last_15m.1, last_hour: last_hour.1, today: today.1 })
}

/// Builds the whole board (every helpline); each supervisor is sent the part they may see.
pub async fn build(state: &AppState, snapshot: &Snapshot, names: &HashMap<String, String>) -> Dashboard {
    let now = state.clock.now_ms();
    let (mut per_helpline, overall) = windows(state, now).await;
    let left = crate::store::figures::left_waiting(&state.store).await.unwrap_or_default();
    let left_of = |helpline: &str, kind: &str| left.iter().filter(|(h, k, _)| h == helpline && k == kind).map(|(_, _, n)| *n).sum::<i64>();
    let mut helplines = Vec::new();
    for (h, figures) in state.helplines.iter().zip(per_helpline.drain(..)) {
        let waiting: Vec<WaitingBoard> = snapshot
            .waiting
            .iter()
            .filter(|w| w.helpline == h.name)
            .map(|w| WaitingBoard {
                contact_id: contact_str(w.contact),
                language: w.language.clone(),
                priority: w.priority,
                position: w.position,
                waited_ms: (now - w.queued_at).max(0),
                offered_to: w.offered_to.map(counsellor_str),
                caller_online: w.caller_connected,
            })
            .collect();
        let mut by_language = HashMap::new();
        for w in &waiting {
            *by_language.entry(w.language.clone()).or_insert(0) += 1;
        }
        let serving = snapshot.counsellors.iter().filter(|c| c.helplines.contains(&h.name));
        let (mut available, mut busy, mut away, mut offline, mut wrap_up) = (0, 0, 0, 0, 0);
        for c in serving {
            match state_of(c) {
                "available" => available += 1,
                "busy" => busy += 1,
                "wrap_up" => wrap_up += 1,
                "away" => away += 1,
                _ => offline += 1,
            }
        }
        helplines.push(HelplineBoard {
            name: h.name.clone(),
            display_name: h.display_name.clone(),
            longest_wait_ms: waiting.iter().map(|w| w.waited_ms).max().unwrap_or(0),
            waiting,
            available,
            busy,
            away,
            offline,
            wrap_up,
            service_level_target_pct: h.service_level_target_pct,
            sla_at_risk_ms: h.sla_at_risk_ms,
            sla_target_ms: h.sla_target_ms,
            figures,
            waiting_by_language: by_language,
            messages_waiting: left_of(&h.name, "message"),
            callbacks_waiting: left_of(&h.name, "callback"),
        });
    }
    let urgent: std::collections::HashSet<_> =
        snapshot.assigned.iter().filter(|a| a.priority >= crate::routing::PRIORITY_FRONT).map(|a| a.contact).collect();
    let counsellors = snapshot
        .counsellors
        .iter()
        .filter(|c| !c.removed || !c.active.is_empty())
        .map(|c| {
            let id = counsellor_str(c.id);
            CounsellorBoard {
                display_name: names.get(&id).cloned().unwrap_or_else(|| id.clone()),
                user_id: id,
                state: state_of(c).into(),
                status: counsellor_status(c.status),
                connected: c.connected,
                active: c.active.iter().copied().map(contact_str).collect(),
                urgent: c.active.iter().copied().filter(|x| urgent.contains(x)).map(contact_str).collect(),
                capacity: c.capacity,
                ringing: c.ringing.map(contact_str),
                in_state_ms: (now - c.status_since).max(0),
                helplines: c.helplines.iter().cloned().collect(),
                languages: c.languages.iter().cloned().collect(),
                wrap_up: c.wrapping_up.iter().map(|(x, _)| contact_str(*x)).collect(),
                away_reason: (c.status == Status::Away).then(|| c.away_reason.clone()).flatten(),
            }
        })
        .collect();
    let contact_helplines = snapshot
        .waiting
        .iter()
        .map(|w| (contact_str(w.contact), w.helpline.clone()))
        .chain(snapshot.assigned.iter().map(|a| (contact_str(a.contact), a.helpline.clone())))
        .collect();
    Dashboard { at: rfc3339(now), helplines, counsellors, overall, contact_helplines }
}

/// The board feed (started by `app::loops` every [`BOARD_EVERY`]): each step sends the board to every
/// supervisor socket, and a `service_level_low` alert when a helpline's last-15-minute service level
/// falls under its target (once, until it recovers).
#[derive(Debug, Default)]
pub struct Feed {
    /// Counsellors' display names, read once.
    names: HashMap<String, String>,
    /// Helplines whose service level is under target now.
    low: HashMap<String, bool>,
}

impl Feed {
    pub async fn step(&mut self, state: &AppState) {
        // Cluster mode: the leader builds the board for the other nodes' supervisors too.
        let peers = state.cluster.as_ref().filter(|c| c.is_leader() && c.link.peers_want_board());
        if state.hub.supervisors().is_empty() && peers.is_none() {
            return;
        }
        // None: the engine stopped (shutdown), or, in cluster mode, it runs on another node.
        let Some(snapshot) = state.engine.snapshot().await else { return };
        let unnamed: Vec<String> =
            snapshot.counsellors.iter().map(|c| counsellor_str(c.id)).filter(|id| !self.names.contains_key(id)).collect();
        for id in unnamed {
            if let Ok(Some(u)) = state.store.accounts().user(&id).await {
                self.names.insert(id, u.display_name);
            }
        }
        let board = build(state, &snapshot, &self.names).await;
        for h in &board.helplines {
            let target = h.service_level_target_pct as f64 / 100.0;
            let is_low = h.figures.last_15m.service_level.is_some_and(|sl| sl < target);
            let was_low = self.low.insert(h.name.clone(), is_low).unwrap_or(false);
            if is_low && !was_low {
                state.hub.event_to_supervisors(
                    Some(&h.name),
                    &ServerEvent::Alert {
                        kind: "service_level_low".into(),
                        helpline: Some(h.name.clone()),
                        contact_id: None,
                        counsellor_id: None,
                        message: format!(
                            "service level {:.0} % over the last 15 minutes, under the {} % target",
                            h.figures.last_15m.service_level.unwrap_or(0.0) * 100.0,
                            h.service_level_target_pct
                        ),
                        at: board.at.clone(),
                    },
                );
            }
        }
        state.hub.board_to_supervisors(&board);
        if let Some(cluster) = peers {
            cluster.link.board_to_peers(&board);
        }
    }
}

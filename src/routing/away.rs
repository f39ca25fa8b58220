//! Away reasons: why a counsellor is away (a break, training, supervision, admin work).
//!
//! Each helpline names the reasons its counsellors may give (`HelplineConfig::away_reasons`,
//! default [`DEFAULT_AWAY_REASONS`]); a counsellor may give any reason of a helpline she serves
//! first-line or backs up (the defaults when she serves none that is configured). An unknown
//! reason is refused ([`Output::AwayRefused`]) and changes nothing. The reason is kept while she
//! is away (`CounsellorView::away_reason`) and cleared by any other status; the engine's own
//! away after missed offers gives [`MISSED_OFFERS`].

use std::collections::BTreeSet;

use super::{CounsellorId, Engine, Millis, Output, RevokeReason, Status};

/// The reasons a helpline allows when it names none.
pub const DEFAULT_AWAY_REASONS: [&str; 4] = ["break", "training", "supervision", "admin"];

/// The away reason the engine gives when it sets a counsellor away after missed offers.
pub const MISSED_OFFERS: &str = "missed_offers";

/// [`DEFAULT_AWAY_REASONS`] as owned strings.
#[must_use]
pub fn default_away_reasons() -> Vec<String> {
    DEFAULT_AWAY_REASONS.iter().map(|r| (*r).to_string()).collect()
}

/// Whether `reason` is one a counsellor of `helplines` may give, by the helplines' configured
/// reasons (a helpline not configured allows the defaults; so does serving none).
#[must_use]
pub fn allowed<'a>(configured: impl Fn(&str) -> Option<&'a [String]>, helplines: impl Iterator<Item = &'a String>, reason: &str) -> bool {
    let mut any = false;
    for h in helplines {
        any = true;
        let ok = match configured(h) {
            Some(reasons) => reasons.iter().any(|r| r == reason),
            None => DEFAULT_AWAY_REASONS.contains(&reason),
        };
        if ok {
            return true;
        }
    }
    !any && DEFAULT_AWAY_REASONS.contains(&reason)
}

/// At most this many away reasons per helpline.
pub const MAX_AWAY_REASONS: usize = 16;
/// An away reason's longest name.
pub const MAX_REASON_CHARS: usize = 32;

/// Checks a helpline's away reasons: 1 to [`MAX_AWAY_REASONS`] names of 1 to [`MAX_REASON_CHARS`]
/// lowercase letters, digits and `_` (they are codes: the console shows them translated), each once,
/// and never the engine's own [`MISSED_OFFERS`]. Surrounding spaces are dropped.
pub fn check_reasons(reasons: &[String]) -> Result<Vec<String>, String> {
    if reasons.is_empty() || reasons.len() > MAX_AWAY_REASONS {
        return Err(format!("away_reasons: 1 to {MAX_AWAY_REASONS} reasons, got {}", reasons.len()));
    }
    let mut out: Vec<String> = Vec::with_capacity(reasons.len());
    for r in reasons {
        let r = r.trim();
        let ok = (1..=MAX_REASON_CHARS).contains(&r.chars().count())
            && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(format!("away_reasons: {r:?} is not a code of 1 to {MAX_REASON_CHARS} lowercase letters, digits or _"));
        }
        if r == MISSED_OFFERS {
            return Err(format!("away_reasons: {MISSED_OFFERS:?} is the router's own reason"));
        }
        if out.iter().any(|o| o == r) {
            return Err(format!("away_reasons: {r:?} twice"));
        }
        out.push(r.to_string());
    }
    Ok(out)
}

impl Engine {
    /// [`super::Input::SetAway`]: away for a reason her helplines allow, or refused.
    pub(super) fn set_away(&mut self, now: Millis, cid: CounsellorId, reason: String, out: &mut Vec<Output>) {
        let Some(c) = self.counsellors.get(&cid) else {
            return;
        };
        let helplines: BTreeSet<&String> = c.profile.helplines.iter().chain(&c.profile.backup_helplines).collect();
        let ok = allowed(|h| self.helplines.get(h).map(|c| c.away_reasons.as_slice()), helplines.into_iter(), &reason);
        if !ok {
            out.push(Output::AwayRefused { counsellor: cid, reason });
            return;
        }
        self.cmut(cid, |c| {
            if c.status != Status::Away {
                c.status = Status::Away;
                c.status_since = now;
            }
            c.away_reason = Some(reason);
        });
        self.revoke_ring(cid, RevokeReason::CounsellorUnavailable, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_allowed_by_any_of_the_counsellors_helplines_or_the_defaults() {
        let a = vec!["lunch".to_string()];
        let configured = |h: &str| (h == "a").then_some(a.as_slice());
        let hs = ["a".to_string(), "b".to_string()];
        assert!(allowed(configured, hs[..1].iter(), "lunch"));
        assert!(!allowed(configured, hs[..1].iter(), "break"), "a names its own");
        assert!(allowed(configured, hs.iter(), "break"), "b is not configured: the defaults");
        assert!(allowed(configured, [].iter(), "admin"), "serving none: the defaults");
        assert!(!allowed(configured, [].iter(), "nap"));
    }

    #[test]
    fn away_reasons_are_checked_codes() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(check_reasons(&v(&[" break ", "peer_support2"])), Ok(v(&["break", "peer_support2"])));
        assert!(check_reasons(&[]).is_err());
        assert!(check_reasons(&v(&["Break"])).is_err());
        assert!(check_reasons(&v(&["a b"])).is_err());
        assert!(check_reasons(&v(&[""])).is_err());
        assert!(check_reasons(&v(&["break", "break"])).is_err());
        assert!(check_reasons(&v(&["missed_offers"])).unwrap_err().contains("router"));
        assert!(check_reasons(&vec!["x".to_string(); MAX_AWAY_REASONS + 1]).is_err());
        assert!(check_reasons(&v(&[&"a".repeat(MAX_REASON_CHARS + 1)])).is_err());
    }
}

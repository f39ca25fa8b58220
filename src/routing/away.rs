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
pub fn allowed<'a>(
    configured: impl Fn(&str) -> Option<&'a [String]>,
    helplines: impl Iterator<Item = &'a String>,
    reason: &str,
) -> bool {
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
}

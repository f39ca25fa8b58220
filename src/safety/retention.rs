//! Retention for every class of data, with periods per helpline (`helpline retention set`; the server
//! runs it every hour, `helpline retention` now, with progress). Each run that deletes something writes
//! one audit line (`retention_purge`, actor `system`).
//!
//! - **Conversations** (messages, and the callback number, survey mark, consults and handover reasons
//!   that go with them) of contacts that ended longer ago than the helpline's period (or the server's
//!   `--retention-days`): the contact row stays (times, helpline, channel, outcome: reports do not
//!   change), marked `purged_at`.
//! - **Contact forms** and **call records** (never a number in clear) after their own periods.
//! - **Cases**: only closed ones, counted from their last change (an open case is on legal hold, and so is
//!   everything about a contact linked to a case: its conversation, form and call record); their content
//!   (person, entries, tasks, referrals, transfers, approvals, links) is deleted, the row
//!   (number, helpline, stage, times) stays, marked `purged_at`.
//! - **The audit log**: pruned from the head only, through the keyed anchor (`audit_log().prune_through`),
//!   so the chain still verifies; one period for the whole log (`--audit-retention-days`).
//!
//! Which class of which helpline is due, with which cutoff, is the plain rule [`plan`]; [`run_all`] only
//! does the I/O. See `docs/security.md` (Privacy) and `docs/deployment.md` (Retention).

use crate::store::retention::{Periods, PurgeStep};
use crate::store::{Store, StoreResult};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Rows (contacts, cases) per write transaction: short enough not to hold the write lock for long.
pub const BATCH: i64 = 200;

/// The end of the retention window: contacts that ended before it are due.
pub fn cutoff(now: i64, days: u32) -> i64 {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

/// A class of data with a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Conversations,
    Forms,
    Calls,
    Cases,
}

/// One class of one helpline due for retention: what ended before `cutoff` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub helpline: String,
    pub class: Class,
    pub cutoff: i64,
}

/// What retention does at `now`: for each helpline and class with a period (conversations: the
/// helpline's own, else `default_conversation_days`), its cutoff. Pure.
pub fn plan(now: i64, default_conversation_days: Option<u32>, periods: &[(String, Periods)]) -> Vec<Due> {
    let mut due = Vec::new();
    for (helpline, p) in periods {
        let classes = [
            (Class::Conversations, p.conversations_days.or(default_conversation_days)),
            (Class::Forms, p.forms_days),
            (Class::Calls, p.calls_days),
            (Class::Cases, p.cases_days),
        ];
        for (class, days) in classes {
            if let Some(days) = days.filter(|d| *d > 0) {
                due.push(Due { helpline: helpline.clone(), class, cutoff: cutoff(now, days) });
            }
        }
    }
    due
}

/// Totals of a retention run of conversations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub contacts: u64,
    pub messages: u64,
}

/// Totals of a retention run of every class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllTotals {
    pub conversations: Totals,
    pub forms: u64,
    pub calls: u64,
    pub cases: u64,
    pub audit_lines: u64,
}

impl AllTotals {
    fn any(&self) -> bool {
        self.conversations.contacts + self.forms + self.calls + self.cases + self.audit_lines > 0
    }
}

/// What a run of every class is given: the server's default period for conversations and the audit
/// log's period (each None: kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub conversation_days: Option<u32>,
    pub audit_days: Option<u32>,
}

/// Deletes every due conversation at `now` (each helpline's own period, else `days`), in batches,
/// calling `progress` after each batch that deleted something. Writes one audit line (actor `system`)
/// when something was deleted.
pub async fn run(store: &Store, now: i64, days: u32, mut progress: impl FnMut(&PurgeStep, &Totals)) -> StoreResult<Totals> {
    let periods = store.retention().all_periods().await?;
    let mut totals = Totals::default();
    for due in plan(now, Some(days), &periods).iter().filter(|d| d.class == Class::Conversations) {
        conversations(store, due, now, &mut totals, &mut progress).await?;
    }
    if totals.contacts > 0 {
        let detail = format!(
            "{} conversations ({} messages) of contacts without a case, past their retention period",
            totals.contacts, totals.messages
        );
        store.audit_log().audit(now, "system", "retention_purge", None, Some(&detail)).await?;
    }
    Ok(totals)
}

async fn conversations(
    store: &Store,
    due: &Due,
    now: i64,
    totals: &mut Totals,
    progress: &mut impl FnMut(&PurgeStep, &Totals),
) -> StoreResult<()> {
    loop {
        let step = store.retention().purge_step(&due.helpline, due.cutoff, now, BATCH).await?;
        totals.contacts += step.contacts;
        totals.messages += step.messages;
        if step.contacts > 0 {
            progress(&step, totals);
        }
        if step.contacts == 0 || step.remaining == 0 {
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

/// Runs retention for every class at `now` (see the module's documentation), calling `progress` with
/// a line after each batch that deleted something. One audit line (`retention_purge`, actor `system`)
/// when something was deleted.
pub async fn run_all(store: &Store, now: i64, policy: Policy, mut progress: impl FnMut(String)) -> StoreResult<AllTotals> {
    let periods = store.retention().all_periods().await?;
    let mut t = AllTotals::default();
    for due in plan(now, policy.conversation_days, &periods) {
        let r = store.retention();
        match due.class {
            Class::Conversations => {
                let mut report = |step: &PurgeStep, totals: &Totals| {
                    progress(format!(
                        "retention: {} conversations deleted ({} messages), {} to go in {}",
                        totals.contacts, totals.messages, step.remaining, due.helpline
                    ))
                };
                conversations(store, &due, now, &mut t.conversations, &mut report).await?;
            }
            Class::Forms | Class::Calls | Class::Cases => loop {
                let n = match due.class {
                    Class::Forms => r.purge_forms_step(&due.helpline, due.cutoff, BATCH).await?,
                    Class::Calls => r.purge_calls_step(&due.helpline, due.cutoff, BATCH).await?,
                    _ => r.purge_cases_step(&due.helpline, due.cutoff, now, BATCH).await?,
                };
                let (total, what) = match due.class {
                    Class::Forms => (&mut t.forms, "contact forms"),
                    Class::Calls => (&mut t.calls, "call records"),
                    _ => (&mut t.cases, "closed cases"),
                };
                *total += n;
                if n == 0 {
                    break;
                }
                progress(format!("retention: {total} {what} deleted in {}", due.helpline));
                tokio::task::yield_now().await;
            },
        }
    }
    if let Some(days) = policy.audit_days.filter(|d| *d > 0) {
        if let Some(through) = store.retention().audit_prunable_through(cutoff(now, days)).await? {
            t.audit_lines = store.audit_log().prune_through(through, now).await?;
            progress(format!(
                "retention: {} audit lines pruned from the head (through line {through}); the chain verifies from its anchor",
                t.audit_lines
            ));
        }
    }
    if t.any() {
        let detail = format!(
            "{} conversations ({} messages), {} contact forms, {} call records, {} closed cases, {} audit lines: past their retention periods",
            t.conversations.contacts, t.conversations.messages, t.forms, t.calls, t.cases, t.audit_lines
        );
        store.audit_log().audit(now, "system", "retention_purge", None, Some(&detail)).await?;
    }
    Ok(t)
}

/// `helpline retention [--days N] [--audit-days N]`: runs retention of every class now, printing progress.
pub async fn run_to_completion(store: &Store, policy: Policy) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let now = crate::clock::Clock::new().now_ms();
    let t = run_all(store, now, policy, |line| eprintln!("{line} ({:.1} s)", started.elapsed().as_secs_f64())).await?;
    println!(
        "retention: deleted the conversations of {} contacts without a case past their period ({} messages), {} contact forms, \
         {} call records, {} closed cases' content, {} audit lines; open cases and what they hold kept",
        t.conversations.contacts, t.conversations.messages, t.forms, t.calls, t.cases, t.audit_lines
    );
    Ok(())
}

/// In the server (every `retention_every`, from `app::loops`): one retention run with the server's clock.
pub async fn run_once(store: &Store, now: i64, policy: Policy) {
    match run_all(store, now, policy, |_| {}).await {
        Ok(t) if t.any() => tracing::info!(
            contacts = t.conversations.contacts,
            messages = t.conversations.messages,
            forms = t.forms,
            calls = t.calls,
            cases = t.cases,
            audit_lines = t.audit_lines,
            "retention: data past its period deleted"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "retention failed; it runs again at the next interval"),
    }
}

/// The longest retention period accepted (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// Checks periods set over REST or the command line: each 1 to [`MAX_DAYS`] days, or none (kept).
pub fn check_periods(p: &Periods) -> Result<(), String> {
    let fields = [
        ("conversations_days", p.conversations_days),
        ("forms_days", p.forms_days),
        ("calls_days", p.calls_days),
        ("cases_days", p.cases_days),
    ];
    match fields.iter().find(|(_, d)| d.is_some_and(|d| !(1..=MAX_DAYS).contains(&d))) {
        Some((name, _)) => Err(format!("{name}: 1 to {MAX_DAYS} days, or null to keep")),
        None => Ok(()),
    }
}

/// `GET /api/v1/helplines/{name}/retention`: admins and the helpline's supervisors (others 403; an
/// unknown helpline 404).
pub async fn periods_of(
    state: &crate::state::AppState,
    staff: &crate::state::access::Staff,
    helpline: &str,
) -> Result<Periods, crate::state::error::AppError> {
    use crate::state::error::AppError;
    if !(staff.is_admin() || staff.user.role == crate::store::users::Role::Supervisor && staff.supervises(helpline)) {
        return Err(staff
            .refuse(state, "retention_read", helpline, AppError::forbidden("admins and the helpline's supervisors only"))
            .await);
    }
    match state.store.retention().all_periods().await?.into_iter().find(|(h, _)| h == helpline) {
        Some((_, p)) => Ok(p),
        None => Err(crate::state::access::hidden("helpline")),
    }
}

/// `PUT /api/v1/helplines/{name}/retention`: admins only (others 403, audited); every period is
/// replaced (null: kept); audited (`retention_set`) before it is stored. The server applies them at its
/// next hourly run.
pub async fn set_periods(
    state: &crate::state::AppState,
    staff: &crate::state::access::Staff,
    helpline: &str,
    periods: Periods,
) -> Result<Periods, crate::state::error::AppError> {
    use crate::state::error::AppError;
    if !staff.is_admin() {
        return Err(staff.refuse(state, "retention_set", helpline, AppError::forbidden("admins only")).await);
    }
    if !state.store.retention().all_periods().await?.iter().any(|(h, _)| h == helpline) {
        return Err(crate::state::access::hidden("helpline"));
    }
    check_periods(&periods).map_err(|why| AppError::new(crate::protocol::ErrorCode::InvalidSettings, why))?;
    let detail = serde_json::to_string(&periods).unwrap_or_default();
    staff.audit_or_refuse(state, "retention_set", helpline, Some(&detail)).await?;
    state.store.retention().set_periods(helpline, &periods, state.clock.now_ms()).await?;
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_days_back_and_never_overflows() {
        assert_eq!(cutoff(10 * DAY_MS, 3), 7 * DAY_MS);
        assert_eq!(cutoff(0, u32::MAX), 0i64.saturating_sub(i64::from(u32::MAX) * DAY_MS));
        assert_eq!(cutoff(i64::MIN + 1, u32::MAX), i64::MIN);
    }

    #[test]
    fn periods_are_checked_field_by_field() {
        assert_eq!(check_periods(&Periods::default()), Ok(()));
        assert_eq!(check_periods(&Periods { forms_days: Some(365), ..Periods::default() }), Ok(()));
        assert!(check_periods(&Periods { calls_days: Some(0), ..Periods::default() }).unwrap_err().starts_with("calls_days"));
        assert!(check_periods(&Periods { cases_days: Some(MAX_DAYS + 1), ..Periods::default() }).unwrap_err().starts_with("cases_days"));
    }

    #[test]
    fn the_plan_takes_each_helplines_periods_and_the_default_for_conversations() {
        let now = 100 * DAY_MS;
        let periods = vec![
            (
                "children".to_string(),
                Periods { conversations_days: Some(10), forms_days: Some(20), calls_days: None, cases_days: Some(90) },
            ),
            ("family".to_string(), Periods::default()),
            ("zero".to_string(), Periods { forms_days: Some(0), ..Periods::default() }),
        ];
        let due = plan(now, Some(30), &periods);
        let d = |h: &str, class, days| Due { helpline: h.into(), class, cutoff: cutoff(now, days) };
        assert_eq!(
            due,
            vec![
                d("children", Class::Conversations, 10),
                d("children", Class::Forms, 20),
                d("children", Class::Cases, 90),
                d("family", Class::Conversations, 30),
                d("zero", Class::Conversations, 30),
            ]
        );
        // No default: only what a helpline sets; a period of 0 keeps.
        assert_eq!(plan(now, None, &periods[1..]), vec![]);
    }
}

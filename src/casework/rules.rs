//! Casework rules without I/O: the contact-form taxonomy and its validation, risk levels, escalation kinds, placement service types and the case stage machine with its deadlines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// An escalation alert not acknowledged within this time goes to every supervisor.
pub const ACK_WITHIN_MS: i64 = 120_000;

/// Who is calling.
pub const CALLER_TYPES: &[&str] = &["person_concerned", "relative", "professional", "anonymous"];
/// The age group of the person concerned.
pub const AGE_GROUPS: &[&str] = &["0_9", "10_14", "15_17", "18_24", "25_59", "60_plus", "unknown"];
pub const GENDERS: &[&str] = &["female", "male", "other", "unknown"];
/// What the contact led to.
pub const OUTCOMES: &[&str] = &["information", "counselling", "referral", "escalated", "emergency_services", "no_action"];
/// Risk levels, lowest first.
pub const RISKS: &[&str] = &["none", "low", "medium", "high", "imminent"];
/// Fields a submitted form must have.
pub const REQUIRED: &[&str] = &["caller_type", "age_group", "gender", "categories", "summary", "outcome", "risk"];
/// Longest summary (characters).
pub const MAX_SUMMARY_CHARS: usize = 8000;

/// Escalation kinds.
pub const ESCALATION_KINDS: &[&str] = &["emergency_placement", "child_protection", "emergency_services"];

/// Placement service types.
pub const SERVICE_KINDS: &[(&str, &str)] = &[
    ("family_violence_centre", "Assistance and protection centre for victims of family violence"),
    ("maternal_centre", "Maternal centre"),
    ("community_home_children", "Community home for children at risk"),
    ("family_type_home", "Family-type children's home"),
    ("elderly_disability_centre", "Placement centre for elderly persons and persons with disabilities"),
];

/// Referral services a case may be referred to.
pub const REFERRAL_KINDS: &[&str] = &[
    "psychosocial_rehabilitation",
    "maternal_service",
    "family_support",
    "social_assistance",
    "legal_aid",
    "health",
    "mental_health",
    "law_enforcement",
    "education",
];

/// A category of the taxonomy (shaped on Child Helpline International's data framework).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Category {
    pub code: &'static str,
    pub label: &'static str,
}

const fn c(code: &'static str, label: &'static str) -> Category {
    Category { code, label }
}

const VIOLENCE: &[Category] = &[
    c("violence.physical", "Violence: physical"),
    c("violence.sexual", "Violence: sexual"),
    c("violence.emotional", "Violence: emotional"),
    c("violence.neglect", "Violence: neglect"),
    c("violence.family", "Violence: family violence"),
];
const CHILD_VIOLENCE: &[Category] = &[
    c("violence.bullying", "Violence: bullying"),
    c("violence.online_sexual_abuse", "Violence: online sexual abuse and exploitation"),
    c("violence.child_marriage", "Violence: child, early or forced marriage"),
    c("violence.child_labour", "Violence: child labour"),
    c("violence.commercial_sexual_exploitation", "Violence: commercial sexual exploitation"),
];
const ADULT_VIOLENCE: &[Category] =
    &[c("violence.gender_based", "Violence: gender-based violence"), c("violence.economic", "Violence: economic abuse")];
const MENTAL_HEALTH: &[Category] = &[
    c("mental_health.suicidal", "Mental health: suicidal thoughts and attempts"),
    c("mental_health.self_harm", "Mental health: self-harm"),
    c("mental_health.other", "Mental health: other"),
];
const COMMON: &[Category] = &[
    c("family_relationships", "Family relationships"),
    c("physical_health", "Physical health"),
    c("discrimination", "Discrimination and exclusion"),
    c("other", "Other"),
];
const CHILDREN: &[Category] = &[
    c("missing_children", "Missing children"),
    c("peer_relationships", "Peer relationships"),
    c("education", "Education and occupation"),
    c("sexuality", "Sexuality"),
];
const DISABILITY: &[Category] = &[
    c("disability.access_to_services", "Disability: access to services"),
    c("disability.care", "Disability: care"),
    c("disability.benefits", "Disability: benefits and allowances"),
    c("accessibility", "Accessibility"),
];

/// The categories a helpline's form offers.
pub fn categories(helpline: &str) -> Vec<Category> {
    let parts: &[&[Category]] = match helpline {
        "children" => &[VIOLENCE, CHILD_VIOLENCE, MENTAL_HEALTH, CHILDREN, COMMON],
        "disability" => &[DISABILITY, VIOLENCE, ADULT_VIOLENCE, MENTAL_HEALTH, COMMON],
        "family_violence" => &[VIOLENCE, ADULT_VIOLENCE, MENTAL_HEALTH, COMMON],
        _ => &[VIOLENCE, MENTAL_HEALTH, COMMON],
    };
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// A category a helpline's contact form offers, as stored when an admin sets the helpline's own
/// (`PUT /api/v1/helplines/{name}/taxonomy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryDef {
    /// 1-64 characters of `a-z`, `0-9`, `_` and `.` (`violence.physical`); reports count by it.
    #[schema(pattern = "^\\s*[a-z0-9_.]{1,64}\\s*$")]
    pub code: String,
    /// What counsellors read: 1 to 120 characters.
    #[schema(min_length = 1, max_length = 120, pattern = "\\S")]
    pub label: String,
}

/// The most categories a helpline may have.
pub const CATEGORIES_MAX: usize = 200;

/// The built-in categories of a helpline, as definitions.
pub fn builtin_categories(helpline: &str) -> Vec<CategoryDef> {
    categories(helpline).into_iter().map(|c| CategoryDef { code: c.code.into(), label: c.label.into() }).collect()
}

/// Checks a helpline's own categories: 1 to 200, each code well formed and once, each label 1-120
/// characters (trimmed). The error names the first fault.
pub fn check_categories(list: &[CategoryDef]) -> Result<Vec<CategoryDef>, String> {
    if list.is_empty() || list.len() > CATEGORIES_MAX {
        return Err(format!("categories: 1 to {CATEGORIES_MAX}"));
    }
    let mut out: Vec<CategoryDef> = Vec::with_capacity(list.len());
    for c in list {
        let code = c.code.trim();
        let label = c.label.trim();
        if code.is_empty()
            || code.len() > 64
            || !code.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '.')
        {
            return Err(format!("categories: the code {code:?} is not 1-64 characters of a-z, 0-9, '_' and '.'"));
        }
        if label.is_empty() || label.chars().count() > 120 {
            return Err(format!("categories: the label of {code:?} is not 1 to 120 characters"));
        }
        if out.iter().any(|o| o.code == code) {
            return Err(format!("categories: the code {code:?} is there twice"));
        }
        out.push(CategoryDef { code: code.into(), label: label.into() });
    }
    Ok(out)
}

/// The taxonomy document served to consoles (`GET /api/v1/helplines/{name}/taxonomy`), with the
/// built-in categories.
pub fn taxonomy(helpline: &str) -> serde_json::Value {
    taxonomy_with(helpline, &builtin_categories(helpline), false)
}

/// The taxonomy document with these categories (`own`: the helpline's own, set by an admin).
pub fn taxonomy_with(helpline: &str, categories: &[CategoryDef], own: bool) -> serde_json::Value {
    serde_json::json!({
        "helpline": helpline,
        "caller_types": CALLER_TYPES,
        "age_groups": AGE_GROUPS,
        "genders": GENDERS,
        "outcomes": OUTCOMES,
        "risks": RISKS,
        "categories": categories,
        "own_categories": own,
        "required": REQUIRED,
        "escalation_kinds": ESCALATION_KINDS,
    })
}

/// The counsellor's form about a contact. Every field is optional while it is a draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactForm {
    pub caller_type: Option<String>,
    pub age_group: Option<String>,
    pub gender: Option<String>,
    /// The district (raion) the person lives in, e.g. `Chișinău`, `Bălți`.
    pub district: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub summary: Option<String>,
    pub outcome: Option<String>,
    pub risk: Option<String>,
}

/// Each invalid field and why: `required`, `unknown`, `too_long`, or `unknown: <value>` for categories.
pub type FieldErrors = BTreeMap<String, String>;

fn check_one(errors: &mut FieldErrors, field: &str, value: &Option<String>, allowed: &[&str], required: bool) {
    match value.as_deref().map(str::trim) {
        None | Some("") if required => {
            errors.insert(field.into(), "required".into());
        }
        Some(v) if !v.is_empty() && !allowed.contains(&v) => {
            errors.insert(field.into(), format!("unknown value {v:?}; expected one of {}", allowed.join(", ")));
        }
        _ => {}
    }
}

/// Validates a form for `helpline`. A draft may leave fields empty; a submitted form must have every
/// required field. Unknown values are refused either way. Returns every field's error at once.
pub fn validate(helpline: &str, form: &ContactForm, submit: bool) -> Result<(), FieldErrors> {
    validate_with(&builtin_categories(helpline), form, submit)
}

/// [`validate`] against a helpline's categories as they are (its own, or the built-in ones).
pub fn validate_with(known: &[CategoryDef], form: &ContactForm, submit: bool) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    check_one(&mut errors, "caller_type", &form.caller_type, CALLER_TYPES, submit);
    check_one(&mut errors, "age_group", &form.age_group, AGE_GROUPS, submit);
    check_one(&mut errors, "gender", &form.gender, GENDERS, submit);
    check_one(&mut errors, "outcome", &form.outcome, OUTCOMES, submit);
    check_one(&mut errors, "risk", &form.risk, RISKS, submit);
    let unknown: Vec<&str> = form.categories.iter().map(String::as_str).filter(|c| !known.iter().any(|k| k.code == *c)).collect();
    if !unknown.is_empty() {
        errors.insert("categories".into(), format!("unknown: {}", unknown.join(", ")));
    } else if submit && form.categories.is_empty() {
        errors.insert("categories".into(), "required".into());
    }
    match form.summary.as_deref().map(str::trim) {
        None | Some("") if submit => {
            errors.insert("summary".into(), "required".into());
        }
        Some(s) if s.chars().count() > MAX_SUMMARY_CHARS => {
            errors.insert("summary".into(), format!("too_long: at most {MAX_SUMMARY_CHARS} characters"));
        }
        _ => {}
    }
    if form.district.as_deref().is_some_and(|d| d.chars().count() > 100) {
        errors.insert("district".into(), "too_long: at most 100 characters".into());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The placement service types that fit an escalation from `helpline`, best first.
pub fn fitting_service_kinds(helpline: &str) -> &'static [&'static str] {
    match helpline {
        "family_violence" => &["family_violence_centre", "maternal_centre"],
        "children" => &["community_home_children", "family_type_home", "maternal_centre"],
        "disability" => &["elderly_disability_centre"],
        _ => &["family_violence_centre", "community_home_children", "elderly_disability_centre"],
    }
}

/// A case file's stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Open,
    InitialAssessment,
    ComprehensiveAssessment,
    InterventionPlan,
    Monitoring,
    Closed,
}

impl Stage {
    pub const ALL: [Stage; 6] =
        [Stage::Open, Stage::InitialAssessment, Stage::ComprehensiveAssessment, Stage::InterventionPlan, Stage::Monitoring, Stage::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Open => "open",
            Stage::InitialAssessment => "initial_assessment",
            Stage::ComprehensiveAssessment => "comprehensive_assessment",
            Stage::InterventionPlan => "intervention_plan",
            Stage::Monitoring => "monitoring",
            Stage::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The stages a case may move to from this one: the next step, or closing; monitoring may go back
    /// to a revised plan; a closed case may be reopened.
    pub fn next(self) -> &'static [Stage] {
        match self {
            Stage::Open => &[Stage::InitialAssessment, Stage::Closed],
            Stage::InitialAssessment => &[Stage::ComprehensiveAssessment, Stage::Closed],
            Stage::ComprehensiveAssessment => &[Stage::InterventionPlan, Stage::Closed],
            Stage::InterventionPlan => &[Stage::Monitoring, Stage::Closed],
            Stage::Monitoring => &[Stage::Closed, Stage::InterventionPlan],
            Stage::Closed => &[Stage::Open],
        }
    }

    /// Whether `to` may follow this stage; otherwise the allowed next stages.
    pub fn check(self, to: Stage) -> Result<(), &'static [Stage]> {
        if self.next().contains(&to) {
            Ok(())
        } else {
            Err(self.next())
        }
    }

    /// The deadline that starts when a case enters this stage: what is due, and in how long, from the
    /// helpline's settings (`deadlines`; [`StageDeadlines::default`] when it set none).
    pub fn deadline(self, deadlines: &StageDeadlines) -> Option<(&'static str, i64)> {
        Some((self.due_what()?, deadlines.get(self)?))
    }

    /// What falls due while a case is at this stage (`None` once closed).
    pub fn due_what(self) -> Option<&'static str> {
        match self {
            Stage::Open => Some("case_file"),
            Stage::InitialAssessment => Some("initial_assessment"),
            Stage::ComprehensiveAssessment => Some("comprehensive_assessment"),
            Stage::InterventionPlan => Some("intervention_plan"),
            Stage::Monitoring => Some("monitoring_review"),
            Stage::Closed => None,
        }
    }
}

/// The stages that carry a deadline, in order (every stage but `closed`).
pub const TIMED_STAGES: [Stage; 5] =
    [Stage::Open, Stage::InitialAssessment, Stage::ComprehensiveAssessment, Stage::InterventionPlan, Stage::Monitoring];

/// Longest time a helpline may give a stage (days).
pub const MAX_STAGE_DAYS: i64 = 365;

/// How long each stage of a helpline's cases may take (ms), per helpline: `open` is the case file
/// (due after an emergency placement or an opening), then one deadline per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageDeadlines {
    /// Indexed like [`TIMED_STAGES`].
    pub ms: [i64; 5],
}

impl Default for StageDeadlines {
    /// Case file 3 days, initial assessment 3 days, comprehensive assessment 30 days, intervention plan
    /// 7 days, monitoring review 90 days.
    fn default() -> Self {
        StageDeadlines { ms: [3 * DAY_MS, 3 * DAY_MS, 30 * DAY_MS, 7 * DAY_MS, 90 * DAY_MS] }
    }
}

impl StageDeadlines {
    /// The defaults with a helpline's case file deadline.
    pub fn with_case_file(case_file_ms: i64) -> Self {
        let mut d = StageDeadlines::default();
        d.ms[0] = case_file_ms;
        d
    }

    /// How long `stage` may take (`None` for `closed`).
    pub fn get(&self, stage: Stage) -> Option<i64> {
        TIMED_STAGES.iter().position(|s| *s == stage).map(|i| self.ms[i])
    }

    /// Sets how many days `stage` may take: 1 to [`MAX_STAGE_DAYS`]; `closed` has no deadline.
    pub fn set_days(&mut self, stage: Stage, days: i64) -> Result<(), String> {
        let Some(i) = TIMED_STAGES.iter().position(|s| *s == stage) else {
            return Err(format!("{} has no deadline", stage.as_str()));
        };
        if !(1..=MAX_STAGE_DAYS).contains(&days) {
            return Err(format!("{}: days must be 1 to {MAX_STAGE_DAYS}, not {days}", stage.as_str()));
        }
        self.ms[i] = days * DAY_MS;
        Ok(())
    }
}

/// The case number prefix of a helpline: its setting, else a default per helpline.
pub fn case_prefix(helpline: &str, setting: &str) -> String {
    if !setting.trim().is_empty() {
        return setting.trim().to_uppercase();
    }
    match helpline {
        "family_violence" => "FV".into(),
        "children" => "CH".into(),
        "disability" => "DS".into(),
        other => other.chars().filter(|c| c.is_ascii_alphabetic()).take(2).collect::<String>().to_uppercase(),
    }
}

/// A case number: `FV-2026-000123`.
pub fn case_number(prefix: &str, year: i32, seq: i64) -> String {
    format!("{prefix}-{year}-{seq:06}")
}

/// The UTC year of a time in ms.
pub fn year_of(ms: i64) -> i32 {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map(|t| t.year()).unwrap_or(1970)
}

/// The rules a new case needs from inside the store's transaction (see `store::cases::CaseRules`).
pub const CASE_RULES: crate::store::cases::CaseRules = crate::store::cases::CaseRules { year_of, number: numbered, first_deadline };

fn numbered(helpline: &str, prefix_setting: &str, year: i32, seq: i64) -> String {
    case_number(&case_prefix(helpline, prefix_setting), year, seq)
}

fn first_deadline(case_file_ms: i64) -> (&'static str, i64) {
    Stage::Open.deadline(&StageDeadlines::with_case_file(case_file_ms)).unwrap_or(("case_file", case_file_ms))
}

/// A helpline's stage deadlines: its case file setting (3 days by default) and the stages it set, the
/// defaults for the others.
pub async fn stage_deadlines(store: &crate::store::Store, helpline: &str) -> crate::store::StoreResult<StageDeadlines> {
    let (case_file, rows) = store.cases().stage_deadline_settings(helpline).await?;
    let mut d = case_file.map_or_else(StageDeadlines::default, StageDeadlines::with_case_file);
    for (stage, ms) in rows {
        if let Some(i) = Stage::parse(&stage).and_then(|s| TIMED_STAGES.iter().position(|t| *t == s)) {
            d.ms[i] = ms;
        }
    }
    Ok(d)
}

/// Stores a helpline's stage deadlines (the case file's in `helplines`, the others per stage).
pub async fn set_stage_deadlines(
    store: &crate::store::Store,
    helpline: &str,
    d: &StageDeadlines,
    by: &str,
    at: i64,
) -> crate::store::StoreResult<()> {
    let stages: Vec<(&str, i64)> = TIMED_STAGES.iter().zip(d.ms).skip(1).map(|(s, ms)| (s.as_str(), ms)).collect();
    store.cases().set_stage_deadline_settings(helpline, d.ms[0], &stages, by, at).await
}

/// A referral's status: `sent` to the provider, which `accepted` or `declined` it; an accepted one is
/// `completed`. Declined and completed are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralStatus {
    Sent,
    Accepted,
    Declined,
    Completed,
}

impl ReferralStatus {
    pub const ALL: [ReferralStatus; 4] =
        [ReferralStatus::Sent, ReferralStatus::Accepted, ReferralStatus::Declined, ReferralStatus::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Sent => "sent",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::Declined => "declined",
            ReferralStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<ReferralStatus> {
        ReferralStatus::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The statuses this one may change to.
    pub fn next(self) -> &'static [ReferralStatus] {
        match self {
            ReferralStatus::Sent => &[ReferralStatus::Accepted, ReferralStatus::Declined],
            ReferralStatus::Accepted => &[ReferralStatus::Completed],
            ReferralStatus::Declined | ReferralStatus::Completed => &[],
        }
    }

    /// Whether the change to `to` is allowed; if not, the statuses that are (none once final).
    pub fn check(self, to: ReferralStatus) -> Result<(), &'static [ReferralStatus]> {
        if self.next().contains(&to) {
            Ok(())
        } else {
            Err(self.next())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ContactForm {
        ContactForm {
            caller_type: Some("person_concerned".into()),
            age_group: Some("25_59".into()),
            gender: Some("female".into()),
            district: Some("Cahul".into()),
            categories: vec!["violence.family".into(), "violence.economic".into()],
            summary: Some("Cannot go home tonight with two children.".into()),
            outcome: Some("escalated".into()),
            risk: Some("high".into()),
        }
    }

    #[test]
    fn a_complete_form_passes_and_an_empty_draft_too() {
        assert_eq!(validate("family_violence", &full(), true), Ok(()));
        assert_eq!(validate("family_violence", &ContactForm::default(), false), Ok(()));
    }

    #[test]
    fn submitting_names_every_missing_field() {
        let errors = validate("children", &ContactForm::default(), true).unwrap_err();
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        let mut expected = REQUIRED.to_vec();
        expected.sort();
        assert_eq!(names, expected);
        assert!(errors.values().all(|e| e == "required"));
    }

    #[test]
    fn unknown_values_are_refused_even_in_drafts() {
        let mut form = full();
        form.categories.push("violence.child_labour".into()); // a children's category, not family violence
        form.risk = Some("extreme".into());
        let errors = validate("family_violence", &form, false).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors["categories"].contains("violence.child_labour"));
        assert!(errors["risk"].starts_with("unknown value"));
        form.categories.pop();
        form.risk = Some("imminent".into());
        assert_eq!(validate("family_violence", &form, true), Ok(()));
        assert!(
            validate("children", &ContactForm { categories: vec!["violence.child_labour".into()], ..Default::default() }, false).is_ok()
        );
    }

    #[test]
    fn stages_move_in_order_and_closed_cases_reopen() {
        let path = [
            Stage::Open,
            Stage::InitialAssessment,
            Stage::ComprehensiveAssessment,
            Stage::InterventionPlan,
            Stage::Monitoring,
            Stage::Closed,
            Stage::Open,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].check(w[1]), Ok(()), "{:?} → {:?}", w[0], w[1]);
        }
        assert_eq!(Stage::Open.check(Stage::InterventionPlan), Err(&[Stage::InitialAssessment, Stage::Closed][..]));
        assert!(Stage::Monitoring.check(Stage::InterventionPlan).is_ok(), "a plan can be revised");
        assert!(Stage::Closed.check(Stage::Monitoring).is_err());
        for s in Stage::ALL {
            assert!(s.check(s).is_err(), "{s:?} to itself");
            assert_eq!(Stage::parse(s.as_str()), Some(s));
            assert_eq!(s.deadline(&StageDeadlines::default()).is_none(), s == Stage::Closed);
        }
        assert_eq!(Stage::Open.deadline(&StageDeadlines::with_case_file(5 * DAY_MS)), Some(("case_file", 5 * DAY_MS)));
    }

    #[test]
    fn stage_deadlines_default_and_per_helpline() {
        let d = StageDeadlines::default();
        let days: Vec<i64> = TIMED_STAGES.iter().map(|s| d.get(*s).unwrap() / DAY_MS).collect();
        assert_eq!(days, [3, 3, 30, 7, 90]);
        assert_eq!(d.get(Stage::Closed), None);
        let mut d = StageDeadlines::with_case_file(2 * DAY_MS);
        d.set_days(Stage::InitialAssessment, 5).unwrap();
        assert_eq!(Stage::InitialAssessment.deadline(&d), Some(("initial_assessment", 5 * DAY_MS)));
        assert_eq!(Stage::Open.deadline(&d), Some(("case_file", 2 * DAY_MS)));
        assert_eq!(Stage::Monitoring.deadline(&d), Some(("monitoring_review", 90 * DAY_MS)));
        assert!(d.set_days(Stage::Closed, 3).is_err());
        assert!(d.set_days(Stage::Monitoring, 0).is_err());
        assert!(d.set_days(Stage::Monitoring, MAX_STAGE_DAYS + 1).is_err());
    }

    #[test]
    fn case_numbers() {
        assert_eq!(case_number(&case_prefix("family_violence", ""), 2026, 123), "FV-2026-000123");
        assert_eq!(case_prefix("children", " ch "), "CH");
        assert_eq!(year_of(1_767_225_600_000), 2026); // 2026-01-01T00:00:00Z
        assert_eq!(year_of(1_767_225_599_999), 2025);
    }

    #[test]
    fn every_helpline_has_a_taxonomy_and_fitting_services() {
        for h in ["children", "disability", "family_violence"] {
            assert!(categories(h).len() >= 10);
            for k in fitting_service_kinds(h) {
                assert!(SERVICE_KINDS.iter().any(|(s, _)| s == k));
            }
        }
    }

    #[test]
    fn referral_statuses_move_forward_only() {
        use ReferralStatus::*;
        for from in ReferralStatus::ALL {
            assert_eq!(ReferralStatus::parse(from.as_str()), Some(from));
            for to in ReferralStatus::ALL {
                let allowed = matches!((from, to), (Sent, Accepted) | (Sent, Declined) | (Accepted, Completed));
                assert_eq!(from.check(to).is_ok(), allowed, "{from:?} -> {to:?}");
            }
        }
        assert_eq!(Sent.check(Completed), Err(&[Accepted, Declined][..]));
        assert_eq!(Declined.check(Accepted), Err(&[][..]));
        assert_eq!(ReferralStatus::parse("lost"), None);
    }
}

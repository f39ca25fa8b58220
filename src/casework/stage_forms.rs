//! Stage forms as data, without I/O: the structured content of a case's stages (assessments, the
//! individual plan with goals and actions with owners and due dates, monitoring visits, closure),
//! each form defined as JSON (`data/stage_forms.json`, the defaults, built in; a helpline's own in
//! `stage_forms`, set by admins without a release), and the check of what a case manager filled in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The built-in forms (a helpline without its own uses these).
pub const DEFAULT_FORMS: &str = include_str!("../../data/stage_forms.json");

/// The kinds of field a form may have.
pub const FIELD_KINDS: &[&str] = &["line", "text", "date", "choice", "actions"];
const MAX_LINE: usize = 300;
const MAX_TEXT: usize = 8000;
const MAX_ACTIONS: usize = 50;
const MAX_FIELDS: usize = 60;

/// One form: its code, the stage it belongs to, its label per language and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormDef {
    /// A code: lowercase letters, digits and `_`.
    pub form: String,
    /// The case stage it is filled in at.
    pub stage: String,
    /// Language → label (`en` required).
    pub label: BTreeMap<String, String>,
    pub fields: Vec<FieldDef>,
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    /// `line` (one line), `text`, `date` (`YYYY-MM-DD`), `choice` (one of `options`) or `actions`
    /// (a plan: a list of `{goal, action, owner, due}`, `due` a date).
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    pub label: BTreeMap<String, String>,
}

/// The forms file: `{"forms": [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormsFile {
    pub forms: Vec<FormDef>,
}

fn code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl FormDef {
    /// Checks a definition (as an admin sends it): codes, a known stage, an English label, known field
    /// kinds, options for a choice and only for it, no field twice. Names the first fault.
    pub fn check(&self, stages: &[&str]) -> Result<(), String> {
        if !code(&self.form) {
            return Err(format!("form {:?}: a code of lowercase letters, digits and _", self.form));
        }
        if !stages.contains(&self.stage.as_str()) {
            return Err(format!("stage {:?} is not one of {}", self.stage, stages.join(", ")));
        }
        if self.label.get("en").is_none_or(|l| l.trim().is_empty()) {
            return Err("label needs an en text".into());
        }
        if self.fields.is_empty() || self.fields.len() > MAX_FIELDS {
            return Err(format!("a form has 1 to {MAX_FIELDS} fields"));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !code(&f.name) || self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(format!("field {:?}: a code, once per form", f.name));
            }
            if !FIELD_KINDS.contains(&f.kind.as_str()) {
                return Err(format!("field {}: kind must be one of {}", f.name, FIELD_KINDS.join(", ")));
            }
            if (f.kind == "choice") == f.options.is_empty() || f.options.iter().any(|o| !code(o)) {
                return Err(format!("field {}: a choice has options (codes), other kinds none", f.name));
            }
            if f.label.get("en").is_none_or(|l| l.trim().is_empty()) {
                return Err(format!("field {}: label needs an en text", f.name));
            }
        }
        Ok(())
    }

    /// Checks what was filled in: every field known, the required ones present, each of its kind.
    /// Returns the values trimmed, or every fault by field name.
    pub fn validate(&self, values: &Map<String, Value>) -> Result<Map<String, Value>, BTreeMap<String, String>> {
        let mut faults = BTreeMap::new();
        let mut clean = Map::new();
        for name in values.keys() {
            if !self.fields.iter().any(|f| &f.name == name) {
                faults.insert(name.clone(), "unknown field".to_string());
            }
        }
        for f in &self.fields {
            let v = values.get(&f.name).filter(|v| !is_empty(v));
            match v {
                None if f.required => {
                    faults.insert(f.name.clone(), "required".into());
                }
                None => {}
                Some(v) => match check_value(f, v) {
                    Ok(v) => {
                        clean.insert(f.name.clone(), v);
                    }
                    Err(e) => {
                        faults.insert(f.name.clone(), e);
                    }
                },
            }
        }
        if faults.is_empty() {
            Ok(clean)
        } else {
            Err(faults)
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `YYYY-MM-DD`, a real date.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2200).contains(&y) && (1..=days).contains(&d)
}

fn text(v: &Value, max: usize) -> Result<String, String> {
    let s = v.as_str().ok_or("must be text")?.trim();
    if s.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    Ok(s.to_string())
}

fn check_value(f: &FieldDef, v: &Value) -> Result<Value, String> {
    match f.kind.as_str() {
        "line" => text(v, MAX_LINE).map(Value::String),
        "text" => text(v, MAX_TEXT).map(Value::String),
        "date" => {
            let s = text(v, 10)?;
            if is_date(&s) {
                Ok(Value::String(s))
            } else {
                Err("a date: YYYY-MM-DD".into())
            }
        }
        "choice" => {
            let s = text(v, 64)?;
            if f.options.contains(&s) {
                Ok(Value::String(s))
            } else {
                Err(format!("one of {}", f.options.join(", ")))
            }
        }
        "actions" => {
            let items = v.as_array().ok_or("a list of {goal, action, owner, due}")?;
            if items.len() > MAX_ACTIONS {
                return Err(format!("at most {MAX_ACTIONS} actions"));
            }
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let o = item.as_object().ok_or(format!("action {}: {{goal, action, owner, due}}", i + 1))?;
                if let Some(k) = o.keys().find(|k| !["goal", "action", "owner", "due"].contains(&k.as_str())) {
                    return Err(format!("action {}: unknown {k}", i + 1));
                }
                let mut clean = Map::new();
                for key in ["goal", "action", "owner", "due"] {
                    let Some(x) = o.get(key).filter(|x| !is_empty(x)) else {
                        return Err(format!("action {}: {key} required", i + 1));
                    };
                    let s = text(x, MAX_LINE).map_err(|e| format!("action {}: {key} {e}", i + 1))?;
                    if key == "due" && !is_date(&s) {
                        return Err(format!("action {}: due a date, YYYY-MM-DD", i + 1));
                    }
                    clean.insert(key.into(), Value::String(s));
                }
                out.push(Value::Object(clean));
            }
            Ok(Value::Array(out))
        }
        other => Err(format!("unknown kind {other}")),
    }
}

/// The built-in forms, parsed (the file is part of the build: a fault in it is a bug, found by the tests).
pub fn default_forms() -> Vec<FormDef> {
    serde_json::from_str::<FormsFile>(DEFAULT_FORMS).map(|f| f.forms).unwrap_or_default()
}

/// A helpline's forms: the defaults, each replaced by the helpline's own of the same code, and its
/// own new ones after them (stored definitions that no longer parse are skipped).
pub fn merged(own: &[(String, String)]) -> Vec<FormDef> {
    let mut forms = default_forms();
    for (_, definition) in own {
        let Ok(def) = serde_json::from_str::<FormDef>(definition) else { continue };
        match forms.iter_mut().find(|f| f.form == def.form) {
            Some(slot) => *slot = def,
            None => forms.push(def),
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STAGES: &[&str] = &["open", "initial_assessment", "comprehensive_assessment", "intervention_plan", "monitoring", "closed"];

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_built_in_forms_are_valid() {
        let forms = default_forms();
        let codes: Vec<&str> = forms.iter().map(|f| f.form.as_str()).collect();
        assert_eq!(codes, ["initial_assessment", "comprehensive_assessment", "intervention_plan", "monitoring_visit", "closure"]);
        for f in &forms {
            f.check(STAGES).unwrap_or_else(|e| panic!("{}: {e}", f.form));
            for field in &f.fields {
                for lang in ["en", "ro", "ru", "uk"] {
                    assert!(field.label.contains_key(lang), "{}.{} has no {lang} label", f.form, field.name);
                }
            }
        }
    }

    #[test]
    fn a_plan_with_two_actions_and_every_fault_named() {
        let plan = default_forms().into_iter().find(|f| f.form == "intervention_plan").unwrap();
        let ok = plan.validate(&obj(json!({"actions": [
            {"goal": "Safe housing", "action": "Apply for social housing", "owner": "Vera", "due": "2027-01-15"},
            {"goal": "School", "action": " Enrol at the gymnasium ", "owner": "the mother", "due": "2027-02-01"}]})));
        assert_eq!(ok.unwrap()["actions"][1]["action"], "Enrol at the gymnasium");
        let bad = plan.validate(&obj(json!({"actions": [{"goal": "x", "action": "y", "owner": "z", "due": "2027-02-30"}], "colour": 1})));
        let faults = bad.unwrap_err();
        assert_eq!(faults.keys().collect::<Vec<_>>(), ["actions", "colour"]);
        assert!(faults["actions"].contains("due"), "{faults:?}");
        assert_eq!(plan.validate(&Map::new()).unwrap_err()["actions"], "required");
        let visit = default_forms().into_iter().find(|f| f.form == "monitoring_visit").unwrap();
        let faults = visit.validate(&obj(json!({"date": "15.01.2027", "place": "  ", "notes": 5}))).unwrap_err();
        assert_eq!(
            (faults["date"].as_str(), faults["place"].as_str(), faults["notes"].as_str()),
            ("a date: YYYY-MM-DD", "required", "must be text")
        );
    }

    #[test]
    fn definitions_are_checked_and_a_helplines_own_replace_the_defaults() {
        let mut def = default_forms().remove(0);
        def.fields[1].options.clear();
        assert!(def.check(STAGES).unwrap_err().contains("risk"));
        let mut def = default_forms().remove(0);
        def.stage = "limbo".into();
        assert!(def.check(STAGES).is_err());
        let mut own = default_forms().remove(3);
        own.fields.push(FieldDef {
            name: "children_seen".into(),
            kind: "choice".into(),
            required: true,
            options: vec!["yes".into(), "no".into()],
            label: [("en".into(), "Children seen".into())].into(),
        });
        let merged = merged(&[("children".into(), serde_json::to_string(&own).unwrap()), ("children".into(), "not json".into())]);
        assert_eq!(merged.len(), 5);
        assert_eq!(merged[3].fields.last().unwrap().name, "children_seen");
        assert!(is_date("2028-02-29") && !is_date("2027-02-29") && !is_date("2027-13-01") && !is_date("27-01-01"));
    }
}

//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the casework API, written as data here (a test keeps it in step with the routes).

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::casework::{AGE_GROUPS, CALLER_TYPES, ESCALATION_KINDS, GENDERS, OUTCOMES, REFERRAL_KINDS, RISKS, SERVICE_KINDS};

/// One operation: method, path, summary, request schema (a component name), success status.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    ok: &'static str,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, body: Option<&'static str>, ok: &'static str) -> Op {
    Op { method, path, summary, body, ok }
}

const OPS: &[Op] = &[
    op("get", "/api/v1/openapi.json", "This document.", None, "200"),
    op("get", "/api/v1/helplines/{name}/taxonomy", "The contact form's vocabularies and categories for a helpline.", None, "200"),
    op("get", "/api/v1/helplines/{name}/case-deadlines", "How many days each case stage may take in a helpline (`open`: the case file).", None, "200"),
    op("put", "/api/v1/helplines/{name}/case-deadlines", "Set how many days case stages may take (admins): `{days: {stage: n}}`, 1 to 365.", Some("SetDeadlines"), "200"),
    op("get", "/api/v1/contacts/{id}/form", "A contact's form or draft (audited).", None, "200"),
    op("put", "/api/v1/contacts/{id}/form", "Save a draft (`draft: true`) or submit; 422 `invalid_form` names every bad field.", Some("SaveForm"), "200"),
    op("get", "/api/v1/contact-forms/incomplete", "Your ended contacts whose form is not submitted (open wrap-ups).", None, "200"),
    op("get", "/api/v1/escalations", "Unacknowledged escalations in the helplines you supervise.", None, "200"),
    op("post", "/api/v1/escalations", "Escalate a contact you handle; supervisors are alerted at once.", Some("EscalateRequest"), "201"),
    op("post", "/api/v1/escalations/{id}/acknowledge", "Acknowledge an escalation alert.", None, "200"),
    op("get", "/api/v1/escalations/{id}/suggestions", "Services with a free place fitting an escalation, the person's district first.", None, "200"),
    op("get", "/api/v1/services", "The placement services registry.", None, "200"),
    op("post", "/api/v1/services", "Add a service (admins).", Some("NewService"), "201"),
    op("get", "/api/v1/services/{id}", "One service.", None, "200"),
    op("post", "/api/v1/placements", "Reserve a place atomically; opens (or joins) the contact's case. 409 `service_full` carries `next_suggestion`.", Some("Reserve"), "201"),
    op("get", "/api/v1/placements/{id}", "A placement (audited).", None, "200"),
    op("post", "/api/v1/placements/{id}/status", "requested → admitted | cancelled, admitted → left; leaving or cancelling frees the place.", Some("PlacementStatus"), "200"),
    op("get", "/api/v1/cases", "Open cases you may see; `?due=overdue` or `?due=24h` (each listing audited).", None, "200"),
    op("post", "/api/v1/cases", "Open a case by hand from a contact.", Some("OpenCase"), "201"),
    op("get", "/api/v1/cases/{id}", "A case with its contacts, entries and placements (audited).", None, "200"),
    op("post", "/api/v1/cases/{id}/stage", "Move to the next stage; 409 `stage_order` carries `allowed`.", Some("SetStage"), "200"),
    op("post", "/api/v1/cases/{id}/entries", "Add an assessment, note or referral.", Some("CaseEntry"), "201"),
    op("post", "/api/v1/cases/{id}/contacts", "Link one more contact.", Some("LinkContact"), "204"),
    op("get", "/api/v1/cases/{id}/person", "Identifying details (the case's own roles only; audited).", None, "200"),
    op("put", "/api/v1/cases/{id}/person", "Set identifying details (the case's own roles only).", Some("PersonDetails"), "204"),
    op("put", "/api/v1/cases/{id}/case-manager", "Assign a case manager (supervisors, admins).", Some("SetCaseManager"), "200"),
    op("get", "/api/v1/audit", "The audit log, newest first (admins): `?target=&actor=&limit=`.", None, "200"),
    op("get", "/api/v1/audit/verify", "Walks the audit log's hash chain (admins; audited): `intact`, or the first broken line.", None, "200"),
];

fn strings(list: &[&str]) -> Value {
    json!({ "type": "string", "enum": list })
}

fn schemas() -> Value {
    let service_kinds: Vec<&str> = SERVICE_KINDS.iter().map(|(k, _)| *k).collect();
    let text = json!({ "type": "string" });
    let opt_text = json!({ "type": ["string", "null"] });
    json!({
        "Error": { "type": "object", "required": ["code", "message"], "properties": {
            "code": text, "message": text,
            "fields": { "type": "object", "additionalProperties": { "type": "string" }, "description": "invalid_form: each field's error" },
            "allowed": { "type": "array", "items": text, "description": "stage_order and conflict: what may come next" },
            "next_suggestion": { "description": "service_full: the next service with a free place" } } },
        "ContactForm": { "type": "object", "additionalProperties": false, "properties": {
            "caller_type": strings(CALLER_TYPES), "age_group": strings(AGE_GROUPS), "gender": strings(GENDERS),
            "district": opt_text, "categories": { "type": "array", "items": text, "description": "codes from the helpline's taxonomy" },
            "summary": opt_text, "outcome": strings(OUTCOMES), "risk": strings(RISKS) } },
        "SaveForm": { "type": "object", "required": ["form"], "properties": {
            "draft": { "type": "boolean", "default": false }, "form": { "$ref": "#/components/schemas/ContactForm" } } },
        "EscalateRequest": { "type": "object", "required": ["contact_id", "kind", "risk", "reason"], "properties": {
            "contact_id": text, "kind": strings(ESCALATION_KINDS), "risk": strings(RISKS), "reason": text, "district": opt_text } },
        "NewService": { "type": "object", "required": ["name", "kind", "district", "capacity", "helplines"], "properties": {
            "name": text, "kind": strings(&service_kinds), "district": text, "address": text, "phone": text,
            "admission_24_7": { "type": "boolean" }, "capacity": { "type": "integer", "minimum": 0 },
            "in_use": { "type": "integer", "minimum": 0 }, "helplines": { "type": "array", "items": text } } },
        "Reserve": { "type": "object", "required": ["service_id"], "properties": {
            "service_id": text, "escalation_id": opt_text, "contact_id": opt_text, "district": opt_text, "person_label": opt_text } },
        "PlacementStatus": { "type": "object", "required": ["status"], "properties": {
            "status": strings(&["admitted", "left", "cancelled"]) } },
        "OpenCase": { "type": "object", "required": ["contact_id"], "properties": {
            "contact_id": text, "district": opt_text, "person_label": opt_text } },
        "SetStage": { "type": "object", "required": ["stage"], "properties": {
            "stage": strings(&["open", "initial_assessment", "comprehensive_assessment", "intervention_plan", "monitoring", "closed"]) } },
        "CaseEntry": { "type": "object", "required": ["kind", "body"], "properties": {
            "kind": strings(&["assessment", "note", "referral"]),
            "body": { "type": "object", "description": format!("assessment: `findings`; note: `text`; referral: `service` (one of {})", REFERRAL_KINDS.join(", ")) } } },
        "LinkContact": { "type": "object", "required": ["contact_id"], "properties": { "contact_id": text } },
        "PersonDetails": { "type": "object", "properties": {
            "full_name": opt_text, "birth_date": opt_text, "address": opt_text, "phone": opt_text } },
        "SetCaseManager": { "type": "object", "properties": { "user_id": opt_text } },
        "SetDeadlines": { "type": "object", "required": ["days"], "properties": {
            "days": { "type": "object", "description": "stage (open, initial_assessment, comprehensive_assessment, intervention_plan, monitoring) → days, 1 to 365",
                      "additionalProperties": { "type": "integer", "minimum": 1, "maximum": 365 } } } },
    })
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for o in OPS {
        let params: Vec<Value> = o
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let error = json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
        let mut operation = json!({
            "summary": o.summary,
            "parameters": params,
            "security": [{ "bearer": [] }],
            "responses": { o.ok: { "description": "done" }, "default": error },
        });
        if let Some(schema) = o.body {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
        }
        let item = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        item[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "helpline casework API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Contact forms, escalations, placement services, placements, case files and the audit log. See docs/cases.md." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "token from POST /api/v1/auth/login" } },
        },
    })
}

/// `GET /api/v1/openapi.json` (public: it describes, it discloses nothing).
pub async fn document() -> Response {
    Json(build()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_casework_router_is_documented() {
        let source = include_str!("../casework/http/mod.rs");
        let doc = build();
        let mut routes = 0;
        for line in source.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
            let path = line.split('"').nth(1).unwrap();
            routes += 1;
            let item = &doc["paths"][path];
            assert!(item.is_object(), "{path} is not in the OpenAPI document");
            for method in ["get", "post", "put"] {
                let routed = line.contains(&format!("{method}(")) || line.contains(&format!(".{method}("));
                assert_eq!(routed, item.get(method).is_some(), "{method} {path}: router and document disagree");
            }
        }
        // The document also describes itself (`/api/v1/openapi.json`, routed in `edge::rest`).
        assert!(doc["paths"]["/api/v1/openapi.json"]["get"].is_object());
        assert_eq!(routes + 1, doc["paths"].as_object().unwrap().len());
        for o in OPS {
            if let Some(schema) = o.body {
                assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
            }
        }
    }
}

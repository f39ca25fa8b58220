//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every route the server serves,
//! generated from the handlers.
//!
//! Each handler carries a `#[utoipa::path(...)]` attribute (method, path, parameters, request body,
//! responses, security) and is registered with `utoipa_axum::routes!` in its domain's router; the
//! request and response types derive `utoipa::ToSchema`. [`crate::edge::routes`] merges the domain
//! routers into one `OpenApiRouter`, which yields the axum router and this document from the same
//! registrations: a route cannot be served without being described, or described without being served.
//! What is added here is what the handlers do not say each time: the title, the two bearer schemes,
//! the tags, the stable error body as the `default` answer of every operation (and 401 where a token
//! is required), and OpenAPI's spelling of the assets' wildcard path.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The parts of the document that are not a route's.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "helpline",
        description = "The HTTP API of helpline: sign-in and tokens, casework (contact forms, escalations, placement services, placements, case files, the audit log), abuse and privacy, reports and staffing, the telephony gateway, the WebSocket upgrades, the embedded pages, health and metrics. The WebSocket frames are in docs/protocol.md and docs/telephony.md; casework in docs/cases.md. Generated from the handlers (src/edge/openapi.rs).",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    modifiers(&Schemes),
    tags(
        (name = "auth", description = "Sign-in, tokens, WebSocket tickets, the signed-in account."),
        (name = "public", description = "What the caller's widget may read or do without an account."),
        (name = "contacts", description = "Contact records and calls, for supervisors and admins."),
        (name = "casework", description = "Contact forms, escalations, placement services, placements, case files and the audit log (docs/cases.md)."),
        (name = "safety", description = "Abuse flags and blocks; privacy exports and the break-glass reveal (docs/security.md)."),
        (name = "supervision", description = "Reports and staffing estimates (docs/metrics.md)."),
        (name = "telephony", description = "The gateway interface for telephone exchanges (docs/telephony.md)."),
        (name = "channels", description = "Messaging providers' webhooks: an inbound SMS from Kannel, a reply's delivery report (docs/channels.md)."),
        (name = "websocket", description = "WebSocket upgrades: 101 Switching Protocols, then the frames of docs/protocol.md or docs/telephony.md."),
        (name = "pages", description = "The embedded browser front ends and their assets."),
        (name = "operations", description = "Health, readiness, metrics, cluster status and this document."),
    ),
)]
pub struct ApiDoc;

/// The security schemes: staff sign in for a `bearer` token; an exchange's adapter presents its `gateway` token.
struct Schemes;

impl Modify for Schemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let staff = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("an access token from POST /api/v1/auth/login (or /api/v1/auth/refresh)"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(staff));
        let gateway = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("a telephone exchange's service token, from `helpline gateway add NAME` (docs/telephony.md)"))
            .build();
        components.add_security_scheme("gateway", SecurityScheme::Http(gateway));
        let metrics = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("the metrics token, when the server is started with `--metrics-token` (docs/metrics.md)"))
            .build();
        components.add_security_scheme("metrics", SecurityScheme::Http(metrics));
        let channel = Http::builder()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "a messaging channel's inbound secret as the password (user `kannel`), from `helpline channel add` (docs/channels.md)",
            ))
            .build();
        components.add_security_scheme("channel", SecurityScheme::Http(channel));
    }
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The finished document, as served.
pub fn build() -> Value {
    let api = crate::edge::routes().into_openapi();
    let mut doc = serde_json::to_value(&api).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        json!({})
    });
    finish(&mut doc);
    doc
}

/// What every operation shares: the error body as its `default` answer, and 401 where a token is required;
/// an axum wildcard (`{*path}`) written as OpenAPI's plain `{path}`.
fn finish(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let renamed: Vec<(String, String)> = paths.keys().filter(|p| p.contains("{*")).map(|p| (p.clone(), p.replace("{*", "{"))).collect();
    for (from, to) in renamed {
        if let Some(item) = paths.remove(&from) {
            paths.insert(to, item);
        }
    }
    let error = json!({ "description": "an error: a stable `code` and a `message` (see the Error schema)",
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
            let Some(responses) = op.entry("responses").or_insert_with(|| json!({})).as_object_mut() else {
                continue;
            };
            if secured && !responses.contains_key("401") {
                let mut unauthorized = error.clone();
                unauthorized["description"] = json!("the token is missing, invalid, expired or revoked");
                responses.insert("401".into(), unauthorized);
            }
            responses.entry("default").or_insert_with(|| error.clone());
        }
    }
}

/// `GET /api/v1/openapi.json` (public: it describes, it discloses nothing).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub async fn document() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| build().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    ops.push((method.to_string(), path.clone(), op.clone()));
                }
            }
        }
        ops
    }

    /// Every `$ref` in `v` names a schema of the document.
    fn refs_resolve(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
                    assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} names no schema");
                }
                map.values().for_each(|x| refs_resolve(doc, x));
            }
            Value::Array(list) => list.iter().for_each(|x| refs_resolve(doc, x)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_operation_answers_something() {
        let doc = build();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
        let ops = operations(&doc);
        assert!(ops.len() >= 60, "only {} operations", ops.len());
        for (method, path, op) in &ops {
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(responses.keys().any(|s| s.starts_with('1') || s.starts_with('2')), "{method} {path}: no success answer");
            assert!(responses.contains_key("default"), "{method} {path}: no error answer");
            // Every `{name}` of the path is a declared path parameter.
            for name in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true));
                assert!(declared, "{method} {path}: path parameter {name} is not declared");
            }
            for scheme in op["security"].as_array().into_iter().flatten().filter_map(Value::as_object).flat_map(|s| s.keys()) {
                assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{method} {path}: unknown scheme {scheme}");
            }
        }
        refs_resolve(&doc, &doc);
        assert!(doc["components"]["schemas"]["Error"]["properties"]["code"].is_object());
    }

    #[test]
    fn every_route_of_the_casework_router_is_documented() {
        let doc = build();
        let casework = crate::casework::http::router().into_openapi();
        let paths = serde_json::to_value(&casework.paths).expect("paths");
        let mut routes = 0;
        for (path, item) in paths.as_object().expect("paths") {
            for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
                routes += 1;
                assert!(doc["paths"][path][method].is_object(), "{method} {path} is not in the OpenAPI document");
                assert!(doc["paths"][path][method]["tags"].as_array().is_some_and(|t| t.contains(&json!("casework"))));
            }
        }
        assert_eq!(routes, 50, "the casework API has 50 operations");
    }
}

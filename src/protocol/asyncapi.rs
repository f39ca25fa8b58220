//! The AsyncAPI 3 document of the four sockets (`docs/asyncapi.json`), generated from the frame types
//! themselves: each socket's channel, what a client sends on it and what the server sends, and every
//! frame's JSON Schema as serde reads and writes it (`utoipa::ToSchema` on the types of this module).
//! A test keeps `docs/asyncapi.json` equal to [`document`] (`HELPLINE_BLESS=1 cargo test --lib
//! asyncapi` writes it anew), so the document cannot drift from the code; `docs/protocol.md` shows each
//! frame with an example.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::{CallerRequest, CounsellorRequest, ServerEvent, SupervisorRequest, TelephonyCommand, TelephonyEvent};

#[derive(OpenApi)]
#[openapi(components(schemas(CallerRequest, CounsellorRequest, SupervisorRequest, ServerEvent, TelephonyEvent, TelephonyCommand)))]
struct Frames;

/// (channel, address, who is on the other end, what they send, what the server sends).
const SOCKETS: [(&str, &str, &str, &str, &[&str]); 4] = [
    ("caller", "/ws/caller", "the caller's chat widget", "CallerRequest", &["ServerEvent"]),
    ("agent", "/ws/agent?ticket={ticket}", "a counsellor's console", "CounsellorRequest", &["ServerEvent"]),
    ("supervisor", "/ws/supervisor?ticket={ticket}", "a supervisor's dashboard", "SupervisorRequest", &["ServerEvent"]),
    (
        "telephony",
        "/ws/telephony",
        "a telephone exchange's gateway (Bearer service token)",
        "TelephonyEvent",
        &["TelephonyCommand", "ServerEvent"],
    ),
];

/// The AsyncAPI 3.0 document, as JSON.
pub fn document() -> Value {
    let openapi = serde_json::to_value(Frames::openapi()).unwrap_or(Value::Null);
    let schemas = openapi["components"]["schemas"].clone();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for (name, address, peer, inbound, outbound) in SOCKETS {
        let mut channel_messages = Map::new();
        for frame in std::iter::once(inbound).chain(outbound.iter().copied()) {
            messages.insert(
                frame.to_string(),
                json!({
                    "name": frame,
                    "contentType": "application/json",
                    "summary": format!("a `{frame}` frame: one JSON object a WebSocket text frame, `type` names which"),
                    "payload": { "$ref": format!("#/components/schemas/{frame}") },
                }),
            );
            channel_messages.insert(frame.to_string(), json!({ "$ref": format!("#/components/messages/{frame}") }));
        }
        let parameters = if address.contains("{ticket}") {
            json!({ "ticket": { "description": "a one-time ticket from `POST /api/v1/ws-ticket` (valid 30 s)" } })
        } else {
            json!({})
        };
        channels.insert(
            name.to_string(),
            json!({
                "address": address,
                "description": format!("The socket of {peer}."),
                "parameters": parameters,
                "messages": channel_messages,
            }),
        );
        operations.insert(
            format!("{name}Sends"),
            json!({
                "action": "receive",
                "summary": format!("what {peer} sends the server"),
                "channel": { "$ref": format!("#/channels/{name}") },
                "messages": [ { "$ref": format!("#/channels/{name}/messages/{inbound}") } ],
            }),
        );
        operations.insert(
            format!("{name}Receives"),
            json!({
                "action": "send",
                "summary": format!("what the server sends {peer}"),
                "channel": { "$ref": format!("#/channels/{name}") },
                "messages": outbound.iter().map(|f| json!({ "$ref": format!("#/channels/{name}/messages/{f}") })).collect::<Vec<_>>(),
            }),
        );
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "helpline sockets",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The WebSocket protocols of helpline: every frame is a JSON object in a text frame, its `type` naming it. Generated from src/protocol; docs/protocol.md shows each frame with an example and says which socket receives which server frame.",
            "license": { "name": "AGPL-3.0-or-later" },
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v` points somewhere in `doc`.
    fn refs_resolve(doc: &Value, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("a local $ref: {r}"));
                    assert!(doc.pointer(pointer).is_some(), "{r} resolves");
                }
                map.values().for_each(|x| refs_resolve(doc, x));
            }
            Value::Array(items) => items.iter().for_each(|x| refs_resolve(doc, x)),
            _ => {}
        }
    }

    /// The `type` names a frame schema allows (each variant's `type` property, an enum of one).
    fn type_names(doc: &Value, frame: &str) -> Vec<String> {
        let variants = doc["components"]["schemas"][frame]["oneOf"].as_array().unwrap_or_else(|| panic!("{frame}: oneOf"));
        variants
            .iter()
            .map(|v| {
                let v = match v.get("$ref").and_then(Value::as_str) {
                    Some(r) => doc.pointer(r.trim_start_matches('#')).expect("ref"),
                    None => v,
                };
                let ty = v["properties"]["type"]["enum"][0]
                    .as_str()
                    .or_else(|| v["allOf"].as_array().and_then(|a| a.iter().find_map(|p| p["properties"]["type"]["enum"][0].as_str())));
                ty.unwrap_or_else(|| panic!("{frame}: a variant without its type: {v}")).to_string()
            })
            .collect()
    }

    #[test]
    fn the_document_is_whole_and_names_every_frame() {
        let doc = document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        refs_resolve(&doc, &doc);
        use crate::protocol::KnownTypes;
        // The same names as the decoders accept (their lists are kept equal to the enums below, in mod.rs).
        let sorted = |mut names: Vec<String>| {
            names.sort();
            names
        };
        let known = |types: &[&str]| sorted(types.iter().map(|t| t.to_string()).collect());
        assert_eq!(sorted(type_names(&doc, "CallerRequest")), known(CallerRequest::TYPES));
        assert_eq!(sorted(type_names(&doc, "CounsellorRequest")), known(CounsellorRequest::TYPES));
        assert_eq!(sorted(type_names(&doc, "SupervisorRequest")), known(SupervisorRequest::TYPES));
        assert_eq!(sorted(type_names(&doc, "TelephonyEvent")), known(TelephonyEvent::TYPES));
        assert!(type_names(&doc, "ServerEvent").iter().any(|t| t == "offer"));
        assert!(type_names(&doc, "TelephonyCommand").iter().any(|t| t == "connect"));
    }

    #[test]
    fn docs_asyncapi_json_is_the_generated_document() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/asyncapi.json");
        let generated = serde_json::to_string_pretty(&document()).expect("json") + "\n";
        if std::env::var_os("HELPLINE_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write docs/asyncapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/asyncapi.json is not what src/protocol generates: run HELPLINE_BLESS=1 cargo test --lib asyncapi"
        );
    }
}

//! The OpenAPI document against the running server and against the source.
//!
//! `GET /api/v1/openapi.json` must describe every route the server serves, and nothing it does not:
//! - the document is OpenAPI 3.1 and every operation has its answers;
//! - the server answers every described path and method (not the router's own 404 or 405), and
//!   answers 405 to every other method on a described path;
//! - read independently from `src/`: every `#[utoipa::path]` annotation is in the document and every
//!   operation of the document is an annotation; every annotated handler is registered with
//!   `routes!` and every registered handler is annotated; and no route is registered any other way
//!   (`.route("…")`, `.nest(…)`, a fallback, a plain `axum::Router`, `axum::routing::get` …), which
//!   would serve a path the document does not describe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The operations of a document: (method, path).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(method).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// A concrete URL path for a templated one: `{name}` → a made-up id (a real asset for the assets' wildcard).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{path}" => "chat.js".to_string(),
            s if s.starts_with('{') && s.ends_with('}') => "no-such-id".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn the_document_describes_what_the_server_serves(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let http = reqwest::Client::new();
    let response = http.get(app.url("/api/v1/openapi.json")).send().await.expect("openapi.json");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = response.json().await.expect("JSON");

    // OpenAPI 3.1, and every operation answers something.
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let ops = operations(&doc);
    for (method, path) in &ops {
        let responses = doc["paths"][path][method]["responses"].as_object();
        assert!(responses.is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
    }

    // Every described operation is served: the router's own 404 (empty body) or 405 would say it is not.
    for (method, path) in &ops {
        let url = app.url(&concrete(path));
        let request = http.request(method.to_uppercase().parse().expect("method"), &url);
        let request = if matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
            request.header("content-type", "application/json").body("{}")
        } else {
            request
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        assert_ne!(status, 405, "{method} {path} is described but the server does not serve that method");
        assert!(!(status == 404 && body.is_empty()), "{method} {path} is described but the server has no such route");
    }

    // No method is served on a described path that the document does not describe.
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS.iter().filter(|m| !ops.contains(&(m.to_string(), path.clone()))) {
            let url = app.url(&concrete(path));
            let response = http.request(method.to_uppercase().parse().expect("method"), &url).send().await.expect("request");
            assert_eq!(response.status().as_u16(), 405, "{method} {path} is served but not described");
        }
    }

    // The same list read from the source.
    let source = Source::read();
    let annotated: BTreeSet<(String, String)> = source.annotations.iter().map(|a| (a.method.clone(), a.path.replace("{*", "{"))).collect();
    assert_eq!(annotated.len(), source.annotations.len(), "an operation is annotated twice: {:?}", source.annotations);
    let missing: Vec<_> = annotated.difference(&ops).collect();
    assert!(missing.is_empty(), "annotated in src/ but not in the document (registered with routes!?): {missing:?}");
    let unannotated: Vec<_> = ops.difference(&annotated).collect();
    assert!(unannotated.is_empty(), "in the document but annotated nowhere in src/: {unannotated:?}");
    assert!(ops.len() >= 62, "only {} operations", ops.len());
}

on_both_backends!(the_document_describes_what_the_server_serves);

/// Read without a server: every handler that `routes!` registers is annotated and every annotated
/// handler is registered; no route is registered outside the OpenAPI router.
#[test]
fn routes_are_registered_only_with_their_description() {
    let source = Source::read();
    assert!(source.annotations.len() >= 62, "found only {} #[utoipa::path] annotations", source.annotations.len());
    let mut annotated: BTreeMap<String, usize> = BTreeMap::new();
    for a in &source.annotations {
        *annotated.entry(a.handler.clone()).or_default() += 1;
    }
    let mut registered: BTreeMap<String, usize> = BTreeMap::new();
    for h in &source.registered {
        *registered.entry(h.clone()).or_default() += 1;
    }
    assert_eq!(annotated, registered, "handlers annotated with #[utoipa::path] (left) and registered with routes! (right) differ");
    assert!(source.elsewhere.is_empty(), "routes registered outside the OpenAPI router (not described): {:#?}", source.elsewhere);
}

/// One `#[utoipa::path(method, path = "…")]` and the handler it annotates.
#[derive(Debug)]
struct Annotation {
    method: String,
    path: String,
    handler: String,
}

/// What `src/` says about routes.
struct Source {
    annotations: Vec<Annotation>,
    /// The last segment of each handler registered with `routes!(…)`.
    registered: Vec<String>,
    /// `file:line: text` of every other way to register a route.
    elsewhere: Vec<String>,
}

impl Source {
    fn read() -> Source {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        collect(&root, &mut files);
        assert!(files.len() > 20, "src/ not found at {}", root.display());
        let mut source = Source { annotations: Vec::new(), registered: Vec::new(), elsewhere: Vec::new() };
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            let name = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
            source.scan(&name, &text);
        }
        source
    }

    fn scan(&mut self, file: &str, text: &str) {
        // Code only: comments dropped line by line (a `//` inside a string literal is not in route code).
        let lines: Vec<&str> = text.lines().map(|l| if l.trim_start().starts_with("//") { "" } else { l }).collect();
        let code = lines.join("\n");
        // Annotations: the attribute's first word is the method; `path = "…"`; then the next `fn NAME`.
        let mut rest = code.as_str();
        while let Some(at) = rest.find("#[utoipa::path(") {
            let after = &rest[at + "#[utoipa::path(".len()..];
            let method = after.split([',', ')']).next().unwrap_or("").trim().to_string();
            let path = after
                .split_once("path = \"")
                .and_then(|(_, p)| p.split_once('"'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_else(|| panic!("{file}: a #[utoipa::path] without path = \"…\""));
            let handler = after
                .split_once("async fn ")
                .map(|(_, f)| f.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
                .unwrap_or_default();
            assert!(!handler.is_empty(), "{file}: #[utoipa::path] annotates no fn");
            self.annotations.push(Annotation { method, path, handler });
            rest = after;
        }
        // routes!(a, b::c, …)
        let mut rest = code.as_str();
        while let Some(at) = rest.find("routes!(") {
            let after = &rest[at + "routes!(".len()..];
            let inside = after.split_once(')').map(|(i, _)| i).unwrap_or("");
            for handler in inside.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                self.registered.push(handler.rsplit("::").next().unwrap_or(handler).to_string());
            }
            rest = after;
        }
        // Any other registration: a plain axum router or method router, or a path registered by hand.
        const OTHER: [&str; 4] = ["axum::routing::", "Router::new(", "Router::<", "axum::Router::"];
        const CALLS: [&str; 6] = [".route(", ".route_service(", ".nest(", ".nest_service(", ".fallback(", ".fallback_service("];
        for (n, line) in lines.iter().enumerate() {
            let squeezed: String = line.split_whitespace().collect::<Vec<_>>().join("");
            let other = OTHER.iter().any(|o| squeezed.replace("OpenApiRouter", "").contains(o));
            // `.route(` with an argument (a method call `self.route()` is not a registration).
            let call = CALLS.iter().any(|c| squeezed.match_indices(c).any(|(i, _)| !squeezed[i + c.len()..].starts_with(')')));
            if other || call {
                self.elsewhere.push(format!("src/{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The reading of `src/` sees each kind of drift.
#[test]
fn the_source_reading_sees_drift() {
    let scan = |text: &str| {
        let mut s = Source { annotations: Vec::new(), registered: Vec::new(), elsewhere: Vec::new() };
        s.scan("x.rs", text);
        s
    };
    let good = scan(
        "pub fn router() -> OpenApiRouter<AppState> {\n    OpenApiRouter::new().routes(routes!(a::one, two))\n}\n\
         #[utoipa::path(get, path = \"/one\", responses((status = 200)))]\npub async fn one() {}\n\
         #[utoipa::path(post, path = \"/one\", responses((status = 200)))]\nasync fn two() {}\n\
         // .route(\"/in/a/comment\", get(x))\nlet local = self.route().await;\n",
    );
    assert_eq!(good.registered, ["one", "two"]);
    assert_eq!(good.annotations.len(), 2);
    assert_eq!((good.annotations[1].method.as_str(), good.annotations[1].path.as_str()), ("post", "/one"));
    assert_eq!(good.annotations[1].handler, "two");
    assert!(good.elsewhere.is_empty(), "{:?}", good.elsewhere);
    for by_hand in [
        "router.route(\"/extra\", get(extra))",
        "router.route(PATH, get(extra))",
        "let r = Router::new();",
        "let r = axum::Router::<AppState>::new();",
        "use axum::routing::get;",
        "router.nest(\"/v2\", other)",
        "router.fallback(handler)",
    ] {
        assert_eq!(scan(by_hand).elsewhere.len(), 1, "{by_hand}");
    }
}

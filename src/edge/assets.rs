//! The web front ends (caller chat widget, counsellor console), embedded in the binary at build time.
//!
//! The files live in `web-agent/` (plain ES modules and CSS, no build step) and are
//! compiled into the binary with `rust-embed`; debug builds read them from disk, so
//! an edit shows on reload. Routes:
//!
//! - `GET /chat`: the caller's chat widget (also embeddable in an `<iframe>`; `?helpline=…&lang=…`).
//! - `GET /agent`: the counsellor console.
//! - `GET /supervisor`: the supervisors' live dashboard (also for a wall screen: `?wall=1`).
//! - `GET /cases`: the case managers' workspace (docs/cases.md "The workspace").
//! - `GET /admin`: the admins' page; `GET /reset`: a password set with a reset code (docs/admin.md).
//! - `GET /assets/{path}`: scripts, styles and icons of all three.
//!
//! Every response carries a strict Content-Security-Policy (no inline scripts or styles,
//! sockets to this host only), `Cache-Control: no-store` (nothing of the chat is left in
//! the browser's cache), `Referrer-Policy: no-referrer` (the neutral site a caller's quick
//! exit opens learns nothing of where they came from) and `X-Content-Type-Options: nosniff`.
//! Only the caller widget may be framed by other sites, those of `--allowed-origins` (`frame-ancestors`);
//! the console and the dashboard may not be framed at all.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "web-agent/"]
struct Assets;

/// Who may put a page in a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing<'a> {
    /// Any site (scripts, styles and icons: framing them shows nothing).
    Anyone,
    /// This server's own pages and the allowed origins (`--allowed-origins`): the chat widget,
    /// embedded on the helplines' own sites and nowhere else.
    Origins(&'a [String]),
    /// No one (the console and the dashboard: against clickjacking).
    Nobody,
}

/// Routes serving the embedded `web-agent/` assets.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_page))
        .routes(routes!(console_page))
        .routes(routes!(dashboard_page))
        .routes(routes!(cases_page))
        .routes(routes!(admin_page))
        .routes(routes!(reset_page))
        .routes(routes!(asset))
}

fn page(name: &str, headers: &HeaderMap, framing: Framing) -> Response {
    serve(name, headers, framing)
}

/// `GET /chat`: the caller's chat widget.
#[utoipa::path(get, path = "/chat", tag = "pages",
    params(
        ("helpline" = Option<String>, Query, description = "the helpline to chat with (read by the page)"),
        ("lang" = Option<String>, Query, description = "the language (read by the page)"),
    ),
    responses((status = 200, description = "the caller's chat widget (may be framed by this server's pages and the allowed origins only)", content_type = "text/html", body = String)))]
async fn chat_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page("chat.html", &headers, Framing::Origins(&state.allowed_origins))
}

/// `GET /agent`: the counsellor console.
#[utoipa::path(get, path = "/agent", tag = "pages",
    responses((status = 200, description = "the counsellor console (never framed)", content_type = "text/html", body = String)))]
async fn console_page(headers: HeaderMap) -> Response {
    page("agent.html", &headers, Framing::Nobody)
}

/// `GET /supervisor`: the supervisors' live dashboard.
#[utoipa::path(get, path = "/supervisor", tag = "pages",
    params(("wall" = Option<String>, Query, description = "`1`: the wall-screen layout (read by the page)")),
    responses((status = 200, description = "the supervisors' dashboard (never framed)", content_type = "text/html", body = String)))]
async fn dashboard_page(headers: HeaderMap) -> Response {
    page("supervisor.html", &headers, Framing::Nobody)
}

/// `GET /cases`: the case managers' workspace.
#[utoipa::path(get, path = "/cases", tag = "pages",
    params(("case" = Option<String>, Query, description = "a case's id to open at once (read by the page)")),
    responses((status = 200, description = "the case managers' workspace (never framed)", content_type = "text/html", body = String)))]
async fn cases_page(headers: HeaderMap) -> Response {
    page("cases.html", &headers, Framing::Nobody)
}

/// `GET /admin`: the admins' page (docs/admin.md).
#[utoipa::path(get, path = "/admin", tag = "pages",
    responses((status = 200, description = "the admins' page: accounts, helplines, telephony, services (never framed)", content_type = "text/html", body = String)))]
async fn admin_page(headers: HeaderMap) -> Response {
    page("admin.html", &headers, Framing::Nobody)
}

/// `GET /reset`: sets a password with a one-time code an admin gave (`/reset#CODE`).
#[utoipa::path(get, path = "/reset", tag = "pages",
    responses((status = 200, description = "the page that sets a password with a reset code (never framed)", content_type = "text/html", body = String)))]
async fn reset_page(headers: HeaderMap) -> Response {
    page("reset.html", &headers, Framing::Nobody)
}

/// `GET /assets/{path}`: a script, style or icon of the pages.
#[utoipa::path(get, path = "/assets/{*path}", tag = "pages",
    params(("path" = String, Path, description = "the file under `web-agent/assets/`, e.g. `chat.js`")),
    responses(
        (status = 200, description = "the file, with its content type"),
        (status = 404, description = "no such file (plain text `not found`)", content_type = "text/plain", body = String),
    ))]
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // Only plain relative names: no parent directories, no absolute or Windows paths, no HTML pages.
    let safe = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.ends_with(".html");
    if !safe {
        return not_found();
    }
    serve(&format!("assets/{path}"), &headers, Framing::Anyone)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "not found").into_response()
}

fn serve(name: &str, headers: &HeaderMap, framing: Framing) -> Response {
    let Some(file) = Assets::get(name) else {
        return not_found();
    };
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime == "application/javascript" || mime == "image/svg+xml" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if framing == Framing::Nobody {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(header::HeaderName::from_static("permissions-policy"), HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(headers, framing)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The page's CSP. Sockets may go to this host only (by the request's `Host`), when it is a plain host name;
/// otherwise to any `ws:`/`wss:` origin (CSP level 2 browsers do not count `ws:` as `'self'`).
fn content_security_policy(headers: &HeaderMap, framing: Framing) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| plain_host(h));
    let sockets = match host {
        Some(h) => format!("ws://{h} wss://{h}"),
        None => "ws: wss:".to_string(),
    };
    let ancestors = match framing {
        Framing::Anyone => "*".to_string(),
        Framing::Nobody => "'none'".to_string(),
        Framing::Origins(origins) => {
            std::iter::once("'self'").chain(origins.iter().map(String::as_str).filter(|o| plain_origin(o))).collect::<Vec<_>>().join(" ")
        }
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self' {sockets}; media-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors {ancestors}"
    )
}

/// An origin (`https://host[:port]`) that can stand in a CSP source list as it is.
fn plain_origin(o: &str) -> bool {
    o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")).is_some_and(plain_host)
}

/// A host name or address with an optional port, and nothing that could break out of a header value or a CSP source.
fn plain_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_assets_are_embedded() {
        for name in [
            "chat.html",
            "agent.html",
            "supervisor.html",
            "cases.html",
            "assets/cases.js",
            "assets/cases.css",
            "assets/chat.js",
            "assets/agent.js",
            "assets/supervisor.js",
            "assets/chat.css",
            "assets/agent.css",
            "assets/supervisor.css",
        ] {
            assert!(Assets::get(name).is_some(), "{name} is not embedded");
        }
        assert_eq!(Assets::get("assets/chat.js").unwrap().metadata.mimetype(), "text/javascript");
    }

    #[test]
    fn csp_names_the_host_only_when_it_is_plain() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let csp = content_security_policy(&headers, Framing::Nobody);
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("script-src 'self';"));
        headers.insert(header::HOST, HeaderValue::from_static("evil; script-src *"));
        let csp = content_security_policy(&headers, Framing::Anyone);
        assert!(csp.contains("connect-src 'self' ws: wss:;"), "{csp}");
        assert!(csp.ends_with("frame-ancestors *"));
    }

    #[test]
    fn the_chat_widget_is_framed_only_by_the_allowed_origins() {
        let headers = HeaderMap::new();
        let none: Vec<String> = Vec::new();
        assert!(content_security_policy(&headers, Framing::Origins(&none)).ends_with("frame-ancestors 'self'"));
        let allowed = vec!["https://www.116111.md".to_string(), "https://x.example; script-src *".to_string()];
        let csp = content_security_policy(&headers, Framing::Origins(&allowed));
        assert!(csp.ends_with("frame-ancestors 'self' https://www.116111.md"), "an origin that is not plain is left out: {csp}");
    }
}

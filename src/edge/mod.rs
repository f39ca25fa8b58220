//! The edges: the HTTP router ([`router`], assembled here from each domain's routes), the generic REST
//! routes ([`rest`]), the WebSocket sessions ([`ws`]), the embedded browser front ends ([`assets`]),
//! the OpenAPI document ([`openapi`]). Edges parse, authorize, call a domain or the core, and map
//! errors; they hold no rules.

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub mod accounts;
pub mod assets;
pub mod asterisk;
pub mod callbacks;
pub mod canned;
pub mod channels;
#[cfg(test)]
mod fuzz;
pub mod logins;
pub mod openapi;
pub mod prometheus;
pub mod rest;
pub mod ws;

/// Every route the server serves, each with its OpenAPI description: the edges' own, and each
/// domain's (kept next to its handlers). A route is added by annotating its handler with
/// `#[utoipa::path]` and registering it with `routes!` in its module's router; there is no other way
/// in (a test reads `src/` for any `.route(` and fails on it).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi::document))
        .merge(rest::router())
        .merge(logins::router())
        .merge(accounts::router())
        .merge(callbacks::router())
        .merge(assets::router())
        .merge(crate::supervision::reports::router())
        .merge(crate::supervision::staffing::router())
        .merge(crate::supervision::hours::router())
        .merge(crate::telephony::router())
        .merge(crate::casework::http::router())
        .merge(crate::safety::abuse::router())
        .merge(crate::safety::privacy::router())
        .merge(canned::router())
        .merge(channels::http::router())
}

/// The whole HTTP router (without the layers [`crate::app`] puts around it). Every answer that does
/// not say otherwise carries `Cache-Control: no-store`: nothing of a contact, a case or a token is
/// left in a browser's or a proxy's cache.
pub fn router() -> Router<AppState> {
    routes().split_for_parts().0.layer(axum::middleware::map_response(no_store)).layer(axum::middleware::from_fn(refuse_nul))
}

/// Refuses a request whose path, query or JSON body holds the NUL character (U+0000): no text the
/// server keeps may contain it (PostgreSQL's text cannot), and no name, id or message needs it. A
/// clear `400 bad_field` at the door, the same on both backends, rather than a database error.
async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let refused = || crate::state::error::AppError::bad_field("text may not contain the NUL character (U+0000)").into_response();
    let uri = request.uri();
    if contains_percent_nul(uri.path()) || uri.query().is_some_and(contains_percent_nul) {
        return refused();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, rest::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let too_large = crate::state::error::AppError::new(crate::protocol::ErrorCode::TooLarge, "the body is too large");
            return too_large.into_response();
        }
    };
    if json_escapes_nul(&bytes) {
        return refused();
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Whether a URL's path or query (still percent-encoded) decodes to a NUL somewhere.
fn contains_percent_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Whether JSON text holds the escape `\u0000` (a raw NUL byte is not JSON; the parser refuses it):
/// an escape is a backslash preceded by an even number of backslashes.
fn json_escapes_nul(body: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\\' {
            backslashes += 1;
            continue;
        }
        if backslashes % 2 == 1 && b == b'u' && body.get(i + 1..i + 5) == Some(b"0000".as_slice()) {
            return true;
        }
        backslashes = 0;
    }
    false
}

async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    if !headers.contains_key(axum::http::header::CACHE_CONTROL) {
        headers.insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod nul_tests {
    use super::{contains_percent_nul, json_escapes_nul};

    #[test]
    fn a_nul_is_found_in_urls_and_json_and_nothing_else_is() {
        assert!(contains_percent_nul("/api/v1/cases/%00"));
        assert!(contains_percent_nul("number=a%00b"));
        assert!(!contains_percent_nul("number=%2500"));
        assert!(!contains_percent_nul("/api/v1/cases/001"));
        assert!(json_escapes_nul(br#"{"reason": "a\u0000b"}"#));
        assert!(json_escapes_nul(br#"{"reason": "\\\u0000"}"#));
        // An escaped backslash followed by the letters u0000 is text, not a NUL.
        assert!(!json_escapes_nul(br#"{"reason": "\\u0000"}"#));
        assert!(!json_escapes_nul(br#"{"reason": "\u0001 u0000"}"#));
    }
}

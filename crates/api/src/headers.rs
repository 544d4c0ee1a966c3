//! Headers at the edge, for every route: what a browser may do with an
//! answer (`nosniff`, no framing, a content security policy), which request
//! ids are taken from clients, and one set of credentials per request.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, ErrorCode};

const X_REQUEST_ID: &str = "x-request-id";

/// The longest client request id kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The Swagger UI at `/docs` loads only its own files (vendored into the
/// binary) and the OpenAPI document, and sends "Try it out" requests to this
/// api; its CSS carries `data:` images. It runs no inline script and no
/// `eval`; it does insert a `<style>` element of its own, so styles (which
/// cannot run code) may be inline (tests/live/live_browser.rs opens it in Chromium
/// and finds no violation).
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                           connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Everything else is JSON, metrics text or a page that sets its own policy
/// (`/live`): nothing to load, nowhere to be framed.
const DEFAULT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Middleware: `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`
/// on every answer, and a content security policy unless the route set one.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let policy = if path == "/docs" || path.starts_with("/docs/") { DOCS_POLICY } else { DEFAULT_POLICY };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(policy));
    response
}

/// Whether a client's `x-request-id` may be echoed, stored and logged as it
/// is: 1 to 64 characters of `[A-Za-z0-9._:-]` (UUIDs, W3C trace ids, most
/// tracers' ids). Anything else could flood logs or forge log lines.
pub fn is_safe_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Middleware, outside the request-id layer: drops a client's `x-request-id`
/// that is not [safe](is_safe_request_id), or given more than once, so that
/// the request gets a generated one instead.
pub async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let keep = {
        let mut ids = request.headers().get_all(X_REQUEST_ID).iter();
        match (ids.next(), ids.next()) {
            (Some(id), None) => is_safe_request_id(id.as_bytes()),
            (None, None) => true,
            _ => false,
        }
    };
    if !keep {
        tracing::debug!("a client's x-request-id was refused; generating one");
        request.headers_mut().remove(X_REQUEST_ID);
    }
    next.run(request).await
}

/// Middleware: two `Authorization` headers are refused (`400
/// ambiguous_credentials`): which one counts would depend on the proxy or
/// the framework in between, so none is chosen.
pub async fn one_credential(request: Request, next: Next) -> Response {
    if request.headers().get_all(AUTHORIZATION).iter().nth(1).is_some() {
        let message = "the request has more than one Authorization header: send exactly one";
        return ApiError::new(ErrorCode::AmbiguousCredentials, message).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_and_plain() {
        for ok in ["trace-me-42", "req-123", "4bf92f3577b34da6a3ce929d0e0e4736", "a.b_c:d-e", &"x".repeat(64)] {
            assert!(is_safe_request_id(ok.as_bytes()), "{ok:?} refused");
        }
        for bad in ["", &"x".repeat(65), "a b", "a\"b", "<script>", "é", "a/b", "a\tb", "line\nforged"] {
            assert!(!is_safe_request_id(bad.as_bytes()), "{bad:?} accepted");
        }
    }
}

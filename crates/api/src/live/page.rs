//! The page at `/live`: a camera streamed to `/v1/live`, with names and boxes
//! drawn over the video. One self-contained HTML file, no external asset.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;

const PAGE: &str = include_str!("live.html");

/// Everything the page loads comes from this api: its own inline script and
/// style, and its own WebSocket (`'self'` covers ws: and wss: of this origin).
/// It may not be framed, and forms go nowhere.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; \
                      frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn live_page() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache"), (CONTENT_SECURITY_POLICY, POLICY)], PAGE)
}

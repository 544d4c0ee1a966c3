//! `GET /`: where a newcomer who opens the api's address in a browser lands.
//! A static page of links (no script, no style, nothing loaded).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>facerec</title></head>
<body>
<h1>facerec</h1>
<p>Self-hosted face recognition: every request is a job; see the API documentation.</p>
<ul>
<li><a href="/docs/">/docs</a>: the interactive API documentation</li>
<li><a href="/openapi.json">/openapi.json</a>: the OpenAPI document</li>
<li><a href="/live">/live</a>: live recognition from a camera</li>
<li><a href="/healthz">/healthz</a> and <a href="/readyz">/readyz</a>: probes</li>
</ul>
</body>
</html>
"#;

pub async fn landing_page() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache")], PAGE)
}

//! How large a request body may be, and what becomes of the body of a
//! request refused before it was read. Shared by the router (its body
//! limits) and every middleware that refuses early (`admission`, `spooling`,
//! `auth`), which is why it sits below all of them.

use std::time::Duration;

use axum::extract::Request;
use axum::http::header::EXPECT;
use futures::StreamExt;

use crate::Settings;

/// Room for the text fields and multipart framing around the images.
const FORM_OVERHEAD_BYTES: usize = 64 * 1024;

/// Longest time spent reading (and dropping) the body of a refused upload.
const DISCARD_TIME: Duration = Duration::from_secs(30);

/// The largest submission body: verify may carry two images, each within the upload limit.
pub fn submission_body_limit(settings: &Settings) -> usize {
    2 * settings.max_upload_bytes + FORM_OVERHEAD_BYTES
}

/// The largest `POST /v1/batches` body: the largest archive and its form fields.
pub fn batch_body_limit(settings: &Settings) -> u64 {
    settings.max_batch_bytes.saturating_add(FORM_OVERHEAD_BYTES as u64)
}

/// Before refusing a request without reading it: a client that did not ask
/// `Expect: 100-continue` is still sending its body, so read it to the end
/// (keeping none of it, at most `most` bytes) and the client gets the answer
/// instead of a broken pipe.
pub async fn discard_refused_body(request: Request, most: usize) {
    let expects_continue = request.headers().get(EXPECT).is_some_and(|v| v.as_bytes() == b"100-continue");
    if !expects_continue {
        discard_body(request, most).await;
    }
}

/// Reads and drops a body, chunk by chunk: at most `most` bytes and [`DISCARD_TIME`].
async fn discard_body(request: Request, most: usize) {
    let mut body = request.into_body().into_data_stream();
    let mut seen = 0usize;
    let drain = async {
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len();
            if seen > most {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

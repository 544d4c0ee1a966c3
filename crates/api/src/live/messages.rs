//! What a live stream says: its messages, how they are sent (never waiting
//! on a client that stopped reading), and the frame rate a stream may keep.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use facerec_core::{LiveErrorCode, LiveFace};
use serde::Deserialize;
use serde_json::json;

/// How long one message may take to reach a client; a client that stops
/// reading holds its stream no longer than this.
const SEND_WAIT: Duration = Duration::from_secs(10);

/// The client stopped reading, or left.
#[derive(Debug)]
pub(super) struct Gone;

/// The first message of an open stream: what it recognizes against, and its limits.
#[derive(serde::Serialize)]
pub(super) struct Ready<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) collection: &'a str,
    pub(super) threshold: f32,
    pub(super) top_k: u32,
    pub(super) max_faces: usize,
    pub(super) max_frame_bytes: usize,
    pub(super) max_fps: f64,
}

#[derive(serde::Serialize)]
pub(super) struct Answer {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) frame: u64,
    pub(super) faces: Vec<LiveFace>,
    pub(super) latency_ms: f64,
    pub(super) worker_ms: f64,
    pub(super) dropped: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ControlMessage {
    Auth { api_key: String },
}

pub(super) fn round(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// Sends a text message, giving up after [`SEND_WAIT`].
pub(super) async fn send_text(socket: &mut WebSocket, text: String) -> Result<(), Gone> {
    match tokio::time::timeout(SEND_WAIT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Gone),
    }
}

pub(super) async fn send_error(
    socket: &mut WebSocket,
    frame: Option<u64>,
    code: LiveErrorCode,
    message: &str,
) -> Result<(), Gone> {
    let body = json!({"type": "error", "frame": frame, "error": {"code": code, "message": message}});
    send_text(socket, body.to_string()).await
}

/// Sends the error, then closes the stream: normally when idle, "try again
/// later" (1013) over a key's rate, policy violation (1008) for the other refusals.
pub(super) async fn close_with(socket: &mut WebSocket, code: LiveErrorCode, message: &str) {
    let _ = send_error(socket, None, code, message).await;
    let close = match code {
        LiveErrorCode::IdleTimeout => 1000,
        LiveErrorCode::RateLimited => 1013,
        _ => 1008,
    };
    let reason = serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let close = Message::Close(Some(CloseFrame { code: close, reason: reason.into() }));
    let _ = tokio::time::timeout(SEND_WAIT, socket.send(close)).await;
}

/// Frames per second a stream may send: a token bucket holding one second's worth.
pub(super) struct FrameRate {
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl FrameRate {
    pub(super) fn new(per_sec: f64) -> Self {
        Self { per_sec, tokens: per_sec.max(1.0), at: Instant::now() }
    }

    pub(super) fn take(&mut self, now: Instant) -> bool {
        if self.per_sec <= 0.0 {
            return true;
        }
        let capacity = self.per_sec.max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_rate_allows_a_second_s_worth_then_refills() {
        let start = Instant::now();
        let mut rate = FrameRate { per_sec: 10.0, tokens: 10.0, at: start };
        assert!((0..10).all(|_| rate.take(start)));
        assert!(!rate.take(start));
        assert!(rate.take(start + Duration::from_millis(100)));
        assert!(!rate.take(start + Duration::from_millis(100)));
        let mut open = FrameRate::new(0.0);
        assert!((0..1000).all(|_| open.take(start)));
    }
}

//! One live stream: reads frames, keeps the newest waiting while a worker has
//! the previous one, and writes an answer (or an error) per processed frame.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket};
use facerec_core::{LiveErrorCode, LiveTrack};
use facerec_queue::{LIVE_VERSION, LiveError, LiveLink, LiveOutcome, LiveReply, LiveRequest, now_ms};
use facerec_telemetry::metrics::names;
use secrecy::ExposeSecret;
use tokio::time::timeout_at;
use tracing::{info, warn};

use super::messages::{Answer, ControlMessage, FrameRate, Gone, Ready, close_with, round, send_error, send_text};
use super::{Opened, StreamParams, open};
use crate::live_slots::{OpenSlot, PendingSlot};
use crate::routes::gallery::collection_not_found;
use crate::{ApiError, AppState, ErrorCode};

/// A stream accepted over HTTP, not yet upgraded.
pub(super) struct Stream {
    state: AppState,
    admitted: Admitted,
    params: StreamParams,
}

/// How far a stream got before its upgrade.
pub(super) enum Admitted {
    /// Authenticated (or the api is open), holding a stream slot.
    Open(Opened, OpenSlot),
    /// Waiting for its auth message, holding no stream slot yet.
    Pending(PendingSlot),
}

/// A frame received and checked, waiting for a worker.
struct Frame {
    number: u64,
    image: Bytes,
    received: Instant,
    /// The same moment on the api's clock (Unix ms), against which a carried result's age is counted.
    received_at_ms: u64,
}

type Asking = Pin<Box<dyn Future<Output = (Frame, Result<Option<LiveReply>, LiveError>, Option<LiveLink>)> + Send>>;

impl Stream {
    pub(super) fn new(state: AppState, admitted: Admitted, params: StreamParams) -> Self {
        Self { state, admitted, params }
    }

    pub(super) async fn run(self, mut socket: WebSocket) {
        let Self { state, admitted, params } = self;
        let (opened, _slot) = match admitted {
            Admitted::Open(opened, slot) => (opened, slot),
            Admitted::Pending(waiting) => {
                let opened = match authenticate_by_message(&state, &mut socket, params).await {
                    Ok(opened) => opened,
                    Err((code, message)) => return close_with(&mut socket, code, &message).await,
                };
                // Authenticated: it waits no more, and now needs a stream slot like any other.
                drop(waiting);
                match state.live.admit() {
                    Ok(slot) => (opened, slot),
                    Err(e) => return close_with(&mut socket, LiveErrorCode::ServerBusy, &e.message).await,
                }
            }
        };
        metrics::gauge!(names::LIVE_STREAMS).increment(1.0);
        Serving { state }.serve(socket, opened).await;
        metrics::gauge!(names::LIVE_STREAMS).decrement(1.0);
    }
}

/// An open stream, serving frames.
struct Serving {
    state: AppState,
}

impl Serving {
    /// What was checked when the stream opened, read again: the key's grant (a
    /// `PATCH` may have taken `recognize` or the collection), and the
    /// collection itself (once deleted, "nobody" would be a wrong answer).
    async fn still_allowed(&self, opened: &Opened) -> Result<(), ApiError> {
        if let Some(key) = &opened.key {
            crate::auth::live_key_still_allowed(&self.state.auth, key.expose_secret(), &opened.collection).await?;
        }
        if !self.state.store.collection_exists(&opened.collection).await? {
            return Err(collection_not_found(&opened.collection));
        }
        Ok(())
    }

    async fn serve(&self, mut socket: WebSocket, opened: Opened) {
        let settings = &self.state.settings;
        let ready = Ready {
            kind: "ready",
            collection: opened.collection.as_str(),
            threshold: opened.threshold.get(),
            top_k: opened.top_k.get(),
            max_faces: opened.max_faces.get(),
            max_frame_bytes: settings.live_max_frame_bytes,
            max_fps: settings.live_max_fps,
        };
        let ready = serde_json::to_string(&ready).expect("the ready message always serializes");
        if send_text(&mut socket, ready).await.is_err() {
            return;
        }
        info!(collection = opened.collection.as_str(), "live stream opened");
        let idle = Duration::from_secs(settings.live_idle_secs.max(1));
        let mut rate = FrameRate::new(settings.live_max_fps);
        let mut state = Progress { frames: 0, dropped: 0, answered: 0, tracks: Vec::new(), next_track_id: 1 };
        let mut link: Option<LiveLink> = None;
        let mut pending: Option<Frame> = None;
        let mut asking: Option<Asking> = None;
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let mut key_checked = Instant::now();
        loop {
            if asking.is_none()
                && let Some(frame) = pending.take()
            {
                asking = Some(self.ask(link.take(), &opened, &state, frame));
            }
            tokio::select! {
                message = timeout_at(idle_deadline, socket.recv()) => {
                    let message = match message {
                        Err(_) => {
                            let message = format!("no message for {} s", idle.as_secs());
                            close_with(&mut socket, LiveErrorCode::IdleTimeout, &message).await;
                            break;
                        }
                        Ok(None | Some(Err(_))) => break,
                        Ok(Some(Ok(message))) => message,
                    };
                    idle_deadline = tokio::time::Instant::now() + idle;
                    let refusal = match message {
                        Message::Binary(image) => {
                            if key_checked.elapsed() >= Duration::from_secs(settings.live_key_recheck_secs) {
                                key_checked = Instant::now();
                                match self.still_allowed(&opened).await {
                                    Ok(()) => {}
                                    // A database that does not answer says nothing about the key
                                    // or the collection: look again next time.
                                    Err(e) if matches!(e.code, ErrorCode::DatabaseUnavailable | ErrorCode::InternalError) => {
                                        warn!(code = e.code.as_str(), "live stream: could not check its key and collection again");
                                    }
                                    Err(e) => {
                                        close_with(&mut socket, live_code(&e), &e.message).await;
                                        break;
                                    }
                                }
                            }
                            state.frames += 1;
                            let number = state.frames;
                            match self.check_frame(&image, &mut rate) {
                                Ok(()) => {
                                    let (received, received_at_ms) = (Instant::now(), now_ms());
                                    let frame = Frame { number, image, received, received_at_ms };
                                    if pending.replace(frame).is_some() {
                                        state.dropped += 1;
                                        metrics::counter!(names::LIVE_FRAMES, "outcome" => "dropped").increment(1);
                                    }
                                    None
                                }
                                Err((code, message)) => Some((Some(number), code, message)),
                            }
                        }
                        Message::Text(text) => match serde_json::from_str::<ControlMessage>(&text) {
                            // A key sent again (or to an open api) changes nothing.
                            Ok(ControlMessage::Auth { .. }) => None,
                            Err(_) => Some((None, LiveErrorCode::InvalidMessage, "text messages must be {\"type\": \"auth\", ...}; frames are binary".to_owned())),
                        },
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some((frame, code, message)) = refusal {
                        metrics::counter!(names::LIVE_FRAMES, "outcome" => "refused").increment(1);
                        if send_error(&mut socket, frame, code, &message).await.is_err() {
                            break;
                        }
                    }
                }
                (frame, reply, back) = async { asking.as_mut().expect("guarded by the branch condition").await }, if asking.is_some() => {
                    asking = None;
                    link = back;
                    let sent = match reply {
                        Ok(Some(reply)) => self.answer(&mut socket, &mut state, frame, reply).await,
                        Ok(None) => {
                            metrics::counter!(names::LIVE_FRAMES, "outcome" => "no_worker").increment(1);
                            let message = format!("no worker answered within {} ms", settings.live_timeout_ms);
                            send_error(&mut socket, Some(frame.number), LiveErrorCode::NoWorker, &message).await
                        }
                        Err(e) => {
                            warn!(error = %e, source = ?std::error::Error::source(&e), "live frame: Redis failed");
                            link = None;
                            metrics::counter!(names::LIVE_FRAMES, "outcome" => "no_worker").increment(1);
                            let message = "the frame could not be queued; try again".to_owned();
                            send_error(&mut socket, Some(frame.number), LiveErrorCode::QueueUnavailable, &message).await
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                    // Idleness is the client's: a slow answer does not count against it.
                    idle_deadline = tokio::time::Instant::now() + idle;
                }
            }
        }
        info!(frames = state.frames, answered = state.answered, dropped = state.dropped, "live stream closed");
    }

    /// Size, rate and image header; the pixels are the worker's to decode.
    fn check_frame(&self, image: &[u8], rate: &mut FrameRate) -> Result<(), (LiveErrorCode, String)> {
        let settings = &self.state.settings;
        if !rate.take(Instant::now()) {
            let message = format!("over {} frames per second; this frame was discarded", settings.live_max_fps);
            return Err((LiveErrorCode::RateLimited, message));
        }
        if image.len() > settings.live_max_frame_bytes {
            let message = format!("the frame is over the limit of {} bytes", settings.live_max_frame_bytes);
            return Err((LiveErrorCode::PayloadTooLarge, message));
        }
        crate::upload::check_image(image, settings).map(|_| ()).map_err(|e| (live_code(&e), e.message))
    }

    fn ask(&self, link: Option<LiveLink>, opened: &Opened, state: &Progress, frame: Frame) -> Asking {
        let settings = &self.state.settings;
        let (redis_url, queue) = (settings.queue.redis_url.expose().to_owned(), settings.queue.name.clone());
        let wait = Duration::from_millis(settings.live_timeout_ms.max(1));
        let mut request = LiveRequest {
            version: LIVE_VERSION,
            reply_to: String::new(),
            frame: frame.number,
            received_at_ms: frame.received_at_ms,
            collection: opened.collection.clone(),
            threshold: opened.threshold.get(),
            top_k: opened.top_k.get(),
            max_faces: opened.max_faces.get() as u32,
            tracks: state.tracks.clone(),
            next_track_id: state.next_track_id,
            expires_at_ms: now_ms() + wait.as_millis() as u64,
            image: frame.image.to_vec(),
        };
        Box::pin(async move {
            let mut link = match link {
                Some(link) => link,
                None => match LiveLink::connect(&redis_url, &queue).await {
                    Ok(link) => link,
                    Err(e) => return (frame, Err(e), None),
                },
            };
            request.reply_to = link.reply_key();
            let reply = link.ask(&request, wait).await;
            (frame, reply, Some(link))
        })
    }

    async fn answer(
        &self,
        socket: &mut WebSocket,
        state: &mut Progress,
        frame: Frame,
        reply: LiveReply,
    ) -> Result<(), Gone> {
        match reply.outcome {
            LiveOutcome::Faces { faces, tracks, next_track_id, worker_ms } => {
                state.tracks = tracks;
                state.next_track_id = next_track_id;
                state.answered += 1;
                let latency = frame.received.elapsed();
                metrics::counter!(names::LIVE_FRAMES, "outcome" => "answered").increment(1);
                metrics::histogram!(names::LIVE_LATENCY).record(latency.as_secs_f64());
                let answer = Answer {
                    kind: "answer",
                    frame: frame.number,
                    faces,
                    latency_ms: round(latency.as_secs_f64() * 1000.0),
                    worker_ms: round(worker_ms),
                    dropped: state.dropped,
                };
                let text = serde_json::to_string(&answer).expect("an answer always serializes");
                send_text(socket, text).await
            }
            LiveOutcome::Error { code, message } => {
                metrics::counter!(names::LIVE_FRAMES, "outcome" => "refused").increment(1);
                send_error(socket, Some(frame.number), code, &message).await
            }
        }
    }
}

/// What a stream has seen so far.
struct Progress {
    frames: u64,
    dropped: u64,
    answered: u64,
    tracks: Vec<LiveTrack>,
    next_track_id: u64,
}

/// Waits for `{"type": "auth", "api_key": "…"}` as the first message, then opens the stream.
async fn authenticate_by_message(
    state: &AppState,
    socket: &mut WebSocket,
    params: StreamParams,
) -> Result<Opened, (LiveErrorCode, String)> {
    let missing = || {
        let message = "send {\"type\": \"auth\", \"api_key\": \"<key>\"} as the first message (or the key as a \
                       `facerec.key.<key>` subprotocol, or an Authorization header)";
        (LiveErrorCode::MissingApiKey, message.to_owned())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(state.settings.live_auth_wait_secs.max(1));
    let first = loop {
        match timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(message))) => break message,
            _ => return Err(missing()),
        }
    };
    let Message::Text(text) = first else { return Err(missing()) };
    let Ok(ControlMessage::Auth { api_key }) = serde_json::from_str::<ControlMessage>(&text) else {
        return Err(missing());
    };
    open(state, Some(&api_key), params).await.map_err(|e| (live_code(&e), e.message))
}

/// The live code of an api error met while opening a stream or checking a frame.
fn live_code(error: &ApiError) -> LiveErrorCode {
    match error.code {
        ErrorCode::MissingApiKey => LiveErrorCode::MissingApiKey,
        ErrorCode::InvalidApiKey => LiveErrorCode::InvalidApiKey,
        ErrorCode::Forbidden => LiveErrorCode::Forbidden,
        ErrorCode::RateLimited => LiveErrorCode::RateLimited,
        ErrorCode::CollectionNotFound => LiveErrorCode::CollectionNotFound,
        ErrorCode::PayloadTooLarge => LiveErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType => LiveErrorCode::UnsupportedMediaType,
        ErrorCode::CorruptImage => LiveErrorCode::CorruptImage,
        ErrorCode::ImageTooLarge => LiveErrorCode::ImageTooLarge,
        _ => LiveErrorCode::InternalError,
    }
}

//! Live recognition: `GET /v1/live` upgrades to a WebSocket that takes
//! frames (binary messages, one image each) and answers each frame it
//! processes; `/live` serves a page that streams a camera to it.
//!
//! The api does no inference: each frame goes to a worker over Redis
//! ([`facerec_queue::LiveLink`]), one frame in flight per stream. A frame
//! that arrives while another is in flight waits in a single slot, and a newer
//! one replaces it (latest frame wins), so a stream holds at most two frames.
//!
//! Authentication: the `Authorization` header, a `facerec.key.<key>`
//! subprotocol (browsers cannot set headers on a WebSocket), or a first text
//! message `{"type": "auth", "api_key": "<key>"}`; never the URL. A key in
//! the header or subprotocol is checked before the upgrade; a stream that
//! will send it by message waits in a budget of its own ([`crate::live_slots`]).

mod messages;
mod page;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use facerec_core::{CollectionName, MaxFaces, Threshold, TopK};
use secrecy::SecretString;
use tracing::Instrument;

pub use page::live_page;

use crate::auth::{Caller, authorize_live, bearer_token};
use crate::routes::gallery::{collection_field, collection_threshold};
use crate::routes::query::known_params;
use crate::{ApiError, AppState, ErrorCode};

/// The subprotocol a stream speaks; the server selects it whenever the client offers it.
pub const PROTOCOL: &str = "facerec.live";
/// Prefix of the subprotocol that carries a key.
pub const KEY_PROTOCOL_PREFIX: &str = "facerec.key.";

/// What a stream recognizes against, fixed when it opens.
#[derive(Debug, Clone)]
struct StreamParams {
    collection: CollectionName,
    threshold: Option<Threshold>,
    top_k: TopK,
    max_faces: MaxFaces,
}

impl StreamParams {
    fn parse(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        known_params(query, &["collection", "threshold", "top_k", "max_faces"])?;
        let text = |name: &str| query.get(name).map(String::as_str);
        let invalid = |code, e: facerec_core::ParamError| ApiError::new(code, e.to_string());
        Ok(Self {
            collection: collection_field(text("collection"))?,
            threshold: text("threshold")
                .map(Threshold::parse)
                .transpose()
                .map_err(|e| invalid(ErrorCode::InvalidThreshold, e))?,
            top_k: text("top_k")
                .map_or(Ok(TopK::DEFAULT), TopK::parse)
                .map_err(|e| invalid(ErrorCode::InvalidTopK, e))?,
            max_faces: text("max_faces")
                .map_or(Ok(MaxFaces::DEFAULT), MaxFaces::parse)
                .map_err(|e| invalid(ErrorCode::InvalidMaxFaces, e))?,
        })
    }
}

/// Opens a live stream (a WebSocket).
pub async fn live(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(ErrorCode::WebsocketRequired, format!("/v1/live is a WebSocket: send an upgrade request ({e})"))
    })?;
    let params = StreamParams::parse(&query)?;
    let offered = offered_protocols(&headers);
    // One credential: which of two would count is not for the api to guess (as for two Authorization headers).
    let mut keys =
        bearer_token(&headers).into_iter().chain(offered.iter().filter_map(|p| p.strip_prefix(KEY_PROTOCOL_PREFIX)));
    let key = keys.next().map(str::to_owned);
    if keys.next().is_some() {
        let message =
            "the stream offers more than one key (Authorization header, facerec.key.* subprotocols): send exactly one";
        return Err(ApiError::new(ErrorCode::AmbiguousCredentials, message));
    }
    // With a key in hand, refuse over HTTP before upgrading, and take a slot
    // only once authenticated; else the first message must carry one.
    let admitted = if key.is_some() || !state.auth.enabled() {
        let opened = open(&state, key.as_deref(), params.clone()).await?;
        session::Admitted::Open(opened, state.live.admit()?)
    } else {
        session::Admitted::Pending(state.live.admit_pending(peer.map(|Extension(ConnectInfo(a))| a.ip()))?)
    };
    let limits = &state.settings;
    let hard_limit = limits.live_max_frame_bytes.saturating_mul(4).max(64 * 1024);
    let upgrade = upgrade.max_message_size(hard_limit).max_frame_size(hard_limit);
    let upgrade = if offered.iter().any(|p| p == PROTOCOL) { upgrade.protocols([PROTOCOL]) } else { upgrade };
    let stream = session::Stream::new(state.clone(), admitted, params);
    // The stream's logs keep the request's span (request id, trace, key id).
    let span = tracing::Span::current();
    Ok(upgrade.on_upgrade(move |socket| stream.run(socket).instrument(span)).into_response())
}

/// A stream's settings once its caller may open it: the collection exists
/// (checked after the key, so a refused key learns nothing about it) and the threshold is known.
#[derive(Debug, Clone)]
struct Opened {
    /// An API key's token, looked up again now and then while the stream runs
    /// (the master key, fixed at start, is not).
    key: Option<SecretString>,
    collection: CollectionName,
    threshold: Threshold,
    top_k: TopK,
    max_faces: MaxFaces,
}

async fn open(state: &AppState, key: Option<&str>, params: StreamParams) -> Result<Opened, ApiError> {
    let caller = authorize_live(&state.auth, key, &params.collection).await?;
    let key = key.filter(|_| matches!(caller, Caller::Key(_))).map(|k| SecretString::from(k.to_owned()));
    let Some(collection) = state.store.get_collection(&params.collection).await? else {
        let message = format!("no collection is named {}", params.collection.as_str());
        return Err(ApiError::new(ErrorCode::CollectionNotFound, message));
    };
    let threshold = params.threshold.unwrap_or_else(|| collection_threshold(Some(&collection), &state.settings));
    Ok(Opened { key, collection: params.collection, threshold, top_k: params.top_k, max_faces: params.max_faces })
}

fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

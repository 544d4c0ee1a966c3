//! Live frames: the low-latency path between the api and the workers.
//!
//! No job row, no apalis bookkeeping, no polling. The api pushes a frame onto
//! the list `{queue}:live` and blocks on a reply key of its own
//! (`{queue}:live:reply:{uuid}`); a worker blocks on the list, answers by
//! pushing onto that key, and gives it a short TTL so that an answer nobody
//! waits for any more disappears. The list keeps only the newest
//! [`MAX_BACKLOG`] frames and expires when no frame was pushed for a
//! frame's wait, and a worker skips a frame past its deadline, so streams
//! left without workers never fill Redis.
//!
//! Each side uses a connection of its own ([`LiveLink`]): a blocking pop
//! holds the connection it runs on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use facerec_core::{CollectionName, LiveErrorCode, LiveFace, LiveTrack};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

/// Version of the live wire format; bump when it changes incompatibly.
/// 2: tracks carry what their result was measured on, frames their receipt time.
pub const LIVE_VERSION: u16 = 2;

/// Frames the request list keeps at most (the newest); older ones are
/// dropped. Each stream has at most one frame there, so this is how many
/// streams may wait for a worker at once before the oldest give up.
pub const MAX_BACKLOG: isize = 64;

/// Slack on a frame's deadline, for clocks of the api and the worker that differ a little.
const CLOCK_SLACK_MS: u64 = 2000;

/// How long an answer waits in Redis for the api that asked.
pub const REPLY_TTL_SECS: i64 = 10;

/// A frame to recognize, with the stream's tracks. The image travels after
/// the JSON header (see [`LiveRequest::encode`]), not inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRequest {
    pub version: u16,
    /// Key the answer goes to.
    pub reply_to: String,
    pub frame: u64,
    /// When the api received the frame (Unix milliseconds, the api's clock):
    /// what the age of a carried result is counted against.
    pub received_at_ms: u64,
    pub collection: CollectionName,
    pub threshold: f32,
    pub top_k: u32,
    pub max_faces: u32,
    pub tracks: Vec<LiveTrack>,
    /// Id the next new track gets.
    pub next_track_id: u64,
    /// Unix time in milliseconds after which nobody waits for the answer.
    pub expires_at_ms: u64,
    #[serde(skip)]
    pub image: Vec<u8>,
}

/// A worker's answer to one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveReply {
    pub frame: u64,
    #[serde(flatten)]
    pub outcome: LiveOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LiveOutcome {
    Faces {
        faces: Vec<LiveFace>,
        /// The stream's tracks after this frame.
        tracks: Vec<LiveTrack>,
        next_track_id: u64,
        /// From taking the frame off the list to pushing the answer.
        worker_ms: f64,
    },
    Error {
        code: LiveErrorCode,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot connect to Redis for live frames")]
    Connect(#[source] redis::RedisError),
    #[error("Redis failed a live command")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer a live command in time")]
    Timeout,
    #[error("a live message is malformed")]
    Malformed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl LiveRequest {
    /// `[header length: u32, big-endian][JSON header][image bytes]`.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(self).expect("a live request always serializes");
        let mut out = Vec::with_capacity(4 + header.len() + self.image.len());
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.image);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LiveError> {
        let malformed = |m: &str| LiveError::Malformed(m.into());
        let len = bytes.get(..4).ok_or_else(|| malformed("shorter than its length prefix"))?;
        let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
        let header = bytes.get(4..4 + len).ok_or_else(|| malformed("shorter than its header"))?;
        let mut request: LiveRequest = serde_json::from_slice(header).map_err(|e| LiveError::Malformed(e.into()))?;
        if request.version != LIVE_VERSION {
            return Err(malformed("a live request of another version"));
        }
        request.image = bytes[4 + len..].to_vec();
        Ok(request)
    }

    /// Whether nobody waits for this frame's answer any more.
    pub fn expired(&self) -> bool {
        now_ms() > self.expires_at_ms + CLOCK_SLACK_MS
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A dedicated Redis connection for live frames, on one queue.
pub struct LiveLink {
    conn: MultiplexedConnection,
    requests: String,
    reply_prefix: String,
}

impl LiveLink {
    pub async fn connect(redis_url: &str, queue: &str) -> Result<Self, LiveError> {
        let client = redis::Client::open(redis_url).map_err(LiveError::Connect)?;
        // Blocking pops outlast the default response timeout; each call bounds its own wait.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(LiveError::Connect)?;
        Ok(Self { conn, requests: format!("{queue}:live"), reply_prefix: format!("{queue}:live:reply:") })
    }

    /// A fresh reply key for one frame.
    pub fn reply_key(&self) -> String {
        format!("{}{}", self.reply_prefix, uuid::Uuid::new_v4().simple())
    }

    /// Api side: sends a frame and waits at most `wait` for its answer (`None`: no worker answered).
    pub async fn ask(&mut self, request: &LiveRequest, wait: Duration) -> Result<Option<LiveReply>, LiveError> {
        let body = request.encode();
        bounded(wait, async {
            let _: () = redis::pipe()
                .lpush(&self.requests, body)
                .ignore()
                .ltrim(&self.requests, 0, MAX_BACKLOG - 1)
                .ignore()
                .pexpire(&self.requests, wait.as_millis() as i64)
                .ignore()
                .query_async(&mut self.conn)
                .await?;
            let popped: Option<(String, Vec<u8>)> = self.conn.blpop(&request.reply_to, wait.as_secs_f64()).await?;
            popped
                .map(|(_, reply)| serde_json::from_slice(&reply).map_err(|e| LiveError::Malformed(e.into())))
                .transpose()
        })
        .await
    }

    /// Worker side: the next frame, waiting at most `wait` for one.
    /// A malformed message is skipped (logged), never fatal.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<LiveRequest>, LiveError> {
        let popped: Option<(String, Vec<u8>)> =
            bounded(wait, async { Ok(self.conn.brpop(&self.requests, wait.as_secs_f64()).await?) }).await?;
        match popped.map(|(_, bytes)| LiveRequest::decode(&bytes)) {
            Some(Ok(request)) => Ok(Some(request)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "skipping a malformed live frame");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Worker side: answers a frame. Only reply keys of this queue are
    /// written, whatever a message names.
    pub async fn reply(&mut self, reply_to: &str, reply: &LiveReply) -> Result<(), LiveError> {
        if !reply_to.starts_with(&self.reply_prefix) {
            return Err(LiveError::Malformed(format!("reply key outside {}*", self.reply_prefix).into()));
        }
        let body = serde_json::to_vec(reply).map_err(|e| LiveError::Malformed(e.into()))?;
        bounded(Duration::ZERO, async {
            let _: () = redis::pipe()
                .lpush(reply_to, body)
                .ignore()
                .expire(reply_to, REPLY_TTL_SECS)
                .ignore()
                .query_async(&mut self.conn)
                .await?;
            Ok(())
        })
        .await
    }
}

/// Runs a Redis exchange that blocks for at most `wait`, giving Redis 2 s more to answer.
async fn bounded<T>(
    wait: Duration,
    exchange: impl std::future::Future<Output = Result<T, LiveError>>,
) -> Result<T, LiveError> {
    tokio::time::timeout(wait + Duration::from_secs(2), exchange).await.map_err(|_| LiveError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_travels_with_its_image_after_the_header() {
        let request = LiveRequest {
            version: LIVE_VERSION,
            reply_to: "q:live:reply:1".into(),
            frame: 7,
            received_at_ms: 5,
            collection: CollectionName::parse("staff").unwrap(),
            threshold: 0.4,
            top_k: 3,
            max_faces: 5,
            tracks: vec![],
            next_track_id: 4,
            expires_at_ms: 1,
            image: vec![0xff, 0xd8, 0, 1, 2],
        };
        let bytes = request.encode();
        assert_eq!(LiveRequest::decode(&bytes).unwrap(), request);
        assert!(request.expired());
        assert!(
            !LiveRequest { expires_at_ms: now_ms(), ..request.clone() }.expired(),
            "a little clock skew is allowed"
        );
        assert!(LiveRequest::decode(&bytes[..3]).is_err());
        assert!(LiveRequest::decode(&[0, 0, 0, 200, b'{']).is_err());
    }

    #[test]
    fn a_reply_names_its_outcome() {
        let reply = LiveReply {
            frame: 3,
            outcome: LiveOutcome::Error { code: LiveErrorCode::CorruptImage, message: "bad".into() },
        };
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"frame": 3, "outcome": "error", "code": "corrupt_image", "message": "bad"})
        );
        assert_eq!(serde_json::from_value::<LiveReply>(json).unwrap(), reply);
    }
}

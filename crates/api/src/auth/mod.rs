//! Who is calling, and what they may do: the master key, API keys (stored
//! hashed, scoped by actions and collection patterns), or nobody at all when
//! the api runs open (no `FACEREC_MASTER_KEY`).
//!
//! The middleware authenticates every `/v1` request, applies the key's rate
//! limit and checks the route's action ([`action_for`]); handlers then keep a
//! key to its collections through the [`Caller`] it leaves in the request.
//! Keys are looked up in PostgreSQL on every request, so a deleted key stops
//! working on the next request on every api instance.

mod actions;
mod keyring;
mod rate;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_core::{CollectionName, Grant, JobRecord};
use facerec_store::{ApiKeyRecord, Store, Visibility};
use uuid::Uuid;

pub use actions::action_for;
pub use keyring::{IssuedKey, KEY_PREFIX, Keyring};

use crate::bodies::{discard_refused_body, submission_body_limit};
use crate::{ApiError, ErrorCode, Settings};

/// Authentication settings, fixed at start, and where keys are looked up.
pub struct Auth {
    pub keyring: Keyring,
    enabled: bool,
    limiter: Option<rate::RateLimiter>,
    /// API keys are read from here on every request.
    store: Store,
    /// A refused body up to this size (a submission's largest) is read to its end.
    submission_limit: usize,
}

impl Auth {
    pub fn new(settings: &Settings, store: Store) -> Self {
        Self {
            keyring: Keyring::new(settings.master_key.as_ref(), settings.key_pepper.as_ref()),
            enabled: settings.master_key.is_some(),
            limiter: rate::RateLimiter::new(settings.key_rate_per_sec, settings.key_rate_burst),
            store,
            submission_limit: submission_body_limit(settings),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Spends one request of the key's rate: `429 rate_limited` with `Retry-After` when it has none left.
    fn take_rate(&self, key: &ApiKeyRecord) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.take(key.id, Instant::now()).map_err(|wait| {
            let error = ApiError::new(ErrorCode::RateLimited, "this key is over its request rate; retry later");
            ApiError { retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64), ..error }
        })
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No master key is set: everyone may do everything.
    Open,
    Master,
    Key(Arc<ApiKeyRecord>),
}

impl Caller {
    /// The key's grant; `None` for callers that hold every right.
    pub fn grant(&self) -> Option<&Grant> {
        match self {
            Caller::Key(key) => Some(&key.grant),
            Caller::Open | Caller::Master => None,
        }
    }

    pub fn key_id(&self) -> Option<Uuid> {
        match self {
            Caller::Key(key) => Some(key.id),
            Caller::Open | Caller::Master => None,
        }
    }

    /// What listings may show this caller.
    pub fn visibility(&self) -> Visibility {
        match self {
            Caller::Key(key) => Visibility::Key { id: key.id, collections: key.grant.collections().to_vec() },
            Caller::Open | Caller::Master => Visibility::All,
        }
    }

    /// Whether the caller may act on this collection (others are, to it, not there).
    pub fn reaches(&self, collection: &str) -> bool {
        self.grant().is_none_or(|g| g.reaches(collection))
    }

    /// Whether the caller may see this job: one on a collection it reaches, or one it submitted.
    pub fn sees_job(&self, job: &JobRecord) -> bool {
        match self {
            Caller::Key(key) => {
                job.api_key_id == Some(key.id) || job.params.collection().is_some_and(|c| key.grant.reaches(c.as_str()))
            }
            Caller::Open | Caller::Master => true,
        }
    }

    /// For a request that names a collection to write into or search (a
    /// submission, a new collection): `403 forbidden` outside the key's
    /// patterns. The answer is the same whether the collection exists or not.
    pub fn may_use(&self, collection: &CollectionName) -> Result<(), ApiError> {
        if self.reaches(collection.as_str()) {
            return Ok(());
        }
        let message = format!("this key may not use collection {}", collection.as_str());
        Err(ApiError::new(ErrorCode::Forbidden, message))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!("a handler that needs the caller runs outside the authentication middleware");
            ApiError::new(ErrorCode::InternalError, "an internal error occurred")
        })
    }
}

/// Middleware on every `/v1` route: identifies the caller, applies its rate
/// limit, checks the route's action, and leaves the [`Caller`] in the request.
pub async fn authenticate(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    if !auth.enabled {
        request.extensions_mut().insert(Caller::Open);
        return next.run(request).await;
    }
    let caller = match identify(&auth, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return refuse(&auth, request, error).await,
    };
    if let Caller::Key(key) = &caller {
        tracing::Span::current().record("key_id", tracing::field::display(key.id));
        if let Err(error) = auth.take_rate(key) {
            return refuse(&auth, request, error).await;
        }
        let action = request.extensions().get::<MatchedPath>().and_then(|p| action_for(request.method(), p.as_str()));
        let refusal = match action {
            Some(action) if key.grant.allows(action) => None,
            Some(action) => Some(format!("this key may not {action} (it has: {})", actions_of(&key.grant))),
            None => Some("only the master key may use this route".to_owned()),
        };
        if let Some(message) = refusal {
            return refuse(&auth, request, ApiError::new(ErrorCode::Forbidden, message)).await;
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Answers `error` without running the route, after reading what the client
/// still sends of an upload (up to the submission limit; a larger declared
/// body, such as an archive, is not read and the connection closes).
async fn refuse(auth: &Auth, request: Request, error: ApiError) -> Response {
    let most = auth.submission_limit;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n <= most) {
        discard_refused_body(request, most).await;
    }
    error.into_response()
}

fn actions_of(grant: &Grant) -> String {
    grant.actions().iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
}

/// The caller named by `Authorization: Bearer <key>`. The key is never
/// logged or echoed: errors say only what was wrong with it.
async fn identify(auth: &Auth, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        let message = "this api needs a key: send `Authorization: Bearer <key>`";
        return Err(ApiError::new(ErrorCode::MissingApiKey, message));
    };
    let invalid = |message: &str| ApiError::new(ErrorCode::InvalidApiKey, message);
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| invalid("the Authorization header must be `Bearer <key>`"))?;
    caller_for_token(auth, token).await
}

/// The caller a key names (the master key or a live API key).
async fn caller_for_token(auth: &Auth, token: &str) -> Result<Caller, ApiError> {
    let invalid = |message: &str| ApiError::new(ErrorCode::InvalidApiKey, message);
    let hash = auth.keyring.hash(token);
    if auth.keyring.is_master(&hash) {
        return Ok(Caller::Master);
    }
    let unknown = || invalid("the key is not valid: unknown, deleted or expired");
    if !token.starts_with(KEY_PREFIX) {
        return Err(unknown());
    }
    match auth.store.live_api_key(&hash).await? {
        Some(key) => Ok(Caller::Key(Arc::new(key))),
        None => Err(unknown()),
    }
}

/// Authenticates a live stream (`GET /v1/live`), whose key comes from the
/// `Authorization` header, a `facerec.key.<key>` subprotocol or the stream's
/// first message (`None` here means none was sent): the key must exist, be
/// within its rate, hold `recognize` and reach `collection`.
pub async fn authorize_live(auth: &Auth, token: Option<&str>, collection: &CollectionName) -> Result<Caller, ApiError> {
    if !auth.enabled {
        return Ok(Caller::Open);
    }
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        let message = "this api needs a key: send `Authorization: Bearer <key>`, the subprotocol \
                       `facerec.key.<key>`, or `{\"type\": \"auth\", \"api_key\": \"<key>\"}` as the first message";
        return Err(ApiError::new(ErrorCode::MissingApiKey, message));
    };
    let caller = caller_for_token(auth, token).await?;
    if let Caller::Key(key) = &caller {
        tracing::Span::current().record("key_id", tracing::field::display(key.id));
        auth.take_rate(key)?;
    }
    may_recognize_in(&caller, collection)?;
    Ok(caller)
}

/// Whether an open live stream's key may still recognize in `collection`,
/// read again from the store: `invalid_api_key` once deleted or expired,
/// `forbidden` once a `PATCH` took `recognize` or the collection from it.
pub async fn live_key_still_allowed(auth: &Auth, token: &str, collection: &CollectionName) -> Result<(), ApiError> {
    let caller = caller_for_token(auth, token).await?;
    may_recognize_in(&caller, collection)
}

/// The grant a live stream needs, the same when it opens and while it runs.
fn may_recognize_in(caller: &Caller, collection: &CollectionName) -> Result<(), ApiError> {
    if let Some(grant) = caller.grant()
        && !grant.allows(facerec_core::Action::Recognize)
    {
        let message = format!("this key may not recognize (it has: {})", actions_of(grant));
        return Err(ApiError::new(ErrorCode::Forbidden, message));
    }
    caller.may_use(collection)
}

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

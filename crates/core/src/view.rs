//! A job as clients see it: the body of `GET /v1/jobs/{id}`, of job listings
//! and of webhook deliveries (one type, so they can never disagree).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{JobId, JobKind, JobStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub job_id: JobId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    /// When `succeeded`: a `RegisterResult`, `RecognizeResult`, `EmbedResult` or `VerifyResult`, by `kind`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<JobError>,
    pub durations: Durations,
    /// Delivery of the job's outcome to its `callback_url`; `null` without one.
    pub webhook: Option<WebhookView>,
    /// Set while a job waits to be retried after a transient failure.
    pub retry: Option<RetryView>,
}

/// A job that failed on our side (database, queue, runtime) and will run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryView {
    /// Not before this time (exponential backoff with jitter).
    pub next_attempt_at: DateTime<Utc>,
    /// What failed on the last attempt.
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    /// Why the job failed; stable.
    #[schema(value_type = crate::JobErrorCode)]
    pub code: String,
    pub message: String,
}

/// How long the job waited and ran so far, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Durations {
    /// From submission to its first start (or to now, while queued; `null` if canceled unstarted).
    pub queued_ms: Option<i64>,
    /// From its first start to its end (or to now, while processing).
    pub processing_ms: Option<i64>,
}

impl Durations {
    pub fn of(
        created: DateTime<Utc>,
        started: Option<DateTime<Utc>>,
        finished: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Self {
        let ms = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds().max(0);
        let queued_ms = match (started, finished) {
            (Some(started), _) => Some(ms(created, started)),
            (None, None) => Some(ms(created, now)),
            (None, Some(_)) => None,
        };
        let processing_ms = started.map(|started| ms(started, finished.unwrap_or(now)));
        Self { queued_ms, processing_ms }
    }
}

/// `pending` until delivered (a 2xx answer) or given up (`failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookView {
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// HTTP status of the last attempt, if the receiver answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_timestamps() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let queued = Durations::of(t(0), None, None, t(3));
        assert_eq!((queued.queued_ms, queued.processing_ms), (Some(3000), None));
        let done = Durations::of(t(0), Some(t(2)), Some(t(5)), t(9));
        assert_eq!((done.queued_ms, done.processing_ms), (Some(2000), Some(3000)));
        let canceled = Durations::of(t(0), None, Some(t(1)), t(9));
        assert_eq!((canceled.queued_ms, canceled.processing_ms), (None, None));
    }
}

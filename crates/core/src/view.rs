//! A job as clients see it: the body of `GET /v1/jobs/{id}`, of job listings
//! and of webhook deliveries (one type, so they can never disagree), built
//! from the stored [`JobRecord`] here and nowhere else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{JobError, JobId, JobKind, JobRecord, JobStatus, WebhookView};

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

impl JobView {
    /// The job as clients see it at `now` (durations of a job not ended run to `now`).
    pub fn of(job: JobRecord, now: DateTime<Utc>) -> Self {
        let durations = Durations::of(job.created_at, job.started_at, job.finished_at, now);
        // Only a queued job can be waiting for its retry; a job claimed or
        // ended since keeps its last retry time, which no longer applies.
        let retry = match (job.status, job.retry_at, job.last_error) {
            (JobStatus::Queued, Some(next_attempt_at), Some(last_error)) => {
                Some(RetryView { next_attempt_at, last_error })
            }
            _ => None,
        };
        Self {
            job_id: job.id,
            kind: job.kind,
            status: job.status,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            attempts: job.attempts,
            result: job.result,
            error: job.error,
            durations,
            webhook: job.webhook,
            retry,
        }
    }
}

impl From<JobRecord> for JobView {
    /// The job as clients see it now.
    fn from(job: JobRecord) -> Self {
        Self::of(job, Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobErrorCode;

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

    fn record(status: JobStatus) -> JobRecord {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        JobRecord {
            id: JobId::new(),
            kind: JobKind::Embed,
            status,
            params: crate::JobParams::Embed(crate::EmbedParams { max_faces: crate::MaxFaces::DEFAULT }),
            attempts: 1,
            result: None,
            error: None,
            request_id: None,
            callback_url: None,
            created_at: t(0),
            started_at: Some(t(1)),
            finished_at: None,
            webhook: None,
            retry_at: Some(t(5)),
            last_error: Some("redis went away".into()),
            api_key_id: None,
            traceparent: None,
        }
    }

    #[test]
    fn only_a_queued_job_shows_its_retry() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let waiting = JobView::of(record(JobStatus::Queued), t(3));
        let retry = waiting.retry.expect("a queued job with a retry time waits for it");
        assert_eq!((retry.next_attempt_at, retry.last_error.as_str()), (t(5), "redis went away"));
        assert_eq!(waiting.durations.processing_ms, Some(2000), "measured up to now");
        assert_eq!(JobView::of(record(JobStatus::Processing), t(3)).retry, None);
    }

    #[test]
    fn error_codes_serialise_as_their_stable_text() {
        let error = JobError { code: JobErrorCode::Internal, message: "m".into() };
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json, serde_json::json!({"code": "internal_error", "message": "m"}));
        assert_eq!(serde_json::from_value::<JobError>(json).unwrap(), error);
    }

    #[test]
    fn the_schema_names_the_enums_the_fields_hold() {
        use utoipa::PartialSchema;
        let error = serde_json::to_value(JobError::schema()).unwrap().to_string();
        assert!(error.contains("#/components/schemas/JobErrorCode"), "{error}");
        let webhook = serde_json::to_value(WebhookView::schema()).unwrap().to_string();
        assert!(webhook.contains("#/components/schemas/WebhookStatus"), "{webhook}");
    }
}

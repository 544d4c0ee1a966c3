//! How a run finds what earlier runs did with a file: its jobs are found at
//! the api by idempotency key (`GET /v1/jobs?idempotency_key=…`), and what an
//! ended job means for the file is decided here, once, for the real run and
//! the dry run alike.

use facerec_core::{JobErrorCode, JobStatus, JobView};
use sha2::{Digest, Sha256};

use crate::report::ReportError;

/// Submissions per file when its job ends with an internal error (across
/// runs: each try has its own key).
pub const MAX_TRIES: u32 = 3;

/// The `Idempotency-Key` of one image registered as `subject` in `collection`.
pub fn idempotency_key(collection: &str, subject: &str, content: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"facerec-ingest-v1\0");
    h.update(collection.as_bytes());
    h.update(b"\0");
    h.update(subject.as_bytes());
    h.update(b"\0");
    h.update(Sha256::digest(content));
    format!("facerec-ingest-{}", hex::encode(h.finalize()))
}

/// The keys one file's jobs are sent under. Each try has its own key, so a
/// retried file never meets its earlier job's. A file registered again on
/// purpose after its face was deleted (`--resend-deleted`) gets keys of its
/// own, derived from the deleted face: the next run finds that job too,
/// instead of calling the file deleted or sending it once more.
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(collection: &str, subject: &str, content: &[u8]) -> Self {
        Self { base: idempotency_key(collection, subject, content) }
    }

    /// The key of try `attempt` (from 1), after the deleted face `after` if any.
    pub fn key(&self, after: Option<&str>, attempt: u32) -> String {
        let mut key = self.base.clone();
        if let Some(face) = after {
            key = format!("{key}-after-{face}");
        }
        if attempt > 1 {
            key = format!("{key}-r{attempt}");
        }
        key
    }
}

/// What an ended job means for its file.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The face was stored (`face_id` as the job's result names it).
    Registered { face_id: Option<String> },
    /// Failed for good (`no_face`, …, or out of tries).
    Failed(Option<ReportError>),
    /// Canceled by a user, or by deleting the subject: never sent again.
    Canceled,
    /// Failed for our side's reasons, with tries left: send it again.
    Retry,
}

/// Judges the ended `job` of try `attempt`.
pub fn judge(job: &JobView, attempt: u32) -> Ended {
    match job.status {
        JobStatus::Succeeded => Ended::Registered { face_id: face_id(job) },
        JobStatus::Canceled => Ended::Canceled,
        _ => {
            // A job that failed for our side's reasons may succeed if sent again.
            let retryable = job.error.as_ref().is_none_or(|e| e.code == JobErrorCode::Internal);
            let error = job.error.clone().map(ReportError::from);
            if attempt < MAX_TRIES && retryable { Ended::Retry } else { Ended::Failed(error) }
        }
    }
}

/// The face a succeeded register stored (or found already stored), as its result names it.
fn face_id(job: &JobView) -> Option<String> {
    job.result.as_ref()?.get("face_id")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_collection_subject_and_content_and_are_stable() {
        let k = idempotency_key("c", "Ann", b"x");
        assert_eq!(k, idempotency_key("c", "Ann", b"x"));
        assert_ne!(k, idempotency_key("d", "Ann", b"x"));
        assert_ne!(k, idempotency_key("c", "Bo", b"x"));
        assert_ne!(k, idempotency_key("c", "Ann", b"y"));
        // A separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(idempotency_key("ab", "c", b"x"), idempotency_key("a", "bc", b"x"));
        assert!(k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn tries_and_resends_have_keys_of_their_own_and_the_first_is_unchanged() {
        let keys = Keys::new("c", "Ann", b"x");
        let base = idempotency_key("c", "Ann", b"x");
        assert_eq!(keys.key(None, 1), base, "earlier runs' jobs are still found");
        assert_eq!(keys.key(None, 2), format!("{base}-r2"));
        let face = "01a23b32-ee7e-75a6-aa46-5238afd0b9ce";
        let resend = keys.key(Some(face), 1);
        assert_eq!(resend, format!("{base}-after-{face}"));
        assert_ne!(keys.key(Some(face), 2), resend);
        let longest = keys.key(Some(face), MAX_TRIES);
        assert!(longest.len() <= 255 && longest.bytes().all(|b| b.is_ascii_graphic()), "{longest}");
    }

    #[test]
    fn ended_jobs_are_judged_by_status_error_and_tries_left() {
        // As the api answers it: the CLI reads the one job view the api writes.
        let job = |status: &str, code: Option<&str>| -> JobView {
            serde_json::from_value(serde_json::json!({
                "job_id": "01a23b32-ee7e-75a6-aa46-5238afd0b9ce",
                "kind": "register",
                "status": status,
                "created_at": "2026-12-07T10:00:00Z",
                "started_at": "2026-12-07T10:00:01Z",
                "finished_at": "2026-12-07T10:00:02Z",
                "attempts": 1,
                "result": {"face_id": "f"},
                "error": code.map(|c| serde_json::json!({"code": c, "message": "m"})),
                "durations": {"queued_ms": 1000, "processing_ms": 1000},
                "webhook": null,
                "retry": null
            }))
            .unwrap()
        };
        assert_eq!(judge(&job("succeeded", None), 1), Ended::Registered { face_id: Some("f".into()) });
        assert_eq!(judge(&job("canceled", None), 1), Ended::Canceled);
        assert_eq!(judge(&job("failed", Some("internal_error")), 1), Ended::Retry);
        assert!(matches!(judge(&job("failed", Some("internal_error")), MAX_TRIES), Ended::Failed(Some(_))));
        assert!(matches!(judge(&job("failed", Some("no_face")), 1), Ended::Failed(Some(e)) if e.code == "no_face"));
    }
}

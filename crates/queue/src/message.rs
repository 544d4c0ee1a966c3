//! The wire format of a job message: what goes through Redis for every job,
//! built in one place (`JobMessage::from(&JobRef)`) so that every
//! producer (submission, batch feeding, reconciliation, retries) sends the
//! same thing, the trace context of the request that created the job included.

use facerec_core::{JobId, JobKind, JobRef};
use serde::{Deserialize, Serialize};

/// Version of [`JobMessage`]'s shape; bump when it changes incompatibly.
pub const MESSAGE_VERSION: u16 = 1;

/// What goes through Redis for every job. Only the job id and kind (and its
/// trace): PostgreSQL holds everything else, so a lost or duplicated message
/// can never lose or duplicate work.
///
/// Fields are private so that no producer builds one by hand: a message is
/// made from the [`JobRef`] the store returns, and read by the consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    version: u16,
    job_id: JobId,
    kind: JobKind,
    /// W3C trace context of the request that created the job (kept with its row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

impl From<&JobRef> for JobMessage {
    fn from(job: &JobRef) -> Self {
        Self { version: MESSAGE_VERSION, job_id: job.job_id, kind: job.kind, traceparent: job.traceparent.clone() }
    }
}

impl JobMessage {
    /// The shape this message was written in; a consumer handles only [`MESSAGE_VERSION`].
    pub fn version(&self) -> u16 {
        self.version
    }

    pub fn job_id(&self) -> JobId {
        self.job_id
    }

    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// The trace context of the request that created the job, if it was traced.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0192a3b4-c5d6-7e8f-9012-3456789abcde";
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn job(traceparent: Option<&str>) -> JobRef {
        JobRef { job_id: ID.parse().unwrap(), kind: JobKind::Recognize, traceparent: traceparent.map(str::to_owned) }
    }

    #[test]
    fn message_wire_format_is_stable() {
        let json = serde_json::to_value(JobMessage::from(&job(None))).unwrap();
        assert_eq!(json, serde_json::json!({"version": 1, "job_id": ID, "kind": "recognize"}));
        let back: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back.job_id(), ID.parse::<JobId>().unwrap());
        assert_eq!(back.traceparent(), None);
    }

    #[test]
    fn the_jobs_traceparent_travels_on_the_wire() {
        let json = serde_json::to_value(JobMessage::from(&job(Some(TRACEPARENT)))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version": 1, "job_id": ID, "kind": "recognize", "traceparent": TRACEPARENT})
        );
        let back: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, JobMessage::from(&job(Some(TRACEPARENT))));
        assert_eq!(back.traceparent(), Some(TRACEPARENT));
        assert_eq!((back.version(), back.kind()), (MESSAGE_VERSION, JobKind::Recognize));
    }

    #[test]
    fn a_message_without_a_traceparent_still_reads() {
        // Written by a producer that had no trace (or before the field existed).
        let json = serde_json::json!({"version": 1, "job_id": ID, "kind": "register"});
        let message: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!((message.kind(), message.traceparent()), (JobKind::Register, None));
    }
}

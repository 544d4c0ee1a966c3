//! Archive batches as clients see them (bodies of the `/v1/batches` routes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::WebhookView;

/// `running` until every item has ended; then `completed`, or `canceled` when canceled first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Running,
    Completed,
    Canceled,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Completed, Self::Canceled].into_iter().find(|v| v.as_str() == s)
    }
}

/// Items per state. `queued` includes items not yet fed to the job queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchCounts {
    pub queued: i64,
    pub processing: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub canceled: i64,
    /// Entries that were not images (or not in a subject folder): reported, never run.
    pub skipped: i64,
    /// Items whose job has since been deleted by job retention.
    pub expired: i64,
}

/// A batch: one uploaded archive, one register job per image in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchView {
    pub batch_id: Uuid,
    pub status: BatchStatus,
    pub collection: String,
    /// Entries of the archive (directories aside), each an item.
    pub total: i64,
    pub counts: BatchCounts,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Delivery of the batch's outcome to its `callback_url`, once it has
    /// ended (`null` before, and without one).
    pub webhook: Option<WebhookView>,
}

/// What became of an item: a job's status, or `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchItemStatus {
    Queued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Skipped,
    /// The item's job was deleted by job retention.
    Expired,
}

impl BatchItemStatus {
    pub const ALL: [Self; 7] =
        [Self::Queued, Self::Processing, Self::Succeeded, Self::Failed, Self::Canceled, Self::Skipped, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Skipped => "skipped",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One archive entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchItemView {
    /// The entry's name in the archive.
    pub path: String,
    /// Empty when the entry is outside any subject folder (then skipped).
    pub subject: String,
    pub job_id: Option<Uuid>,
    pub status: BatchItemStatus,
    /// Why it failed or was skipped: the job's error code, or the archive
    /// check's (`unsupported_media_type`, `not_in_subject_folder`,
    /// `not_in_manifest`, `nested_archive`, `not_a_regular_file`,
    /// `payload_too_large`, `corrupt_image`, `image_too_large`, `invalid_subject`).
    pub error: Option<BatchItemError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchItemError {
    pub code: String,
    pub message: String,
}

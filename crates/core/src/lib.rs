//! Domain types shared by every facerec crate: job ids, kinds and statuses,
//! validated request parameters, job results and stable error codes.
//!
//! Owns no I/O and no runtime: no tokio, sqlx, axum or ort. Everything here is
//! plain data, parsed once at the edge ("parse, don't validate") and trusted inside.

mod access;
mod address;
mod batch;
mod codes;
mod decode_cost;
mod error_chain;
mod float;
mod gallery;
mod image_limits;
mod job;
mod live;
mod params;
mod quality;
mod record;
mod result;
mod secret_url;
mod similarity;
mod view;

pub use access::{AccessError, Action, CollectionPattern, Grant, GrantError, KeyScope, check_change, check_grant};
pub use address::{is_global, may_deliver_to};
pub use batch::{BatchCounts, BatchItemError, BatchItemStatus, BatchItemView, BatchStatus, BatchView};
pub use codes::JobErrorCode;
pub use decode_cost::{DEFAULT_MAX_PIXELS_PER_BYTE, DecodeCost, FREE_PIXELS, TooCostly};
pub use error_chain::error_chain;
pub use gallery::{AuditEntry, CollectionView, ConsentView, FaceView, SubjectSummary, SubjectView};
pub use image_limits::{DEFAULT_MAX_PIXELS, ImageLimits, ImageTooLarge};
pub use job::{JobId, JobKind, JobRef, JobStatus, ParseEnumError, WebhookStatus};
pub use live::{
    ChangeBounds, LiveErrorCode, LiveFace, LiveTrack, Sighting, THUMBNAIL_SIDE, TrackMeasurement, TrackPolicy,
    TrackStep, carry_tracks, face_score, looks_changed, plan_tracks, same_person,
};
pub use params::{
    CollectionName, ConsentRef, EmbedParams, JobParams, MaxFaces, ParamError, RecognizeParams, RegisterParams,
    SubjectName, Threshold, TopK, VerifyParams, VerifyTarget,
};
pub use quality::{FaceQuality, QualityGates, QualityIssue, RECOGNIZE_MIN_INTER_EYE_DISTANCE};
pub use record::{JobError, JobRecord, WebhookView};
pub use result::{
    BBox, BestMatch, EmbedResult, EmbeddedFace, FaceInfo, FaceMatch, RecognizeResult, RecognizedFace, RegisterResult,
    SkipReason, SkippedFace, VerifiedAgainst, VerifyResult,
};
pub use secret_url::SecretUrl;
pub use similarity::cosine;
pub use view::{Durations, JobView, RetryView};

/// Length of every face embedding we store and compare (SFace).
pub const EMBEDDING_DIM: usize = 128;

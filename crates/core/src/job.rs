//! What names a job and where it is in its life: its id, kind and status,
//! its webhook's delivery status, and [`JobRef`], what the queue needs of it.
//! The text of each enum (PostgreSQL and JSON alike) is declared once, by
//! `text_enum!`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies one job, in PostgreSQL, in the queue and in URLs.
/// UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct ParseEnumError {
    what: &'static str,
    value: String,
}

impl ParseEnumError {
    pub(crate) fn new(what: &'static str, value: &str) -> Self {
        Self { what, value: value.to_owned() }
    }
}

/// Declares a fieldless enum stored as snake_case text in PostgreSQL and JSON:
/// its text (`as_str`, `Display`, `FromStr`) and its JSON are written once,
/// here, so the two cannot drift. A variant whose text is not its snake_case
/// name says so with `#[serde(rename = "...")]` next to its text.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::ParseEnumError::new($what, s)),
                }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// What a job does.
    JobKind, "job kind", {
        Register => "register",
        Recognize => "recognize",
        Embed => "embed",
        Verify => "verify",
    }
);

text_enum!(
    /// Where a job is in its life. `queued` → `processing` → one of the terminal states.
    JobStatus, "job status", {
        Queued => "queued",
        Processing => "processing",
        Succeeded => "succeeded",
        Failed => "failed",
        Canceled => "canceled",
    }
);

impl JobStatus {
    /// The states a job never leaves; the one list of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

text_enum!(
    /// Delivery of an outcome to its `callback_url`: `pending` until delivered
    /// (a 2xx answer) or given up (`failed`).
    WebhookStatus, "webhook status", {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

/// What a producer needs to put one job on the queue: the job, its kind, and
/// the W3C trace context of the request that created it. The trace context is
/// kept with the job's row, so a job fed from a batch, re-sent by the
/// reconciler or retried joins the trace of that request all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub job_id: JobId,
    pub kind: JobKind,
    pub traceparent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text_and_json() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), *k);
        }
        assert!("done".parse::<JobStatus>().is_err());
        for w in WebhookStatus::ALL {
            assert_eq!(w.as_str().parse::<WebhookStatus>().unwrap(), *w);
            assert_eq!(serde_json::to_string(w).unwrap(), format!("\"{w}\""));
        }
        assert!("sent".parse::<WebhookStatus>().is_err());
    }

    #[test]
    fn only_finished_states_are_terminal() {
        let terminal: Vec<_> = JobStatus::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [&JobStatus::Succeeded, &JobStatus::Failed, &JobStatus::Canceled]);
    }

    #[test]
    fn job_ids_parse_and_sort_by_creation() {
        let a = JobId::new();
        let b = JobId::new();
        assert!(a.0 < b.0);
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
        assert!("not-a-uuid".parse::<JobId>().is_err());
    }
}

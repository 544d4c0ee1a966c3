//! What happened to each input file (the JSONL report) and the summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use facerec_core::JobError;

use crate::client::ErrorBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
    /// An earlier run registered it, and its face was deleted since (the
    /// face, its subject or its collection): not sent again unless
    /// `--resend-deleted` is given.
    Deleted,
    /// Dry run only: a real run would upload it.
    WouldSend,
    /// Dry run only: an earlier run sent it and its job has not ended; a real
    /// run would wait for it.
    InProgress,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub path: String,
    pub subject: String,
    pub status: Status,
    pub job_id: Option<String>,
    pub face_id: Option<String>,
    pub error: Option<ReportError>,
    /// The job was found from an earlier run: by a lookup before sending (the
    /// usual case on a re-run: the image was not sent again), or in the api's
    /// answer to the upload (`Idempotent-Replayed`).
    pub resumed: bool,
    /// Written by `--dry-run`: nothing was sent; `status` says what a real
    /// run would report, or `would_send` / `in_progress`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Outcome {
    /// One line of the dry run's listing: what a real run would do with the file, and why.
    pub fn dry_run_line(&self) -> String {
        let code = || self.error.as_ref().map_or("unknown", |e| e.code.as_str());
        let (action, why) = match self.status {
            Status::WouldSend => ("send", String::new()),
            Status::InProgress => ("wait", "sent by an earlier run, not ended yet".to_owned()),
            Status::Succeeded => ("skip", "already registered".to_owned()),
            Status::Deleted => ("skip", "deleted since; --resend-deleted registers it again".to_owned()),
            Status::Failed if self.resumed => ("skip", format!("failed in an earlier run: {}", code())),
            Status::Failed => ("fail", code().to_owned()),
            Status::Skipped => ("skip", code().to_owned()),
        };
        let why = if why.is_empty() { why } else { format!("  ({why})") };
        format!("{action:<5}{}{why}", self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportError {
    pub code: String,
    pub message: String,
}

impl From<ErrorBody> for ReportError {
    fn from(e: ErrorBody) -> Self {
        Self { code: e.code, message: e.message }
    }
}

impl From<JobError> for ReportError {
    fn from(e: JobError) -> Self {
        Self { code: e.code.as_str().to_owned(), message: e.message }
    }
}

/// Writes the report as outcomes arrive (a crash leaves every line so far).
pub struct ReportWriter(Option<BufWriter<File>>);

impl ReportWriter {
    pub fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = path
            .map(|p| File::create(p).with_context(|| format!("creating the report {}", p.display())))
            .transpose()?;
        Ok(Self(file.map(BufWriter::new)))
    }

    pub fn write(&mut self, outcome: &Outcome) -> anyhow::Result<()> {
        if let Some(out) = &mut self.0 {
            serde_json::to_writer(&mut *out, outcome)?;
            out.write_all(b"\n")?;
            // Line by line, so that even a killed run leaves every line so far.
            out.flush()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.0 {
            out.flush().context("writing the report")?;
        }
        Ok(())
    }
}

/// Counts by outcome and by error code.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub deleted: u64,
    /// Dry run only.
    pub would_send: u64,
    /// Dry run only.
    pub in_progress: u64,
    /// Of the succeeded and failed: found from an earlier run.
    pub resumed: u64,
    pub failed_by_code: BTreeMap<String, u64>,
    pub skipped_by_code: BTreeMap<String, u64>,
}

impl Tally {
    pub fn add(&mut self, outcome: &Outcome) {
        let code = || outcome.error.as_ref().map_or_else(|| "unknown".to_owned(), |e| e.code.clone());
        match outcome.status {
            Status::Succeeded => self.succeeded += 1,
            Status::Failed => {
                self.failed += 1;
                *self.failed_by_code.entry(code()).or_default() += 1;
            }
            Status::Skipped => {
                self.skipped += 1;
                *self.skipped_by_code.entry(code()).or_default() += 1;
            }
            Status::Deleted => self.deleted += 1,
            Status::WouldSend => self.would_send += 1,
            Status::InProgress => self.in_progress += 1,
        }
        let counted = matches!(outcome.status, Status::Succeeded | Status::Failed);
        self.resumed += u64::from(counted && outcome.resumed);
    }

    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.skipped + self.deleted + self.would_send + self.in_progress
    }

    /// Whether a run would end with every image registered (exit code 0):
    /// nothing failed, skipped or deleted.
    pub fn nothing_lost(&self) -> bool {
        self.failed + self.skipped + self.deleted == 0
    }

    /// The summary printed at the end.
    pub fn summary(&self, total: u64, collection: &str, elapsed: Duration, interrupted: bool) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.done() as f64 / secs } else { 0.0 };
        let mut out = format!(
            "{} of {total} files into collection {collection} in {secs:.1} s ({rate:.1} images/s)\n",
            self.done()
        );
        out += &format!("  succeeded     {:>7}", self.succeeded);
        if self.resumed > 0 {
            out += &format!("   ({} found from an earlier run)", self.resumed);
        }
        out += &format!("\n  failed        {:>7}   {}\n", self.failed, by_code(&self.failed_by_code));
        out += &format!("  skipped       {:>7}   {}\n", self.skipped, by_code(&self.skipped_by_code));
        if self.deleted > 0 {
            out += &format!(
                "  deleted       {:>7}   (deleted since; --resend-deleted registers them again)\n",
                self.deleted
            );
        }
        if interrupted || self.done() < total {
            out += &format!("  not finished  {:>7}   (interrupted; run again to resume)\n", total - self.done());
        }
        out
    }

    /// The summary a dry run prints after its listing.
    pub fn dry_run_summary(&self, total: u64, collection: &str, interrupted: bool) -> String {
        let mut out =
            format!("dry run: {} of {total} files for collection {collection}; nothing was sent\n", self.done());
        out += &format!("  would send    {:>7}\n", self.would_send);
        out += &format!("  registered    {:>7}   (by an earlier run)\n", self.succeeded);
        out +=
            &format!("  deleted       {:>7}   (deleted since; --resend-deleted registers them again)\n", self.deleted);
        out +=
            &format!("  in progress   {:>7}   (sent by an earlier run; a run would wait for them)\n", self.in_progress);
        out += &format!("  failed        {:>7}   {}\n", self.failed, by_code(&self.failed_by_code));
        out += &format!("  skipped       {:>7}   {}\n", self.skipped, by_code(&self.skipped_by_code));
        if interrupted || self.done() < total {
            out += &format!("  not looked at {:>7}   (interrupted)\n", total - self.done());
        }
        out
    }
}

/// `code n, code n` in code order.
fn by_code(codes: &BTreeMap<String, u64>) -> String {
    codes.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Status, code: Option<&str>, resumed: bool) -> Outcome {
        Outcome {
            path: "photos/Ann/1.jpg".into(),
            subject: "Ann".into(),
            status,
            job_id: None,
            face_id: None,
            error: code.map(|c| ReportError { code: c.into(), message: "m".into() }),
            resumed,
            dry_run: true,
        }
    }

    #[test]
    fn a_dry_run_line_names_the_file_and_what_a_run_would_do() {
        let line = |s, c, r| outcome(s, c, r).dry_run_line();
        assert_eq!(line(Status::WouldSend, None, false), "send photos/Ann/1.jpg");
        assert_eq!(line(Status::Succeeded, None, true), "skip photos/Ann/1.jpg  (already registered)");
        assert!(line(Status::Deleted, None, true).contains("--resend-deleted"));
        assert_eq!(
            line(Status::Skipped, Some("unsupported_media_type"), false),
            "skip photos/Ann/1.jpg  (unsupported_media_type)"
        );
        assert!(line(Status::Failed, Some("no_face"), true).ends_with("(failed in an earlier run: no_face)"));
        assert!(line(Status::Failed, Some("invalid_subject"), false).starts_with("fail "));
        assert!(line(Status::InProgress, None, true).starts_with("wait "));
    }

    #[test]
    fn only_a_dry_run_marks_its_lines_and_deleted_is_its_own_status() {
        let mut o = outcome(Status::Deleted, None, true);
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!((v["status"].as_str(), v["dry_run"].as_bool()), (Some("deleted"), Some(true)));
        o.dry_run = false;
        assert!(serde_json::to_value(&o).unwrap().get("dry_run").is_none(), "a real run's lines are unchanged");
        let mut tally = Tally::default();
        tally.add(&o);
        assert_eq!((tally.deleted, tally.succeeded, tally.done()), (1, 0, 1));
        assert!(!tally.nothing_lost(), "a deleted face is not registered: exit code 1");
    }
}

//! What happened to each input file (the JSONL report) and the summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::client::ErrorBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
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
        }
        self.resumed += u64::from(outcome.resumed);
    }

    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.skipped
    }

    /// The summary printed at the end.
    pub fn summary(&self, total: u64, collection: &str, elapsed: Duration, interrupted: bool) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.done() as f64 / secs } else { 0.0 };
        let by_code = |codes: &BTreeMap<String, u64>| {
            codes.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
        };
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
        if interrupted || self.done() < total {
            out += &format!("  not finished  {:>7}   (interrupted; run again to resume)\n", total - self.done());
        }
        out
    }
}

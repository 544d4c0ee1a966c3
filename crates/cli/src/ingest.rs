//! `facerec ingest`: every input file becomes one register job, at most
//! `--concurrency` at a time, each under an idempotency key derived from its
//! content, collection and subject, so a re-run finds what an earlier run did
//! instead of registering it twice.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use facerec_core::{CollectionName, ConsentRef, SubjectName};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::client::{ApiClient, ApiUnreachable, Job, Register, Submission};
use crate::inputs::{self, Input, Skip, image_type};
use crate::progress::Progress;
use crate::report::{Outcome, ReportError, ReportWriter, Status, Tally};
use crate::{Exit, IngestArgs};

/// Submissions per file when its job ends with an internal error (across
/// runs: each try has its own key).
const MAX_TRIES: u32 = 3;

/// Files larger than this are not read (the api's own limit is far lower).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

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

struct Run<'a> {
    client: ApiClient,
    collection: &'a str,
    consent: Option<&'a str>,
    lookups: Lookups,
}

/// Lookups that find nothing, in a row, after which files are sent without one.
const MISSES_BEFORE_SENDING_STRAIGHT: u32 = 32;

/// Whether to ask the api for a file's job before uploading the file. A
/// re-run finds its earlier jobs that way without sending a photo twice; a
/// first run would pay a request per file for nothing. So once
/// [`MISSES_BEFORE_SENDING_STRAIGHT`] lookups in a row have found nothing,
/// files are sent straight away. Nothing is registered twice either way: the
/// upload carries the idempotency key, and an api that answers with an
/// earlier job (`Idempotent-Replayed`) turns the lookups back on.
#[derive(Default)]
struct Lookups {
    misses_in_a_row: AtomicU32,
}

impl Lookups {
    fn worth_asking(&self) -> bool {
        self.misses_in_a_row.load(Ordering::Relaxed) < MISSES_BEFORE_SENDING_STRAIGHT
    }

    /// Records whether a file turned out to have an earlier job.
    fn found(&self, earlier_job: bool) {
        if earlier_job {
            self.misses_in_a_row.store(0, Ordering::Relaxed);
        } else {
            self.misses_in_a_row.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn ingest(args: IngestArgs, interrupt: impl Future<Output = ()>) -> anyhow::Result<Exit> {
    let collection = CollectionName::parse(&args.collection).context("--collection")?;
    if let Some(consent) = &args.consent {
        ConsentRef::parse(consent).context("--consent")?;
    }
    let inputs = match (&args.dir, &args.manifest) {
        (_, Some(manifest)) => inputs::from_manifest(manifest)?,
        (Some(dir), None) => inputs::from_folder(dir)?,
        (None, None) => bail!("give a folder or --manifest"),
    };
    if args.dry_run {
        return Ok(dry_run(inputs, collection.as_str()));
    }
    let connections = usize::from(args.concurrency);
    let client = ApiClient::new(&args.connection, connections, Duration::from_secs(args.connect_timeout))?;
    client.check().await?;
    let run =
        Run { client, collection: collection.as_str(), consent: args.consent.as_deref(), lookups: Lookups::default() };

    let total = inputs.len() as u64;
    let mut report = ReportWriter::create(args.report.as_deref())?;
    let mut tally = Tally::default();
    let mut progress = Progress::new(total, args.quiet, Duration::from_secs(args.progress_interval.max(1)));
    let started = Instant::now();
    let mut outcomes = futures::stream::iter(inputs).map(|input| process(&run, input)).buffer_unordered(connections);
    let mut interrupt = std::pin::pin!(interrupt);
    let (mut interrupted, mut fatal) = (false, None);
    loop {
        tokio::select! {
            biased;
            () = &mut interrupt => {
                interrupted = true;
                break;
            }
            next = outcomes.next() => match next {
                None => break,
                Some(Ok(outcome)) => {
                    tally.add(&outcome);
                    report.write(&outcome)?;
                    progress.update(&tally);
                }
                Some(Err(e)) => {
                    fatal = Some(e);
                    break;
                }
            },
        }
    }
    // Images still in flight are abandoned; their jobs, if sent, are found by key next time.
    drop(outcomes);
    progress.finish();
    report.finish()?;
    print!("{}", tally.summary(total, run.collection, started.elapsed(), interrupted || fatal.is_some()));
    if let Some(report) = &args.report {
        println!("report: {}", report.display());
    }
    if let Some(e) = fatal {
        if e.downcast_ref::<ApiUnreachable>().is_some() {
            eprintln!("error: {e:#}");
            return Ok(Exit::UsageOrConnection);
        }
        return Err(e);
    }
    let all = !interrupted && tally.succeeded == total;
    Ok(if all { Exit::AllRegistered } else { Exit::SomeNotRegistered })
}

/// Sends one file and waits for its job, or finds the job an earlier run sent.
/// Only a lost api ends the run; any other error fails this file alone.
async fn process(run: &Run<'_>, input: Input) -> anyhow::Result<Outcome> {
    let (path, subject) = (input.path.display().to_string(), input.subject.clone());
    match process_file(run, input).await {
        Err(e) if e.downcast_ref::<ApiUnreachable>().is_none() => {
            let error = Some(ReportError { code: "api_error".into(), message: format!("{e:#}") });
            Ok(Outcome { path, subject, status: Status::Failed, job_id: None, face_id: None, error, resumed: false })
        }
        other => other,
    }
}

async fn process_file(run: &Run<'_>, input: Input) -> anyhow::Result<Outcome> {
    let outcome = |status, error: Option<(&str, String)>| Outcome {
        path: input.path.display().to_string(),
        subject: input.subject.clone(),
        status,
        job_id: None,
        face_id: None,
        error: error.map(|(code, message)| ReportError { code: code.to_owned(), message }),
        resumed: false,
    };
    let skipped = |skip: Skip| outcome(Status::Skipped, Some((skip.code(), skip.message().to_owned())));
    if let Some(skip) = input.skip {
        return Ok(skipped(skip));
    }
    let bytes = match read_image(&input.path).await {
        Ok(bytes) => bytes,
        Err(ReadError::Skip(skip)) => return Ok(skipped(skip)),
        Err(ReadError::TooLarge(n)) => {
            let message = format!("the file is {n} bytes, over {MAX_FILE_BYTES}");
            return Ok(outcome(Status::Failed, Some(("payload_too_large", message))));
        }
    };
    let content_type = image_type(&bytes).expect("read_image checked the type");
    if let Err(e) = SubjectName::parse(&input.subject) {
        return Ok(outcome(Status::Failed, Some(("invalid_subject", e.to_string()))));
    }
    let key = idempotency_key(run.collection, &input.subject, &bytes);
    // Each try has its own key: a retried file never meets its earlier job's.
    let keys: Vec<String> = (1..=MAX_TRIES).map(|n| if n == 1 { key.clone() } else { format!("{key}-r{n}") }).collect();
    let file_name = input.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut register = Register {
        bytes,
        file_name,
        content_type,
        subject: &input.subject,
        collection: run.collection,
        consent: run.consent,
        idempotency_key: &keys[0],
    };
    for (attempt, key) in (1..).zip(&keys) {
        register.idempotency_key = key;
        let earlier = if run.lookups.worth_asking() { run.client.job_by_key(key).await? } else { None };
        let (job, resumed) = match earlier {
            Some(job) => (job, true),
            None => match run.client.register(&register).await? {
                Submission::Accepted { job, replayed: false } => (job, false),
                // The answer names the earlier job, not its result: read it.
                Submission::Accepted { job, replayed: true } => {
                    (run.client.job_when_ended(&job.job_id, LONG_POLL).await?, true)
                }
                Submission::Refused(error) => {
                    return Ok(Outcome { error: Some(error.into()), ..outcome(Status::Failed, None) });
                }
            },
        };
        if attempt == 1 {
            run.lookups.found(resumed);
        }
        let job = wait(&run.client, job).await?;
        let done = Outcome { job_id: Some(job.job_id.clone()), resumed, ..outcome(Status::Succeeded, None) };
        let error = job.error.clone().map(ReportError::from);
        match job.status.as_str() {
            "succeeded" => return Ok(Outcome { face_id: job.face_id(), ..done }),
            "failed" if attempt == MAX_TRIES || !retryable(error.as_ref()) => {
                return Ok(Outcome { status: Status::Failed, error, ..done });
            }
            // Canceled by a user, or by deleting the subject: never sent again.
            "canceled" => {
                let error = ReportError { code: "canceled".into(), message: "the job was canceled".into() };
                return Ok(Outcome { status: Status::Failed, error: Some(error), ..done });
            }
            _ => continue,
        }
    }
    unreachable!("the last try always returns")
}

/// A job that failed for our side's reasons may succeed if sent again.
fn retryable(error: Option<&ReportError>) -> bool {
    error.is_none_or(|e| e.code == "internal_error")
}

/// How long one request waits for a job to end.
const LONG_POLL: Duration = Duration::from_secs(10);

/// Asks the api to answer when the job ends (`wait_ms`), again until it has:
/// the next file starts the moment a job ends. An api that answers at once
/// instead (an older one) is polled, more slowly as the job takes longer.
async fn wait(client: &ApiClient, mut job: Job) -> anyhow::Result<Job> {
    let mut interval = Duration::from_millis(50);
    while !job.is_terminal() {
        let asked = std::time::Instant::now();
        job = client.job_when_ended(&job.job_id, LONG_POLL).await?;
        if !job.is_terminal() && asked.elapsed() < LONG_POLL / 2 {
            tokio::time::sleep(interval).await;
            interval = (interval * 3 / 2).min(Duration::from_secs(1));
        }
    }
    Ok(job)
}

enum ReadError {
    Skip(Skip),
    TooLarge(u64),
}

async fn read_image(path: &Path) -> Result<Vec<u8>, ReadError> {
    let len = tokio::fs::metadata(path).await.map_err(|_| ReadError::Skip(Skip::Unreadable))?.len();
    if len > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(len));
    }
    let bytes = tokio::fs::read(path).await.map_err(|_| ReadError::Skip(Skip::Unreadable))?;
    image_type(&bytes).ok_or(ReadError::Skip(Skip::UnsupportedMediaType))?;
    Ok(bytes)
}

/// Prints what a run would send and what it would skip; sends nothing.
fn dry_run(inputs: Vec<Input>, collection: &str) -> Exit {
    let mut subjects = BTreeSet::new();
    let (mut images, mut skipped) = (0u64, Vec::new());
    for input in inputs {
        let skip = input.skip.or_else(|| {
            let mut head = [0u8; 16];
            let n = std::fs::File::open(&input.path).and_then(|mut f| f.read(&mut head));
            match n {
                Ok(n) => image_type(&head[..n]).is_none().then_some(Skip::UnsupportedMediaType),
                Err(_) => Some(Skip::Unreadable),
            }
        });
        match skip {
            Some(skip) => skipped.push((input.path, skip)),
            None => {
                images += 1;
                subjects.insert(input.subject);
            }
        }
    }
    println!("dry run: would register {images} images of {} subjects into collection {collection}", subjects.len());
    println!("  would skip {} files", skipped.len());
    for (path, skip) in &skipped {
        println!("    {} ({})", path.display(), skip.code());
    }
    if skipped.is_empty() { Exit::AllRegistered } else { Exit::SomeNotRegistered }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_stop_after_a_run_of_misses_and_resume_on_a_find() {
        let lookups = Lookups::default();
        for _ in 1..MISSES_BEFORE_SENDING_STRAIGHT {
            lookups.found(false);
        }
        assert!(lookups.worth_asking(), "one miss short of the limit");
        lookups.found(true);
        for _ in 0..MISSES_BEFORE_SENDING_STRAIGHT {
            assert!(lookups.worth_asking());
            lookups.found(false);
        }
        assert!(!lookups.worth_asking(), "a first run sends straight away");
        lookups.found(true);
        assert!(lookups.worth_asking(), "an upload answered with an earlier job turns lookups back on");
    }

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
}

//! `facerec ingest`: every input file becomes one register job, at most
//! `--concurrency` at a time, each under an idempotency key derived from its
//! content, collection and subject, so a re-run finds what an earlier run did
//! instead of registering it twice. `--dry-run` takes the same path up to
//! the upload: it asks the api for each file's earlier jobs as a real run
//! does, so what it says a run would send is what a run sends.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use facerec_core::{CollectionName, ConsentRef, JobId, JobView, SubjectName};
use futures::StreamExt;
use futures::future::Either;

use crate::client::{ApiClient, ApiUnreachable, FaceState, Register, Submission};
use crate::inputs::{self, Input, Skip, image_type};
use crate::progress::Progress;
use crate::report::{Outcome, ReportError, ReportWriter, Status, Tally};
use crate::resume::{Ended, Keys, judge};
use crate::{Exit, IngestArgs};

/// Files larger than this are not read (the api's own limit is far lower).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Times one file may be registered again after its face was deleted; a
/// bound on the lookups one file costs, far above any real use.
const MAX_RESENDS: u32 = 16;

struct Run<'a> {
    client: ApiClient,
    collection: &'a str,
    consent: Option<&'a str>,
    lookups: Lookups,
    /// Look everything up, send nothing, wait for nothing.
    dry_run: bool,
    /// Register again a file whose earlier face was deleted.
    resend_deleted: bool,
}

/// Lookups that find nothing, in a row, after which files are sent without one.
const MISSES_BEFORE_SENDING_STRAIGHT: u32 = 32;

/// Whether to ask the api for a file's job before uploading the file. A
/// re-run finds its earlier jobs that way without sending a photo twice; a
/// first run would pay a request per file for nothing. So once
/// [`MISSES_BEFORE_SENDING_STRAIGHT`] lookups in a row have found nothing,
/// files are sent straight away. Nothing is registered twice either way: the
/// upload carries the idempotency key, and an api that answers with an
/// earlier job (`Idempotent-Replayed`) turns the lookups back on. A dry run
/// always asks: it uploads nothing that could be answered with a job.
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
    let connections = usize::from(args.concurrency);
    let client = ApiClient::new(&args.connection, connections, Duration::from_secs(args.connect_timeout))?;
    client.check().await?;
    let run = Run {
        client,
        collection: collection.as_str(),
        consent: args.consent.as_deref(),
        lookups: Lookups::default(),
        dry_run: args.dry_run,
        resend_deleted: args.resend_deleted,
    };

    let total = inputs.len() as u64;
    let mut report = ReportWriter::create(args.report.as_deref())?;
    let mut tally = Tally::default();
    // A dry run lists every file on stdout instead.
    let quiet = args.quiet || run.dry_run;
    let mut progress = Progress::new(total, quiet, Duration::from_secs(args.progress_interval.max(1)));
    let started = Instant::now();
    let each = futures::stream::iter(inputs).map(|input| process(&run, input));
    // The dry run's listing keeps the input order; a run takes whichever file ends first.
    let outcomes = if run.dry_run {
        Either::Left(each.buffered(connections))
    } else {
        Either::Right(each.buffer_unordered(connections))
    };
    let mut outcomes = Box::pin(outcomes);
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
                    if run.dry_run {
                        println!("{}", outcome.dry_run_line());
                    }
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
    let stopped = interrupted || fatal.is_some();
    if run.dry_run {
        print!("{}", tally.dry_run_summary(total, run.collection, stopped));
    } else {
        print!("{}", tally.summary(total, run.collection, started.elapsed(), stopped));
    }
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
    // A dry run answers as the run it describes would, counting the files it
    // would send (or wait for) as registered.
    let all = !interrupted && tally.done() == total && tally.nothing_lost();
    Ok(if all { Exit::AllRegistered } else { Exit::SomeNotRegistered })
}

/// Sends one file and waits for its job, or finds the job an earlier run sent.
/// Only a lost api ends the run; any other error fails this file alone.
async fn process(run: &Run<'_>, input: Input) -> anyhow::Result<Outcome> {
    let (path, subject) = (input.path.display().to_string(), input.subject.clone());
    match process_file(run, input).await {
        Err(e) if e.downcast_ref::<ApiUnreachable>().is_none() => {
            let error = Some(ReportError { code: "api_error".into(), message: format!("{e:#}") });
            Ok(Outcome {
                path,
                subject,
                status: Status::Failed,
                job_id: None,
                face_id: None,
                error,
                resumed: false,
                dry_run: run.dry_run,
            })
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
        dry_run: run.dry_run,
    };
    let skipped = |skip: Skip| outcome(Status::Skipped, Some((skip.code(), skip.message().to_owned())));
    if let Some(skip) = input.skip {
        return Ok(skipped(skip));
    }
    let bytes = match read_image(&input.path).await {
        Ok(bytes) => bytes,
        Err(ReadError::Skip(skip)) => return Ok(skipped(skip)),
        Err(ReadError::Failed(refusal)) => {
            return Ok(outcome(Status::Failed, Some((refusal.code, refusal.message.to_owned()))));
        }
        Err(ReadError::TooLarge(n)) => {
            let message = format!("the file is {n} bytes, over {MAX_FILE_BYTES}");
            return Ok(outcome(Status::Failed, Some(("payload_too_large", message))));
        }
    };
    let content_type = image_type(&bytes).expect("read_image checked the type");
    if let Err(e) = SubjectName::parse(&input.subject) {
        return Ok(outcome(Status::Failed, Some(("invalid_subject", e.to_string()))));
    }
    let keys = Keys::new(run.collection, &input.subject, &bytes);
    let file_name = input.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut register = Register {
        bytes,
        file_name,
        content_type,
        subject: &input.subject,
        collection: run.collection,
        consent: run.consent,
        idempotency_key: String::new(),
    };
    // The face this file's keys follow, once an earlier face of it was deleted.
    let mut after: Option<String> = None;
    // The job whose face was deleted, and that face, while no later job is found.
    let mut deleted: Option<(JobId, String)> = None;
    let (mut attempt, mut resends) = (1, 0);
    loop {
        register.idempotency_key = keys.key(after.as_deref(), attempt);
        let first = after.is_none() && attempt == 1;
        let ask = run.dry_run || !first || run.lookups.worth_asking();
        let earlier = if ask { run.client.job_by_key(&register.idempotency_key).await? } else { None };
        // The job to follow, and its view when one was read (a job just
        // submitted is queued: it is read when waited for).
        let (job_id, seen, resumed) = match earlier {
            Some(job) => (job.job_id, Some(job), true),
            None => match (&deleted, run.resend_deleted, run.dry_run) {
                (Some((job_id, face_id)), false, _) => {
                    let (job_id, face_id) = (Some(job_id.to_string()), Some(face_id.clone()));
                    return Ok(Outcome { job_id, face_id, resumed: true, ..outcome(Status::Deleted, None) });
                }
                (_, _, true) => return Ok(outcome(Status::WouldSend, None)),
                _ => match run.client.register(&register).await? {
                    Submission::Accepted { job_id, replayed: false } => (job_id, None, false),
                    // The answer names the earlier job, not its result: read it.
                    Submission::Accepted { job_id, replayed: true } => {
                        (job_id, Some(run.client.job_when_ended(job_id, LONG_POLL).await?), true)
                    }
                    Submission::Refused(error) => {
                        return Ok(Outcome { error: Some(error.into()), ..outcome(Status::Failed, None) });
                    }
                },
            },
        };
        if first {
            run.lookups.found(resumed);
        }
        let done = Outcome { job_id: Some(job_id.to_string()), resumed, ..outcome(Status::Succeeded, None) };
        if run.dry_run && !seen.as_ref().is_some_and(|job| job.status.is_terminal()) {
            return Ok(Outcome { status: Status::InProgress, ..done });
        }
        let job = wait(&run.client, job_id, seen).await?;
        let ended = judge(&job, attempt);
        if let Ended::Registered { face_id: Some(face_id) } = &ended
            && resumed
            && run.client.face_state(face_id).await? == FaceState::Deleted
        {
            // Deleted on purpose since: follow the keys a resend of it would have used.
            resends += 1;
            if resends > MAX_RESENDS {
                bail!("registered again more than {MAX_RESENDS} times after its face was deleted");
            }
            deleted = Some((job.job_id, face_id.clone()));
            after = Some(face_id.clone());
            attempt = 1;
            continue;
        }
        match ended {
            Ended::Registered { face_id } => return Ok(Outcome { face_id, ..done }),
            Ended::Failed(error) => return Ok(Outcome { status: Status::Failed, error, ..done }),
            Ended::Canceled => {
                let error = ReportError { code: "canceled".into(), message: "the job was canceled".into() };
                return Ok(Outcome { status: Status::Failed, error: Some(error), ..done });
            }
            Ended::Retry => attempt += 1,
        }
    }
}

/// How long one request waits for a job to end.
const LONG_POLL: Duration = Duration::from_secs(10);

/// The job `id` once it has ended (`seen`, when that already has): asks the
/// api to answer when the job ends (`wait_ms`), again until it has, so the
/// next file starts the moment a job ends. An api that answers at once
/// instead (an older one) is polled, more slowly as the job takes longer.
async fn wait(client: &ApiClient, id: JobId, mut seen: Option<JobView>) -> anyhow::Result<JobView> {
    let mut interval = Duration::from_millis(50);
    loop {
        if let Some(job) = seen.take_if(|job| job.status.is_terminal()) {
            return Ok(job);
        }
        let asked = std::time::Instant::now();
        let job = client.job_when_ended(id, LONG_POLL).await?;
        if !job.status.is_terminal() && asked.elapsed() < LONG_POLL / 2 {
            tokio::time::sleep(interval).await;
            interval = (interval * 3 / 2).min(Duration::from_secs(1));
        }
        seen = Some(job);
    }
}

enum ReadError {
    Skip(Skip),
    Failed(inputs::Refusal),
    TooLarge(u64),
}

async fn read_image(path: &Path) -> Result<Vec<u8>, ReadError> {
    let len = tokio::fs::metadata(path).await.map_err(|_| ReadError::Skip(Skip::Unreadable))?.len();
    if len > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(len));
    }
    let bytes = tokio::fs::read(path).await.map_err(|_| ReadError::Skip(Skip::Unreadable))?;
    match inputs::check_bytes(&bytes) {
        Ok(_) => Ok(bytes),
        Err(inputs::NotSent::Skipped(skip)) => Err(ReadError::Skip(skip)),
        Err(inputs::NotSent::Failed(refusal)) => Err(ReadError::Failed(refusal)),
    }
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
}

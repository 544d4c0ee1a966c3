use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use facerec_vision::{FacePipeline, PipelineConfig};
use tokio::sync::oneshot;

/// Inference handed to a pipeline thread.
type Work = Box<dyn FnOnce(&mut FacePipeline) + Send>;

/// A fixed set of loaded pipelines, each owned by a thread of its own for the
/// life of the pool; a job hands its inference to whichever is free (with
/// several idle, the one that has waited longest).
///
/// Not tokio's blocking pool: it woke whichever of its idle threads had
/// waited longest, so even a worker with one pipeline ran consecutive
/// inferences on two or three threads in turn, each colder (its stack, its
/// malloc arena, its caches) than the one that ran the last. Here a pipeline
/// always runs on the same thread, as in the ceiling that `make bench-ingest`
/// measures.
#[derive(Clone)]
pub struct PipelinePool {
    work: mpsc::Sender<Work>,
    model_id: Arc<str>,
    detector_id: Arc<str>,
    embedder_id: Arc<str>,
}

/// Why inference handed to the pool gave no result.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The inference panicked; its pipeline thread lives on.
    #[error("inference panicked: {0}")]
    Panicked(String),
    /// No pipeline thread is left to run it.
    #[error("the pipeline threads have stopped")]
    Stopped,
}

impl PipelinePool {
    /// Loads `size` pipelines and starts a thread for each. The threads end
    /// once every clone of the pool is dropped.
    pub fn load(config: &PipelineConfig, size: usize) -> anyhow::Result<Self> {
        let pipelines = FacePipeline::load_many(config, size)?;
        let model_id = Arc::from(pipelines[0].model_id());
        let detector_id = Arc::from(pipelines[0].detector_id());
        let embedder_id = Arc::from(pipelines[0].embedder_id());
        let (work, queue) = mpsc::channel::<Work>();
        let queue = Arc::new(Mutex::new(queue));
        for (i, pipeline) in pipelines.into_iter().enumerate() {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("pipeline-{i}"))
                .spawn(move || serve(pipeline, &queue))
                .context("starting a pipeline thread")?;
        }
        Ok(Self { work, model_id, detector_id, embedder_id })
    }

    /// `detector+embedder`, as reported in results.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn detector_id(&self) -> &str {
        &self.detector_id
    }

    pub fn embedder_id(&self) -> &str {
        &self.embedder_id
    }

    /// Runs `f` with a pipeline on its thread, in the caller's tracing span;
    /// calls wait their turn in order. Dropping the future does not stop `f`.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut FacePipeline) -> T + Send + 'static,
    ) -> Result<T, PipelineError> {
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let work: Work = Box::new(move |pipeline| {
            let _entered = span.enter();
            // The caller may be gone (a shutdown deadline): nobody to tell.
            let _ = done.send(catch_unwind(AssertUnwindSafe(|| f(pipeline))));
        });
        self.work.send(work).map_err(|_| PipelineError::Stopped)?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(PipelineError::Panicked(panic_message(panic.as_ref()))),
            Err(_) => Err(PipelineError::Stopped),
        }
    }
}

/// A pipeline thread: runs the work handed to the pool, one at a time, until
/// the pool is dropped.
fn serve(mut pipeline: FacePipeline, queue: &Mutex<mpsc::Receiver<Work>>) {
    loop {
        // Held while waiting: the other threads queue on the lock, not the channel.
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match next {
            Ok(work) => work(&mut pipeline),
            Err(mpsc::RecvError) => return,
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

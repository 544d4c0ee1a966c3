use std::sync::{Arc, Mutex};

use facerec_vision::{FacePipeline, PipelineConfig, VisionError};
use tokio::sync::Semaphore;

/// A fixed set of loaded pipelines; a job borrows one for its inference.
#[derive(Clone)]
pub struct PipelinePool {
    idle: Arc<Mutex<Vec<FacePipeline>>>,
    available: Arc<Semaphore>,
    model_id: Arc<str>,
    detector_id: Arc<str>,
    embedder_id: Arc<str>,
}

impl PipelinePool {
    pub fn load(config: &PipelineConfig, size: usize) -> Result<Self, VisionError> {
        let pipelines = FacePipeline::load_many(config, size)?;
        let model_id = Arc::from(pipelines[0].model_id());
        let detector_id = Arc::from(pipelines[0].detector_id());
        let embedder_id = Arc::from(pipelines[0].embedder_id());
        Ok(Self {
            detector_id,
            embedder_id,
            available: Arc::new(Semaphore::new(pipelines.len())),
            idle: Arc::new(Mutex::new(pipelines)),
            model_id,
        })
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

    /// Runs `f` with a pipeline on a blocking thread, in the caller's tracing span.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut FacePipeline) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let _permit = self.available.acquire().await.expect("pool semaphore is never closed");
        let idle = self.idle.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let pipeline =
                idle.lock().unwrap_or_else(|e| e.into_inner()).pop().expect("a permit means an idle pipeline");
            // Puts the pipeline back when dropped, even if `f` panics.
            struct Return<'a>(&'a Mutex<Vec<FacePipeline>>, Option<FacePipeline>);
            impl Drop for Return<'_> {
                fn drop(&mut self) {
                    if let Some(p) = self.1.take() {
                        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                    }
                }
            }
            let mut guard = Return(&idle, Some(pipeline));
            f(guard.1.as_mut().expect("set just above"))
        })
        .await
    }
}

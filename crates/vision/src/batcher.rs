//! Embedding across jobs: one embedder shared by every pipeline of a process,
//! on a thread of its own, so that faces from concurrent jobs go through the
//! model in one run. A batch starts with the first crops to arrive and takes
//! more for at most `max_wait`, up to `max_batch` crops; an accelerator needs
//! such batches to be busy, a CPU does not (see docs/benchmarks.md, "Speed").

use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::{Embedder, FaceTemplate, VisionError};

/// One pipeline's crops and where their embeddings go.
struct Request {
    crops: Vec<RgbImage>,
    reply: mpsc::Sender<Result<Vec<Vec<f32>>, String>>,
}

/// A pipeline's handle on the shared embedder; cloned for every pipeline.
#[derive(Clone)]
pub struct SharedEmbedder {
    requests: mpsc::Sender<Request>,
    model_id: String,
    template: FaceTemplate,
}

impl SharedEmbedder {
    /// Moves `embedder` to a thread of its own, which embeds whatever crops
    /// arrive within `max_wait` of the first, up to `max_batch`, in one run.
    pub fn start(mut embedder: Box<dyn Embedder>, max_batch: usize, max_wait: Duration) -> Self {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (model_id, template) = (embedder.model_id().to_owned(), *embedder.template());
        std::thread::Builder::new()
            .name("facerec-embedder".into())
            .spawn(move || {
                // Ends when every handle is dropped.
                while let Ok(first) = inbox.recv() {
                    let mut batch = vec![first];
                    let deadline = Instant::now() + max_wait;
                    let mut crops = batch[0].crops.len();
                    while crops < max_batch {
                        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
                        match inbox.recv_timeout(left) {
                            Ok(more) => {
                                crops += more.crops.len();
                                batch.push(more);
                            }
                            Err(_) => break,
                        }
                    }
                    run_batch(embedder.as_mut(), batch);
                }
            })
            .expect("cannot start the embedder thread");
        Self { requests, model_id, template }
    }
}

/// One model run for every request's crops; each request gets its own share
/// back (or the error, as text, since one error cannot be handed to many).
fn run_batch(embedder: &mut dyn Embedder, batch: Vec<Request>) {
    let (replies, crops): (Vec<_>, Vec<_>) = batch.into_iter().map(|r| ((r.reply, r.crops.len()), r.crops)).unzip();
    let all: Vec<RgbImage> = crops.into_iter().flatten().collect();
    match embedder.embed_batch(&all) {
        Ok(embeddings) => {
            let mut rest = embeddings.into_iter();
            for (reply, n) in replies {
                let _ = reply.send(Ok(rest.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            let message = facerec_core::error_chain(&e);
            for (reply, _) in replies {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}

impl Embedder for SharedEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn template(&self) -> &FaceTemplate {
        &self.template
    }

    fn embed(&mut self, aligned: &RgbImage) -> Result<Vec<f32>, VisionError> {
        let mut one = self.embed_batch(std::slice::from_ref(aligned))?;
        one.pop().ok_or_else(|| VisionError::SharedEmbedder("no embedding came back".into()))
    }

    fn embed_batch(&mut self, aligned: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
        if aligned.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = mpsc::channel();
        self.requests
            .send(Request { crops: aligned.to_vec(), reply })
            .map_err(|_| VisionError::SharedEmbedder("the embedder thread has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| VisionError::SharedEmbedder("the embedder thread has stopped".into()))?
            .map_err(VisionError::SharedEmbedder)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::SFACE_TEMPLATE;

    /// Embeds a crop as [its first red value]; records the size of every run.
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl Embedder for Recorder {
        fn model_id(&self) -> &str {
            "recorder"
        }
        fn template(&self) -> &FaceTemplate {
            &SFACE_TEMPLATE
        }
        fn embed(&mut self, crop: &RgbImage) -> Result<Vec<f32>, VisionError> {
            Ok(vec![f32::from(crop.get_pixel(0, 0)[0])])
        }
        fn embed_batch(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, VisionError> {
            self.0.lock().unwrap().push(crops.len());
            crops.iter().map(|c| self.embed(c)).collect()
        }
    }

    fn crop(v: u8) -> RgbImage {
        RgbImage::from_pixel(2, 2, image::Rgb([v, 0, 0]))
    }

    #[test]
    fn concurrent_callers_share_runs_and_each_gets_its_own_embeddings() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let shared = SharedEmbedder::start(Box::new(Recorder(runs.clone())), 64, Duration::from_millis(200));
        std::thread::scope(|s| {
            for caller in 0..4u8 {
                let mut handle = shared.clone();
                s.spawn(move || {
                    let crops: Vec<_> = (0..3).map(|i| crop(caller * 10 + i)).collect();
                    let got = handle.embed_batch(&crops).unwrap();
                    let want: Vec<Vec<f32>> = (0..3).map(|i| vec![f32::from(caller * 10 + i)]).collect();
                    assert_eq!(got, want, "caller {caller}");
                });
            }
        });
        let runs = runs.lock().unwrap();
        assert_eq!(runs.iter().sum::<usize>(), 12);
        assert!(runs.len() < 4, "four callers within the wait should share runs: {runs:?}");
    }

    #[test]
    fn a_batch_never_exceeds_its_size_and_a_lone_caller_waits_at_most_the_wait() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let mut shared = SharedEmbedder::start(Box::new(Recorder(runs.clone())), 2, Duration::from_secs(30));
        let started = Instant::now();
        // Two crops fill a batch: no waiting for more.
        assert_eq!(shared.embed_batch(&[crop(1), crop(2)]).unwrap().len(), 2);
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut quick = SharedEmbedder::start(Box::new(Recorder(runs.clone())), 8, Duration::from_millis(5));
        assert_eq!(quick.embed(&crop(7)).unwrap(), vec![7.0]);
        assert_eq!(*runs.lock().unwrap(), [2, 1]);
    }
}

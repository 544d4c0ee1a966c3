//! Register, recognize and embed: what each does with the photo and what it stores.
//! Vision work runs on a pipeline thread; database work back on the runtime.

use facerec_core::{
    EmbedParams, EmbedResult, EmbeddedFace, FaceInfo, FaceMatch, JobErrorCode, RecognizeParams, RecognizeResult,
    RecognizedFace, RegisterParams, RegisterResult, SkipReason, SkippedFace,
};
use facerec_store::{Claim, NewFace, RegisterOutcome};
use facerec_telemetry::Stage;
use facerec_telemetry::metrics::names;
use facerec_vision::{Detection, FacePipeline, decode_image, measure_quality};
use image::RgbImage;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use uuid::Uuid;

use crate::context::JobContext;
use crate::failure::Failure;

/// A detected face, aligned and measured, not yet embedded.
pub(crate) struct Candidate {
    pub info: FaceInfo,
    pub crop: RgbImage,
}

fn candidate(pipeline: &FacePipeline, image: &RgbImage, d: Detection) -> Candidate {
    let crop = pipeline.align(image, &d);
    let quality = measure_quality(image, &d, &crop);
    Candidate { info: FaceInfo { bbox: d.bbox, detection_score: d.score, landmarks: d.landmarks, quality }, crop }
}

/// Decodes and detects on a pipeline thread (faces largest first), then hands
/// every face, aligned and measured, to `f` on the same thread. Each stage is
/// a span and a `facerec_stage_duration_seconds` observation.
pub(crate) async fn with_faces<T: Send + 'static>(
    ctx: &JobContext,
    kind: facerec_core::JobKind,
    input: Vec<u8>,
    f: impl FnOnce(&mut FacePipeline, Vec<Candidate>) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let limits = ctx.settings.decode_limits();
    ctx.pool
        .run(move |pipeline| {
            let image = Stage::Decode.run(|| decode_image(&input, limits))?;
            let faces = Stage::Detect.run(|| pipeline.detect(&image))?;
            metrics::histogram!(names::FACES_PER_IMAGE, "kind" => kind.as_str()).record(faces.len() as f64);
            let candidates = Stage::Align.run(|| faces.into_iter().map(|d| candidate(pipeline, &image, d)).collect());
            f(pipeline, candidates)
        })
        .await
        .map_err(|e| Failure::Transient(Box::new(e)))?
}

/// Embeds one aligned face (the `embed` stage).
pub(crate) fn embed_one(pipeline: &mut FacePipeline, crop: &RgbImage) -> Result<Vec<f32>, Failure> {
    metrics::histogram!(names::EMBED_BATCH_SIZE).record(1.0);
    Ok(Stage::Embed.run(|| pipeline.embed_aligned(crop))?)
}

/// Embeds every face of a photo in as few model runs as the embedder allows (the `embed` stage).
fn embed_all(pipeline: &mut FacePipeline, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, Failure> {
    if crops.is_empty() {
        return Ok(Vec::new());
    }
    metrics::histogram!(names::EMBED_BATCH_SIZE).record(crops.len() as f64);
    Ok(Stage::Embed.run(|| pipeline.embed_aligned_batch(crops))?)
}

pub(crate) fn to_json(result: &impl Serialize) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(result).map_err(|e| Failure::Transient(Box::new(e)))
}

/// Register: exactly one usable face, which must pass every quality gate.
/// Faces below the size gate do not count (a stranger far in the background).
pub(crate) async fn register(
    ctx: &JobContext,
    claim: &Claim,
    params: RegisterParams,
    input: Vec<u8>,
) -> Result<bool, Failure> {
    let gates = ctx.settings.quality_gates();
    let source_sha256 = Sha256::digest(&input).to_vec();
    let (face, embedding) = with_faces(ctx, facerec_core::JobKind::Register, input, move |pipeline, faces| {
        if faces.is_empty() {
            return Err(Failure::Permanent(JobErrorCode::NoFace, "no face was found in the image".into()));
        }
        let (usable, small): (Vec<Candidate>, Vec<Candidate>) =
            faces.into_iter().partition(|c| gates.too_small(&c.info.quality).is_none());
        let face = match <[Candidate; 1]>::try_from(usable) {
            Ok([face]) => face,
            Err(usable) if usable.is_empty() => {
                let issue = gates.too_small(&small[0].info.quality).expect("every face failed the size gate");
                return Err(Failure::Permanent(issue.code, issue.message));
            }
            Err(usable) => {
                return Err(Failure::Permanent(
                    JobErrorCode::MultipleFaces,
                    format!("{} faces were found; register needs a photo with exactly one", usable.len()),
                ));
            }
        };
        gates
            .check(&face.info.quality, face.info.detection_score)
            .map_err(|i| Failure::Permanent(i.code, i.message))?;
        let embedding = embed_one(pipeline, &face.crop)?;
        Ok((face.info, embedding))
    })
    .await?;
    let new_face = NewFace {
        id: Uuid::now_v7(),
        subject: params.subject.clone(),
        collection: params.collection.clone(),
        detector: ctx.pool.detector_id().to_owned(),
        embedder: ctx.pool.embedder_id().to_owned(),
        embedding,
        bbox: face.bbox,
        detection_score: face.detection_score,
        landmarks: face.landmarks,
        quality: face.quality,
        consent: params.consent.clone().map(|c| (c, claim.job.created_at)),
        source_sha256: Some(source_sha256),
    };
    let result = RegisterResult {
        subject: params.subject.as_str().to_owned(),
        collection: params.collection.as_str().to_owned(),
        face_id: new_face.id,
        face,
        model: ctx.pool.model_id().to_owned(),
        already_registered: false,
    };
    match Stage::Store.time(ctx.store.complete_register(claim, &new_face, &to_json(&result)?)).await? {
        RegisterOutcome::Stored | RegisterOutcome::AlreadyStored(_) => Ok(true),
        RegisterOutcome::ClaimLost => Ok(false),
        RegisterOutcome::EmbedderMismatch(bound) => Err(Failure::Permanent(
            JobErrorCode::EmbedderMismatch,
            format!(
                "collection {} holds faces of embedder {bound}; this worker embeds with {}",
                params.collection.as_str(),
                new_face.embedder
            ),
        )),
    }
}

/// Recognize: every face, largest first, up to `max_faces`; faces below the
/// size gate and beyond `max_faces` are listed as skipped.
pub(crate) async fn recognize(
    ctx: &JobContext,
    claim: &Claim,
    params: RecognizeParams,
    input: Vec<u8>,
) -> Result<bool, Failure> {
    let gates = ctx.settings.recognize_gates();
    let max_faces = params.max_faces.get();
    let (embedded, skipped) = with_faces(ctx, facerec_core::JobKind::Recognize, input, move |pipeline, faces| {
        let (mut crops, mut infos, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for face in faces {
            let skip = |reason, message| SkippedFace {
                bbox: face.info.bbox,
                detection_score: face.info.detection_score,
                reason,
                message,
            };
            if let Some(issue) = gates.too_small(&face.info.quality) {
                skipped.push(skip(SkipReason::FaceTooSmall, issue.message));
            } else if crops.len() == max_faces {
                skipped
                    .push(skip(SkipReason::OverMaxFaces, format!("only the {max_faces} largest faces are searched")));
            } else {
                crops.push(face.crop);
                infos.push(face.info);
            }
        }
        // Every face of the photo in one embedder run.
        let embedded: Vec<_> = embed_all(pipeline, &crops)?.into_iter().zip(infos).collect();
        Ok((embedded, skipped))
    })
    .await?;
    let threshold = params.threshold.get();
    let search = ctx.settings.search();
    let mut faces = Vec::with_capacity(embedded.len());
    let searching = Stage::Search.span();
    let search_started = std::time::Instant::now();
    for (embedding, info) in embedded {
        let hits = ctx.store.search_subjects(
            &params.collection,
            ctx.pool.embedder_id(),
            &embedding,
            params.top_k.get(),
            search,
        );
        let matches = hits.instrument(searching.clone()).await?.into_iter().map(FaceMatch::from).collect();
        faces.push(RecognizedFace::new(info, matches, threshold));
    }
    if !faces.is_empty() {
        Stage::Search.record(search_started);
    }
    drop(searching);
    // Checked after the search: a collection deleted since the submission (or
    // while searching) fails the job rather than answer "nobody known". A
    // search that matched someone read faces, so the collection was there.
    let found_someone = faces.iter().any(|f| !f.matches.is_empty());
    if !found_someone && !ctx.store.collection_exists(&params.collection).await? {
        return Err(Failure::collection_deleted(&params.collection));
    }
    let result = RecognizeResult { faces, skipped, threshold, model: ctx.pool.model_id().to_owned() };
    Ok(Stage::Store.time(ctx.store.succeed_job(claim, &to_json(&result)?)).await?)
}

/// Embed: the embeddings themselves, largest face first, up to `max_faces`.
pub(crate) async fn embed(
    ctx: &JobContext,
    claim: &Claim,
    params: EmbedParams,
    input: Vec<u8>,
) -> Result<bool, Failure> {
    let max_faces = params.max_faces.get();
    let faces = with_faces(ctx, facerec_core::JobKind::Embed, input, move |pipeline, faces| {
        let (crops, infos): (Vec<_>, Vec<_>) = faces.into_iter().take(max_faces).map(|c| (c.crop, c.info)).unzip();
        // Every face of the photo in one embedder run.
        let embeddings = embed_all(pipeline, &crops)?;
        Ok(embeddings.into_iter().zip(infos).map(|(embedding, face)| EmbeddedFace { embedding, face }).collect())
    })
    .await?;
    let result = EmbedResult { model: ctx.pool.model_id().to_owned(), faces };
    Ok(Stage::Store.time(ctx.store.succeed_job(claim, &to_json(&result)?)).await?)
}

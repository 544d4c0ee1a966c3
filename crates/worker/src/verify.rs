//! Verify: is the photo's largest usable face the same person as a second
//! photo's, a subject's (its most similar face counts) or a stored face's?

use facerec_core::{FaceInfo, JobErrorCode, QualityGates, VerifiedAgainst, VerifyParams, VerifyResult, VerifyTarget};
use facerec_store::{Claim, SubjectMatch};
use facerec_telemetry::Stage;

use crate::context::JobContext;
use crate::failure::Failure;
use crate::jobs::{embed_one, to_json, with_faces};

pub(crate) async fn verify(
    ctx: &JobContext,
    claim: &Claim,
    params: VerifyParams,
    input: Vec<u8>,
    second_input: Option<Vec<u8>>,
) -> Result<bool, Failure> {
    let gates = ctx.settings.quality_gates();
    let embedder = ctx.pool.embedder_id();
    let (face, embedding) = largest_usable_face(ctx, input, gates, "image").await?;
    let (target, similarity) = match params.target {
        VerifyTarget::Image => {
            let Some(second) = second_input else {
                return Err(Failure::Permanent(JobErrorCode::Internal, "the second photo is missing".into()));
            };
            let (other, other_embedding) = largest_usable_face(ctx, second, gates, "image2").await?;
            (VerifiedAgainst::Image { face: other }, similarity(&embedding, &other_embedding))
        }
        VerifyTarget::Subject { collection, subject } => {
            match Stage::Search
                .time(ctx.store.best_face_of_subject(&collection, &subject, embedder, &embedding))
                .await?
            {
                SubjectMatch::NotFound => {
                    // The collection itself may have been deleted since the submission checked it.
                    if !ctx.store.collection_exists(&collection).await? {
                        return Err(Failure::collection_deleted(&collection));
                    }
                    let message = format!("collection {} has no subject {:?}", collection.as_str(), subject.as_str());
                    return Err(Failure::Permanent(JobErrorCode::SubjectNotFound, message));
                }
                SubjectMatch::NoFaces => {
                    let message = format!("subject {:?} has no faces of embedder {embedder}", subject.as_str());
                    return Err(Failure::Permanent(JobErrorCode::SubjectHasNoFaces, message));
                }
                SubjectMatch::Best { face_id, similarity } => {
                    let target = VerifiedAgainst::Subject {
                        collection: collection.as_str().to_owned(),
                        subject: subject.as_str().to_owned(),
                        face_id,
                    };
                    (target, similarity)
                }
            }
        }
        VerifyTarget::Face { face_id } => {
            let Some(stored) = Stage::Search.time(ctx.store.stored_face(face_id)).await? else {
                return Err(Failure::Permanent(JobErrorCode::FaceNotFound, format!("no face has id {face_id}")));
            };
            if stored.embedder != embedder {
                let message =
                    format!("face {face_id} was made by embedder {}, this worker runs {embedder}", stored.embedder);
                return Err(Failure::Permanent(JobErrorCode::EmbedderMismatch, message));
            }
            let similarity = similarity(&embedding, &stored.embedding);
            (VerifiedAgainst::Face { collection: stored.collection, subject: stored.subject, face_id }, similarity)
        }
    };
    let threshold = params.threshold.get();
    let result = VerifyResult {
        similarity,
        is_match: similarity >= threshold,
        threshold,
        model: ctx.pool.model_id().to_owned(),
        face,
        target,
    };
    Ok(Stage::Store.time(ctx.store.succeed_job(claim, &to_json(&result)?)).await?)
}

/// The largest face that passes the size gate, with its embedding.
async fn largest_usable_face(
    ctx: &JobContext,
    input: Vec<u8>,
    gates: QualityGates,
    field: &'static str,
) -> Result<(FaceInfo, Vec<f32>), Failure> {
    with_faces(ctx, facerec_core::JobKind::Verify, input, move |pipeline, faces| {
        let Some(largest) = faces.first() else {
            return Err(Failure::Permanent(JobErrorCode::NoFace, format!("no face was found in {field}")));
        };
        let Some(face) = faces.iter().find(|c| gates.too_small(&c.info.quality).is_none()) else {
            let issue = gates.too_small(&largest.info.quality).expect("every face failed the size gate");
            return Err(Failure::Permanent(issue.code, format!("{field}: {}", issue.message)));
        };
        Ok((face.info.clone(), embed_one(pipeline, &face.crop)?))
    })
    .await
}

/// The similarity reported: the cosine of two embeddings of one model (an
/// all-zero one, which no model makes, compares as 0).
fn similarity(a: &[f32], b: &[f32]) -> f32 {
    facerec_core::cosine(a, b).unwrap_or(0.0)
}

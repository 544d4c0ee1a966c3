//! Quality gates, multi-face recognize and explicit embeddings, end to end on
//! real photos transformed in memory (api → Redis → worker → PostgreSQL).

use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, jpeg, photo};
use image::{RgbImage, imageops};

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

fn scaled(img: &RgbImage, factor: f32) -> RgbImage {
    let (w, h) = ((img.width() as f32 * factor) as u32, (img.height() as f32 * factor) as u32);
    imageops::resize(img, w, h, imageops::FilterType::Triangle)
}

/// Pixel values pulled towards mid-gray: `factor` 1 keeps the photo, 0 makes it flat.
fn low_contrast(img: &RgbImage, factor: f32) -> RgbImage {
    let mut out = img.clone();
    out.pixels_mut().for_each(|p| p.0 = p.0.map(|v| (f32::from(v) * factor + 128.0 * (1.0 - factor)).round() as u8));
    out
}

async fn refusal(app: &TestApp, image: &RgbImage) -> (String, String) {
    let job = app.run_job("/v1/register", jpeg(image), &[("subject", "someone")]).await;
    assert_eq!(job["status"], "failed", "{job}");
    (job["error"]["code"].as_str().unwrap().to_owned(), job["error"]["message"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_refuses_poor_faces_each_with_its_code_and_measured_value() {
    let app = TestApp::spawn().await.unwrap();
    let obama = decode(&photo("obama.jpg"));
    // The face spans x 369..611 of the 910 px wide portrait: cut it in half.
    let cut = imageops::crop_imm(&obama, 0, 0, 480, obama.height()).to_image();
    // One of the six people in the group photo looks far to the side (pose offset ≈ 0.52).
    let group = decode(&photo("group/t1.jpg"));
    let turned = imageops::crop_imm(&group, 850, 10, 200, 230).to_image();
    let cases = [
        ("face_cut_off", cut, "% of it is visible"),
        ("face_too_small", scaled(&obama, 0.12), "px apart"),
        ("low_detection_score", low_contrast(&obama, 0.1), "score 0."),
        ("face_turned_away", turned, "pose offset 0."),
        ("face_blurred", imageops::blur(&obama, 6.0), "sharpness "),
    ];
    for (expected, image, measured) in cases {
        let (code, message) = refusal(&app, &image).await;
        assert_eq!(code, expected, "{message}");
        assert!(message.contains(measured), "{expected}: the message should give the value: {message}");
    }
    assert_eq!(app.count("faces").await, 0, "a refused face must not reach the gallery");
    assert_eq!(app.count("subjects").await, 0);

    // The untouched photo passes every gate and reports its quality.
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let q = &job["result"]["quality"];
    assert!(q["inter_eye_distance"].as_f64().unwrap() > 100.0, "{q}");
    assert!(q["sharpness"].as_f64().unwrap() > 500.0, "{q}");
    assert!(q["pose_offset"].as_f64().unwrap() < 0.1, "{q}");
    assert_eq!(q["visible_fraction"], 1.0);
    app.stop().await.unwrap();
}

fn area(face: &Value) -> f64 {
    face["bbox"]["width"].as_f64().unwrap() * face["bbox"]["height"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_searches_every_face_and_lists_the_skipped_ones() {
    let app = TestApp::spawn().await.unwrap();
    for (file, subject) in [("obama.jpg", "obama"), ("biden.jpg", "biden")] {
        let job = app.run_job("/v1/register", photo(file), &[("subject", subject)]).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    // Obama and Biden at full size, and a small Obama too small to search.
    let (obama2, biden) = (decode(&photo("obama2.jpg")), decode(&photo("biden.jpg")));
    let biden = scaled(&biden, obama2.height() as f32 / biden.height() as f32);
    let tiny = scaled(&decode(&photo("obama3.jpg")), 0.06);
    let mut canvas =
        RgbImage::from_pixel(obama2.width() + biden.width() + tiny.width(), obama2.height(), [90; 3].into());
    imageops::replace(&mut canvas, &obama2, 0, 0);
    imageops::replace(&mut canvas, &biden, obama2.width() as i64, 0);
    imageops::replace(&mut canvas, &tiny, (obama2.width() + biden.width()) as i64, 0);
    let job = app.run_job("/v1/recognize", jpeg(&canvas), &[]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    let faces = result["faces"].as_array().unwrap();
    let best: Vec<&str> = faces.iter().map(|f| f["best"]["subject"].as_str().unwrap_or("-")).collect();
    assert_eq!(faces.len(), 2, "{result}");
    assert!(best.contains(&"obama") && best.contains(&"biden"), "{best:?}");
    for face in faces {
        assert!(face["quality"]["sharpness"].is_number(), "{face}");
        let m = &face["matches"];
        assert_eq!(m[0]["match"], true, "{face}");
        assert_eq!(m[1]["match"], false, "the other person is no match: {face}");
    }
    assert!(area(&faces[0]) >= area(&faces[1]), "largest first");
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{result}");
    assert_eq!(skipped[0]["reason"], "face_too_small");
    assert!(skipped[0]["bbox"]["x"].as_f64().unwrap() > (obama2.width() + biden.width()) as f64);

    // Six people; max_faces=4 searches the four largest and lists two more.
    let job = app.run_job("/v1/recognize", photo("group/t1.jpg"), &[("max_faces", "4")]).await;
    let result = &job["result"];
    let faces = result["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 4, "{result}");
    assert!(faces.windows(2).all(|w| area(&w[0]) >= area(&w[1])), "largest first: {result}");
    assert!(faces.iter().all(|f| f["best"].is_null()), "strangers matched: {result}");
    let skipped = result["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{result}");
    assert!(skipped.iter().all(|s| s["reason"] == "over_max_faces"));
    assert!(area(&faces[3]) >= area(&skipped[0]));
    app.stop().await.unwrap();
}

fn embeddings(job: &Value) -> Vec<Vec<f64>> {
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"]["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_returns_unit_embeddings_identical_across_workers_and_threads() {
    let one_thread = TestApp::spawn().await.unwrap();
    let job = one_thread.run_job("/v1/embed", photo("obama.jpg"), &[]).await;
    assert_eq!(job["kind"], "embed");
    assert_eq!(job["result"]["model"], "yunet_2023mar+sface_2021dec");
    let face = &job["result"]["faces"][0];
    assert!(face["bbox"]["width"].as_f64().unwrap() > 150.0 && face["quality"]["sharpness"].is_number(), "{face}");
    assert_eq!(face["landmarks"].as_array().unwrap().len(), 5);
    let first = embeddings(&job);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].len(), 128);
    let norm = first[0].iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "not L2-normalised: {norm}");
    assert_eq!(one_thread.count("faces").await, 0, "embed stores no face");

    let group = embeddings(&one_thread.run_job("/v1/embed", photo("group/t1.jpg"), &[("max_faces", "3")]).await);
    assert_eq!(group.len(), 3);
    one_thread.stop().await.unwrap();

    // Another worker process with two intra-op threads per session.
    let two_threads = TestApp::spawn_with(&|_| {}, &|w| w.intra_threads = 2).await.unwrap();
    let again = embeddings(&two_threads.run_job("/v1/embed", photo("obama.jpg"), &[]).await);
    let diff = first[0].iter().zip(&again[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-5, "embeddings differ across workers by {diff}");
    two_threads.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centerface_worker_registers_and_recognizes() {
    let app = TestApp::spawn_with(&|_| {}, &|w| w.detector = facerec_worker::DetectorKind::Centerface).await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["model"], "centerface+sface_2021dec");
    let job = app.run_job("/v1/recognize", photo("obama2.jpg"), &[]).await;
    assert_eq!(job["result"]["faces"][0]["best"]["subject"], "obama", "{job}");
    let job = app.run_job("/v1/recognize", photo("biden.jpg"), &[]).await;
    assert!(job["result"]["faces"][0]["best"].is_null(), "{job}");
    // Half a face must not enter the gallery whichever detector runs: CenterFace
    // fits a narrower box to it than YuNet, so its geometry trips the pose gate.
    let obama = decode(&photo("obama.jpg"));
    let cut = imageops::crop_imm(&obama, 0, 0, 480, obama.height()).to_image();
    let (code, message) = refusal(&app, &cut).await;
    assert!(["face_cut_off", "face_turned_away"].contains(&code.as_str()), "{code}: {message}");
    assert_eq!(app.count("faces").await, 1);
    app.stop().await.unwrap();
}

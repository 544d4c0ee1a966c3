//! Untrusted uploads: a corpus of bad requests, generated here, each refused
//! with its status and stable code and leaving nothing behind; and unusual but
//! valid images, which must register.

use std::time::{Duration, Instant};

use facerec_testkit::reqwest::{self, RequestBuilder};
use facerec_testkit::serde_json::Value;
use facerec_testkit::{TestApp, form, jpeg, photo};
use image::{DynamicImage, ImageFormat, RgbImage};

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn small_png() -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 48, [120, 80, 40].into())), ImageFormat::Png)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn small(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| [(x * 7) as u8, (y * 5) as u8, 90].into()))
}

/// A real 16x16 PNG whose IHDR is rewritten to declare `width`×`height`
/// pixels (CRC fixed): a decompression bomb's header, without the bomb.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(&small(16, 16), ImageFormat::Png);
    // Signature (8), IHDR length (4), then "IHDR", width, height, 5 bytes, CRC.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A real 16x16 baseline JPEG whose SOF0 is rewritten to declare `width`×`height`.
fn jpeg_bomb(width: u16, height: u16) -> Vec<u8> {
    let mut j = encode(&small(16, 16), ImageFormat::Jpeg);
    let sof = j.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has SOF0");
    j[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    j
}

/// A real 16x16 lossless WebP whose VP8L header is rewritten to declare `width`×`height`
/// (below 16384: image-webp 0.2.4 reads a width of exactly 16384 as 0).
fn webp_bomb(width: u32, height: u32) -> Vec<u8> {
    let image = small(16, 16).to_rgb8();
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(image.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mut webp = out.into_inner();
    // RIFF header (12), "VP8L" + size (8), signature 0x2f, then 14 + 14 bits of size - 1.
    assert_eq!((&webp[12..16], webp[20]), (b"VP8L".as_slice(), 0x2f));
    let old = u32::from_le_bytes(webp[21..25].try_into().unwrap());
    let bits = (old & !0x0FFF_FFFF) | (width - 1) | ((height - 1) << 14);
    webp[21..25].copy_from_slice(&bits.to_le_bytes());
    webp
}

struct Case {
    name: String,
    request: RequestBuilder,
    status: u16,
    code: &'static str,
}

fn corpus(app: &TestApp, max_upload: usize) -> Vec<Case> {
    let post = |path: &str| app.client.post(app.url(path));
    let mut cases = Vec::new();
    let mut case = |name: &str, request: RequestBuilder, status: u16, code: &'static str| {
        cases.push(Case { name: name.to_owned(), request, status, code });
    };
    let png = small_png();
    let register =
        |image: Option<Vec<u8>>, fields: &[(&str, &str)]| post("/v1/register").multipart(form(image, fields));

    // The body itself.
    case("plain text body", post("/v1/register").body("hello"), 400, "invalid_multipart");
    case("JSON body", post("/v1/register").json(&serde_json::json!({"subject": "a"})), 400, "invalid_multipart");
    case(
        "multipart without boundary",
        post("/v1/register").header("content-type", "multipart/form-data"),
        400,
        "invalid_multipart",
    );
    let garbage =
        post("/v1/register").header("content-type", "multipart/form-data; boundary=XYZ").body("--XYZ\r\nnonsense");
    case("malformed multipart", garbage, 400, "invalid_multipart");
    let oversized = vec![0xFFu8; max_upload + 1];
    case("zero-width PNG", register(Some(png_bomb(0, 16)), &[("subject", "a")]), 422, "corrupt_image");
    case("body over the size limit", register(Some(oversized), &[("subject", "a")]), 413, "payload_too_large");

    // The image field.
    case("no image", register(None, &[("subject", "a")]), 400, "missing_image");
    let two = form(Some(png.clone()), &[("subject", "a")]).part("image", reqwest::multipart::Part::bytes(png.clone()));
    case("two images", post("/v1/register").multipart(two), 400, "duplicate_field");
    case("subject twice", register(Some(png.clone()), &[("subject", "a"), ("subject", "b")]), 400, "duplicate_field");
    case("empty image", register(Some(Vec::new()), &[("subject", "a")]), 422, "corrupt_image");
    case(
        "GIF",
        register(Some(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()), &[("subject", "a")]),
        415,
        "unsupported_media_type",
    );
    let bmp = [b"BM".as_slice(), &[0u8; 60]].concat();
    case("BMP", register(Some(bmp), &[("subject", "a")]), 415, "unsupported_media_type");
    case(
        "text as image",
        register(Some(b"just some words".to_vec()), &[("subject", "a")]),
        415,
        "unsupported_media_type",
    );
    case("truncated PNG", register(Some(png[..16].to_vec()), &[("subject", "a")]), 422, "corrupt_image");
    let face = jpeg(&RgbImage::from_pixel(64, 64, [200, 150, 120].into()));
    case("truncated JPEG", register(Some(face[..20].to_vec()), &[("subject", "a")]), 422, "corrupt_image");
    case("100000x100000 PNG", register(Some(png_bomb(100_000, 100_000)), &[("subject", "a")]), 422, "image_too_large");
    case("144-megapixel JPEG", register(Some(jpeg_bomb(12_000, 12_000)), &[("subject", "a")]), 422, "image_too_large");
    case("16000x16000 WebP", register(Some(webp_bomb(16_000, 16_000)), &[("subject", "a")]), 422, "image_too_large");

    // Register's fields.
    case("no subject", register(Some(png.clone()), &[]), 400, "missing_subject");
    case("empty subject", register(Some(png.clone()), &[("subject", "")]), 400, "invalid_subject");
    case("blank subject", register(Some(png.clone()), &[("subject", "   ")]), 400, "invalid_subject");
    let long = "é".repeat(129);
    case("129-character subject", register(Some(png.clone()), &[("subject", &long)]), 400, "invalid_subject");
    case("subject with a bell", register(Some(png.clone()), &[("subject", "a\u{7}b")]), 400, "invalid_subject");
    case("subject with a newline", register(Some(png.clone()), &[("subject", "a\nb")]), 400, "invalid_subject");
    for bad in ["no spaces", "", "é", "a/b"] {
        case(
            &format!("collection {bad:?}"),
            register(Some(png.clone()), &[("subject", "a"), ("collection", bad)]),
            400,
            "invalid_collection",
        );
    }
    let long_collection = "c".repeat(65);
    case(
        "65-character collection",
        register(Some(png.clone()), &[("subject", "a"), ("collection", &long_collection)]),
        400,
        "invalid_collection",
    );
    let long_url = format!("https://example.com/{}", "p".repeat(2048));
    for bad in ["ftp://example.com/x", "not a url", "https://", long_url.as_str()] {
        let name = format!("callback_url {:.40?}", bad);
        case(
            &name,
            register(Some(png.clone()), &[("subject", "a"), ("callback_url", bad)]),
            400,
            "invalid_callback_url",
        );
    }

    // Recognize's and embed's fields.
    let recognize = |fields: &[(&str, &str)]| post("/v1/recognize").multipart(form(Some(png.clone()), fields));
    for bad in ["0", "101", "-1", "many", "2.5", ""] {
        case(&format!("top_k {bad:?}"), recognize(&[("top_k", bad)]), 400, "invalid_top_k");
    }
    for bad in ["1.5", "-1.01", "NaN", "inf", "abc"] {
        case(&format!("threshold {bad:?}"), recognize(&[("threshold", bad)]), 400, "invalid_threshold");
    }
    case("recognize max_faces 0", recognize(&[("max_faces", "0")]), 400, "invalid_max_faces");
    let embed = post("/v1/embed").multipart(form(Some(png.clone()), &[("max_faces", "101")]));
    case("embed max_faces 101", embed, 400, "invalid_max_faces");
    case("embed without image", post("/v1/embed").multipart(form(None, &[("max_faces", "3")])), 400, "missing_image");

    // Misspelt or foreign fields are refused, never run with the defaults.
    case("recognize with treshold", recognize(&[("treshold", "0.9")]), 400, "unknown_field");
    case("recognize with topk", recognize(&[("topk", "3")]), 400, "unknown_field");
    case(
        "register with threshold",
        register(Some(png.clone()), &[("subject", "a"), ("threshold", "0.9")]),
        400,
        "unknown_field",
    );
    let second =
        form(Some(png.clone()), &[("subject", "a")]).part("image2", reqwest::multipart::Part::bytes(png.clone()));
    case("register with image2", post("/v1/register").multipart(second), 400, "unknown_field");
    let embed = post("/v1/embed").multipart(form(Some(png.clone()), &[("collection", "people")]));
    case("embed with collection", embed, 400, "unknown_field");
    let verify = post("/v1/verify").multipart(form(Some(png.clone()), &[("face_id", "x"), ("treshold", "0.5")]));
    case("verify with treshold", verify, 400, "unknown_field");

    // Searching a collection that does not exist is refused (none exists here).
    case("recognize in the missing default", recognize(&[]), 404, "collection_not_found");
    case("recognize in a typo", recognize(&[("collection", "peopel")]), 404, "collection_not_found");
    let verify = post("/v1/verify").multipart(form(Some(png.clone()), &[("subject", "a"), ("collection", "peopel")]));
    case("verify a subject of a typo", verify, 404, "collection_not_found");

    // Routes.
    case("job id not a UUID", app.client.get(app.url("/v1/jobs/not-a-uuid")), 400, "invalid_job_id");
    case("unknown job", app.client.get(app.url("/v1/jobs/01a1fd00-0000-7000-8000-000000000000")), 404, "job_not_found");
    case("GET on a submission route", app.client.get(app.url("/v1/register")), 405, "method_not_allowed");
    case(
        "DELETE a job",
        app.client.delete(app.url("/v1/jobs/01a1fd00-0000-7000-8000-000000000000")),
        405,
        "method_not_allowed",
    );
    case("unknown route", post("/v1/nope"), 404, "not_found");
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_and_code_and_leaves_nothing_behind() {
    let max_upload = 200_000;
    let app = TestApp::api_only_with(&|api| api.max_upload_bytes = max_upload).await.unwrap();
    let cases = corpus(&app, max_upload);
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in corpus(&app, max_upload) {
        let started = Instant::now();
        let resp = case.request.header("x-request-id", format!("corpus-{}", case.name.len())).send().await.unwrap();
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        let header_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let ok = status == case.status
            && error["code"] == case.code
            && error["message"].as_str().is_some_and(|m| !m.is_empty())
            && error["request_id"].as_str().is_some()
            && error["request_id"].as_str() == header_id.as_deref()
            // Header-only bombs must be refused from the header, not after decoding.
            && elapsed < Duration::from_secs(1);
        if !ok {
            failures.push(format!(
                "{}: expected {} {}, got {status} {body} in {elapsed:?}",
                case.name, case.status, case.code
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(app.count("jobs").await, 0, "a refused request must not create a job");
    assert_eq!(app.count("job_inputs").await, 0);
    assert_eq!(app.count("subjects").await, 0);
    assert_eq!(app.queue_messages().await, 0, "a refused request must not be queued");
    app.stop().await.unwrap();
}

/// EXIF APP1 segment with only an Orientation tag.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\x00".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_le_bytes());
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    segment.extend(b"Exif\x00\x00");
    segment.extend(tiff);
    segment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_but_valid_images_register() {
    let app = TestApp::spawn().await.unwrap();
    let obama = image::load_from_memory(&photo("obama.jpg")).unwrap();
    let (width, height) = (obama.width(), obama.height());
    // Stored sideways; the EXIF tag says "rotate 90° clockwise to display".
    let sideways = jpeg(&image::imageops::rotate270(&obama.to_rgb8()));
    let rotated = [&sideways[..2], &exif_orientation(6), &sideways[2..]].concat();
    let mut webp = std::io::Cursor::new(Vec::new());
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(obama.to_rgb8().as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    let cases = [
        ("16-bit PNG", encode(&DynamicImage::ImageRgb16(obama.to_rgb16()), ImageFormat::Png)),
        ("grayscale JPEG", encode(&DynamicImage::ImageLuma8(obama.to_luma8()), ImageFormat::Jpeg)),
        ("16-bit grayscale PNG", encode(&DynamicImage::ImageLuma16(obama.to_luma16()), ImageFormat::Png)),
        ("grayscale + alpha PNG", encode(&DynamicImage::ImageLumaA8(obama.to_luma_alpha8()), ImageFormat::Png)),
        ("RGBA PNG", encode(&DynamicImage::ImageRgba8(obama.to_rgba8()), ImageFormat::Png)),
        ("lossless WebP", webp.into_inner()),
        ("EXIF-rotated JPEG", rotated),
    ];
    let subject = "Barack Obama — 奥巴马 🇺🇸";
    for (name, bytes) in cases {
        let job = app.run_job("/v1/register", bytes, &[("subject", subject)]).await;
        assert_eq!(job["status"], "succeeded", "{name}: {job}");
        assert_eq!(job["result"]["subject"], subject, "{name}: Unicode subjects are returned exactly");
        // Coordinates are of the upright image, whatever the file's orientation.
        let b = &job["result"]["bbox"];
        let right = b["x"].as_f64().unwrap() + b["width"].as_f64().unwrap();
        let bottom = b["y"].as_f64().unwrap() + b["height"].as_f64().unwrap();
        assert!(right < f64::from(width) && bottom < f64::from(height) * 0.5, "{name}: box {b} is not upright");
    }
    let stored: String = sqlx::query_scalar("SELECT name FROM subjects").fetch_one(&app.db).await.unwrap();
    assert_eq!(stored, subject);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_broken_past_the_header_fail_their_job_with_a_code() {
    // The api's pixel limit is generous here, so the worker's own check must catch the bomb.
    let generous = |api: &mut facerec_api::Settings| {
        api.image_limits.max_pixels = 1_000_000_000;
        api.image_limits.max_pixels_per_byte = 0;
    };
    let app = TestApp::spawn_with(&generous, &|_| {}).await.unwrap();
    let full = encode(&small(256, 256), ImageFormat::Png);
    let idat = full.windows(4).position(|w| w == b"IDAT").expect("a PNG has IDAT");
    let cases = [
        ("PNG cut inside its pixel data", full[..idat + 20].to_vec(), "corrupt_image"),
        ("200-megapixel PNG", png_bomb(20_000, 10_000), "image_too_large"),
    ];
    for (name, bytes, code) in cases {
        let job = app.run_job("/v1/register", bytes, &[("subject", "a")]).await;
        assert_eq!(job["status"], "failed", "{name}: {job}");
        assert_eq!(job["error"]["code"], code, "{name}: {job}");
        if code == "corrupt_image" {
            // A plain sentence; the decoder's own words stay in the worker's log.
            let expected = "the image cannot be decoded: it is damaged or cut short";
            assert_eq!(job["error"]["message"], expected, "{name}: {job}");
        }
        assert_eq!(job["attempts"], 1, "{name}: bad input is not retried");
    }
    assert_eq!(app.count("job_inputs").await, 0, "inputs are deleted when a job fails");
    assert_eq!(app.count("faces").await, 0);
    app.stop().await.unwrap();
}

/// Issue 29: a 105 KB PNG of 6000x6000 zeros cost a worker 5.7 s and 330 MB,
/// a 310 KB 16-bit 40-megapixel PNG 3.4 s. Both are refused at upload from
/// their header alone, and by the worker's own check (the same rule) when an
/// api lets them through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_far_larger_than_their_bytes_are_refused_from_the_header() {
    let zeros = encode(&DynamicImage::new_luma8(6000, 6000), ImageFormat::Png);
    // Exactly 40 megapixels: within `FACEREC_MAX_PIXELS`, over the cost per byte.
    let deep = encode(&DynamicImage::new_luma16(8000, 5000), ImageFormat::Png);
    let cases = [("6000x6000 zeros", &zeros), ("40-megapixel 16-bit PNG", &deep)];

    let app = TestApp::spawn().await.unwrap();
    for (name, bytes) in cases {
        let resp = app.post_form("/v1/register", Some(bytes.clone()), &[("subject", "a")]).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some("image_too_large")), "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("pixels per byte"), "{name}: the message says why: {message}");
    }
    assert_eq!(app.count("jobs").await, 0, "a refused image must not create a job");
    app.stop().await.unwrap();

    let app = TestApp::spawn_with(&|api| api.image_limits.max_pixels_per_byte = 0, &|_| {}).await.unwrap();
    for (name, bytes) in cases {
        let job = app.run_job("/v1/register", bytes.clone(), &[("subject", "a")]).await;
        assert_eq!(
            (job["status"].as_str(), job["error"]["code"].as_str()),
            (Some("failed"), Some("image_too_large")),
            "{name}: {job}"
        );
        assert_eq!(job["attempts"], 1, "{name}: bad input is not retried");
    }
    app.stop().await.unwrap();
}

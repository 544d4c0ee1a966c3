//! Live recognition end to end: a WebSocket stream to the real api, frames
//! recognized by the real worker over Redis, with the real models on real photos.

use std::time::{Duration, Instant};

use facerec_e2e::{MASTER_KEY, TestApp, camera_frame, photo};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

async fn app_with_obama(api: facerec_e2e::Tweak<'_, facerec_api::Settings>) -> TestApp {
    // Other tests run the models beside this one: no frame should miss the default 3 s.
    let api = |s: &mut facerec_api::Settings| {
        s.live_timeout_ms = 20_000;
        api(s)
    };
    let app = TestApp::spawn_with(&api, &|_| {}).await.unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    app
}

fn best_subject(face: &Value) -> Option<&str> {
    face["best"]["subject"].as_str()
}

#[tokio::test]
async fn a_stream_names_the_person_and_tracks_the_face_without_embedding_every_frame() {
    let app = app_with_obama(&|_| {}).await;
    let mut stream = app.live("collection=live", &["facerec.live"], &[]).await.unwrap();
    let ready = stream.next(WAIT).await.unwrap();
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["collection"], "live");
    assert_eq!(ready["threshold"], 0.4, "the default threshold, as written: {ready}");

    let (mut tracks, mut embedded) = (Vec::new(), 0);
    for i in 0..32 {
        let answer = stream.ask(&camera_frame(&photo("obama2.jpg"), i * 2)).await.unwrap();
        assert_eq!(answer["type"], "answer", "{answer}");
        assert_eq!(answer["frame"], i + 1);
        assert_eq!(answer["dropped"], 0, "one frame at a time drops nothing");
        assert!(answer["latency_ms"].as_f64().unwrap() > 0.0, "{answer}");
        assert!(answer["worker_ms"].as_f64().unwrap() <= answer["latency_ms"].as_f64().unwrap(), "{answer}");
        let faces = answer["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{answer}");
        assert_eq!(best_subject(&faces[0]), Some("obama"), "frame {}: {answer}", i + 1);
        assert!(faces[0]["matches"][0]["similarity"].as_f64().unwrap() > 0.4);
        assert_eq!(faces[0]["landmarks"].as_array().unwrap().len(), 5);
        tracks.push(faces[0]["track_id"].as_u64().unwrap());
        embedded += usize::from(faces[0]["embedded"] == true);
    }
    assert!(tracks.iter().all(|&t| t == tracks[0]), "one face in view keeps one track: {tracks:?}");
    // Embedded when it appears and every 15 frames (the default), never on every frame.
    assert!((2..=4).contains(&embedded), "embedded {embedded} times in 32 frames");

    // Someone else steps in: a new track, not named as the registered person.
    let answer = stream.ask(&camera_frame(&photo("biden.jpg"), 0)).await.unwrap();
    let face = &answer["faces"][0];
    assert_ne!(face["track_id"].as_u64().unwrap(), tracks[0], "{answer}");
    assert_eq!(face["embedded"], true, "a new track is searched at once: {answer}");
    assert_ne!(best_subject(face), Some("obama"), "{answer}");
    stream.close().await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_latest_frame_wins_when_frames_come_faster_than_answers() {
    let app = app_with_obama(&|s| s.live_max_fps = 0.0).await;
    let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
    stream.next_of("ready", WAIT).await.unwrap();
    let frame = camera_frame(&photo("obama2.jpg"), 0);
    let sent = 60u64;
    for _ in 0..sent {
        stream.send_frame(&frame).await.unwrap();
    }
    let mut answered = Vec::new();
    let last = loop {
        let answer = stream.next_of("answer", WAIT).await.unwrap();
        answered.push(answer["frame"].as_u64().unwrap());
        if answer["frame"] == sent {
            break answer;
        }
    };
    assert!(answered.windows(2).all(|w| w[0] < w[1]), "answers in order: {answered:?}");
    assert!(answered.len() < sent as usize / 2, "stale frames are dropped, not queued: {answered:?}");
    assert_eq!(
        last["dropped"].as_u64().unwrap() + answered.len() as u64,
        sent,
        "every frame is answered or counted dropped"
    );
    assert_eq!(best_subject(&last["faces"][0]), Some("obama"));
    stream.close().await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bad_frames_get_a_coded_error_and_the_stream_goes_on() {
    let mut app = app_with_obama(&|s| {
        s.live_max_frame_bytes = 300_000;
        s.max_pixels = 1_100_000;
        s.live_max_fps = 0.0;
        s.live_timeout_ms = 1500;
    })
    .await;
    let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
    stream.next_of("ready", WAIT).await.unwrap();
    let good = camera_frame(&photo("obama2.jpg"), 0);
    // Past the api's header check, so the worker's decoder is what refuses it.
    let mut png = std::io::Cursor::new(Vec::new());
    image::load_from_memory(&good).unwrap().write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let idat = png.windows(4).position(|w| w == b"IDAT").expect("a PNG has IDAT");
    let truncated = png[..idat + 20].to_vec();
    let big = facerec_e2e::jpeg(&image::RgbImage::from_pixel(1200, 1000, image::Rgb([90, 90, 90])));
    let mut oversized = good.clone();
    oversized.resize(400_000, 0);
    let cases: [(&[u8], &str); 5] = [
        (b"not an image at all", "unsupported_media_type"),
        (&[], "corrupt_image"),
        (&truncated, "corrupt_image"),
        (&big, "image_too_large"),
        (&oversized, "payload_too_large"),
    ];
    for (n, (frame, code)) in cases.iter().enumerate() {
        let error = stream.ask(frame).await.unwrap();
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["error"]["code"], *code, "{error}");
        assert_eq!(error["frame"], n as u64 + 1, "{error}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    stream.send_text("{\"hello\": 1}").await.unwrap();
    let error = stream.next(WAIT).await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_message", "{error}");
    let answer = stream.ask(&good).await.unwrap();
    assert_eq!(answer["type"], "answer", "the stream goes on after bad frames: {answer}");
    assert_eq!(answer["frame"], 6);
    assert_eq!(best_subject(&answer["faces"][0]), Some("obama"));

    // With no worker, a frame gets `no_worker` in time, and the stream stays open.
    app.shut_down_worker().await.unwrap().unwrap();
    let error = stream.ask(&good).await.unwrap();
    assert_eq!(error["error"]["code"], "no_worker", "{error}");
    assert_eq!(error["frame"], 7);
    stream.close().await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_is_refused_over_its_frame_rate_and_closed_when_idle() {
    let app = app_with_obama(&|s| {
        s.live_max_fps = 2.0;
        s.live_idle_secs = 2;
    })
    .await;
    let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
    stream.next_of("ready", WAIT).await.unwrap();
    let frame = camera_frame(&photo("obama2.jpg"), 0);
    for _ in 0..4 {
        stream.send_frame(&frame).await.unwrap();
    }
    let mut codes = Vec::new();
    while codes.len() < 4 {
        let message = stream.next(WAIT).await.unwrap();
        codes.push(message["error"]["code"].as_str().unwrap_or("answer").to_owned());
    }
    assert_eq!(codes.iter().filter(|c| *c == "rate_limited").count(), 2, "{codes:?}");
    let started = Instant::now();
    let closing = stream.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(closing["error"]["code"], "idle_timeout", "{closing}");
    let closed = stream.next_or_close(WAIT).await.unwrap().unwrap_err();
    assert_eq!(closed.code, 1000);
    assert!(started.elapsed() < Duration::from_secs(5));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn streams_authenticate_by_header_subprotocol_or_first_message_never_the_url() {
    let app = TestApp::spawn_keyed(&|s| {
        s.live_timeout_ms = 20_000;
        s.live_key_recheck_secs = 1;
    })
    .await
    .unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let frame = camera_frame(&photo("obama2.jpg"), 0);

    // Not a WebSocket: a JSON error saying so.
    let plain = app.client.get(app.url("/v1/live?collection=live")).send().await.unwrap();
    assert_eq!(plain.status(), 426);
    assert_eq!(plain.json::<Value>().await.unwrap()["error"]["code"], "websocket_required");

    // Header or subprotocol: refused over HTTP before the upgrade.
    let refused = app.live("collection=live", &[], &[("authorization", "Bearer frk_wrong")]).await.err().unwrap();
    assert!(refused.to_string().contains("401") && refused.to_string().contains("invalid_api_key"), "{refused}");
    let bearer = format!("Bearer {MASTER_KEY}");
    let missing = app.live("collection=nope", &[], &[("authorization", &bearer)]).await.err().unwrap();
    assert!(missing.to_string().contains("404") && missing.to_string().contains("collection_not_found"), "{missing}");
    let mut by_header = app.live("collection=live", &[], &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(by_header.next(WAIT).await.unwrap()["type"], "ready");
    assert_eq!(best_subject(&by_header.ask(&frame).await.unwrap()["faces"][0]), Some("obama"));
    by_header.close().await;

    let reader = app.create_key(&["gallery.read"], &["*"]).await;
    let recognizer = app.create_key(&["recognize"], &["live"]).await;
    let protocol = format!("facerec.key.{}", recognizer.key);
    let mut by_protocol = app.live("collection=live", &["facerec.live", &protocol], &[]).await.unwrap();
    assert_eq!(by_protocol.next(WAIT).await.unwrap()["type"], "ready");
    by_protocol.close().await;
    let forbidden = app.live("collection=live", &[&format!("facerec.key.{}", reader.key)], &[]).await.err().unwrap();
    assert!(forbidden.to_string().contains("403"), "{forbidden}");

    // First message: what the page does.
    let mut by_message = app.live("collection=live", &["facerec.live"], &[]).await.unwrap();
    by_message.send_text(&format!("{{\"type\": \"auth\", \"api_key\": \"{}\"}}", recognizer.key)).await.unwrap();
    assert_eq!(by_message.next(WAIT).await.unwrap()["type"], "ready");
    assert_eq!(best_subject(&by_message.ask(&frame).await.unwrap()["faces"][0]), Some("obama"));
    by_message.close().await;

    // A key deleted while its stream runs ends the stream at the next look-up.
    let mut doomed = app.live("collection=live", &["facerec.live", &protocol], &[]).await.unwrap();
    assert_eq!(doomed.next(WAIT).await.unwrap()["type"], "ready");
    assert_eq!(doomed.ask(&frame).await.unwrap()["type"], "answer");
    let (status, _) = app.json(reqwest::Method::DELETE, &format!("/v1/keys/{}", recognizer.id), None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let error = doomed.ask(&frame).await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key", "{error}");
    assert_eq!(doomed.next_or_close(WAIT).await.unwrap().unwrap_err().code, 1008);

    // No key at all: the first frame is refused and the stream closes.
    for (first, code) in [
        (None, "missing_api_key"),
        (Some("{\"type\": \"auth\", \"api_key\": \"frk_0000\"}"), "invalid_api_key"),
        (Some(&*format!("{{\"type\": \"auth\", \"api_key\": \"{}\"}}", reader.key)), "forbidden"),
    ] {
        let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
        match first {
            Some(text) => stream.send_text(text).await.unwrap(),
            None => stream.send_frame(&frame).await.unwrap(),
        }
        let error = stream.next(WAIT).await.unwrap();
        assert_eq!(error["error"]["code"], code, "{error}");
        let closed = stream.next_or_close(WAIT).await.unwrap().unwrap_err();
        assert_eq!(closed.code, 1008, "{closed:?}");
    }
    app.stop().await.unwrap();
}

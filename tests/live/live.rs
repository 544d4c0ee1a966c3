//! Live recognition end to end: a WebSocket stream to the real api, frames
//! recognized by the real worker over Redis, with the real models on real photos.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use facerec_testkit::{LiveStream, MASTER_KEY, TestApp, camera_frame, photo};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn app_with_obama(api: facerec_testkit::Tweak<'_, facerec_api::Settings>) -> TestApp {
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
    // Embedded when it appears, every 15 frames (the default), and when its
    // view drifts from the one measured (the landmarks jitter as a face
    // moves): far from every frame.
    assert!((2..=12).contains(&embedded), "embedded {embedded} times in 32 frames");

    // A face that holds still is carried over (the cost of the identity check
    // stays with faces that change), and a carried answer says how old it is.
    let still = camera_frame(&photo("obama2.jpg"), 0);
    let mut still_embedded = 0;
    for _ in 0..20 {
        let answer = stream.ask(&still).await.unwrap();
        let face = &answer["faces"][0];
        assert_eq!(best_subject(face), Some("obama"), "{answer}");
        if face["embedded"] == true {
            still_embedded += 1;
            assert_eq!((face["measured_frames_ago"].as_u64(), face["measured_ms_ago"].as_u64()), (Some(0), Some(0)));
        } else {
            assert!(face["measured_frames_ago"].as_u64().is_some_and(|n| n >= 1), "carried, and says so: {answer}");
            assert!(face["measured_ms_ago"].as_u64().is_some(), "{answer}");
        }
    }
    assert!(still_embedded <= 3, "a still face embedded {still_embedded} times in 20 frames");

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
        s.image_limits.max_pixels = 1_100_000;
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
    let big = facerec_testkit::jpeg(&image::RgbImage::from_pixel(1200, 1000, image::Rgb([90, 90, 90])));
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
    // Two keys (a reader's and a recognizer's) are one too many: neither is picked.
    let reader_protocol = format!("facerec.key.{}", reader.key);
    let two = app.live("collection=live", &[&protocol, &reader_protocol], &[]).await.err().unwrap().to_string();
    assert!(two.contains("400") && two.contains("ambiguous_credentials"), "{two}");
    let bearer = format!("Bearer {}", reader.key);
    let two = app.live("collection=live", &[&protocol], &[("authorization", &bearer)]).await.err().unwrap().to_string();
    assert!(two.contains("400") && two.contains("ambiguous_credentials"), "{two}");

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
    // Waiting out the key's recheck interval (1 s) is the point.
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

/// The colour around the photo in [`camera_frame`], and around the faces pasted here.
const BACKGROUND: image::Rgb<u8> = image::Rgb([40, 44, 52]);

/// The face of `photo` as a 240×240 tile: centred on the face the stream
/// finds in the photo's [`camera_frame`], scaled so that its box is 120 px wide.
async fn face_tile(probe: &mut LiveStream, photo: &[u8]) -> image::RgbImage {
    let frame = camera_frame(photo, 0);
    let answer = probe.ask(&frame).await.unwrap();
    let b = &answer["faces"][0]["bbox"];
    let [x, y, w, h] = ["x", "y", "width", "height"].map(|k| b[k].as_f64().unwrap_or_else(|| panic!("{answer}")));
    let side = 2.0 * w;
    let mut canvas = image::RgbImage::from_pixel(side.round() as u32, side.round() as u32, BACKGROUND);
    let image = image::load_from_memory(&frame).unwrap().to_rgb8();
    let (left, top) = (x + w / 2.0 - side / 2.0, y + h / 2.0 - side / 2.0);
    image::imageops::overlay(&mut canvas, &image, -left.round() as i64, -top.round() as i64);
    image::imageops::resize(&canvas, 240, 240, image::imageops::FilterType::Triangle)
}

/// A 640×480 frame with `tile` pasted with its top-left corner at `at`.
fn frame_with(tile: &image::RgbImage, at: (i64, i64)) -> Vec<u8> {
    let mut frame = image::RgbImage::from_pixel(640, 480, BACKGROUND);
    image::imageops::overlay(&mut frame, tile, at.0, at.1);
    facerec_testkit::jpeg(&frame)
}

#[tokio::test]
async fn every_answer_names_the_person_really_there_or_nobody() {
    let app = app_with_obama(&|_| {}).await;
    let job = app.run_job("/v1/register", photo("biden.jpg"), &[("subject", "biden"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Who is in each photo, as the collection knows them (the Johns are registered nowhere).
    let people: [(&str, Option<&str>); 4] = [
        ("obama2.jpg", Some("obama")),
        ("biden.jpg", Some("biden")),
        ("johns/John_Schneider/000326_00926128.jpg", None),
        ("johns/John_Savage/000296_01099007.jpg", None),
    ];
    let mut probe = app.live("collection=live", &[], &[]).await.unwrap();
    probe.next_of("ready", WAIT).await.unwrap();
    let mut tiles = Vec::new();
    for (file, _) in &people {
        tiles.push(face_tile(&mut probe, &photo(file)).await);
    }
    probe.close().await;

    // Two spots whose faces overlap (by about 0.6 of their boxes): each
    // change of person puts a face where the last one's box was.
    let spots = [(200, 120), (225, 135)];
    let script =
        [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 0), (0, 0), (2, 1), (3, 0), (1, 1), (1, 0), (0, 1), (3, 1)];
    let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
    stream.next_of("ready", WAIT).await.unwrap();
    // A camera's rate, each person in view for two frames.
    let pace = Duration::from_millis(1000 / 15);
    let mut next_send = tokio::time::Instant::now();
    let (mut last, mut named, mut carried) = (None::<(usize, u64)>, [0; 4], 0);
    for (n, &(person, spot)) in script.iter().flat_map(|s| [s, s]).enumerate() {
        // Pacing the frames at a camera's rate is the point.
        tokio::time::sleep_until(next_send).await;
        next_send = tokio::time::Instant::now() + pace;
        let answer = stream.ask(&frame_with(&tiles[person], spots[spot])).await.unwrap();
        let frame = n + 1;
        assert_eq!(answer["type"], "answer", "frame {frame}: {answer}");
        let faces = answer["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "frame {frame}: {answer}");
        let face = &faces[0];
        let (file, really) = people[person];
        let said = best_subject(face);
        assert!(
            said.is_none() || said == really,
            "frame {frame}: {file} is there, the answer names {said:?}: {answer}"
        );
        named[person] += usize::from(said.is_some());
        let ago = face["measured_frames_ago"].as_u64();
        if face["embedded"] == true {
            assert_eq!(ago, Some(0), "frame {frame}: {answer}");
            // Measured on this very face: a registered person is named, not merely "not misnamed".
            assert_eq!(said, really, "frame {frame}: {file} was measured: {answer}");
        } else {
            carried += 1;
            assert!(ago.is_some_and(|a| a >= 1), "frame {frame}: a carried result says how old it is: {answer}");
            assert!(face["measured_ms_ago"].as_u64().is_some(), "frame {frame}: {answer}");
        }
        let track = face["track_id"].as_u64().unwrap();
        if let Some((before, before_track)) = last
            && before != person
        {
            assert_ne!(track, before_track, "frame {frame}: another person, another track: {answer}");
        }
        last = Some((person, track));
    }
    assert!(named[0] > 0 && named[1] > 0, "the registered people are named: {named:?}");
    assert_eq!(named[2] + named[3], 0, "{named:?}");
    assert!(carried > 0, "a face that stays in view is not embedded on every frame");
    stream.close().await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn streams_waiting_for_a_key_cannot_take_the_slots_of_those_with_one() {
    let app = TestApp::spawn_keyed(&|s| {
        s.live_timeout_ms = 20_000;
        s.live_max_streams = 1;
        s.live_max_pending = 3;
        s.live_max_pending_per_addr = 2;
        s.live_auth_wait_secs = 4;
    })
    .await
    .unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let recognizer = app.create_key(&["recognize"], &["live"]).await;
    let protocol = format!("facerec.key.{}", recognizer.key);
    let auth = json!({"type": "auth", "api_key": recognizer.key}).to_string();
    let (here, there, elsewhere): (IpAddr, IpAddr, IpAddr) =
        ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());

    // Streams without a key wait apart, a few per address.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(app.live_from(Some(here), "collection=live", &[], &[]).await.unwrap());
    }
    let refused = app.live_from(Some(here), "collection=live", &[], &[]).await.err().unwrap().to_string();
    assert!(refused.contains("429") && refused.contains("rate_limited"), "{refused}");
    waiting.push(app.live_from(Some(there), "collection=live", &[], &[]).await.unwrap());
    let full = app.live_from(Some(elsewhere), "collection=live", &[], &[]).await.err().unwrap().to_string();
    assert!(full.contains("503") && full.contains("server_busy"), "{full}");

    // A tenant with its key in the subprotocol still gets the one stream slot.
    let mut tenant = app.live("collection=live", &["facerec.live", &protocol], &[]).await.unwrap();
    assert_eq!(tenant.next(WAIT).await.unwrap()["type"], "ready");

    // A waiting stream that authenticates now finds no slot: it is told so, and closed.
    let mut late = waiting.pop().unwrap();
    late.send_text(&auth).await.unwrap();
    let busy = late.next(WAIT).await.unwrap();
    assert_eq!(busy["error"]["code"], "server_busy", "{busy}");
    assert_eq!(late.next_or_close(WAIT).await.unwrap().unwrap_err().code, 1008);

    let answer = tenant.ask(&camera_frame(&photo("obama2.jpg"), 0)).await.unwrap();
    assert_eq!(best_subject(&answer["faces"][0]), Some("obama"), "{answer}");

    // The others are closed at their deadline, and their places are free again.
    for mut stream in waiting {
        let closing = stream.next(WAIT).await.unwrap();
        assert_eq!(closing["error"]["code"], "missing_api_key", "{closing}");
    }
    tenant.close().await;
    // A waiting place, and the tenant's stream slot, come free once their streams have ended.
    let deadline = Instant::now() + WAIT;
    loop {
        let opened = match app.live_from(Some(here), "collection=live", &[], &[]).await {
            Ok(mut again) => {
                again.send_text(&auth).await.unwrap();
                again.next(WAIT).await.unwrap()
            }
            Err(e) => json!({"error": e.to_string()}),
        };
        if opened["type"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "no place and slot came free: {opened}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn narrowing_a_key_or_deleting_the_collection_ends_its_streams_at_the_next_look_up() {
    // 0: the key and the collection are looked up again before every frame.
    let app = TestApp::spawn_keyed(&|s| {
        s.live_timeout_ms = 20_000;
        s.live_key_recheck_secs = 0;
    })
    .await
    .unwrap();
    for collection in ["live", "doomed"] {
        let fields = [("subject", "obama"), ("collection", collection)];
        let job = app.run_job("/v1/register", photo("obama.jpg"), &fields).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let frame = camera_frame(&photo("obama2.jpg"), 0);
    for (narrowing, taken) in
        [(json!({"actions": ["gallery.read"]}), "recognize"), (json!({"collections": ["other"]}), "the collection")]
    {
        let key = app.create_key(&["recognize"], &["live"]).await;
        let protocol = format!("facerec.key.{}", key.key);
        let mut stream = app.live("collection=live", &["facerec.live", &protocol], &[]).await.unwrap();
        assert_eq!(stream.next(WAIT).await.unwrap()["type"], "ready");
        assert_eq!(stream.ask(&frame).await.unwrap()["type"], "answer");
        let (status, changed) =
            app.json(reqwest::Method::PATCH, &format!("/v1/keys/{}", key.id), Some(narrowing)).await;
        assert_eq!(status, 200, "{changed}");
        let error = stream.ask(&frame).await.unwrap();
        assert_eq!(error["error"]["code"], "forbidden", "taking {taken} away ends the stream: {error}");
        assert_eq!(stream.next_or_close(WAIT).await.unwrap().unwrap_err().code, 1008);
    }
    // A collection deleted under a stream: "nobody" from then on would be a wrong answer.
    let key = app.create_key(&["recognize"], &["doomed"]).await;
    let protocol = format!("facerec.key.{}", key.key);
    let mut stream = app.live("collection=doomed", &["facerec.live", &protocol], &[]).await.unwrap();
    assert_eq!(stream.next(WAIT).await.unwrap()["type"], "ready");
    let answer = stream.ask(&frame).await.unwrap();
    assert_eq!(answer["faces"][0]["best"]["subject"], "obama", "{answer}");
    let (status, deleted) = app.json(reqwest::Method::DELETE, "/v1/collections/doomed", None).await;
    assert_eq!(status, 200, "{deleted}");
    let error = stream.ask(&frame).await.unwrap();
    assert_eq!(error["error"]["code"], "collection_not_found", "{error}");
    assert_eq!(stream.next_or_close(WAIT).await.unwrap().unwrap_err().code, 1008);
    app.stop().await.unwrap();
}

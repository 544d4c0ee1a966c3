//! A long live stream, far faster than answers come, alone in its test
//! binary (not with the other live tests in `tests/live`) so that the
//! process's resident memory is the stream's (the api, the worker and the
//! client), not other tests'.

use std::time::Duration;

use facerec_testkit::{TestApp, camera_frame, photo, resident_bytes};

const WAIT: Duration = Duration::from_secs(20);

/// A long stream, far faster than answers come: memory stays flat and
/// nothing is left behind in Redis.
#[tokio::test]
async fn a_long_overloaded_stream_keeps_memory_flat_and_leaves_nothing_in_redis() {
    let app = TestApp::spawn_with(
        &|s| {
            s.live_max_fps = 0.0;
            s.live_timeout_ms = 20_000;
        },
        &|_| {},
    )
    .await
    .unwrap();
    let job = app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "obama"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let mut stream = app.live("collection=live", &[], &[]).await.unwrap();
    stream.next_of("ready", WAIT).await.unwrap();
    let frames: Vec<Vec<u8>> = (0..8).map(|i| camera_frame(&photo("obama2.jpg"), i * 3)).collect();
    let (sent, mut answers, mut baseline) = (1200u64, 0u64, 0u64);
    let mut growth = Vec::new();
    for n in 1..=sent {
        stream.send_frame(&frames[n as usize % frames.len()]).await.unwrap();
        // Read whatever answers have arrived, without waiting for them.
        while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(1), stream.next(WAIT)).await {
            assert_eq!(message["type"], "answer", "{message}");
            answers += 1;
        }
        // Pacing the stream (far faster than answers come) is the point.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if n == 200 {
            baseline = resident_bytes();
        } else if n > 200 && n % 200 == 0 {
            growth.push(resident_bytes() as i64 - baseline as i64);
        }
    }
    let last = loop {
        let answer = stream.next_of("answer", WAIT).await.unwrap();
        answers += 1;
        if answer["frame"] == sent {
            break answer;
        }
    };
    assert_eq!(last["dropped"].as_u64().unwrap() + answers, sent, "every frame answered or dropped");
    assert!(answers > 50, "answers kept coming: {answers}");
    let mb = |b: i64| b / (1024 * 1024);
    println!(
        "resident memory after each 200 frames, against frame 200 (MiB): {:?}",
        growth.iter().map(|&g| mb(g)).collect::<Vec<_>>()
    );
    println!("{answers} answers, {} dropped", last["dropped"]);
    assert!(
        growth.iter().all(|&g| g < 16 * 1024 * 1024),
        "memory grew (MiB after each 200 frames): {:?}",
        growth.iter().map(|&g| mb(g)).collect::<Vec<_>>()
    );
    stream.close().await;

    let mut redis = app.redis().await.unwrap();
    let left: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:live*", app.queue)).query_async(&mut redis).await.unwrap();
    assert!(left.is_empty(), "live keys left in Redis: {left:?}");
    app.stop().await.unwrap();
}

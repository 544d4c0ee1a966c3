//! The `/live` page in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (tests/browser/live.mjs), with a fake camera playing a
//! video made from a test photo. The page must name the registered person.

use std::path::PathBuf;
use std::process::Command;

use facerec_testkit::{MASTER_KEY, TestApp, photo, y4m_video};
use serde_json::Value;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test]
async fn the_live_page_names_the_person_in_front_of_the_camera() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(PathBuf::from(&chromium).exists(), "{chromium} missing: `make test` installs Debian's chromium");
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core missing: `make test` installs it (npm ci in tests/browser)"
    );
    let app = TestApp::spawn_keyed(&|s| s.live_timeout_ms = 20_000).await.unwrap();
    let job =
        app.run_job("/v1/register", photo("obama.jpg"), &[("subject", "Barack Obama"), ("collection", "live")]).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("camera.y4m");
    std::fs::write(&video, y4m_video(&photo("obama2.jpg"), 30)).unwrap();
    // Kept for whoever looks at the page: target/live-page.png.
    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/live-page.png");
    let page = app.url("/live?collection=live");
    let (script, video, screenshot_path) =
        (browser_dir().join("live.mjs"), video.display().to_string(), screenshot.display().to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([page.as_str(), video.as_str(), "Barack Obama", screenshot_path.as_str()])
            .env("CHROMIUM", chromium)
            .env("FACEREC_KEY", MASTER_KEY)
            .output()
            .expect("node runs (setup installs it)")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the page did not name the person:\n{stdout}\n{stderr}");
    let shown: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script's JSON line");
    assert!(shown["names"].as_str().unwrap().contains("Barack Obama"), "{shown}");
    assert_eq!(shown["video"], serde_json::json!([640, 480]), "the fake camera's frames: {shown}");
    assert!(shown["fps"].as_f64().unwrap() > 0.0, "{shown}");
    assert!(shown["overlay_pixels_drawn"].as_u64().unwrap() > 100, "a box is drawn over the video: {shown}");
    assert_eq!(shown["elsewhere"], serde_json::json!([]), "the page loads nothing from elsewhere: {shown}");
    assert_eq!(shown["problems"], serde_json::json!([]), "{shown}");
    assert_eq!(shown["errors"], serde_json::json!([]), "the page keeps within the stream's limits: {shown}");
    assert!(shown["fps"].as_f64().unwrap() <= 30.0, "no faster than FACEREC_LIVE_MAX_FPS: {shown}");
    assert!(screenshot.exists());
    app.stop().await.unwrap();
}

/// The `/docs` page (Swagger UI) works under its content security policy
/// (issue 29, item 13): it renders the document, opens an operation, runs
/// "Try it out" and the Authorize dialog, with no violation and nothing
/// loaded from elsewhere.
#[tokio::test]
async fn the_docs_page_works_under_its_content_security_policy() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(PathBuf::from(&chromium).exists(), "{chromium} missing: `make test` installs Debian's chromium");
    let app = TestApp::api_only_keyed(&|_| {}).await.unwrap();
    let (script, page) = (browser_dir().join("docs.mjs"), app.url("/docs/"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([page.as_str(), "facerec", "/v1/stats"])
            .env("CHROMIUM", chromium)
            .output()
            .expect("node runs (setup installs it)")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the docs page did not work:\n{stdout}\n{stderr}");
    let shown: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script's JSON line");
    assert!(shown["operations"].as_u64().unwrap() >= 25, "{shown}");
    assert_eq!(shown["violations"], serde_json::json!([]), "{shown}");
    assert_eq!(shown["elsewhere"], serde_json::json!([]), "the page loads nothing from elsewhere: {shown}");
    assert_eq!(shown["problems"], serde_json::json!([]), "{shown}");
    app.stop().await.unwrap();
}

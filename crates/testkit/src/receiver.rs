//! A local webhook receiver for tests: records every request it gets.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got: its headers and body.
pub type Delivery = (HeaderMap, Vec<u8>);

/// A local webhook receiver: records every request, answers 500 to the first `failures`.
#[derive(Clone, Default)]
pub struct WebhookReceiver {
    pub seen: Arc<Mutex<Vec<Delivery>>>,
    failures: Arc<Mutex<usize>>,
}

impl WebhookReceiver {
    pub async fn start(failures: usize) -> (Self, String) {
        let receiver = WebhookReceiver { failures: Arc::new(Mutex::new(failures)), ..Default::default() };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.seen.lock().unwrap().push((headers, body.to_vec()));
                    let mut failures = state.failures.lock().unwrap();
                    if *failures > 0 {
                        *failures -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

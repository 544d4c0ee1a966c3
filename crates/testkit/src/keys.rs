//! Helpers for tests of an api with a master key: clients that send a key,
//! and keys made through `POST /v1/keys`.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::{TestApp, Tweak};

/// The master key of [`TestApp::spawn_keyed`] and [`TestApp::api_only_keyed`] apps.
pub const MASTER_KEY: &str = "test-master-key-0123456789abcdef";

/// A client that sends `Authorization: <value>` with every request.
pub fn client_with_authorization(value: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("a printable header value"));
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

/// A client that sends `Authorization: Bearer <key>`.
pub fn bearer(key: &str) -> reqwest::Client {
    client_with_authorization(&format!("Bearer {key}"))
}

/// A key as `POST /v1/keys` made it.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl TestApp {
    /// An app with [`MASTER_KEY`] set; `self.client` (and so every helper) uses the master key.
    pub async fn spawn_keyed(api: Tweak<'_, facerec_api::Settings>) -> anyhow::Result<Self> {
        let mut app = Self::spawn_with(&|s| with_master_key(s, api), &|_| {}).await?;
        app.client = bearer(MASTER_KEY);
        Ok(app)
    }

    /// As [`TestApp::spawn_keyed`], with no worker ([`TestApp::api_only`]).
    pub async fn api_only_keyed(api: Tweak<'_, facerec_api::Settings>) -> anyhow::Result<Self> {
        let mut app = Self::api_only_with(&|s| with_master_key(s, api)).await?;
        app.client = bearer(MASTER_KEY);
        Ok(app)
    }

    /// Makes a key with the master key; panics unless the api answers `201`.
    pub async fn create_key(&self, actions: &[&str], collections: &[&str]) -> Key {
        let body = json!({"name": "test key", "actions": actions, "collections": collections});
        let (status, created) = self.json(reqwest::Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        key_of(&created)
    }
}

/// Sets [`MASTER_KEY`], then applies the test's own `tweak`.
fn with_master_key(settings: &mut facerec_api::Settings, tweak: Tweak<'_, facerec_api::Settings>) {
    settings.master_key = Some(MASTER_KEY.to_owned().into());
    tweak(settings)
}

/// The key in a `201` answer of `POST /v1/keys`.
pub fn key_of(created: &Value) -> Key {
    let key = created["key"].as_str().expect("the answer shows the key").to_owned();
    Key { id: created["id"].as_str().expect("an id").to_owned(), client: bearer(&key), key }
}

//! Helpers for tests of an api with a master key: clients that send a key,
//! and keys made through `POST /v1/keys`.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::{TestApp, Tweak};

/// The master key of [`TestApp::spawn_keyed`] apps.
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
        let mut app = Self::spawn_with(
            &|s| {
                s.master_key = Some(MASTER_KEY.to_owned().into());
                api(s)
            },
            &|_| {},
        )
        .await?;
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

    /// Sends a request as `client`; the status and the JSON answer (`null` if none).
    pub async fn call(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a multipart form as `client` (`image` as a file part, if any).
    pub async fn form_as(
        &self,
        client: &reqwest::Client,
        path: &str,
        image: Option<Vec<u8>>,
        fields: &[(&str, &str)],
    ) -> (u16, Value) {
        let form = crate::form(image, fields);
        let response = client.post(self.url(path)).multipart(form).send().await.expect("request reaches the api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The key in a `201` answer of `POST /v1/keys`.
pub fn key_of(created: &Value) -> Key {
    let key = created["key"].as_str().expect("the answer shows the key").to_owned();
    Key { id: created["id"].as_str().expect("an id").to_owned(), client: bearer(&key), key }
}

//! A live stream client (`GET /v1/live`) and the frames tests send through it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestApp;

/// One open stream.
pub struct LiveStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a stream was ended by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

impl TestApp {
    /// Opens `/v1/live?{query}` offering `protocols` and sending `headers`;
    /// the handshake's refusal (an HTTP status and body) is an error.
    pub async fn live(&self, query: &str, protocols: &[&str], headers: &[(&str, &str)]) -> anyhow::Result<LiveStream> {
        self.live_from(None, query, protocols, headers).await
    }

    /// As [`TestApp::live`], from the loopback address `source` (such as
    /// 127.0.0.2): another client, as the api sees it.
    pub async fn live_from(
        &self,
        source: Option<IpAddr>,
        query: &str,
        protocols: &[&str],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<LiveStream> {
        let url = format!("{}/v1/live?{query}", self.base_url.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request()?;
        if !protocols.is_empty() {
            request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols.join(", "))?);
        }
        for (name, value) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?;
            request.headers_mut().insert(name, HeaderValue::from_str(value)?);
        }
        let connected = match source {
            None => tokio_tungstenite::connect_async(request).await,
            Some(source) => {
                let server: SocketAddr = self.base_url.trim_start_matches("http://").parse()?;
                // Tests send traffic to loopback only.
                anyhow::ensure!(source.is_loopback() && server.ip().is_loopback(), "loopback only");
                let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(source, 0))?;
                let stream = socket.connect(server).await?;
                tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await
            }
        };
        match connected {
            Ok((socket, _)) => Ok(LiveStream { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                bail!("refused: {} {body}", response.status().as_u16())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl LiveStream {
    pub async fn send_frame(&mut self, image: &[u8]) -> anyhow::Result<()> {
        Ok(self.socket.send(Message::Binary(image.to_vec().into())).await?)
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        Ok(self.socket.send(Message::Text(text.into())).await?)
    }

    /// The next JSON message, waiting at most `wait`; a close is an error naming its code.
    pub async fn next(&mut self, wait: Duration) -> anyhow::Result<Value> {
        match self.next_or_close(wait).await? {
            Ok(message) => Ok(message),
            Err(closed) => bail!("the stream closed: {closed:?}"),
        }
    }

    /// The next JSON message, or how the server closed the stream.
    pub async fn next_or_close(&mut self, wait: Duration) -> anyhow::Result<Result<Value, Closed>> {
        loop {
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .context("no message in time")?
                .context("the stream ended without a close")??;
            match message {
                Message::Text(text) => return Ok(Ok(serde_json::from_str(&text)?)),
                Message::Close(frame) => {
                    let (code, reason) =
                        frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    return Ok(Err(Closed { code, reason }));
                }
                Message::Binary(_) => bail!("the server sent a binary message"),
                _ => continue,
            }
        }
    }

    /// Reads until a message of `type` arrives (e.g. `answer`), returning it.
    pub async fn next_of(&mut self, kind: &str, wait: Duration) -> anyhow::Result<Value> {
        loop {
            let message = self.next(wait).await?;
            if message["type"] == kind {
                return Ok(message);
            }
        }
    }

    /// Sends one frame and waits for its answer (or error).
    pub async fn ask(&mut self, image: &[u8]) -> anyhow::Result<Value> {
        self.send_frame(image).await?;
        self.next(Duration::from_secs(20)).await
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// A 640×480 camera frame of `photo`: scaled to fill the height, centred,
/// then shifted right by `shift` pixels (a person moving a little).
pub fn camera_frame(photo: &[u8], shift: i64) -> Vec<u8> {
    let image = image::load_from_memory(photo).expect("a test photo decodes").to_rgb8();
    let scaled = image::imageops::resize(
        &image,
        (image.width() as u64 * 480 / image.height() as u64) as u32,
        480,
        image::imageops::FilterType::Triangle,
    );
    let mut frame = image::RgbImage::from_pixel(640, 480, image::Rgb([40, 44, 52]));
    let x = (640 - scaled.width() as i64) / 2 + shift;
    image::imageops::overlay(&mut frame, &scaled, x, 0);
    crate::jpeg(&frame)
}

/// Resident memory of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    resident_bytes_of("self").expect("VmRSS in /proc/self/status")
}

/// Resident memory of process `pid` (or `self`), in bytes; `None` once it is gone (Linux).
pub fn resident_bytes_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kb * 1024)
}

/// A `.y4m` video (4:2:0, 15 fps) of `frames` copies of [`camera_frame`]:
/// what Chromium's fake camera plays (`--use-file-for-fake-video-capture`).
pub fn y4m_video(photo: &[u8], frames: usize) -> Vec<u8> {
    let frame = image::load_from_memory(&camera_frame(photo, 0)).expect("our own JPEG decodes").to_rgb8();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut y = vec![0u8; w * h];
    let (mut u, mut v) = (vec![0u8; w * h / 4], vec![0u8; w * h / 4]);
    for (x, row, p) in frame.enumerate_pixels() {
        let [r, g, b] = p.0.map(f32::from);
        let (x, row) = (x as usize, row as usize);
        y[row * w + x] = (0.299 * r + 0.587 * g + 0.114 * b).round().clamp(0.0, 255.0) as u8;
        if x % 2 == 0 && row % 2 == 0 {
            let i = (row / 2) * (w / 2) + x / 2;
            u[i] = (128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b).round().clamp(0.0, 255.0) as u8;
            v[i] = (128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b).round().clamp(0.0, 255.0) as u8;
        }
    }
    let mut out = format!("YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..frames {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(&y);
        out.extend_from_slice(&u);
        out.extend_from_slice(&v);
    }
    out
}

//! The accept loop: HTTP/1.1 connections served by hyper, with the header
//! deadline `axum::serve` does not offer. A client must send a request's
//! whole header block within `FACEREC_HEADER_TIMEOUT_SECS`: hyper arms the
//! timer when it starts reading a head and clears it only once the head is
//! parsed, so it is one deadline for the block, not one per line (a header
//! line every few seconds does not keep a socket open). An idle keep-alive
//! connection is closed after the same time. Slow bodies are `pacing`'s job.
//!
//! Every request carries the peer's address as `ConnectInfo<SocketAddr>`
//! (the fair shares of `shares` fall back to it for callers without a key).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service as _;

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting, lets each connection finish its request in flight, and
/// returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) {
    // Dropping `stop` tells every connection to finish gracefully.
    let (stop, stopped) = watch::channel(());
    // Every connection holds a clone of `open`; `closed()` waits for the last.
    let (all_closed, open) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = Connection { peer, header_timeout, stopped: stopped.clone(), open: open.clone() };
                tokio::spawn(connection.serve(stream, router.clone()));
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop(listener);
    drop(stop);
    drop(open);
    all_closed.closed().await;
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    header_timeout: Option<Duration>,
    stopped: watch::Receiver<()>,
    /// Held until the connection closes.
    open: watch::Receiver<()>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, router: Router) {
        let peer = self.peer;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(self.header_timeout);
        // Upgrades: `/v1/live` is a WebSocket.
        let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut connection = std::pin::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, timeout = e.is_timeout(), %peer, "connection closed on an error");
                    }
                    break;
                }
                // Completes (with an error) when the server stops: no message is ever sent.
                _ = self.stopped.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        drop(self.open);
    }
}

/// A failed accept: a connection reset before it was accepted is nothing; any
/// other error (out of file descriptors) is logged and the loop pauses a
/// second, as hyper's own server did, instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

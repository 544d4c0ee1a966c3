//! A TCP proxy that a test can cut and restore, to take a real service (here
//! PostgreSQL) away from the api and the worker while the test itself still
//! reaches it directly. Cutting closes every open connection and resets new
//! ones at once, as a server that is down would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    /// Connections being forwarded right now.
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, state) = watch::channel(true);
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(listener, target, state, open.clone()));
        Ok(Self { addr, up, open, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service is gone: returns once every open connection has been closed;
    /// from then on new connections are closed as soon as they arrive.
    pub async fn cut(&self) {
        self.up.send_replace(false);
        while self.open.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The service is back.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// `url` (e.g. a `postgres://` URL) with its host and port replaced by the proxy's.
    pub fn route(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("a URL with a host");
        url.set_host(Some(&self.addr.ip().to_string())).expect("URL takes a host");
        url.set_port(Some(self.addr.port())).expect("URL takes a port");
        url.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, target: String, state: watch::Receiver<bool>, open: Arc<AtomicUsize>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if !*state.borrow() {
            // Reset, not a clean close: the client sees what a dead server
            // gives (ECONNRESET), not a server that hangs up mid-handshake.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        // Counted before the task starts, so that `cut` waits for it too.
        open.fetch_add(1, Ordering::SeqCst);
        let open = open.clone();
        let state = state.clone();
        let target = target.clone();
        tokio::spawn(async move {
            forward(client, target, state).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Copies bytes both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, target: String, mut state: watch::Receiver<bool>) {
    if !*state.borrow_and_update() {
        return;
    }
    let Ok(mut server) = TcpStream::connect(&target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
}

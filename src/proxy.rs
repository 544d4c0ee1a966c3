//! A TCP proxy that a test can cut and restore, to take a real service (here
//! PostgreSQL) away from the api and the worker while the test itself still
//! reaches it directly. Cutting closes every open connection and stops
//! listening, so new connections are refused, as when the server is down.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        let listener = listen("127.0.0.1:0".parse()?)?;
        let addr = listener.local_addr()?;
        let (up, state) = watch::channel(true);
        let task = tokio::spawn(serve(listener, addr, target, state));
        Ok(Self { addr, up, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service is gone: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.up.send_replace(false);
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

fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // The port is bound again after each cut, while old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("binding the proxy to {addr}"))?;
    Ok(socket.listen(128)?)
}

async fn serve(mut listener: TcpListener, addr: SocketAddr, target: String, mut state: watch::Receiver<bool>) {
    loop {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(forward(client, target.clone(), state.clone()));
                    }
                }
                changed = state.changed() => {
                    if changed.is_err() { return; }
                    if !*state.borrow_and_update() { break; }
                }
            }
        }
        drop(listener);
        while !*state.borrow_and_update() {
            if state.changed().await.is_err() {
                return;
            }
        }
        listener = match listen(addr) {
            Ok(listener) => listener,
            Err(e) => panic!("the proxy cannot listen again on {addr}: {e}"),
        };
    }
}

/// Copies bytes both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, target: String, mut state: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = state.wait_for(|up| !*up) => {}
    }
}

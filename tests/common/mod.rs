//! Test servers on 127.0.0.1:0, started by each test and dropped with its runtime.
#![allow(dead_code)] // each test crate uses a different subset

pub mod bin;
pub mod demo;
pub mod pg;
mod ports;
pub mod svc;
pub mod tls;

pub use ports::free_port;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};

/// Serves `router` over plain HTTP.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Runs `handler` on every accepted connection, each in its own task.
pub async fn serve_raw<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
    addr
}

/// Accepts connections and never writes a byte (holds them open for a minute).
pub async fn silent_server() -> SocketAddr {
    serve_raw(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await
}

/// An address on which nothing listens and nothing will: a socket bound but never put in
/// `listen` holds the port for the rest of the test process (connects get RST, so "refused"),
/// where a dropped listener would free it for the next test's `bind(0)` to take.
pub async fn closed_port() -> SocketAddr {
    let held = HeldPort::bind();
    let addr = held.addr;
    std::mem::forget(held.socket);
    addr
}

/// A port bound and not listening (connects are refused) until [`HeldPort::listen`] starts
/// listening on it: a receiver that "comes back on the same port" with no window in which
/// another test could take the port.
pub struct HeldPort {
    socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl HeldPort {
    pub fn bind() -> HeldPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = socket.local_addr().expect("local addr");
        HeldPort { socket, addr }
    }

    pub fn listen(self) -> TcpListener {
        self.socket.listen(1024).expect("listen on the held port")
    }
}

/// Sets an environment variable for this test process. Each test uses its own variable name,
/// so concurrent tests do not race on the same key.
pub fn set_env(key: &str, value: &str) {
    // Safe in edition 2021; tests use distinct keys.
    std::env::set_var(key, value);
}

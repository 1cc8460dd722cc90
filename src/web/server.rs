//! The HTTP server's accept loop, with the limits `axum::serve` lacks: a connection cap, a
//! header-read timeout (slowloris) and an idle timeout, so no client can hold the descriptors
//! and sockets the prober needs.
//!
//! Connections beyond the cap are not accepted: they wait in the kernel's accept queue and are
//! served as soon as another connection ends.

use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::ServerSection;

/// Descriptors kept out of the API's reach: the cap is at most `limit / NOFILE_SHARE`.
/// The prober needs one socket per running probe (`[scheduler] max_concurrency`, 256 by
/// default) plus the store, the notifier and the listener; a quarter for the API leaves
/// three quarters for them even when every API connection is taken.
const NOFILE_SHARE: u64 = 4;

/// The server's limits, from `[server]` and the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ServerLimits {
    /// `[server]` limits, the connection cap lowered to a quarter of `nofile` (the soft
    /// descriptor limit) when that is smaller.
    pub fn new(s: &ServerSection, nofile: Option<u64>) -> Self {
        let mut max = s.max_connections.max(1);
        if let Some(limit) = nofile {
            let share = usize::try_from(limit / NOFILE_SHARE)
                .unwrap_or(usize::MAX)
                .max(1);
            if share < max {
                tracing::warn!(
                    configured = max,
                    nofile = limit,
                    "[server] max_connections lowered to {share}: a quarter of the file-descriptor limit, the rest is kept for probes"
                );
                max = share;
            }
        }
        ServerLimits {
            header_read_timeout: s.header_read_timeout.0,
            idle_timeout: s.idle_timeout.0,
            max_connections: max,
        }
    }
}

/// `[server]` settings that a reload cannot apply (the listener is bound and the connection
/// cap sized at start): the names of those that differ between `running` and `file`.
pub fn needs_restart(running: &ServerSection, file: &ServerSection) -> Vec<&'static str> {
    let mut out = Vec::new();
    if running.listen != file.listen {
        out.push("listen");
    }
    if running.max_connections != file.max_connections {
        out.push("max_connections");
    }
    out
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit then in force.
pub fn raise_nofile_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file-descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish their
/// current request and returns once all are closed (long event streams: the caller bounds
/// that wait).
///
/// `limits` may change while serving (a reload): each new connection takes the timeouts then in
/// force; the connection cap is the one at start (changing it needs a restart).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: tokio::sync::watch::Receiver<ServerLimits>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max_connections = limits.borrow().max_connections;
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let limits = *limits.borrow();
        tokio::spawn(async move {
            connection(stream, app, limits, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back = every connection closed.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Activity {
        inner: stream,
        epoch,
        last: last.clone(),
    });
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conn = pin!(builder.serve_connection(io, service));
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let idle = epoch.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if idle >= limits.idle_timeout {
                    tracing::debug!(?idle, "closing idle HTTP connection");
                    return;
                }
            }
        }
    }
}

/// A stream that records when a byte last went in or out.
struct Activity {
    inner: TcpStream,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_stays_below_a_quarter_of_the_descriptor_limit() {
        let s = ServerSection::default();
        assert_eq!(ServerLimits::new(&s, None).max_connections, 512);
        assert_eq!(ServerLimits::new(&s, Some(1_048_576)).max_connections, 512);
        // The case: 600 descriptors; 700 idle sockets used to take them all.
        assert_eq!(ServerLimits::new(&s, Some(600)).max_connections, 150);
        assert_eq!(ServerLimits::new(&s, Some(1)).max_connections, 1);
        let l = ServerLimits::new(&s, None);
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
    }
}

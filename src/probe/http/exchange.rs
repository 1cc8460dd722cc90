//! The connection both HTTP probes (`http`, `transaction`) share: TCP held to the run's deadline,
//! TLS for `https`, and one HTTP/1.1 exchange with hyper's connection driven in the same future
//! (no task outlives the run).

use std::pin::pin;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use url::Url;

use super::guard::{Guarded, Limits};
use super::hyper_fail;
use crate::probe::tcp::{connect_host, Fail, Phase, PhaseClock};
use crate::probe::tls::{ExpirySink, TlsClient};
use crate::probe::Reason;

/// A connection to the target: plain or TLS, always behind the deadline guard.
pub(crate) type Io = Either<Guarded<TcpStream>, TlsStream<Guarded<TcpStream>>>;

/// Resolves and connects to `host` (phases timed in `clock`) and, for `https`, handshakes TLS
/// (`Phase::Tls`); a handshake the guard ended at the deadline is a timeout, not bad TLS.
pub(crate) async fn connect(
    url: &Url,
    host: &str,
    tls: &TlsClient,
    limits: &Limits,
    clock: &mut PhaseClock,
    sink: &ExpirySink,
) -> Result<Io, Fail> {
    let port = url.port_or_known_default().unwrap_or(80);
    let tcp = connect_host(host, port, clock).await?;
    let tcp = Guarded::new(tcp, limits.clone());
    if url.scheme() != "https" {
        return Ok(Either::Left(tcp));
    }
    clock.begin(Phase::Tls);
    let stream = tls
        .connect(tcp, host, &[b"http/1.1"], sink)
        .await
        .map_err(|m| match tokio::time::Instant::now() >= limits.deadline {
            true => (Reason::Timeout, m),
            false => (Reason::Tls, m),
        })?;
    clock.end();
    Ok(Either::Right(stream))
}

/// One request on `io`: `exchange` sends it and reads what it needs. The connection is polled
/// alongside; its errors also reach the exchange (as a failed request or body read), so its own
/// result only says to stop polling it.
pub(crate) async fn http1<T>(
    io: Io,
    mut req: Request<Full<Bytes>>,
    limits: &Limits,
    exchange: impl AsyncFnOnce(SendRequest<Full<Bytes>>, Request<Full<Bytes>>) -> Result<T, Fail>,
) -> Result<T, Fail> {
    // hyper skips 1xx heads in a loop; count them so the guard can end an endless stream.
    let count = limits.informational.clone();
    hyper::ext::on_informational(&mut req, move |_| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| hyper_fail("HTTP handshake", &e))?;
    let mut conn = pin!(conn);
    let mut exchange = pin!(exchange(sender, req));
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            result = &mut exchange => return result,
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

//! TCP probe: connect, optional TLS handshake, optional send/expect.
//!
//! Also home of the pieces the http kind shares: the phase clock and connect-to-any-address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{ExpirySink, TlsClient};
use super::{BuildError, Details, Outcome, Phases, Reason};

/// `probe.tcp = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// `host:port`.
    pub address: String,
    /// Do a TLS handshake after connecting.
    #[serde(default)]
    pub tls: bool,
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    #[serde(default)]
    pub ca_file: Option<String>,
    /// SNI / verification name; defaults to the host part of `address`.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Bytes to send after connecting (escapes `\r\n` are honoured as written in TOML).
    #[serde(default)]
    pub send: Option<String>,
    /// Regular expression the received bytes must match.
    #[serde(default)]
    pub expect: Option<String>,
    /// Cap on bytes read while waiting for `expect`.
    #[serde(default = "default_read_max")]
    pub read_max_bytes: u64,
}

fn default_true() -> bool {
    true
}
fn default_read_max() -> u64 {
    64 * 1024
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TcpDetails {
    pub phases: Phases,
    pub cert_earliest_expiry: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<super::tls::CertInfo>,
    pub tls: bool,
}

/// A failed run before it becomes an [`Outcome`].
pub(crate) type Fail = (Reason, String);

#[derive(Debug)]
pub struct TcpProbe {
    spec: TcpSpec,
    host: String,
    port: u16,
    tls: Option<TlsClient>,
    /// Bytes regex: binary protocols must not fail on invalid UTF-8.
    expect: Option<std::sync::Arc<regex::bytes::Regex>>,
}

/// Per-run state kept outside the timed future so a timeout still reports what was measured.
#[derive(Default)]
struct RunState {
    clock: PhaseClock,
    sink: ExpirySink,
    received: usize,
}

impl TcpProbe {
    pub fn build(spec: &TcpSpec) -> Result<Self, BuildError> {
        let (host, port) = split_host_port(&spec.address).ok_or_else(|| BuildError::Invalid {
            field: "address",
            message: format!("{:?} is not host:port", spec.address),
        })?;
        let tls = match spec.tls {
            true => Some(TlsClient::build(spec.tls_verify, spec.ca_file.as_deref())?),
            false => None,
        };
        let expect = spec
            .expect
            .as_deref()
            .map(super::patterns::bytes)
            .transpose()
            .map_err(|e| BuildError::Invalid {
                field: "expect",
                message: e.to_string(),
            })?;
        Ok(TcpProbe {
            spec: spec.clone(),
            host,
            port,
            tls,
            expect,
        })
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let mut st = RunState::default();
        let result = tokio::time::timeout(timeout, self.exchange(&mut st)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(fail)) => Some(fail),
            Err(_) => {
                let extra = match (st.clock.current(), &self.spec.expect) {
                    (Some(Phase::Processing), Some(re)) => {
                        format!("; waiting for /{re}/, {} bytes received", st.received)
                    }
                    _ => String::new(),
                };
                Some((Reason::Timeout, st.clock.timeout_message(timeout) + &extra))
            }
        };
        st.clock.end();
        let details = Details::Tcp(TcpDetails {
            phases: st.clock.phases,
            cert_earliest_expiry: st.sink.get(),
            cert: st.sink.leaf(),
            tls: self.tls.is_some(),
        });
        match failure {
            None => Outcome::ok(details),
            Some((reason, message)) => Outcome::fail(reason, message, details),
        }
    }

    async fn exchange(&self, st: &mut RunState) -> Result<(), Fail> {
        let tcp = connect_host(&self.host, self.port, &mut st.clock).await?;
        match &self.tls {
            Some(tls) => {
                let name = self.spec.server_name.as_deref().unwrap_or(&self.host);
                st.clock.begin(Phase::Tls);
                let stream = tls
                    .connect(tcp, name, &[], &st.sink)
                    .await
                    .map_err(|m| (Reason::Tls, m))?;
                self.converse(stream, st).await
            }
            None => self.converse(tcp, st).await,
        }
    }

    /// send, then read until `expect` matches, EOF, or the read cap.
    async fn converse<S>(&self, mut stream: S, st: &mut RunState) -> Result<(), Fail>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        st.clock.end();
        if self.spec.send.is_none() && self.expect.is_none() {
            return Ok(());
        }
        st.clock.begin(Phase::Processing);
        if let Some(send) = &self.spec.send {
            let io = |e: std::io::Error| (Reason::Connect, format!("sending: {e}"));
            stream.write_all(send.as_bytes()).await.map_err(io)?;
            stream.flush().await.map_err(io)?;
        }
        let Some(re) = &self.expect else {
            st.clock.end();
            return Ok(());
        };
        let cap = usize::try_from(self.spec.read_max_bytes).unwrap_or(usize::MAX);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if re.is_match(&buf) {
                st.clock.end();
                return Ok(());
            }
            if buf.len() >= cap {
                let why = format!("read cap of {cap} bytes reached");
                return Err((Reason::ExpectMismatch, mismatch(re, &buf, &why)));
            }
            let want = chunk.len().min(cap - buf.len());
            let n = stream
                .read(&mut chunk[..want])
                .await
                .map_err(|e| (Reason::Connect, format!("reading: {e}")))?;
            if n == 0 {
                let why = "connection closed";
                return Err((Reason::ExpectMismatch, mismatch(re, &buf, why)));
            }
            buf.extend_from_slice(&chunk[..n]);
            st.received = buf.len();
        }
    }
}

fn mismatch(re: &regex::bytes::Regex, buf: &[u8], why: &str) -> String {
    let head = String::from_utf8_lossy(&buf[..buf.len().min(120)])
        .escape_debug()
        .to_string();
    format!(
        "{why} after {} bytes without matching /{re}/; received: \"{head}\"",
        buf.len()
    )
}

/// `host:port`, host possibly a bracketed IPv6 literal.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if host.is_empty() || (bare.is_none() && host.contains(':')) {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// The timed phases, as blackbox_exporter names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Resolve,
    Connect,
    Tls,
    Processing,
    Transfer,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "TLS handshake",
            Phase::Processing => "processing (waiting for the response)",
            Phase::Transfer => "transfer (reading the body)",
        }
    }
}

/// Accumulates phase durations (summed across redirects); the phase in progress is known so a
/// timeout can name it and still count the time spent in it.
#[derive(Debug, Default)]
pub(crate) struct PhaseClock {
    pub(crate) phases: Phases,
    current: Option<(Phase, Instant)>,
}

impl PhaseClock {
    pub(crate) fn begin(&mut self, phase: Phase) {
        self.end();
        self.current = Some((phase, Instant::now()));
    }

    pub(crate) fn end(&mut self) {
        if let Some((phase, started)) = self.current.take() {
            let p = &mut self.phases;
            let slot = match phase {
                Phase::Resolve => &mut p.resolve,
                Phase::Connect => &mut p.connect,
                Phase::Tls => &mut p.tls,
                Phase::Processing => &mut p.processing,
                Phase::Transfer => &mut p.transfer,
            };
            *slot = Some(slot.unwrap_or_default() + started.elapsed());
        }
    }

    pub(crate) fn current(&self) -> Option<Phase> {
        self.current.map(|(p, _)| p)
    }

    pub(crate) fn timeout_message(&self, timeout: Duration) -> String {
        match self.current() {
            Some(p) => format!("timed out after {timeout:?} during {}", p.describe()),
            None => format!("timed out after {timeout:?}"),
        }
    }
}

/// Resolves `host` and connects to the first address that accepts, timing both phases.
pub(crate) async fn connect_host(
    host: &str,
    port: u16,
    clock: &mut PhaseClock,
) -> Result<TcpStream, Fail> {
    clock.begin(Phase::Resolve);
    let addrs = super::resolve(host, port)
        .await
        .map_err(|e| (Reason::Dns, format!("resolving {host}: {e}")))?;
    clock.begin(Phase::Connect);
    let stream = connect_any(&addrs).await?;
    clock.end();
    Ok(stream)
}

/// Tries each address in order; the last error decides the reason, all errors go in the text.
async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, Fail> {
    let mut errors = Vec::new();
    let mut reason = Reason::Connect;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Requests are written in one go; Nagle would only add latency to the timing.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => {
                reason = Reason::from_connect_error(&e);
                errors.push(format!("connect to {addr}: {e}"));
            }
        }
    }
    Err((reason, errors.join("; ")))
}

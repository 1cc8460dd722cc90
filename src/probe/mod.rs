//! Probe kinds behind one interface.
//!
//! Each kind lives in its own file with its `Spec` (serde, data only), its built runtime type and
//! its `run`. A probe never returns an error: every failure is an [`Outcome`] whose [`Failure`]
//! carries a [`Reason`] from a small fixed set (usable as a metric label) plus the full text for
//! logs. This module imports nothing else from the crate.

pub mod dns;
pub mod http;
pub mod icmp;
pub mod tcp;
pub mod tls;
pub mod transaction;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use dns::{DnsDetails, DnsProbe, DnsSpec};
pub use http::{HttpDetails, HttpProbe, HttpSpec};
pub use icmp::{IcmpDetails, IcmpProbe, IcmpSpec, RoundShape};
pub use tcp::{TcpDetails, TcpProbe, TcpSpec};
pub use transaction::{StepDetails, TransactionDetails, TransactionProbe, TransactionSpec};

/// The probe part of a check in `probes.toml`: an externally tagged sub-table
/// (`probe.http = { … }`), which keeps exact line/column locations in config errors.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeSpec {
    Http(HttpSpec),
    Tcp(TcpSpec),
    Icmp(IcmpSpec),
    Dns(DnsSpec),
    Transaction(TransactionSpec),
}

/// The kinds, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Http,
    Tcp,
    Icmp,
    Dns,
    Transaction,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Icmp => "icmp",
            ProbeKind::Dns => "dns",
            ProbeKind::Transaction => "transaction",
        }
    }
}

/// Everything a spec needs from outside to become a runnable probe.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// Packets and pacing of an ICMP round, from the check's link class.
    pub round: RoundShape,
}

/// A spec could not be turned into a runnable probe (bad regex, unreadable CA file, missing
/// secret in the environment …).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("environment variable {0} is not set (it holds a secret named in the config)")]
    MissingEnv(String),
    /// A problem the config loader can place exactly: `locate` is a piece of the check's text
    /// (a step name, a `{{variable}}`, a secret's path) to point the line:column at.
    #[error("{message}")]
    Located {
        message: String,
        locate: String,
        hint: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A built probe, ready to run many times.
#[derive(Debug)]
pub enum Probe {
    Http(HttpProbe),
    Tcp(TcpProbe),
    Icmp(IcmpProbe),
    Dns(DnsProbe),
    Transaction(TransactionProbe),
}

impl ProbeSpec {
    pub fn kind(&self) -> ProbeKind {
        match self {
            ProbeSpec::Http(_) => ProbeKind::Http,
            ProbeSpec::Tcp(_) => ProbeKind::Tcp,
            ProbeSpec::Icmp(_) => ProbeKind::Icmp,
            ProbeSpec::Dns(_) => ProbeKind::Dns,
            ProbeSpec::Transaction(_) => ProbeKind::Transaction,
        }
    }

    /// The only bridge from config data to runtime objects.
    pub fn build(&self, ctx: &BuildContext) -> Result<Probe, BuildError> {
        Ok(match self {
            ProbeSpec::Http(s) => Probe::Http(HttpProbe::build(s)?),
            ProbeSpec::Tcp(s) => Probe::Tcp(TcpProbe::build(s)?),
            ProbeSpec::Icmp(s) => Probe::Icmp(IcmpProbe::build(s, ctx)?),
            ProbeSpec::Dns(s) => Probe::Dns(DnsProbe::build(s)?),
            ProbeSpec::Transaction(s) => Probe::Transaction(TransactionProbe::build(s)?),
        })
    }
}

impl Probe {
    pub fn kind(&self) -> ProbeKind {
        match self {
            Probe::Http(_) => ProbeKind::Http,
            Probe::Tcp(_) => ProbeKind::Tcp,
            Probe::Icmp(_) => ProbeKind::Icmp,
            Probe::Dns(_) => ProbeKind::Dns,
            Probe::Transaction(_) => ProbeKind::Transaction,
        }
    }

    /// Runs once. Never takes longer than `timeout` (plus scheduling noise) and never panics on
    /// hostile input: a failure is data.
    pub async fn run(&self, timeout: Duration) -> Outcome {
        let started = std::time::Instant::now();
        // Each kind's future boxed on its own: inline, every run (and a link round lasts
        // seconds) would carry the largest kind's state, an HTTP run's connection futures.
        let mut outcome = match self {
            Probe::Http(p) => Box::pin(p.run(timeout)).await,
            Probe::Tcp(p) => Box::pin(p.run(timeout)).await,
            Probe::Icmp(p) => Box::pin(p.run(timeout)).await,
            Probe::Dns(p) => Box::pin(p.run(timeout)).await,
            Probe::Transaction(p) => Box::pin(p.run(timeout)).await,
        };
        outcome.duration = started.elapsed();
        refine_tls_reason(&mut outcome);
        outcome
    }
}

/// A handshake that failed on the certificate says which certificate problem it was.
fn refine_tls_reason(outcome: &mut Outcome) {
    let cert = match &outcome.details {
        Details::Http(d) => d.cert.as_ref(),
        Details::Tcp(d) => d.cert.as_ref(),
        _ => None,
    };
    let Some(problem) = cert.and_then(|c| c.problem) else {
        return;
    };
    if let Some(f) = outcome.failure.as_mut() {
        if f.reason == Reason::Tls {
            f.reason = match problem {
                tls::CertProblem::Expired => Reason::CertExpired,
                tls::CertProblem::Untrusted => Reason::CertUntrusted,
                tls::CertProblem::Hostname => Reason::CertHostname,
            };
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub success: bool,
    /// Wall time of the whole run (set by [`Probe::run`]); seconds in JSON.
    #[serde(serialize_with = "duration_secs")]
    pub duration: Duration,
    pub failure: Option<Failure>,
    pub details: Details,
}

impl Outcome {
    pub fn ok(details: Details) -> Self {
        Outcome {
            success: true,
            duration: Duration::ZERO,
            failure: None,
            details,
        }
    }

    pub fn fail(reason: Reason, message: impl Into<String>, details: Details) -> Self {
        Outcome {
            success: false,
            duration: Duration::ZERO,
            failure: Some(Failure {
                reason,
                message: message.into(),
            }),
            details,
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        self.failure.as_ref().map(|f| f.reason)
    }
}

/// Why a run failed: a bounded reason (metric label) and the full text (logs, incidents).
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

/// The fixed set of failure reasons. Adding one is a deliberate act: it becomes a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The run did not finish within its timeout.
    Timeout,
    /// The target name could not be resolved.
    Dns,
    /// The target actively refused the connection (RST / ECONNREFUSED).
    ConnectRefused,
    /// Any other connect failure (unreachable, reset, …).
    Connect,
    /// TLS handshake failed (not because of the certificate: see the `Cert*` reasons).
    Tls,
    /// The presented certificate has expired (or is not valid yet).
    CertExpired,
    /// The presented certificate is not trusted (self-signed, unknown CA, X.509 v1, …).
    CertUntrusted,
    /// The presented certificate is not valid for the checked name.
    CertHostname,
    /// HTTP status not in the expected set.
    HttpStatus,
    /// Body did not match the expected substring / regex / JSON field.
    BodyMismatch,
    /// Body exceeded the configured cap.
    BodyTooLarge,
    /// The peer spoke something we could not parse (bad HTTP, bad DNS message …).
    Protocol,
    /// TCP send/expect did not see the expected bytes.
    ExpectMismatch,
    /// An ICMP/UDP echo round lost more than the class allows.
    PacketLoss,
    /// The DNS server answered with an unexpected rcode.
    DnsRcode,
    /// The DNS answers did not match.
    DnsAnswer,
    /// The process may not open the socket it needs (ICMP without CAP_NET_RAW / ping_group_range).
    Permission,
    /// A transaction step's JSON field was missing or had another value.
    JsonMismatch,
    /// A transaction step's response header was missing or did not match.
    HeaderMismatch,
    /// A transaction step took longer than its `max_duration`.
    TooSlow,
    /// A transaction step could not extract a variable a later step needs.
    ExtractFailed,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::Timeout,
        Reason::Dns,
        Reason::ConnectRefused,
        Reason::Connect,
        Reason::Tls,
        Reason::CertExpired,
        Reason::CertUntrusted,
        Reason::CertHostname,
        Reason::HttpStatus,
        Reason::BodyMismatch,
        Reason::BodyTooLarge,
        Reason::Protocol,
        Reason::ExpectMismatch,
        Reason::PacketLoss,
        Reason::DnsRcode,
        Reason::DnsAnswer,
        Reason::Permission,
        Reason::JsonMismatch,
        Reason::HeaderMismatch,
        Reason::TooSlow,
        Reason::ExtractFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::ConnectRefused => "connect_refused",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::CertExpired => "cert_expired",
            Reason::CertUntrusted => "cert_untrusted",
            Reason::CertHostname => "cert_hostname",
            Reason::HttpStatus => "http_status",
            Reason::BodyMismatch => "body_mismatch",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Protocol => "protocol",
            Reason::ExpectMismatch => "expect_mismatch",
            Reason::PacketLoss => "packet_loss",
            Reason::DnsRcode => "dns_rcode",
            Reason::DnsAnswer => "dns_answer",
            Reason::Permission => "permission",
            Reason::JsonMismatch => "json_mismatch",
            Reason::HeaderMismatch => "header_mismatch",
            Reason::TooSlow => "too_slow",
            Reason::ExtractFailed => "extract_failed",
        }
    }

    /// Classifies an IO error from connect().
    pub fn from_connect_error(e: &std::io::Error) -> Reason {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Reason::ConnectRefused,
            std::io::ErrorKind::TimedOut => Reason::Timeout,
            std::io::ErrorKind::PermissionDenied => Reason::Permission,
            _ => Reason::Connect,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind-specific measurements of one run.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Details {
    #[default]
    None,
    Http(HttpDetails),
    Tcp(TcpDetails),
    Icmp(IcmpDetails),
    Dns(DnsDetails),
    /// Boxed: a transaction's steps would make every other run's details larger.
    Transaction(Box<TransactionDetails>),
}

/// Time spent in each phase, blackbox_exporter's semantics. `None` = phase not reached.
/// Serialized as seconds (f64), like every duration of the JSON API.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Phases {
    #[serde(serialize_with = "opt_secs")]
    pub resolve: Option<Duration>,
    #[serde(serialize_with = "opt_secs")]
    pub connect: Option<Duration>,
    #[serde(serialize_with = "opt_secs")]
    pub tls: Option<Duration>,
    /// Request written → first response byte.
    #[serde(serialize_with = "opt_secs")]
    pub processing: Option<Duration>,
    /// First response byte → body read.
    #[serde(serialize_with = "opt_secs")]
    pub transfer: Option<Duration>,
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

fn duration_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Resolves `host:port` (IP literals skip the resolver) and returns every address, timing the
/// lookup. Shared by the http and tcp kinds.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, std::io::Error> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    // Prefer IPv4 first: the city's networks are IPv4 (hickory/getaddrinfo may put AAAA first).
    let mut addrs = addrs;
    addrs.sort_by_key(|a| a.is_ipv6());
    Ok(addrs)
}

/// Duration as fractional seconds, for serialization into JSON views.
pub fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// Compiled patterns shared by every probe built from the same one (a template expanded over
/// thousands of sites has one `expect`): a compiled regex with its match caches costs a few
/// KiB, and only the shared one keeps them warm. Entries die with their last probe.
pub(crate) mod patterns {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, Weak};

    type Cache<T> = OnceLock<Mutex<HashMap<String, Weak<T>>>>;

    fn intern<T>(
        cache: &'static Cache<T>,
        pattern: &str,
        compile: impl FnOnce(&str) -> Result<T, regex::Error>,
    ) -> Result<Arc<T>, regex::Error> {
        let mut map = cache
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = map.get(pattern).and_then(Weak::upgrade) {
            return Ok(shared);
        }
        let compiled = Arc::new(compile(pattern)?);
        // Forget patterns no probe uses any more (amortised: only when the map doubles).
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        map.insert(pattern.to_string(), Arc::downgrade(&compiled));
        Ok(compiled)
    }

    pub(crate) fn text(pattern: &str) -> Result<Arc<regex::Regex>, regex::Error> {
        static CACHE: Cache<regex::Regex> = OnceLock::new();
        intern(&CACHE, pattern, regex::Regex::new)
    }

    pub(crate) fn bytes(pattern: &str) -> Result<Arc<regex::bytes::Regex>, regex::Error> {
        static CACHE: Cache<regex::bytes::Regex> = OnceLock::new();
        intern(&CACHE, pattern, regex::bytes::Regex::new)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn same_pattern_same_regex() {
            let a = super::bytes("VC-READY").unwrap();
            let b = super::bytes("VC-READY").unwrap();
            assert!(std::sync::Arc::ptr_eq(&a, &b));
            let c = super::bytes("OTHER").unwrap();
            assert!(!std::sync::Arc::ptr_eq(&a, &c));
            assert!(super::text("(").is_err());
            drop((a, b));
            // The last user gone, the pattern compiles afresh.
            let d = super::bytes("VC-READY").unwrap();
            assert!(d.is_match(b"VC-READY\r\n"));
        }
    }
}

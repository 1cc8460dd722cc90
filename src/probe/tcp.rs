//! TCP probe: connect, optional TLS handshake, optional send/expect.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    pub tls: bool,
}

#[derive(Debug)]
pub struct TcpProbe {
    spec: TcpSpec,
}

impl TcpProbe {
    pub fn build(spec: &TcpSpec) -> Result<Self, BuildError> {
        Ok(TcpProbe { spec: spec.clone() })
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let _ = (timeout, &self.spec);
        Outcome::fail(Reason::Protocol, "not implemented", Details::Tcp(TcpDetails::default()))
    }
}

//! HTTP(S) probe: hand-built request path (resolve → TCP connect → rustls → hyper http1) so each
//! phase is timed separately with blackbox_exporter's semantics, and the full peer chain is seen
//! even when verification fails.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BuildError, Details, Outcome, Phases, Reason};

/// `probe.http = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `http://` or `https://` URL.
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// The body must contain this substring.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regular expression.
    #[serde(default)]
    pub body_regex: Option<String>,
    /// The body must be JSON whose field at `pointer` (RFC 6901) equals `equals`.
    #[serde(default)]
    pub expect_json: Option<JsonFieldSpec>,
    /// Reading stops and the run fails with `body_too_large` beyond this many bytes.
    #[serde(default = "default_body_max_bytes")]
    pub body_max_bytes: u64,
    /// How many redirects to follow (0 = report the 3xx as is).
    #[serde(default)]
    pub max_redirects: u32,
    /// Verify the server certificate chain and name.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted for this check, e.g. the city's internal CA.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Basic auth; the password is read from the named environment variable.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSpec>,
    /// Bearer token read from the named environment variable.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFieldSpec {
    /// JSON pointer, e.g. `/status`.
    pub pointer: String,
    /// Expected value; compared with the field's string form (`"ok"`, `true`, `3`).
    pub equals: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    pub username: String,
    pub password_env: String,
}

fn default_method() -> String {
    "GET".into()
}
fn default_body_max_bytes() -> u64 {
    1024 * 1024
}
fn default_true() -> bool {
    true
}

/// Measurements of one HTTP run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpDetails {
    pub phases: Phases,
    pub status: Option<u16>,
    /// Earliest `notAfter` over the presented chain, Unix seconds.
    pub cert_earliest_expiry: Option<i64>,
    pub body_bytes: u64,
    pub redirects: u32,
    pub tls: bool,
}

/// A built HTTP probe.
#[derive(Debug)]
pub struct HttpProbe {
    spec: HttpSpec,
}

impl HttpProbe {
    pub fn build(spec: &HttpSpec) -> Result<Self, BuildError> {
        Ok(HttpProbe { spec: spec.clone() })
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let _ = (timeout, &self.spec);
        Outcome::fail(Reason::Protocol, "not implemented", Details::Http(HttpDetails::default()))
    }
}

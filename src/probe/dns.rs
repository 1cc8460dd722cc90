//! DNS probe: one query of a name/type against a given server over UDP; expected rcode and
//! answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BuildError, Details, Outcome, Reason};

/// `probe.dns = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// `ip:port` of the server to ask.
    pub server: String,
    /// The name to query, e.g. `dichvucong.hochiminhcity.gov.vn.`
    pub query: String,
    /// Record type: A, AAAA, CNAME, MX, TXT, NS, SOA, PTR, SRV.
    #[serde(default = "default_record")]
    pub record: String,
    /// Expected response code (NOERROR, NXDOMAIN, SERVFAIL, …).
    #[serde(default = "default_rcode")]
    pub expect_rcode: String,
    /// Every regex here must match at least one answer (rdata in presentation form).
    #[serde(default)]
    pub expect_answers: Vec<String>,
    /// Fail when there are fewer answers than this.
    #[serde(default)]
    pub min_answers: u32,
    #[serde(default = "default_true")]
    pub recursion_desired: bool,
}

fn default_record() -> String {
    "A".into()
}
fn default_rcode() -> String {
    "NOERROR".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsDetails {
    pub rcode: Option<String>,
    pub answers: Vec<String>,
    pub answer_rrs: u32,
    pub authority_rrs: u32,
    pub additional_rrs: u32,
    /// Socket setup (blackbox "connect").
    pub connect: Option<f64>,
    /// Query sent → answer parsed.
    pub request: Option<f64>,
}

#[derive(Debug)]
pub struct DnsProbe {
    spec: DnsSpec,
}

impl DnsProbe {
    pub fn build(spec: &DnsSpec) -> Result<Self, BuildError> {
        Ok(DnsProbe { spec: spec.clone() })
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let _ = (timeout, &self.spec);
        Outcome::fail(Reason::Protocol, "not implemented", Details::Dns(DnsDetails::default()))
    }
}

//! DNS probe: one query of a name/type against a given server over UDP; expected rcode and
//! answers.
//!
//! The query carries EDNS(0) with a 1232-byte UDP payload (the DNS flag day 2020 size) so that
//! ordinary answers are not truncated. A truncated (TC) response fails the run with
//! `dns_answer` (there is no TCP retry, so its answers are incomplete); `truncated` in the
//! details says so. Only datagrams from the server (the socket is connected) whose id matches
//! are considered; a matching one that does not parse fails the run with `protocol`, and a
//! timeout after only unusable datagrams is also `protocol`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use regex::Regex;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use super::{BuildError, Details, Outcome, Reason};

/// `probe.dns = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// `ip:port` of the server to ask (port 53 when absent; IPv6 as `[addr]:port`).
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
    /// The server set TC: the answers are what fitted in the datagram.
    pub truncated: bool,
}

/// EDNS(0) UDP payload size advertised in the query.
const EDNS_PAYLOAD: u16 = 1232;

/// RFC 1035 / 2136 / 6891 mnemonics; 16 is BADVERS/BADSIG (same value, we print BADVERS).
const RCODES: &[(u16, &str)] = &[
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (16, "BADVERS"),
    (16, "BADSIG"),
    (17, "BADKEY"),
    (18, "BADTIME"),
    (19, "BADMODE"),
    (20, "BADNAME"),
    (21, "BADALG"),
    (22, "BADTRUNC"),
    (23, "BADCOOKIE"),
];

/// Mnemonic (case-insensitive) or number → rcode value.
pub fn parse_rcode(s: &str) -> Option<u16> {
    let s = s.trim();
    if let Some((v, _)) = RCODES.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)) {
        return Some(*v);
    }
    s.parse::<u16>().ok().filter(|v| *v < 4096)
}

/// Rcode value → mnemonic (`RCODE42` for unnamed ones).
pub fn rcode_name(v: u16) -> String {
    match RCODES.iter().find(|(c, _)| *c == v) {
        Some((_, n)) => (*n).to_string(),
        None => format!("RCODE{v}"),
    }
}

/// `ip:port`, `ip`, `[v6]:port` or `[v6]`; port 53 by default.
fn parse_server(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let ip = s.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
}

/// ECONNREFUSED on a connected UDP socket is the server's ICMP port unreachable.
fn io_failure(server: SocketAddr, what: &str, e: std::io::Error) -> (Reason, String) {
    (
        Reason::from_connect_error(&e),
        format!("DNS query to {server}: {what}: {e}"),
    )
}

#[derive(Debug)]
pub struct DnsProbe {
    spec: DnsSpec,
    server: SocketAddr,
    name: Name,
    record: RecordType,
    rcode: u16,
    answers: Vec<std::sync::Arc<Regex>>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> BuildError {
    BuildError::Invalid {
        field,
        message: message.into(),
    }
}

impl DnsProbe {
    pub fn build(spec: &DnsSpec) -> Result<Self, BuildError> {
        let server = parse_server(&spec.server).ok_or_else(|| {
            invalid(
                "server",
                format!("{:?} is not ip, ip:port or [ipv6]:port", spec.server),
            )
        })?;
        let mut name = Name::from_utf8(spec.query.trim())
            .map_err(|e| invalid("query", format!("{:?}: {e}", spec.query)))?;
        // Names in the config are absolute: no search list applies.
        name.set_fqdn(true);
        // RecordType's FromStr expects upper case.
        let record = spec
            .record
            .trim()
            .to_ascii_uppercase()
            .parse::<RecordType>()
            .ok()
            .filter(|t| !matches!(t, RecordType::AXFR | RecordType::IXFR | RecordType::OPT))
            .ok_or_else(|| {
                invalid(
                    "record",
                    format!("unknown or unsupported record type {:?}", spec.record),
                )
            })?;
        let rcode = parse_rcode(&spec.expect_rcode).ok_or_else(|| {
            invalid(
                "expect_rcode",
                format!("unknown response code {:?}", spec.expect_rcode),
            )
        })?;
        let answers = spec
            .expect_answers
            .iter()
            .map(|re| {
                super::patterns::text(re)
                    .map_err(|e| invalid("expect_answers", format!("{re:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(DnsProbe {
            spec: spec.clone(),
            server,
            name,
            record,
            rcode,
            answers,
        })
    }

    fn query_bytes(&self, id: u16) -> Result<Vec<u8>, String> {
        let mut msg = Message::new();
        msg.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(self.spec.recursion_desired)
            .add_query(Query::query(self.name.clone(), self.record));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
        msg.to_vec().map_err(|e| e.to_string())
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut d = DnsDetails::default();
        let server = self.server;
        let fail = |what, e| io_failure(server, what, e);

        let setup = Instant::now();
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = match UdpSocket::bind(bind).await {
            Ok(s) => s,
            Err(e) => {
                let (reason, msg) = fail("bind", e);
                return Outcome::fail(reason, msg, Details::Dns(d));
            }
        };
        // Connected: the kernel drops other peers' datagrams and reports port-unreachable.
        if let Err(e) = sock.connect(server).await {
            let (reason, msg) = fail("connect", e);
            return Outcome::fail(reason, msg, Details::Dns(d));
        }
        d.connect = Some(setup.elapsed().as_secs_f64());

        let id: u16 = rand::random();
        let query = match self.query_bytes(id) {
            Ok(q) => q,
            Err(e) => {
                let msg = format!("cannot encode query: {e}");
                return Outcome::fail(Reason::Protocol, msg, Details::Dns(d));
            }
        };
        let sent = Instant::now();
        let mut unusable = 0u32;
        let response = timeout_at(deadline, self.exchange(&sock, id, &query, &mut unusable)).await;
        let response = match response {
            Err(_) if unusable > 0 => {
                let msg = format!(
                    "no valid response from {server} within {timeout:?}, only {unusable} \
                     datagram(s) with a wrong id, too short, or not a response"
                );
                return Outcome::fail(Reason::Protocol, msg, Details::Dns(d));
            }
            Err(_) => {
                let msg = format!("no response from {server} within {timeout:?}");
                return Outcome::fail(Reason::Timeout, msg, Details::Dns(d));
            }
            Ok(Err((reason, msg))) => return Outcome::fail(reason, msg, Details::Dns(d)),
            Ok(Ok(m)) => m,
        };
        d.request = Some(sent.elapsed().as_secs_f64());
        self.evaluate(&response, d)
    }

    /// Sends the query and reads until a response with our id arrives.
    async fn exchange(
        &self,
        sock: &UdpSocket,
        id: u16,
        query: &[u8],
        unusable: &mut u32,
    ) -> Result<Message, (Reason, String)> {
        let server = self.server;
        sock.send(query)
            .await
            .map_err(|e| io_failure(server, "send", e))?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| io_failure(server, "receive", e))?;
            let data = &buf[..n];
            // A stale answer to an earlier query, or noise: keep waiting.
            if data.get(..2) != Some(&id.to_be_bytes()[..]) {
                *unusable += 1;
                continue;
            }
            let msg = match Message::from_vec(data) {
                Ok(m) => m,
                Err(e) => {
                    let msg = format!("unparseable response from {server} ({n} bytes): {e}");
                    return Err((Reason::Protocol, msg));
                }
            };
            if msg.message_type() != MessageType::Response {
                *unusable += 1;
                continue;
            }
            // Servers may omit the question (e.g. on FORMERR); when present it must be ours.
            if let Some(q) = msg.query() {
                if q.name() != &self.name || q.query_type() != self.record {
                    let got = format!("{} {}", q.name(), q.query_type());
                    let msg = format!("response from {server} is for another question ({got})");
                    return Err((Reason::Protocol, msg));
                }
            }
            return Ok(msg);
        }
    }

    fn evaluate(&self, m: &Message, mut d: DnsDetails) -> Outcome {
        let rcode = u16::from(m.response_code());
        d.rcode = Some(rcode_name(rcode));
        d.answers = m.answers().iter().map(|r| r.data().to_string()).collect();
        let h = m.header();
        d.answer_rrs = u32::from(h.answer_count());
        d.authority_rrs = u32::from(h.name_server_count());
        d.additional_rrs = u32::from(h.additional_count());
        d.truncated = m.truncated();

        let (q, server) = (format!("{} {}", self.name, self.record), self.server);
        // A truncated answer set cannot be judged (and there is no TCP retry): a failure, so
        // an overgrown zone is seen before resolvers start failing over to TCP.
        if d.truncated {
            let msg = format!(
                "{q} at {server}: truncated response (TC bit set, {} answer(s) received); \
                 the answers are incomplete and are not checked",
                d.answers.len()
            );
            return Outcome::fail(Reason::DnsAnswer, msg, Details::Dns(d));
        }
        if rcode != self.rcode {
            let msg = format!(
                "{q} at {server}: expected rcode {}, got {}",
                rcode_name(self.rcode),
                rcode_name(rcode)
            );
            return Outcome::fail(Reason::DnsRcode, msg, Details::Dns(d));
        }
        if (d.answers.len() as u64) < u64::from(self.spec.min_answers) {
            let msg = format!(
                "{q} at {server}: {} answer(s), expected at least {}",
                d.answers.len(),
                self.spec.min_answers
            );
            return Outcome::fail(Reason::DnsAnswer, msg, Details::Dns(d));
        }
        if let Some(re) = self
            .answers
            .iter()
            .find(|re| !d.answers.iter().any(|a| re.is_match(a)))
        {
            let msg = format!(
                "{q} at {server}: no answer matches /{re}/ (answers: {:?})",
                d.answers
            );
            return Outcome::fail(Reason::DnsAnswer, msg, Details::Dns(d));
        }
        Outcome::ok(Details::Dns(d))
    }
}

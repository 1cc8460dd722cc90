//! The built-in simulator behind `lienthong demo` and the scenario tests: fake sites and shared
//! services on loopback, with link behaviour and faults emulated in user space.
//!
//! # What is emulated, and how
//!
//! The simulator serves every check of an inventory whose target is a loopback address
//! (127.0.0.0/8). It never binds or sends anything outside 127.0.0.0/8: targets elsewhere are
//! skipped with a warning, and nothing is ever answered to a peer outside that range.
//!
//! - **Links (ICMP checks).** This machine has no netem, so loopback ICMP cannot be delayed or
//!   dropped. Instead the simulator binds a UDP echo responder (RFC 862) on each site's link
//!   address, port [`scenario::DEFAULT_UDP_ECHO_PORT`] (17007) by default, and [`overlay`] points
//!   the demo's link checks at it (`udp_echo_port`). The responder holds each datagram for the
//!   link class's delay and drops it with the class's loss probability: mainland 1–3 ms,
//!   rural 5–15 ms, island (Côn Đảo, Thạnh An, Long Sơn) 35–70 ms — about 10 ms of jitter —
//!   with 3 % loss, datacenter 0.2–1 ms. Delay and loss are applied per datagram in user space.
//! - **HTTP(S)** at every http check's host:port (one listener per distinct address): plain HTTP
//!   for `http://`, TLS for `https://`. `/healthz`, `/api/health` and `/status` answer 200
//!   `{"status":"ok"}`, `/` answers 200 with an HTML page containing "dichvucong", anything else
//!   404.
//! - **TCP** at every tcp check's address: on accept the server writes
//!   `220 lienthong-sim ESMTP\r\n`, answers EHLO/HELO/NOOP/QUIT lines, and closes after 5 s.
//! - **DNS** (UDP) at every dns check's server: an A query for a check's query name is answered
//!   with 127.20.0.1, other record types of that name with an empty NOERROR, any other name with
//!   NXDOMAIN.
//! - **Certificates.** A CA made at start-up signs one leaf for every TLS target; the CA is
//!   written to `<state_dir>/lienthong-demo-ca.pem` and [`overlay`] sets it as `ca_file` of
//!   every https check to loopback. The leaf is valid for only 10 days (`cert_valid_for`), so the
//!   "certificate near expiry" finding (e.g. on the video-conference bridge's admin portal) is
//!   always on.
//!
//! # Faults
//!
//! A [`Scenario`] plays its faults in a loop every `cycle` (default 10 min); each fault has an
//! offset `at`, a `duration`, a `kind`, and a target `site` or `service` (optionally one `check`).
//!
//! - `link_down` (site): the link is cut. The UDP echo responder drops everything (link rounds
//!   time out with 100 % loss) **and** the site's HTTP and TCP listeners are closed, so endpoint
//!   and video checks fail fast with `connect_refused` (a closed port on loopback answers RST;
//!   a real cut link would rather time out). Open connections are dropped. The listeners are
//!   bound again when the fault ends. DNS responders of the target go silent.
//! - `link_loss` (site, `loss`): the ratio replaces the class's normal loss, e.g. 0.15.
//! - `link_latency` (site, `delay`): added to every echo's delay.
//! - `http_status` (site or service, `status`): every HTTP request is answered with `status`.
//! - `slow` (site or service, `delay`): every HTTP response waits `delay` first.
//! - `tcp_down` (site or service): the TCP listeners are closed (HTTP stays up).
//! - `wrong_body` (site or service): HTTP answers `200` with a maintenance page (the app is gone).
//! - `lookup_error` (service): the administrative-procedures application served where a
//!   transaction check points (`GET /login` with a CSRF-style token and a session cookie,
//!   `POST /login`, `GET /api/ho-so/{code}`, `POST /logout`) keeps log-in working while the
//!   lookup answers `200 {"status":"error"}`.
//! - `path_down` (`site` = a ward with an agent, `service`): the ward's own path to the service
//!   (a relay on 127.0.0.1 its agent-run checks go through, see [`WardPaths`]) closes every
//!   connection; the data centre still reaches the service. Site faults never touch the
//!   agent-run copies (they share the service's listeners).
//!
//! A listener shared by several checks closes when a fault hits any of them. `http_status` and
//! `slow` with a `check` apply to requests for that check's URL path.
//!
//! The default scenario ([`Scenario::default_demo`], written out in `examples/scenario.toml`):
//! at 20 s `link_down` of Phường Bến Thành for 2 min; at 60 s `http_status` 503 on the
//! administrative-procedures system for 90 s; at 150 s `link_loss` 15 % on Côn Đảo for 150 s; at
//! 240 s `slow` 4 s on Phường Sài Gòn's public-service centre for 90 s; at 340 s `link_latency`
//! +300 ms on Xã Thạnh An for 2 min; at 400 s `lookup_error` on the administrative-procedures
//! system for 90 s (the transaction fails at step `tra-cuu`); at 480 s `wrong_body` on the document-management system
//! for 60 s (200 with a maintenance page); cycle 10 min.

mod certs;
pub mod dns;
mod paths;
pub mod scenario;
mod servers;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{CheckId, Inventory};
use crate::probe::ProbeSpec;

pub use paths::WardPaths;
pub use scenario::{Fault, FaultKind, Scenario, DEFAULT_UDP_ECHO_PORT};
pub use servers::LinkProfile;

/// File name of the demo CA in the state directory.
pub const CA_FILE_NAME: &str = "lienthong-demo-ca.pem";

/// Why the simulator could not start (or a scenario could not be read).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind {what} on {addr}: {source} (is another demo running?)")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid scenario{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Scenario {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("cannot make the demo certificates: {0}")]
    Cert(String),
}

/// A fault being played now.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    pub kind: FaultKind,
    /// `site/<slug>[/<check>]` or `service/<slug>[/<check>]`.
    pub target: String,
    /// One line for logs and the status page.
    pub description: String,
    /// Time left in this play of the fault.
    #[serde(with = "humantime_serde")]
    pub remaining: Duration,
}

/// The faults active now, as published by the scenario driver.
#[derive(Clone)]
pub(crate) struct FaultView {
    rx: watch::Receiver<Arc<Vec<Fault>>>,
}

impl FaultView {
    pub(crate) fn current(&self) -> Arc<Vec<Fault>> {
        self.rx.borrow().clone()
    }

    pub(crate) async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await
    }
}

/// Whether `ip` is in 127.0.0.0/8 (the only range the simulator touches).
pub(crate) fn is_loopback_v4(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The running simulator. Dropping it (or [`Simulator::stop`]) ends every task and closes every
/// socket.
pub struct Simulator {
    tasks: Mutex<JoinSet<()>>,
    cancel: CancellationToken,
    scenario: Arc<Scenario>,
    started: Instant,
    ca_file: PathBuf,
    echo_hosts: HashSet<IpAddr>,
    tls_targets: HashSet<SocketAddr>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

/// What start() gathers from the inventory before binding.
#[derive(Default)]
struct Plan {
    echo: BTreeMap<IpAddr, (String, Vec<CheckId>)>,
    http: BTreeMap<SocketAddr, (bool, Vec<(CheckId, String)>)>,
    tcp: BTreeMap<SocketAddr, (bool, Vec<CheckId>, Option<String>)>,
    dns: BTreeMap<SocketAddr, (Vec<hickory_proto::rr::Name>, Vec<CheckId>)>,
    /// HTTP addresses that serve the transaction application, with the passwords it accepts.
    apps: BTreeMap<SocketAddr, Vec<String>>,
    skipped: Vec<String>,
}

fn skip(skipped: &mut Vec<String>, id: &CheckId, target: &str, why: &str) {
    skipped.push(format!("{id}: target {target} skipped: {why}"));
}

/// Warns about skipped targets: each one when there are few, else a sample and the count (a
/// real, non-loopback config would otherwise log hundreds of lines).
fn warn_skipped(skipped: &[String]) {
    const SHOWN: usize = 5;
    if skipped.len() <= 2 * SHOWN {
        for s in skipped {
            tracing::warn!("simulator: {s}");
        }
        return;
    }
    for s in &skipped[..SHOWN] {
        tracing::warn!("simulator: {s}");
    }
    tracing::warn!(
        "simulator: … and {} more targets skipped (the simulator serves 127.0.0.0/8 IP targets only)",
        skipped.len() - SHOWN
    );
}

const NOT_LOOPBACK: &str = "not in 127.0.0.0/8 (the simulator only serves loopback)";

/// `ip:port`, or `ip` with `default_port`, when `ip` is loopback.
fn loopback_addr(s: &str, default_port: Option<u16>) -> Result<SocketAddr, &'static str> {
    let addr = match (s.parse::<SocketAddr>(), s.parse::<IpAddr>(), default_port) {
        (Ok(a), _, _) => a,
        (_, Ok(ip), Some(p)) => SocketAddr::new(ip, p),
        _ => return Err("not an IP literal (the simulator serves IP addresses only)"),
    };
    if is_loopback_v4(addr.ip()) && addr.is_ipv4() {
        Ok(addr)
    } else {
        Err(NOT_LOOPBACK)
    }
}

impl Plan {
    /// Serves the HTTP(S) URL `raw` of check `id` (loopback only).
    fn add_http(&mut self, id: &CheckId, raw: &str) {
        let Ok(url) = url::Url::parse(raw) else {
            skip(&mut self.skipped, id, raw, "not a URL");
            return;
        };
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => {
                skip(&mut self.skipped, id, raw, "not http:// or https://");
                return;
            }
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            skip(&mut self.skipped, id, raw, "no host");
            return;
        };
        match loopback_addr(host, Some(port)) {
            Ok(a) => {
                let e = self.http.entry(a).or_insert_with(|| (tls, Vec::new()));
                if e.0 != tls {
                    skip(
                        &mut self.skipped,
                        id,
                        raw,
                        "the same address is also served with the other scheme",
                    );
                    return;
                }
                e.1.push((id.clone(), url.path().to_string()));
            }
            Err(why) => skip(&mut self.skipped, id, raw, why),
        }
    }

    fn from_inventory(inv: &Inventory) -> Plan {
        let mut p = Plan::default();
        for c in &inv.checks {
            let id = c.id.clone();
            match &c.probe {
                ProbeSpec::Icmp(s) => match loopback_addr(&s.host, Some(0)) {
                    Ok(a) => {
                        let e = p
                            .echo
                            .entry(a.ip())
                            .or_insert_with(|| (c.link_class.clone(), Vec::new()));
                        e.1.push(id);
                    }
                    Err(why) => skip(&mut p.skipped, &id, &s.host, why),
                },
                ProbeSpec::Http(s) => p.add_http(&id, &s.url),
                // Every step's address is served by the same fake application.
                ProbeSpec::Transaction(t) => {
                    let mut seen = BTreeSet::new();
                    for step in &t.steps {
                        let url = step.url.replace("{{", "").replace("}}", "");
                        if seen.insert(url.clone()) {
                            p.add_http(&id, &url);
                        }
                        let addr = url::Url::parse(&url).ok().and_then(|u| {
                            let port = u.port_or_known_default()?;
                            loopback_addr(u.host_str()?, Some(port)).ok()
                        });
                        if let Some(a) = addr {
                            let accepted = p.apps.entry(a).or_default();
                            for pw in crate::probe::transaction::readable_secrets(t) {
                                if !accepted.contains(&pw) {
                                    accepted.push(pw);
                                }
                            }
                        }
                    }
                }
                ProbeSpec::Tcp(s) => match loopback_addr(&s.address, None) {
                    Ok(a) if p.http.contains_key(&a) => skip(
                        &mut p.skipped,
                        &id,
                        &s.address,
                        "an HTTP check uses the same address",
                    ),
                    Ok(a) => {
                        let e = p.tcp.entry(a).or_insert_with(|| (s.tls, Vec::new(), None));
                        if e.0 != s.tls {
                            skip(
                                &mut p.skipped,
                                &id,
                                &s.address,
                                "the same address is also served with(out) TLS",
                            );
                            continue;
                        }
                        e.1.push(id);
                        if e.2.is_none() {
                            e.2.clone_from(&s.server_name);
                        }
                    }
                    Err(why) => skip(&mut p.skipped, &id, &s.address, why),
                },
                ProbeSpec::Dns(s) => match loopback_addr(&s.server, Some(53)) {
                    Ok(a) => {
                        let e = p.dns.entry(a).or_default();
                        match dns::parse_name(&s.query) {
                            Some(n) => e.0.push(n),
                            None => skip(&mut p.skipped, &id, &s.query, "not a DNS name"),
                        }
                        e.1.push(id);
                    }
                    Err(why) => skip(&mut p.skipped, &id, &s.server, why),
                },
            }
        }
        // An HTTP check declared after a TCP check on the same address wins that address.
        let http: BTreeSet<SocketAddr> = p.http.keys().copied().collect();
        p.tcp.retain(|a, (_, ids, _)| {
            let clash = http.contains(a);
            if clash {
                for id in ids.iter() {
                    skip(
                        &mut p.skipped,
                        id,
                        &a.to_string(),
                        "an HTTP check uses the same address",
                    );
                }
            }
            !clash
        });
        p
    }
}

impl Simulator {
    /// Starts fake sites/services for every check whose target is a loopback address
    /// (127.0.0.0/8) in `inv`, and plays `scenario` from now on. Writes the demo CA to
    /// `state_dir/lienthong-demo-ca.pem` (creating `state_dir`).
    pub async fn start(
        inv: &Inventory,
        scenario: Scenario,
        state_dir: &Path,
    ) -> Result<Simulator, SimError> {
        let problems = scenario.problems();
        if !problems.is_empty() {
            return Err(SimError::Scenario {
                path: None,
                message: problems.join("; "),
            });
        }
        for p in scenario.unknown_targets(inv) {
            tracing::warn!("simulator: fault skipped: {p}");
        }
        let plan = Plan::from_inventory(inv);
        let counts = (plan.http.len(), plan.tcp.len(), plan.dns.len());
        warn_skipped(&plan.skipped);

        // Certificates: one leaf for every TLS target.
        let mut tls_ips: BTreeSet<IpAddr> = BTreeSet::new();
        let mut names = Vec::new();
        for (a, (tls, _)) in &plan.http {
            if *tls {
                tls_ips.insert(a.ip());
            }
        }
        for (a, (tls, _, sni)) in &plan.tcp {
            if *tls {
                tls_ips.insert(a.ip());
                names.extend(sni.iter().cloned());
            }
        }
        let ips: Vec<IpAddr> = tls_ips.into_iter().collect();
        let pki = certs::make(&ips, &names, scenario.cert_valid_for)?;
        let write_err = |path: &Path, source| SimError::Write {
            path: path.to_path_buf(),
            source,
        };
        tokio::fs::create_dir_all(state_dir)
            .await
            .map_err(|e| write_err(state_dir, e))?;
        let ca_file = state_dir.join(CA_FILE_NAME);
        tokio::fs::write(&ca_file, pki.ca_pem.as_bytes())
            .await
            .map_err(|e| write_err(&ca_file, e))?;
        let https = TlsAcceptor::from(pki.server.clone());
        let tcp_tls = {
            let mut cfg = (*pki.server).clone();
            cfg.alpn_protocols.clear();
            TlsAcceptor::from(Arc::new(cfg))
        };

        // The scenario driver publishes the active faults.
        let started = Instant::now();
        let scenario = Arc::new(scenario);
        let initial = active_at(&scenario, Duration::ZERO);
        let (tx, rx) = watch::channel(Arc::new(initial));
        let view = FaultView { rx };
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(drive(scenario.clone(), started, tx, cancel.clone()));

        let port = scenario.udp_echo_port;
        let mut echo_hosts = HashSet::new();
        for (ip, (class, owners)) in plan.echo {
            let addr = SocketAddr::new(ip, port);
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| SimError::Bind {
                    what: "UDP echo",
                    addr,
                    source,
                })?;
            let site = servers::EchoSite {
                socket,
                profile: LinkProfile::for_class(&class),
                owners,
            };
            tasks.spawn(servers::run_echo(site, view.clone(), cancel.clone()));
            echo_hosts.insert(ip);
        }

        let mut tls_targets = HashSet::new();
        for (addr, (tls, owners)) in plan.http {
            let listener = servers::bind_tcp(addr).map_err(|source| SimError::Bind {
                what: "HTTP",
                addr,
                source,
            })?;
            if tls {
                tls_targets.insert(addr);
            }
            let title = owner_title(inv, owners.iter().map(|(id, _)| id));
            let site = Arc::new(servers::HttpSite {
                addr,
                tls: tls.then(|| https.clone()),
                owners,
                title,
                app: plan
                    .apps
                    .get(&addr)
                    .map(|pw| servers::MotCua::new(pw.clone())),
            });
            // Closed right away when a fault starts with the scenario (no accept race).
            let listener = (!site.is_down(&view.current())).then_some(listener);
            let (s1, s2, v) = (site.clone(), site.clone(), view.clone());
            tasks.spawn(servers::supervise(
                addr,
                if tls { "HTTPS" } else { "HTTP" },
                listener,
                view.clone(),
                cancel.clone(),
                move |active| s1.is_down(active),
                move |stream| servers::serve_http(s2.clone(), v.clone(), stream),
            ));
        }

        for (addr, (tls, owners, _)) in plan.tcp {
            let listener = servers::bind_tcp(addr).map_err(|source| SimError::Bind {
                what: "TCP",
                addr,
                source,
            })?;
            if tls {
                tls_targets.insert(addr);
            }
            let site = Arc::new(servers::TcpSite {
                addr,
                tls: tls.then(|| tcp_tls.clone()),
                owners,
            });
            let listener = (!site.is_down(&view.current())).then_some(listener);
            let (s1, s2) = (site.clone(), site.clone());
            tasks.spawn(servers::supervise(
                addr,
                "TCP",
                listener,
                view.clone(),
                cancel.clone(),
                move |active| s1.is_down(active),
                move |stream| servers::serve_tcp(s2.clone(), stream),
            ));
        }

        for (addr, (names, owners)) in plan.dns {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|source| SimError::Bind {
                    what: "DNS",
                    addr,
                    source,
                })?;
            let site = dns::DnsSite {
                socket,
                names,
                owners,
            };
            tasks.spawn(dns::run_dns(site, view.clone(), cancel.clone()));
        }

        tracing::info!(
            "simulator: {} UDP echo responders (port {port}), {} HTTP(S) and {} TCP listeners, {} DNS responders on 127.0.0.0/8; {} faults every {}",
            echo_hosts.len(),
            counts.0,
            counts.1,
            counts.2,
            scenario.faults.len(),
            humantime::format_duration(scenario.cycle)
        );
        Ok(Simulator {
            tasks: Mutex::new(tasks),
            cancel,
            scenario,
            started,
            ca_file,
            echo_hosts,
            tls_targets,
        })
    }

    /// The port of the per-site UDP echo responders.
    pub fn udp_echo_port(&self) -> u16 {
        self.scenario.udp_echo_port
    }

    /// PEM of the demo CA (written into the state directory).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// What is being played now (for logs / status).
    pub fn active_faults(&self) -> Vec<ActiveFault> {
        let el = self.started.elapsed();
        self.scenario
            .faults
            .iter()
            .filter_map(|f| {
                f.remaining_at(el, self.scenario.cycle)
                    .map(|remaining| ActiveFault {
                        kind: f.kind,
                        target: f.target(),
                        description: f.describe(),
                        remaining,
                    })
            })
            .collect()
    }

    /// The scenario being played.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Ends every task and closes every socket (waits up to 2 s for tasks to finish).
    pub async fn stop(self) {
        self.cancel.cancel();
        let tasks = self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).ok();
        if let Some(mut tasks) = tasks {
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(Duration::from_secs(2), drain)
                .await
                .is_err()
            {
                tasks.abort_all();
            }
        }
    }
}

/// Names of the sites/services of `ids`, for the HTML page.
fn owner_title<'a>(inv: &Inventory, ids: impl Iterator<Item = &'a CheckId>) -> String {
    let mut names: Vec<String> = Vec::new();
    for id in ids {
        let name = match (&id.site, &id.service) {
            (Some(s), _) => inv.site(s).map(|x| x.name.clone()),
            (None, Some(s)) => inv
                .services
                .iter()
                .find(|x| x.slug == **s)
                .map(|x| x.name.clone()),
            _ => None,
        }
        .unwrap_or_else(|| id.owner().to_string());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}

fn active_at(scenario: &Scenario, el: Duration) -> Vec<Fault> {
    scenario
        .faults
        .iter()
        .filter(|f| f.active_at(el, scenario.cycle))
        .cloned()
        .collect()
}

/// Publishes the active faults at every start and end of a fault, and logs the changes.
async fn drive(
    scenario: Arc<Scenario>,
    started: Instant,
    tx: watch::Sender<Arc<Vec<Fault>>>,
    cancel: CancellationToken,
) {
    for f in tx.borrow().iter() {
        tracing::info!("simulator: fault on: {}", f.describe());
    }
    loop {
        let el = started.elapsed();
        let now = active_at(&scenario, el);
        tx.send_if_modified(|cur| {
            if **cur == now {
                return false;
            }
            for f in now.iter().filter(|f| !cur.contains(f)) {
                tracing::info!("simulator: fault on: {}", f.describe());
            }
            for f in cur.iter().filter(|f| !now.contains(f)) {
                tracing::info!("simulator: fault over: {}", f.describe());
            }
            *cur = Arc::new(now);
            true
        });
        let next = scenario
            .faults
            .iter()
            .map(|f| f.next_change(el, scenario.cycle))
            .min()
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// Rewrites the inventory for the demo: every icmp check whose host is loopback and served by
/// the simulator gets `udp_echo_port = Some(sim.udp_echo_port())` (loopback ICMP cannot be
/// delayed or dropped without netem, so the simulator emulates each link in its UDP echo
/// responder); every https check (and TLS tcp check) to a loopback address it serves gets
/// `ca_file` = the demo CA.
pub fn overlay(inv: &mut Inventory, sim: &Simulator) {
    let ca = sim.ca_file().to_string_lossy().into_owned();
    for c in &mut inv.checks {
        match &mut Arc::make_mut(c).probe {
            ProbeSpec::Icmp(s) => {
                if let Ok(a) = loopback_addr(&s.host, Some(0)) {
                    if sim.echo_hosts.contains(&a.ip()) {
                        s.udp_echo_port = Some(sim.udp_echo_port());
                    }
                }
            }
            ProbeSpec::Http(s) => {
                let Ok(url) = url::Url::parse(&s.url) else {
                    continue;
                };
                if url.scheme() != "https" {
                    continue;
                }
                let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                    continue;
                };
                if let Ok(a) = loopback_addr(host, Some(port)) {
                    if sim.tls_targets.contains(&a) {
                        s.ca_file = Some(ca.clone());
                    }
                }
            }
            ProbeSpec::Tcp(s) if s.tls => {
                if let Ok(a) = loopback_addr(&s.address, None) {
                    if sim.tls_targets.contains(&a) {
                        s.ca_file = Some(ca.clone());
                    }
                }
            }
            ProbeSpec::Transaction(t) => {
                let served = t.steps.iter().any(|step| {
                    let url = step.url.replace("{{", "").replace("}}", "");
                    url::Url::parse(&url).ok().is_some_and(|u| {
                        let (Some(host), Some(port)) = (u.host_str(), u.port_or_known_default())
                        else {
                            return false;
                        };
                        u.scheme() == "https"
                            && loopback_addr(host, Some(port))
                                .is_ok_and(|a| sim.tls_targets.contains(&a))
                    })
                });
                if served {
                    t.ca_file = Some(ca.clone());
                }
            }
            _ => {}
        }
    }
}

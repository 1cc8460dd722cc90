//! Ward paths: for the demo's simulated ward agents, one relay on 127.0.0.1 per (ward, shared
//! service address) stands for the ward's own route to that service. [`WardPaths::overlay`]
//! points the agent-run copies of the service checks (`CheckId::agent`) at their ward's relay,
//! so the agents (the real agent code, fed by the central's check list) reach the services
//! through it while the data centre reaches them directly. A `path_down` fault closes the
//! ward's connections on accept: the service is down from that ward only.
//!
//! Plain HTTP, non-TLS TCP and plain-HTTP transactions are relayed; HTTPS, TLS and DNS checks
//! keep their direct address (a relay would break the certificate's name, DNS is UDP).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{active_at, loopback_addr, Scenario, SimError, Simulator};
use crate::config::{CheckId, Inventory};
use crate::probe::ProbeSpec;

/// Connections relayed at once per relay; more are closed on accept.
const MAX_CONNS: usize = 32;
/// Upper bound on one relayed connection's life.
const CONN_MAX: Duration = Duration::from_secs(60);

/// The relays of every ward with an agent: (ward, service address) → relay address.
#[derive(Debug, Clone, Default)]
pub struct WardPaths {
    relays: BTreeMap<(String, SocketAddr), SocketAddr>,
}

/// `scheme://host:port` of a URL (text before the path), the host:port, and the rest.
fn split_authority(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    Some((&url[..start], &url[start..end], &url[end..]))
}

/// The relayable targets of one check: plain-HTTP URLs' and non-TLS TCP addresses.
fn targets(probe: &ProbeSpec) -> Vec<SocketAddr> {
    let http = |url: &str| -> Option<SocketAddr> {
        if !url.starts_with("http://") {
            return None;
        }
        let (_, authority, _) = split_authority(url)?;
        loopback_addr(authority, Some(80)).ok()
    };
    match probe {
        ProbeSpec::Http(s) => http(&s.url).into_iter().collect(),
        ProbeSpec::Tcp(s) if !s.tls => loopback_addr(&s.address, None).ok().into_iter().collect(),
        ProbeSpec::Transaction(t) => t.steps.iter().filter_map(|s| http(&s.url)).collect(),
        _ => Vec::new(),
    }
}

impl Simulator {
    /// Binds one relay per (ward with an agent, relayable service address) of `inv`.
    pub async fn start_ward_paths(&self, inv: &Inventory) -> Result<WardPaths, SimError> {
        let mut owners: BTreeMap<(String, SocketAddr), Vec<CheckId>> = BTreeMap::new();
        for c in inv.checks.iter().filter(|c| c.id.is_agent()) {
            let ward = c.id.site.as_deref().unwrap_or("").to_string();
            for t in targets(&c.probe) {
                let e = owners.entry((ward.clone(), t)).or_default();
                if !e.contains(&c.id) {
                    e.push(c.id.clone());
                }
            }
        }
        let mut paths = WardPaths::default();
        for ((ward, target), ids) in owners {
            let bind = SocketAddr::from(([127, 0, 0, 1], 0));
            let listener = TcpListener::bind(bind)
                .await
                .map_err(|source| SimError::Bind {
                    what: "ward path relay",
                    addr: bind,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| SimError::Bind {
                what: "ward path relay",
                addr: bind,
                source,
            })?;
            let relay = Relay {
                target,
                owners: ids,
                scenario: self.scenario.clone(),
                started: self.started,
            };
            if let Ok(mut tasks) = self.tasks.lock() {
                tasks.spawn(relay.run(listener, self.cancel.clone()));
            }
            paths.relays.insert((ward, target), local);
        }
        Ok(paths)
    }
}

impl WardPaths {
    /// How many relays run.
    pub fn len(&self) -> usize {
        self.relays.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Points every agent-run check copy of `inv` at its ward's relays.
    pub fn overlay(&self, inv: &mut Inventory) {
        for c in inv.checks.iter_mut().filter(|c| c.id.is_agent()) {
            let ward = c.id.site.as_deref().unwrap_or("").to_string();
            let via = |addr: SocketAddr| self.relays.get(&(ward.clone(), addr)).copied();
            let rewrite_url = |url: &mut String| {
                if !url.starts_with("http://") {
                    return;
                }
                let Some((scheme, authority, rest)) = split_authority(url) else {
                    return;
                };
                if let Some(r) = loopback_addr(authority, Some(80)).ok().and_then(via) {
                    *url = format!("{scheme}{r}{rest}");
                }
            };
            match &mut Arc::make_mut(c).probe {
                ProbeSpec::Http(s) => rewrite_url(&mut s.url),
                ProbeSpec::Tcp(s) if !s.tls => {
                    if let Some(r) = loopback_addr(&s.address, None).ok().and_then(via) {
                        s.address = r.to_string();
                    }
                }
                ProbeSpec::Transaction(t) => {
                    for step in &mut t.steps {
                        rewrite_url(&mut step.url);
                    }
                }
                _ => {}
            }
        }
    }
}

struct Relay {
    target: SocketAddr,
    owners: Vec<CheckId>,
    scenario: Arc<Scenario>,
    started: tokio::time::Instant,
}

impl Relay {
    fn broken(&self) -> bool {
        active_at(&self.scenario, self.started.elapsed())
            .iter()
            .any(|f| self.owners.iter().any(|id| f.targets(id, false)))
    }

    async fn run(self, listener: TcpListener, cancel: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNS));
        loop {
            let (mut inbound, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            // The path is down: the connection is closed at once (the ward sees its request
            // fail; the data centre, not relayed, does not).
            if self.broken() {
                drop(inbound);
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let (target, cancel) = (self.target, cancel.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let relay = async {
                    let mut outbound = TcpStream::connect(target).await?;
                    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
                };
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::timeout(CONN_MAX, relay) => {}
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_split_without_touching_templates() {
        let (s, a, r) = split_authority("http://127.20.0.1:18080/api/{{code}}").unwrap();
        assert_eq!((s, a, r), ("http://", "127.20.0.1:18080", "/api/{{code}}"));
        let (_, a, r) = split_authority("http://127.20.0.2").unwrap();
        assert_eq!((a, r), ("127.20.0.2", ""));
    }
}

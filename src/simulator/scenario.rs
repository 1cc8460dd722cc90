//! Fault scenarios: what the simulator plays, when, and against which site or service.
//!
//! A scenario is a list of faults played in a loop: fault `f` is active whenever
//! `(time since start − f.at) mod cycle < f.duration`, so a fault may run over the end of the
//! cycle into the next one. The TOML format is documented in `examples/scenario.toml`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SimError;
use crate::config::CheckId;

/// The ward whose path to the document-management system breaks in the default scenario (one
/// of the demo's simulated ward agents, `demo::DEMO_AGENT_SITES`).
pub const DEMO_BROKEN_WARD: &str = "phuong-cau-ong-lanh";

/// The default UDP echo port of the per-site link responders.
pub const DEFAULT_UDP_ECHO_PORT: u16 = 17007;

/// A fault scenario: faults played in a loop every `cycle`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Length of one loop of the scenario (default 10 minutes).
    #[serde(default = "default_cycle", with = "humantime_serde")]
    pub cycle: Duration,
    /// Port of the UDP echo (RFC 862) responder bound on every site's link address.
    #[serde(default = "default_udp_echo_port")]
    pub udp_echo_port: u16,
    /// Validity of the TLS leaf certificate served on every https target (default 10 days, so
    /// the "certificate near expiry" finding is always on).
    #[serde(default = "default_cert_valid_for", with = "humantime_serde")]
    pub cert_valid_for: Duration,
    /// The faults, `[[fault]]` in TOML.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
}

/// One fault: `kind` against a site or service, from `at` for `duration` in every cycle.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Offset into the cycle at which the fault begins.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    pub kind: FaultKind,
    /// Target site slug (exactly one of `site` / `service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Target shared-service slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Limit the fault to one check of the target (`endpoint`, `portal` …); not for `link_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// `link_loss`: loss ratio that replaces the link's normal loss (0.15 = 15 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// `link_latency`: extra echo delay (adds to the round-trip time); `slow`: delay before each HTTP response.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// `http_status`: the status every HTTP request gets (e.g. 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// What a fault does. See the module documentation of [`crate::simulator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The link is cut: UDP echo drops everything and the target's HTTP and TCP listeners are
    /// closed (probes get `connect_refused`); they are bound again when the fault ends.
    LinkDown,
    /// The link loses `loss` of the echo datagrams (replaces the class's normal loss).
    LinkLoss,
    /// The link's echo delay grows by `delay`.
    LinkLatency,
    /// Every HTTP request to the target is answered with `status`.
    HttpStatus,
    /// Every HTTP response of the target is delayed by `delay`.
    Slow,
    /// The target's TCP listeners are closed (HTTP stays up).
    TcpDown,
    /// Every HTTP request is answered `200` with a maintenance page instead of the
    /// application: "answering", not "working".
    WrongBody,
    /// The administrative-procedures application lets users log in, but its dossier lookup
    /// (`/api/ho-so/…`) answers `200 {"status":"error"}`: only a transaction check sees it.
    LookupError,
    /// One ward's path to a shared service is broken (`site` = the ward, `service` = the
    /// service): the ward agent's connections through the simulated path are closed at once,
    /// while the data centre still reaches the service.
    PathDown,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::LinkDown => "link_down",
            FaultKind::LinkLoss => "link_loss",
            FaultKind::LinkLatency => "link_latency",
            FaultKind::HttpStatus => "http_status",
            FaultKind::Slow => "slow",
            FaultKind::TcpDown => "tcp_down",
            FaultKind::WrongBody => "wrong_body",
            FaultKind::LookupError => "lookup_error",
            FaultKind::PathDown => "path_down",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_cycle() -> Duration {
    Duration::from_secs(600)
}

fn default_udp_echo_port() -> u16 {
    DEFAULT_UDP_ECHO_PORT
}

fn default_cert_valid_for() -> Duration {
    Duration::from_secs(10 * 86_400)
}

impl Default for Scenario {
    /// No faults at all (normal link behaviour, near-expiry certificate).
    fn default() -> Self {
        Scenario {
            cycle: default_cycle(),
            udp_echo_port: default_udp_echo_port(),
            cert_valid_for: default_cert_valid_for(),
            faults: Vec::new(),
        }
    }
}

impl Fault {
    fn new(at: u64, duration: u64, kind: FaultKind) -> Fault {
        Fault {
            at: Duration::from_secs(at),
            duration: Duration::from_secs(duration),
            kind,
            site: None,
            service: None,
            check: None,
            loss: None,
            delay: None,
            status: None,
        }
    }

    /// `site/<slug>[/<check>]` or `service/<slug>[/<check>]`.
    pub fn target(&self) -> String {
        if let (FaultKind::PathDown, Some(site), Some(svc)) = (self.kind, &self.site, &self.service)
        {
            return format!("site/{site} → service/{svc}");
        }
        let (what, slug) = match (&self.site, &self.service) {
            (Some(s), _) => ("site", s.as_str()),
            (None, Some(s)) => ("service", s.as_str()),
            (None, None) => ("?", ""),
        };
        match &self.check {
            Some(c) => format!("{what}/{slug}/{c}"),
            None => format!("{what}/{slug}"),
        }
    }

    /// One line for logs and the status page.
    pub fn describe(&self) -> String {
        let t = self.target();
        let ms = |d: Option<Duration>| humantime::format_duration(d.unwrap_or_default());
        match self.kind {
            FaultKind::LinkDown => format!(
                "link_down {t}: UDP echo silent, HTTP/TCP listeners closed (connect refused)"
            ),
            FaultKind::LinkLoss => format!(
                "link_loss {t}: {:.0} % of echo datagrams dropped",
                self.loss.unwrap_or(0.0) * 100.0
            ),
            FaultKind::LinkLatency => format!("link_latency {t}: +{} echo delay", ms(self.delay)),
            FaultKind::HttpStatus => format!(
                "http_status {t}: every HTTP request answered {}",
                self.status.unwrap_or(0)
            ),
            FaultKind::Slow => format!("slow {t}: HTTP responses delayed {}", ms(self.delay)),
            FaultKind::TcpDown => format!("tcp_down {t}: TCP listeners closed"),
            FaultKind::WrongBody => {
                format!("wrong_body {t}: HTTP answers 200 with a maintenance page")
            }
            FaultKind::LookupError => {
                format!("lookup_error {t}: login works, the dossier lookup answers {{\"status\":\"error\"}}")
            }
            FaultKind::PathDown => {
                format!("path_down {t}: the ward's path closes every connection (the data centre still reaches the service)")
            }
        }
    }

    /// Whether the fault targets the owner of check `id` (the `check` filter applies unless
    /// `whole_owner`).
    pub(crate) fn targets(&self, id: &CheckId, whole_owner: bool) -> bool {
        if self.kind == FaultKind::PathDown {
            // Only the ward agent's copies of the service's checks travel that path.
            return id.is_agent()
                && id.site.as_deref() == self.site.as_deref()
                && id.service.as_deref() == self.service.as_deref()
                && (whole_owner || self.check.as_deref().is_none_or(|c| c == &*id.name));
        }
        if id.is_agent() {
            // Agent-run copies share the service's listeners: a ward's fault never closes them.
            return false;
        }
        let owner = match (&self.site, &self.service) {
            (Some(s), _) => id.site.as_deref() == Some(s.as_str()),
            (None, Some(s)) => id.service.as_deref() == Some(s.as_str()),
            (None, None) => false,
        };
        owner && (whole_owner || self.check.as_deref().is_none_or(|c| c == &*id.name))
    }

    /// Whether the fault is active at `elapsed` since the scenario started.
    pub(crate) fn active_at(&self, elapsed: Duration, cycle: Duration) -> bool {
        self.remaining_at(elapsed, cycle).is_some()
    }

    /// Time left of the fault at `elapsed`, when it is active.
    pub(crate) fn remaining_at(&self, elapsed: Duration, cycle: Duration) -> Option<Duration> {
        if self.duration.is_zero() || cycle.is_zero() {
            return None;
        }
        let c = cycle.as_nanos();
        let phase = elapsed.as_nanos() % c;
        let since = (phase + c - self.at.as_nanos() % c) % c;
        let d = self.duration.as_nanos();
        (since < d).then(|| nanos(d - since))
    }

    /// Time until the next start or end of the fault after `elapsed` (never zero).
    pub(crate) fn next_change(&self, elapsed: Duration, cycle: Duration) -> Duration {
        if cycle.is_zero() {
            return Duration::from_secs(3600);
        }
        let c = cycle.as_nanos();
        let phase = elapsed.as_nanos() % c;
        let start = self.at.as_nanos() % c;
        let end = (self.at.as_nanos() + self.duration.as_nanos()) % c;
        let until = |b: u128| match (b + c - phase) % c {
            0 => c,
            n => n,
        };
        nanos(until(start).min(until(end)))
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

impl Scenario {
    /// The built-in demo scenario; `examples/scenario.toml` is the same scenario written out.
    ///
    /// - 20 s: link_down of Phường Bến Thành for 2 min;
    /// - 60 s: the administrative-procedures system answers 503 for 90 s;
    /// - 150 s: Côn Đảo's island link loses 15 % for 150 s;
    /// - 240 s: Phường Sài Gòn's public-service centre answers in 4 s for 90 s;
    /// - 340 s: Xã Thạnh An's island link gets 300 ms slower for 120 s (no loss);
    /// - 480 s: the document-management system answers 200 with a maintenance page for 60 s;
    /// - 30 s: Phường Cầu Ông Lãnh's path to the document-management system (seen by its ward
    ///   agent only) is down for 4 min;
    /// - cycle 10 min.
    pub fn default_demo() -> Scenario {
        let site = |mut f: Fault, slug: &str| {
            f.site = Some(slug.into());
            f
        };
        let down = site(Fault::new(20, 120, FaultKind::LinkDown), "phuong-ben-thanh");
        let mut status = Fault::new(60, 90, FaultKind::HttpStatus);
        status.service = Some("thu-tuc-hanh-chinh".into());
        status.status = Some(503);
        let mut loss = site(Fault::new(150, 150, FaultKind::LinkLoss), "dac-khu-con-dao");
        loss.loss = Some(0.15);
        let mut slow = site(Fault::new(240, 90, FaultKind::Slow), "phuong-sai-gon");
        slow.check = Some("endpoint".into());
        slow.delay = Some(Duration::from_secs(4));
        let mut latency = site(Fault::new(340, 120, FaultKind::LinkLatency), "xa-thanh-an");
        latency.delay = Some(Duration::from_millis(300));
        let mut lookup = Fault::new(400, 90, FaultKind::LookupError);
        lookup.service = Some("thu-tuc-hanh-chinh".into());
        let mut wrong = Fault::new(480, 60, FaultKind::WrongBody);
        wrong.service = Some("quan-ly-van-ban".into());
        let mut path = site(Fault::new(30, 240, FaultKind::PathDown), DEMO_BROKEN_WARD);
        path.service = Some("quan-ly-van-ban".into());
        Scenario {
            faults: vec![down, status, loss, slow, latency, lookup, wrong, path],
            ..Scenario::default()
        }
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            SimError::Scenario { message, .. } => SimError::Scenario {
                path: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> Result<Scenario, SimError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (line, col) = crate::config::Locator::new(text).at(s.start);
                    format!("{line}:{col}: ")
                })
                .unwrap_or_default();
            SimError::Scenario {
                path: None,
                message: format!("{at}{}", e.message().trim()),
            }
        })?;
        let problems = scenario.problems();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(SimError::Scenario {
                path: None,
                message: problems.join("; "),
            })
        }
    }

    /// Everything wrong with the scenario itself (not checked against an inventory).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cycle < Duration::from_secs(1) {
            out.push("cycle must be at least 1s".to_string());
        }
        if self.udp_echo_port == 0 {
            out.push("udp_echo_port must not be 0".to_string());
        }
        if self.cert_valid_for < Duration::from_secs(60) {
            out.push("cert_valid_for must be at least 1m".to_string());
        }
        for (i, f) in self.faults.iter().enumerate() {
            let n = i + 1;
            let mut p = |m: String| out.push(format!("fault #{n} ({}): {m}", f.kind));
            if f.kind == FaultKind::PathDown {
                if f.site.is_none() || f.service.is_none() {
                    p(
                        "needs the ward (`site = \"slug\"`) and the service (`service = \"slug\"`)"
                            .into(),
                    );
                }
            } else if f.site.is_some() == f.service.is_some() {
                p("name exactly one target: `site = \"slug\"` or `service = \"slug\"`".into());
            }
            if f.at >= self.cycle {
                p("`at` must be shorter than the cycle".into());
            }
            if f.duration.is_zero() || f.duration > self.cycle {
                p("`duration` must be more than 0 and at most the cycle".into());
            }
            let link = matches!(
                f.kind,
                FaultKind::LinkDown | FaultKind::LinkLoss | FaultKind::LinkLatency
            );
            if link && f.check.is_some() {
                p("`check` does not apply to link faults (they hit the whole site)".into());
            }
            let need = |field: &str, ok: bool| (!ok).then(|| format!("needs `{field}`"));
            let wrong = |field: &str, set: bool| set.then(|| format!("`{field}` does not apply"));
            let issues = [
                match f.kind {
                    FaultKind::LinkLoss => need("loss", f.loss.is_some()),
                    _ => wrong("loss", f.loss.is_some()),
                },
                match f.kind {
                    FaultKind::LinkLatency | FaultKind::Slow => need("delay", f.delay.is_some()),
                    _ => wrong("delay", f.delay.is_some()),
                },
                match f.kind {
                    FaultKind::HttpStatus => need("status", f.status.is_some()),
                    _ => wrong("status", f.status.is_some()),
                },
            ];
            for m in issues.into_iter().flatten() {
                p(m);
            }
            if let Some(l) = f.loss {
                if !(0.0..=1.0).contains(&l) {
                    p("`loss` must be a ratio between 0 and 1 (0.15 = 15 %)".into());
                }
            }
            if let Some(s) = f.status {
                if !(100..=599).contains(&s) {
                    p("`status` must be an HTTP status between 100 and 599".into());
                }
            }
            if let Some(d) = f.delay {
                if d > Duration::from_secs(300) {
                    p("`delay` above 5m is not a useful fault".into());
                }
            }
        }
        out
    }

    /// Faults whose site/service/check does not exist in `inv` (the simulator skips them with a
    /// warning; `demo` may prefer to refuse a user scenario with such typos).
    pub fn unknown_targets(&self, inv: &crate::config::Inventory) -> Vec<String> {
        self.faults
            .iter()
            .filter(|f| !inv.checks.iter().any(|c| f.targets(&c.id, false)))
            .map(|f| format!("{} targets {}, which has no such check", f.kind, f.target()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_wraps_around_the_cycle() {
        let mut f = Fault::new(8, 4, FaultKind::Slow);
        let cycle = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert!(!f.active_at(s(7), cycle));
        assert!(f.active_at(s(8), cycle));
        assert!(f.active_at(s(11), cycle));
        assert!(!f.active_at(s(12), cycle));
        assert!(f.active_at(s(19), cycle));
        assert_eq!(f.remaining_at(s(9), cycle), Some(s(3)));
        assert_eq!(f.next_change(s(7), cycle), s(1));
        assert_eq!(f.next_change(s(8), cycle), s(4));
        assert_eq!(f.next_change(s(12), cycle), s(6));
        f.at = s(0);
        f.duration = s(10);
        assert!(f.active_at(s(123), cycle));
    }

    #[test]
    fn validation_lists_every_problem() {
        let text = r#"
            cycle = "1m"
            [[fault]]
            at = "2m"
            duration = "0s"
            kind = "link_loss"
            site = "a"
            service = "b"
            status = 503
        "#;
        let err = Scenario::parse(text).unwrap_err().to_string();
        for m in [
            "exactly one target",
            "`at`",
            "`duration`",
            "needs `loss`",
            "`status` does not apply",
        ] {
            assert!(err.contains(m), "{m} missing in {err}");
        }
        let err = Scenario::parse("[[fault]]\nat = \"1s\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("3:1"), "{err}");
    }

    #[test]
    fn path_down_targets_only_the_wards_agent_copies() {
        let mut f = Fault::new(0, 10, FaultKind::PathDown);
        f.site = Some("phuong-x".into());
        let sc = |f: &Fault| Scenario {
            faults: vec![f.clone()],
            ..Scenario::default()
        };
        assert!(
            sc(&f).problems()[0].contains("needs the ward"),
            "service missing"
        );
        f.service = Some("dms".into());
        assert!(sc(&f).problems().is_empty());
        assert!(f.targets(&CheckId::agent("phuong-x", "dms", "web"), false));
        assert!(!f.targets(&CheckId::agent("phuong-y", "dms", "web"), false));
        assert!(!f.targets(&CheckId::service("dms", "web"), false));
        assert!(!f.targets(&CheckId::site("phuong-x", "endpoint"), false));
        // A ward's own faults never hit the service listeners its agent copies share.
        let mut down = Fault::new(0, 10, FaultKind::LinkDown);
        down.site = Some("phuong-x".into());
        assert!(down.targets(&CheckId::site("phuong-x", "link"), true));
        assert!(!down.targets(&CheckId::agent("phuong-x", "dms", "web"), true));
    }

    #[test]
    fn default_demo_is_valid() {
        assert!(Scenario::default_demo().problems().is_empty());
    }
}

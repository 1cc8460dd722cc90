//! Serde types mirroring `probes.toml` one to one. Every struct denies unknown fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::HumanDuration;
use crate::probe::ProbeSpec;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// Per-class defaults: `[link_class.island]` …
    pub link_class: BTreeMap<String, Spanned<LinkClass>>,
    /// Checks applied to every site.
    #[serde(default, rename = "template")]
    pub templates: Vec<Spanned<Template>>,
    /// The city's shared software.
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<Service>>,
    /// `[inventory] sites = [ … ]`: the 168 sites, one inline table per line.
    pub inventory: InventorySection,
    /// Per-site changes to a templated check.
    #[serde(default, rename = "site_override")]
    pub site_overrides: Vec<Spanned<SiteOverride>>,
    /// Extra checks at one site.
    #[serde(default, rename = "site_check")]
    pub site_checks: Vec<Spanned<SiteCheck>>,
    /// Incident engine settings.
    #[serde(default)]
    pub incidents: IncidentsSection,
    /// Where the incident store lives (SQLite file or PostgreSQL).
    #[serde(default)]
    pub store: StoreSection,
    /// Write API settings.
    #[serde(default)]
    pub api: ApiSection,
    /// Specialist teams and the sites/services they cover.
    #[serde(default, rename = "team")]
    pub teams: Vec<Spanned<Team>>,
    /// Notification targets.
    #[serde(default, rename = "notify")]
    pub notify: Vec<Spanned<NotifyTarget>>,
    /// Planned maintenance windows.
    #[serde(default, rename = "maintenance")]
    pub maintenance: Vec<Spanned<MaintenanceSpec>>,
    /// Readiness criteria (the leadership report and the status page summary).
    #[serde(default)]
    pub readiness: ReadinessSection,
    /// Retention of the availability history (per-minute and hourly rollups).
    #[serde(default)]
    pub history: HistorySection,
    /// Ward reports (`POST /api/v1/reports`): where the per-site and per-team tokens are.
    #[serde(default)]
    pub reports: ReportsSection,
    /// Ward agents (`lienthong agent`) allowed to push results, one per site.
    #[serde(default, rename = "agent")]
    pub agents: Vec<Spanned<AgentSpec>>,
}

/// `[reports]`: who may report a problem for a site. Tokens are never written in this file:
/// `tokens_file` names a file of `site <slug> <token>` / `team <name> <token>` lines (`#`
/// comments; keep it mode 0600), and `team_token_env` maps a team to the environment variable
/// holding its token. A site token reports for its site only; a team token for every site of
/// the team. Neither set = reports disabled (403). Read at start and on every reload.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsSection {
    #[serde(default)]
    pub tokens_file: Option<String>,
    #[serde(default)]
    pub team_token_env: BTreeMap<String, String>,
}

/// `[[agent]]`: a ward agent allowed to push results for one site. Its bearer token is never
/// written here: either a file holding it (`token_file`, read at start and on reload) or its
/// SHA-256 (`token_sha256`, 64 hex digits: `printf %s "$TOKEN" | sha256sum`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub site: String,
    #[serde(default)]
    pub token_file: Option<String>,
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Run the central's `[[service]]` checks from the ward too (default true).
    #[serde(default = "default_true")]
    pub service_checks: bool,
}

fn default_true() -> bool {
    true
}

/// `[readiness]`: when a site counts as "sẵn sàng" (ready) over a window.
///
/// A site is ready when, over the window with maintenance minutes left out, every check's
/// availability reaches the target of its link class, every check's latency quantile stays
/// within its class's limit (`degraded_rtt` for link rounds, `degraded_latency` otherwise),
/// its link loses no more than the class's `degraded_loss`, and no critical incident of the
/// site is open at the end of the window. Too little data → "không đủ dữ liệu".
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessSection {
    /// Default window of `GET /api/v1/readiness`, `lienthong readiness` and the status page.
    #[serde(default = "default_readiness_window")]
    pub window: HumanDuration,
    /// Availability target per link class (0..1), e.g. `island = 0.98`. Classes not listed
    /// get the built-in target of their name (mainland 0.995, rural 0.99, island 0.98,
    /// datacenter 0.999), else `default_availability`.
    #[serde(default)]
    pub availability: BTreeMap<String, f64>,
    /// Target for classes neither listed in `availability` nor built in.
    #[serde(default = "default_availability_other")]
    pub default_availability: f64,
    /// Latency quantile compared with the class limit (0.95 = p95).
    #[serde(default = "default_quantile")]
    pub latency_quantile: f64,
    /// Share of the expected minutes (outside maintenance, since the check exists) that must
    /// have data; below it the verdict is "không đủ dữ liệu".
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// Observed time (outside maintenance) a check needs before it can be judged.
    #[serde(default = "default_min_observed")]
    pub min_observed: HumanDuration,
}

impl Default for ReadinessSection {
    fn default() -> Self {
        ReadinessSection {
            window: default_readiness_window(),
            availability: BTreeMap::new(),
            default_availability: default_availability_other(),
            latency_quantile: default_quantile(),
            min_coverage: default_min_coverage(),
            min_observed: default_min_observed(),
        }
    }
}

impl ReadinessSection {
    /// The availability target of a link class.
    pub fn target(&self, class: &str) -> f64 {
        self.availability
            .get(class)
            .copied()
            .or(match class {
                "mainland" => Some(0.995),
                "rural" => Some(0.99),
                "island" => Some(0.98),
                "datacenter" => Some(0.999),
                _ => None,
            })
            .unwrap_or(self.default_availability)
    }
}

fn default_readiness_window() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(86_400))
}
fn default_availability_other() -> f64 {
    0.99
}
fn default_quantile() -> f64 {
    0.95
}
fn default_min_coverage() -> f64 {
    0.9
}
fn default_min_observed() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

/// `[history]`: how long the availability history is kept (in the incident database).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// Per-minute rollups (attempts, successes, latency, loss per check).
    #[serde(default = "default_keep_minutes")]
    pub keep_minutes: HumanDuration,
    /// Hourly rollups, derived from the minutes.
    #[serde(default = "default_keep_hours")]
    pub keep_hours: HumanDuration,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            keep_minutes: default_keep_minutes(),
            keep_hours: default_keep_hours(),
        }
    }
}

fn default_keep_minutes() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(35 * 86_400))
}
fn default_keep_hours() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5 * 365 * 86_400))
}

/// `[store]`: where incidents, timelines, the outbox and the history are kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `"sqlite:PATH"` or `"postgres://USER@HOST:PORT/DATABASE"` (never with a password);
    /// unset: the SQLite file `[incidents] database`.
    #[serde(default, deserialize_with = "store_url")]
    pub url: Option<String>,
    /// File whose first line is the PostgreSQL password; unset: `PGPASSWORD`.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the PostgreSQL server's certificate: connections then
    /// use TLS (required) and verify the server against it; unset: plain TCP.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// This instance's name among those sharing a PostgreSQL store (`lienthong_leader`,
    /// `/api/v1/cluster`); unset: `HOSTNAME:PORT` of `[server] listen`.
    #[serde(default)]
    pub instance: Option<String>,
}

/// Overrides `[store] url`.
pub const STORE_URL_ENV: &str = "LIENTHONG_STORE_URL";
/// Overrides `[store] password_file`.
pub const STORE_PASSWORD_FILE_ENV: &str = "LIENTHONG_STORE_PASSWORD_FILE";

/// Checked when the file is read, so `check-config` reports it at its line.
fn store_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    crate::incidents::StoreLocation::parse(&s).map_err(D::Error::custom)?;
    Ok(Some(s))
}

impl StoreSection {
    /// The store to open: `LIENTHONG_STORE_URL` (one config file for several hosts), else
    /// `url`, else `sqlite:{incidents_database}`; the PostgreSQL password read from
    /// `password_file`, else `PGPASSWORD`.
    pub fn location(
        &self,
        incidents_database: &str,
    ) -> Result<crate::incidents::StoreLocation, String> {
        use crate::incidents::StoreLocation;
        let env = std::env::var(STORE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty());
        let Some(url) = env.as_ref().or(self.url.as_ref()) else {
            return Ok(StoreLocation::Sqlite(incidents_database.into()));
        };
        let parsed = StoreLocation::parse(url.trim()).map_err(|e| {
            if env.is_some() {
                format!("{STORE_URL_ENV}: {e}")
            } else {
                e
            }
        })?;
        match parsed {
            StoreLocation::Postgres(t) => {
                let file = std::env::var_os(STORE_PASSWORD_FILE_ENV)
                    .map(std::path::PathBuf::from)
                    .or_else(|| self.password_file.clone());
                let password = match file {
                    Some(f) => Some(crate::incidents::location::read_password_file(&f)?),
                    None => std::env::var("PGPASSWORD").ok(),
                };
                let t = t
                    .with_password(password)
                    .with_ca_file(self.ca_file.as_deref())?;
                Ok(StoreLocation::Postgres(t))
            }
            sqlite => Ok(sqlite),
        }
    }
}

/// `[incidents]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsSection {
    /// SQLite file of incidents, timelines and the notification outbox.
    #[serde(default = "default_database")]
    pub database: String,
    /// Resolved incidents older than this are deleted.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// Re-probe interval after a first failure, until the thresholds decide.
    #[serde(default = "default_confirm")]
    pub confirm_interval: HumanDuration,
    /// Checks (keys like `service/mang-loi/core`) that prove the prober itself is connected.
    #[serde(default)]
    pub reference_checks: Vec<String>,
    /// Share of sites whose link is down at once (0..1) from which the prober's own uplink is
    /// suspected: one prober incident, per-site incidents held.
    #[serde(default = "default_prober_share")]
    pub prober_share: f64,
    /// A presented certificate closer than this to its `notAfter` opens a warning incident.
    #[serde(default = "default_cert_warning")]
    pub cert_warning: HumanDuration,
    /// Closer than this (or expired): the certificate's incident is critical.
    #[serde(default = "default_cert_critical")]
    pub cert_critical: HumanDuration,
    /// Where the runbook pages (docs/runbooks/*.md) are published, e.g. your git host's
    /// `…/blob/main/docs/runbooks`; unset: lienthong's own `/runbooks/`.
    #[serde(default)]
    pub runbook_base_url: Option<String>,
}

impl Default for IncidentsSection {
    fn default() -> Self {
        IncidentsSection {
            database: default_database(),
            retention: default_retention(),
            confirm_interval: default_confirm(),
            reference_checks: Vec::new(),
            prober_share: default_prober_share(),
            cert_warning: default_cert_warning(),
            cert_critical: default_cert_critical(),
            runbook_base_url: None,
        }
    }
}

fn default_database() -> String {
    "lienthong.db".into()
}
fn default_retention() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(180 * 86400))
}
fn default_confirm() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}
fn default_cert_warning() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(21 * 86400))
}
fn default_cert_critical() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 86400))
}
fn default_prober_share() -> f64 {
    0.5
}

/// `[api]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Environment variable holding the bearer token of the write endpoints. Unset variable =
    /// write endpoints answer 403 (disabled).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Longest maintenance window `POST /api/v1/maintenance` accepts (a forgotten window
    /// silences alerts for as long as it lasts).
    #[serde(default = "default_max_maintenance")]
    pub max_maintenance: HumanDuration,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            token_env: default_token_env(),
            max_maintenance: default_max_maintenance(),
        }
    }
}

fn default_max_maintenance() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 86400))
}

fn default_token_env() -> String {
    "LIENTHONG_API_TOKEN".into()
}

/// `[[team]]`: a specialist team (tổ chuyên trách). A site belongs to every team that lists its
/// slug, its former district or its former province; a service to every team listing it (or "*").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub former_provinces: Vec<String>,
    #[serde(default)]
    pub former_districts: Vec<String>,
    #[serde(default)]
    pub sites: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    /// `[[team.escalation]]`: who else is told while an incident of this team stays neither
    /// acknowledged nor resolved. Steps in increasing `after`; each fires once per incident.
    #[serde(default)]
    pub escalation: Vec<Spanned<EscalationStep>>,
}

/// One escalation step: after `after` of unacknowledged time (time spent acknowledged does not
/// count), notify these `[[notify]]` targets (their severity/team filters do not apply).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    pub after: HumanDuration,
    pub notify: Vec<String>,
}

/// `[[notify]]`: where incident events are sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    pub name: String,
    pub kind: NotifyKind,
    /// Webhook URL, or the Alertmanager base URL (`/api/v2/alerts` is appended).
    pub url: String,
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Only incidents of these severities (default: all).
    #[serde(default)]
    pub severities: Vec<String>,
    /// Only incidents of these teams (default: all).
    #[serde(default)]
    pub teams: Vec<String>,
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
    /// `"22:00-06:00"` (Asia/Ho_Chi_Minh): warnings wait in the outbox until it ends; critical
    /// incidents are sent at once.
    #[serde(default)]
    pub quiet_hours: Option<String>,
}

fn default_notify_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    Webhook,
    Alertmanager,
}

/// `[[maintenance]]`: a planned window, in Asia/Ho_Chi_Minh time (UTC+7, no DST). Either one-off
/// (`start`, `end` as "YYYY-MM-DD HH:MM") or recurring (`every` = "day" or a weekday "mon".."sun",
/// `at` = "HH:MM", `duration`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    pub reason: String,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub duration: Option<HumanDuration>,
}

/// `[server]`: the HTTP server (metrics, API, status page). Its limits keep one client from
/// holding connections (and file descriptors) the prober needs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the HTTP server, `ip:port` or `host:port`.
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    pub listen: String,
    /// A client must send a request's whole head within this time (slowloris).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// A connection with no byte read or written for this long is closed. At least 20 s:
    /// event streams send a keep-alive comment every 15 s.
    #[serde(default = "default_idle_timeout", deserialize_with = "idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Connections served at once; more wait in the kernel's accept queue. Also capped at
    /// start to a quarter of the process's file-descriptor limit, so the API can never use
    /// the descriptors the probes need.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9168".into()
}
fn default_header_read_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
fn default_max_connections() -> usize {
    512
}

/// Smallest `idle_timeout`: above the 15 s keep-alive of the event stream.
pub const MIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `ip:port`, `[ipv6]:port` or `host:port` with a numeric port: checked when the file is read, so
/// `check-config` and a reload reject what `bind` would reject at the next start.
fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s);
    }
    let bad = || {
        D::Error::custom(format!(
            "invalid listen address {s:?}: expected ip:port, [ipv6]:port or host:port (e.g. \"127.0.0.1:9168\")"
        ))
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(s)
}

fn idle_timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    use serde::de::Error;
    let v = HumanDuration::deserialize(d)?;
    if v.0 < MIN_IDLE_TIMEOUT {
        return Err(D::Error::custom(format!(
            "idle_timeout {:?} is below {MIN_IDLE_TIMEOUT:?}: event streams send a keep-alive every 15 s",
            v.0
        )));
    }
    Ok(v)
}

/// `[scheduler]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// Probes running at once, over all checks.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Probes running at once against one site (its link is often thin).
    #[serde(default = "default_per_site")]
    pub per_site_concurrency: usize,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        SchedulerSection {
            max_concurrency: default_max_concurrency(),
            per_site_concurrency: default_per_site(),
        }
    }
}

fn default_max_concurrency() -> usize {
    256
}
fn default_per_site() -> usize {
    4
}

/// `[link_class.NAME]`: defaults for every check of a site in this class.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClass {
    #[serde(default)]
    pub description: Option<String>,
    /// Name shown on Vietnamese pages and reports instead of the class key
    /// ("Phường nội thành" rather than "mainland"); default: the key.
    #[serde(default)]
    pub display_name: Option<String>,
    pub interval: Spanned<HumanDuration>,
    pub timeout: Spanned<HumanDuration>,
    /// Echo requests per link round.
    pub packets: Spanned<u32>,
    /// Gap between echo requests.
    pub pacing: HumanDuration,
    /// How long each echo request waits for its reply (default 2s).
    #[serde(default = "default_reply_timeout")]
    pub reply_timeout: HumanDuration,
    /// A round losing more than this ratio counts as failed.
    pub max_loss: Spanned<f64>,
    /// Loss ratio (averaged over recent rounds) from which the link is degraded.
    pub degraded_loss: Spanned<f64>,
    /// Average RTT from which the link is degraded.
    pub degraded_rtt: HumanDuration,
    /// Jitter (RTT standard deviation) from which the link is degraded.
    pub degraded_jitter: HumanDuration,
    /// Response time from which an HTTP/TCP check of the site is degraded.
    pub degraded_latency: HumanDuration,
}

fn default_reply_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}

/// `[[template]]`: a check applied to every site, with `{addr.KEY}`, `{slug}`, `{code}`
/// placeholders filled from the site.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    /// What the check proves about the site.
    pub role: CheckRoleSpec,
    /// Vietnamese title shown to people.
    pub title: String,
    #[serde(default)]
    pub title_en: Option<String>,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    pub probe: ProbeSpec,
}

/// Roles of a check at a site. `link` is the parent of the others in correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckRoleSpec {
    Link,
    Endpoint,
    Video,
    Other,
}

/// `[[service]]`: one piece of the city's shared software.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub name_en: Option<String>,
    /// Class whose timing defaults apply (usually `datacenter`).
    pub link_class: String,
    #[serde(rename = "check")]
    pub checks: Vec<Spanned<ServiceCheck>>,
}

/// `[[service.check]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCheck {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    pub probe: ProbeSpec,
}

/// `[inventory]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySection {
    pub sites: Vec<Spanned<Site>>,
}

/// One inline table of `site = [ … ]`: the reference data of a site plus its
/// address plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Official administrative code.
    pub code: String,
    pub slug: String,
    pub name: String,
    pub kind: SiteKind,
    pub former_province: String,
    pub former_district: String,
    pub island: bool,
    pub lat: f64,
    pub lon: f64,
    /// Defaults to `island` for island sites, else `rural` for xã, else `mainland`.
    #[serde(default)]
    pub link_class: Option<String>,
    /// The address plan: values for `{addr.KEY}` in templates (`link`, `endpoint`, `video` …).
    #[serde(default)]
    pub addr: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteKind {
    Phuong,
    Xa,
    DacKhu,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Phuong => "phuong",
            SiteKind::Xa => "xa",
            SiteKind::DacKhu => "dac-khu",
        }
    }
}

/// `[[site_override]]`: changes one templated check at one site.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteOverride {
    pub site: String,
    pub check: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Replaces the template's probe entirely (placeholders still apply).
    #[serde(default)]
    pub probe: Option<ProbeSpec>,
}

/// `[[site_check]]`: an extra check at one site.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteCheck {
    pub site: String,
    pub name: String,
    #[serde(default = "other_role")]
    pub role: CheckRoleSpec,
    pub title: String,
    #[serde(default)]
    pub interval: Option<HumanDuration>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    pub probe: ProbeSpec,
}

fn other_role() -> CheckRoleSpec {
    CheckRoleSpec::Other
}

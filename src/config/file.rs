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
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the HTTP server (metrics, API, status page).
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9168".into()
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
    pub interval: Spanned<HumanDuration>,
    pub timeout: Spanned<HumanDuration>,
    /// Echo requests per link round.
    pub packets: Spanned<u32>,
    /// Gap between echo requests.
    pub pacing: HumanDuration,
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

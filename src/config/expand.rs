//! Validation and expansion: templates × sites → one [`CheckDef`] per check, every problem
//! collected with its location.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::file::*;
use super::{ConfigProblem, HumanDuration, Locator};
use crate::probe::{BuildContext, ProbeSpec, RoundShape};

/// The stable identity of a check: `site/<slug>/<name>` or `service/<slug>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CheckId {
    pub site: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub name: Arc<str>,
    /// A check of a ward agent's own agent.toml (`site/<slug>/<name>@site:<slug>`), run and
    /// pushed by the agent only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub agent_local: bool,
}

impl CheckId {
    pub fn site(site: &str, name: &str) -> Self {
        CheckId {
            site: Some(site.into()),
            service: None,
            name: name.into(),
            agent_local: false,
        }
    }

    pub fn service(service: &str, name: &str) -> Self {
        CheckId {
            site: None,
            service: Some(service.into()),
            name: name.into(),
            agent_local: false,
        }
    }

    /// A shared-service check as run by the ward agent of `site` (vantage `site:<slug>`): its
    /// own identity, so the data centre's view of the same check is never overwritten.
    pub fn agent(site: &str, service: &str, name: &str) -> Self {
        CheckId {
            site: Some(site.into()),
            service: Some(service.into()),
            name: name.into(),
            agent_local: false,
        }
    }

    /// A check declared in the agent.toml of `site`'s ward agent (vantage `site:<slug>`).
    pub fn agent_local(site: &str, name: &str) -> Self {
        CheckId {
            agent_local: true,
            ..CheckId::site(site, name)
        }
    }

    /// Whether the check runs at a ward (an agent-run copy or an agent's own check): the
    /// central never schedules it, results arrive from the agent.
    pub fn runs_at_ward(&self) -> bool {
        self.is_agent() || self.agent_local
    }

    /// Whether this is an agent-run copy of a service check (both site and service set).
    pub fn is_agent(&self) -> bool {
        self.site.is_some() && self.service.is_some()
    }

    /// `site:<slug>` for agent-run copies; None for the data centre's own runs.
    pub fn vantage(&self) -> Option<String> {
        match (&self.site, &self.service) {
            (Some(site), Some(_)) => Some(format!("site:{site}")),
            (Some(site), None) if self.agent_local => Some(format!("site:{site}")),
            _ => None,
        }
    }

    /// The data centre's check an agent copy mirrors (itself for every other check).
    pub fn central(&self) -> CheckId {
        match &self.service {
            Some(svc) if self.site.is_some() => CheckId::service(svc, &self.name),
            _ => self.clone(),
        }
    }

    /// The owner's slug (site or service).
    pub fn owner(&self) -> &str {
        self.site
            .as_deref()
            .or(self.service.as_deref())
            .unwrap_or("")
    }

    pub fn key(&self) -> String {
        match (&self.site, &self.service) {
            (Some(site), Some(svc)) => format!("service/{svc}/{}@site:{site}", self.name),
            (Some(s), None) if self.agent_local => format!("site/{s}/{}@site:{s}", self.name),
            (Some(s), _) => format!("site/{s}/{}", self.name),
            (None, Some(s)) => format!("service/{s}/{}", self.name),
            (None, None) => format!("check/{}", self.name),
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// What a check proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckRole {
    Link,
    Endpoint,
    Video,
    Other,
    /// A check of the city's shared software.
    Service,
}

impl CheckRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckRole::Link => "link",
            CheckRole::Endpoint => "endpoint",
            CheckRole::Video => "video",
            CheckRole::Other => "other",
            CheckRole::Service => "service",
        }
    }
}

impl From<CheckRoleSpec> for CheckRole {
    fn from(r: CheckRoleSpec) -> Self {
        match r {
            CheckRoleSpec::Link => CheckRole::Link,
            CheckRoleSpec::Endpoint => CheckRole::Endpoint,
            CheckRoleSpec::Video => CheckRole::Video,
            CheckRoleSpec::Other => CheckRole::Other,
        }
    }
}

/// Reference data of one site, as the rest of the program sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    pub code: String,
    pub slug: String,
    pub name: String,
    pub kind: SiteKind,
    pub former_province: String,
    pub former_district: String,
    pub island: bool,
    pub lat: f64,
    pub lon: f64,
    pub link_class: String,
}

/// One shared service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub slug: String,
    pub name: String,
    pub name_en: Option<String>,
}

/// Thresholds of the class that make a passing check "degraded".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Degraded {
    pub loss: f64,
    pub rtt: Duration,
    pub jitter: Duration,
    pub latency: Duration,
}

/// One fully expanded check: what to probe, how often, and under which thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct CheckDef {
    pub id: CheckId,
    pub role: CheckRole,
    pub title: String,
    pub title_en: Option<String>,
    pub link_class: String,
    pub interval: Duration,
    pub timeout: Duration,
    #[serde(skip)]
    pub round: RoundShape,
    pub degraded: Degraded,
    pub probe: ProbeSpec,
}

impl CheckDef {
    pub fn build_context(&self) -> BuildContext {
        BuildContext { round: self.round }
    }
}

/// Sites, services and checks after expansion, plus the settings the runtime needs.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub sites: Vec<SiteInfo>,
    pub services: Vec<ServiceInfo>,
    /// Shared: the scheduler, the live state and the incident engine hold these same
    /// definitions (10,000 checks × ~600 bytes each, once).
    pub checks: Vec<Arc<CheckDef>>,
    pub scheduler: SchedulerSection,
    pub incidents: IncidentsSection,
    pub store: crate::config::file::StoreSection,
    pub api: ApiSection,
    pub teams: Vec<Team>,
    pub notify: Vec<NotifyTarget>,
    pub maintenance: Vec<crate::config::maintenance::Window>,
    pub readiness: ReadinessSection,
    pub history: HistorySection,
    /// `[server]` (HTTP limits; `listen` is used at start only).
    pub server: ServerSection,
    /// `display_name` of the link classes that set one (class key → Vietnamese name).
    pub class_names: BTreeMap<String, String>,
    /// `[reports]`: where the ward-report tokens are (never the tokens themselves).
    pub reports: crate::config::ReportsSection,
    /// `[[agent]]`: the ward agents allowed to push results.
    pub agents: Vec<AgentDef>,
}

/// One configured ward agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDef {
    pub site: String,
    pub token: AgentToken,
    pub service_checks: bool,
}

/// Where an agent's token comes from (never the token itself in the config).
#[derive(Debug, Clone, PartialEq)]
pub enum AgentToken {
    File(std::path::PathBuf),
    Sha256([u8; 32]),
}

impl Inventory {
    /// The Vietnamese display name of a link class; the key when it has none.
    pub fn class_display<'a>(&'a self, class: &'a str) -> &'a str {
        self.class_names.get(class).map_or(class, String::as_str)
    }

    pub fn site(&self, slug: &str) -> Option<&SiteInfo> {
        self.sites.iter().find(|s| s.slug == slug)
    }

    /// Names of the teams covering a site.
    pub fn teams_of_site(&self, site: &SiteInfo) -> Vec<String> {
        self.teams
            .iter()
            .filter(|t| {
                t.sites.contains(&site.slug)
                    || t.former_districts.contains(&site.former_district)
                    || t.former_provinces.contains(&site.former_province)
            })
            .map(|t| t.name.clone())
            .collect()
    }

    /// Names of the teams covering a shared service.
    pub fn teams_of_service(&self, service: &str) -> Vec<String> {
        self.teams
            .iter()
            .filter(|t| t.services.iter().any(|s| s == service || s == "*"))
            .map(|t| t.name.clone())
            .collect()
    }
}

struct Ctx<'a> {
    loc: &'a Locator<'a>,
    problems: Vec<ConfigProblem>,
    /// A class is wrong: its checks are not validated further (one report, not 168).
    bad_classes: bool,
}

impl Ctx<'_> {
    fn push(&mut self, span: std::ops::Range<usize>, msg: impl Into<String>, hint: &str) {
        let hint = (!hint.is_empty()).then(|| hint.to_string());
        self.problems.push(self.loc.problem(span, msg, hint));
    }
}

pub(super) fn expand(file: &ConfigFile, loc: &Locator) -> Result<Inventory, Vec<ConfigProblem>> {
    let mut cx = Ctx {
        loc,
        problems: Vec::new(),
        bad_classes: false,
    };
    check_classes(file, &mut cx);
    if file.scheduler.max_concurrency == 0 || file.scheduler.per_site_concurrency == 0 {
        cx.push(
            key_span(cx.loc, "scheduler", "max_concurrency"),
            "scheduler concurrency limits must be at least 1",
            "set [scheduler] max_concurrency and per_site_concurrency to 1 or more",
        );
    }

    let mut inv = Inventory {
        scheduler: file.scheduler.clone(),
        incidents: file.incidents.clone(),
        store: file.store.clone(),
        api: file.api.clone(),
        teams: file.teams.iter().map(|t| t.get_ref().clone()).collect(),
        notify: file.notify.iter().map(|t| t.get_ref().clone()).collect(),
        readiness: file.readiness.clone(),
        history: file.history.clone(),
        reports: file.reports.clone(),
        server: file.server.clone(),
        class_names: file
            .link_class
            .iter()
            .filter_map(|(k, c)| {
                let name = c.get_ref().display_name.as_deref()?.trim();
                (!name.is_empty()).then(|| (k.clone(), name.to_string()))
            })
            .collect(),
        ..Default::default()
    };
    let mut slugs = HashSet::new();
    let mut codes = HashSet::new();
    for site in &file.inventory.sites {
        let s = site.get_ref();
        if !slugs.insert(s.slug.clone()) {
            cx.push(
                site.span(),
                format!("duplicate site slug `{}`", s.slug),
                "every site needs its own slug",
            );
        }
        if !codes.insert(s.code.clone()) {
            cx.push(
                site.span(),
                format!("duplicate site code `{}`", s.code),
                "every site needs its own official code",
            );
        }
        check_coordinates(s, site.span(), &mut cx);
        let class = s
            .link_class
            .clone()
            .unwrap_or_else(|| default_class(s).into());
        if !file.link_class.contains_key(&class) {
            cx.push(
                site.span(),
                format!("site `{}` uses unknown link class `{class}`", s.slug),
                &known_classes(file),
            );
        }
        inv.sites.push(SiteInfo {
            code: s.code.clone(),
            slug: s.slug.clone(),
            name: s.name.clone(),
            kind: s.kind,
            former_province: s.former_province.clone(),
            former_district: s.former_district.clone(),
            island: s.island,
            lat: s.lat,
            lon: s.lon,
            link_class: class,
        });
    }

    let mut template_names = HashSet::new();
    for t in &file.templates {
        if !template_names.insert(t.get_ref().name.clone()) {
            cx.push(
                t.span(),
                format!("duplicate template name `{}`", t.get_ref().name),
                "template names must be unique",
            );
        }
    }
    for o in &file.site_overrides {
        let ov = o.get_ref();
        if !slugs.contains(&ov.site) {
            cx.push(
                o.span(),
                format!("site_override names unknown site `{}`", ov.site),
                "use a slug from the site list",
            );
        }
        if !template_names.contains(&ov.check) {
            cx.push(
                o.span(),
                format!("site_override names unknown template `{}`", ov.check),
                "use the name of a [[template]]",
            );
        }
    }

    // A placeholder no site defines is one mistake in the template, not 168 in the sites.
    let mut broken_templates = HashSet::new();
    for t in &file.templates {
        let mut missing = Vec::new();
        if let Ok(mut v) = toml::Value::try_from(&t.get_ref().probe) {
            walk_strings(&mut v, &mut |s| {
                for key in placeholders(s) {
                    let known = match key.strip_prefix("addr.") {
                        Some(k) => file
                            .inventory
                            .sites
                            .iter()
                            .any(|site| site.get_ref().addr.contains_key(k)),
                        None => key == "slug" || key == "code",
                    };
                    if !known {
                        missing.push(format!("{{{key}}}"));
                    }
                }
            });
        }
        if !missing.is_empty() {
            broken_templates.insert(t.get_ref().name.clone());
            cx.push(
                t.span(),
                format!(
                    "template `{}` uses {} but no site defines it",
                    t.get_ref().name,
                    missing.join(", ")
                ),
                "use {addr.KEY} with a KEY of the sites' addr tables, {slug} or {code}",
            );
        }
    }

    // Templates × sites, with overrides.
    for (site, spanned_site) in inv.sites.iter().zip(&file.inventory.sites) {
        for t in &file.templates {
            let t_ref = t.get_ref();
            if broken_templates.contains(&t_ref.name) {
                continue;
            }
            let ov = file
                .site_overrides
                .iter()
                .map(|o| o.get_ref())
                .find(|o| o.site == site.slug && o.check == t_ref.name);
            if ov.and_then(|o| o.enabled) == Some(false) {
                continue;
            }
            let probe = ov
                .and_then(|o| o.probe.clone())
                .unwrap_or_else(|| t_ref.probe.clone());
            let interval = ov.and_then(|o| o.interval).or(t_ref.interval);
            let timeout = ov.and_then(|o| o.timeout).or(t_ref.timeout);
            let span = t.span();
            let Some(probe) = fill(
                &probe,
                spanned_site.get_ref(),
                &t_ref.name,
                spanned_site.span(),
                &mut cx,
            ) else {
                continue;
            };
            let def = CheckSource {
                id: CheckId::site(&site.slug, &t_ref.name),
                role: t_ref.role.into(),
                title: t_ref.title.clone(),
                title_en: t_ref.title_en.clone(),
                class: &site.link_class,
                interval,
                timeout,
                probe,
            };
            if let Some(c) = def.finish(file, span, &mut cx) {
                inv.checks.push(Arc::new(c));
            }
        }
    }
    for sc in &file.site_checks {
        let c = sc.get_ref();
        let Some((site, raw)) = inv
            .sites
            .iter()
            .zip(&file.inventory.sites)
            .find(|(s, _)| s.slug == c.site)
        else {
            cx.push(
                sc.span(),
                format!("site_check names unknown site `{}`", c.site),
                "use a slug from the site list",
            );
            continue;
        };
        if template_names.contains(&c.name) {
            cx.push(
                sc.span(),
                format!("site_check `{}` has the name of a template", c.name),
                "use [[site_override]] to change a templated check, or pick another name",
            );
            continue;
        }
        let Some(probe) = fill(&c.probe, raw.get_ref(), &c.name, sc.span(), &mut cx) else {
            continue;
        };
        let def = CheckSource {
            id: CheckId::site(&site.slug, &c.name),
            role: c.role.into(),
            title: c.title.clone(),
            title_en: None,
            class: &site.link_class,
            interval: c.interval,
            timeout: c.timeout,
            probe,
        };
        if let Some(c) = def.finish(file, sc.span(), &mut cx) {
            inv.checks.push(Arc::new(c));
        }
    }

    let mut service_slugs = HashSet::new();
    for svc in &file.services {
        let s = svc.get_ref();
        if !service_slugs.insert(s.slug.clone()) {
            cx.push(
                svc.span(),
                format!("duplicate service slug `{}`", s.slug),
                "every service needs its own slug",
            );
        }
        if !file.link_class.contains_key(&s.link_class) {
            cx.push(
                svc.span(),
                format!(
                    "service `{}` uses unknown link class `{}`",
                    s.slug, s.link_class
                ),
                &known_classes(file),
            );
        }
        let mut names = HashSet::new();
        for chk in &s.checks {
            let c = chk.get_ref();
            if !names.insert(c.name.clone()) {
                cx.push(
                    chk.span(),
                    format!("duplicate check `{}` in service `{}`", c.name, s.slug),
                    "check names must be unique within a service",
                );
            }
            let def = CheckSource {
                id: CheckId::service(&s.slug, &c.name),
                role: CheckRole::Service,
                title: c.title.clone().unwrap_or_else(|| s.name.clone()),
                title_en: s.name_en.clone(),
                class: &s.link_class,
                interval: c.interval,
                timeout: c.timeout,
                probe: c.probe.clone(),
            };
            if let Some(c) = def.finish(file, chk.span(), &mut cx) {
                inv.checks.push(Arc::new(c));
            }
        }
        inv.services.push(ServiceInfo {
            slug: s.slug.clone(),
            name: s.name.clone(),
            name_en: s.name_en.clone(),
        });
    }

    expand_agents(file, &mut inv, &mut cx);
    check_runtime_sections(file, &inv, &mut cx);
    for m in &file.maintenance {
        match crate::config::maintenance::Window::compile(m.get_ref()) {
            Ok(w) => inv.maintenance.push(w),
            Err(e) => cx.push(
                m.span(),
                format!("maintenance window: {e}"),
                "see the [[maintenance]] comment in probes.toml for both forms",
            ),
        }
        let spec = m.get_ref();
        if let Some(site) = &spec.site {
            if inv.site(site).is_none() {
                cx.push(
                    m.span(),
                    format!("maintenance names unknown site `{site}`"),
                    "use a slug from the site list",
                );
            }
        }
        if let Some(svc) = &spec.service {
            if !inv.services.iter().any(|s| &s.slug == svc) {
                cx.push(
                    m.span(),
                    format!("maintenance names unknown service `{svc}`"),
                    "use a [[service]] slug",
                );
            }
        }
    }

    if cx.problems.is_empty() {
        Ok(inv)
    } else {
        Err(collapse(cx.problems))
    }
}

/// `[[agent]]`: one per known site, exactly one token source; every service check gets an
/// agent-run copy per agent (its own identity, vantage `site:<slug>`), which the central never
/// schedules itself: results arrive from the ward.
fn expand_agents(file: &ConfigFile, inv: &mut Inventory, cx: &mut Ctx) {
    let mut seen = HashSet::new();
    for a in &file.agents {
        let spec = a.get_ref();
        if inv.site(&spec.site).is_none() {
            cx.push(
                a.span(),
                format!("agent names unknown site `{}`", spec.site),
                "use a slug from the site list",
            );
            continue;
        }
        if !seen.insert(spec.site.clone()) {
            cx.push(
                a.span(),
                format!("duplicate [[agent]] for site `{}`", spec.site),
                "one agent per site",
            );
            continue;
        }
        let token = match (&spec.token_file, &spec.token_sha256) {
            (Some(f), None) if !f.trim().is_empty() => AgentToken::File(f.into()),
            (None, Some(h)) => match parse_sha256(h) {
                Some(d) => AgentToken::Sha256(d),
                None => {
                    cx.push(
                        a.span(),
                        format!("agent `{}`: token_sha256 is not 64 hex digits", spec.site),
                        "printf %s \"$TOKEN\" | sha256sum",
                    );
                    continue;
                }
            },
            _ => {
                cx.push(
                    a.span(),
                    format!(
                        "agent `{}` needs exactly one of token_file or token_sha256",
                        spec.site
                    ),
                    "token_file = \"/etc/lienthong/agents/<slug>.token\" (never the token itself in this file)",
                );
                continue;
            }
        };
        inv.agents.push(AgentDef {
            site: spec.site.clone(),
            token,
            service_checks: spec.service_checks,
        });
    }
    let services: Vec<Arc<CheckDef>> = inv
        .checks
        .iter()
        .filter(|c| c.role == CheckRole::Service && c.id.site.is_none())
        .cloned()
        .collect();
    for a in &inv.agents {
        if !a.service_checks {
            continue;
        }
        for c in &services {
            let mut copy = CheckDef::clone(c);
            copy.id = CheckId::agent(&a.site, c.id.service.as_deref().unwrap_or(""), &c.id.name);
            // Shown on the ward's page next to its own checks: say where it is seen from.
            copy.title = format!("{} (từ phường)", c.title);
            copy.title_en = Some(format!(
                "{} (from the ward)",
                c.title_en.as_deref().unwrap_or(&c.title)
            ));
            inv.checks.push(Arc::new(copy));
        }
    }
}

fn parse_sha256(h: &str) -> Option<[u8; 32]> {
    let h = h.trim();
    if h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn check_runtime_sections(file: &ConfigFile, inv: &Inventory, cx: &mut Ctx) {
    check_readiness(file, cx);
    let keys: HashSet<String> = inv.checks.iter().map(|c| c.id.key()).collect();
    for r in &file.incidents.reference_checks {
        if !keys.contains(r) {
            cx.push(
                key_span(cx.loc, "incidents", "reference_checks"),
                format!("[incidents] reference_checks names unknown check `{r}`"),
                "use a check key such as service/<slug>/<check>",
            );
        }
    }
    if file.api.max_maintenance.0 < Duration::from_secs(60) {
        cx.push(
            key_span(cx.loc, "api", "max_maintenance"),
            "[api] max_maintenance must be at least 1m",
            "the longest window POST /api/v1/maintenance accepts, e.g. \"7days\"",
        );
    }
    let share = file.incidents.prober_share;
    if !(share > 0.0 && share <= 1.0) {
        cx.push(
            key_span(cx.loc, "incidents", "prober_share"),
            "[incidents] prober_share must be in (0, 1]",
            "0.5 = half of the sites at once",
        );
    }
    let (warning, critical) = (
        file.incidents.cert_warning.0,
        file.incidents.cert_critical.0,
    );
    if critical.is_zero() || critical >= warning {
        cx.push(
            key_span(cx.loc, "incidents", "cert_critical"),
            format!(
                "[incidents] cert_critical ({}) must be above zero and below cert_warning ({})",
                humantime::format_duration(critical),
                humantime::format_duration(warning)
            ),
            "e.g. cert_warning = \"21days\", cert_critical = \"7days\"",
        );
    }
    if let Some(base) = &file.incidents.runbook_base_url {
        let ok = url::Url::parse(base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            cx.push(
                key_span(cx.loc, "incidents", "runbook_base_url"),
                format!("[incidents] runbook_base_url `{base}` is not an http(s) URL"),
                "where docs/runbooks/ is published, e.g. \"https://git.example.org/lienthong/blob/main/docs/runbooks\"",
            );
        }
    }
    let mut names = HashSet::new();
    for t in &file.teams {
        if !names.insert(t.get_ref().name.clone()) {
            cx.push(
                t.span(),
                format!("duplicate team `{}`", t.get_ref().name),
                "team names must be unique",
            );
        }
        for s in &t.get_ref().sites {
            if inv.site(s).is_none() {
                cx.push(
                    t.span(),
                    format!("team `{}` lists unknown site `{s}`", t.get_ref().name),
                    "use a slug from the site list",
                );
            }
        }
        let mut last: Option<std::time::Duration> = None;
        for step in &t.get_ref().escalation {
            let st = step.get_ref();
            let team = &t.get_ref().name;
            if last.is_some_and(|l| st.after.0 <= l) {
                cx.push(
                    field_span(cx.loc, table_body(cx.loc, step.span()), "after"),
                    format!(
                        "team `{team}`: escalation step after {} is not later than the step before it",
                        humantime::format_duration(st.after.0)
                    ),
                    "list [[team.escalation]] steps in increasing `after`, e.g. \"10m\", then \"30m\"",
                );
            }
            last = Some(st.after.0);
            if st.notify.is_empty() {
                cx.push(
                    field_span(cx.loc, table_body(cx.loc, step.span()), "notify"),
                    format!("team `{team}`: escalation step has no notify target"),
                    "e.g. notify = [\"truong-phong\"] (names of [[notify]] targets)",
                );
            }
            for n in &st.notify {
                if !file.notify.iter().any(|x| &x.get_ref().name == n) {
                    cx.push(
                        field_span(cx.loc, table_body(cx.loc, step.span()), "notify"),
                        format!("team `{team}`: escalation notifies unknown target `{n}`"),
                        "use the name of a [[notify]] target",
                    );
                }
            }
        }
    }
    for (team, var) in &file.reports.team_token_env {
        if !names.contains(team) {
            cx.push(
                sub_key_span(cx.loc, "reports", "team_token_env", team),
                format!("[reports] team_token_env names unknown team `{team}`"),
                "use the `name` of a [[team]]",
            );
        } else if var.trim().is_empty() {
            cx.push(
                sub_key_span(cx.loc, "reports", "team_token_env", team),
                format!("[reports] team_token_env: empty variable name for team `{team}`"),
                "name the environment variable holding the team's token",
            );
        }
    }
    let mut names = HashSet::new();
    for n in &file.notify {
        let t = n.get_ref();
        if !names.insert(t.name.clone()) {
            cx.push(
                n.span(),
                format!("duplicate notify target `{}`", t.name),
                "notify names must be unique",
            );
        }
        if let Err(e) = check_notify_url(&t.url) {
            cx.push(
                field_span(cx.loc, n.span(), "url"),
                format!("notify `{}`: url `{}` {e}", t.name, t.url),
                "e.g. url = \"https://chat.example.vn/hooks/lienthong\"",
            );
        }
        if let Some(env) = &t.bearer_token_env {
            if std::env::var_os(env).is_none() {
                cx.push(
                    n.span(),
                    format!("notify `{}`: environment variable {env} is not set", t.name),
                    "export the variable before starting lienthong (secrets never go in the file)",
                );
            }
        }
        if let Some(q) = &t.quiet_hours {
            if let Err(e) = crate::localtime::QuietHours::parse(q) {
                cx.push(
                    field_span(cx.loc, n.span(), "quiet_hours"),
                    format!("notify `{}`: {e}", t.name),
                    "e.g. quiet_hours = \"22:00-06:00\" (warnings wait, critical incidents are sent at once)",
                );
            }
        }
        for sev in &t.severities {
            if sev != "critical" && sev != "warning" {
                cx.push(
                    n.span(),
                    format!("notify `{}`: unknown severity `{sev}`", t.name),
                    "use \"critical\" or \"warning\"",
                );
            }
        }
    }
}

/// A notify URL as a client will use it: parsed by the `url` crate (so a port over 65535 or
/// a bad host is refused), http or https, with a host.
fn check_notify_url(raw: &str) -> Result<(), String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("has scheme `{}`: use http or https", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(())
}

/// A `[[table]]` entry's span reaches only its header: extend it to the next header.
fn table_body(loc: &Locator, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let text = loc.text();
    let rest = text.get(span.end..).unwrap_or("");
    let end = rest.find("\n[").map_or(text.len(), |i| span.end + i);
    span.start..end.max(span.end)
}

/// The span of `field = …` inside an entry's span (for a precise column), else the entry's.
fn field_span(loc: &Locator, entry: std::ops::Range<usize>, field: &str) -> std::ops::Range<usize> {
    let text = loc.text().get(entry.clone()).unwrap_or("");
    let mut from = 0;
    while let Some(i) = text[from..].find(field) {
        let at = from + i;
        let before_ok = at == 0
            || !text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let after = text[at + field.len()..].trim_start();
        if before_ok && after.starts_with('=') {
            return entry.start + at..entry.start + at + field.len();
        }
        from = at + field.len();
    }
    entry
}

/// The span of `key = …` in the `[section]` table (for an exact line:column), else the section
/// header, else the start of the file (the value is a default: it is not written anywhere).
fn key_span(loc: &Locator, section: &str, key: &str) -> std::ops::Range<usize> {
    let text = loc.text();
    let header = format!("[{section}]");
    let mut offset = 0;
    let mut in_section = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let col = line.len() - t.len();
        if t.starts_with('[') {
            in_section = t.trim_end().starts_with(&header);
        } else if in_section {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with(['=', '.']) {
                    return offset + col..offset + col + key.len();
                }
            }
        }
        offset += line.len();
    }
    // The header, when the key itself is not written.
    text.find(&header).map_or(0..0, |h| h..h)
}

/// Like [`key_span`] for `sub` inside `key = { sub = … }` or `key.sub = …`.
fn sub_key_span(loc: &Locator, section: &str, key: &str, sub: &str) -> std::ops::Range<usize> {
    let span = key_span(loc, section, key);
    let text = loc.text();
    let line_end = text[span.start..]
        .find('\n')
        .map_or(text.len(), |i| span.start + i);
    match text[span.end.min(line_end)..line_end].find(sub) {
        Some(i) if span.end > span.start => {
            let at = span.end + i;
            at..at + sub.len()
        }
        _ => span,
    }
}

/// Latitude and longitude in range; for this city a latitude that looks like a longitude
/// (Ho Chi Minh City is near 10.8 N, 106.7 E) is most likely swapped.
fn check_coordinates(s: &Site, span: std::ops::Range<usize>, cx: &mut Ctx) {
    let swapped = (100.0..=110.0).contains(&s.lat) && (8.0..=12.0).contains(&s.lon);
    let swap_hint = if swapped {
        format!(
            "lat and lon look swapped: Ho Chi Minh City is near lat 10.8, lon 106.7 (write lat = {}, lon = {})",
            s.lon, s.lat
        )
    } else {
        "lat is degrees north in -90..90 (about 8.5–11.2 for this city)".to_string()
    };
    if !(-90.0..=90.0).contains(&s.lat) {
        cx.push(
            field_span(cx.loc, span.clone(), "lat"),
            format!("site `{}`: lat {} is outside -90..90", s.slug, s.lat),
            &swap_hint,
        );
    }
    if !(-180.0..=180.0).contains(&s.lon) {
        cx.push(
            field_span(cx.loc, span, "lon"),
            format!("site `{}`: lon {} is outside -180..180", s.slug, s.lon),
            "lon is degrees east in -180..180 (about 106–107.5 for this city)",
        );
    }
}

/// `[readiness]` and `[history]`.
fn check_readiness(file: &ConfigFile, cx: &mut Ctx) {
    let r = &file.readiness;
    let ratio = |v: f64| v > 0.0 && v <= 1.0;
    for (class, target) in &r.availability {
        if !file.link_class.contains_key(class) {
            cx.push(
                sub_key_span(cx.loc, "readiness", "availability", class),
                format!("[readiness] availability names unknown link class `{class}`"),
                &known_classes(file),
            );
        }
        if !ratio(*target) {
            cx.push(
                sub_key_span(cx.loc, "readiness", "availability", class),
                format!("[readiness] availability.{class} must be in (0, 1]"),
                "write 0.995 for 99.5 %",
            );
        }
    }
    if !ratio(r.default_availability) {
        cx.push(
            key_span(cx.loc, "readiness", "default_availability"),
            "[readiness] default_availability must be in (0, 1]",
            "write 0.99 for 99 %",
        );
    }
    if !(r.latency_quantile >= 0.5 && r.latency_quantile < 1.0) {
        cx.push(
            key_span(cx.loc, "readiness", "latency_quantile"),
            "[readiness] latency_quantile must be in [0.5, 1)",
            "0.95 = p95",
        );
    }
    if !(0.0..=1.0).contains(&r.min_coverage) {
        cx.push(
            key_span(cx.loc, "readiness", "min_coverage"),
            "[readiness] min_coverage must be between 0 and 1",
            "0.9 = 90 % of the expected minutes have data",
        );
    }
    if r.window.0 < Duration::from_secs(60) {
        cx.push(
            key_span(cx.loc, "readiness", "window"),
            "[readiness] window must be at least 1m",
            "e.g. window = \"24h\"",
        );
    }
    let h = &file.history;
    if h.keep_minutes.0 < Duration::from_secs(2 * 3600) {
        cx.push(
            key_span(cx.loc, "history", "keep_minutes"),
            "[history] keep_minutes must be at least 2h",
            "raw minutes are rolled up into hours; keep them for weeks, e.g. \"35d\"",
        );
    }
    if h.keep_hours.0 < h.keep_minutes.0 {
        cx.push(
            key_span(cx.loc, "history", "keep_hours"),
            "[history] keep_hours must not be shorter than keep_minutes",
            "hourly rollups are kept for years, e.g. \"1825d\"",
        );
    }
}

/// One problem per location: a template expanded at 168 sites reports once, with a count.
fn collapse(mut problems: Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    problems.sort_by_key(|p| (p.line, p.column));
    let mut out: Vec<(ConfigProblem, usize)> = Vec::new();
    for p in problems {
        match out.last_mut() {
            Some((last, n))
                if last.line == p.line && last.column == p.column && last.hint == p.hint =>
            {
                *n += 1
            }
            _ => out.push((p, 0)),
        }
    }
    out.into_iter()
        .map(|(mut p, n)| {
            if n > 0 {
                p.message
                    .push_str(&format!(" (and {n} more like it from the same entry)"));
            }
            p
        })
        .collect()
}

fn default_class(s: &Site) -> &'static str {
    if s.island {
        "island"
    } else if s.kind == SiteKind::Xa {
        "rural"
    } else {
        "mainland"
    }
}

fn known_classes(file: &ConfigFile) -> String {
    let names: Vec<&str> = file.link_class.keys().map(String::as_str).collect();
    format!(
        "define [link_class.NAME] or use one of: {}",
        names.join(", ")
    )
}

fn check_classes(file: &ConfigFile, cx: &mut Ctx) {
    let before = cx.problems.len();
    check_classes_inner(file, cx);
    cx.bad_classes = cx.problems.len() > before;
}

fn check_classes_inner(file: &ConfigFile, cx: &mut Ctx) {
    for (name, class) in &file.link_class {
        let c = class.get_ref();
        if c.timeout.get_ref().0 >= c.interval.get_ref().0 {
            cx.push(
                c.timeout.span(),
                format!("link class `{name}`: timeout must be shorter than interval"),
                "lower timeout or raise interval",
            );
        }
        if c.interval.get_ref().0 < Duration::from_secs(1) {
            cx.push(
                c.interval.span(),
                format!("link class `{name}`: interval below 1s"),
                "probe at most once a second",
            );
        }
        let packets = *c.packets.get_ref();
        if packets == 0 || packets > 100 {
            cx.push(
                c.packets.span(),
                format!("link class `{name}`: packets must be between 1 and 100"),
                "",
            );
        }
        if c.pacing.0 * packets.max(1) >= c.timeout.get_ref().0 {
            cx.push(
                c.packets.span(),
                format!("link class `{name}`: packets × pacing must fit within timeout"),
                "lower packets or pacing, or raise timeout",
            );
        }
        for (field, v) in [
            ("max_loss", &c.max_loss),
            ("degraded_loss", &c.degraded_loss),
        ] {
            if !(0.0..=1.0).contains(v.get_ref()) {
                cx.push(
                    v.span(),
                    format!("link class `{name}`: {field} must be a ratio between 0 and 1"),
                    "write 0.05 for 5 %",
                );
            }
        }
    }
}

/// A check before class defaults are applied.
struct CheckSource<'a> {
    id: CheckId,
    role: CheckRole,
    title: String,
    title_en: Option<String>,
    class: &'a str,
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    probe: ProbeSpec,
}

impl CheckSource<'_> {
    fn finish(
        self,
        file: &ConfigFile,
        span: std::ops::Range<usize>,
        cx: &mut Ctx,
    ) -> Option<CheckDef> {
        let Some(class) = file.link_class.get(self.class).map(|c| c.get_ref()) else {
            // The unknown class is reported at the site or service; the probe still is checked.
            let round = RoundShape {
                packets: 1,
                pacing: Duration::from_millis(100),
                max_loss: 0.0,
                reply_timeout: Duration::from_secs(1),
            };
            if let Err(e) = self.probe.build(&BuildContext { round }) {
                push_build_error(cx, span, &self.id, &e);
            }
            return None;
        };
        if cx.bad_classes {
            // The class is reported once; its checks' own mistakes (a bad URL …) still are.
            let round = RoundShape {
                packets: (*class.packets.get_ref()).clamp(1, 100),
                pacing: class.pacing.0,
                max_loss: class.max_loss.get_ref().clamp(0.0, 1.0),
                reply_timeout: class.reply_timeout.0,
            };
            if let Err(e) = self.probe.build(&BuildContext { round }) {
                push_build_error(cx, span, &self.id, &e);
            }
            return None;
        }
        let interval = self
            .interval
            .map(|d| d.0)
            .unwrap_or(class.interval.get_ref().0);
        let timeout = self
            .timeout
            .map(|d| d.0)
            .unwrap_or(class.timeout.get_ref().0);
        let class_ok = class.timeout.get_ref().0 < class.interval.get_ref().0;
        if timeout >= interval {
            // A class-level mistake is reported once at the class, not at every check.
            if class_ok || self.interval.is_some() || self.timeout.is_some() {
                cx.push(
                    span.clone(),
                    format!(
                        "check `{}`: timeout ({}) must be shorter than interval ({})",
                        self.id,
                        humantime::format_duration(timeout),
                        humantime::format_duration(interval)
                    ),
                    "lower timeout or raise interval",
                );
            }
            return None;
        }
        let round = RoundShape {
            packets: *class.packets.get_ref(),
            pacing: class.pacing.0,
            max_loss: *class.max_loss.get_ref(),
            reply_timeout: class.reply_timeout.0,
        };
        if let Err(e) = self.probe.build(&BuildContext { round }) {
            push_build_error(cx, span, &self.id, &e);
            return None;
        }
        Some(CheckDef {
            id: self.id,
            role: self.role,
            title: self.title,
            title_en: self.title_en,
            link_class: self.class.to_string(),
            interval,
            timeout,
            round,
            degraded: Degraded {
                loss: *class.degraded_loss.get_ref(),
                rtt: class.degraded_rtt.0,
                jitter: class.degraded_jitter.0,
                latency: class.degraded_latency.0,
            },
            probe: self.probe,
        })
    }
}

/// A probe that does not build, at the check — or, for a [`BuildError::Located`] problem, at
/// the first place inside the check's text that names it (a step, a `{{variable}}`, a path).
///
/// [`BuildError::Located`]: crate::probe::BuildError::Located
fn push_build_error(
    cx: &mut Ctx,
    span: std::ops::Range<usize>,
    id: &CheckId,
    e: &crate::probe::BuildError,
) {
    let mut at = span.clone();
    if let crate::probe::BuildError::Located { locate, .. } = e {
        let text = cx.loc.text();
        // A check written with `[…probe.transaction]` sub-tables spans more than its entry:
        // look from the entry to the next check (or service) header.
        let end = text[span.start..]
            .match_indices("[[")
            .map(|(i, _)| span.start + i)
            .find(|&i| i > span.start + 2 && !text[i..].starts_with("[[service.check.probe"))
            .unwrap_or(text.len())
            .max(span.end);
        if let Some(i) = text[span.start..end].find(locate.as_str()) {
            at = span.start + i..span.start + i + locate.len();
        }
    }
    cx.push(at, format!("check `{id}`: {e}"), build_hint(e));
}

fn build_hint(e: &crate::probe::BuildError) -> &'static str {
    match e {
        crate::probe::BuildError::Located { hint, .. } => hint,
        crate::probe::BuildError::MissingEnv(_) => {
            "export the variable before starting lienthong (secrets never go in the file)"
        }
        crate::probe::BuildError::Io { .. } => "check the path and permissions",
        crate::probe::BuildError::Invalid { .. } => "fix the value named in the message",
    }
}

/// Fills `{addr.KEY}`, `{slug}` and `{code}` in every string of a probe spec.
fn fill(
    probe: &ProbeSpec,
    site: &Site,
    check: &str,
    span: std::ops::Range<usize>,
    cx: &mut Ctx,
) -> Option<ProbeSpec> {
    let mut value = match toml::Value::try_from(probe) {
        Ok(v) => v,
        Err(e) => {
            cx.push(
                span,
                format!("check `{check}` at site `{}`: {e}", site.slug),
                "",
            );
            return None;
        }
    };
    let mut missing = Vec::new();
    walk_strings(&mut value, &mut |s| {
        if s.contains('{') {
            *s = substitute(s, site, &mut missing);
        }
    });
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        cx.push(span, format!("site `{}` has no address for {} (used by check `{check}`)", site.slug, missing.join(", ")), "add it to the site's address plan: addr = { link = \"…\", endpoint = \"…\", video = \"…\" }");
        return None;
    }
    match value.try_into::<ProbeSpec>() {
        Ok(p) => Some(p),
        Err(e) => {
            cx.push(
                span,
                format!("check `{check}` at site `{}`: {}", site.slug, e.message()),
                "",
            );
            None
        }
    }
}

/// The `{...}` placeholders in a string (a transaction's `{{variable}}` is not one).
fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        if let Some(end) = transaction_var(&rest[start..]) {
            rest = &rest[start + end..];
            continue;
        }
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

/// The length of a `{{variable}}` at the start of `s` (filled at run time by a transaction).
fn transaction_var(s: &str) -> Option<usize> {
    let inner = s.strip_prefix("{{")?;
    inner.find("}}").map(|i| i + 4)
}

fn walk_strings(v: &mut toml::Value, f: &mut impl FnMut(&mut String)) {
    match v {
        toml::Value::String(s) => f(s),
        toml::Value::Array(a) => a.iter_mut().for_each(|x| walk_strings(x, f)),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, x)| walk_strings(x, f)),
        _ => {}
    }
}

fn substitute(s: &str, site: &Site, missing: &mut Vec<String>) -> String {
    let vars: BTreeMap<String, &str> = site
        .addr
        .iter()
        .map(|(k, v)| (format!("addr.{k}"), v.as_str()))
        .chain([
            ("slug".to_string(), site.slug.as_str()),
            ("code".to_string(), site.code.as_str()),
        ])
        .collect();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        if let Some(end) = transaction_var(&rest[start..]) {
            out.push_str(&rest[start..start + end]);
            rest = &rest[start + end..];
            continue;
        }
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &rest[start + 1..start + len];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => {
                missing.push(format!("{{{key}}}"));
                out.push_str(&rest[start..=start + len]);
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

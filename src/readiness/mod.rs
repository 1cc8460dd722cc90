//! Readiness: "are all 168 sites connected and able to work?", answered over a window with the
//! numbers behind each verdict. The arithmetic ([`compute`]) is pure: it takes the inventory,
//! the history of the window and the critical incidents open at its end. [`load`] fetches those
//! from the store; [`markdown`] and [`csv`] render the report (JSON is its serde form, HTML is in
//! `web::status`).
//!
//! # Criteria (`[readiness]` in probes.toml)
//!
//! For every check of a site, over the window's minutes **outside maintenance**:
//!
//! 1. availability — the mean over its minutes of (passing runs / runs), so a minute of
//!    confirm-interval re-probes weighs no more than a normal one — reaches the target of the
//!    site's link class;
//! 2. the latency quantile (p95 by default: link rounds' average RTT, otherwise the whole
//!    run) is within the class limit (`degraded_rtt` / `degraded_latency`);
//! 3. a link round's loss (lost / sent packets) is within the class's `degraded_loss`;
//!
//! and no critical incident of the site (site or city scope) is open at the end of the window.
//! Where the site has a ward agent, the agent-run copies of the shared-service checks are
//! judged by one more criterion ("shared software reachable from the ward", [`WardServices`]):
//! the availability of each reaches the site's link-class target (no latency limits); it is
//! "không áp dụng" (n/a) elsewhere, and the copies are not the site's or the service's own checks.
//! A check is judged only from its first recorded minute on; it needs `min_observed` of data
//! and `min_coverage` of the minutes expected (at its interval) outside maintenance, otherwise
//! the verdict is "không đủ dữ liệu". Criteria 1–3 are applied once a check has `min_observed`
//! of data, even with low coverage; any failed criterion (or the open incident) → "chưa sẵn
//! sàng", even when other checks lack data; a site all in maintenance has no data to judge.
//!
//! Shared services are judged the same way (their class is usually `datacenter`), and the city
//! is ready when every site and every shared service is.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{CheckDef, CheckRole, Inventory};
use crate::incidents::rollups::{CheckAgg, WindowData};
use crate::incidents::{Incident, Scope};
use crate::localtime::{format_local, format_rfc3339};
use crate::probe::ProbeKind;

mod load;
mod render;

pub use load::{load, minute_span, window};
pub use render::*;

/// Report language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    /// `en` → English; anything else → Vietnamese.
    pub fn parse(s: Option<&str>) -> Lang {
        match s {
            Some(s) if s.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    pub fn pick<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// The verdict of a site, a service or one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ready,
    NotReady,
    InsufficientData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::NotReady => "not_ready",
            Verdict::InsufficientData => "insufficient_data",
        }
    }

    /// Capitalised, for headings.
    pub fn title(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Verdict::Ready, Lang::Vi) => "Sẵn sàng",
            (Verdict::NotReady, Lang::Vi) => "Chưa sẵn sàng",
            (Verdict::InsufficientData, Lang::Vi) => "Không đủ dữ liệu",
            (Verdict::Ready, Lang::En) => "Ready",
            (Verdict::NotReady, Lang::En) => "Not ready",
            (Verdict::InsufficientData, Lang::En) => "Insufficient data",
        }
    }

    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Verdict::Ready, Lang::Vi) => "sẵn sàng",
            (Verdict::NotReady, Lang::Vi) => "chưa sẵn sàng",
            (Verdict::InsufficientData, Lang::Vi) => "không đủ dữ liệu",
            (Verdict::Ready, Lang::En) => "ready",
            (Verdict::NotReady, Lang::En) => "not ready",
            (Verdict::InsufficientData, Lang::En) => "insufficient data",
        }
    }
}

/// Why a verdict is what it is, in both languages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `availability`, `latency`, `loss`, `critical_incident`, `ward_services`, `no_data`, `too_short`,
    /// `low_coverage`, `maintenance_only`, `monitor_blind_only`, `no_checks`; notes:
    /// `maintenance`, `monitor_blind`, `since`.
    pub code: &'static str,
    /// Check key, when about one check.
    pub check: Option<String>,
    pub vi: String,
    pub en: String,
}

impl Finding {
    pub fn text(&self, lang: Lang) -> &str {
        match lang {
            Lang::Vi => &self.vi,
            Lang::En => &self.en,
        }
    }
}

/// One check over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub key: String,
    pub name: String,
    pub title: String,
    pub role: &'static str,
    pub link_class: String,
    pub verdict: Verdict,
    /// Availability outside maintenance (0..1).
    pub availability: Option<f64>,
    pub target: f64,
    /// The configured latency quantile, ms (link rounds: RTT).
    pub latency_quantile_ms: Option<f64>,
    /// Class limit, ms; None = no limit.
    pub latency_limit_ms: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Echo loss ratio (link rounds).
    pub loss: Option<f64>,
    pub loss_limit: Option<f64>,
    pub runs: u64,
    pub passed: u64,
    /// Minutes with runs outside maintenance.
    pub observed_minutes: u64,
    /// Minutes expected (at the check's interval) outside maintenance since it exists.
    pub expected_minutes: u64,
    pub maintenance_minutes: u64,
    /// Minutes left out because the prober itself was isolated ("monitor blind").
    pub blind_minutes: u64,
    pub coverage: Option<f64>,
    /// First minute with data, RFC 3339, when it is inside the window.
    pub monitored_since: Option<String>,
    pub findings: Vec<Finding>,
}

/// An incident a verdict refers to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRef {
    pub id: i64,
    pub title: String,
    pub title_en: String,
    pub started_at: String,
    pub started_at_local: String,
}

impl From<&Incident> for IncidentRef {
    fn from(i: &Incident) -> Self {
        IncidentRef {
            id: i.id,
            title: i.title.clone(),
            title_en: i.title_en.clone(),
            started_at: format_rfc3339(i.started_at),
            started_at_local: format_local(i.started_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteResult {
    pub slug: String,
    pub code: String,
    pub name: String,
    pub former_province: String,
    pub former_district: String,
    pub island: bool,
    pub link_class: String,
    pub teams: Vec<String>,
    pub verdict: Verdict,
    /// What decided the verdict (empty when ready).
    pub reasons: Vec<Finding>,
    /// Maintenance excluded, monitored since … (informative).
    pub notes: Vec<Finding>,
    pub open_critical: Vec<IncidentRef>,
    pub checks: Vec<CheckResult>,
    /// The criterion "shared software reachable from the ward" (sites with a ward agent).
    pub ward_services: WardServices,
}

/// The shared services as the site's ward agent saw them over the window: the availability of
/// every agent-run copy of the shared-service checks must reach the site's link-class target.
/// Not applicable ("không áp dụng") where the site has no agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WardServices {
    pub applicable: bool,
    /// None when not applicable.
    pub verdict: Option<Verdict>,
    /// The lowest availability of the agent-run copies.
    pub availability: Option<f64>,
    /// The site's link-class availability target.
    pub target: f64,
    pub checks: Vec<CheckResult>,
}

impl WardServices {
    /// "sẵn sàng (99,9 %)" / "không áp dụng".
    pub fn text(&self, lang: Lang) -> String {
        match self.verdict {
            None => lang.pick("không áp dụng", "n/a").to_string(),
            Some(v) => match self.availability {
                Some(a) => format!("{} ({})", v.label(lang), pct(a, lang)),
                None => v.label(lang).to_string(),
            },
        }
    }
}

/// The criterion for one site: its agent-run copies judged against `target`.
fn ward_services(inv: &Inventory, data: &WindowData, slug: &str, target: f64) -> WardServices {
    let has_agent = inv.agents.iter().any(|a| a.site == slug);
    let checks: Vec<CheckResult> = inv
        .checks
        .iter()
        .filter(|c| has_agent && c.id.is_agent() && c.id.site.as_deref() == Some(slug))
        .map(|c| judge_with(c, inv, data, Some(target)))
        .collect();
    let applicable = !checks.is_empty();
    let verdict = applicable.then(|| {
        if checks.iter().any(|c| c.verdict == Verdict::NotReady) {
            Verdict::NotReady
        } else if checks
            .iter()
            .any(|c| c.verdict == Verdict::InsufficientData)
        {
            Verdict::InsufficientData
        } else {
            Verdict::Ready
        }
    });
    WardServices {
        applicable,
        verdict,
        availability: worst_availability(&checks),
        target,
        checks,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceResult {
    pub slug: String,
    pub name: String,
    pub name_en: Option<String>,
    pub verdict: Verdict,
    pub reasons: Vec<Finding>,
    pub notes: Vec<Finding>,
    pub open_critical: Vec<IncidentRef>,
    pub checks: Vec<CheckResult>,
}

/// Counts of a group of sites (a former province, a team).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: String,
    pub name: String,
    pub name_en: String,
    pub total: u32,
    pub ready: u32,
    pub not_ready: u32,
    pub insufficient_data: u32,
    /// Slugs of the sites not ready.
    pub not_ready_sites: Vec<String>,
    /// Shared services of the group (teams that cover services) and how many are ready.
    pub services_total: u32,
    pub services_ready: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CitySummary {
    pub total: u32,
    pub ready: u32,
    pub not_ready: u32,
    pub insufficient_data: u32,
    pub services_total: u32,
    pub services_ready: u32,
    /// Every site and every shared service ready.
    pub all_ready: bool,
    /// "165/168 sẵn sàng", or "Đang thu thập dữ liệu — còn ~N phút" while no site has a
    /// verdict yet.
    pub headline: String,
    pub headline_en: String,
    /// While no site is ready and some lack data (a fresh start): about how many minutes of
    /// data are still needed. None once a site is ready, or when none lacks data.
    pub collecting_minutes_left: Option<u64>,
}

/// The criteria the report applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criteria {
    pub availability: BTreeMap<String, f64>,
    pub default_availability: f64,
    pub latency_quantile: f64,
    pub min_coverage: f64,
    pub min_observed_minutes: u64,
    /// Vietnamese display names of the link classes (`display_name`), for the words.
    pub class_names: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The window, RFC 3339 (UTC); `to` is clipped to the time of the report.
    pub from: String,
    pub to: String,
    /// The same in Asia/Ho_Chi_Minh, "YYYY-MM-DD HH:MM".
    pub from_local: String,
    pub to_local: String,
    pub generated_at: String,
    pub generated_at_local: String,
    /// The window starts before the oldest minute kept: its first hour was counted whole.
    pub start_rounded: bool,
    pub criteria: Criteria,
    pub city: CitySummary,
    pub provinces: Vec<Group>,
    pub teams: Vec<Group>,
    pub services: Vec<ServiceResult>,
    pub sites: Vec<SiteResult>,
    /// Prober incidents open at the end of the window (monitoring itself impaired).
    pub prober_incidents: Vec<IncidentRef>,
    /// How fast the teams acknowledged and resolved the incidents started in the window, and
    /// what is open at the time of the report (None when not loaded from a store).
    pub team_figures: Option<crate::incidents::figures::Figures>,
}

/// Display names of the former provinces (before the 2025 merger).
pub fn province_name(key: &str) -> (String, String) {
    match key {
        "tphcm" => (
            "TP. Hồ Chí Minh (cũ)".into(),
            "Former Ho Chi Minh City".into(),
        ),
        "binh-duong" => ("Bình Dương (cũ)".into(), "Former Binh Duong".into()),
        "ba-ria-vung-tau" => (
            "Bà Rịa – Vũng Tàu (cũ)".into(),
            "Former Ba Ria – Vung Tau".into(),
        ),
        other => (other.to_string(), other.to_string()),
    }
}

fn finding(code: &'static str, check: Option<&str>, vi: String, en: String) -> Finding {
    Finding {
        code,
        check: check.map(str::to_string),
        vi,
        en,
    }
}

fn is_failure(f: &Finding) -> bool {
    matches!(
        f.code,
        "availability" | "latency" | "loss" | "critical_incident" | "ward_services"
    )
}

fn is_insufficient(f: &Finding) -> bool {
    matches!(
        f.code,
        "no_data"
            | "too_short"
            | "low_coverage"
            | "maintenance_only"
            | "monitor_blind_only"
            | "no_checks"
    )
}

/// One check's result.
fn judge_check(def: &CheckDef, inv: &Inventory, data: &WindowData) -> CheckResult {
    judge_with(def, inv, data, None)
}

/// One check's result; `ward_target`: an agent-run copy judged for the criterion "shared
/// software reachable from the ward" (availability only, against the ward's target).
fn judge_with(
    def: &CheckDef,
    inv: &Inventory,
    data: &WindowData,
    ward_target: Option<f64>,
) -> CheckResult {
    let cfg = &inv.readiness;
    let key = def.id.key();
    let title = def.title.clone();
    // Findings name the check; the site or service is the object they belong to.
    let label = title.clone();
    let label_en = def
        .title_en
        .clone()
        .unwrap_or_else(|| def.id.name.to_string());
    let target = ward_target.unwrap_or_else(|| cfg.target(&def.link_class));
    let icmp = def.probe.kind() == ProbeKind::Icmp;
    let limit = if icmp {
        def.degraded.rtt
    } else {
        def.degraded.latency
    };
    // From a ward the data centre's latency limits do not apply (the ward's link is in the
    // path): that criterion is about reaching the service.
    let latency_limit_ms =
        (!limit.is_zero() && ward_target.is_none()).then_some(limit.as_secs_f64() * 1000.0);
    let loss_limit =
        (icmp && def.degraded.loss > 0.0 && ward_target.is_none()).then_some(def.degraded.loss);
    let empty = CheckAgg::default();
    let w = data.checks.get(&key);
    let a = w.map_or(&empty, |w| &w.agg);
    let first = w.map(|w| w.first_minute);
    let start = first.map_or(data.to_minute, |f| f.max(data.from_minute));
    let span = (data.to_minute - start).max(0) as f64;
    let per_minute = (60.0 / def.interval.as_secs_f64().max(1e-3)).min(1.0);
    // Minutes in maintenance or while the prober was blind are not expected to count.
    let left_out = (a.maint_minutes + a.blind_minutes) as i64;
    let expected = ((span * per_minute).floor() as i64 - left_out).max(0) as u64;
    let observed = a.minutes;
    let coverage = (expected > 0).then(|| (observed as f64 / expected as f64).min(1.0));
    let availability = a.availability();
    let latency_q = a.hist.quantile(cfg.latency_quantile);
    let loss = (a.sent > 0).then(|| a.lost as f64 / a.sent as f64);
    let qname = format!("p{}", (cfg.latency_quantile * 100.0).round());
    let min_obs = cfg.min_observed.0.as_secs().div_ceil(60);

    let mut findings = Vec::new();
    let k = Some(key.as_str());
    // Insufficient data.
    if first.is_none_or(|f| f >= data.to_minute) {
        findings.push(finding(
            "no_data",
            k,
            format!("{label}: chưa có dữ liệu trong khoảng thời gian"),
            format!("{label_en}: no data in the window"),
        ));
    } else if observed == 0 && a.blind_minutes > 0 && expected == 0 {
        findings.push(finding(
            "monitor_blind_only",
            k,
            format!("{label}: máy giám sát mất kết nối suốt khoảng thời gian, không có dữ liệu để đánh giá"),
            format!("{label_en}: the prober was cut off the whole window, nothing to judge"),
        ));
    } else if observed == 0 && a.maint_minutes > 0 && expected == 0 {
        findings.push(finding(
            "maintenance_only",
            k,
            format!("{label}: bảo trì suốt khoảng thời gian, không có dữ liệu để đánh giá"),
            format!("{label_en}: in maintenance the whole window, nothing to judge"),
        ));
    } else if observed < min_obs {
        findings.push(finding(
            "too_short",
            k,
            format!("{label}: mới có {observed} phút dữ liệu (cần ít nhất {min_obs} phút)"),
            format!("{label_en}: only {observed} minute(s) of data (needs {min_obs})"),
        ));
    } else if let Some(c) = coverage.filter(|&c| c < cfg.min_coverage) {
        findings.push(finding(
            "low_coverage",
            k,
            format!(
                "{label}: dữ liệu chỉ phủ {} số phút dự kiến (cần {})",
                pct(c, Lang::Vi),
                pct(cfg.min_coverage, Lang::Vi)
            ),
            format!(
                "{label_en}: data covers only {} of the expected minutes (needs {})",
                pct(c, Lang::En),
                pct(cfg.min_coverage, Lang::En)
            ),
        ));
    }
    let sufficient = findings.is_empty();
    // Criteria: judged once there is `min_observed` of data (a minute or two of a new check
    // proves nothing), even when coverage is low: a failure over the data there is, is one.
    if observed > 0 && observed >= min_obs {
        if let Some(av) = availability.filter(|&av| av < target) {
            findings.push(finding(
                if ward_target.is_some() {
                    "ward_services"
                } else {
                    "availability"
                },
                k,
                format!(
                    "{label}: khả dụng {} < mục tiêu {} ({} lần kiểm tra đạt / {})",
                    pct(av, Lang::Vi),
                    pct(target, Lang::Vi),
                    a.successes,
                    a.attempts
                ),
                format!(
                    "{label_en}: availability {} < target {} ({} of {} runs passed)",
                    pct(av, Lang::En),
                    pct(target, Lang::En),
                    a.successes,
                    a.attempts
                ),
            ));
        }
        if let (Some(q), Some(lim)) = (latency_q, latency_limit_ms) {
            if q > lim {
                let what = if icmp {
                    "RTT"
                } else {
                    "thời gian phản hồi"
                };
                let what_en = if icmp { "RTT" } else { "response time" };
                findings.push(finding(
                    "latency",
                    k,
                    format!(
                        "{label}: {qname} {what} {} > ngưỡng {}",
                        ms(q, Lang::Vi),
                        ms(lim, Lang::Vi)
                    ),
                    format!(
                        "{label_en}: {qname} {what_en} {} > limit {}",
                        ms(q, Lang::En),
                        ms(lim, Lang::En)
                    ),
                ));
            }
        }
        if let (Some(l), Some(lim)) = (loss, loss_limit) {
            if l > lim {
                findings.push(finding(
                    "loss",
                    k,
                    format!(
                        "{label}: mất gói {} > ngưỡng {} ({}/{} gói)",
                        pct(l, Lang::Vi),
                        pct(lim, Lang::Vi),
                        a.lost,
                        a.sent
                    ),
                    format!(
                        "{label_en}: packet loss {} > limit {} ({}/{} packets)",
                        pct(l, Lang::En),
                        pct(lim, Lang::En),
                        a.lost,
                        a.sent
                    ),
                ));
            }
        }
    }
    if a.maint_minutes > 0 {
        findings.push(finding(
            "maintenance",
            k,
            format!("{label}: không tính {} phút bảo trì", a.maint_minutes),
            format!(
                "{label_en}: {} minute(s) of maintenance left out",
                a.maint_minutes
            ),
        ));
    }
    if a.blind_minutes > 0 {
        findings.push(finding(
            "monitor_blind",
            k,
            format!(
                "{label}: không tính {} phút máy giám sát mất kết nối (không quan sát được đơn vị)",
                a.blind_minutes
            ),
            format!(
                "{label_en}: {} minute(s) left out while the prober itself was cut off (monitor blind)",
                a.blind_minutes
            ),
        ));
    }
    let monitored_since = first
        .filter(|&f| f > data.from_minute && f < data.to_minute)
        .map(|f| f * 60_000);
    if let Some(since) = monitored_since {
        findings.push(finding(
            "since",
            k,
            format!("{label}: theo dõi từ {}", format_local(since)),
            format!("{label_en}: monitored since {}", format_local(since)),
        ));
    }
    let verdict = if findings.iter().any(is_failure) {
        Verdict::NotReady
    } else if !sufficient {
        Verdict::InsufficientData
    } else {
        Verdict::Ready
    };
    CheckResult {
        key,
        name: def.id.name.to_string(),
        title,
        role: def.role.as_str(),
        link_class: def.link_class.clone(),
        verdict,
        availability,
        target,
        latency_quantile_ms: latency_q,
        latency_limit_ms,
        latency_avg_ms: (a.lat_n > 0).then(|| a.lat_sum / a.lat_n as f64),
        latency_max_ms: (a.lat_n > 0).then_some(a.lat_max),
        loss,
        loss_limit,
        runs: a.attempts,
        passed: a.successes,
        observed_minutes: observed,
        expected_minutes: expected,
        maintenance_minutes: a.maint_minutes,
        blind_minutes: a.blind_minutes,
        coverage,
        monitored_since: monitored_since.map(format_rfc3339),
        findings,
    }
}

/// Verdict, reasons and notes of an owner from its checks and open critical incidents.
fn roll_up(
    checks: &[CheckResult],
    incidents: &[IncidentRef],
    owner: &str,
) -> (Verdict, Vec<Finding>, Vec<Finding>) {
    let mut reasons: Vec<Finding> = incidents
        .iter()
        .map(|i| {
            finding(
                "critical_incident",
                None,
                format!(
                    "Sự cố nghiêm trọng #{} đang mở: {} (từ {})",
                    i.id, i.title, i.started_at_local
                ),
                format!(
                    "Critical incident #{} open: {} (since {})",
                    i.id, i.title_en, i.started_at_local
                ),
            )
        })
        .collect();
    let all: Vec<&Finding> = checks.iter().flat_map(|c| &c.findings).collect();
    reasons.extend(all.iter().filter(|f| is_failure(f)).map(|f| (*f).clone()));
    let notes: Vec<Finding> = all
        .iter()
        .filter(|f| !is_failure(f) && !is_insufficient(f))
        .map(|f| (*f).clone())
        .collect();
    if checks.is_empty() {
        let f = finding(
            "no_checks",
            None,
            format!("{owner}: không có kiểm tra nào"),
            format!("{owner}: no checks configured"),
        );
        return (Verdict::InsufficientData, vec![f], notes);
    }
    if !reasons.is_empty() {
        return (Verdict::NotReady, reasons, notes);
    }
    let missing: Vec<Finding> = all
        .iter()
        .filter(|f| is_insufficient(f))
        .map(|f| (*f).clone())
        .collect();
    if !missing.is_empty() {
        return (Verdict::InsufficientData, missing, notes);
    }
    (Verdict::Ready, Vec::new(), notes)
}

fn group_add(g: &mut Group, site: &SiteResult) {
    g.total += 1;
    match site.verdict {
        Verdict::Ready => g.ready += 1,
        Verdict::NotReady => {
            g.not_ready += 1;
            g.not_ready_sites.push(site.slug.clone());
        }
        Verdict::InsufficientData => g.insufficient_data += 1,
    }
}

/// The report over `[from, to)` (Unix ms) at `now`, from the window's history and the critical
/// incidents open at its end. Pure.
pub fn compute(
    inv: &Inventory,
    data: &WindowData,
    critical: &[Incident],
    from: i64,
    to: i64,
    now: i64,
) -> Report {
    let to_eff = to.min(now);
    let mut checks_of: BTreeMap<&str, Vec<&CheckDef>> = BTreeMap::new();
    for c in &inv.checks {
        checks_of.entry(c.id.owner()).or_default().push(c);
    }
    let mut sites = Vec::with_capacity(inv.sites.len());
    for s in &inv.sites {
        // The ward agent's copies of the service checks are judged by their own criterion.
        let checks: Vec<CheckResult> = inv
            .checks
            .iter()
            .filter(|c| c.id.site.as_deref() == Some(s.slug.as_str()) && !c.id.runs_at_ward())
            .map(|c| judge_check(c, inv, data))
            .collect();
        let ward = ward_services(inv, data, &s.slug, inv.readiness.target(&s.link_class));
        let incidents: Vec<IncidentRef> = critical
            .iter()
            .filter(|i| matches!(i.scope, Scope::Site | Scope::City) && i.sites.contains(&s.slug))
            .map(IncidentRef::from)
            .collect();
        let (verdict, reasons, notes) = if ward.applicable {
            let mut all = checks.clone();
            all.extend(ward.checks.iter().cloned());
            roll_up(&all, &incidents, &s.name)
        } else {
            roll_up(&checks, &incidents, &s.name)
        };
        sites.push(SiteResult {
            slug: s.slug.clone(),
            code: s.code.clone(),
            name: s.name.clone(),
            former_province: s.former_province.clone(),
            former_district: s.former_district.clone(),
            island: s.island,
            link_class: s.link_class.clone(),
            teams: inv.teams_of_site(s),
            verdict,
            reasons,
            notes,
            open_critical: incidents,
            checks,
            ward_services: ward,
        });
    }
    let services: Vec<ServiceResult> = inv
        .services
        .iter()
        .map(|svc| {
            let checks: Vec<CheckResult> = inv
                .checks
                .iter()
                .filter(|c| c.id.service.as_deref() == Some(svc.slug.as_str()) && !c.id.is_agent())
                .map(|c| judge_check(c, inv, data))
                .collect();
            let incidents: Vec<IncidentRef> = critical
                .iter()
                .filter(|i| i.scope == Scope::Service && i.service.as_deref() == Some(&svc.slug))
                .map(IncidentRef::from)
                .collect();
            let (verdict, reasons, notes) = roll_up(&checks, &incidents, &svc.name);
            ServiceResult {
                slug: svc.slug.clone(),
                name: svc.name.clone(),
                name_en: svc.name_en.clone(),
                verdict,
                reasons,
                notes,
                open_critical: incidents,
                checks,
            }
        })
        .collect();

    let mut provinces: Vec<Group> = Vec::new();
    for s in &sites {
        let i = match provinces.iter().position(|g| g.key == s.former_province) {
            Some(i) => i,
            None => {
                let (name, name_en) = province_name(&s.former_province);
                provinces.push(Group {
                    key: s.former_province.clone(),
                    name,
                    name_en,
                    total: 0,
                    ready: 0,
                    not_ready: 0,
                    insufficient_data: 0,
                    not_ready_sites: Vec::new(),
                    services_total: 0,
                    services_ready: 0,
                });
                provinces.len() - 1
            }
        };
        group_add(&mut provinces[i], s);
    }
    let teams: Vec<Group> = inv
        .teams
        .iter()
        .map(|t| {
            let mut g = Group {
                key: t.name.clone(),
                name: t.title.clone(),
                name_en: t.title.clone(),
                total: 0,
                ready: 0,
                not_ready: 0,
                insufficient_data: 0,
                not_ready_sites: Vec::new(),
                services_total: 0,
                services_ready: 0,
            };
            for s in sites.iter().filter(|s| s.teams.contains(&t.name)) {
                group_add(&mut g, s);
            }
            for svc in services
                .iter()
                .filter(|s| inv.teams_of_service(&s.slug).contains(&t.name))
            {
                g.services_total += 1;
                g.services_ready += u32::from(svc.verdict == Verdict::Ready);
            }
            g
        })
        .collect();
    let count = |v: Verdict| sites.iter().filter(|s| s.verdict == v).count() as u32;
    let (ready, not_ready, insufficient) = (
        count(Verdict::Ready),
        count(Verdict::NotReady),
        count(Verdict::InsufficientData),
    );
    let total = sites.len() as u32;
    let services_ready = services
        .iter()
        .filter(|s| s.verdict == Verdict::Ready)
        .count() as u32;
    // No site can be ready yet for lack of data (a fresh start; an outage may already make a
    // site not ready): say how long until the first verdicts instead of "0/168 sẵn sàng".
    let collecting_minutes_left = (ready == 0 && insufficient > 0).then(|| {
        let min_obs = inv.readiness.min_observed.0.as_secs().div_ceil(60);
        let most = sites
            .iter()
            .flat_map(|s| s.checks.iter().map(|c| c.observed_minutes))
            .max()
            .unwrap_or(0);
        min_obs.saturating_sub(most).max(1)
    });
    let (headline, headline_en) = match collecting_minutes_left {
        Some(n) => (
            format!("Đang thu thập dữ liệu — còn ~{n} phút"),
            format!("Collecting data — about {n} min left"),
        ),
        None => (
            format!("{ready}/{total} sẵn sàng"),
            format!("{ready}/{total} ready"),
        ),
    };
    let city = CitySummary {
        total,
        ready,
        not_ready,
        insufficient_data: insufficient,
        services_total: services.len() as u32,
        services_ready,
        all_ready: ready == total && services_ready == services.len() as u32,
        headline,
        headline_en,
        collecting_minutes_left,
    };
    let cfg = &inv.readiness;
    let mut availability = BTreeMap::new();
    for class in inv.checks.iter().map(|c| c.link_class.as_str()) {
        availability
            .entry(class.to_string())
            .or_insert(cfg.target(class));
    }
    Report {
        from: format_rfc3339(from),
        to: format_rfc3339(to_eff),
        from_local: format_local(from),
        to_local: format_local(to_eff),
        generated_at: format_rfc3339(now),
        generated_at_local: format_local(now),
        start_rounded: data.start_rounded,
        criteria: Criteria {
            availability,
            default_availability: cfg.default_availability,
            latency_quantile: cfg.latency_quantile,
            min_coverage: cfg.min_coverage,
            min_observed_minutes: cfg.min_observed.0.as_secs().div_ceil(60),
            class_names: inv.class_names.clone(),
        },
        city,
        provinces,
        teams,
        services,
        sites,
        prober_incidents: critical
            .iter()
            .filter(|i| i.scope == Scope::Prober)
            .map(IncidentRef::from)
            .collect(),
        team_figures: None,
    }
}

/// The lowest availability of an owner's checks.
pub fn worst_availability(checks: &[CheckResult]) -> Option<f64> {
    checks
        .iter()
        .filter_map(|c| c.availability)
        .min_by(|a, b| a.total_cmp(b))
}

#[cfg(test)]
mod tests {
    use super::render::csv_field;
    use super::*;
    use crate::availability::{bucket_of, MinuteStats, SparseHist};
    use crate::config::Config;
    use crate::incidents::rollups::CheckWindow;
    use crate::incidents::{IncidentState, Severity};

    const CONFIG: &str = r#"
[link_class.mainland]
interval = "10s"
timeout = "5s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[link_class.slow]
interval = "2m"
timeout = "5s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.05
degraded_rtt = "60ms"
degraded_jitter = "20ms"
degraded_latency = "2s"

[readiness]
availability = { mainland = 0.99 }
min_observed = "10m"
min_coverage = 0.9

[[template]]
name = "link"
role = "link"
title = "Đường truyền"
probe.icmp = { host = "{addr.link}" }

[[template]]
name = "endpoint"
role = "endpoint"
title = "Cổng"
probe.http = { url = "http://{addr.link}/" }

[inventory]
sites = [
  { code = "1", slug = "a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = { link = "127.0.0.1" } },
]
"#;

    fn inv() -> Inventory {
        (*Config::from_str(std::path::Path::new("t.toml"), CONFIG)
            .unwrap()
            .inventory)
            .clone()
    }

    /// `n` minutes from minute 0 with `ok` of `runs` passing, latency `lat` ms.
    fn minutes(n: u64, runs: u32, ok: u32, lat: f64, maint: bool) -> CheckAgg {
        let mut a = CheckAgg::default();
        for _ in 0..n {
            let mut s = MinuteStats::default();
            if maint {
                s.maint = runs;
            } else {
                s.attempts = runs;
                s.successes = ok;
                s.lat_n = ok;
                s.lat_sum = lat * ok as f64;
                s.lat_max = lat;
                s.sent = runs * 5;
                s.lost = 0;
                s.hist = SparseHist(vec![(bucket_of(lat), ok)]);
            }
            a.add_minute(&s);
        }
        a
    }

    fn data(from: i64, to: i64, checks: &[(&str, i64, CheckAgg)]) -> WindowData {
        WindowData {
            from_minute: from,
            to_minute: to,
            checks: checks
                .iter()
                .map(|(k, first, agg)| {
                    (
                        k.to_string(),
                        CheckWindow {
                            first_minute: *first,
                            agg: agg.clone(),
                        },
                    )
                })
                .collect(),
            start_rounded: false,
        }
    }

    fn run(d: &WindowData, critical: &[Incident]) -> Report {
        compute(
            &inv(),
            d,
            critical,
            d.from_minute * 60_000,
            d.to_minute * 60_000,
            d.to_minute * 60_000,
        )
    }

    /// The test config plus a shared service and a ward agent at `a` (a second site `b` has
    /// none).
    fn inv_with_agent() -> Inventory {
        let text = CONFIG.replace(
            "[inventory]",
            r#"[link_class.datacenter]
interval = "10s"
timeout = "4s"
packets = 5
pacing = "200ms"
max_loss = 0.4
degraded_loss = 0.02
degraded_rtt = "20ms"
degraded_jitter = "10ms"
degraded_latency = "1s"

[[service]]
slug = "dms"
name = "Quản lý văn bản"
link_class = "datacenter"
[[service.check]]
name = "web"
title = "Ứng dụng"
probe.http = { url = "http://127.0.0.1:1/" }

[[agent]]
site = "a"
token_sha256 = "0b6f7c1a3e7d4f0c9a8b2d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"

[inventory]"#,
        );
        let text = text.replace(
            "addr = { link = \"127.0.0.1\" } },\n]",
            "addr = { link = \"127.0.0.1\" } },\n  { code = \"2\", slug = \"b\", name = \"Phường B\", kind = \"phuong\", former_province = \"tphcm\", former_district = \"Quận 1\", island = false, lat = 10.8, lon = 106.7, addr = { link = \"127.0.0.1\" } },\n]",
        );
        (*Config::from_str(std::path::Path::new("t.toml"), &text)
            .unwrap()
            .inventory)
            .clone()
    }

    #[test]
    fn shared_services_unreachable_from_the_ward_alone_make_it_not_ready() {
        let inv = inv_with_agent();
        let own = |site: &str| {
            [
                (
                    format!("site/{site}/link"),
                    0,
                    minutes(60, 6, 6, 12.0, false),
                ),
                (
                    format!("site/{site}/endpoint"),
                    0,
                    minutes(60, 6, 6, 300.0, false),
                ),
            ]
        };
        let mut rows: Vec<(String, i64, CheckAgg)> = own("a").into_iter().chain(own("b")).collect();
        // The data centre reaches the service all hour; the ward's agent only 50 of 60 minutes
        // (and slowly: the data centre's 1 s latency limit does not apply from the ward).
        rows.push(("service/dms/web".into(), 0, minutes(60, 6, 6, 300.0, false)));
        let mut ward = minutes(50, 6, 6, 1800.0, false);
        ward.merge(&minutes(10, 6, 0, 0.0, false));
        rows.push(("service/dms/web@site:a".into(), 0, ward));
        let refs: Vec<(&str, i64, CheckAgg)> = rows
            .iter()
            .map(|(k, f, a)| (k.as_str(), *f, a.clone()))
            .collect();
        let r = compute(&inv, &data(0, 60, &refs), &[], 0, 3_600_000, 3_600_000);
        let a = &r.sites[0];
        assert_eq!(a.verdict, Verdict::NotReady, "{:?}", a.reasons);
        let codes: Vec<&str> = a.reasons.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["ward_services"]);
        assert!(
            a.reasons[0].vi.contains("(từ phường)"),
            "{}",
            a.reasons[0].vi
        );
        assert_eq!(a.ward_services.verdict, Some(Verdict::NotReady));
        assert_eq!(a.ward_services.target, 0.99);
        assert!((a.ward_services.availability.unwrap() - 50.0 / 60.0).abs() < 1e-9);
        assert_eq!(a.ward_services.checks[0].latency_limit_ms, None);
        assert_eq!(
            a.checks.len(),
            2,
            "the agent copy is not one of the site's own checks"
        );
        // The service itself is judged from the data centre only: ready.
        assert_eq!(
            r.services[0].verdict,
            Verdict::Ready,
            "{:?}",
            r.services[0].reasons
        );
        assert_eq!(r.services[0].checks.len(), 1);
        // No agent at b: not applicable, and b is ready on its own checks.
        let b = &r.sites[1];
        assert_eq!(b.verdict, Verdict::Ready, "{:?}", b.reasons);
        assert!(!b.ward_services.applicable);
        assert_eq!(b.ward_services.verdict, None);
        let md = markdown(&r, Lang::Vi);
        assert!(md.contains("| không áp dụng |"), "{md}");
        assert!(md.contains("chưa sẵn sàng (83,33 %)"), "{md}");
        let csv = csv(&r, Lang::En);
        assert!(csv.contains(",service/dms/web@site:a,not ready,"), "{csv}");
        // Without the agent's data (a new agent): insufficient, not ready.
        let refs: Vec<(&str, i64, CheckAgg)> = refs
            .into_iter()
            .filter(|(k, _, _)| !k.contains('@'))
            .collect();
        let r = compute(&inv, &data(0, 60, &refs), &[], 0, 3_600_000, 3_600_000);
        assert_eq!(
            r.sites[0].ward_services.verdict,
            Some(Verdict::InsufficientData)
        );
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
    }

    #[test]
    fn no_data_is_insufficient_not_ready() {
        let r = run(&data(0, 60, &[]), &[]);
        assert_eq!(r.city.total, 1);
        assert_eq!(r.city.insufficient_data, 1);
        // No verdict anywhere: collecting, not "0/1 sẵn sàng".
        assert_eq!(r.city.headline, "Đang thu thập dữ liệu — còn ~10 phút");
        assert_eq!(r.city.headline_en, "Collecting data — about 10 min left");
        assert_eq!(r.city.collecting_minutes_left, Some(10));
        let md = markdown(&r, Lang::Vi);
        assert!(md.contains("không đủ dữ liệu để kết luận"), "{md}");
        assert!(!md.contains("chưa sẵn sàng toàn bộ"), "{md}");
        let s = &r.sites[0];
        assert_eq!(s.verdict, Verdict::InsufficientData);
        assert!(s.reasons.iter().all(|f| f.code == "no_data"));
        assert_eq!(s.checks[0].availability, None);
        assert_eq!(s.checks[0].coverage, None);
    }

    #[test]
    fn full_good_window_is_ready() {
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, minutes(60, 6, 6, 12.0, false)),
                ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(
            r.sites[0].verdict,
            Verdict::Ready,
            "{:?}",
            r.sites[0].reasons
        );
        assert_eq!(r.city.headline, "1/1 sẵn sàng");
        assert!(r.city.all_ready);
        let link = &r.sites[0].checks[0];
        assert_eq!(link.availability, Some(1.0));
        assert_eq!((link.observed_minutes, link.expected_minutes), (60, 60));
        assert!((link.latency_quantile_ms.unwrap() / 12.0 - 1.0).abs() < 0.1);
        assert_eq!(link.loss, Some(0.0));
    }

    #[test]
    fn availability_is_per_minute_and_below_target_fails() {
        // 59 good minutes and one minute of 30 failing re-probes: 59/60 = 98.3 % < 99 %.
        let mut link = minutes(59, 6, 6, 12.0, false);
        link.merge(&minutes(1, 30, 0, 0.0, false));
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, link),
                ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        let c = &r.sites[0].checks[0];
        assert!((c.availability.unwrap() - 59.0 / 60.0).abs() < 1e-9);
        assert_eq!(r.sites[0].verdict, Verdict::NotReady);
        assert_eq!(r.sites[0].reasons[0].code, "availability");
        assert!(r.sites[0].reasons[0].vi.contains("98,33 % < mục tiêu 99 %"));
    }

    #[test]
    fn maintenance_minutes_are_left_out() {
        // 30 minutes down inside maintenance, 30 good outside: ready, with a note.
        let mut link = minutes(30, 6, 6, 12.0, false);
        link.merge(&minutes(30, 6, 0, 0.0, true));
        let mut ep = minutes(30, 6, 6, 300.0, false);
        ep.merge(&minutes(30, 6, 0, 0.0, true));
        let d = data(
            0,
            60,
            &[("site/a/link", 0, link), ("site/a/endpoint", 0, ep)],
        );
        let r = run(&d, &[]);
        let s = &r.sites[0];
        assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
        assert_eq!(s.checks[0].availability, Some(1.0));
        assert_eq!(s.checks[0].expected_minutes, 30);
        assert_eq!(s.checks[0].maintenance_minutes, 30);
        assert!(s.notes.iter().any(|n| n.code == "maintenance"));
    }

    /// `n` minutes whose runs all came while the prober was isolated.
    fn blind(n: u64, runs: u32) -> CheckAgg {
        let mut a = CheckAgg::default();
        for _ in 0..n {
            a.add_minute(&MinuteStats {
                blind: runs,
                ..MinuteStats::default()
            });
        }
        a
    }

    /// 30 good minutes, then 30 while the prober itself was cut off (its rounds all failed, but
    /// they are kept apart as "monitor blind"): ready, expected minutes 30, with a note.
    #[test]
    fn monitor_blind_minutes_are_left_out() {
        let mut link = minutes(30, 6, 6, 12.0, false);
        link.merge(&blind(30, 6));
        let mut ep = minutes(30, 6, 6, 300.0, false);
        ep.merge(&blind(30, 6));
        let d = data(
            0,
            60,
            &[("site/a/link", 0, link), ("site/a/endpoint", 0, ep)],
        );
        let r = run(&d, &[]);
        let s = &r.sites[0];
        assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
        assert_eq!(s.checks[0].availability, Some(1.0));
        assert_eq!(s.checks[0].expected_minutes, 30);
        assert_eq!(s.checks[0].blind_minutes, 30);
        let note = s.notes.iter().find(|n| n.code == "monitor_blind").unwrap();
        assert!(
            note.vi.contains("30 phút máy giám sát mất kết nối"),
            "{}",
            note.vi
        );

        let all = data(
            0,
            60,
            &[
                ("site/a/link", 0, blind(60, 6)),
                ("site/a/endpoint", 0, blind(60, 6)),
            ],
        );
        let r = run(&all, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
        assert_eq!(r.sites[0].reasons[0].code, "monitor_blind_only");
    }

    #[test]
    fn all_maintenance_is_insufficient() {
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, minutes(60, 6, 0, 0.0, true)),
                ("site/a/endpoint", 0, minutes(60, 6, 0, 0.0, true)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
        assert_eq!(r.sites[0].reasons[0].code, "maintenance_only");
    }

    #[test]
    fn partial_windows() {
        // Monitoring started 20 minutes before the end of a 24 h window: judged on those 20.
        let link = minutes(20, 6, 6, 12.0, false);
        let ep = minutes(20, 6, 6, 300.0, false);
        let d = data(
            0,
            1440,
            &[("site/a/link", 1420, link), ("site/a/endpoint", 1420, ep)],
        );
        let r = run(&d, &[]);
        let s = &r.sites[0];
        assert_eq!(s.verdict, Verdict::Ready, "{:?}", s.reasons);
        assert_eq!(s.checks[0].expected_minutes, 20);
        assert!(s.checks[0].monitored_since.is_some());
        assert!(s.notes.iter().any(|n| n.code == "since"));

        // Only 5 minutes: too short.
        let d = data(
            0,
            1440,
            &[
                ("site/a/link", 1435, minutes(5, 6, 6, 12.0, false)),
                ("site/a/endpoint", 1435, minutes(5, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
        assert_eq!(r.sites[0].reasons[0].code, "too_short");

        // A gap (prober stopped for half of the window): low coverage.
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, minutes(30, 6, 6, 12.0, false)),
                ("site/a/endpoint", 0, minutes(30, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
        assert_eq!(r.sites[0].reasons[0].code, "low_coverage");
        assert_eq!(r.sites[0].checks[0].coverage, Some(0.5));

        // Five failing minutes are not enough to judge either...
        let d = data(
            0,
            1440,
            &[
                ("site/a/link", 1435, minutes(5, 6, 0, 0.0, false)),
                ("site/a/endpoint", 1435, minutes(5, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::InsufficientData);
        assert_eq!(r.sites[0].checks[0].availability, Some(0.0));

        // ... but half an hour of failure over a window half covered is a failure.
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, minutes(30, 6, 0, 0.0, false)),
                ("site/a/endpoint", 0, minutes(30, 6, 6, 300.0, false)),
            ],
        );
        let r = run(&d, &[]);
        assert_eq!(r.sites[0].verdict, Verdict::NotReady);
        let codes: Vec<&str> = r.sites[0].checks[0]
            .findings
            .iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, ["low_coverage", "availability"]);
    }

    #[test]
    fn window_and_minute_span() {
        let day = std::time::Duration::from_secs(86_400);
        let now = 100 * 86_400_000;
        assert_eq!(window(None, None, day, now), Ok((now - 86_400_000, now)));
        assert!(window(Some(now), Some(now - 1), day, now).is_err());
        assert!(window(Some(now + 1), None, day, now).is_err());
        // A window running into the future ends now.
        assert_eq!(minute_span(0, now + 3_600_000, now), (0, now / 60_000));
        // Partial minutes at the edges are left out.
        assert_eq!(minute_span(30_000, 150_000, 10_000_000), (1, 2));
        assert_eq!(minute_span(30_000, 50_000, 10_000_000), (1, 1));
    }

    #[test]
    fn slow_interval_expects_fewer_minutes() {
        let mut inv = inv();
        for c in &mut inv.checks {
            std::sync::Arc::make_mut(c).interval = std::time::Duration::from_secs(120);
        }
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, minutes(30, 1, 1, 12.0, false)),
                ("site/a/endpoint", 0, minutes(30, 1, 1, 300.0, false)),
            ],
        );
        let r = compute(&inv, &d, &[], 0, 3_600_000, 3_600_000);
        assert_eq!(r.sites[0].checks[0].expected_minutes, 30);
        assert_eq!(r.sites[0].verdict, Verdict::Ready);
    }

    #[test]
    fn latency_loss_and_incidents() {
        let mut link = minutes(60, 6, 6, 90.0, false); // p95 90 ms > 60 ms
        link.lost = link.sent / 10; // 10 % > 5 %
        let d = data(
            0,
            60,
            &[
                ("site/a/link", 0, link),
                ("site/a/endpoint", 0, minutes(60, 6, 6, 300.0, false)),
            ],
        );
        let inc = Incident {
            id: 7,
            key: "site/a/link".into(),
            title: "Mất kết nối: Phường A".into(),
            title_en: "Link down: Phường A".into(),
            severity: Severity::Critical,
            scope: Scope::Site,
            state: IncidentState::Open,
            sites: vec!["a".into()],
            service: None,
            teams: vec![],
            started_at: 1_000,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            ack_expires_at: None,
            assigned_to: None,
            events: vec![],
            notes: vec![],
        };
        let r = run(&d, &[inc]);
        let codes: Vec<&str> = r.sites[0].reasons.iter().map(|f| f.code).collect();
        assert_eq!(codes, ["critical_incident", "latency", "loss"]);
        assert_eq!(r.sites[0].open_critical[0].id, 7);
        assert_eq!(r.provinces[0].not_ready_sites, ["a"]);
    }

    #[test]
    fn criteria_are_validated() {
        let bad = CONFIG.replace(
            "availability = { mainland = 0.99 }",
            "availability = { mainland = 1.5, nowhere = 0.9 }\nlatency_quantile = 1.0",
        );
        let e = Config::from_str(std::path::Path::new("t.toml"), &bad)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("availability.mainland must be in (0, 1]"), "{e}");
        assert!(e.contains("unknown link class `nowhere`"), "{e}");
        assert!(e.contains("latency_quantile"), "{e}");
        // Classes not listed keep their built-in targets.
        let inv = inv();
        assert_eq!(inv.readiness.target("mainland"), 0.99);
        assert_eq!(inv.readiness.target("island"), 0.98);
        assert_eq!(inv.readiness.target("slow"), 0.99);
    }

    #[test]
    fn formats() {
        assert_eq!(pct(0.99999, Lang::Vi), "99,99 %");
        assert_eq!(pct(1.0, Lang::En), "100%");
        assert_eq!(ms(3.25, Lang::Vi), "3,2 ms");
        assert_eq!(ms(1250.0, Lang::En), "1.25 s");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}

//! The report's types: verdicts, findings, per-check, per-site, per-group and city results.

use super::*;

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

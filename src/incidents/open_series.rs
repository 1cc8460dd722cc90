//! `lienthong_incident_open`: one series per unresolved incident, value 1, so Prometheus pages
//! on the incident engine's decisions instead of re-deriving them in PromQL (and a rule needs
//! no `for:` — the engine already confirmed the cause).
//!
//! The label set is the alert identity shared with the direct Alertmanager push
//! ([`alert_labels`], used by `notify`): with both paths on, Alertmanager sees one alert per
//! incident. It never changes while the incident lives (the sites list of a city-wide incident
//! grows; it is not a label).
//!
//! `lienthong_incident_info{incident_id, title, title_en, runbook_url}` carries the titles and
//! the runbook link for alert
//! annotations (looked up by `incident_id` in the rule's template, never joined into the
//! identity).

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::model::{Scope, Severity};

pub const NAME: &str = "lienthong_incident_open";
pub const INFO_NAME: &str = "lienthong_incident_info";
const INFO_HELP: &str =
    "Titles of an unresolved lienthong incident (value 1), for alert annotations";
const HELP: &str =
    "An unresolved lienthong incident (value 1; one series per incident, labels = alert identity)";

/// The labels of one open incident, in exposition order (empty values are left out).
pub const LABELS: [&str; 9] = [
    "incident_id",
    "key",
    "kind",
    "severity",
    "scope",
    "team",
    "site",
    "service",
    "former_province",
];

/// What the series needs to know about one open incident.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRow {
    pub id: i64,
    pub title: String,
    pub title_en: String,
    pub key: String,
    pub severity: Severity,
    pub scope: Scope,
    pub teams: Vec<String>,
    /// The site of a site incident.
    pub site: Option<String>,
    pub service: Option<String>,
    pub former_province: Option<String>,
}

/// What kind of cause an incident key names (a stable, small label set for routing).
pub fn kind_of(key: &str) -> &'static str {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["prober"] => "prober_isolation",
        ["cert", ..] => "certificate",
        ["service", _] => "service_down",
        ["service", _, "slow"] => "service_slow",
        ["service", _, "cert"] | ["site", _, "cert", ..] | ["service", _, "cert", ..] => {
            "certificate"
        }
        ["site", _, "link"] => "link_down",
        ["site", _, "link-degraded"] => "link_degraded",
        ["site", _, "slow"] => "site_slow",
        ["site", _, "reported"] => "reported",
        ["site", _, _] => "check_down",
        _ => "other",
    }
}

/// The runbook page (docs/runbooks/<page>.md) for an incident kind.
pub fn runbook_page(kind: &str) -> &'static str {
    match kind {
        "link_down" => "sitedown",
        "link_degraded" => "sitelinkdegraded",
        "check_down" | "site_slow" => "sitecheckdown",
        "service_down" | "service_slow" => "sharedservicedown",
        "certificate" => "certificateexpiringsoon",
        "prober_isolation" => "proberisolation",
        _ => "lienthongincident",
    }
}

/// The runbook of an incident: under `[incidents] runbook_base_url`, or lienthong's own
/// `/runbooks/` (a path: the alert rule puts the scraped instance in front).
pub fn runbook_url(base: Option<&str>, key: &str) -> String {
    let page = runbook_page(kind_of(key));
    match base {
        Some(b) => format!("{}/{page}.md", b.trim_end_matches('/')),
        None => format!("/runbooks/{page}"),
    }
}

fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
    }
}

fn scope_str(s: Scope) -> &'static str {
    match s {
        Scope::Site => "site",
        Scope::Service => "service",
        Scope::City => "city",
        Scope::Prober => "prober",
    }
}

/// The alert identity of an incident: `alertname` plus [`LABELS`] with non-empty values, but
/// not `former_province` (the shipped rule aggregates it away: it is for dashboards, and the
/// direct push does not know it). Prometheus drops empty labels, so the push must too.
pub fn alert_labels(row: &OpenRow) -> Vec<(&'static str, String)> {
    let mut out = vec![("alertname", "LienthongIncident".to_string())];
    out.extend(
        series_labels(row)
            .into_iter()
            .filter(|(k, _)| *k != "former_province"),
    );
    out
}

fn series_labels(row: &OpenRow) -> Vec<(&'static str, String)> {
    let values = [
        row.id.to_string(),
        row.key.clone(),
        kind_of(&row.key).to_string(),
        severity_str(row.severity).to_string(),
        scope_str(row.scope).to_string(),
        row.teams.join(","),
        row.site.clone().unwrap_or_default(),
        row.service.clone().unwrap_or_default(),
        row.former_province.clone().unwrap_or_default(),
    ];
    LABELS
        .iter()
        .zip(values)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v))
        .collect()
}

/// The collector: holds the rows the engine last published.
pub struct OpenIncidentSeries {
    desc: Desc,
    info_desc: Desc,
    rows: Mutex<Vec<OpenRow>>,
    runbook_base: Mutex<Option<String>>,
}

impl OpenIncidentSeries {
    pub fn new() -> OpenIncidentSeries {
        OpenIncidentSeries {
            desc: Desc::new(NAME.into(), HELP.into(), Vec::new(), Default::default())
                .expect("valid metric"),
            info_desc: Desc::new(
                INFO_NAME.into(),
                INFO_HELP.into(),
                Vec::new(),
                Default::default(),
            )
            .expect("valid metric"),
            rows: Mutex::new(Vec::new()),
            runbook_base: Mutex::new(None),
        }
    }

    /// `[incidents] runbook_base_url` of the running config.
    pub fn set_runbook_base(&self, base: Option<String>) {
        *self.runbook_base.lock().unwrap_or_else(|e| e.into_inner()) = base;
    }

    /// Replaces the published incidents (called by the writer when the open set changed).
    pub fn set(&self, rows: Vec<OpenRow>) {
        *self.rows.lock().unwrap_or_else(|e| e.into_inner()) = rows;
    }

    pub fn rows(&self) -> Vec<OpenRow> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for OpenIncidentSeries {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for OpenIncidentSeries {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc, &self.info_desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let rows = self.rows();
        let base = self
            .runbook_base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let open = family(
            NAME,
            HELP,
            rows.iter().map(|row| series_labels(row)).collect(),
        );
        let info = family(
            INFO_NAME,
            INFO_HELP,
            rows.iter()
                .map(|row| {
                    vec![
                        ("incident_id", row.id.to_string()),
                        ("title", row.title.clone()),
                        ("title_en", row.title_en.clone()),
                        ("runbook_url", runbook_url(base.as_deref(), &row.key)),
                    ]
                })
                .collect(),
        );
        vec![open, info]
    }
}

/// A gauge family, one series of value 1 per label set.
fn family(name: &str, help: &str, series: Vec<Vec<(&'static str, String)>>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(MetricType::GAUGE);
    let metrics = series
        .into_iter()
        .map(|labels| {
            let mut m = Metric::default();
            let mut pairs: Vec<LabelPair> = labels
                .into_iter()
                .map(|(k, v)| {
                    let mut p = LabelPair::default();
                    p.set_name(k.into());
                    p.set_value(v);
                    p
                })
                .collect();
            pairs.sort_by(|a, b| a.name().cmp(b.name()));
            m.set_label(pairs);
            let mut g = Gauge::default();
            g.set_value(1.0);
            m.set_gauge(g);
            m
        })
        .collect();
    family.set_metric(metrics);
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind_of("prober"), "prober_isolation");
        assert_eq!(kind_of("service/lgsp"), "service_down");
        assert_eq!(kind_of("service/lgsp/slow"), "service_slow");
        assert_eq!(kind_of("site/phuong-a/link"), "link_down");
        assert_eq!(kind_of("site/phuong-a/link-degraded"), "link_degraded");
        assert_eq!(kind_of("site/phuong-a/slow"), "site_slow");
        assert_eq!(kind_of("site/phuong-a/endpoint"), "check_down");
    }

    #[test]
    fn renders_one_series_per_incident_without_empty_labels() {
        let c = OpenIncidentSeries::new();
        c.set(vec![OpenRow {
            id: 7,
            title: "Mất kết nối: Phường Bến Thành".into(),
            title_en: "Link down: Ben Thanh Ward".into(),
            key: "site/phuong-ben-thanh/link".into(),
            severity: Severity::Critical,
            scope: Scope::Site,
            teams: vec!["to-tphcm".into()],
            site: Some("phuong-ben-thanh".into()),
            service: None,
            former_province: Some("tphcm".into()),
        }]);
        let r = prometheus::Registry::new();
        r.register(Box::new(c)).unwrap();
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains(r#"lienthong_incident_open{former_province="tphcm",incident_id="7",key="site/phuong-ben-thanh/link",kind="link_down",scope="site",severity="critical",site="phuong-ben-thanh",team="to-tphcm"} 1"#),
            "{text}"
        );
        assert!(!text.contains("service=\"\""));
        assert!(text.contains(r#"lienthong_incident_info{incident_id="7",runbook_url="/runbooks/sitedown",title="Mất kết nối: Phường Bến Thành",title_en="Link down: Ben Thanh Ward"} 1"#), "{text}");
    }
}

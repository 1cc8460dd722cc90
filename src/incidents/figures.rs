//! Team figures: how fast the specialist teams act. Time to acknowledge and time to resolve
//! (median, p90, max) per team and per severity over a window, the age of open incidents and
//! incidents per site — for `GET /api/v1/teams`, the readiness report and Prometheus.
//!
//! Definitions (also in the README):
//! - an incident counts in a window when it *started* in it;
//! - time to acknowledge = first acknowledgement − start (a later un-acknowledgement does not
//!   undo it); time to resolve = resolution − start;
//! - quantiles are nearest-rank over the incidents that have the time (median of 4 values is
//!   the 2nd smallest, p90 of 10 values the 9th);
//! - open incidents are those unresolved at the end of the window (`min(to, now)`), whenever
//!   they started; acknowledgements and resolutions are counted up to the time of the report;
//! - an incident of several teams counts for each; the city line (`team = "*"`) counts it once.

use std::collections::{BTreeMap, HashMap, HashSet};

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};
use serde::Serialize;

use super::db::Row;
use super::model::*;
use super::store::{from_text, json_col, Store, StoreError};
use crate::localtime::format_rfc3339;

/// What the figures need of an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRow {
    pub id: i64,
    pub severity: Severity,
    pub started_at: UnixMillis,
    pub first_ack_at: Option<UnixMillis>,
    pub resolved_at: Option<UnixMillis>,
    pub teams: Vec<String>,
    pub sites: Vec<String>,
}

/// Median, p90 and max of a set of durations, in seconds (None without any).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stat {
    pub count: u64,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
}

impl Stat {
    pub fn of(mut ms: Vec<i64>) -> Stat {
        ms.sort_unstable();
        let q = |p: f64| -> Option<f64> {
            if ms.is_empty() {
                return None;
            }
            let rank = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
            Some(ms[rank - 1] as f64 / 1000.0)
        };
        Stat {
            count: ms.len() as u64,
            median_seconds: q(0.5),
            p90_seconds: q(0.9),
            max_seconds: ms.last().map(|v| *v as f64 / 1000.0),
        }
    }
}

/// Figures of one team (or the city) for one severity (or all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityFigures {
    /// "all", "critical" or "warning".
    pub severity: String,
    /// Incidents started in the window.
    pub incidents: u64,
    pub acknowledged: u64,
    pub resolved: u64,
    pub time_to_acknowledge: Stat,
    pub time_to_resolve: Stat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteCount {
    pub site: String,
    pub incidents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAge {
    /// Incidents unresolved now (whenever they started).
    pub count: u64,
    pub acknowledged: u64,
    pub oldest_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamFigures {
    /// Team name, or "*" for the whole city.
    pub team: String,
    pub title: String,
    /// `all` first, then `critical`, `warning`.
    pub severities: Vec<SeverityFigures>,
    pub open: OpenAge,
    /// Incidents started in the window per affected site, most first (then by slug).
    pub sites: Vec<SiteCount>,
}

impl TeamFigures {
    pub fn all(&self) -> &SeverityFigures {
        &self.severities[0]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub from: String,
    pub to: String,
    pub generated_at: String,
    /// The whole city (every incident once).
    pub city: TeamFigures,
    /// Configured teams in config order, then team names found only on incidents.
    pub teams: Vec<TeamFigures>,
}

/// The figures over `[from, to)` and the open incidents at `now`. `teams` = (name, title) of
/// the configured teams.
pub fn compute(
    rows: &[FigureRow],
    teams: &[(String, String)],
    from: UnixMillis,
    to: UnixMillis,
    now: UnixMillis,
) -> Figures {
    let mut names: Vec<(String, String)> = teams.to_vec();
    let known: HashSet<String> = teams.iter().map(|t| t.0.clone()).collect();
    let mut extra: Vec<String> = rows
        .iter()
        .flat_map(|r| r.teams.iter())
        .filter(|t| !known.contains(*t))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    names.extend(extra.drain(..).map(|t| (t.clone(), t)));
    let city_rows: Vec<&FigureRow> = rows.iter().collect();
    let city = one(
        "*",
        "Toàn thành phố / whole city",
        &city_rows,
        from,
        to,
        now,
    );
    let teams = names
        .iter()
        .map(|(name, title)| {
            let mine: Vec<&FigureRow> = rows.iter().filter(|r| r.teams.contains(name)).collect();
            one(name, title, &mine, from, to, now)
        })
        .collect();
    Figures {
        from: format_rfc3339(from),
        to: format_rfc3339(to),
        generated_at: format_rfc3339(now),
        city,
        teams,
    }
}

fn one(
    team: &str,
    title: &str,
    rows: &[&FigureRow],
    from: UnixMillis,
    to: UnixMillis,
    now: UnixMillis,
) -> TeamFigures {
    let in_window: Vec<&&FigureRow> = rows
        .iter()
        .filter(|r| r.started_at >= from && r.started_at < to)
        .collect();
    let sev = |name: &str, pick: &dyn Fn(Severity) -> bool| {
        let these: Vec<&&&FigureRow> = in_window.iter().filter(|r| pick(r.severity)).collect();
        let acks: Vec<i64> = these
            .iter()
            .filter_map(|r| r.first_ack_at.map(|a| (a - r.started_at).max(0)))
            .collect();
        let res: Vec<i64> = these
            .iter()
            .filter_map(|r| r.resolved_at.map(|a| (a - r.started_at).max(0)))
            .collect();
        SeverityFigures {
            severity: name.to_string(),
            incidents: these.len() as u64,
            acknowledged: acks.len() as u64,
            resolved: res.len() as u64,
            time_to_acknowledge: Stat::of(acks),
            time_to_resolve: Stat::of(res),
        }
    };
    let severities = vec![
        sev("all", &|_| true),
        sev("critical", &|s| s == Severity::Critical),
        sev("warning", &|s| s == Severity::Warning),
    ];
    // Open at the end of the window (now, for a window ending now).
    let at = to.min(now);
    let open: Vec<&&FigureRow> = rows
        .iter()
        .filter(|r| r.resolved_at.is_none_or(|t| t > at) && r.started_at <= at)
        .collect();
    let ages = Stat::of(open.iter().map(|r| at - r.started_at).collect());
    let open = OpenAge {
        count: open.len() as u64,
        acknowledged: open
            .iter()
            .filter(|r| r.first_ack_at.is_some_and(|a| a <= at))
            .count() as u64,
        oldest_seconds: ages.max_seconds,
        median_seconds: ages.median_seconds,
    };
    let mut per_site: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &in_window {
        for s in &r.sites {
            *per_site.entry(s.as_str()).or_default() += 1;
        }
    }
    let mut sites: Vec<SiteCount> = per_site
        .into_iter()
        .map(|(site, incidents)| SiteCount {
            site: site.to_string(),
            incidents,
        })
        .collect();
    sites.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.site.cmp(&b.site)));
    TeamFigures {
        team: team.to_string(),
        title: title.to_string(),
        severities,
        open,
        sites,
    }
}

impl Store {
    /// Incidents started at or after `since`, resolved at or after it, and every unresolved one.
    pub fn figure_rows(&self, since: UnixMillis) -> Result<Vec<FigureRow>, StoreError> {
        self.tracked("figure_rows", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT i.id, i.severity, i.started_at, i.first_acknowledged_at, i.resolved_at, \
                 (SELECT json_group_array(team ORDER BY pos) FROM incident_teams \
                  WHERE incident_id = i.id), \
                 (SELECT json_group_array(site ORDER BY pos) FROM incident_sites \
                  WHERE incident_id = i.id) \
                 FROM incidents i WHERE i.id IN ( \
                   SELECT id FROM incidents INDEXED BY incidents_started_at WHERE started_at >= ?1 \
                   UNION SELECT id FROM incidents INDEXED BY incidents_resolved_at \
                   WHERE resolved_at IS NULL \
                   UNION SELECT id FROM incidents INDEXED BY incidents_resolved_at \
                   WHERE resolved_at >= ?1) ORDER BY i.id",
            )?;
            let rows = stmt.query_map([since], figure_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Incidents first acknowledged at or after `since` (for the ack histogram).
    pub fn acknowledged_since(&self, since: UnixMillis) -> Result<Vec<FigureRow>, StoreError> {
        self.figure_rows_where("first_acknowledged_at >= ?1", "incidents_first_ack", since)
    }

    /// Incidents resolved at or after `since` (for the resolve histogram).
    pub fn resolved_since(&self, since: UnixMillis) -> Result<Vec<FigureRow>, StoreError> {
        self.figure_rows_where("resolved_at >= ?1", "incidents_resolved_at", since)
    }

    fn figure_rows_where(
        &self,
        cond: &str,
        index: &str,
        since: UnixMillis,
    ) -> Result<Vec<FigureRow>, StoreError> {
        self.tracked("figure_rows", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT i.id, i.severity, i.started_at, i.first_acknowledged_at, i.resolved_at, \
                 (SELECT json_group_array(team ORDER BY pos) FROM incident_teams \
                  WHERE incident_id = i.id), '[]' \
                 FROM incidents i INDEXED BY {index} WHERE i.{cond} ORDER BY i.id"
            ))?;
            let rows = stmt.query_map([since], figure_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

fn figure_row(r: &Row) -> super::db::Result<FigureRow> {
    Ok(FigureRow {
        id: r.get(0)?,
        severity: from_text(r, 1)?,
        started_at: r.get(2)?,
        first_ack_at: r.get(3)?,
        resolved_at: r.get(4)?,
        teams: json_col(r, 5)?.unwrap_or_default(),
        sites: json_col(r, 6)?.unwrap_or_default(),
    })
}

/// Histogram buckets (seconds): 1 min … 3 days.
const BUCKETS: &[f64] = &[
    60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0,
];

/// `lienthong_incident_ack_seconds`, `lienthong_incident_resolve_seconds` (histograms by team)
/// and `lienthong_incident_open_age_seconds` (gauge by team: the oldest unresolved incident).
///
/// Fed by [`TeamMetrics::poll`] from the store, whatever wrote the acknowledgement or the
/// resolution (API, engine): each incident is observed once per process, from the time the
/// poller starts (histograms count from process start, as Prometheus expects). An incident of
/// no team has `team=""`.
pub struct TeamMetrics {
    ack: HistogramVec,
    resolve: HistogramVec,
    open_age: GaugeVec,
    ack_cursor: UnixMillis,
    resolve_cursor: UnixMillis,
    /// Ids observed at exactly the cursor (the next poll asks again from it).
    ack_seen: HashSet<i64>,
    resolve_seen: HashSet<i64>,
}

impl TeamMetrics {
    /// Registers the families on `registry`; acknowledgements and resolutions before `start`
    /// are not observed.
    pub fn new(registry: &Registry, start: UnixMillis) -> Result<TeamMetrics, prometheus::Error> {
        let ack = HistogramVec::new(
            HistogramOpts::new(
                "lienthong_incident_ack_seconds",
                "Time from an incident's start to its first acknowledgement, by team.",
            )
            .buckets(BUCKETS.to_vec()),
            &["team"],
        )?;
        let resolve = HistogramVec::new(
            HistogramOpts::new(
                "lienthong_incident_resolve_seconds",
                "Time from an incident's start to its resolution, by team.",
            )
            .buckets(BUCKETS.to_vec()),
            &["team"],
        )?;
        let open_age = GaugeVec::new(
            Opts::new(
                "lienthong_incident_open_age_seconds",
                "Age of the oldest unresolved incident of a team (0 when none is open).",
            ),
            &["team"],
        )?;
        registry.register(Box::new(ack.clone()))?;
        registry.register(Box::new(resolve.clone()))?;
        registry.register(Box::new(open_age.clone()))?;
        Ok(TeamMetrics {
            ack,
            resolve,
            open_age,
            ack_cursor: start,
            resolve_cursor: start,
            ack_seen: HashSet::new(),
            resolve_seen: HashSet::new(),
        })
    }

    /// Observes what was acknowledged or resolved since the last poll and sets the open-age
    /// gauges (every team in `teams` gets a value, 0 when none is open).
    pub fn poll(
        &mut self,
        store: &Store,
        teams: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        // Every team has its series from the start (zero counts), so dashboards show the team.
        for t in teams {
            self.ack.with_label_values(&[t.as_str()]);
            self.resolve.with_label_values(&[t.as_str()]);
        }
        let acked = store.acknowledged_since(self.ack_cursor)?;
        observe(
            &self.ack,
            &acked,
            |r| r.first_ack_at,
            &mut self.ack_cursor,
            &mut self.ack_seen,
        );
        let resolved = store.resolved_since(self.resolve_cursor)?;
        observe(
            &self.resolve,
            &resolved,
            |r| r.resolved_at,
            &mut self.resolve_cursor,
            &mut self.resolve_seen,
        );
        let open = store.figure_rows(i64::MAX)?;
        let mut oldest: HashMap<String, f64> = teams.iter().map(|t| (t.clone(), 0.0)).collect();
        for r in open.iter().filter(|r| r.resolved_at.is_none()) {
            let age = (now - r.started_at).max(0) as f64 / 1000.0;
            let labels: Vec<String> = if r.teams.is_empty() {
                vec![String::new()]
            } else {
                r.teams.clone()
            };
            for t in labels {
                let e = oldest.entry(t).or_insert(0.0);
                *e = e.max(age);
            }
        }
        self.open_age.reset();
        for (t, age) in oldest {
            self.open_age.with_label_values(&[t.as_str()]).set(age);
        }
        Ok(())
    }
}

fn observe(
    h: &HistogramVec,
    rows: &[FigureRow],
    at: impl Fn(&FigureRow) -> Option<UnixMillis>,
    cursor: &mut UnixMillis,
    seen: &mut HashSet<i64>,
) {
    let before = std::mem::take(seen);
    let mut max = *cursor;
    let mut stamped: Vec<(i64, UnixMillis)> = Vec::new();
    for r in rows {
        let Some(t) = at(r) else { continue };
        if t < *cursor || (t == *cursor && before.contains(&r.id)) {
            continue;
        }
        let secs = (t - r.started_at).max(0) as f64 / 1000.0;
        if r.teams.is_empty() {
            h.with_label_values(&[""]).observe(secs);
        }
        for team in &r.teams {
            h.with_label_values(&[team.as_str()]).observe(secs);
        }
        max = max.max(t);
        stamped.push((r.id, t));
    }
    if max == *cursor {
        seen.extend(before);
    }
    seen.extend(
        stamped
            .into_iter()
            .filter(|(_, t)| *t == max)
            .map(|(id, _)| id),
    );
    *cursor = max;
}

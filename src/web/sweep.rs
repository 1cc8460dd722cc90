//! `POST /api/v1/sweep`: the pre-conference sweep ("Kiểm tra trước hội nghị"). Probes every
//! selected site's conference point (role `video`) and link *now*, in parallel, through the
//! scheduler's [`OnDemand`] handle: the schedule's own probes under its global and per-site
//! semaphores, each result recorded through the writer queue like a scheduled run (health,
//! history and incidents see it). Answers a table — site, ready or not, reason, last incident —
//! as JSON, or live as Server-Sent Events (`Accept: text/event-stream`) for the status page:
//! `start` (the sites), one `site` per site as its results arrive, then `done`.
//!
//! Every site's answer is bounded by [`DEADLINE`]; a site still waiting then is "not ready: no
//! answer within …", so the sweep answers in time even when the caps are saturated.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::incidents::OptionalJsonBody;
use super::{ApiError, AppState};
use crate::config::{CheckDef, CheckRole, Inventory, SiteInfo};
use crate::incidents::{IncidentFilter, IncidentState, Store};
use crate::localtime::format_rfc3339;
use crate::probe::Outcome;
use crate::readiness::Lang;
use crate::scheduler::OnDemand;

/// Longest a site's answer is waited for (the sweep's goal is 20 s for all 168 sites).
pub const DEADLINE: Duration = Duration::from_secs(18);
/// Sweeps at once (each may start hundreds of probes).
const MAX_SWEEPS: usize = 2;
static SWEEPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_SWEEPS);
/// Longest `sites` list of a filter.
pub const MAX_SITES: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sweep", post(sweep))
        .layer(axum::extract::DefaultBodyLimit::max(
            super::incidents::BODY_LIMIT,
        ))
}

/// Which sites to sweep (all given conditions hold; none = every site).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Site slugs.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Former province key (`tphcm`, `binh-duong`, `ba-ria-vung-tau`).
    #[serde(default)]
    pub former_province: Option<String>,
    /// Team name (`[[team]] name`): the sites it covers.
    #[serde(default)]
    pub team: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("sites: unknown site `{slug}`{hint}")]
    UnknownSite { slug: String, hint: String },
    #[error("sites: at most {MAX_SITES} slugs")]
    TooMany,
    #[error("former_province: unknown `{0}` (known: {1})")]
    UnknownProvince(String, String),
    #[error("team: unknown team `{0}` (teams: {1})")]
    UnknownTeam(String, String),
    #[error("the filter matches no site (sites, former_province and team must all hold)")]
    Empty,
}

/// The sites `f` selects, in inventory order.
pub fn select<'a>(inv: &'a Inventory, f: &Filter) -> Result<Vec<&'a SiteInfo>, FilterError> {
    if f.sites.len() > MAX_SITES {
        return Err(FilterError::TooMany);
    }
    for s in &f.sites {
        if inv.site(s).is_none() {
            let hint = crate::report::suggestions(s, inv.sites.iter().map(|x| x.slug.as_str()));
            return Err(FilterError::UnknownSite {
                slug: s.clone(),
                hint: crate::report::did_you_mean(&hint),
            });
        }
    }
    if let Some(p) = &f.former_province {
        if !inv.sites.iter().any(|s| s.former_province == *p) {
            let mut known: Vec<&str> = inv
                .sites
                .iter()
                .map(|s| s.former_province.as_str())
                .collect();
            known.dedup();
            known.sort();
            known.dedup();
            return Err(FilterError::UnknownProvince(p.clone(), known.join(", ")));
        }
    }
    if let Some(t) = &f.team {
        if !inv.teams.iter().any(|x| x.name == *t) {
            let known: Vec<&str> = inv.teams.iter().map(|x| x.name.as_str()).collect();
            return Err(FilterError::UnknownTeam(t.clone(), known.join(", ")));
        }
    }
    let out: Vec<&SiteInfo> = inv
        .sites
        .iter()
        .filter(|s| f.sites.is_empty() || f.sites.contains(&s.slug))
        .filter(|s| {
            f.former_province
                .as_ref()
                .is_none_or(|p| s.former_province == *p)
        })
        .filter(|s| {
            f.team
                .as_ref()
                .is_none_or(|t| inv.teams_of_site(s).contains(t))
        })
        .collect();
    if out.is_empty() {
        return Err(FilterError::Empty);
    }
    Ok(out)
}

/// One probed check of a site.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub key: String,
    pub role: &'static str,
    pub title: String,
    pub success: bool,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    pub duration_seconds: f64,
}

/// The site's most recent incident (any state).
#[derive(Debug, Clone, Serialize)]
pub struct LastIncident {
    pub id: i64,
    pub title: String,
    pub title_en: String,
    pub state: IncidentState,
    pub started_at: String,
    pub resolved_at: Option<String>,
}

/// One row of the sweep's table.
#[derive(Debug, Clone, Serialize)]
pub struct SiteRow {
    pub site: String,
    pub name: String,
    pub former_province: String,
    pub ready: bool,
    /// Why not ready (Vietnamese), None when ready.
    pub reason: Option<String>,
    pub reason_en: Option<String>,
    pub checks: Vec<CheckResult>,
    pub last_incident: Option<LastIncident>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub started_at: String,
    pub duration_seconds: f64,
    pub total: usize,
    pub ready: usize,
    pub not_ready: usize,
    pub sites: Vec<SiteRow>,
}

/// The checks a sweep probes at a site: its link and its conference point(s).
fn sweep_checks<'a>(inv: &'a Inventory, slug: &str) -> Vec<&'a CheckDef> {
    inv.checks
        .iter()
        .filter(|c| c.id.site.as_deref() == Some(slug))
        .filter(|c| matches!(c.role, CheckRole::Link | CheckRole::Video))
        .map(|c| &**c)
        .collect()
}

fn role_words(role: CheckRole, lang: Lang) -> &'static str {
    match role {
        CheckRole::Link => lang.pick("Đường truyền", "Link"),
        CheckRole::Video => lang.pick("Điểm cầu truyền hình", "Conference point"),
        _ => "",
    }
}

/// The verdict of a site from its results (`None` = no answer in time).
fn verdict(
    defs: &[&CheckDef],
    results: &[(String, Option<Outcome>)],
    lang: Lang,
) -> Option<String> {
    if !defs.iter().any(|c| c.role == CheckRole::Video) {
        return Some(
            lang.pick(
                "chưa khai báo điểm cầu (kiểm tra role = \"video\") trong cấu hình",
                "no conference point (a check with role = \"video\") in the config",
            )
            .to_string(),
        );
    }
    let mut why = Vec::new();
    // The link first: a dead link explains a dead conference point.
    let mut order: Vec<&CheckDef> = defs.to_vec();
    order.sort_by_key(|c| c.role != CheckRole::Link);
    for def in order {
        let key = def.id.key();
        let outcome = results
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, o)| o.as_ref());
        match outcome {
            Some(o) if o.success => {}
            Some(o) => why.push(format!(
                "{}: {}",
                role_words(def.role, lang),
                super::status::reason_label(o.reason().map_or("", |r| r.as_str()), lang)
            )),
            None => why.push(format!(
                "{}: {}",
                role_words(def.role, lang),
                match lang {
                    Lang::Vi => format!("không có kết quả trong {} s", DEADLINE.as_secs()),
                    Lang::En => format!("no answer within {} s", DEADLINE.as_secs()),
                }
            )),
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn last_incidents(store: &Store, sites: &[String]) -> Vec<Option<LastIncident>> {
    sites
        .iter()
        .map(|slug| {
            let f = IncidentFilter {
                site: Some(slug.clone()),
                ..Default::default()
            };
            let page = store.list(&f, None, 1).ok()?;
            let i = page.items.into_iter().next()?;
            Some(LastIncident {
                id: i.id,
                title: i.title,
                title_en: i.title_en,
                state: i.state,
                started_at: format_rfc3339(i.started_at),
                resolved_at: i.resolved_at.map(format_rfc3339),
            })
        })
        .collect()
}

/// Runs the sweep of `sites`; every row goes to `progress` as soon as it is known. Returns
/// the rows in the order of `sites`.
pub async fn run(
    od: Arc<OnDemand>,
    inv: Arc<Inventory>,
    store: Arc<Store>,
    sites: Vec<String>,
    progress: Option<tokio::sync::mpsc::UnboundedSender<SiteRow>>,
) -> Summary {
    let started = Instant::now();
    let started_at = format_rfc3339(super::incidents::now_ms());
    let slugs = sites.clone();
    let last = tokio::task::spawn_blocking(move || last_incidents(&store, &slugs))
        .await
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, slug) in sites.iter().enumerate() {
        let (od, inv, progress) = (od.clone(), inv.clone(), progress.clone());
        let slug = slug.clone();
        let last = last.get(i).cloned().flatten();
        tasks.spawn(async move {
            let keys: Vec<String> = sweep_checks(&inv, &slug)
                .iter()
                .map(|c| c.id.key())
                .collect();
            let runs = keys.iter().map(|k| {
                let od = od.clone();
                let k = k.clone();
                async move {
                    let o = tokio::time::timeout_at(deadline, od.run(&k))
                        .await
                        .ok()
                        .flatten();
                    (k, o)
                }
            });
            let results: Vec<(String, Option<Outcome>)> = futures::future::join_all(runs).await;
            let row = site_row(&inv, &slug, &results, last);
            if let Some(p) = &progress {
                let _ = p.send(row.clone());
            }
            (i, row)
        });
    }
    let mut rows: Vec<Option<SiteRow>> = vec![None; sites.len()];
    while let Some(r) = tasks.join_next().await {
        if let Ok((i, row)) = r {
            rows[i] = Some(row);
        }
    }
    let rows: Vec<SiteRow> = rows.into_iter().flatten().collect();
    let ready = rows.iter().filter(|r| r.ready).count();
    Summary {
        started_at,
        duration_seconds: started.elapsed().as_secs_f64(),
        total: rows.len(),
        ready,
        not_ready: rows.len() - ready,
        sites: rows,
    }
}

fn site_row(
    inv: &Inventory,
    slug: &str,
    results: &[(String, Option<Outcome>)],
    last_incident: Option<LastIncident>,
) -> SiteRow {
    let defs = sweep_checks(inv, slug);
    let site = inv.site(slug);
    let reason = verdict(&defs, results, Lang::Vi);
    let reason_en = verdict(&defs, results, Lang::En);
    let checks = defs
        .iter()
        .filter_map(|d| {
            let key = d.id.key();
            let o = results.iter().find(|(k, _)| *k == key)?.1.as_ref()?;
            Some(CheckResult {
                key,
                role: d.role.as_str(),
                title: d.title.clone(),
                success: o.success,
                reason: o.reason().map(|r| r.as_str()),
                message: o
                    .failure
                    .as_ref()
                    .map(|f| crate::config::redact_urls(&f.message)),
                duration_seconds: o.duration.as_secs_f64(),
            })
        })
        .collect();
    SiteRow {
        site: slug.to_string(),
        name: site.map(|s| s.name.clone()).unwrap_or_default(),
        former_province: site.map(|s| s.former_province.clone()).unwrap_or_default(),
        ready: reason.is_none(),
        reason,
        reason_en,
        checks,
        last_incident,
    }
}

fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

async fn sweep(
    _: super::auth::Writer,
    State(app): State<AppState>,
    headers: HeaderMap,
    OptionalJsonBody(filter): OptionalJsonBody<Filter>,
) -> Result<Response, ApiError> {
    let inv = app.state.inventory();
    let sites: Vec<String> = select(&inv, &filter)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .into_iter()
        .map(|s| s.slug.clone())
        .collect();
    let Some(od) = app.actions.on_demand() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sweep unavailable: the scheduler is not running",
        ));
    };
    let Ok(permit) = SWEEPS.try_acquire() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_SWEEPS} sweeps are already running; wait for one to finish"),
        ));
    };
    tracing::info!(sites = sites.len(), "pre-conference sweep");
    if !wants_events(&headers) {
        let summary = run(od, inv, app.store.clone(), sites, None).await;
        drop(permit);
        return Ok(Json(summary).into_response());
    }
    // Live: the sweep runs in its own task (it finishes and is recorded even if the page
    // goes away); the stream forwards rows as they come.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let start = serde_json::json!({
        "total": sites.len(),
        "sites": sites.iter().map(|s| {
            let name = inv.site(s).map(|x| x.name.clone()).unwrap_or_default();
            serde_json::json!({ "site": s, "name": name })
        }).collect::<Vec<_>>(),
    });
    let store = app.store.clone();
    tokio::spawn(async move {
        let summary = run(od, inv, store, sites, Some(tx)).await;
        drop(permit);
        let _ = done_tx.send(summary);
    });
    enum Phase {
        Start(serde_json::Value),
        Rows,
        Done,
    }
    struct S {
        phase: Phase,
        rx: tokio::sync::mpsc::UnboundedReceiver<SiteRow>,
        done: Option<tokio::sync::oneshot::Receiver<Summary>>,
    }
    let init = S {
        phase: Phase::Start(start),
        rx,
        done: Some(done_rx),
    };
    let events = futures::stream::unfold(init, |mut s| async move {
        match std::mem::replace(&mut s.phase, Phase::Rows) {
            Phase::Start(v) => {
                let ev = Event::default().event("start").data(v.to_string());
                Some((Ok::<_, Infallible>(ev), s))
            }
            Phase::Rows => match s.rx.recv().await {
                Some(row) => {
                    let ev = Event::default()
                        .event("site")
                        .data(serde_json::to_string(&row).unwrap_or_default());
                    Some((Ok(ev), s))
                }
                None => {
                    let summary = s.done.take()?.await.ok()?;
                    let ev = Event::default()
                        .event("done")
                        .data(serde_json::to_string(&summary).unwrap_or_default());
                    s.phase = Phase::Done;
                    Some((Ok(ev), s))
                }
            },
            Phase::Done => None,
        }
    });
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Arc<Inventory> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml");
        crate::config::Config::load(&p).unwrap().inventory
    }

    #[test]
    fn filters() {
        let inv = inv();
        let all = select(&inv, &Filter::default()).unwrap();
        assert_eq!(all.len(), inv.sites.len());
        let f = Filter {
            former_province: Some("ba-ria-vung-tau".into()),
            ..Default::default()
        };
        let brvt = select(&inv, &f).unwrap();
        assert!(!brvt.is_empty() && brvt.len() < all.len());
        assert!(brvt.iter().all(|s| s.former_province == "ba-ria-vung-tau"));
        let f = Filter {
            team: Some("to-ba-ria-vung-tau".into()),
            ..Default::default()
        };
        assert_eq!(select(&inv, &f).unwrap().len(), brvt.len());
        let f = Filter {
            sites: vec!["phuong-ben-thanh".into(), "phuong-sai-gon".into()],
            ..Default::default()
        };
        let two: Vec<&str> = select(&inv, &f)
            .unwrap()
            .iter()
            .map(|s| s.slug.as_str())
            .collect();
        assert_eq!(
            two,
            ["phuong-sai-gon", "phuong-ben-thanh"],
            "inventory order"
        );
        let f = Filter {
            sites: vec!["phuong-ben-thanh".into()],
            team: Some("to-binh-duong".into()),
            ..Default::default()
        };
        assert_eq!(select(&inv, &f).unwrap_err(), FilterError::Empty);
        let f = Filter {
            sites: vec!["phuong-ben-tanh".into()],
            ..Default::default()
        };
        let e = select(&inv, &f).unwrap_err().to_string();
        assert!(
            e.contains("`phuong-ben-tanh`") && e.contains("phuong-ben-thanh"),
            "{e}"
        );
        let f = Filter {
            former_province: Some("hanoi".into()),
            ..Default::default()
        };
        let e = select(&inv, &f).unwrap_err().to_string();
        assert!(
            e.contains("binh-duong, tphcm") || e.contains("tphcm"),
            "{e}"
        );
        let f = Filter {
            team: Some("to-x".into()),
            ..Default::default()
        };
        assert!(select(&inv, &f)
            .unwrap_err()
            .to_string()
            .contains("to-tphcm"));
    }
}

//! Correlation: turns check health into one incident per real cause.
//!
//! After every state change (and on a 1 s tick) the engine computes which incidents the current
//! health calls for, then opens the missing ones and resolves those whose cause has clearly
//! recovered. Rules (see README "Incident model"):
//!
//! - a site's **link** is the parent of its other checks: link Down → one critical incident
//!   "Mất kết nối"; endpoint/video failures at that site are attached to it as evidence;
//! - an endpoint / video / other check Down while the link is not → its own incident;
//! - Degraded link or slow endpoint → a warning incident;
//! - any check of a **shared service** Down → one city-wide incident listing every site;
//! - **prober isolation**: a reference check Down, or `prober_share` of all sites' links down at
//!   once → one prober incident, and per-site incidents are held while it lasts. While several
//!   links start failing within [`MASS_WINDOW`], new site incidents wait for the window to tell
//!   a mass outage from independent ones;
//! - in a maintenance window nothing is opened (checks still run and are recorded);
//! - an incident resolves only when its cause is positively healthy again (Up/Degraded), never
//!   because a check is Unknown after a restart — so a restart neither loses nor duplicates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::broadcast;

use super::model::*;
use super::store::{Store, StoreError};
use crate::config::{CheckDef, CheckId, CheckRole, Inventory, SiteInfo};
use crate::health::{
    site_status, CheckHealth, Evidence, HealthPolicy, SiteStatus, State, Transition,
};
use crate::probe::Outcome;

/// Links starting to fail within this window are suspected of one common cause.
pub const MASS_WINDOW: Duration = Duration::from_secs(20);
/// How many recent link failures make the engine wait before opening site incidents.
const MASS_MIN: usize = 3;
/// After a prober incident ends, its sites have this long to recover before their own
/// incidents may open.
pub const PROBER_GRACE: Duration = Duration::from_secs(60);
/// A child still down this long after its link recovered is a failure of its own.
const CHILD_AFTER_LINK: Duration = Duration::from_secs(60);
/// Certificate wants are re-judged this often (the thresholds are days).
const CERT_RECHECK: Duration = Duration::from_secs(60);
/// Store writes kept in memory while the store fails (a full disk, a read-only filesystem),
/// replayed in order once it works again. Past this many, timeline events (state changes) are
/// dropped first; opens and resolutions are kept up to twice this.
pub const DEFERRED_MAX: usize = 10_000;
/// The affected-sites list of an open incident is rewritten at most this often.
const SITES_UPDATE_EVERY: Duration = Duration::from_secs(15);

/// When each ward agent was last heard from (the agents' hub writes, the engine reads on its
/// tick): heartbeat lost → "agent offline" unless the site's link check explains it.
pub type AgentPresence = Arc<std::sync::Mutex<HashMap<String, SystemTime>>>;

fn ms(t: SystemTime) -> UnixMillis {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Tracked {
    def: Arc<CheckDef>,
    /// Shared by the checks with equal policies (a template's checks at every site).
    policy: Arc<HealthPolicy>,
    health: CheckHealth,
    /// Evidence of the last transition (shown when an incident opens).
    /// Boxed, like `cert`: set on transitions only, and the map holds 10,000 of these.
    evidence: Option<Box<Evidence>>,
    /// When the last run started (its result speaks for the time after that).
    last_run: Option<SystemTime>,
    /// The last time a run left the check Failing or Down.
    last_bad: Option<SystemTime>,
    /// The leaf certificate the check last presented (kept while the target is unreachable).
    cert: Option<Box<crate::probe::tls::CertInfo>>,
    /// Set at start-up on a link whose incident was still open: the link was bad until then,
    /// and what its children did before the restart is unknown.
    resumed_bad: Option<SystemTime>,
}

/// The distinct policies seen last while installing an inventory: a check's policy is usually
/// equal to one a few checks before it (the same template at the previous site). Bounded, so a
/// config where every policy differs costs a few comparisons per check, not a quadratic search.
#[derive(Default)]
struct PolicyCache(Vec<Arc<HealthPolicy>>);

impl PolicyCache {
    const KEEP: usize = 16;

    fn share(&mut self, policy: HealthPolicy) -> Arc<HealthPolicy> {
        if let Some(i) = self.0.iter().position(|p| **p == policy) {
            return self.0[i].clone();
        }
        if self.0.len() == Self::KEEP {
            self.0.remove(0);
        }
        let shared = Arc::new(policy);
        self.0.push(shared.clone());
        shared
    }
}

/// What an open incident is, in memory (the store has the rest).
#[derive(Debug, Clone)]
struct OpenIncident {
    id: i64,
    title: String,
    title_en: String,
    severity: Severity,
    scope: Scope,
    teams: Vec<String>,
    sites: Vec<String>,
    sites_updated: Option<SystemTime>,
}

/// A store write that failed (or queued behind one that did), replayed in order. `incident` is
/// the store's id, or a placeholder (negative) for an incident whose opening is itself deferred.
#[derive(Debug, Clone)]
enum Deferred {
    Open {
        placeholder: i64,
        new: NewIncident,
        first: NewEvent,
        targets: Vec<String>,
    },
    Append {
        incident: i64,
        ev: NewEvent,
        targets: Vec<String>,
    },
    SetSites {
        incident: i64,
        sites: Vec<String>,
    },
    Resolve {
        incident: i64,
        ev: NewEvent,
        targets: Vec<String>,
    },
}

/// An incident the current health calls for.
#[derive(Debug, Clone)]
struct Want {
    new: NewIncident,
    /// The check whose state change caused it (its evidence opens the timeline).
    cause: Option<CheckId>,
}

/// Counts for `lienthong_incidents_open{severity,scope,team}`.
pub type OpenCounts = BTreeMap<(Severity, Scope, String), i64>;

pub struct IncidentEngine {
    inv: Arc<Inventory>,
    store: Arc<Store>,
    events: broadcast::Sender<IncidentEvent>,
    /// Boxed: 20,000 checks make a table of 32,768 buckets; ~300 bytes inline would make the
    /// empty buckets cost as much as the full.
    checks: HashMap<CheckId, Box<Tracked>>,
    /// `site/<slug>` or `service/<slug>` → its checks, in config order.
    by_owner: HashMap<String, Vec<CheckId>>,
    /// Site slug → index in `inv.sites`, and the teams covering it (built once per inventory).
    site_index: HashMap<String, usize>,
    site_teams: Vec<Vec<String>>,
    /// Open incidents by key; a BTreeMap so a site's incidents are one range (`site/<slug>/…`).
    open: BTreeMap<String, OpenIncident>,
    /// Bumped whenever `open` changes, so the open-incident gauges are rebuilt only then.
    open_generation: u64,
    /// What the current health calls for, maintained incrementally: a transition recomputes
    /// only its owner's wants (its site or its service) and the prober want.
    wants: BTreeMap<String, Want>,
    /// Owner (`site/<slug>`, `service/<slug>`) → the keys of its current wants.
    wants_by_owner: HashMap<String, Vec<String>>,
    /// Wanted but not open (held, in maintenance, in the prober grace): retried on the tick.
    pending: std::collections::BTreeSet<String>,
    /// Sites whose wants depend on the clock (a child waits for its link to be verified):
    /// recomputed on the tick until they no longer do.
    timed_sites: std::collections::BTreeSet<String>,
    /// Sites whose link is Down, and sites whose link is Failing or Down with since when:
    /// prober isolation and the mass-failure hold are counted from these, not by a walk.
    links_down: std::collections::BTreeSet<String>,
    links_bad: HashMap<String, SystemTime>,
    /// Sites that have a link check (the denominator of the prober share).
    sites_with_link: usize,
    /// Certificate id → the checks presenting it (one incident per certificate).
    cert_checks: BTreeMap<String, std::collections::BTreeSet<CheckId>>,
    cert_checked: Option<SystemTime>,
    /// Service wants already attached to the open prober incident (attached once each).
    folded: std::collections::BTreeSet<String>,
    /// Reference checks (by key) currently Down.
    references_down: std::collections::BTreeSet<String>,
    api_windows: Vec<MaintenanceWindow>,
    /// When the last prober incident ended: sites get [`PROBER_GRACE`] to come back (links and
    /// endpoints recover one by one) before their own incidents may open.
    prober_released: Option<SystemTime>,
    /// Incidents opened since start, by (severity, scope), for the `_total` counter.
    pub opened: Vec<(Severity, Scope)>,
    /// Escalation steps fired since last taken (the writer pokes the notifier).
    pub escalated: usize,
    /// The latest time the engine was told about (runs and ticks carry their own clock, which
    /// is virtual in tests): used when a config load recomputes every want.
    last_now: Option<SystemTime>,
    /// Writes the store refused, in order (bounded by [`DEFERRED_MAX`]); see [`Deferred`].
    deferred: std::collections::VecDeque<Deferred>,
    /// Placeholder id → the store's id, for deferred opens already replayed.
    placeholders: HashMap<i64, i64>,
    next_placeholder: i64,
    /// Deferred writes dropped because the buffer was full.
    pub deferred_dropped: u64,
    /// The overflow was logged (once per outage).
    overflow_logged: bool,
    /// Ward agents' last contact, and since when the engine runs (an agent never heard from
    /// is offline once [`crate::agents::AGENT_LOST_AFTER`] has passed since then).
    presence: AgentPresence,
    started: SystemTime,
    /// The other vantage points' latest view of each check (shared store; see
    /// `incidents/vantage.rs`): a check this instance sees down counts as down only by
    /// strict majority.
    remote: HashMap<CheckId, super::vantage::Votes>,
}

impl IncidentEngine {
    /// Loads unresolved incidents from the store and marks them resumed.
    pub fn new(
        inv: Arc<Inventory>,
        store: Arc<Store>,
        events: broadcast::Sender<IncidentEvent>,
        now: SystemTime,
    ) -> Result<IncidentEngine, StoreError> {
        let mut open = BTreeMap::new();
        // A standby of a shared store starts empty: the leader owns the open incidents, and
        // a takeover builds a new engine from the store (`takeover`).
        let unresolved = if store.is_leader() {
            store.unresolved()?
        } else {
            Vec::new()
        };
        for inc in unresolved {
            let ev = NewEvent {
                at: ms(now),
                kind: EventKind::Resumed,
                check: None,
                state: None,
                message: "Tiếp tục theo dõi sau khi lienthong khởi động lại / monitoring resumed after a restart".into(),
                evidence: None,
            };
            store.append_event(inc.id, &ev, &[])?;
            open.insert(
                inc.key.clone(),
                OpenIncident {
                    id: inc.id,
                    title: inc.title.clone(),
                    title_en: inc.title_en.clone(),
                    severity: inc.severity,
                    scope: inc.scope,
                    teams: inc.teams.clone(),
                    sites: inc.sites.clone(),
                    sites_updated: None,
                },
            );
        }
        // A standby (or a store still unreachable at start-up) reads them again on takeover.
        let api_windows = match store.maintenance_windows(ms(now)) {
            Ok(w) => w,
            Err(e) if !store.is_leader() => {
                tracing::warn!(error = %e, "maintenance windows not loaded (standby)");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut engine = IncidentEngine {
            inv: inv.clone(),
            store,
            events,
            checks: HashMap::new(),
            by_owner: HashMap::new(),
            site_index: HashMap::new(),
            site_teams: Vec::new(),
            open,
            open_generation: 1,
            wants: BTreeMap::new(),
            wants_by_owner: HashMap::new(),
            pending: Default::default(),
            timed_sites: Default::default(),
            links_down: Default::default(),
            links_bad: HashMap::new(),
            sites_with_link: 0,
            references_down: Default::default(),
            folded: Default::default(),
            cert_checks: BTreeMap::new(),
            cert_checked: None,
            api_windows,
            prober_released: None,
            deferred: Default::default(),
            placeholders: HashMap::new(),
            next_placeholder: -1,
            deferred_dropped: 0,
            overflow_logged: false,
            opened: Vec::new(),
            escalated: 0,
            last_now: Some(now),
            presence: AgentPresence::default(),
            started: now,
            remote: HashMap::new(),
        };
        engine.set_inventory(inv);
        // A link incident resumed after a restart: its children's failures may have begun in
        // the outage, before this process saw them; they get the after-link grace.
        let resumed_links: Vec<String> = engine
            .open
            .keys()
            .filter_map(|k| k.strip_prefix("site/")?.strip_suffix("/link"))
            .map(str::to_string)
            .collect();
        for site in resumed_links {
            let link_id = engine.link_of(&site).map(|t| t.def.id.clone());
            if let Some(t) = link_id.and_then(|id| engine.checks.get_mut(&id)) {
                t.resumed_bad = Some(now);
            }
        }
        Ok(engine)
    }

    /// Shares the agents' presence map (the hub updates it on every heartbeat and batch).
    pub fn set_agent_presence(&mut self, presence: AgentPresence) {
        self.presence = presence;
    }

    /// A new engine restored from the store, as at start-up (open incidents marked resumed),
    /// for a standby that just took the leader lease over.
    pub fn takeover(&self, now: SystemTime) -> Result<IncidentEngine, StoreError> {
        let mut e = IncidentEngine::new(
            self.inv.clone(),
            self.store.clone(),
            self.events.clone(),
            now,
        )?;
        e.set_agent_presence(self.presence.clone());
        Ok(e)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// "Agent offline" wants: an agent not heard from for [`crate::agents::AGENT_LOST_AFTER`]
    /// while its site's link check is not failing (a failing link is the existing link
    /// incident: no second one). O(agents).
    fn recompute_agents(&mut self, now: SystemTime) -> Vec<String> {
        let mut keys = Vec::new();
        let agents: Vec<String> = self.inv.agents.iter().map(|a| a.site.clone()).collect();
        for slug in agents {
            let last = self
                .presence
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&slug)
                .copied()
                .unwrap_or(self.started)
                .max(self.started);
            let lost = now
                .duration_since(last)
                .is_ok_and(|d| d >= crate::agents::AGENT_LOST_AFTER);
            let link_bad = self
                .link_of(&slug)
                .is_some_and(|t| matches!(t.health.state(), State::Failing | State::Down));
            let mut wants = Vec::new();
            if lost && !link_bad {
                if let Some(idx) = self.site_index.get(&slug).copied() {
                    let site = &self.inv.sites[idx];
                    wants.push(Want {
                        new: NewIncident {
                            key: format!("site/{slug}/agent-offline"),
                            title: format!("Mất tín hiệu agent tại {}", site.name),
                            title_en: format!(
                                "Agent offline at {} (link check passing)",
                                site.name
                            ),
                            severity: Severity::Warning,
                            scope: Scope::Site,
                            sites: vec![slug.clone()],
                            service: None,
                            teams: self.site_teams[idx].clone(),
                        },
                        cause: None,
                    });
                }
            }
            let owner = format!("agent/{slug}");
            let had = self.wants_by_owner.contains_key(&owner);
            if had || !wants.is_empty() {
                keys.extend(self.replace_wants(owner, wants));
            }
        }
        keys
    }

    /// Installs a new inventory, keeping the health memory of checks that still exist.
    pub fn set_inventory(&mut self, inv: Arc<Inventory>) {
        let mut old = std::mem::take(&mut self.checks);
        self.by_owner.clear();
        let mut policies = PolicyCache::default();
        for def in &inv.checks {
            let owner = match (&def.id.site, &def.id.service) {
                (Some(s), _) => format!("site/{s}"),
                (None, Some(s)) => format!("service/{s}"),
                _ => String::new(),
            };
            self.by_owner.entry(owner).or_default().push(def.id.clone());
            let prev = old
                .remove(&def.id)
                .filter(|t| t.def.probe.kind() == def.probe.kind());
            let mut policy = HealthPolicy::for_check(def);
            policy.confirm_interval = inv.incidents.confirm_interval.0.min(def.interval);
            let policy = policies.share(policy);
            let (health, evidence, last_run, last_bad, resumed_bad, cert) = prev
                .map(|t| {
                    (
                        t.health,
                        t.evidence,
                        t.last_run,
                        t.last_bad,
                        t.resumed_bad,
                        t.cert,
                    )
                })
                .unwrap_or_default();
            self.checks.insert(
                def.id.clone(),
                Box::new(Tracked {
                    def: def.clone(),
                    policy,
                    health,
                    evidence,
                    last_run,
                    last_bad,
                    resumed_bad,
                    cert,
                }),
            );
        }
        self.site_index = inv
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.slug.clone(), i))
            .collect();
        self.site_teams = inv.sites.iter().map(|s| inv.teams_of_site(s)).collect();
        self.inv = inv;
        self.rebuild_counters();
        self.recompute_all_wants(self.last_now);
        // Incidents of checks the new config removed end now, not on the next tick.
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|k| !self.wants.contains_key(*k))
            .cloned()
            .collect();
        let now = self.last_now.unwrap_or_else(SystemTime::now);
        if let Err(e) = self.reconcile_keys(gone, now) {
            tracing::error!(error = %e, "incident store");
        }
    }

    /// Recounts links and reference checks from the tracked states (after a config load).
    fn rebuild_counters(&mut self) {
        self.cert_checks.clear();
        for (id, t) in &self.checks {
            if let Some(c) = &t.cert {
                self.cert_checks
                    .entry(c.id.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
        self.links_down.clear();
        self.links_bad.clear();
        self.references_down.clear();
        self.sites_with_link = 0;
        let ids: Vec<CheckId> = self.checks.keys().cloned().collect();
        for id in ids {
            self.count_state(&id);
        }
        self.sites_with_link = self
            .inv
            .sites
            .iter()
            .filter(|s| self.link_of(&s.slug).is_some())
            .count();
    }

    /// Keeps the link and reference counters in step with one check's state.
    fn count_state(&mut self, id: &CheckId) {
        let Some(t) = self.checks.get(id) else { return };
        let state = t.health.state();
        let since = t.health.since();
        let is_link = t.def.role == CheckRole::Link;
        if is_link {
            if let Some(site) = id.site.as_deref() {
                if state == State::Down {
                    self.links_down.insert(site.to_string());
                } else {
                    self.links_down.remove(site);
                }
                match (state, since) {
                    (State::Failing | State::Down, Some(since)) => {
                        self.links_bad.insert(site.to_string(), since);
                    }
                    _ => {
                        self.links_bad.remove(site);
                    }
                }
            }
        }
        if self.is_reference(id) {
            let key = id.key();
            if state == State::Down {
                self.references_down.insert(key);
            } else {
                self.references_down.remove(&key);
            }
        }
    }

    /// Recomputes every want from scratch (config load): O(checks), once.
    fn recompute_all_wants(&mut self, now: Option<SystemTime>) {
        self.wants.clear();
        self.wants_by_owner.clear();
        self.timed_sites.clear();
        let now = now.unwrap_or_else(SystemTime::now);
        let sites: Vec<String> = self.inv.sites.iter().map(|s| s.slug.clone()).collect();
        for slug in sites {
            self.recompute_site(&slug, now);
        }
        let services: Vec<String> = self.inv.services.iter().map(|s| s.slug.clone()).collect();
        for slug in services {
            self.recompute_service(&slug);
        }
        let certs: Vec<String> = self.cert_checks.keys().cloned().collect();
        for id in certs {
            self.recompute_cert(&id, now);
        }
        self.recompute_prober();
        // Everything wanted and not open is reconsidered on the next tick.
        self.pending = self
            .wants
            .keys()
            .filter(|k| !self.open.contains_key(*k))
            .cloned()
            .collect();
    }

    /// The prober itself is isolated (its incident open or about to open): what it sees now is
    /// no evidence about the sites and services ("monitor blind").
    pub fn monitor_blind(&self) -> bool {
        self.open.contains_key("prober") || self.wants.contains_key("prober")
    }

    /// Feeds one run; returns the delay to the next run when it should be sooner than usual.
    pub fn observe(
        &mut self,
        def: &CheckDef,
        outcome: &Outcome,
        now: SystemTime,
    ) -> Option<Duration> {
        self.last_now = Some(now);
        let blind = self.monitor_blind();
        let tracked = self.checks.get_mut(&def.id)?;
        let obs = tracked
            .health
            .observe_with(outcome, now, &tracked.policy, blind);
        tracked.last_run = Some(now.checked_sub(outcome.duration).unwrap_or(now));
        if matches!(tracked.health.state(), State::Failing | State::Down) {
            tracked.last_bad = Some(now);
        }
        let presented = match &outcome.details {
            crate::probe::Details::Http(d) => d.cert.as_ref(),
            crate::probe::Details::Tcp(d) => d.cert.as_ref(),
            _ => None,
        };
        let cert_changed = presented.is_some_and(|c| tracked.cert.as_deref() != Some(c));
        if cert_changed {
            let old = std::mem::replace(&mut tracked.cert, presented.cloned().map(Box::new));
            self.on_cert_change(&def.id, old.map(|c| *c), now);
        }
        let tracked = self.checks.get_mut(&def.id)?;
        if let Some(t) = obs.transition {
            tracked.evidence = Some(Box::new(t.evidence.clone()));
            // unknown → up is every check's first run: not news.
            if t.from == State::Unknown && t.to == State::Up {
                tracing::debug!(check = %def.id, from = t.from.as_str(), to = t.to.as_str(), "health changed");
            } else {
                tracing::info!(check = %def.id, from = t.from.as_str(), to = t.to.as_str(), "health changed");
            }
            self.count_state(&def.id);
            if let Err(e) = self.on_transition(&def.id, &t, now) {
                tracing::error!(error = %e, "incident store");
            }
        }
        obs.next_run_in
    }

    /// Periodic reconciliation: holds expire, maintenance windows start and end. Looks only at
    /// what can change with the clock: pending wants, clock-dependent sites, the prober want and
    /// open incidents no longer wanted.
    pub fn tick(&mut self, now: SystemTime) {
        self.last_now = Some(now);
        if !self.deferred.is_empty() {
            self.replay();
        }
        let mut keys: Vec<String> = Vec::new();
        let timed: Vec<String> = std::mem::take(&mut self.timed_sites).into_iter().collect();
        for site in timed {
            keys.extend(self.recompute_site(&site, now));
        }
        keys.extend(self.pending.iter().cloned());
        keys.extend(
            self.open
                .keys()
                .filter(|k| !self.wants.contains_key(*k))
                .cloned(),
        );
        keys.push("prober".into());
        if !self.inv.agents.is_empty() {
            keys.extend(self.recompute_agents(now));
        }
        let recheck = self
            .cert_checked
            .is_none_or(|t| now.duration_since(t).map_or(true, |d| d >= CERT_RECHECK));
        if recheck {
            self.cert_checked = Some(now);
            let certs: Vec<String> = self.cert_checks.keys().cloned().collect();
            for id in certs {
                keys.extend(self.recompute_cert(&id, now));
            }
        }
        if let Err(e) = self.reconcile_keys(keys, now) {
            tracing::error!(error = %e, "incident store");
        }
        if let Err(e) = self.escalate(now) {
            tracing::error!(error = %e, "incident store (escalation)");
        }
    }

    /// Acknowledgements that lapsed are withdrawn; escalation steps that are due fire (see
    /// `incidents/escalation.rs`). Runs on the tick with its clock, over every unresolved
    /// incident in the store (whoever opened it).
    fn escalate(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let at = ms(now);
        if self.store.next_ack_expiry()?.is_some_and(|e| e <= at) {
            for ev in self.store.expire_acks(at)? {
                tracing::info!(incident = ev.incident_id, "acknowledgement expired");
                let _ = self.events.send(ev);
            }
        }
        if self.inv.teams.iter().all(|t| t.escalation.is_empty()) {
            return Ok(());
        }
        let rows = self.store.escalation_rows()?;
        for row in rows.iter().filter(|r| !r.acknowledged) {
            for team in &row.teams {
                let Some(cfg) = self.inv.teams.iter().find(|t| &t.name == team) else {
                    continue;
                };
                let afters: Vec<i64> = cfg
                    .escalation
                    .iter()
                    .map(|s| s.get_ref().after.0.as_millis() as i64)
                    .collect();
                for step in super::escalation::due_steps(row, team, &afters, at) {
                    let st = cfg.escalation[step].get_ref();
                    let after = humantime::format_duration(st.after.0).to_string();
                    let ev = NewEvent {
                        at,
                        kind: EventKind::Escalated,
                        check: None,
                        state: None,
                        message: format!(
                            "Báo cáo vượt cấp (bước {}, {}): chưa tiếp nhận sau {after} — báo {} / escalated (step {}, team {}): not acknowledged after {after}, notifying {}",
                            step + 1,
                            cfg.title,
                            st.notify.join(", "),
                            step + 1,
                            team,
                            st.notify.join(", "),
                        ),
                        evidence: Some(json!({
                            "team": team,
                            "step": step + 1,
                            "after_seconds": st.after.0.as_secs(),
                            "notify": st.notify,
                        })),
                    };
                    if let Some(e) = self
                        .store
                        .record_escalation(row.id, team, step, &ev, &st.notify)?
                    {
                        tracing::info!(
                            incident = row.id,
                            team,
                            step = step + 1,
                            "incident escalated"
                        );
                        self.escalated += 1;
                        let _ = self.events.send(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// A check presented another certificate (or its first): re-index, re-judge both.
    fn on_cert_change(
        &mut self,
        id: &CheckId,
        old: Option<crate::probe::tls::CertInfo>,
        now: SystemTime,
    ) {
        let mut keys = Vec::new();
        if let Some(old) = old {
            if let Some(set) = self.cert_checks.get_mut(&old.id) {
                set.remove(id);
                if set.is_empty() {
                    self.cert_checks.remove(&old.id);
                }
            }
            keys.extend(self.recompute_cert(&old.id, now));
        }
        let new_id = self
            .checks
            .get(id)
            .and_then(|t| t.cert.as_ref())
            .map(|c| c.id.clone());
        if let Some(new_id) = new_id {
            self.cert_checks
                .entry(new_id.clone())
                .or_default()
                .insert(id.clone());
            keys.extend(self.recompute_cert(&new_id, now));
        }
        if let Err(e) = self.reconcile_keys(keys, now) {
            tracing::error!(error = %e, "incident store");
        }
    }

    /// What one certificate calls for: warning under `[incidents] cert_warning` to its
    /// `notAfter`, critical under `cert_critical` or once expired. One incident per certificate, however
    /// many checks present it.
    fn recompute_cert(&mut self, cert_id: &str, now: SystemTime) -> Vec<String> {
        // FNV-1a (as for shards): a key that stays the same across restarts and Rust versions.
        let owner = format!("cert/{:016x}", crate::shard::fnv1a64(cert_id.as_bytes()));
        let checks: Vec<&Tracked> = self
            .cert_checks
            .get(cert_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.checks.get(id).map(|t| &**t))
            .collect();
        let Some(cert) = checks.first().and_then(|t| t.cert.as_deref().cloned()) else {
            return self.replace_wants(owner, Vec::new());
        };
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = cert.not_after - now_s;
        let expired = left <= 0;
        let (warning, critical) = (
            self.inv.incidents.cert_warning.0.as_secs() as i64,
            self.inv.incidents.cert_critical.0.as_secs() as i64,
        );
        let severity = if expired || left < critical {
            Severity::Critical
        } else if left < warning {
            Severity::Warning
        } else {
            return self.replace_wants(owner, Vec::new());
        };
        let mut sites: Vec<String> = checks
            .iter()
            .filter_map(|t| t.def.id.site.as_deref().map(String::from))
            .collect();
        sites.sort();
        sites.dedup();
        let mut services: Vec<String> = checks
            .iter()
            .filter_map(|t| t.def.id.service.as_deref().map(String::from))
            .collect();
        services.sort();
        services.dedup();
        let name_of_site = |slug: &String| {
            self.site_index
                .get(slug)
                .map(|i| self.inv.sites[*i].name.clone())
                .unwrap_or_else(|| slug.clone())
        };
        let name_of_service = |slug: &String| {
            self.inv
                .services
                .iter()
                .find(|s| &s.slug == slug)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| slug.clone())
        };
        let names: Vec<String> = sites
            .iter()
            .map(name_of_site)
            .chain(services.iter().map(name_of_service))
            .collect();
        let owners = match names.as_slice() {
            [] => cert.subject.clone(),
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} và {} nơi khác", rest.len()),
        };
        let days = left.max(0) / 86_400;
        let (vi, en) = if expired {
            (
                format!("Chứng chỉ đã hết hạn: {owners}"),
                format!("Certificate expired: {owners}"),
            )
        } else {
            (
                format!("Chứng chỉ sắp hết hạn (còn {days} ngày): {owners}"),
                format!("Certificate expires in {days} days: {owners}"),
            )
        };
        let (scope, teams, service) = match (sites.as_slice(), services.as_slice()) {
            ([site], []) => (
                Scope::Site,
                self.site_index
                    .get(site)
                    .map(|i| self.site_teams[*i].clone())
                    .unwrap_or_default(),
                None,
            ),
            ([], [svc]) => (
                Scope::Service,
                self.inv.teams_of_service(svc),
                Some(svc.clone()),
            ),
            _ => (Scope::City, self.inv.teams_of_service("*"), None),
        };
        let cause = checks.first().map(|t| t.def.id.clone());
        // Critical has its own key: when a warning turns critical the warning resolves and the
        // critical opens (and pages) — still one open incident per certificate.
        let key = match severity {
            Severity::Critical => format!("{owner}/critical"),
            Severity::Warning => owner.clone(),
        };
        let want = Want {
            new: NewIncident {
                key,
                title: vi,
                title_en: en,
                severity,
                scope,
                sites,
                service,
                teams,
            },
            cause,
        };
        self.replace_wants(owner, vec![want])
    }

    /// Changes whenever the set of open incidents changed (for cheap gauge refreshes).
    pub fn open_generation(&self) -> u64 {
        self.open_generation
    }

    /// Re-reads API-created maintenance windows.
    pub fn refresh_maintenance(&mut self, now: SystemTime) {
        match self.store.maintenance_windows(ms(now)) {
            Ok(w) => self.api_windows = w,
            Err(e) => tracing::error!(error = %e, "incident store"),
        }
    }

    /// Whether `def` is a check of the current inventory (a result queued before a reload may
    /// belong to a check that is gone, or that changed kind).
    pub fn is_current(&self, def: &CheckDef) -> bool {
        self.checks
            .get(&def.id)
            .is_some_and(|t| t.def.probe.kind() == def.probe.kind())
    }

    /// A link's RTT baseline (None for other checks, and until it has warmed up).
    pub fn rtt_baseline(&self, id: &CheckId) -> Option<Duration> {
        self.checks
            .get(id)
            .filter(|t| t.def.role == CheckRole::Link)
            .and_then(|t| t.health.rtt_baseline())
    }

    pub fn state_of(&self, id: &CheckId) -> State {
        self.checks
            .get(id)
            .map(|t| t.health.state())
            .unwrap_or_default()
    }

    /// Whether a maintenance window covers the site/service at `now`.
    pub fn in_maintenance(
        &self,
        site: Option<&str>,
        service: Option<&str>,
        now: SystemTime,
    ) -> bool {
        let at = ms(now);
        self.inv
            .maintenance
            .iter()
            .any(|w| w.active_at(at) && w.covers(site, service))
            || self.api_windows.iter().any(|w| {
                (w.starts_at..w.ends_at).contains(&at)
                    && match (&w.site, &w.service) {
                        (None, None) => true,
                        (Some(s), _) => site == Some(s.as_str()),
                        (None, Some(s)) => service == Some(s.as_str()),
                    }
            })
    }

    /// Every site's rolled-up status.
    pub fn site_statuses(&self, now: SystemTime) -> Vec<(String, SiteStatus)> {
        self.inv
            .sites
            .iter()
            .map(|s| (s.slug.clone(), self.site_status(s, now)))
            .collect()
    }

    /// The rolled-up status of one site.
    pub fn site_status_of(&self, slug: &str, now: SystemTime) -> SiteStatus {
        match self
            .site_index
            .get(slug)
            .and_then(|i| self.inv.sites.get(*i))
        {
            Some(site) => self.site_status(site, now),
            None => SiteStatus::Unknown,
        }
    }

    fn site_status(&self, site: &SiteInfo, now: SystemTime) -> SiteStatus {
        let mut link = None;
        let mut others = Vec::new();
        for t in self.site_checks(&site.slug) {
            // A shared service failing from the data centre too is the service's problem (its
            // own incident), not the ward's: only what fails from the ward alone counts here.
            if t.def.id.is_agent()
                && matches!(
                    self.state_of(&t.def.id.central()),
                    State::Down | State::Failing | State::Degraded
                )
            {
                continue;
            }
            match t.def.role {
                CheckRole::Link => link = Some(t.health.state()),
                role => others.push((role, t.health.state())),
            }
        }
        site_status(
            link,
            &others,
            self.in_maintenance(Some(&site.slug), None, now),
        )
    }

    /// `[incidents] runbook_base_url` of the current config.
    pub fn runbook_base(&self) -> Option<String> {
        self.inv.incidents.runbook_base_url.clone()
    }

    /// One row per open incident, for `lienthong_incident_open` (the paging series).
    pub fn open_rows(&self) -> Vec<super::open_series::OpenRow> {
        self.open
            .iter()
            .map(|(key, o)| {
                let site = (o.scope == Scope::Site)
                    .then(|| o.sites.first().cloned())
                    .flatten();
                let former_province = site
                    .as_deref()
                    .and_then(|s| self.site_index.get(s))
                    .map(|i| self.inv.sites[*i].former_province.clone());
                let service = key
                    .strip_prefix("service/")
                    .map(|rest| rest.split('/').next().unwrap_or(rest).to_string());
                super::open_series::OpenRow {
                    id: o.id,
                    title: o.title.clone(),
                    title_en: o.title_en.clone(),
                    key: key.clone(),
                    severity: o.severity,
                    scope: o.scope,
                    teams: o.teams.clone(),
                    site,
                    service,
                    former_province,
                }
            })
            .collect()
    }

    /// Open incidents by (severity, scope, team); an incident without team counts under "".
    pub fn open_counts(&self) -> OpenCounts {
        let mut out = OpenCounts::new();
        for o in self.open.values() {
            if o.teams.is_empty() {
                *out.entry((o.severity, o.scope, String::new())).or_default() += 1;
            }
            for t in &o.teams {
                *out.entry((o.severity, o.scope, t.clone())).or_default() += 1;
            }
        }
        out
    }

    fn site_checks<'a>(&'a self, slug: &str) -> impl Iterator<Item = &'a Tracked> + 'a {
        self.by_owner
            .get(&format!("site/{slug}"))
            .into_iter()
            .flatten()
            // An agent's own checks (its gateway, devices) are recorded, not correlated.
            .filter(|id| !id.agent_local)
            .filter_map(|id| self.checks.get(id).map(|t| &**t))
    }

    /// A check's state after the multi-vantage quorum: failing or down here while most of
    /// the vantage points that report it (this one included) see it up → up.
    fn voted_state(&self, t: &Tracked) -> State {
        let s = t.health.state();
        if matches!(s, State::Failing | State::Down)
            && self
                .remote
                .get(&t.def.id)
                .is_some_and(|v| !v.down_with_own())
        {
            return State::Up;
        }
        s
    }

    /// The other vantage points' votes, by check key (from the shared store). Recomputes the
    /// owners of the checks whose verdict changed.
    pub fn set_remote_votes(
        &mut self,
        votes: &HashMap<String, super::vantage::Votes>,
        now: SystemTime,
    ) {
        let mut next = HashMap::new();
        let mut changed: Vec<CheckId> = Vec::new();
        for (id, t) in &self.checks {
            let v = votes.get(&id.key()).copied();
            let bad = matches!(t.health.state(), State::Failing | State::Down);
            let before = self.remote.get(id).is_none_or(|v| v.down_with_own());
            let after = v.is_none_or(|v| v.down_with_own());
            if bad && before != after {
                changed.push(id.clone());
            }
            if let Some(v) = v {
                next.insert(id.clone(), v);
            }
        }
        self.remote = next;
        if changed.is_empty() {
            return;
        }
        let mut keys = Vec::new();
        for id in &changed {
            let quorum_down = self.remote.get(id).is_none_or(|v| v.down_with_own());
            tracing::info!(check = %id, quorum_down, "seen down here; the multi-vantage verdict changed");
            match (&id.site, &id.service) {
                (Some(site), _) => keys.extend(self.recompute_site(site, now)),
                (None, Some(svc)) => keys.extend(self.recompute_service(svc)),
                _ => {}
            }
        }
        if let Err(e) = self.reconcile_keys(keys, now) {
            tracing::error!(error = %e, "incident store");
        }
    }

    fn link_of<'a>(&'a self, slug: &str) -> Option<&'a Tracked> {
        self.site_checks(slug)
            .find(|t| t.def.role == CheckRole::Link)
    }

    fn on_transition(
        &mut self,
        id: &CheckId,
        t: &Transition,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        // The timeline of every open incident this check belongs to gets the change.
        let keys = self.open_keys_of(id);
        for key in keys {
            let attached = matches!(self.open.get(&key), Some(o) if o.scope == Scope::Site)
                && key.ends_with("/link")
                && !key.ends_with(&format!("/{}", id.name));
            let kind = if attached {
                EventKind::Attached
            } else {
                EventKind::StateChange
            };
            let ev = self.event(kind, id, t.to, t.evidence.clone(), now);
            self.append(&key, &ev)?;
        }
        // Only what depends on this check is recomputed: its owner's wants and the prober.
        let mut keys = match (&id.site, &id.service) {
            (Some(site), _) => self.recompute_site(site, now),
            (None, Some(svc)) => {
                let mut k = self.recompute_service(svc);
                // The wards' view of a service depends on the data centre's (city-wide wins).
                let agents: Vec<String> = self.inv.agents.iter().map(|a| a.site.clone()).collect();
                for site in agents {
                    k.extend(self.recompute_site(&site, now));
                }
                k
            }
            _ => Vec::new(),
        };
        keys.extend(self.recompute_prober());
        self.reconcile_keys(keys, now)
    }

    /// Records on the prober incident's timeline (once) that a shared service's failure is
    /// attached to it rather than paged.
    fn fold_into_prober(
        &mut self,
        key: &str,
        want: &Want,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if !self.folded.insert(key.to_string()) {
            return Ok(());
        }
        let Some(cause) = want.cause.clone() else {
            return Ok(());
        };
        let ev = self
            .checks
            .get(&cause)
            .and_then(|t| t.evidence.as_deref().cloned())
            .unwrap_or_else(empty_evidence);
        let mut e = self.event(EventKind::Attached, &cause, self.state_of(&cause), ev, now);
        e.message = format!(
            "{} — gắn vào sự cố bộ dò, không cảnh báo riêng / attached to the prober incident, not paged",
            want.new.title
        );
        self.append("prober", &e)
    }

    /// Keys of the open incidents whose timeline a check's changes belong on.
    fn open_keys_of(&self, id: &CheckId) -> Vec<String> {
        let mut out: Vec<String> = match (&id.site, &id.service) {
            (Some(site), _) => {
                let prefix = format!("site/{site}/");
                self.open
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone())
                    .collect()
            }
            (None, Some(svc)) => [format!("service/{svc}"), format!("service/{svc}/slow")]
                .into_iter()
                .filter(|k| self.open.contains_key(k))
                .collect(),
            _ => Vec::new(),
        };
        if self.open.contains_key("prober") && self.is_reference(id) {
            out.push("prober".into());
        }
        out
    }

    fn is_reference(&self, id: &CheckId) -> bool {
        self.inv
            .incidents
            .reference_checks
            .iter()
            .any(|r| *r == id.key())
    }

    /// Opens what is wanted and resolves what has recovered, among `keys` (the keys whose want
    /// or health may have changed; duplicates are fine).
    fn reconcile_keys(&mut self, mut keys: Vec<String>, now: SystemTime) -> Result<(), StoreError> {
        keys.sort();
        keys.dedup();
        let prober_open = self.wants.contains_key("prober") || self.open.contains_key("prober");
        let held_since = self.mass_failure(now);
        for key in keys {
            let Some(want) = self.wants.get(&key) else {
                self.pending.remove(&key);
                if self.open.contains_key(&key) && self.recovered(&key) {
                    self.resolve(&key, now)?;
                }
                continue;
            };
            if self.open.contains_key(&key) {
                self.pending.remove(&key);
                if key == "prober" {
                    self.update_prober_sites(now)?;
                }
                continue;
            }
            let scope = want.new.scope;
            let (site, service) = (
                want.new.sites.first().map(String::as_str),
                want.new.service.as_deref(),
            );
            let blocked = (scope == Scope::Site && self.in_maintenance(site, None, now))
                || (scope == Scope::Service && self.in_maintenance(None, service, now))
                || (scope == Scope::Site
                    && (prober_open || self.held(want, held_since) || self.in_prober_grace(now)))
                // While the prober is isolated (or many links are failing at once) nothing it
                // sees is evidence about the shared services: they fold under the isolation.
                || (scope == Scope::Service && (prober_open || held_since.is_some()));
            if blocked {
                if scope == Scope::Service && self.open.contains_key("prober") {
                    let want = want.clone();
                    self.fold_into_prober(&key, &want, now)?;
                }
                self.pending.insert(key);
                continue;
            }
            let want = want.clone();
            self.pending.remove(&key);
            self.open_incident(&key, &want, now)?;
        }
        Ok(())
    }

    /// Whether a child check's failure (since `since`) is its own and not its link's: the link
    /// has been seen healthy by a run that started after the failure began, and either the link was not failing at any
    /// time since then (a child still down after a link outage is usually just slower to
    /// recover) or the link has been healthy for [`CHILD_AFTER_LINK`] already.
    fn link_verified_since(&self, site: &str, since: Option<SystemTime>, now: SystemTime) -> bool {
        let Some(link) = self.link_of(site) else {
            return true;
        };
        let (Some(run), Some(since)) = (link.last_run, since) else {
            return false;
        };
        let healthy = matches!(link.health.state(), State::Up | State::Degraded) && run >= since;
        let after_link =
            |bad: SystemTime| now.duration_since(bad).is_ok_and(|d| d >= CHILD_AFTER_LINK);
        let bad = link.last_bad.max(link.resumed_bad);
        let link_clean = match bad {
            None => true,
            Some(bad) => {
                // The child's failure began after the link's last bad run (and, after a
                // restart mid-outage, clearly after the outage): its own failure.
                let ordered = bad < since
                    && link.resumed_bad.is_none_or(|r| {
                        since.duration_since(r).is_ok_and(|d| d >= CHILD_AFTER_LINK)
                    });
                ordered || after_link(bad)
            }
        };
        healthy && link_clean
    }

    /// When several links started failing within [`MASS_WINDOW`], the earliest such start.
    /// Counted from the failing-links map (usually empty), not by walking every site.
    fn mass_failure(&self, now: SystemTime) -> Option<SystemTime> {
        let recent: Vec<SystemTime> = self
            .links_bad
            .values()
            .copied()
            .filter(|since| {
                now.duration_since(*since)
                    .map(|d| d < MASS_WINDOW)
                    .unwrap_or(true)
            })
            .collect();
        (recent.len() >= MASS_MIN)
            .then(|| recent.into_iter().min())
            .flatten()
    }

    fn in_prober_grace(&self, now: SystemTime) -> bool {
        self.prober_released.is_some_and(|released| {
            now.duration_since(released)
                .map(|d| d < PROBER_GRACE)
                .unwrap_or(true)
        })
    }

    /// A site incident waits while a mass failure that began before its cause is under way.
    fn held(&self, want: &Want, mass_since: Option<SystemTime>) -> bool {
        let Some(mass) = mass_since else { return false };
        let Some(site) = want.new.sites.first() else {
            return false;
        };
        self.link_of(site)
            .and_then(|t| t.health.since())
            .map(|since| since >= mass || want.new.key.ends_with("/link"))
            .unwrap_or(false)
    }

    /// Whether the cause of open incident `key` is positively healthy again. A Down incident
    /// ends when its check is Up or Degraded; a degraded/slow one when its check is Up, or Down
    /// (then the Down incident takes over). Unknown and Failing never resolve anything.
    fn recovered(&self, key: &str) -> bool {
        // After the multi-vantage quorum: over once most vantage points see it up.
        let ended = |id: &CheckId, quality: bool| match self
            .checks
            .get(id)
            .map(|t| self.voted_state(t))
            .unwrap_or_default()
        {
            State::Up => true,
            State::Degraded => !quality,
            State::Down => quality,
            State::Unknown | State::Failing => false,
        };
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            // A person's report ends when a person says so (or an automatic incident takes it).
            ["site", _, "reported"] => false,
            // The site's slowness: over when none of its non-link checks is slow any more.
            ["site", site, "slow"] => self
                .site_checks(site)
                .filter(|t| t.def.role != CheckRole::Link && !t.def.id.is_agent())
                .all(|t| ended(&t.def.id, true)),
            // "Agent offline": not wanted any more (heard from again, or the link took over).
            ["site", _, "agent-offline"] => true,
            // A ward cannot reach a service: over when every agent-run check of it is healthy.
            ["site", site, check] if check.ends_with("@agent") => {
                let svc = check.trim_end_matches("@agent");
                self.site_checks(site)
                    .filter(|t| t.def.id.is_agent() && t.def.id.service.as_deref() == Some(svc))
                    .all(|t| ended(&t.def.id, false))
            }
            ["site", site, check] => {
                let (name, quality) = match check
                    .strip_suffix("-slow")
                    .or_else(|| check.strip_suffix("-degraded"))
                {
                    Some(n) => (n, true),
                    None => (*check, false),
                };
                let id = CheckId::site(site, name);
                // A check removed from the config cannot recover: close its incident.
                !self.checks.contains_key(&id) || ended(&id, quality)
            }
            ["service", svc, rest @ ..] => {
                let quality = !rest.is_empty();
                self.by_owner
                    .get(&format!("service/{svc}"))
                    .map(|ids| ids.iter().all(|id| ended(id, quality)))
                    .unwrap_or(true)
            }
            // "prober": not wanted any more; wanted() already applied the hysteresis.
            _ => true,
        }
    }

    /// Replaces the wants of `owner` with `new`; returns every key that changed hands (old ∪
    /// new), which the caller reconciles.
    fn replace_wants(&mut self, owner: String, new: Vec<Want>) -> Vec<String> {
        let mut keys = self.wants_by_owner.remove(&owner).unwrap_or_default();
        for k in &keys {
            self.wants.remove(k);
        }
        let mut mine = Vec::with_capacity(new.len());
        for w in new {
            keys.push(w.new.key.clone());
            mine.push(w.new.key.clone());
            self.wants.insert(w.new.key.clone(), w);
        }
        if !mine.is_empty() {
            self.wants_by_owner.insert(owner, mine);
        }
        keys
    }

    /// Recomputes what one site's health calls for: O(checks of the site).
    fn recompute_site(&mut self, slug: &str, now: SystemTime) -> Vec<String> {
        let (wants, timed) = self.site_wants(slug, now);
        if timed {
            self.timed_sites.insert(slug.to_string());
        } else {
            self.timed_sites.remove(slug);
        }
        self.replace_wants(format!("site/{slug}"), wants)
    }

    /// A site's wants, and whether they may change with the clock alone (a child waits for
    /// its link to be verified healthy after the child's failure began).
    fn site_wants(&self, slug: &str, now: SystemTime) -> (Vec<Want>, bool) {
        let mut out = Vec::new();
        let mut timed = false;
        let Some(idx) = self.site_index.get(slug).copied() else {
            return (out, false);
        };
        let site = &self.inv.sites[idx];
        let teams = &self.site_teams[idx];
        let link_state = self.link_of(slug).map(|t| self.voted_state(t));
        for t in self.site_checks(slug) {
            let state = self.voted_state(t);
            let d = &t.def;
            if d.id.is_agent() {
                // A shared service as seen from the ward's agent: failing there while the data
                // centre sees it working → the ward's path (one incident per ward and
                // service); failing from the data centre too → the city-wide incident only.
                if state != State::Down || link_state == Some(State::Down) {
                    continue;
                }
                let central = self.state_of(&d.id.central());
                if matches!(central, State::Down | State::Failing) {
                    continue;
                }
                if !self.link_verified_since(slug, t.health.since(), now) {
                    timed = true;
                    continue;
                }
                let svc = d.id.service.as_deref().unwrap_or("");
                let key = format!("site/{}/{svc}@agent", site.slug);
                if out.iter().any(|w: &Want| w.new.key == key) {
                    continue;
                }
                let (name, name_en) = self
                    .inv
                    .services
                    .iter()
                    .find(|s| s.slug == svc)
                    .map(|s| (s.name.clone(), s.name_en.clone().unwrap_or(s.slug.clone())))
                    .unwrap_or_else(|| (svc.to_string(), svc.to_string()));
                out.push(Want {
                    new: NewIncident {
                        key,
                        title: format!("{} không truy cập được {name}", site.name),
                        title_en: format!("{} cannot reach {name_en}", site.name),
                        severity: Severity::Critical,
                        scope: Scope::Site,
                        sites: vec![site.slug.clone()],
                        service: Some(svc.to_string()),
                        teams: teams.clone(),
                    },
                    cause: Some(d.id.clone()),
                });
                continue;
            }
            let (suffix, severity, vi, en) = match (d.role, state) {
                (CheckRole::Link, State::Down) => (
                    "",
                    Severity::Critical,
                    format!("Mất kết nối: {}", site.name),
                    format!("Link down: {}", site.name),
                ),
                (CheckRole::Link, State::Degraded) if latency_only(t) => (
                    "-degraded",
                    Severity::Warning,
                    format!("Đường truyền trễ cao: {}", site.name),
                    format!("High link latency: {}", site.name),
                ),
                (CheckRole::Link, State::Degraded) => (
                    "-degraded",
                    Severity::Warning,
                    format!("Đường truyền suy giảm: {}", site.name),
                    format!("Link degraded: {}", site.name),
                ),
                // Children of a down link are evidence on the link's incident, not incidents;
                // and a child's failure is only its own once the link has been seen healthy
                // after it began (else it is most likely the link, not yet confirmed).
                (_, _) if link_state == Some(State::Down) => continue,
                (_, State::Down) if !self.link_verified_since(slug, t.health.since(), now) => {
                    timed = true;
                    continue;
                }
                (role, State::Down) => (
                    "",
                    if role == CheckRole::Endpoint {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    format!("{} không hoạt động: {}", d.title, site.name),
                    format!(
                        "{} down: {}",
                        d.title_en.as_deref().unwrap_or(&d.id.name),
                        site.name
                    ),
                ),
                // Every slow check of a site is one cause ("the site is slow"): one incident,
                // the first slow check opens it, the others are on its timeline.
                (_, State::Degraded) => {
                    if out.iter().any(|w: &Want| w.new.key.ends_with("/slow")) {
                        continue;
                    }
                    let key = format!("site/{}/slow", site.slug);
                    out.push(Want {
                        new: NewIncident {
                            key,
                            title: format!("{} phản hồi chậm", site.name),
                            title_en: format!("{} responding slowly", site.name),
                            severity: Severity::Warning,
                            scope: Scope::Site,
                            sites: vec![site.slug.clone()],
                            service: None,
                            teams: teams.clone(),
                        },
                        cause: Some(d.id.clone()),
                    });
                    continue;
                }
                _ => continue,
            };
            let key = format!("site/{}/{}{suffix}", site.slug, d.id.name);
            out.push(Want {
                new: NewIncident {
                    key,
                    title: vi,
                    title_en: en,
                    severity,
                    scope: Scope::Site,
                    sites: vec![site.slug.clone()],
                    service: None,
                    teams: teams.clone(),
                },
                cause: Some(d.id.clone()),
            });
        }
        (out, timed)
    }

    /// Recomputes what one shared service's health calls for: O(checks of the service).
    fn recompute_service(&mut self, slug: &str) -> Vec<String> {
        let want = self.service_want(slug);
        self.replace_wants(format!("service/{slug}"), want.into_iter().collect())
    }

    fn service_want(&self, slug: &str) -> Option<Want> {
        let svc = self.inv.services.iter().find(|s| s.slug == slug)?;
        let checks: Vec<&Tracked> = self
            .by_owner
            .get(&format!("service/{}", svc.slug))
            .into_iter()
            .flatten()
            .filter(|id| !self.is_reference(id))
            .filter_map(|id| self.checks.get(id).map(|t| &**t))
            .collect();
        let down = checks.iter().find(|t| self.voted_state(t) == State::Down);
        let slow = checks.iter().find(|t| t.health.state() == State::Degraded);
        let en_name = svc.name_en.clone().unwrap_or_else(|| svc.slug.clone());
        let n_sites = self.inv.sites.len();
        let (key, severity, vi, en, cause) = if let Some(t) = down {
            (
                format!("service/{}", svc.slug),
                Severity::Critical,
                format!(
                    "Sự cố phần mềm dùng chung: {} — ảnh hưởng {} đơn vị",
                    svc.name, n_sites
                ),
                format!("Shared service down: {en_name} — affects {n_sites} sites"),
                t.def.id.clone(),
            )
        } else if let Some(t) = slow {
            (
                format!("service/{}/slow", svc.slug),
                Severity::Warning,
                format!("{} phản hồi chậm", svc.name),
                format!("{en_name} slow"),
                t.def.id.clone(),
            )
        } else {
            return None;
        };
        Some(Want {
            new: NewIncident {
                key,
                title: vi,
                title_en: en,
                severity,
                scope: Scope::Service,
                sites: self.inv.sites.iter().map(|s| s.slug.clone()).collect(),
                service: Some(svc.slug.clone()),
                teams: self.inv.teams_of_service(&svc.slug),
            },
            cause: Some(cause),
        })
    }

    /// Prober isolation, from the counters, with hysteresis: open at `share`, keep until below
    /// half of it. O(1) unless it is wanted (then the list of sites down is copied).
    fn recompute_prober(&mut self) -> Vec<String> {
        let share = self.inv.incidents.prober_share;
        // Over the sites this instance probes (a `--shard` probes only some).
        let n = self.sites_with_link.max(1) as f64;
        let down = self.links_down.len();
        let frac = down as f64 / n;
        let reference_down = self.references_down.iter().next().cloned();
        let threshold = if self.open.contains_key("prober") {
            share / 2.0
        } else {
            share
        };
        let wanted = reference_down.is_some() || (down >= MASS_MIN && frac >= threshold);
        let was = self.wants.contains_key("prober");
        if !wanted {
            return if was {
                self.replace_wants("prober".into(), Vec::new())
            } else {
                Vec::new()
            };
        }
        // Open already: its title and first list are history; the list grows on the tick.
        if was && self.open.contains_key("prober") {
            return Vec::new();
        }
        let why_vi = match &reference_down {
            Some(r) => format!("điểm tham chiếu {r} không phản hồi"),
            None => format!(
                "{} / {} đơn vị mất kết nối cùng lúc",
                down,
                self.inv.sites.len()
            ),
        };
        let title =
            format!("Bộ dò lienthong mất đường lên ({why_vi}) — tạm giữ cảnh báo từng đơn vị");
        // Unchanged want: nothing to reconcile (the tick refreshes the open incident's list).
        if let Some(w) = self.wants.get("prober") {
            if w.new.sites.len() == down && w.new.title == title {
                return Vec::new();
            }
        }
        let want = Want {
            new: NewIncident {
                key: "prober".into(),
                title,
                title_en: format!(
                    "Prober uplink lost ({down} sites unreachable at once) — per-site alerts held"
                ),
                severity: Severity::Critical,
                scope: Scope::Prober,
                sites: self.links_down.iter().cloned().collect(),
                service: None,
                teams: self.inv.teams_of_service("*"),
            },
            cause: None,
        };
        self.replace_wants("prober".into(), vec![want])
    }

    fn event(
        &self,
        kind: EventKind,
        id: &CheckId,
        state: State,
        ev: Evidence,
        now: SystemTime,
    ) -> NewEvent {
        let title = self
            .checks
            .get(id)
            .map(|t| t.def.title.clone())
            .unwrap_or_default();
        // A transaction's failure names its step: `(step="tra-cuu" reason="json_mismatch")`.
        let step = ev
            .message
            .as_deref()
            .and_then(|m| m.strip_prefix("step=\""))
            .and_then(|m| m.split_once('"'))
            .map(|(step, _)| step);
        let reason = match (ev.reason, step) {
            (Some(r), Some(step)) => format!(" (step=\"{step}\" reason=\"{r}\")"),
            (Some(r), None) => format!(" ({r})"),
            (None, _) => String::new(),
        };
        let vi_state = match state {
            State::Down => "không hoạt động",
            State::Failing => "lỗi, đang xác nhận",
            State::Degraded => "suy giảm",
            State::Up => "hoạt động bình thường",
            State::Unknown => "chưa rõ",
        };
        NewEvent {
            at: ms(now),
            kind,
            check: Some(id.key()),
            state: Some(state.as_str().into()),
            message: format!("{title} [{}]: {vi_state}{reason}", id.key()),
            evidence: Some(evidence_json(&ev)),
        }
    }

    fn targets(&self, o: &OpenIncident) -> Vec<String> {
        crate::notify::targets_for(&o.teams, o.severity, &self.inv.notify)
    }

    fn append(&mut self, key: &str, ev: &NewEvent) -> Result<(), StoreError> {
        let Some(o) = self.open.get(key).cloned() else {
            return Ok(());
        };
        let targets = self.targets(&o);
        if o.id < 0 || !self.deferred.is_empty() {
            self.defer(Deferred::Append {
                incident: o.id,
                ev: ev.clone(),
                targets,
            });
            return Ok(());
        }
        match self.store.append_event(o.id, ev, &targets) {
            Ok(id) => self.publish(o.id, id, ev),
            Err(e) if deferrable(&e) => {
                tracing::warn!(error = %e, incident = o.id, key, "incident store failing: timeline event kept for replay");
                self.defer(Deferred::Append {
                    incident: o.id,
                    ev: ev.clone(),
                    targets,
                });
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Queues a write for [`Self::replay`]. When full, a timeline event is dropped first (the
    /// oldest state change), never an open or a resolution unless those alone fill twice the cap.
    fn defer(&mut self, d: Deferred) {
        if self.deferred.len() >= DEFERRED_MAX {
            let events = self
                .deferred
                .iter()
                .position(|d| matches!(d, Deferred::Append { .. } | Deferred::SetSites { .. }));
            let dropped = match events {
                Some(i) => self.deferred.remove(i).is_some(),
                None if self.deferred.len() >= 2 * DEFERRED_MAX => {
                    self.deferred.pop_front().is_some()
                }
                None => false,
            };
            if !dropped {
                self.deferred.push_back(d);
                return;
            }
            if !self.overflow_logged {
                self.overflow_logged = true;
                tracing::error!(
                    max = DEFERRED_MAX,
                    "incident store failing for long: deferred timeline events are being dropped"
                );
            }
            self.deferred_dropped += 1;
        }
        self.deferred.push_back(d);
    }

    /// Writes still waiting for the store.
    pub fn deferred_len(&self) -> usize {
        self.deferred.len()
    }

    /// Forgets the queued writes (another instance leads: they are superseded); returns
    /// how many.
    pub fn drop_deferred(&mut self) -> usize {
        let n = self.deferred.len();
        self.deferred.clear();
        self.placeholders.clear();
        n
    }

    fn real_id(&self, id: i64) -> Option<i64> {
        if id >= 0 {
            Some(id)
        } else {
            self.placeholders.get(&id).copied()
        }
    }

    /// Replays deferred writes in order until one fails (the store still failing) or all are
    /// written. Called on the tick.
    pub fn replay(&mut self) {
        let mut written = 0usize;
        while let Some(d) = self.deferred.front().cloned() {
            let result = match &d {
                Deferred::Open {
                    placeholder,
                    new,
                    first,
                    targets,
                } => self.store.open_incident(new, first, targets).map(|(id, created)| {
                    self.placeholders.insert(*placeholder, id);
                    if let Some(o) = self.open.values_mut().find(|o| o.id == *placeholder) {
                        o.id = id;
                        self.open_generation += 1;
                    }
                    if created {
                        tracing::info!(incident = id, key = %new.key, title = %new.title, "incident opened (replayed after a store outage)");
                        if let Ok(Some(inc)) = self.store.get(id) {
                            if let Some(ev) = inc.events.first() {
                                let _ = self.events.send(ev.clone());
                            }
                        }
                    }
                }),
                Deferred::Append {
                    incident,
                    ev,
                    targets,
                } => match self.real_id(*incident) {
                    Some(id) => self
                        .store
                        .append_event(id, ev, targets)
                        .map(|eid| self.publish(id, eid, ev)),
                    None => Ok(()), // its open was dropped
                },
                Deferred::SetSites { incident, sites } => match self.real_id(*incident) {
                    Some(id) => self.store.set_sites(id, sites),
                    None => Ok(()),
                },
                Deferred::Resolve {
                    incident,
                    ev,
                    targets,
                } => match self.real_id(*incident) {
                    Some(id) => self.store.resolve(id, ev, targets).map(|changed| {
                        if changed {
                            tracing::info!(incident = id, "incident resolved (replayed after a store outage)");
                            if let Ok(Some(inc)) = self.store.get(id) {
                                if let Some(ev) = inc.events.last() {
                                    let _ = self.events.send(ev.clone());
                                }
                            }
                        }
                    }),
                    None => Ok(()),
                },
            };
            match result {
                Ok(()) => {}
                Err(e) if deferrable(&e) => {
                    if written > 0 {
                        tracing::warn!(written, left = self.deferred.len(), error = %e, "replay of deferred incident writes interrupted");
                    }
                    return;
                }
                Err(e) => {
                    // A write that can never succeed (e.g. its incident was pruned): skip it.
                    tracing::error!(error = %e, "deferred incident write dropped");
                }
            }
            self.deferred.pop_front();
            written += 1;
        }
        if written > 0 {
            tracing::info!(
                written,
                "deferred incident writes replayed: the store works again"
            );
            self.placeholders.clear();
            self.overflow_logged = false;
        }
    }

    fn publish(&self, incident_id: i64, event_id: i64, ev: &NewEvent) {
        let _ = self.events.send(IncidentEvent {
            id: event_id,
            incident_id,
            at: ev.at,
            kind: ev.kind,
            check: ev.check.clone(),
            state: ev.state.clone(),
            message: ev.message.clone(),
            evidence: ev.evidence.clone(),
        });
    }

    fn open_incident(&mut self, key: &str, want: &Want, now: SystemTime) -> Result<(), StoreError> {
        let first = match &want.cause {
            Some(id) => {
                let ev = self
                    .checks
                    .get(id)
                    .and_then(|t| t.evidence.as_deref().cloned());
                let mut e = self.event(
                    EventKind::Opened,
                    id,
                    self.state_of(id),
                    ev.unwrap_or_else(empty_evidence),
                    now,
                );
                e.message = format!("{} — {}", want.new.title, e.message);
                e
            }
            None => NewEvent {
                at: ms(now),
                kind: EventKind::Opened,
                check: None,
                state: None,
                message: want.new.title.clone(),
                evidence: Some(json!({ "sites": want.new.sites })),
            },
        };
        let o = OpenIncident {
            id: 0,
            title: want.new.title.clone(),
            title_en: want.new.title_en.clone(),
            severity: want.new.severity,
            scope: want.new.scope,
            teams: want.new.teams.clone(),
            sites: want.new.sites.clone(),
            sites_updated: Some(now),
        };
        let targets = self.targets(&o);
        let stored = if self.deferred.is_empty() {
            match self.store.open_incident(&want.new, &first, &targets) {
                Ok(r) => Some(r),
                Err(e) if deferrable(&e) => {
                    tracing::warn!(error = %e, key, "incident store failing: incident kept for replay");
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let Some((id, created)) = stored else {
            // Opened in memory under a placeholder id; written when the store works again.
            let placeholder = self.next_placeholder;
            self.next_placeholder -= 1;
            self.defer(Deferred::Open {
                placeholder,
                new: want.new.clone(),
                first,
                targets,
            });
            self.open.insert(
                key.to_string(),
                OpenIncident {
                    id: placeholder,
                    ..o
                },
            );
            self.open_generation += 1;
            self.opened.push((want.new.severity, want.new.scope));
            return Ok(());
        };
        self.open.insert(key.to_string(), OpenIncident { id, ..o });
        self.open_generation += 1;
        if created {
            tracing::info!(incident = id, key, title = %want.new.title, "incident opened");
            self.opened.push((want.new.severity, want.new.scope));
            // The store returns the event id only through the timeline; publish the open.
            if let Ok(Some(inc)) = self.store.get(id) {
                if let Some(ev) = inc.events.first() {
                    let _ = self.events.send(ev.clone());
                }
            }
            // A site's slowness collects its other slow checks.
            if key.starts_with("site/") && key.ends_with("/slow") {
                let site = want.new.sites[0].clone();
                let others: Vec<(CheckId, State, Option<Evidence>)> = self
                    .site_checks(&site)
                    .filter(|t| {
                        t.def.role != CheckRole::Link
                            && Some(&t.def.id) != want.cause.as_ref()
                            && t.health.state() == State::Degraded
                    })
                    .map(|t| {
                        (
                            t.def.id.clone(),
                            t.health.state(),
                            t.evidence.as_deref().cloned(),
                        )
                    })
                    .collect();
                for (cid, state, ev) in others {
                    let e = self.event(
                        EventKind::Attached,
                        &cid,
                        state,
                        ev.unwrap_or_else(empty_evidence),
                        now,
                    );
                    self.append(key, &e)?;
                }
            }
            // A ward report waiting on its own is taken over by the automatic incident.
            if key.starts_with("site/") && !key.ends_with("/reported") {
                if let Some(site) = want.new.sites.first().cloned() {
                    self.merge_report_into(&site, key, id, now)?;
                }
            }
            // A link incident collects the current failures of the site's other checks.
            if key.ends_with("/link") {
                let site = want.new.sites[0].clone();
                let children: Vec<(CheckId, State, Option<Evidence>)> = self
                    .site_checks(&site)
                    .filter(|t| {
                        t.def.role != CheckRole::Link
                            && matches!(
                                t.health.state(),
                                State::Down | State::Failing | State::Degraded
                            )
                    })
                    .map(|t| {
                        (
                            t.def.id.clone(),
                            t.health.state(),
                            t.evidence.as_deref().cloned(),
                        )
                    })
                    .collect();
                for (cid, state, ev) in children {
                    let e = self.event(
                        EventKind::Attached,
                        &cid,
                        state,
                        ev.unwrap_or_else(empty_evidence),
                        now,
                    );
                    self.append(key, &e)?;
                }
            }
        }
        Ok(())
    }

    /// Adds newly affected sites to the prober incident (the list only grows over its life),
    /// at most every [`SITES_UPDATE_EVERY`]: a mass outage changes it site by site, and the
    /// check is cheap in between (no list is compared until the period has passed).
    fn update_prober_sites(&mut self, now: SystemTime) -> Result<(), StoreError> {
        let key = "prober";
        let Some(o) = self.open.get(key) else {
            return Ok(());
        };
        let recent = o.sites_updated.is_some_and(|t| {
            now.duration_since(t)
                .map(|d| d < SITES_UPDATE_EVERY)
                .unwrap_or(true)
        });
        if recent {
            return Ok(());
        }
        // Both lists are sorted (links_down is a BTreeSet; the stored list is kept sorted).
        let known: std::collections::BTreeSet<&String> = o.sites.iter().collect();
        let added: Vec<String> = self
            .links_down
            .iter()
            .filter(|s| !known.contains(s))
            .cloned()
            .collect();
        let Some(o) = self.open.get_mut(key) else {
            return Ok(());
        };
        o.sites_updated = Some(now);
        if added.is_empty() {
            return Ok(());
        }
        o.sites.extend(added);
        o.sites.sort();
        let sites = o.sites.clone();
        let id = o.id;
        if id < 0 || !self.deferred.is_empty() {
            self.defer(Deferred::SetSites {
                incident: id,
                sites: sites.clone(),
            });
        } else if let Err(e) = self.store.set_sites(id, &sites) {
            if !deferrable(&e) {
                return Err(e);
            }
            self.defer(Deferred::SetSites {
                incident: id,
                sites: sites.clone(),
            });
        }
        let ev = NewEvent {
            at: ms(now),
            kind: EventKind::SitesChanged,
            check: None,
            state: None,
            message: format!(
                "{} đơn vị bị ảnh hưởng / {} sites affected",
                sites.len(),
                sites.len()
            ),
            evidence: Some(json!({ "sites": sites })),
        };
        self.append(key, &ev)
    }

    fn resolve(&mut self, key: &str, now: SystemTime) -> Result<(), StoreError> {
        let Some(o) = self.open.remove(key) else {
            return Ok(());
        };
        self.open_generation += 1;
        if key == "prober" {
            self.prober_released = Some(now);
            self.folded.clear();
        }
        let ev = NewEvent {
            at: ms(now),
            kind: EventKind::Resolved,
            check: None,
            state: Some("up".into()),
            message: "Đã khắc phục / resolved".into(),
            evidence: None,
        };
        let targets = self.targets(&o);
        if o.id < 0 || !self.deferred.is_empty() {
            self.defer(Deferred::Resolve {
                incident: o.id,
                ev,
                targets,
            });
            return Ok(());
        }
        let resolved = match self.store.resolve(o.id, &ev, &targets) {
            Ok(r) => r,
            Err(e) if deferrable(&e) => {
                tracing::warn!(error = %e, incident = o.id, key, "incident store failing: resolution kept for replay");
                self.defer(Deferred::Resolve {
                    incident: o.id,
                    ev,
                    targets,
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if resolved {
            tracing::info!(incident = o.id, key, "incident resolved");
            if let Ok(Some(inc)) = self.store.get(o.id) {
                if let Some(ev) = inc.events.last() {
                    let _ = self.events.send(ev.clone());
                }
            }
        }
        Ok(())
    }
}

/// A problem reported by a person at a site (`POST /api/v1/reports`).
#[derive(Debug, Clone, PartialEq)]
pub struct WardReport {
    pub site: String,
    /// What is wrong, in the reporter's words.
    pub what: String,
    /// How to reach the reporter (name, phone).
    pub contact: String,
    /// Which token made the report (`site <slug>` / `team <name>`): never the token.
    pub via: String,
}

/// Where a ward report went.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReportOutcome {
    pub incident_id: i64,
    pub key: String,
    /// Attached to an open automatic incident of the site (no second page).
    pub attached: bool,
    /// A new `reported` incident was opened.
    pub created: bool,
}

/// Why a reported incident could not be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReport {
    Closed,
    NotReported,
    NotOpen,
}

impl IncidentEngine {
    /// A ward report: attached to the site's open automatic incident when there is one (its
    /// link incident first, then the most severe), else to the site's open `reported`
    /// incident, else a new incident `site/<slug>/reported` (warning). `None`: unknown site.
    pub fn report(
        &mut self,
        r: &WardReport,
        now: SystemTime,
    ) -> Result<Option<ReportOutcome>, StoreError> {
        let Some(idx) = self.site_index.get(&r.site).copied() else {
            return Ok(None);
        };
        let site = self.inv.sites[idx].clone();
        let prefix = format!("site/{}/", site.slug);
        let reported = format!("site/{}/reported", site.slug);
        let automatic = self
            .open
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| **k != reported)
            .min_by_key(|(k, o)| (!k.ends_with("/link"), o.severity, o.id))
            .map(|(k, _)| k.clone());
        let ev = NewEvent {
            at: ms(now),
            kind: EventKind::Attached,
            check: None,
            state: Some("reported".into()),
            message: format!("Đơn vị báo sự cố / reported by the site: {}", r.what),
            evidence: Some(json!({
                "report": { "what": r.what, "contact": r.contact, "via": r.via }
            })),
        };
        let (key, attached, created) = match automatic {
            Some(key) => (key, true, false),
            None if self.open.contains_key(&reported) => (reported, false, false),
            None => {
                let want = Want {
                    new: NewIncident {
                        key: reported.clone(),
                        title: format!("Đơn vị báo sự cố: {}", site.name),
                        title_en: format!("Problem reported by {}", site.name),
                        severity: Severity::Warning,
                        scope: Scope::Site,
                        sites: vec![site.slug.clone()],
                        service: None,
                        teams: self.site_teams[idx].clone(),
                    },
                    cause: None,
                };
                self.open_incident(&reported, &want, now)?;
                (reported, false, true)
            }
        };
        self.append(&key, &ev)?;
        let incident_id = self.open.get(&key).map_or(0, |o| o.id);
        tracing::info!(incident = incident_id, key, attached, via = %r.via, "ward report");
        Ok(Some(ReportOutcome {
            incident_id,
            key,
            attached,
            created,
        }))
    }

    /// Closes an open `reported` incident (the site or its team says it is fixed).
    pub fn close_report(
        &mut self,
        id: i64,
        by: &str,
        now: SystemTime,
    ) -> Result<CloseReport, StoreError> {
        let Some(key) = self
            .open
            .iter()
            .find(|(_, o)| o.id == id)
            .map(|(k, _)| k.clone())
        else {
            return Ok(CloseReport::NotOpen);
        };
        if super::open_series::kind_of(&key) != "reported" {
            return Ok(CloseReport::NotReported);
        }
        self.close_reported(
            &key,
            format!("Đã khắc phục theo báo cáo của {by} / closed by {by}"),
            now,
        )?;
        Ok(CloseReport::Closed)
    }

    /// The site's open `reported` incident, if any, ends in favour of the automatic incident
    /// `into` (#`into_id`), whose timeline gets the report's reference.
    fn merge_report_into(
        &mut self,
        site: &str,
        into: &str,
        into_id: i64,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let reported = format!("site/{site}/reported");
        let Some(r) = self.open.get(&reported).cloned() else {
            return Ok(());
        };
        let ev = NewEvent {
            at: ms(now),
            kind: EventKind::Attached,
            check: None,
            state: Some("reported".into()),
            message: format!(
                "Đơn vị đã báo sự cố trước đó (#{}) / the site had reported a problem (#{})",
                r.id, r.id
            ),
            evidence: Some(json!({ "reported_incident": r.id })),
        };
        self.append(into, &ev)?;
        self.close_reported(
            &reported,
            format!("Gộp vào sự cố tự động #{into_id} / merged into incident #{into_id}"),
            now,
        )
    }

    fn close_reported(
        &mut self,
        key: &str,
        message: String,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let Some(o) = self.open.remove(key) else {
            return Ok(());
        };
        self.open_generation += 1;
        let ev = NewEvent {
            at: ms(now),
            kind: EventKind::Resolved,
            check: None,
            state: None,
            message,
            evidence: None,
        };
        if self.store.resolve(o.id, &ev, &self.targets(&o))? {
            tracing::info!(incident = o.id, key, "reported incident closed");
            if let Ok(Some(inc)) = self.store.get(o.id) {
                if let Some(ev) = inc.events.last() {
                    let _ = self.events.send(ev.clone());
                }
            }
        }
        Ok(())
    }
}

/// A degraded link whose evidence is latency only (RTT over the class limit or over its own
/// baseline), no loss or jitter: titled as such, it tells the team to look at the path.
fn latency_only(t: &Tracked) -> bool {
    use crate::health::Breach;
    t.evidence.as_ref().is_some_and(|e| {
        !e.breaches.is_empty()
            && e.breaches
                .iter()
                .all(|b| matches!(b, Breach::Rtt | Breach::RttRise))
    })
}

/// Whether a failed write is the store failing (kept for replay) rather than a write that can
/// never succeed.
fn deferrable(e: &StoreError) -> bool {
    !matches!(e, StoreError::NoSuchIncident(_))
}

fn empty_evidence() -> Evidence {
    Evidence {
        reason: None,
        message: None,
        status: None,
        duration: Duration::ZERO,
        rtt_avg: None,
        rtt_median: None,
        rtt_baseline: None,
        jitter: None,
        loss: None,
        loss_recent: None,
        breaches: Vec::new(),
        consecutive_failures: 0,
        failures_in_window: 0,
    }
}

/// Evidence as JSON with durations in seconds.
fn evidence_json(e: &Evidence) -> serde_json::Value {
    json!({
        "reason": e.reason.map(|r| r.as_str()),
        "message": e.message,
        "status_code": e.status,
        "duration_seconds": e.duration.as_secs_f64(),
        "rtt_seconds": e.rtt_avg.map(|d| d.as_secs_f64()),
        "rtt_median_seconds": e.rtt_median.map(|d| d.as_secs_f64()),
        "rtt_baseline_seconds": e.rtt_baseline.map(|d| d.as_secs_f64()),
        "jitter_seconds": e.jitter.map(|d| d.as_secs_f64()),
        "loss_ratio": e.loss,
        "loss_ratio_recent": e.loss_recent,
        "breaches": e.breaches,
        "consecutive_failures": e.consecutive_failures,
    })
}

#[cfg(test)]
mod policy_cache_tests {
    use super::*;
    use crate::health::Thresholds;

    fn policy(fail_after: u32) -> HealthPolicy {
        HealthPolicy {
            fail_after,
            window: 6,
            fail_in_window: 3,
            recover_after: 3,
            confirm_interval: Duration::from_secs(2),
            degraded_after: 2,
            loss_evidence: 5.0,
            degraded: Thresholds {
                loss: 0.1,
                rtt: Duration::from_millis(100),
                jitter: Duration::from_millis(30),
                latency: Duration::from_secs(1),
            },
        }
    }

    #[test]
    fn equal_policies_share_one_allocation() {
        let mut cache = PolicyCache::default();
        let a = cache.share(policy(2));
        let b = cache.share(policy(3));
        let a2 = cache.share(policy(2));
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(*b, policy(3));
    }

    #[test]
    fn cache_is_bounded_and_still_correct_past_it() {
        let mut cache = PolicyCache::default();
        let first = cache.share(policy(0));
        for n in 1..=PolicyCache::KEEP as u32 {
            cache.share(policy(n));
        }
        assert_eq!(cache.0.len(), PolicyCache::KEEP);
        // The oldest was dropped: an equal policy gets a new (equal) allocation.
        let again = cache.share(policy(0));
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(*again, policy(0));
    }
}

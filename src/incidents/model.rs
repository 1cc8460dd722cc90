//! Incident data as stored and served: plain data, no IO.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC). Stored as INTEGER, served as RFC 3339 by the API.
pub type UnixMillis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
}

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One site (its link, endpoint, video point).
    Site,
    /// One shared service, affecting every site that uses it.
    Service,
    /// Many sites at once without a known common cause.
    City,
    /// The prober's own uplink / reference targets: per-site incidents are held.
    Prober,
}

/// Derived from the timestamps: resolved > acknowledged > open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Acknowledged,
    Resolved,
}

/// A new incident, as the engine asks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewIncident {
    /// Stable key of the cause, e.g. `site/phuong-ben-thanh/link`, `service/lgsp`, `prober`.
    /// At most one unresolved incident exists per key.
    pub key: String,
    /// Vietnamese title, e.g. "Mất kết nối: Phường Bến Thành".
    pub title: String,
    pub title_en: String,
    pub severity: Severity,
    pub scope: Scope,
    /// Slugs of the affected sites.
    pub sites: Vec<String>,
    /// Slug of the shared service, for `Scope::Service`.
    pub service: Option<String>,
    /// Specialist teams responsible (from `[[team]]` in the config).
    pub teams: Vec<String>,
}

/// A stored incident with its timeline and notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub title_en: String,
    pub severity: Severity,
    pub scope: Scope,
    pub state: IncidentState,
    pub sites: Vec<String>,
    pub service: Option<String>,
    pub teams: Vec<String>,
    pub started_at: UnixMillis,
    pub acknowledged_at: Option<UnixMillis>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<UnixMillis>,
    /// When the current acknowledgement lapses (escalation then resumes), if it was given
    /// with `expires_in`.
    #[serde(default)]
    pub ack_expires_at: Option<UnixMillis>,
    /// The person the incident is assigned to (free text), if any.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// Timeline, oldest first (empty in list views).
    pub events: Vec<IncidentEvent>,
    /// Technicians' notes, oldest first (empty in list views).
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Opened,
    /// A state change of a check that belongs to this incident (the cause or a child symptom).
    StateChange,
    /// A child check's failure attached to its parent's incident.
    Attached,
    /// The set of affected sites changed.
    SitesChanged,
    Acknowledged,
    Note,
    Resolved,
    /// The process restarted while the incident was open.
    Resumed,
    /// The acknowledgement was withdrawn (by a person) or lapsed (`expires_in`).
    Unacknowledged,
    /// Assigned to a person, or unassigned.
    Assigned,
    /// An escalation step of a team fired (its targets are notified).
    Escalated,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub id: i64,
    pub incident_id: i64,
    pub at: UnixMillis,
    pub kind: EventKind,
    /// Check key (`site/<slug>/<check>`), when the event is about a check.
    pub check: Option<String>,
    /// Health state the check moved to (`down`, `degraded`, `up` …).
    pub state: Option<String>,
    /// Human-readable line (Vietnamese first).
    pub message: String,
    /// Measured evidence: reason, status code, rtt, loss, jitter, duration …
    pub evidence: Option<serde_json::Value>,
}

/// What the engine appends to a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub at: UnixMillis,
    pub kind: EventKind,
    pub check: Option<String>,
    pub state: Option<String>,
    pub message: String,
    pub evidence: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: i64,
    pub at: UnixMillis,
    pub author: String,
    pub text: String,
}

/// Filters of `GET /api/v1/incidents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentFilter {
    pub state: Option<IncidentState>,
    pub site: Option<String>,
    pub team: Option<String>,
    pub severity: Option<Severity>,
    /// Incidents started at or after this time.
    pub since: Option<UnixMillis>,
}

/// A notification waiting in the durable outbox: one row per (timeline event, target). The
/// payload is rendered at delivery time from the stored incident and event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: i64,
    /// Name of the `[[notify]]` target in the config.
    pub target: String,
    pub incident_id: i64,
    pub event_id: i64,
    /// `"{event_id}:{target}"`: receivers use it to drop duplicates of an at-least-once send.
    pub idempotency_key: String,
    pub attempts: u32,
    pub next_attempt_at: UnixMillis,
    pub last_error: Option<String>,
}

/// A maintenance window created through the API (config windows live in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub id: i64,
    /// Site slug, or None with `service` set, or both None for the whole city.
    pub site: Option<String>,
    pub service: Option<String>,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub reason: String,
    pub created_by: String,
}

//! SQLite persistence of incidents, timelines, notes, the notification outbox and API-created
//! maintenance windows. One file, WAL, schema versioned with `PRAGMA user_version`.

use std::path::Path;

use super::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    pub items: Vec<Incident>,
    /// Pass as `cursor` to get the next page; None on the last page.
    pub next_cursor: Option<i64>,
}

pub struct Store {
    // implementation detail of the store helper
}

impl Store {
    pub fn open(_path: &Path) -> Result<Store, StoreError> {
        unimplemented!()
    }
    /// Opens an incident unless an unresolved one with the same key exists. Returns
    /// `(incident id, created)`. When created, writes `first` (an `Opened` event) and one outbox
    /// row per `notify` target in the same transaction.
    pub fn open_incident(
        &self,
        _new: &NewIncident,
        _first: &NewEvent,
        _notify: &[String],
    ) -> Result<(i64, bool), StoreError> {
        unimplemented!()
    }
    /// Appends a timeline event (and outbox rows) to an incident. Returns the event id.
    pub fn append_event(&self, _incident_id: i64, _ev: &NewEvent, _notify: &[String]) -> Result<i64, StoreError> {
        unimplemented!()
    }
    /// Replaces the affected sites of an incident.
    pub fn set_sites(&self, _incident_id: i64, _sites: &[String]) -> Result<(), StoreError> {
        unimplemented!()
    }
    /// Resolves an unresolved incident at `ev.at`, appending `ev` (a `Resolved` event) and outbox
    /// rows. Returns false when it was already resolved or does not exist.
    pub fn resolve(&self, _incident_id: i64, _ev: &NewEvent, _notify: &[String]) -> Result<bool, StoreError> {
        unimplemented!()
    }
    /// Acknowledges an incident (idempotent). None when there is no such incident.
    pub fn acknowledge(&self, _id: i64, _at: UnixMillis, _by: &str) -> Result<Option<(Incident, IncidentEvent)>, StoreError> {
        unimplemented!()
    }
    /// Adds a technician's note (also a `Note` timeline event). None when there is no such incident.
    pub fn add_note(&self, _id: i64, _at: UnixMillis, _author: &str, _text: &str) -> Result<Option<(Note, IncidentEvent)>, StoreError> {
        unimplemented!()
    }
    /// One incident with its events and notes.
    pub fn get(&self, _id: i64) -> Result<Option<Incident>, StoreError> {
        unimplemented!()
    }
    /// Every unresolved incident (without events), for the engine at start-up and for metrics.
    pub fn unresolved(&self) -> Result<Vec<Incident>, StoreError> {
        unimplemented!()
    }
    /// Filtered listing, newest first, `limit` ≤ 500; `cursor` = the `next_cursor` of the
    /// previous page.
    pub fn list(&self, _f: &IncidentFilter, _cursor: Option<i64>, _limit: u32) -> Result<Page, StoreError> {
        unimplemented!()
    }
    /// Timeline events with id > `after`, oldest first (SSE catch-up via Last-Event-ID).
    pub fn events_after(&self, _after: i64, _limit: u32) -> Result<Vec<IncidentEvent>, StoreError> {
        unimplemented!()
    }
    /// The newest `limit` timeline events, newest first (Atom feed).
    pub fn recent_events(&self, _limit: u32) -> Result<Vec<IncidentEvent>, StoreError> {
        unimplemented!()
    }
    /// Outbox rows due at `now`, oldest first.
    pub fn due_outbox(&self, _now: UnixMillis, _limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        unimplemented!()
    }
    pub fn outbox_delivered(&self, _id: i64, _at: UnixMillis) -> Result<(), StoreError> {
        unimplemented!()
    }
    pub fn outbox_failed(&self, _id: i64, _next_attempt_at: UnixMillis, _error: &str) -> Result<(), StoreError> {
        unimplemented!()
    }
    /// Rows not yet delivered.
    pub fn outbox_pending(&self) -> Result<u64, StoreError> {
        unimplemented!()
    }
    pub fn add_maintenance(&self, _w: &MaintenanceWindow) -> Result<i64, StoreError> {
        unimplemented!()
    }
    /// Windows that have not ended at `now`.
    pub fn maintenance_windows(&self, _now: UnixMillis) -> Result<Vec<MaintenanceWindow>, StoreError> {
        unimplemented!()
    }
    /// Deletes incidents resolved before `before` (with their events, notes and delivered
    /// outbox rows). Returns how many incidents were removed.
    pub fn prune_resolved(&self, _before: UnixMillis) -> Result<u64, StoreError> {
        unimplemented!()
    }
}

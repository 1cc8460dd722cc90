//! SQLite persistence of incidents, timelines, notes, the notification outbox and API-created
//! maintenance windows. One file, WAL, schema versioned with `PRAGMA user_version`.
//!
//! # Durability
//!
//! The file runs in WAL mode with `synchronous=NORMAL`. A transaction is committed once its
//! frames are written to the WAL with `write(2)`: the data is then in the kernel's page cache, so
//! a crash of the process — including `kill -9` — loses no committed transaction, and the next
//! open replays the WAL. Only a power loss or kernel crash may lose the last transactions
//! committed since the previous checkpoint's `fsync`; the file stays consistent either way
//! (never corrupt, never half a transaction). `FULL` would `fsync` on every commit for nothing
//! the engine needs: after a power loss it re-probes and re-derives the state anyway.
//!
//! # Concurrency
//!
//! [`Store`] is `Send + Sync` and meant to be shared as `Arc<Store>`. Writes go through one
//! connection behind a mutex, each in one `BEGIN IMMEDIATE` transaction. Reads (API, feed,
//! metrics) use a small pool of read-only connections: in WAL mode a long read never blocks a
//! write, and a write never blocks a read. Every call is blocking; call from
//! `tokio::task::spawn_blocking` in async code.
//!
//! # Invariants kept by the schema
//!
//! - At most one unresolved incident per key (partial unique index).
//! - Incident, event and outbox ids are `AUTOINCREMENT`: never reused after pruning, so an SSE
//!   `Last-Event-ID` and an outbox idempotency key (`"{event_id}:{target}"`) never point to a
//!   different event than the one they were issued for.
//! - Deleting an incident deletes its sites, teams, events, notes and outbox rows (cascade).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::db::Value as SqlValue;
use super::db::{params, Conn, DbError, OptionalExtension, PgConn, Row};
use super::location::{PgTarget, StoreLocation};
use serde::de::DeserializeOwned;
use serde::Serialize;

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
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// PostgreSQL unreachable or refusing us at open (the URL carries no password).
    #[error("database {url}: {source}")]
    OpenPg {
        url: String,
        #[source]
        source: DbError,
    },
    #[error("database schema version {found} is newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
    /// `append_event` / `set_sites` on an id that does not exist.
    #[error("no incident with id {0}")]
    NoSuchIncident(i64),
    /// Another process holds the database's lock file.
    #[error(
        "database {path} is in use by lienthong PID {pid} (lock file {lock}); \
         stop that instance or set another [incidents] database"
    )]
    Locked {
        path: String,
        lock: String,
        pid: String,
    },
    #[error("lock file {path}: {source}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    pub items: Vec<Incident>,
    /// Pass as `cursor` to get the next page; None on the last page.
    pub next_cursor: Option<i64>,
}

/// Largest page `list` returns.
pub const MAX_PAGE: u32 = 500;

/// `outbox.last_error` is cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 500;

use super::schema::MIGRATIONS;
pub use super::schema::SCHEMA_VERSION;

/// Read connections in the pool.
const READERS: usize = 2;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// `list` with `since`: when at most this many incidents started since then, the listing is
/// driven by the `started_at` index (then sorted); otherwise by id, newest first.
const SINCE_SELECTIVE: i64 = 1000;
/// Incidents deleted per transaction by `prune_resolved`, so the writer is never held long.
const PRUNE_BATCH: i64 = 1000;

/// Columns of an incident row, sites and teams as JSON arrays in their stored order.
pub(super) const INCIDENT_COLS: &str =
    "i.id, i.key, i.title, i.title_en, i.severity, i.scope, i.service, \
     i.started_at, i.acknowledged_at, i.acknowledged_by, i.resolved_at, \
     (SELECT json_group_array(site ORDER BY pos) FROM incident_sites WHERE incident_id = i.id), \
     (SELECT json_group_array(team ORDER BY pos) FROM incident_teams WHERE incident_id = i.id), \
     i.ack_expires_at, i.assigned_to";

const EVENT_COLS: &str = "id, incident_id, at, kind, check_key, state, message, evidence";

const OUTBOX_COLS: &str =
    "id, target, incident_id, event_id, idempotency_key, attempts, next_attempt_at, last_error";

const MAINTENANCE_COLS: &str = "id, site, service, starts_at, ends_at, reason, created_by";

pub struct Store {
    path: PathBuf,
    // Declared before `writer` so they close first: the writer, closing last, checkpoints the
    // WAL back into the file.
    readers: Vec<Mutex<Conn>>,
    next_reader: AtomicUsize,
    writer: Mutex<Conn>,
    /// Error counts and the readiness verdict, shared with the web layer.
    health: Arc<StoreHealth>,
    /// Held for the store's life by [`Store::open_exclusive`]; closing it releases the lock.
    _lock: Option<std::fs::File>,
    /// (device, inode) of the file when it was opened, to notice a deleted/replaced file.
    file_id: Option<(u64, u64)>,
    /// This instance's name for leader election (PostgreSQL; set by `join_cluster`).
    pub(super) fence: Arc<std::sync::OnceLock<String>>,
    /// Leader until then (monotonic); None = not leading. SQLite: always leader.
    pub(super) leader_until: Mutex<Option<std::time::Instant>>,
    /// PostgreSQL: shared by several instances.
    shared: bool,
    /// PostgreSQL: the lease's own connection, so a long engine transaction on the writer
    /// never delays a renewal.
    pub(super) lease_conn: Option<Mutex<Conn>>,
    /// Lease bookkeeping across rounds (epoch held, hold-off after an outage).
    pub(super) lease_memo: Mutex<super::cluster::LeaseMemo>,
    /// PostgreSQL unreachable at start-up: migrations run before the first operation that
    /// reaches it.
    pending_migration: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database file, applies pending migrations and opens the
    /// read pool. Fails with [`StoreError::TooNew`] on a file written by a newer build.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let writer = Connection::open(path).map_err(open_err)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let found: i64 = writer
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite WAL mode unavailable");
        }
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        bound_wal(&writer).map_err(open_err)?;
        writer.set_prepared_statement_cache_capacity(64);
        let writer = Conn::Sqlite(writer);
        migrate(&writer)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
            r.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
            // `list` builds a few dozen statement shapes from its filters.
            r.set_prepared_statement_cache_capacity(128);
            // 16 MiB of page cache (default 2 MiB): a page of 500 incidents of one site touches
            // rows spread over the whole history.
            r.pragma_update(None, "cache_size", -16_384)
                .map_err(open_err)?;
            readers.push(Mutex::new(Conn::Sqlite(r)));
        }
        Ok(Store {
            path: path.to_path_buf(),
            readers,
            next_reader: AtomicUsize::new(0),
            writer: Mutex::new(writer),
            health: Arc::new(StoreHealth::new()),
            _lock: None,
            file_id: file_id(path),
            fence: Arc::default(),
            leader_until: Mutex::new(None),
            shared: false,
            lease_conn: None,
            lease_memo: Mutex::default(),
            pending_migration: Default::default(),
        })
    }

    /// Connects to PostgreSQL (one writer and [`READERS`] read connections, each reconnecting
    /// by itself after a failure) and applies pending migrations.
    pub fn open_postgres(target: &PgTarget) -> Result<Store, StoreError> {
        let config = target.config();
        let open_err = |source| StoreError::OpenPg {
            url: target.url.clone(),
            source,
        };
        let fence: Arc<std::sync::OnceLock<String>> = Arc::default();
        let connect = || PgConn::connect(&config, fence.clone()).map(|c| Conn::Pg(Box::new(c)));
        let writer = connect().map_err(open_err)?;
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| connect().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(open_err)?;
        let lease_conn = Some(Mutex::new(connect().map_err(open_err)?));
        Ok(Store {
            path: PathBuf::from(&target.url),
            readers,
            next_reader: AtomicUsize::new(0),
            writer: Mutex::new(writer),
            health: Arc::new(StoreHealth::new()),
            _lock: None,
            file_id: None,
            fence,
            leader_until: Mutex::new(None),
            shared: true,
            lease_conn,
            lease_memo: Mutex::default(),
            pending_migration: Default::default(),
        })
    }

    /// [`Store::open_postgres`], or, when PostgreSQL cannot be reached now, a store whose
    /// connections connect (and migrate) at first use: the service starts without its
    /// database (probing and /metrics run; store operations fail until it is back).
    pub fn open_postgres_or_later(target: &PgTarget) -> Result<Store, StoreError> {
        match Store::open_postgres(target) {
            // Unreachable (refused, timed out): start without it. A server that answers and
            // refuses us (password, missing database, a certificate `ca_file` does not
            // verify) stays a start-up error.
            Err(StoreError::OpenPg { source, .. })
                if match &source {
                    DbError::Timeout(_) | DbError::Connect(_) => true,
                    DbError::Postgres(e) => {
                        e.as_db_error().is_none()
                            && !e.to_string().starts_with("error performing TLS handshake")
                    }
                    _ => false,
                } =>
            {
                let config = target.config();
                let fence: Arc<std::sync::OnceLock<String>> = Arc::default();
                let lazy = || Conn::Pg(Box::new(PgConn::lazy(&config, fence.clone())));
                let store = Store {
                    path: PathBuf::from(&target.url),
                    readers: (0..READERS).map(|_| Mutex::new(lazy())).collect(),
                    next_reader: AtomicUsize::new(0),
                    writer: Mutex::new(lazy()),
                    health: Arc::new(StoreHealth::new()),
                    _lock: None,
                    file_id: None,
                    fence: fence.clone(),
                    leader_until: Mutex::new(None),
                    shared: true,
                    lease_conn: Some(Mutex::new(lazy())),
                    lease_memo: Mutex::default(),
                    pending_migration: std::sync::atomic::AtomicBool::new(true),
                };
                let e = StoreError::OpenPg {
                    url: target.url.clone(),
                    source,
                };
                tracing::error!(error = %e, "PostgreSQL unreachable at start-up: starting without it (probing and /metrics run, the store API answers 503); connecting again every few seconds");
                store.health.failed("connect", &e);
                Ok(store)
            }
            other => other,
        }
    }

    /// Opens the store at `loc` (see [`Store::open`], [`Store::open_postgres`]).
    pub fn open_location(loc: &StoreLocation) -> Result<Store, StoreError> {
        match loc {
            StoreLocation::Sqlite(p) => Store::open(p),
            StoreLocation::Postgres(t) => Store::open_postgres(t),
        }
    }

    /// True on PostgreSQL (a store shared by several instances).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The database file (on PostgreSQL: its URL, which has no password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens an incident unless an unresolved one with the same key exists. Returns
    /// `(incident id, created)`. When created, writes `first` (an `Opened` event) and one outbox
    /// row per `notify` target in the same transaction.
    ///
    /// `started_at` is `first.at`. Duplicate sites/teams are kept once.
    pub fn open_incident(
        &self,
        new: &NewIncident,
        first: &NewEvent,
        notify: &[String],
    ) -> Result<(i64, bool), StoreError> {
        self.tracked("open_incident", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let existing: Option<i64> = tx
                .prepare_cached("SELECT id FROM incidents WHERE key = ?1 AND resolved_at IS NULL")?
                .query_row([&new.key], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok((id, false));
            }
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO incidents (key, title, title_en, severity, scope, service, started_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                )?
                .query_row(
                    params![
                        new.key,
                        new.title,
                        new.title_en,
                        to_text(new.severity),
                        to_text(new.scope),
                        new.service,
                        first.at,
                    ],
                    |r| r.get(0),
                )?;
            insert_sites(&tx, id, &new.sites)?;
            insert_teams(&tx, id, &new.teams)?;
            insert_event(&tx, id, first, notify)?;
            tx.commit()?;
            Ok((id, true))
        })
    }

    /// Appends a timeline event (and outbox rows) to an incident. Returns the event id.
    pub fn append_event(
        &self,
        incident_id: i64,
        ev: &NewEvent,
        notify: &[String],
    ) -> Result<i64, StoreError> {
        self.tracked("append_event", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            if !exists(&tx, incident_id)? {
                return Err(StoreError::NoSuchIncident(incident_id));
            }
            let event_id = insert_event(&tx, incident_id, ev, notify)?;
            tx.commit()?;
            Ok(event_id)
        })
    }

    /// Replaces the affected sites of an incident.
    pub fn set_sites(&self, incident_id: i64, sites: &[String]) -> Result<(), StoreError> {
        self.tracked("set_sites", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            if !exists(&tx, incident_id)? {
                return Err(StoreError::NoSuchIncident(incident_id));
            }
            tx.prepare_cached("DELETE FROM incident_sites WHERE incident_id = ?1")?
                .execute([incident_id])?;
            insert_sites(&tx, incident_id, sites)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Resolves an unresolved incident at `ev.at`, appending `ev` (a `Resolved` event) and outbox
    /// rows. Returns false when it was already resolved or does not exist.
    pub fn resolve(
        &self,
        incident_id: i64,
        ev: &NewEvent,
        notify: &[String],
    ) -> Result<bool, StoreError> {
        self.tracked("resolve", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let changed = tx
                .prepare_cached(
                    "UPDATE incidents SET resolved_at = ?2 WHERE id = ?1 AND resolved_at IS NULL",
                )?
                .execute(params![incident_id, ev.at])?;
            if changed == 0 {
                return Ok(false);
            }
            insert_event(&tx, incident_id, ev, notify)?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Acknowledges an incident (idempotent). None when there is no such incident.
    ///
    /// The first call (or the first after an un-acknowledgement) sets `acknowledged_at`/`acknowledged_by` and appends one `Acknowledged`
    /// event; later calls change nothing and return the incident with that event.
    /// Returns the full incident (events and notes).
    pub fn acknowledge(
        &self,
        id: i64,
        at: UnixMillis,
        by: &str,
    ) -> Result<Option<(Incident, IncidentEvent)>, StoreError> {
        self.acknowledge_until(id, at, by, None)
    }

    /// [`Store::acknowledge`] with an expiry: at `expires_at` the engine withdraws the
    /// acknowledgement (if the incident is still open) and escalation resumes. A repeated
    /// acknowledgement while one holds changes nothing (its expiry included).
    pub fn acknowledge_until(
        &self,
        id: i64,
        at: UnixMillis,
        by: &str,
        expires_at: Option<UnixMillis>,
    ) -> Result<Option<(Incident, IncidentEvent)>, StoreError> {
        self.tracked("acknowledge", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let acked: Option<Option<i64>> = tx
                .prepare_cached("SELECT acknowledged_at FROM incidents WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(acked) = acked else {
                return Ok(None);
            };
            let ack_kind = to_text(EventKind::Acknowledged);
            let first_ack: Option<i64> = if acked.is_some() {
                tx.prepare_cached(
                    "SELECT id FROM events WHERE incident_id = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![id, ack_kind], |r| r.get(0))
                .optional()?
            } else {
                tx.prepare_cached(
                    "UPDATE incidents SET acknowledged_at = ?2, acknowledged_by = ?3, \
                     ack_expires_at = ?4, \
                     first_acknowledged_at = coalesce(first_acknowledged_at, ?2) WHERE id = ?1",
                )?
                .execute(params![id, at, by, expires_at])?;
                None
            };
            let event_id = match first_ack {
                Some(event_id) => event_id,
                // First acknowledgement (or one imported without its event): record it.
                None => {
                    let (vi, en) = match expires_at.filter(|_| acked.is_none()) {
                        Some(e) => (
                            format!(", hiệu lực đến {}", crate::localtime::format_local(e)),
                            format!(" until {}", crate::localtime::format_rfc3339(e)),
                        ),
                        None => (String::new(), String::new()),
                    };
                    let ev = NewEvent {
                        at: acked.unwrap_or(at),
                        kind: EventKind::Acknowledged,
                        check: None,
                        state: None,
                        message: format!("Đã tiếp nhận: {by}{vi} (acknowledged by {by}{en})"),
                        evidence: Some(serde_json::json!({
                            "by": by,
                            "expires_at": expires_at
                                .filter(|_| acked.is_none())
                                .map(crate::localtime::format_rfc3339),
                        })),
                    };
                    insert_event(&tx, id, &ev, &[])?
                }
            };
            let incident = load_incident(&tx, id)?.ok_or(StoreError::NoSuchIncident(id))?;
            let event = load_event(&tx, event_id)?;
            tx.commit()?;
            Ok(Some((incident, event)))
        })
    }

    /// Adds a technician's note (also a `Note` timeline event). None when there is no such incident.
    ///
    /// The event's message is `"{author}: {text}"`, its evidence `{"note_id", "author"}`.
    pub fn add_note(
        &self,
        id: i64,
        at: UnixMillis,
        author: &str,
        text: &str,
    ) -> Result<Option<(Note, IncidentEvent)>, StoreError> {
        self.tracked("add_note", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            if !exists(&tx, id)? {
                return Ok(None);
            }
            let note_id: i64 = tx
                .prepare_cached(
                    "INSERT INTO notes (incident_id, at, author, text) VALUES (?1, ?2, ?3, ?4) \
                     RETURNING id",
                )?
                .query_row(params![id, at, author, text], |r| r.get(0))?;
            let note = Note {
                id: note_id,
                at,
                author: author.to_string(),
                text: text.to_string(),
            };
            let ev = NewEvent {
                at,
                kind: EventKind::Note,
                check: None,
                state: None,
                message: format!("{author}: {text}"),
                evidence: Some(serde_json::json!({ "note_id": note.id, "author": author })),
            };
            let event_id = insert_event(&tx, id, &ev, &[])?;
            let event = load_event(&tx, event_id)?;
            tx.commit()?;
            Ok(Some((note, event)))
        })
    }

    /// One incident with its events and notes.
    pub fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        self.tracked("get", || {
            let conn = self.reader();
            // One read transaction: incident, events and notes from the same snapshot.
            let tx = conn.read_tx()?;
            let incident = load_incident(&tx, id)?;
            tx.commit()?;
            Ok(incident)
        })
    }

    /// Every unresolved incident (without events), for the engine at start-up and for metrics.
    /// Oldest first.
    pub fn unresolved(&self) -> Result<Vec<Incident>, StoreError> {
        self.tracked("unresolved", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {INCIDENT_COLS} FROM incidents i WHERE i.resolved_at IS NULL ORDER BY i.id"
            ))?;
            let rows = stmt.query_map(params![], incident_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Filtered listing, newest first, `limit` ≤ 500; `cursor` = the `next_cursor` of the
    /// previous page.
    ///
    /// `limit` is clamped to `1..=500`. Items carry sites and teams, not events or notes.
    pub fn list(
        &self,
        f: &IncidentFilter,
        cursor: Option<i64>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        self.tracked("list", || {
            let limit = limit.clamp(1, MAX_PAGE);
            let conn = self.reader();
            let mut since_selective = false;
            if let Some(since) = f.since {
                if !matches!(
                    f.state,
                    Some(IncidentState::Open | IncidentState::Acknowledged)
                ) {
                    match started_since(&conn, since, cursor, SINCE_SELECTIVE)? {
                        // Nothing started since then (below the cursor): the page is empty.
                        0 => {
                            return Ok(Page {
                                items: Vec::new(),
                                next_cursor: None,
                            })
                        }
                        n => since_selective = n <= SINCE_SELECTIVE,
                    }
                }
            }
            let (sql, args) = list_query(f, cursor, limit, since_selective);
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(args, incident_from_row)?;
            let mut items: Vec<Incident> = rows.collect::<Result<_, _>>()?;
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|i| i.id)
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
    }

    /// Timeline events with id > `after`, oldest first (SSE catch-up via Last-Event-ID).
    pub fn events_after(&self, after: i64, limit: u32) -> Result<Vec<IncidentEvent>, StoreError> {
        self.tracked("events_after", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], event_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The newest `limit` timeline events, newest first (Atom feed).
    pub fn recent_events(&self, limit: u32) -> Result<Vec<IncidentEvent>, StoreError> {
        self.tracked("recent_events", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLS} FROM events ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], event_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Outbox rows due at `now`, oldest first.
    pub fn due_outbox(&self, now: UnixMillis, limit: u32) -> Result<Vec<OutboxItem>, StoreError> {
        self.tracked("due_outbox", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox \
                 WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now, limit], outbox_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Marks a row delivered (the first delivery time is kept).
    pub fn outbox_delivered(&self, id: i64, at: UnixMillis) -> Result<(), StoreError> {
        self.tracked("outbox_delivered", || {
            let conn = self.writer();
            conn.prepare_cached(
                "UPDATE outbox SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
            )?
            .execute(params![id, at])?;
            Ok(())
        })
    }

    /// Records a failed attempt: `attempts + 1`, retry at `next_attempt_at`, `last_error` cut
    /// to 500 characters. No effect on a delivered row.
    pub fn outbox_failed(
        &self,
        id: i64,
        next_attempt_at: UnixMillis,
        error: &str,
    ) -> Result<(), StoreError> {
        self.tracked("outbox_failed", || {
            let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
            let conn = self.writer();
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 \
                 WHERE id = ?1 AND delivered_at IS NULL",
            )?
            .execute(params![id, next_attempt_at, error])?;
            Ok(())
        })
    }

    /// Rows not yet delivered.
    pub fn outbox_pending(&self) -> Result<u64, StoreError> {
        self.tracked("outbox_pending", || {
            let conn = self.reader();
            let n: i64 = conn
                .prepare_cached("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")?
                .query_row(params![], |r| r.get(0))?;
            Ok(n as u64)
        })
    }

    /// Stores a window (its `id` is ignored) and returns the new id.
    pub fn add_maintenance(&self, w: &MaintenanceWindow) -> Result<i64, StoreError> {
        self.tracked("add_maintenance", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let id = tx
                .prepare_cached(
                    "INSERT INTO maintenance (site, service, starts_at, ends_at, reason, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                )?
                .query_row(
                    params![
                        w.site,
                        w.service,
                        w.starts_at,
                        w.ends_at,
                        w.reason,
                        w.created_by
                    ],
                    |r| r.get(0),
                )?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Windows that have not ended at `now` (`ends_at > now`), by start time.
    pub fn maintenance_windows(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<MaintenanceWindow>, StoreError> {
        self.tracked("maintenance_windows", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MAINTENANCE_COLS} FROM maintenance WHERE ends_at > ?1 ORDER BY starts_at, id"
            ))?;
            let rows = stmt.query_map([now], window_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One API window by id, ended or not.
    pub fn maintenance_window(&self, id: i64) -> Result<Option<MaintenanceWindow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MAINTENANCE_COLS} FROM maintenance WHERE id = ?1"
        ))?;
        Ok(stmt.query_row([id], window_from_row).optional()?)
    }

    /// Deletes an API window. False when there is no such window.
    pub fn delete_maintenance(&self, id: i64) -> Result<bool, StoreError> {
        let conn = self.writer();
        let n = conn
            .prepare_cached("DELETE FROM maintenance WHERE id = ?1")?
            .execute([id])?;
        Ok(n > 0)
    }

    /// Ends an API window at `now` (a window not yet started is ended before it starts: it
    /// then covers nothing). Returns the window as stored afterwards, None when there is no
    /// such window; a window that had already ended is returned unchanged.
    pub fn end_maintenance(
        &self,
        id: i64,
        now: UnixMillis,
    ) -> Result<Option<MaintenanceWindow>, StoreError> {
        let conn = self.writer();
        let tx = conn.write_tx()?;
        tx.prepare_cached(
            "UPDATE maintenance SET ends_at = ?2, starts_at = min(starts_at, ?2) \
             WHERE id = ?1 AND ends_at > ?2",
        )?
        .execute(params![id, now])?;
        let w = tx
            .prepare_cached(&format!(
                "SELECT {MAINTENANCE_COLS} FROM maintenance WHERE id = ?1"
            ))?
            .query_row([id], window_from_row)
            .optional()?;
        tx.commit()?;
        Ok(w)
    }

    /// Deletes incidents resolved before `before` (with their events, notes and delivered
    /// outbox rows). Returns how many incidents were removed.
    ///
    /// An incident that still has undelivered outbox rows is kept until they are delivered
    /// (its notification payload is rendered from it). Works in batches of 1,000 incidents per
    /// transaction so the writer is never held for long.
    pub fn prune_resolved(&self, before: UnixMillis) -> Result<u64, StoreError> {
        self.tracked("prune_resolved", || {
            let mut total = 0u64;
            loop {
                let conn = self.writer();
                let tx = conn.write_tx()?;
                let n = tx
                    .prepare_cached(
                        "DELETE FROM incidents WHERE id IN ( \
                           SELECT i.id FROM incidents i \
                           WHERE i.resolved_at < ?1 AND NOT EXISTS ( \
                             SELECT 1 FROM outbox o \
                             WHERE o.incident_id = i.id AND o.delivered_at IS NULL) \
                           LIMIT ?2)",
                    )?
                    .execute(params![before, PRUNE_BATCH])?;
                tx.commit()?;
                total += n as u64;
                if (n as i64) < PRUNE_BATCH {
                    return Ok(total);
                }
            }
        })
    }

    /// Inserts complete incidents as given — timestamps, sites, teams, events and notes; their
    /// ids are ignored and fresh ones assigned — in one transaction, without outbox rows.
    /// Returns the new ids in order. For seeding history in benchmarks, tests and imports; the
    /// one-unresolved-per-key rule still holds (the whole batch fails otherwise).
    pub fn insert_history(&self, incidents: &[Incident]) -> Result<Vec<i64>, StoreError> {
        self.tracked("insert_history", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let mut ids = Vec::with_capacity(incidents.len());
            for inc in incidents {
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO incidents (key, title, title_en, severity, scope, service, \
                     started_at, acknowledged_at, acknowledged_by, resolved_at, \
                     first_acknowledged_at, ack_expires_at, assigned_to) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?8, ?11, ?12) RETURNING id",
                    )?
                    .query_row(
                        params![
                            inc.key,
                            inc.title,
                            inc.title_en,
                            to_text(inc.severity),
                            to_text(inc.scope),
                            inc.service,
                            inc.started_at,
                            inc.acknowledged_at,
                            inc.acknowledged_by,
                            inc.resolved_at,
                            inc.ack_expires_at,
                            inc.assigned_to,
                        ],
                        |r| r.get(0),
                    )?;
                insert_sites(&tx, id, &inc.sites)?;
                insert_teams(&tx, id, &inc.teams)?;
                for ev in &inc.events {
                    let ev = NewEvent {
                        at: ev.at,
                        kind: ev.kind,
                        check: ev.check.clone(),
                        state: ev.state.clone(),
                        message: ev.message.clone(),
                        evidence: ev.evidence.clone(),
                    };
                    insert_event(&tx, id, &ev, &[])?;
                }
                for note in &inc.notes {
                    tx.prepare_cached(
                        "INSERT INTO notes (incident_id, at, author, text) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, note.at, note.author, note.text])?;
                }
                ids.push(id);
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    pub(super) fn writer(&self) -> MutexGuard<'_, Conn> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // A panic while the lock was held unwinds through `Tx::drop`, which rolls back; make
        // sure no transaction is left open anyway.
        if let Conn::Sqlite(c) = &*conn {
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
        }
        conn
    }

    /// A free read connection, else wait for one (round robin).
    pub(super) fn reader(&self) -> MutexGuard<'_, Conn> {
        for r in &self.readers {
            match r.try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

// --- Reliability: exclusive lock, bounded WAL, file watch, error accounting ---------------

/// The WAL is checkpointed every ~1 MiB of frames and cut back to 1 MiB after a checkpoint;
/// SQLite's defaults leave a 4 MB WAL in place forever, enough to fill a small volume.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 256;
/// `PRAGMA journal_size_limit`, bytes.
pub const JOURNAL_SIZE_LIMIT: i64 = 1024 * 1024;
/// Longest a periodic checkpoint waits for readers.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);
/// How often the watchdog of [`Store::open_exclusive`] runs [`Store::watch_once`].
pub const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Writes only the leader makes on a shared store (the engine, notification delivery,
/// retention); their transactions commit only under the leader lease.
const LEADER_OPS: &[&str] = &[
    "open_incident",
    "append_event",
    "set_sites",
    "resolve",
    "expire_acks",
    "record_escalation",
    "outbox_delivered",
    "outbox_failed",
    "outbox_defer",
    "outbox_drop",
    "outbox_drop_target",
    "outbox_shift",
    "prune_resolved",
];

/// Operations that change the file: one of them succeeding means the store works again.
const WRITE_OPS: &[&str] = &[
    // A renewed lease is a committed write (a standby writes nothing else).
    "lease",
    "agent_advance",
    "open_incident",
    "append_event",
    "set_sites",
    "resolve",
    "acknowledge",
    "add_note",
    "outbox_delivered",
    "outbox_failed",
    "add_maintenance",
    "prune_resolved",
    "insert_history",
    "probe_write",
    "outbox_shift",
    "outbox_drop_target",
    "outbox_drop",
    "unacknowledge",
    "expire_acks",
    "assign",
    "record_escalation",
    "outbox_defer",
];

fn bound_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update_and_check(None, "journal_size_limit", JOURNAL_SIZE_LIMIT, |r| {
        r.get::<_, i64>(0)
    })?;
    conn.pragma_update_and_check(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES, |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `lienthong.db` → `lienthong.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes an exclusive `flock` on the lock file beside `db` and writes our PID into it. The lock
/// dies with the process (even on `kill -9`), so a stale file never blocks a restart.
fn lock_file(db: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = lock_path(db);
    let io_err = |source| StoreError::Lock {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    // flock(2) on Linux: tied to this open file, released by the kernel when it closes.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(StoreError::Locked {
                path: db.display().to_string(),
                lock: path.display().to_string(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.into()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.set_len(0).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    writeln!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(file)
}

/// Error counts and the store's readiness verdict; the web layer reads it for `/readyz`.
#[derive(Debug)]
pub struct StoreHealth {
    errors: prometheus::IntCounterVec,
    /// The last failed operation, until a write succeeds again.
    failing: Mutex<Option<String>>,
    /// Set once the path no longer names the file we write to; only a restart clears it.
    replaced: Mutex<Option<String>>,
}

impl StoreHealth {
    fn new() -> Self {
        let errors = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "lienthong_store_errors_total",
                "Failed incident-store operations by operation.",
            ),
            &["op"],
        )
        .expect("valid metric definition");
        StoreHealth {
            errors,
            failing: Mutex::new(None),
            replaced: Mutex::new(None),
        }
    }

    /// Why the store is not healthy, or None.
    pub fn problem(&self) -> Option<String> {
        let replaced = self.replaced.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = replaced.as_ref() {
            return Some(r.clone());
        }
        drop(replaced);
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Errors counted for `op` so far.
    pub fn errors(&self, op: &str) -> u64 {
        self.errors.with_label_values(&[op]).get()
    }

    /// The counter, to register on a registry.
    pub fn counter(&self) -> &prometheus::IntCounterVec {
        &self.errors
    }

    fn failed(&self, op: &str, e: &StoreError) {
        self.errors.with_label_values(&[op]).inc();
        // A missing id is the caller's mistake, not a failing store; a deposed leader's
        // refused write is the fence working.
        if matches!(
            e,
            StoreError::NoSuchIncident(_) | StoreError::Db(DbError::NotLeader)
        ) {
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if failing.is_none() {
            tracing::error!(op, error = %e, "incident store failing");
        }
        *failing = Some(format!("store operation {op} failed: {e}"));
    }

    fn wrote(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        if failing.take().is_some() {
            tracing::info!("incident store writes succeed again");
        }
    }

    fn file_gone(&self, why: String) {
        self.errors.with_label_values(&["file_check"]).inc();
        let mut replaced = self.replaced.lock().unwrap_or_else(PoisonError::into_inner);
        if replaced.is_none() {
            tracing::error!("{why}");
            *replaced = Some(why);
        }
    }
}

impl Store {
    /// [`Store::open`] for the service: takes the database's exclusive lock first (a second
    /// instance fails with [`StoreError::Locked`] naming the holder's PID), registers
    /// `lienthong_store_errors_total` on `registry` and starts a watchdog thread that runs
    /// [`Store::watch_once`] every [`WATCH_EVERY`] for as long as the store lives.
    pub fn open_exclusive(
        path: &Path,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Store>, StoreError> {
        let lock = lock_file(path)?;
        let mut store = Store::open(path)?;
        store._lock = Some(lock);
        store.serve(registry)
    }

    /// The service's store at `loc`: [`Store::open_exclusive`] for a SQLite file; on
    /// PostgreSQL (shared by design: no lock) the same metrics and watchdog.
    pub fn open_service(
        loc: &StoreLocation,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Store>, StoreError> {
        match loc {
            StoreLocation::Sqlite(p) => Store::open_exclusive(p, registry),
            StoreLocation::Postgres(t) => Store::open_postgres_or_later(t)?.serve(registry),
        }
    }

    /// Registers the error counter and starts the watchdog.
    fn serve(self, registry: &prometheus::Registry) -> Result<Arc<Store>, StoreError> {
        let store = self;
        match registry.register(Box::new(store.health.errors.clone())) {
            Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
            Err(e) => return Err(e.into()),
        }
        let store = Arc::new(store);
        let weak = Arc::downgrade(&store);
        let spawned = std::thread::Builder::new()
            .name("store-watch".into())
            .spawn(move || loop {
                std::thread::sleep(WATCH_EVERY);
                match weak.upgrade() {
                    Some(store) => store.watch_once(),
                    None => return,
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the store watchdog");
        }
        Ok(store)
    }

    /// The shared health flag and error counter.
    pub fn health(&self) -> Arc<StoreHealth> {
        self.health.clone()
    }

    /// One watchdog round: is the path still our file; does a write still succeed (a full
    /// disk or read-only filesystem shows here even when nothing else writes); truncate the WAL.
    pub fn watch_once(&self) {
        if let Err(why) = self.check_file() {
            self.health.file_gone(why);
        }
        let _ = self.probe_write();
        let _ = self.checkpoint();
    }

    /// Err when the database path was deleted or now names another file: writes would go to
    /// an unlinked file and vanish at the next start.
    pub fn check_file(&self) -> Result<(), String> {
        let Some(opened) = self.file_id else {
            return Ok(());
        };
        let path = self.path.display();
        match file_id(&self.path) {
            None => Err(format!(
                "database file {path} was deleted while running: new incidents are lost at restart; restart lienthong"
            )),
            Some(now) if now != opened => Err(format!(
                "database file {path} was replaced while running (another inode): restart lienthong"
            )),
            Some(_) => Ok(()),
        }
    }

    /// A one-page write transaction (the schema version rewritten as it is).
    pub fn probe_write(&self) -> Result<(), StoreError> {
        self.tracked("probe_write", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let v = schema_version(&tx)?;
            set_schema_version(&tx, v)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// `wal_checkpoint(TRUNCATE)`: copies the WAL into the file and cuts it to zero bytes.
    /// Returns (WAL frames, frames checkpointed); a busy reader leaves the rest for next time.
    pub fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        self.tracked("checkpoint", || {
            let conn = self.writer();
            let Conn::Sqlite(conn) = &*conn else {
                return Ok((0, 0));
            };
            // A TRUNCATE checkpoint waits for readers while holding off writers: wait briefly,
            // and leave the rest to the next round rather than stall the engine.
            conn.busy_timeout(CHECKPOINT_WAIT)?;
            let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
            conn.busy_timeout(BUSY_TIMEOUT)?;
            Ok(r?)
        })
    }

    /// Undelivered rows due at `now`, plus rows scheduled further ahead than `horizon` (no
    /// retry is ever scheduled that far: the wall clock went back since), oldest first.
    pub fn due_outbox_within(
        &self,
        now: UnixMillis,
        horizon: i64,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.tracked("due_outbox", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox WHERE delivered_at IS NULL \
                 AND (next_attempt_at <= ?1 OR next_attempt_at > ?1 + ?2) ORDER BY id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![now, horizon, limit], outbox_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Moves every undelivered row's `next_attempt_at` by `delta` ms (the wall clock stepped).
    pub fn outbox_shift(&self, delta: i64) -> Result<u64, StoreError> {
        self.tracked("outbox_shift", || {
            let conn = self.writer();
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET next_attempt_at = next_attempt_at + ?1 \
                     WHERE delivered_at IS NULL",
                )?
                .execute([delta])?;
            Ok(n as u64)
        })
    }

    /// Deletes the undelivered rows of a notify target removed from the config.
    pub fn outbox_drop_target(&self, target: &str) -> Result<u64, StoreError> {
        self.tracked("outbox_drop_target", || {
            let conn = self.writer();
            let n = conn
                .prepare_cached("DELETE FROM outbox WHERE target = ?1 AND delivered_at IS NULL")?
                .execute([target])?;
            Ok(n as u64)
        })
    }

    /// Deletes one undelivered row.
    pub fn outbox_drop(&self, id: i64) -> Result<(), StoreError> {
        self.tracked("outbox_drop", || {
            let conn = self.writer();
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1 AND delivered_at IS NULL")?
                .execute([id])?;
            Ok(())
        })
    }

    /// Runs one store operation, counting its error and keeping the health flag. Every public
    /// operation goes through it (the history functions in `incidents/rollups.rs` may too).
    pub(super) fn tracked<T>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self
            .pending_migration
            .load(std::sync::atomic::Ordering::Acquire)
        {
            let migrated = migrate(&self.writer());
            match migrated {
                Ok(()) => {
                    self.pending_migration
                        .store(false, std::sync::atomic::Ordering::Release);
                    tracing::warn!("PostgreSQL reachable: schema checked, the store works");
                }
                Err(e) => {
                    self.health.failed(op, &e);
                    return Err(e);
                }
            }
        }
        let result = super::db::fenced(LEADER_OPS.contains(&op), f);
        match &result {
            Err(e) => self.health.failed(op, e),
            Ok(_) if WRITE_OPS.contains(&op) => self.health.wrote(),
            Ok(_) => {}
        }
        result
    }
}

/// The schema version: `PRAGMA user_version` on SQLite, the `schema_version` table on
/// PostgreSQL (0 when absent).
fn schema_version(conn: &Conn) -> Result<i64, StoreError> {
    match conn {
        Conn::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
        Conn::Pg(_) => {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
            )?;
            let v: Option<i64> =
                conn.query_row("SELECT max(version) FROM schema_version", params![], |r| {
                    r.get(0)
                })?;
            Ok(v.unwrap_or(0))
        }
    }
}

fn set_schema_version(conn: &Conn, v: i64) -> Result<(), StoreError> {
    match conn {
        Conn::Sqlite(c) => c.pragma_update(None, "user_version", v)?,
        Conn::Pg(_) => {
            conn.execute("DELETE FROM schema_version", params![])?;
            conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [v])?;
        }
    }
    Ok(())
}

/// Migration lock on PostgreSQL: two instances starting together migrate one after the other.
const PG_MIGRATE_LOCK: i64 = 0x6c69_656e_7468;

fn migrate(conn: &Conn) -> Result<(), StoreError> {
    loop {
        // Re-read the version inside the write lock: another process may be migrating too.
        let tx = conn.write_tx()?;
        if tx.is_postgres() {
            tx.execute_batch(&format!("SELECT pg_advisory_xact_lock({PG_MIGRATE_LOCK})"))?;
        }
        let version = schema_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            tx.commit()?;
            return Ok(());
        }
        let sql = MIGRATIONS[version as usize];
        if tx.is_postgres() {
            tx.execute_batch(&super::db::pg_ddl(sql))?;
        } else {
            tx.execute_batch(sql)?;
        }
        set_schema_version(&tx, version + 1)?;
        tx.commit()?;
    }
}

/// The serde (snake_case) name of a unit enum variant, e.g. `Severity::Critical` → `critical`.
pub(super) fn to_text<T: Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("unit enum variant serializes to a string, got {other:?}"),
    }
}

pub(super) fn from_text<T: DeserializeOwned>(row: &Row, idx: usize) -> super::db::Result<T> {
    let s: String = row.get(idx)?;
    serde_json::from_value(serde_json::Value::String(s)).map_err(|e| DbError::Decode {
        idx,
        msg: e.to_string(),
    })
}

pub(super) fn json_col<T: DeserializeOwned>(row: &Row, idx: usize) -> super::db::Result<Option<T>> {
    let s: Option<String> = row.get(idx)?;
    s.map(|s| {
        serde_json::from_str(&s).map_err(|e| DbError::Decode {
            idx,
            msg: e.to_string(),
        })
    })
    .transpose()
}

fn state_of(acknowledged_at: Option<i64>, resolved_at: Option<i64>) -> IncidentState {
    if resolved_at.is_some() {
        IncidentState::Resolved
    } else if acknowledged_at.is_some() {
        IncidentState::Acknowledged
    } else {
        IncidentState::Open
    }
}

/// A row of [`INCIDENT_COLS`], without events and notes.
pub(super) fn incident_from_row(r: &Row) -> super::db::Result<Incident> {
    let acknowledged_at: Option<i64> = r.get(8)?;
    let resolved_at: Option<i64> = r.get(10)?;
    Ok(Incident {
        id: r.get(0)?,
        key: r.get(1)?,
        title: r.get(2)?,
        title_en: r.get(3)?,
        severity: from_text(r, 4)?,
        scope: from_text(r, 5)?,
        state: state_of(acknowledged_at, resolved_at),
        sites: json_col(r, 11)?.unwrap_or_default(),
        service: r.get(6)?,
        teams: json_col(r, 12)?.unwrap_or_default(),
        started_at: r.get(7)?,
        acknowledged_at,
        acknowledged_by: r.get(9)?,
        resolved_at,
        ack_expires_at: r.get(13)?,
        assigned_to: r.get(14)?,
        events: Vec::new(),
        notes: Vec::new(),
    })
}

fn event_from_row(r: &Row) -> super::db::Result<IncidentEvent> {
    Ok(IncidentEvent {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        at: r.get(2)?,
        kind: from_text(r, 3)?,
        check: r.get(4)?,
        state: r.get(5)?,
        message: r.get(6)?,
        evidence: json_col(r, 7)?,
    })
}

fn outbox_from_row(r: &Row) -> super::db::Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.get(0)?,
        target: r.get(1)?,
        incident_id: r.get(2)?,
        event_id: r.get(3)?,
        idempotency_key: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: r.get(7)?,
    })
}

pub(super) fn exists(conn: &Conn, id: i64) -> super::db::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM incidents WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn insert_sites(conn: &Conn, incident_id: i64, sites: &[String]) -> super::db::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO incident_sites (incident_id, site, pos) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for (pos, site) in sites.iter().enumerate() {
        stmt.execute(params![incident_id, site, pos as i64])?;
    }
    Ok(())
}

fn insert_teams(conn: &Conn, incident_id: i64, teams: &[String]) -> super::db::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO incident_teams (incident_id, team, pos) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    for (pos, team) in teams.iter().enumerate() {
        stmt.execute(params![incident_id, team, pos as i64])?;
    }
    Ok(())
}

/// Inserts an event and one outbox row per target (due at `ev.at`). Returns the event id.
pub(super) fn insert_event(
    conn: &Conn,
    incident_id: i64,
    ev: &NewEvent,
    notify: &[String],
) -> super::db::Result<i64> {
    let evidence = ev.evidence.as_ref().map(|v| v.to_string());
    let event_id: i64 = conn
        .prepare_cached(
            "INSERT INTO events (incident_id, at, kind, check_key, state, message, evidence) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![
                incident_id,
                ev.at,
                to_text(ev.kind),
                ev.check,
                ev.state,
                ev.message,
                evidence
            ],
            |r| r.get(0),
        )?;
    let mut outbox = conn.prepare_cached(
        "INSERT INTO outbox (target, incident_id, event_id, idempotency_key, next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (idempotency_key) DO NOTHING",
    )?;
    for target in notify {
        outbox.execute(params![
            target,
            incident_id,
            event_id,
            format!("{event_id}:{target}"),
            ev.at
        ])?;
    }
    Ok(event_id)
}

pub(super) fn load_event(conn: &Conn, event_id: i64) -> super::db::Result<IncidentEvent> {
    conn.prepare_cached(&format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1"))?
        .query_row([event_id], event_from_row)
}

/// The incident with events and notes; call inside a transaction for one snapshot.
pub(super) fn load_incident(conn: &Conn, id: i64) -> super::db::Result<Option<Incident>> {
    let Some(mut inc) = conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLS} FROM incidents i WHERE i.id = ?1"
        ))?
        .query_row([id], incident_from_row)
        .optional()?
    else {
        return Ok(None);
    };
    inc.events = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLS} FROM events WHERE incident_id = ?1 ORDER BY id"
        ))?
        .query_map([id], event_from_row)?
        .collect::<Result<_, _>>()?;
    inc.notes = conn
        .prepare_cached(
            "SELECT id, at, author, text FROM notes WHERE incident_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(Note {
                id: r.get(0)?,
                at: r.get(1)?,
                author: r.get(2)?,
                text: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(inc))
}

/// How many incidents (below `cursor`) started at or after `since`, counting no further than
/// `n + 1`.
fn started_since(
    conn: &Conn,
    since: UnixMillis,
    cursor: Option<i64>,
    n: i64,
) -> super::db::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM incidents INDEXED BY incidents_started_at \
         WHERE started_at >= ?1 AND id < ?2 LIMIT ?3) AS s",
    )?
    .query_row(params![since, cursor.unwrap_or(i64::MAX), n + 1], |r| {
        r.get(0)
    })
}

fn window_from_row(r: &Row) -> super::db::Result<MaintenanceWindow> {
    Ok(MaintenanceWindow {
        id: r.get(0)?,
        site: r.get(1)?,
        service: r.get(2)?,
        starts_at: r.get(3)?,
        ends_at: r.get(4)?,
        reason: r.get(5)?,
        created_by: r.get(6)?,
    })
}

/// SQL and arguments of a `list` page (`limit + 1` rows, to know whether more follow).
///
/// The access path is chosen here rather than left to the planner (which has no statistics
/// about how incidents are spread), so every filter stays an index walk that stops after one
/// page:
/// - state open/acknowledged: the unresolved entries of `incidents_resolved_at` (always few);
/// - `since` selecting ≤ 1,000 incidents: the `started_at` index, then a small sort;
/// - site (else team): that site's entries of `incident_sites_site`, newest first;
/// - severity: `incidents_severity`, newest first; otherwise the table, newest first.
///
/// Other filters are checked on each candidate (joins by primary key). The id-only inner query
/// picks the page; sites and teams are read for the page's rows only.
fn list_query(
    f: &IncidentFilter,
    cursor: Option<i64>,
    limit: u32,
    since_selective: bool,
) -> (String, Vec<SqlValue>) {
    fn arg(v: SqlValue, args: &mut Vec<SqlValue>) -> String {
        args.push(v);
        format!("?{}", args.len())
    }
    let mut args: Vec<SqlValue> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let unresolved = matches!(
        f.state,
        Some(IncidentState::Open | IncidentState::Acknowledged)
    );
    // Filters on columns of `incidents` itself.
    let row_filters = f.state.is_some() || f.severity.is_some() || f.since.is_some();
    // (FROM clause, id column, driven by incident_sites, driven by incident_teams)
    let (from, id_col, by_site, by_team) = if unresolved {
        (
            "incidents i INDEXED BY incidents_resolved_at".to_string(),
            "i.id",
            false,
            false,
        )
    } else if since_selective {
        (
            "incidents i INDEXED BY incidents_started_at".to_string(),
            "i.id",
            false,
            false,
        )
    } else if f.site.is_some() || f.team.is_some() {
        let table = if f.site.is_some() {
            "incident_sites"
        } else {
            "incident_teams"
        };
        let from = if row_filters {
            // CROSS JOIN keeps the join table as the outer loop.
            format!("{table} d CROSS JOIN incidents i ON i.id = d.incident_id")
        } else {
            format!("{table} d")
        };
        (from, "d.incident_id", f.site.is_some(), f.site.is_none())
    } else if f.severity.is_some() {
        (
            "incidents i INDEXED BY incidents_severity".to_string(),
            "i.id",
            false,
            false,
        )
    } else {
        ("incidents i NOT INDEXED".to_string(), "i.id", false, false)
    };
    if let Some(c) = cursor {
        let p = arg(SqlValue::Integer(c), &mut args);
        conds.push(format!("{id_col} < {p}"));
    }
    if let Some(site) = &f.site {
        let p = arg(SqlValue::Text(site.clone()), &mut args);
        conds.push(if by_site {
            format!("d.site = {p}")
        } else {
            format!(
                "EXISTS (SELECT 1 FROM incident_sites s \
                 WHERE s.incident_id = {id_col} AND s.site = {p})"
            )
        });
    }
    if let Some(team) = &f.team {
        let p = arg(SqlValue::Text(team.clone()), &mut args);
        conds.push(if by_team {
            format!("d.team = {p}")
        } else {
            format!(
                "EXISTS (SELECT 1 FROM incident_teams t \
                 WHERE t.incident_id = {id_col} AND t.team = {p})"
            )
        });
    }
    if let Some(sev) = f.severity {
        let p = arg(SqlValue::Text(to_text(sev)), &mut args);
        conds.push(format!("i.severity = {p}"));
    }
    match f.state {
        None => {}
        Some(IncidentState::Open) => {
            conds.push("i.resolved_at IS NULL AND i.acknowledged_at IS NULL".into())
        }
        Some(IncidentState::Acknowledged) => {
            conds.push("i.resolved_at IS NULL AND i.acknowledged_at IS NOT NULL".into())
        }
        Some(IncidentState::Resolved) => conds.push("i.resolved_at IS NOT NULL".into()),
    }
    if let Some(since) = f.since {
        let p = arg(SqlValue::Integer(since), &mut args);
        conds.push(format!("i.started_at >= {p}"));
    }
    let p = arg(SqlValue::Integer(i64::from(limit) + 1), &mut args);
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT {INCIDENT_COLS} FROM incidents i WHERE i.id IN \
         (SELECT {id_col} FROM {from} {where_} ORDER BY {id_col} DESC LIMIT {p}) \
         ORDER BY i.id DESC"
    );
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `list` shape is an index walk in id order (a sort only behind a selective
    /// `since`): no statement scans a table or index it did not choose.
    #[test]
    fn list_plans_are_index_walks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("plans.db")).unwrap();
        let conn = store.reader();
        let mut checked = 0;
        for bits in 0u32..(1 << 5) {
            for state in [
                None,
                Some(IncidentState::Open),
                Some(IncidentState::Acknowledged),
                Some(IncidentState::Resolved),
            ] {
                let f = IncidentFilter {
                    state,
                    site: (bits & 1 != 0).then(|| "a".to_string()),
                    team: (bits & 2 != 0).then(|| "t".to_string()),
                    severity: (bits & 4 != 0).then_some(Severity::Critical),
                    since: (bits & 8 != 0).then_some(5),
                };
                let cursor = (bits & 16 != 0).then_some(1_000);
                let unresolved = matches!(
                    state,
                    Some(IncidentState::Open | IncidentState::Acknowledged)
                );
                for selective in [false, true] {
                    if selective && (f.since.is_none() || unresolved) {
                        continue;
                    }
                    let (sql, args) = list_query(&f, cursor, 50, selective);
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let plan: Vec<String> = stmt
                        .query_map(args, |r| r.get(3))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    for line in &plan {
                        let ok = if line.starts_with("SCAN") {
                            line == "SCAN i" && cursor.is_none()
                        } else if line.contains("TEMP B-TREE FOR ORDER BY") {
                            selective
                        } else {
                            true
                        };
                        assert!(
                            ok,
                            "{f:?} cursor {cursor:?} selective {selective}: {plan:#?}"
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100);
    }
}

//! The incident store's schema: every migration, in order, in SQLite's dialect (the PostgreSQL
//! backend rewrites them, see `db.rs`). All of them live here so the store does not depend on
//! the modules that use the tables (rollups, escalation, agent sequences, cluster, vantage).

/// Ordered schema migrations: `MIGRATIONS[n]` takes `user_version` from `n` to `n + 1`, each in
/// its own transaction. Append only; never edit a migration that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL,
    title           TEXT NOT NULL,
    title_en        TEXT NOT NULL,
    severity        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    service         TEXT,
    started_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at     INTEGER
);
-- At most one unresolved incident per cause.
CREATE UNIQUE INDEX incidents_open_key ON incidents(key) WHERE resolved_at IS NULL;
CREATE INDEX incidents_started_at ON incidents(started_at);
CREATE INDEX incidents_resolved_at ON incidents(resolved_at);
CREATE INDEX incidents_severity ON incidents(severity);

-- `pos` keeps the order the engine gave.
CREATE TABLE incident_sites (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    site        TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    PRIMARY KEY (incident_id, site)
) WITHOUT ROWID;
CREATE INDEX incident_sites_site ON incident_sites(site, incident_id);

CREATE TABLE incident_teams (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    team        TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    PRIMARY KEY (incident_id, team)
) WITHOUT ROWID;
CREATE INDEX incident_teams_team ON incident_teams(team, incident_id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    check_key   TEXT,
    state       TEXT,
    message     TEXT NOT NULL,
    evidence    TEXT  -- JSON
);
CREATE INDEX events_incident ON events(incident_id, id);

CREATE TABLE notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX notes_incident ON notes(incident_id, id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    target          TEXT NOT NULL,
    incident_id     INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_incident ON outbox(incident_id);
CREATE INDEX outbox_event ON outbox(event_id);

CREATE TABLE maintenance (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    site       TEXT,
    service    TEXT,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX maintenance_ends_at ON maintenance(ends_at);
"#,
    // 2: availability history (incidents/rollups.rs).
    r#"
CREATE TABLE history_checks (
    id           INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    first_minute INTEGER NOT NULL
);

-- One row per check per minute with runs. Times are minutes since the Unix epoch; latency in ms.
CREATE TABLE history_minute (
    minute    INTEGER NOT NULL,
    check_id  INTEGER NOT NULL,
    attempts  INTEGER NOT NULL,  -- runs outside maintenance
    successes INTEGER NOT NULL,
    maint     INTEGER NOT NULL,  -- runs inside a maintenance window
    lat_n     INTEGER NOT NULL,
    lat_sum   REAL NOT NULL,
    lat_max   REAL NOT NULL,
    sent      INTEGER NOT NULL,  -- echo packets (link rounds)
    lost      INTEGER NOT NULL,
    hist      BLOB NOT NULL,     -- sparse latency histogram (crate::availability::SparseHist)
    PRIMARY KEY (minute, check_id)
) WITHOUT ROWID;

CREATE TABLE history_hour (
    hour          INTEGER NOT NULL,
    check_id      INTEGER NOT NULL,
    minutes       INTEGER NOT NULL,  -- minutes with runs outside maintenance
    avail         REAL NOT NULL,     -- Σ over those minutes of successes / attempts
    maint_minutes INTEGER NOT NULL,  -- minutes with runs only inside maintenance
    attempts      INTEGER NOT NULL,
    successes     INTEGER NOT NULL,
    lat_n         INTEGER NOT NULL,
    lat_sum       REAL NOT NULL,
    lat_max       REAL NOT NULL,
    sent          INTEGER NOT NULL,
    lost          INTEGER NOT NULL,
    hist          BLOB NOT NULL,
    PRIMARY KEY (hour, check_id)
) WITHOUT ROWID;

CREATE TABLE history_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 3: "monitor blind" runs in the availability history (incidents/rollups.rs).
    r#"
ALTER TABLE history_minute ADD COLUMN blind INTEGER NOT NULL DEFAULT 0;  -- runs while the prober was isolated
ALTER TABLE history_hour ADD COLUMN blind_minutes INTEGER NOT NULL DEFAULT 0;  -- minutes with only such runs
"#,
    // 4: acknowledgement expiry, assignment, escalation steps fired (incidents/escalation.rs).
    r#"
ALTER TABLE incidents ADD COLUMN first_acknowledged_at INTEGER;  -- kept when un-acknowledged (team figures)
ALTER TABLE incidents ADD COLUMN ack_expires_at INTEGER;         -- the current acknowledgement lapses then
ALTER TABLE incidents ADD COLUMN assigned_to TEXT;
ALTER TABLE incidents ADD COLUMN escalation_base_at INTEGER;     -- NULL = started_at
UPDATE incidents SET first_acknowledged_at = acknowledged_at;
CREATE INDEX incidents_first_ack ON incidents(first_acknowledged_at)
    WHERE first_acknowledged_at IS NOT NULL;

CREATE TABLE escalations (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    team        TEXT NOT NULL,
    step        INTEGER NOT NULL,  -- index in the team's [[team.escalation]] list
    fired_at    INTEGER NOT NULL,
    event_id    INTEGER,
    PRIMARY KEY (incident_id, team, step)
) WITHOUT ROWID;
"#,
    // 5: ward agents' last applied result sequence (incidents/agent_seq.rs).
    r#"
CREATE TABLE IF NOT EXISTS agent_seq (
    site       TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL,   -- highest result sequence applied
    applied    INTEGER NOT NULL,   -- results applied in all (each once)
    missing    INTEGER NOT NULL,   -- sequence numbers never received (dropped by a full spool)
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 6: cluster members and the leader lease (incidents/cluster.rs).
    r#"
CREATE TABLE IF NOT EXISTS cluster_members (
    instance     TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,  -- database clock, ms
    leader       INTEGER NOT NULL,  -- 1 while it held the lease at its last heartbeat
    api          TEXT               -- its listen address, for operators
);
CREATE TABLE IF NOT EXISTS leader_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,    -- database clock, ms
    epoch      INTEGER NOT NULL
);
"#,
    // 7: every instance's latest check results (the multi-vantage quorum) and the leader's site
    // statuses (the standbys' status pages), see incidents/vantage.rs.
    r#"
CREATE TABLE IF NOT EXISTS check_states (
    instance  TEXT NOT NULL,
    check_key TEXT NOT NULL,
    up        INTEGER NOT NULL,  -- 1: its latest run succeeded
    at        INTEGER NOT NULL,  -- when that run finished (the instance's clock, ms)
    PRIMARY KEY (instance, check_key)
);
-- The leader's rolled-up site statuses, for the standbys' status pages.
CREATE TABLE IF NOT EXISTS site_states (
    instance TEXT NOT NULL,
    site     TEXT NOT NULL,
    status   TEXT NOT NULL,    -- up | degraded | down | maintenance | unknown
    at       INTEGER NOT NULL, -- when written (the instance's clock, ms)
    PRIMARY KEY (instance, site)
);
"#,
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

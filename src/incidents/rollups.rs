//! Availability history in the incident database: per-minute rollups written by the engine's
//! flush, hourly rollups derived from them, retention, and the reads behind readiness and the
//! status page. See [`crate::availability`] for what a minute holds.
//!
//! # Tables (schema version 2)
//!
//! - `history_checks(id, key, first_minute)`: one row per check key ever recorded, with the
//!   first minute it had data (readiness judges a check only from then on);
//! - `history_minute`, primary key `(minute, check_id)`: rows are appended in time order and
//!   every read is a time range;
//! - `history_hour`, primary key `(hour, check_id)`: the same numbers per hour, minutes in
//!   maintenance counted apart (`maint_minutes`), availability pre-summed (`avail` = Σ over
//!   the hour's minutes of successes / attempts);
//! - `history_meta(key, value)`: `rolled_until` = the first hour not rolled up yet.
//!
//! Hours are rolled up once they are [`ROLLUP_GRACE_MINUTES`] old; minutes are deleted only
//! after their hour is rolled up and `[history] keep_minutes` has passed.

use std::collections::HashMap;

use super::db::{params, Conn, OptionalExtension, Row, Value};
use super::model::{Incident, UnixMillis};
use super::store::{incident_from_row, Store, StoreError, INCIDENT_COLS};
use crate::availability::{DenseHist, MinuteRow, MinuteStats, SparseHist};

/// An hour is rolled up once it ended this many minutes ago (late flushes land first).
pub const ROLLUP_GRACE_MINUTES: i64 = 3;

const MINUTE_COLS: &str =
    "minute, check_id, attempts, successes, maint, lat_n, lat_sum, lat_max, sent, lost, hist, blind";
const HOUR_COLS: &str = "hour, check_id, minutes, avail, maint_minutes, attempts, successes, \
                         lat_n, lat_sum, lat_max, sent, lost, hist, blind_minutes";

/// The numbers of one check over a span of time, summed from minute and hour rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckAgg {
    /// Minutes with runs outside maintenance.
    pub minutes: u64,
    /// Σ over those minutes of successes / attempts (availability = `avail / minutes`).
    pub avail: f64,
    /// Minutes with runs only inside maintenance.
    pub maint_minutes: u64,
    /// Minutes with runs only while the prober was isolated ("monitor blind").
    pub blind_minutes: u64,
    pub attempts: u64,
    pub successes: u64,
    pub lat_n: u64,
    pub lat_sum: f64,
    pub lat_max: f64,
    pub sent: u64,
    pub lost: u64,
    pub hist: DenseHist,
}

impl CheckAgg {
    /// Adds one minute.
    pub fn add_minute(&mut self, s: &MinuteStats) {
        if s.attempts > 0 {
            self.minutes += 1;
            self.avail += s.successes as f64 / s.attempts as f64;
        } else if s.maint > 0 {
            self.maint_minutes += 1;
        } else if s.blind > 0 {
            self.blind_minutes += 1;
        }
        self.attempts += s.attempts as u64;
        self.successes += s.successes as u64;
        self.lat_n += s.lat_n as u64;
        self.lat_sum += s.lat_sum;
        self.lat_max = self.lat_max.max(s.lat_max);
        self.sent += s.sent as u64;
        self.lost += s.lost as u64;
        for &(b, n) in &s.hist.0 {
            self.hist.0[b as usize] += n as u64;
        }
    }

    /// Adds another aggregate.
    pub fn merge(&mut self, o: &CheckAgg) {
        self.minutes += o.minutes;
        self.avail += o.avail;
        self.maint_minutes += o.maint_minutes;
        self.blind_minutes += o.blind_minutes;
        self.attempts += o.attempts;
        self.successes += o.successes;
        self.lat_n += o.lat_n;
        self.lat_sum += o.lat_sum;
        self.lat_max = self.lat_max.max(o.lat_max);
        self.sent += o.sent;
        self.lost += o.lost;
        for (a, b) in self.hist.0.iter_mut().zip(o.hist.0.iter()) {
            *a += b;
        }
    }

    /// Availability over the minutes outside maintenance; None without such minutes.
    pub fn availability(&self) -> Option<f64> {
        (self.minutes > 0).then(|| self.avail / self.minutes as f64)
    }
}

/// What the store knows about one check over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckWindow {
    /// First minute the check ever had data (it may be after the window's start).
    pub first_minute: i64,
    pub agg: CheckAgg,
}

/// The history of every check over a window `[from_minute, to_minute)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowData {
    pub from_minute: i64,
    pub to_minute: i64,
    /// By check key. Checks never recorded are absent.
    pub checks: HashMap<String, CheckWindow>,
    /// The window starts before the oldest minute kept: its first hour was counted whole.
    pub start_rounded: bool,
}

/// One minute of one check, for charts.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    pub minute: i64,
    pub stats: MinuteStats,
}

fn minute_from_row(r: &Row) -> super::db::Result<(i64, i64, MinuteStats)> {
    let hist: Vec<u8> = r.get(10)?;
    Ok((
        r.get(0)?,
        r.get(1)?,
        MinuteStats {
            attempts: r.get(2)?,
            successes: r.get(3)?,
            maint: r.get(4)?,
            lat_n: r.get(5)?,
            lat_sum: r.get(6)?,
            lat_max: r.get(7)?,
            sent: r.get(8)?,
            lost: r.get(9)?,
            hist: SparseHist::decode(&hist),
            blind: r.get(11)?,
        },
    ))
}

fn meta(conn: &Conn, key: &str) -> super::db::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM history_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

fn set_meta(conn: &Conn, key: &str, value: i64) -> super::db::Result<()> {
    conn.prepare_cached(
        "INSERT INTO history_meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

fn insert_minute(
    conn: &Conn,
    check_id: i64,
    minute: i64,
    s: &MinuteStats,
) -> super::db::Result<usize> {
    conn.prepare_cached(&format!(
        "INSERT INTO history_minute ({MINUTE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT(minute, check_id) DO NOTHING"
    ))?
    .execute(params![
        minute,
        check_id,
        s.attempts,
        s.successes,
        s.maint,
        s.lat_n,
        s.lat_sum,
        s.lat_max,
        s.sent,
        s.lost,
        s.hist.encode(),
        s.blind,
    ])
}

impl Store {
    /// Writes minute rows in one transaction. A row meeting an existing one (a minute flushed
    /// in two parts, or by two processes) is merged into it. Returns the rows written.
    pub fn history_write(&self, rows: &[MinuteRow]) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let conn = self.writer();
        let tx = conn.write_tx()?;
        let mut ids: HashMap<&str, i64> = HashMap::new();
        for row in rows {
            let id = match ids.get(row.check.as_str()) {
                Some(&id) => id,
                None => {
                    let id: i64 = tx
                        .prepare_cached(
                            "INSERT INTO history_checks (key, first_minute) VALUES (?1, ?2) \
                             ON CONFLICT(key) DO UPDATE \
                             SET first_minute = min(history_checks.first_minute, excluded.first_minute) \
                             RETURNING id",
                        )?
                        .query_row(params![row.check, row.minute], |r| r.get(0))?;
                    ids.insert(&row.check, id);
                    id
                }
            };
            if insert_minute(&tx, id, row.minute, &row.stats)? == 0 {
                let (_, _, mut old) = tx
                    .prepare_cached(&format!(
                        "SELECT {MINUTE_COLS} FROM history_minute WHERE minute = ?1 AND check_id = ?2"
                    ))?
                    .query_row(params![row.minute, id], minute_from_row)?;
                old.merge(&row.stats);
                tx.prepare_cached(
                    "DELETE FROM history_minute WHERE minute = ?1 AND check_id = ?2",
                )?
                .execute(params![row.minute, id])?;
                insert_minute(&tx, id, row.minute, &old)?;
                // The hour may have been rolled up already: roll it again.
                let hour = row.minute.div_euclid(60);
                if meta(&tx, "rolled_until")?.is_some_and(|r| hour < r) {
                    rollup_hour(&tx, hour)?;
                }
            }
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Rolls up every hour that ended at least [`ROLLUP_GRACE_MINUTES`] before `now_minute`
    /// and is not rolled up yet, one transaction per hour. Returns the hours rolled up.
    pub fn history_rollup(&self, now_minute: i64) -> Result<u64, StoreError> {
        let last = (now_minute - ROLLUP_GRACE_MINUTES).div_euclid(60); // exclusive
        let mut done = 0;
        loop {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let from = meta(&tx, "rolled_until")?.unwrap_or(i64::MIN);
            // Skip hours without minutes.
            let next: Option<i64> = tx
                .prepare_cached("SELECT min(minute) FROM history_minute WHERE minute >= ?1")?
                .query_row([from.saturating_mul(60)], |r| r.get(0))?;
            let Some(next) = next else {
                return Ok(done);
            };
            let hour = next.div_euclid(60);
            if hour >= last {
                if from == i64::MIN {
                    set_meta(&tx, "rolled_until", hour)?;
                    tx.commit()?;
                }
                return Ok(done);
            }
            rollup_hour(&tx, hour)?;
            set_meta(&tx, "rolled_until", hour + 1)?;
            tx.commit()?;
            done += 1;
        }
    }

    /// Retention: deletes minutes before `minutes_before` (only hours already rolled up) and
    /// hours before `hours_before`, in transactions of at most one hour of minutes / one day of
    /// hours. Returns (minute rows, hour rows) deleted.
    pub fn history_prune(
        &self,
        minutes_before: i64,
        hours_before: i64,
    ) -> Result<(u64, u64), StoreError> {
        let (mut m, mut h) = (0u64, 0u64);
        loop {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let rolled = meta(&tx, "rolled_until")?.unwrap_or(i64::MIN);
            let bound = minutes_before.min(rolled.saturating_mul(60));
            let oldest: Option<i64> = tx
                .prepare_cached("SELECT min(minute) FROM history_minute")?
                .query_row(params![], |r| r.get(0))?;
            let Some(oldest) = oldest.filter(|&o| o < bound) else {
                break;
            };
            let upto = bound.min(oldest + 60);
            m += tx
                .prepare_cached("DELETE FROM history_minute WHERE minute < ?1")?
                .execute([upto])? as u64;
            tx.commit()?;
        }
        loop {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let oldest: Option<i64> = tx
                .prepare_cached("SELECT min(hour) FROM history_hour")?
                .query_row(params![], |r| r.get(0))?;
            let Some(oldest) = oldest.filter(|&o| o < hours_before) else {
                break;
            };
            let upto = hours_before.min(oldest + 24);
            h += tx
                .prepare_cached("DELETE FROM history_hour WHERE hour < ?1")?
                .execute([upto])? as u64;
            tx.commit()?;
        }
        Ok((m, h))
    }

    /// Every check's numbers over `[from_minute, to_minute)`: whole rolled-up hours from the
    /// hourly rows, the rest from the minute rows. A window older than the minutes kept is
    /// rounded out to whole hours at its start (`start_rounded`).
    pub fn history_window(
        &self,
        from_minute: i64,
        to_minute: i64,
    ) -> Result<WindowData, StoreError> {
        let conn = self.reader();
        let tx = conn.read_tx()?;
        let mut out = WindowData {
            from_minute,
            to_minute,
            ..WindowData::default()
        };
        let mut by_id: HashMap<i64, (String, i64)> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached("SELECT id, key, first_minute FROM history_checks")?;
            let rows = stmt.query_map(params![], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for r in rows {
                let (id, key, first) = r?;
                by_id.insert(id, (key, first));
            }
        }
        if to_minute <= from_minute {
            return Ok(out);
        }
        let rolled = meta(&tx, "rolled_until")?.unwrap_or(i64::MIN);
        let oldest: Option<i64> = tx
            .prepare_cached("SELECT min(minute) FROM history_minute")?
            .query_row(params![], |r| r.get(0))?;
        let oldest = oldest.unwrap_or(i64::MAX);
        let mut h_lo = from_minute.div_euclid(60) + i64::from(from_minute.rem_euclid(60) != 0);
        let first_hour_rolled: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM history_hour WHERE hour = ?1)")?
            .query_row([from_minute.div_euclid(60)], |r| r.get(0))?;
        // Only when the minutes of the first hour were pruned but its hourly row is kept.
        if from_minute < oldest
            && from_minute.rem_euclid(60) != 0
            && from_minute.div_euclid(60) < rolled
            && first_hour_rolled
        {
            h_lo = from_minute.div_euclid(60);
            out.start_rounded = true;
        }
        let h_hi = to_minute.div_euclid(60).min(rolled.max(h_lo));
        let mut aggs: HashMap<i64, CheckAgg> = HashMap::new();
        let mut minute_ranges = Vec::new();
        if h_lo < h_hi {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {HOUR_COLS} FROM history_hour WHERE hour >= ?1 AND hour < ?2"
            ))?;
            let mut rows = stmt.query(params![h_lo, h_hi])?;
            while let Some(r) = rows.next()? {
                let a = aggs.entry(r.get(1)?).or_default();
                a.minutes += r.get::<_, i64>(2)? as u64;
                a.avail += r.get::<_, f64>(3)?;
                a.maint_minutes += r.get::<_, i64>(4)? as u64;
                a.attempts += r.get::<_, i64>(5)? as u64;
                a.successes += r.get::<_, i64>(6)? as u64;
                a.lat_n += r.get::<_, i64>(7)? as u64;
                a.lat_sum += r.get::<_, f64>(8)?;
                a.lat_max = a.lat_max.max(r.get::<_, f64>(9)?);
                a.sent += r.get::<_, i64>(10)? as u64;
                a.lost += r.get::<_, i64>(11)? as u64;
                a.blind_minutes += r.get::<_, i64>(13)? as u64;
                match r.value(12) {
                    Some(Value::Blob(b)) => a.hist.add_encoded(b),
                    other => {
                        return Err(super::db::DbError::Decode {
                            idx: 12,
                            msg: format!("expected a histogram blob, found {other:?}"),
                        }
                        .into())
                    }
                }
            }
            if from_minute < h_lo * 60 {
                minute_ranges.push((from_minute, h_lo * 60));
            }
            minute_ranges.push((h_hi * 60, to_minute));
        } else {
            minute_ranges.push((from_minute, to_minute));
        }
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {MINUTE_COLS} FROM history_minute WHERE minute >= ?1 AND minute < ?2"
        ))?;
        for (a, b) in minute_ranges.into_iter().filter(|(a, b)| a < b) {
            let mut rows = stmt.query(params![a, b])?;
            while let Some(r) = rows.next()? {
                let (_, id, s) = minute_from_row(r)?;
                aggs.entry(id).or_default().add_minute(&s);
            }
        }
        drop(stmt);
        for (id, (key, first)) in by_id {
            let agg = aggs.remove(&id).unwrap_or_default();
            out.checks.insert(
                key,
                CheckWindow {
                    first_minute: first,
                    agg,
                },
            );
        }
        Ok(out)
    }

    /// Minute rows of some checks over `[from_minute, to_minute)`, oldest first, by key.
    pub fn history_series(
        &self,
        keys: &[String],
        from_minute: i64,
        to_minute: i64,
    ) -> Result<HashMap<String, Vec<SeriesPoint>>, StoreError> {
        let conn = self.reader();
        let mut out: HashMap<String, Vec<SeriesPoint>> = HashMap::new();
        let mut ids = HashMap::new();
        for k in keys {
            let id: Option<i64> = conn
                .prepare_cached("SELECT id FROM history_checks WHERE key = ?1")?
                .query_row([k], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                ids.insert(id, k.clone());
                out.insert(k.clone(), Vec::new());
            }
        }
        if ids.is_empty() {
            return Ok(out);
        }
        let list = ids
            .keys()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT {MINUTE_COLS} FROM history_minute \
             WHERE minute >= ?1 AND minute < ?2 AND check_id IN ({list}) ORDER BY minute"
        ))?;
        let rows = stmt.query_map(params![from_minute, to_minute], minute_from_row)?;
        for r in rows {
            let (minute, id, stats) = r?;
            if let Some(k) = ids.get(&id) {
                out.entry(k.clone())
                    .or_default()
                    .push(SeriesPoint { minute, stats });
            }
        }
        Ok(out)
    }

    /// Critical incidents open at `at`: started at or before it and not resolved by then.
    pub fn critical_open_at(&self, at: UnixMillis) -> Result<Vec<Incident>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INCIDENT_COLS} FROM incidents i \
             WHERE (i.resolved_at IS NULL OR i.resolved_at > ?1) \
             AND i.started_at <= ?1 AND i.severity = ?2 ORDER BY i.id"
        ))?;
        let rows = stmt.query_map(params![at, "critical"], incident_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// First and last minute with data (None on an empty history).
    pub fn history_extent(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let conn = self.reader();
        let r: (Option<i64>, Option<i64>) = conn
            .prepare_cached("SELECT min(first_minute), (SELECT max(minute) FROM history_minute) FROM history_checks")?
            .query_row(params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(r.0.zip(r.1))
    }
}

/// Recomputes one hour's rows from its minutes.
fn rollup_hour(conn: &Conn, hour: i64) -> super::db::Result<()> {
    let mut aggs: HashMap<i64, CheckAgg> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MINUTE_COLS} FROM history_minute WHERE minute >= ?1 AND minute < ?2"
        ))?;
        let rows = stmt.query_map(params![hour * 60, hour * 60 + 60], minute_from_row)?;
        for r in rows {
            let (_, id, s) = r?;
            aggs.entry(id).or_default().add_minute(&s);
        }
    }
    let mut ids: Vec<i64> = aggs.keys().copied().collect();
    ids.sort_unstable();
    let mut delete =
        conn.prepare_cached("DELETE FROM history_hour WHERE hour = ?1 AND check_id = ?2")?;
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO history_hour ({HOUR_COLS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    ))?;
    for id in ids {
        let a = &aggs[&id];
        // Replace: the hour may be rolled up again after a late minute.
        delete.execute(params![hour, id])?;
        stmt.execute(params![
            hour,
            id,
            a.minutes as i64,
            a.avail,
            a.maint_minutes as i64,
            a.attempts as i64,
            a.successes as i64,
            a.lat_n as i64,
            a.lat_sum,
            a.lat_max,
            a.sent as i64,
            a.lost as i64,
            a.hist.to_sparse().encode(),
            a.blind_minutes as i64,
        ])?;
    }
    Ok(())
}

//! Acknowledgement expiry, un-acknowledgement, assignment and escalation steps in the store
//! (migration 4), and the pure arithmetic of which escalation steps are due.
//!
//! # Escalation clock
//!
//! Each `[[team.escalation]]` step fires once per incident, when the incident has been
//! *unacknowledged* for `after` in total: time spent acknowledged does not count. The store
//! keeps that as `escalation_base_at` — the start of the incident moved later by every
//! acknowledged interval (set when an acknowledgement is withdrawn or lapses) — so
//! `now - escalation_base_at` is the unacknowledged time while the incident is unacknowledged.
//! Fired steps are rows of `escalations` (primary key incident, team, step), written in the same
//! transaction as their timeline event and outbox rows: a restart neither repeats nor loses one.

use super::db::{params, Conn, OptionalExtension};
use serde_json::json;

use super::model::*;
use super::store::{
    exists, from_text, insert_event, json_col, load_event, load_incident, Store, StoreError,
};
use crate::localtime::{format_local, format_rfc3339};

/// Why an acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnackReason {
    /// `POST /api/v1/incidents/{id}/unack`.
    Withdrawn,
    /// Its `expires_in` passed while the incident was still open.
    Expired,
}

/// What the engine's tick needs of an unresolved incident.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRow {
    pub id: i64,
    pub severity: Severity,
    pub teams: Vec<String>,
    pub acknowledged: bool,
    pub ack_expires_at: Option<UnixMillis>,
    /// Start of the escalation clock (see the module docs).
    pub base_at: UnixMillis,
    /// (team, step index) already fired.
    pub fired: Vec<(String, usize)>,
}

/// Step indexes of `steps` (their `after`, in ms) due at `now` and not yet fired.
pub fn due_steps(
    row: &EscalationRow,
    team: &str,
    steps_after_ms: &[i64],
    now: UnixMillis,
) -> Vec<usize> {
    if row.acknowledged {
        return Vec::new();
    }
    let elapsed = now - row.base_at;
    steps_after_ms
        .iter()
        .enumerate()
        .filter(|(i, after)| {
            elapsed >= **after && !row.fired.iter().any(|(t, s)| t == team && s == i)
        })
        .map(|(i, _)| i)
        .collect()
}

impl Store {
    /// Withdraws the current acknowledgement of an unresolved incident: it is open again and
    /// its escalation clock resumes. None when there is no such incident; the event is None
    /// when there was nothing to withdraw (not acknowledged, or resolved).
    pub fn unacknowledge(
        &self,
        id: i64,
        at: UnixMillis,
        by: &str,
        reason: UnackReason,
    ) -> Result<Option<(Incident, Option<IncidentEvent>)>, StoreError> {
        self.tracked("unacknowledge", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            if !exists(&tx, id)? {
                return Ok(None);
            }
            let ev = unack_in(&tx, id, at, by, reason)?;
            let incident = load_incident(&tx, id)?.ok_or(StoreError::NoSuchIncident(id))?;
            tx.commit()?;
            Ok(Some((incident, ev)))
        })
    }

    /// Withdraws every acknowledgement whose expiry is at or before `now` on an unresolved
    /// incident (an `Unacknowledged` event by "lienthong" each). Returns the events.
    pub fn expire_acks(&self, now: UnixMillis) -> Result<Vec<IncidentEvent>, StoreError> {
        self.tracked("expire_acks", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM incidents INDEXED BY incidents_resolved_at \
                     WHERE resolved_at IS NULL AND acknowledged_at IS NOT NULL \
                     AND ack_expires_at <= ?1 ORDER BY id",
                )?
                .query_map([now], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(ev) = unack_in(&tx, id, now, "lienthong", UnackReason::Expired)? {
                    out.push(ev);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// Assigns an incident to a person (free text), or unassigns it (`None`). An `Assigned`
    /// event records who did it; assigning the current assignee again changes nothing (the
    /// event is then None). None when there is no such incident.
    pub fn assign(
        &self,
        id: i64,
        at: UnixMillis,
        by: &str,
        assignee: Option<&str>,
    ) -> Result<Option<(Incident, Option<IncidentEvent>)>, StoreError> {
        self.tracked("assign", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let current: Option<Option<String>> = tx
                .prepare_cached("SELECT assigned_to FROM incidents WHERE id = ?1")?
                .query_row([id], |r| r.get(0))
                .optional()?;
            let Some(current) = current else {
                return Ok(None);
            };
            let mut ev_out = None;
            if current.as_deref() != assignee {
                tx.prepare_cached("UPDATE incidents SET assigned_to = ?2 WHERE id = ?1")?
                    .execute(params![id, assignee])?;
                let message = match assignee {
                    Some(a) => format!("Phân công cho {a} (bởi {by}) / assigned to {a} by {by}"),
                    None => format!("Bỏ phân công (bởi {by}) / unassigned by {by}"),
                };
                let ev = NewEvent {
                    at,
                    kind: EventKind::Assigned,
                    check: None,
                    state: None,
                    message,
                    evidence: Some(json!({ "by": by, "assignee": assignee, "previous": current })),
                };
                let event_id = insert_event(&tx, id, &ev, &[])?;
                ev_out = Some(load_event(&tx, event_id)?);
            }
            let incident = load_incident(&tx, id)?.ok_or(StoreError::NoSuchIncident(id))?;
            tx.commit()?;
            Ok(Some((incident, ev_out)))
        })
    }

    /// The earliest expiry of an acknowledgement of an unresolved incident (cheap: the tick
    /// asks every second).
    pub fn next_ack_expiry(&self) -> Result<Option<UnixMillis>, StoreError> {
        self.tracked("next_ack_expiry", || {
            let conn = self.reader();
            let next: Option<UnixMillis> = conn
                .prepare_cached(
                    "SELECT min(ack_expires_at) FROM incidents INDEXED BY incidents_resolved_at \
                     WHERE resolved_at IS NULL AND acknowledged_at IS NOT NULL",
                )?
                .query_row(params![], |r| r.get(0))?;
            Ok(next)
        })
    }

    /// Every unresolved incident as the escalation tick sees it, oldest first.
    pub fn escalation_rows(&self) -> Result<Vec<EscalationRow>, StoreError> {
        self.tracked("escalation_rows", || {
            let conn = self.reader();
            let mut stmt = conn.prepare_cached(
                "SELECT i.id, i.severity, \
                 (SELECT json_group_array(team ORDER BY pos) FROM incident_teams \
                  WHERE incident_id = i.id), \
                 i.acknowledged_at, i.ack_expires_at, coalesce(i.escalation_base_at, i.started_at), \
                 (SELECT json_group_array(json_array(team, step)) FROM escalations \
                  WHERE incident_id = i.id) \
                 FROM incidents i INDEXED BY incidents_resolved_at \
                 WHERE i.resolved_at IS NULL ORDER BY i.id",
            )?;
            let rows = stmt.query_map(params![], |r| {
                let fired: Vec<(String, usize)> = json_col(r, 6)?.unwrap_or_default();
                Ok(EscalationRow {
                    id: r.get(0)?,
                    severity: from_text(r, 1)?,
                    teams: json_col(r, 2)?.unwrap_or_default(),
                    acknowledged: r.get::<_, Option<i64>>(3)?.is_some(),
                    ack_expires_at: r.get(4)?,
                    base_at: r.get(5)?,
                    fired,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Fires escalation step `step` of `team` for an incident: records it, appends an
    /// `Escalated` event and one outbox row per target, in one transaction. Returns the event,
    /// or None when the step had already fired or the incident is meanwhile acknowledged or
    /// resolved (an acknowledgement racing the tick wins).
    pub fn record_escalation(
        &self,
        id: i64,
        team: &str,
        step: usize,
        ev: &NewEvent,
        notify: &[String],
    ) -> Result<Option<IncidentEvent>, StoreError> {
        self.tracked("record_escalation", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            let open: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM incidents WHERE id = ?1 AND resolved_at IS NULL \
                     AND acknowledged_at IS NULL",
                )?
                .query_row([id], |r| r.get(0))
                .optional()?;
            if open.is_none() {
                return Ok(None);
            }
            let n = tx
                .prepare_cached(
                    "INSERT INTO escalations (incident_id, team, step, fired_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?
                .execute(params![id, team, step as i64, ev.at])?;
            if n == 0 {
                return Ok(None);
            }
            let event_id = insert_event(&tx, id, ev, notify)?;
            tx.prepare_cached(
                "UPDATE escalations SET event_id = ?4 WHERE incident_id = ?1 AND team = ?2 AND step = ?3",
            )?
            .execute(params![id, team, step as i64, event_id])?;
            let event = load_event(&tx, event_id)?;
            tx.commit()?;
            Ok(Some(event))
        })
    }

    /// Moves an undelivered row to `next_attempt_at` without counting an attempt (quiet hours);
    /// `note` is shown as its `last_error`.
    pub fn outbox_defer(
        &self,
        id: i64,
        next_attempt_at: UnixMillis,
        note: &str,
    ) -> Result<(), StoreError> {
        self.tracked("outbox_defer", || {
            let conn = self.writer();
            conn.prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3 \
                 WHERE id = ?1 AND delivered_at IS NULL",
            )?
            .execute(params![id, next_attempt_at, note])?;
            Ok(())
        })
    }
}

/// Withdraws the acknowledgement of an unresolved incident inside `tx`; None when it had none.
fn unack_in(
    tx: &Conn,
    id: i64,
    at: UnixMillis,
    by: &str,
    reason: UnackReason,
) -> Result<Option<IncidentEvent>, StoreError> {
    let row: Option<(Option<i64>, Option<String>, Option<i64>)> = tx
        .prepare_cached(
            "SELECT acknowledged_at, acknowledged_by, ack_expires_at FROM incidents \
             WHERE id = ?1 AND resolved_at IS NULL",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((Some(acked_at), holder, expires)) = row else {
        return Ok(None);
    };
    // The acknowledged interval does not count on the escalation clock; a lapsed one ended at
    // its expiry (even if the tick that notices comes later, e.g. after a restart).
    let ended = match reason {
        UnackReason::Expired => expires.unwrap_or(at).min(at),
        UnackReason::Withdrawn => at,
    };
    let paused = (ended - acked_at).max(0);
    tx.prepare_cached(
        "UPDATE incidents SET acknowledged_at = NULL, acknowledged_by = NULL, \
         ack_expires_at = NULL, \
         escalation_base_at = coalesce(escalation_base_at, started_at) + ?2 WHERE id = ?1",
    )?
    .execute(params![id, paused])?;
    let holder = holder.unwrap_or_default();
    let (message, reason_s) = match reason {
        UnackReason::Withdrawn => (
            format!("Bỏ tiếp nhận: {by} (tiếp nhận của {holder}) / acknowledgement of {holder} withdrawn by {by}"),
            "withdrawn",
        ),
        UnackReason::Expired => (
            format!(
                "Hết hạn tiếp nhận của {holder} lúc {} — tiếp tục báo cáo vượt cấp / acknowledgement of {holder} expired, escalation resumes",
                format_local(expires.unwrap_or(at))
            ),
            "expired",
        ),
    };
    let ev = NewEvent {
        at,
        kind: EventKind::Unacknowledged,
        check: None,
        state: None,
        message,
        evidence: Some(json!({
            "by": by,
            "reason": reason_s,
            "acknowledged_by": holder,
            "acknowledged_at": format_rfc3339(acked_at),
            "expires_at": expires.map(format_rfc3339),
        })),
    };
    let event_id = insert_event(tx, id, &ev, &[])?;
    Ok(Some(load_event(tx, event_id)?))
}

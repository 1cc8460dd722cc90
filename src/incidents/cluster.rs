//! Active/standby on a shared (PostgreSQL) store: a leader lease row and a member list
//! (migration 6). Every instance probes and serves the API; only the lease holder runs the
//! incident engine's writes and notification delivery.
//!
//! - `leader_lease` has one row (`id = 1`): `holder`, `expires_at` (database clock, ms) and
//!   `epoch` (+1 at every change of holder). [`Store::lease_round`] renews it when we hold it or
//!   takes it when it expired, in one statement: two instances can never both hold it.
//! - Leader-only writes commit only while the row names us and has not expired (checked with
//!   `FOR SHARE` in the same transaction, see `db::Tx::commit`): a deposed leader's late write
//!   fails instead of landing after a takeover.
//! - Locally, an instance counts itself leader until `round start + TTL - MARGIN` (monotonic
//!   clock): when the database becomes unreachable it stops leader work before the lease can
//!   expire and be taken over.
//!
//! On SQLite (one instance) the store is always its own leader.

use std::time::{Duration, Instant};

use super::db::{params, PG_NOW_MS};
use super::store::{Store, StoreError};
use super::UnixMillis;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(12);
/// How often the lease is renewed (and members heartbeat).
pub const RENEW_EVERY: Duration = Duration::from_secs(3);
/// An instance stops leader work this long before its lease could expire.
const MARGIN: Duration = Duration::from_secs(3);

/// After a failed lease round, how long this instance leaves an expired lease to its holder
/// before taking it over (two lease rounds).
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(7);

/// What one lease round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRound {
    /// We hold the lease now.
    pub leader: bool,
    /// We held it at our previous successful round with the same epoch.
    pub continued: bool,
}

/// Kept across lease rounds.
#[derive(Debug, Default)]
pub struct LeaseMemo {
    /// The epoch of our lease at the last successful round; None while another holds it.
    epoch: Option<i64>,
    /// Set by a failed round: an expired lease is not taken before then.
    hold_off_until: Option<Instant>,
}

/// One instance as `GET /api/v1/cluster` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Member {
    pub instance: String,
    /// `leader` or `standby`.
    pub role: &'static str,
    pub started_at: UnixMillis,
    pub heartbeat_at: UnixMillis,
    /// Milliseconds since its last heartbeat (database clock).
    pub heartbeat_age_ms: i64,
    pub api: Option<String>,
}

impl Store {
    /// Takes part in leader election as `instance` (PostgreSQL only; call once, before the
    /// first [`Store::lease_round`]).
    pub fn join_cluster(&self, instance: &str) {
        let _ = self.fence.set(instance.to_string());
    }

    /// This instance's name in the cluster, if it joined one.
    pub fn instance(&self) -> Option<&str> {
        self.fence.get().map(String::as_str)
    }

    fn lease_conn(&self) -> std::sync::MutexGuard<'_, super::db::Conn> {
        match &self.lease_conn {
            Some(c) => c.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            None => self.writer(),
        }
    }

    /// Whether this instance may run leader work now. SQLite: always.
    pub fn is_leader(&self) -> bool {
        if self.fence.get().is_none() {
            return !self.is_shared();
        }
        self.leader_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t)
    }

    /// Renews or takes the lease and writes our heartbeat. Returns whether we lead. An error
    /// leaves the local deadline as it was (it runs out by itself).
    pub fn lease_round(&self, api: Option<&str>) -> Result<bool, StoreError> {
        self.lease_round_detail(api).map(|r| r.leader)
    }

    /// [`Store::lease_round`], telling also whether this lead continues the previous one
    /// (same `epoch`: nobody else held the lease in between, so writes queued meanwhile may
    /// still be applied).
    pub fn lease_round_detail(&self, api: Option<&str>) -> Result<LeaseRound, StoreError> {
        let Some(me) = self.fence.get() else {
            return Ok(LeaseRound {
                leader: true,
                continued: true,
            });
        };
        let started = Instant::now();
        let ttl = LEASE_TTL.as_millis() as i64;
        // Just back from an outage: the previous holder gets TAKEOVER_GRACE to renew first,
        // so its queued writes are applied rather than superseded.
        let may_take = self.memo().hold_off_until.is_none_or(|t| started >= t);
        let result = self.tracked("lease", || {
            let conn = self.lease_conn();
            let tx = conn.write_tx()?;
            let held = tx
                .prepare_cached(&format!(
                    "INSERT INTO leader_lease (id, holder, expires_at, epoch) \
                     VALUES (1, ?1, {PG_NOW_MS} + ?2, 1) \
                     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, \
                       expires_at = excluded.expires_at, \
                       epoch = leader_lease.epoch + \
                         CASE WHEN leader_lease.holder = excluded.holder THEN 0 ELSE 1 END \
                     WHERE leader_lease.holder = excluded.holder \
                        OR (CAST(?3 AS BIGINT) = 1 AND leader_lease.expires_at < {PG_NOW_MS}) \
                     RETURNING epoch"
                ))?
                .query_row(params![me, ttl, may_take as i64], |r| r.get::<_, i64>(0))
                .map(Some)
                .or_else(|e| match e {
                    super::db::DbError::NoRows => Ok(None),
                    e => Err(e),
                })?;
            tx.prepare_cached(&format!(
                "INSERT INTO cluster_members (instance, started_at, heartbeat_at, leader, api) \
                 VALUES (?1, {PG_NOW_MS}, {PG_NOW_MS}, ?2, ?3) \
                 ON CONFLICT (instance) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, \
                   leader = excluded.leader, api = excluded.api"
            ))?
            .execute(params![me, held.is_some() as i64, api])?;
            tx.commit()?;
            Ok(held)
        });
        let held = match result {
            Ok(h) => h,
            Err(e) => {
                self.memo().hold_off_until = Some(Instant::now() + TAKEOVER_GRACE);
                return Err(e);
            }
        };
        let continued = {
            let mut memo = self.memo();
            let continued = held.is_some() && memo.epoch == held;
            memo.epoch = held;
            continued
        };
        let leader = held.is_some();
        let mut until = self
            .leader_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *until = leader.then(|| started + LEASE_TTL - MARGIN);
        Ok(LeaseRound { leader, continued })
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, LeaseMemo> {
        self.lease_memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives the lease up (clean shutdown): the standby takes over at its next round.
    pub fn lease_release(&self) -> Result<(), StoreError> {
        let Some(me) = self.fence.get() else {
            return Ok(());
        };
        *self
            .leader_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let conn = self.lease_conn();
        conn.execute(
            "UPDATE leader_lease SET expires_at = 0 WHERE id = 1 AND holder = ?1",
            [me.as_str()],
        )?;
        Ok(())
    }

    /// Ends whatever lease is held now (tests: an instance cut off past its lease).
    #[doc(hidden)]
    pub fn force_lease_expiry_for_tests(&self) -> Result<(), StoreError> {
        self.lease_conn()
            .execute("UPDATE leader_lease SET expires_at = 0", params![])?;
        Ok(())
    }

    /// The instances that ever joined, with their role now (a lease that expired has no
    /// leader), newest heartbeat first.
    pub fn cluster(&self) -> Result<Vec<Member>, StoreError> {
        if self.fence.get().is_none() && !self.is_shared() {
            return Ok(Vec::new());
        }
        self.tracked("cluster", || {
            let conn = self.reader();
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT m.instance, m.started_at, m.heartbeat_at, {PG_NOW_MS} - m.heartbeat_at, \
                     m.api, (SELECT count(*) FROM leader_lease l WHERE l.id = 1 \
                       AND l.holder = m.instance AND l.expires_at > {PG_NOW_MS}) \
                     FROM cluster_members m ORDER BY m.heartbeat_at DESC, m.instance"
                ))?
                .query_map(params![], |r| {
                    Ok(Member {
                        instance: r.get(0)?,
                        started_at: r.get(1)?,
                        heartbeat_at: r.get(2)?,
                        heartbeat_age_ms: r.get(3)?,
                        api: r.get(4)?,
                        role: if r.get::<_, i64>(5)? > 0 {
                            "leader"
                        } else {
                            "standby"
                        },
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }
}

//! Every instance of a shared store is a vantage point (migration 7): each one upserts the
//! latest result of each of its checks into `check_states` every few seconds; the leader reads
//! the other instances' fresh rows and its correlation follows the multi-vantage quorum (a
//! check counts as down only when a strict majority of the vantage points that report it see
//! it down, the rule of the Prometheus quorum recordings). The leader also shares its site
//! statuses (`site_states`), which a standby's status page shows.

use std::collections::HashMap;

use super::db::{params, PG_NOW_MS};
use super::store::{Store, StoreError};
use super::UnixMillis;
use crate::health::SiteStatus;

/// An instance votes while its member heartbeat (every 3 s, database clock) is this recent.
pub const FRESH_FOR_MS: i64 = 30_000;
/// A row older than this is not counted (its instance stopped probing the check). Rows are
/// written when a check ran since the last push, so this is well above the longest interval.
pub const ROW_FRESH_FOR_MS: i64 = 600_000;

/// One check as one instance saw it last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckView {
    pub check: String,
    pub up: bool,
    pub at: UnixMillis,
}

/// Other vantage points' votes on one check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Votes {
    pub up: u32,
    pub down: u32,
}

impl Votes {
    /// Whether a check this instance sees down is down by strict majority of every vantage
    /// point that reports it (this one included): 1 of 1, 2 of 2, 2 of 3.
    pub fn down_with_own(&self) -> bool {
        let down = 1 + self.down;
        let total = 1 + self.up + self.down;
        2 * down > total
    }
}

impl Store {
    /// Upserts `instance`'s latest results (one transaction).
    pub fn publish_check_views(
        &self,
        instance: &str,
        rows: &[CheckView],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.tracked("check_states_write", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO check_states (instance, check_key, up, at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (instance, check_key) DO UPDATE SET up = excluded.up, at = excluded.at",
                )?;
                for r in rows {
                    st.execute(params![instance, r.check, r.up as i64, r.at])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The other instances' rows newer than `since`, of instances whose heartbeat is at most
    /// `heartbeat_within_ms` old (database clock), by instance. PostgreSQL only.
    pub fn check_views(
        &self,
        except: &str,
        since: UnixMillis,
        heartbeat_within_ms: i64,
    ) -> Result<HashMap<String, Vec<CheckView>>, StoreError> {
        self.tracked("check_states_read", || {
            let conn = self.reader();
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT s.instance, s.check_key, s.up, s.at FROM check_states s \
                     JOIN cluster_members m ON m.instance = s.instance \
                     WHERE s.instance <> ?1 AND s.at > ?2 AND m.heartbeat_at > {PG_NOW_MS} - ?3"
                ))?
                .query_map(params![except, since, heartbeat_within_ms], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        CheckView {
                            check: r.get(1)?,
                            up: r.get::<_, i64>(2)? != 0,
                            at: r.get(3)?,
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut by: HashMap<String, Vec<CheckView>> = HashMap::new();
            for (i, v) in rows {
                by.entry(i).or_default().push(v);
            }
            Ok(by)
        })
    }
}

impl Store {
    /// Upserts the site statuses `instance` (the leader) computed (one transaction).
    pub fn publish_site_states(
        &self,
        instance: &str,
        rows: &[(String, SiteStatus)],
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tracked("site_states_write", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO site_states (instance, site, status, at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (instance, site) DO UPDATE SET status = excluded.status, at = excluded.at",
                )?;
                for (site, status) in rows {
                    st.execute(params![instance, site, status.as_str(), at])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// The current lease holder's site statuses written after `since` (none when we hold the
    /// lease or nobody does).
    pub fn leader_site_states(
        &self,
        me: &str,
        since: UnixMillis,
    ) -> Result<Vec<(String, SiteStatus)>, StoreError> {
        self.tracked("site_states_read", || {
            let conn = self.reader();
            let rows = conn
                .prepare_cached(
                    "SELECT s.site, s.status FROM site_states s \
                     JOIN leader_lease l ON l.id = 1 AND l.holder = s.instance \
                     WHERE s.instance <> ?1 AND s.at > ?2",
                )?
                .query_map(params![me, since], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(site, st)| Some((site, parse_status(&st)?)))
                .collect())
        })
    }
}

fn parse_status(s: &str) -> Option<SiteStatus> {
    Some(match s {
        "up" => SiteStatus::Up,
        "degraded" => SiteStatus::Degraded,
        "down" => SiteStatus::Down,
        "maintenance" => SiteStatus::Maintenance,
        "unknown" => SiteStatus::Unknown,
        _ => return None,
    })
}

/// Votes per check key from the other instances' views.
pub fn tally(views: &HashMap<String, Vec<CheckView>>) -> HashMap<String, Votes> {
    let mut out: HashMap<String, Votes> = HashMap::new();
    for v in views.values().flatten() {
        let e = out.entry(v.check.clone()).or_default();
        if v.up {
            e.up += 1;
        } else {
            e.down += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Votes;

    #[test]
    fn strict_majority_of_vantage_points() {
        assert!(Votes { up: 0, down: 0 }.down_with_own(), "1 of 1");
        assert!(Votes { up: 0, down: 1 }.down_with_own(), "2 of 2");
        assert!(!Votes { up: 1, down: 0 }.down_with_own(), "1 of 2");
        assert!(Votes { up: 1, down: 1 }.down_with_own(), "2 of 3");
        assert!(!Votes { up: 2, down: 0 }.down_with_own(), "1 of 3");
    }
}

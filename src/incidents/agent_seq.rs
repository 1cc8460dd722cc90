//! Durable sequence bookkeeping of ward agents (migration 4): the last result sequence applied
//! per agent, so a batch resent after a lost answer or a central restart is applied once.

use super::db::{params, OptionalExtension};

use super::store::{Store, StoreError};
use super::UnixMillis;

/// What the store knows of one agent's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AgentSeq {
    pub last_seq: u64,
    pub applied: u64,
    pub missing: u64,
}

impl Store {
    /// The sequence state of `site` (zeros before its first batch).
    pub fn agent_seq(&self, site: &str) -> Result<AgentSeq, StoreError> {
        let conn = self.reader();
        let row = conn
            .prepare_cached("SELECT last_seq, applied, missing FROM agent_seq WHERE site = ?1")?
            .query_row([site], |r| {
                Ok(AgentSeq {
                    last_seq: r.get::<_, i64>(0)? as u64,
                    applied: r.get::<_, i64>(1)? as u64,
                    missing: r.get::<_, i64>(2)? as u64,
                })
            })
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Records that the results numbered `seqs` (ascending, all above the stored `last_seq`;
    /// the caller filtered the rest) are applied: one transaction, so a crash leaves either
    /// the old or the new state. `missing` = sequence numbers skipped (gaps).
    pub fn agent_advance(
        &self,
        site: &str,
        last_seq: u64,
        applied: u64,
        missing: u64,
        now: UnixMillis,
    ) -> Result<AgentSeq, StoreError> {
        self.tracked("agent_advance", || {
            let conn = self.writer();
            let tx = conn.write_tx()?;
            tx.prepare_cached(
                "INSERT INTO agent_seq (site, last_seq, applied, missing, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(site) DO UPDATE SET \
                   last_seq = max(agent_seq.last_seq, excluded.last_seq), \
                   applied = agent_seq.applied + excluded.applied, \
                   missing = agent_seq.missing + excluded.missing, \
                   updated_at = excluded.updated_at",
            )?
            .execute(params![
                site,
                last_seq as i64,
                applied as i64,
                missing as i64,
                now
            ])?;
            let out = tx
                .prepare_cached("SELECT last_seq, applied, missing FROM agent_seq WHERE site = ?1")?
                .query_row([site], |r| {
                    Ok(AgentSeq {
                        last_seq: r.get::<_, i64>(0)? as u64,
                        applied: r.get::<_, i64>(1)? as u64,
                        missing: r.get::<_, i64>(2)? as u64,
                    })
                })?;
            tx.commit()?;
            Ok(out)
        })
    }
}

//! Availability history: every run result is folded into a per-check, per-minute rollup in
//! memory (by the engine, the single writer) and flushed to the incident database once a minute
//! in one transaction. Hourly rollups are derived from the minutes for long retention (see
//! [`crate::incidents::history`] for the tables and [`crate::readiness`] for the arithmetic).
//!
//! What one minute of one check holds:
//!
//! - `attempts` / `successes`: runs outside maintenance, and how many passed;
//! - `maint`: runs inside a maintenance window (kept apart, so maintenance never counts
//!   against availability);
//! - `blind`: runs while the prober itself was isolated (its prober incident open): what it saw
//!   then says nothing about the sites, so they count neither for nor against them;
//! - latency of passing runs (link rounds: the average RTT; HTTP/TCP/DNS: the whole run):
//!   count, sum, max and a log-scale histogram (for quantiles over any window);
//! - echo packets sent / lost (link rounds), for the loss ratio.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::CheckId;
use crate::probe::{Details, Outcome};

/// Histogram buckets per octave (a bucket is ~9 % wide).
const PER_OCTAVE: f64 = 8.0;
/// Bucket of 1 ms.
const ONE_MS: f64 = 64.0;
/// Number of buckets: from ~4 µs to ~4 h.
pub const BUCKETS: usize = 256;

/// The histogram bucket of a latency in milliseconds: the smallest `b` whose upper bound
/// `2^((b - 64) / 8)` ms is at least `ms`.
pub fn bucket_of(ms: f64) -> u8 {
    // (Also NaN.)
    if ms.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return 0;
    }
    let b = (ms.log2() * PER_OCTAVE).ceil() + ONE_MS;
    b.clamp(0.0, (BUCKETS - 1) as f64) as u8
}

/// Upper bound of a bucket, ms.
pub fn bucket_upper(b: u8) -> f64 {
    ((b as f64 - ONE_MS) / PER_OCTAVE).exp2()
}

/// The value a bucket stands for: the geometric middle of its bounds, ms.
pub fn bucket_value(b: u8) -> f64 {
    ((b as f64 - ONE_MS - 0.5) / PER_OCTAVE).exp2()
}

/// A sparse latency histogram: (bucket, count) pairs sorted by bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseHist(pub Vec<(u8, u32)>);

impl SparseHist {
    pub fn add(&mut self, bucket: u8, n: u32) {
        match self.0.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (bucket, n)),
        }
    }

    pub fn merge(&mut self, other: &SparseHist) {
        for &(b, n) in &other.0 {
            self.add(b, n);
        }
    }

    /// Encoding stored in SQLite: per pair, the bucket byte then the count as a LEB128 varint.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 2);
        for &(b, mut n) in &self.0 {
            out.push(b);
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        out
    }

    /// Decodes [`SparseHist::encode`]'s bytes, calling `f(bucket, count)`; stops at a truncated
    /// pair.
    pub fn decode_each(bytes: &[u8], mut f: impl FnMut(u8, u32)) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            let mut n: u32 = 0;
            let mut shift = 0;
            loop {
                let Some(&byte) = bytes.get(i) else { return };
                i += 1;
                n |= ((byte & 0x7f) as u32).checked_shl(shift).unwrap_or(0);
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            f(b, n);
        }
    }

    pub fn decode(bytes: &[u8]) -> SparseHist {
        let mut h = SparseHist::default();
        Self::decode_each(bytes, |b, n| h.add(b, n));
        h
    }
}

/// A dense histogram, for summing many rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseHist(pub Box<[u64; BUCKETS]>);

impl Default for DenseHist {
    fn default() -> Self {
        DenseHist(Box::new([0; BUCKETS]))
    }
}

impl DenseHist {
    pub fn add_encoded(&mut self, bytes: &[u8]) {
        SparseHist::decode_each(bytes, |b, n| self.0[b as usize] += n as u64);
    }

    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0..1), ms; None when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The smallest value with at least q of the samples at or below it.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, &n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(b as u8));
            }
        }
        None
    }

    pub fn to_sparse(&self) -> SparseHist {
        SparseHist(
            self.0
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(b, &n)| (b as u8, n.min(u32::MAX as u64) as u32))
                .collect(),
        )
    }
}

/// One minute of one check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinuteStats {
    /// Runs outside maintenance.
    pub attempts: u32,
    pub successes: u32,
    /// Runs inside a maintenance window.
    pub maint: u32,
    /// Latency samples (passing runs outside maintenance).
    pub lat_n: u32,
    /// Sum and max of the latency samples, ms.
    pub lat_sum: f64,
    pub lat_max: f64,
    /// Echo packets sent and lost (passing link rounds outside maintenance).
    pub sent: u32,
    pub lost: u32,
    pub hist: SparseHist,
    /// Runs outside maintenance while the prober itself was isolated ("monitor blind").
    pub blind: u32,
}

impl MinuteStats {
    /// Folds one run in.
    pub fn observe(&mut self, outcome: &Outcome, in_maintenance: bool, blind: bool) {
        if in_maintenance {
            self.maint += 1;
            return;
        }
        if blind {
            self.blind += 1;
            return;
        }
        self.attempts += 1;
        if outcome.success {
            // Loss of the rounds that passed: a failed round is unavailability already.
            if let Details::Icmp(d) = &outcome.details {
                self.sent += d.sent;
                self.lost += d.sent.saturating_sub(d.received);
            }
            self.successes += 1;
            if let Some(ms) = latency_ms(outcome) {
                self.lat_n += 1;
                self.lat_sum += ms;
                self.lat_max = self.lat_max.max(ms);
                self.hist.add(bucket_of(ms), 1);
            }
        }
    }

    /// Adds another partial minute of the same check (a flush that met an earlier row).
    pub fn merge(&mut self, o: &MinuteStats) {
        self.attempts += o.attempts;
        self.successes += o.successes;
        self.maint += o.maint;
        self.blind += o.blind;
        self.lat_n += o.lat_n;
        self.lat_sum += o.lat_sum;
        self.lat_max = self.lat_max.max(o.lat_max);
        self.sent += o.sent;
        self.lost += o.lost;
        self.hist.merge(&o.hist);
    }
}

/// The latency a run stands for, ms: a link round's average RTT, otherwise the whole run.
pub fn latency_ms(outcome: &Outcome) -> Option<f64> {
    match &outcome.details {
        Details::Icmp(d) => d.rtt_avg.map(|s| s * 1000.0),
        _ => Some(outcome.duration.as_secs_f64() * 1000.0),
    }
}

/// A minute row ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteRow {
    /// Check key, `site/<slug>/<name>` or `service/<slug>/<name>`.
    pub check: String,
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub stats: MinuteStats,
}

/// Minutes since the Unix epoch of a time.
pub fn minute_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_millis() / 60_000) as i64)
}

/// The in-memory accumulator the engine feeds. Cheap to call from the result path: one short
/// lock and a hash-map update per run.
#[derive(Default)]
pub struct Recorder {
    open: Mutex<HashMap<(CheckId, i64), MinuteStats>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one run, finished at `at`, into its minute.
    pub fn record(
        &self,
        id: &CheckId,
        outcome: &Outcome,
        at: SystemTime,
        in_maintenance: bool,
        blind: bool,
    ) {
        let minute = minute_of(at);
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        g.entry((id.clone(), minute))
            .or_default()
            .observe(outcome, in_maintenance, blind);
    }

    /// Takes the minutes that ended before `now` (all of them when `everything`, at
    /// shutdown), oldest first.
    pub fn take(&self, now: SystemTime, everything: bool) -> Vec<MinuteRow> {
        let current = minute_of(now);
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<(CheckId, i64)> = g
            .keys()
            .filter(|(_, m)| everything || *m < current)
            .cloned()
            .collect();
        let mut rows: Vec<MinuteRow> = keys
            .into_iter()
            .filter_map(|k| {
                let stats = g.remove(&k)?;
                Some(MinuteRow {
                    check: k.0.key(),
                    minute: k.1,
                    stats,
                })
            })
            .collect();
        drop(g);
        rows.sort_by(|a, b| (a.minute, &a.check).cmp(&(b.minute, &b.check)));
        rows
    }

    /// Puts rows back after a failed write, so the next flush retries them.
    pub fn put_back(&self, rows: Vec<MinuteRow>, inv: &crate::config::Inventory) {
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            if let Some(def) = inv.checks.iter().find(|c| c.id.key() == r.check) {
                g.entry((def.id.clone(), r.minute))
                    .or_default()
                    .merge(&r.stats);
            }
        }
    }

    /// Minutes waiting to be flushed.
    pub fn pending(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::icmp::IcmpDetails;
    use std::time::Duration;

    #[test]
    fn buckets_bound_their_values() {
        for ms in [0.01, 0.5, 1.0, 1.05, 7.3, 60.0, 999.0, 2000.0, 30_000.0] {
            let b = bucket_of(ms);
            assert!(bucket_upper(b) >= ms * (1.0 - 1e-9), "{ms}");
            assert!(bucket_upper(b - 1) < ms, "{ms}");
            let v = bucket_value(b);
            assert!((v / ms - 1.0).abs() < 0.1, "{ms} → {v}");
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(1e12), 255);
    }

    #[test]
    fn sparse_round_trip_and_quantile() {
        let mut h = SparseHist::default();
        h.add(10, 1);
        h.add(200, 300);
        h.add(10, 2);
        h.add(64, 70_000);
        assert_eq!(h.0, vec![(10, 3), (64, 70_000), (200, 300)]);
        let bytes = h.encode();
        assert_eq!(SparseHist::decode(&bytes), h);
        let mut d = DenseHist::default();
        d.add_encoded(&bytes);
        d.add_encoded(&bytes);
        assert_eq!(d.count(), 2 * 70_303);
        assert_eq!(d.to_sparse().0[1], (64, 140_000));
        // 99 % of the samples are at 1 ms.
        assert!((d.quantile(0.95).unwrap() - bucket_value(64)).abs() < 1e-9);
        assert_eq!(d.quantile(1.0), Some(bucket_value(200)));
        assert_eq!(DenseHist::default().quantile(0.95), None);
        // Truncated input stops cleanly.
        SparseHist::decode_each(&[5, 0x80], |_, _| panic!("no pair"));
    }

    #[test]
    fn minutes_split_maintenance_and_close_on_time() {
        let r = Recorder::new();
        let id = CheckId::site("phuong-a", "link");
        let t0 = UNIX_EPOCH + Duration::from_secs(60 * 1000 + 5);
        let icmp = |received: u32, rtt: f64| Outcome {
            success: received > 0,
            duration: Duration::from_secs(1),
            failure: None,
            details: Details::Icmp(IcmpDetails {
                sent: 5,
                received,
                rtt_avg: (received > 0).then_some(rtt),
                ..Default::default()
            }),
        };
        r.record(&id, &icmp(5, 0.010), t0, false, false);
        r.record(
            &id,
            &icmp(4, 0.030),
            t0 + Duration::from_secs(10),
            false,
            false,
        );
        r.record(
            &id,
            &icmp(0, 0.0),
            t0 + Duration::from_secs(20),
            false,
            false,
        );
        r.record(
            &id,
            &icmp(5, 0.010),
            t0 + Duration::from_secs(30),
            true,
            false,
        );
        // While the prober is isolated: kept apart, no attempt, no loss, no latency.
        r.record(
            &id,
            &icmp(0, 0.0),
            t0 + Duration::from_secs(40),
            false,
            true,
        );
        r.record(
            &id,
            &icmp(5, 0.010),
            t0 + Duration::from_secs(60),
            false,
            false,
        );
        assert!(r.take(t0 + Duration::from_secs(1), false).is_empty());
        let rows = r.take(t0 + Duration::from_secs(60), false);
        assert_eq!(rows.len(), 1);
        let s = &rows[0].stats;
        assert_eq!(rows[0].minute, 1000);
        assert_eq!(rows[0].check, "site/phuong-a/link");
        assert_eq!((s.attempts, s.successes, s.maint, s.blind), (3, 2, 1, 1));
        assert_eq!((s.sent, s.lost), (10, 1), "loss of passing rounds only");
        assert_eq!(s.lat_n, 2);
        assert!((s.lat_sum - 40.0).abs() < 1e-9 && (s.lat_max - 30.0).abs() < 1e-9);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.take(t0, true).len(), 1);
        assert_eq!(r.pending(), 0);
    }
}

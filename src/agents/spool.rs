//! The agent's disk spool: every batch of results is a file (`queue/<first>-<last>.json`,
//! written to a temporary name and renamed) until the central has acknowledged it, so results
//! survive both a central outage and an agent restart, and are replayed in sequence order.
//! Bounded by age and size: the oldest files go first, counted as dropped (the central sees
//! the gap in the sequence numbers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::wire::WireResult;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spool {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_seq: u64,
    dropped: u64,
}

/// One spooled batch on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub first: u64,
    pub last: u64,
}

impl Entry {
    fn name(self) -> String {
        format!("{:020}-{:020}.json", self.first, self.last)
    }
    fn count(self) -> u64 {
        self.last + 1 - self.first
    }
}

pub struct Spool {
    dir: PathBuf,
    queue: PathBuf,
    state: State,
    /// Spooled batches by first sequence, with their size in bytes and when written.
    entries: BTreeMap<Entry, (u64, SystemTime)>,
    max_age: Duration,
    max_bytes: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`; the next sequence continues after everything
    /// ever spooled there.
    pub fn open(dir: &Path, max_age: Duration, max_bytes: u64) -> Result<Spool, SpoolError> {
        let queue = dir.join("queue");
        std::fs::create_dir_all(&queue).map_err(io(&queue))?;
        let state_path = dir.join("state.json");
        let mut state: State = match std::fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| SpoolError::Json {
                path: state_path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(&state_path)(e)),
        };
        let mut entries = BTreeMap::new();
        for item in std::fs::read_dir(&queue).map_err(io(&queue))? {
            let item = item.map_err(io(&queue))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(item.path());
                continue;
            }
            let Some((a, b)) = name.strip_suffix(".json").and_then(|n| n.split_once('-')) else {
                continue;
            };
            let (Ok(first), Ok(last)) = (a.parse::<u64>(), b.parse::<u64>()) else {
                continue;
            };
            let meta = item.metadata().map_err(io(&queue))?;
            let written = meta.modified().unwrap_or_else(|_| SystemTime::now());
            entries.insert(Entry { first, last }, (meta.len(), written));
        }
        let after_files = entries.keys().map(|e| e.last + 1).max().unwrap_or(1);
        state.next_seq = state.next_seq.max(after_files).max(1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            queue,
            state,
            entries,
            max_age,
            max_bytes,
        })
    }

    /// The sequence the next result gets.
    pub fn next_seq(&self) -> u64 {
        self.state.next_seq
    }

    /// Results waiting to be acknowledged.
    pub fn spooled(&self) -> u64 {
        self.entries.keys().map(|e| e.count()).sum()
    }

    pub fn dropped(&self) -> u64 {
        self.state.dropped
    }

    pub fn bytes(&self) -> u64 {
        self.entries.values().map(|(b, _)| b).sum()
    }

    fn save_state(&self) -> Result<(), SpoolError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let body = serde_json::to_vec(&self.state).expect("plain data");
        std::fs::write(&tmp, body).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Numbers `results` (in order) and writes them as one batch file; then enforces the bounds.
    pub fn append(&mut self, mut results: Vec<WireResult>) -> Result<(), SpoolError> {
        if results.is_empty() {
            return Ok(());
        }
        let first = self.state.next_seq;
        for (i, r) in results.iter_mut().enumerate() {
            r.seq = first + i as u64;
        }
        let entry = Entry {
            first,
            last: first + results.len() as u64 - 1,
        };
        let body = serde_json::to_vec(&results).expect("plain data");
        let path = self.queue.join(entry.name());
        let tmp = self.queue.join(format!("{}.tmp", entry.name()));
        std::fs::write(&tmp, &body).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        self.entries
            .insert(entry, (body.len() as u64, SystemTime::now()));
        self.state.next_seq = entry.last + 1;
        self.enforce_bounds(SystemTime::now())?;
        self.save_state()
    }

    /// Drops the oldest batches while the spool is too old or too large.
    pub fn enforce_bounds(&mut self, now: SystemTime) -> Result<(), SpoolError> {
        let mut changed = false;
        while let Some((&oldest, &(_, written))) = self.entries.iter().next() {
            let too_old = now.duration_since(written).is_ok_and(|d| d > self.max_age);
            let too_big = self.bytes() > self.max_bytes && self.entries.len() > 1;
            if !(too_old || too_big) {
                break;
            }
            tracing::warn!(
                first = oldest.first,
                last = oldest.last,
                reason = if too_old {
                    "older than max_age"
                } else {
                    "spool over max_bytes"
                },
                "spool full: dropping the oldest results"
            );
            self.remove_file(oldest)?;
            self.state.dropped += oldest.count();
            changed = true;
        }
        if changed {
            self.save_state()?;
        }
        Ok(())
    }

    fn remove_file(&mut self, e: Entry) -> Result<(), SpoolError> {
        self.entries.remove(&e);
        let path = self.queue.join(e.name());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io(&path)(err)),
        }
    }

    /// The oldest batch and its results.
    pub fn oldest(&self) -> Result<Option<(Entry, Vec<WireResult>)>, SpoolError> {
        let Some(&e) = self.entries.keys().next() else {
            return Ok(None);
        };
        let path = self.queue.join(e.name());
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let results =
            serde_json::from_slice(&bytes).map_err(|source| SpoolError::Json { path, source })?;
        Ok(Some((e, results)))
    }

    /// The central acknowledged everything up to `last_seq`: those files go.
    pub fn acknowledge(&mut self, last_seq: u64) -> Result<(), SpoolError> {
        let done: Vec<Entry> = self
            .entries
            .keys()
            .copied()
            .filter(|e| e.last <= last_seq)
            .collect();
        for e in done {
            self.remove_file(e)?;
        }
        Ok(())
    }

    /// The central has applied sequences up to `last_seq` (e.g. this spool directory was
    /// wiped): continue above it, or every new result would be taken for a resend.
    pub fn continue_after(&mut self, last_seq: u64) -> Result<(), SpoolError> {
        if last_seq >= self.state.next_seq {
            tracing::warn!(
                last_seq,
                next_seq = self.state.next_seq,
                "the central is ahead of this spool: continuing after its sequence"
            );
            self.state.next_seq = last_seq + 1;
            self.save_state()?;
        }
        Ok(())
    }

    /// A batch the central refused as malformed (400/413): it would block every later one, so
    /// it is set aside (renamed `.rejected`) and counted as dropped.
    pub fn reject(&mut self, e: Entry) -> Result<(), SpoolError> {
        let from = self.queue.join(e.name());
        let to = self.dir.join(format!("{}.rejected", e.name()));
        let _ = std::fs::rename(&from, &to);
        self.entries.remove(&e);
        self.state.dropped += e.count();
        self.save_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(check: &str) -> WireResult {
        WireResult {
            seq: 0,
            check: check.into(),
            finished_ms: 1,
            success: true,
            duration_seconds: 0.1,
            reason: None,
            message: None,
        }
    }

    #[test]
    fn numbers_persist_and_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let mut s = Spool::open(dir.path(), day, 1 << 20).unwrap();
        s.append(vec![r("a"), r("b")]).unwrap();
        s.append(vec![r("c")]).unwrap();
        assert_eq!(s.spooled(), 3);
        drop(s);
        let mut s = Spool::open(dir.path(), day, 1 << 20).unwrap();
        assert_eq!(s.next_seq(), 4);
        let (e, rs) = s.oldest().unwrap().unwrap();
        assert_eq!((e.first, e.last), (1, 2));
        assert_eq!(rs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        s.acknowledge(2).unwrap();
        let (e, _) = s.oldest().unwrap().unwrap();
        assert_eq!(e.first, 3);
        s.acknowledge(3).unwrap();
        assert!(s.oldest().unwrap().is_none());
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn bounded_by_size_oldest_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), Duration::from_secs(86_400), 400).unwrap();
        for _ in 0..10 {
            s.append(vec![r("service/x/y"), r("service/x/y")]).unwrap();
        }
        assert!(s.bytes() <= 400, "{}", s.bytes());
        assert!(s.dropped() > 0);
        assert_eq!(s.dropped() + s.spooled(), 20);
        let (e, _) = s.oldest().unwrap().unwrap();
        assert_eq!(e.first, s.dropped() + 1, "the oldest went first");
    }

    #[test]
    fn bounded_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), Duration::from_secs(60), 1 << 20).unwrap();
        s.append(vec![r("a")]).unwrap();
        s.append(vec![r("b")]).unwrap();
        s.enforce_bounds(SystemTime::now() + Duration::from_secs(120))
            .unwrap();
        assert_eq!(s.spooled(), 0);
        assert_eq!(s.dropped(), 2);
        assert_eq!(s.next_seq(), 3);
    }
}

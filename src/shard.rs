//! `--shard i/n`: split the checks over several lienthong instances.
//!
//! Every check belongs to its owner (a site or shared-service slug). An instance started with
//! `--shard i/n` keeps only the checks whose owner hashes to shard `i` of `n` (1-based), with a
//! stable hash (64-bit FNV-1a of the slug, modulo `n`): the same slug lands on the same shard on
//! every machine, in every version, whatever the order of the config. All checks of one owner stay
//! together, so a site's link, endpoint and video point are judged by one instance.
//!
//! Sites keep their reference data (`lienthong_site_info`) on every shard; a shard reports
//! `lienthong_site_status` 0 (unknown) for the sites it does not probe, so `max by (site)` over
//! the shards gives the owner's value (see deploy/prometheus/rules).

use std::fmt;
use std::str::FromStr;

use crate::config::Inventory;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// `index` in `1..=count`, `count` at least 1.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard {index} does not exist: shards are numbered 1 to {count}"
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this shard probes the checks of `owner` (a site or service slug).
    pub fn owns(self, owner: &str) -> bool {
        shard_of(owner, self.count) == self.index
    }

    /// Keeps only the checks this shard owns. Sites, services, teams and everything else stay.
    pub fn apply(self, inv: &mut Inventory) {
        inv.checks.retain(|c| self.owns(c.id.owner()));
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `i/n`, e.g. `2/3`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a shard: write i/n, e.g. 1/2"))?;
        let parse = |v: &str, what: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}`: the {what} `{v}` is not a whole number"))
        };
        Shard::new(parse(i, "shard number")?, parse(n, "number of shards")?)
    }
}

/// 64-bit FNV-1a of the bytes.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The shard (1-based) of `owner` among `count` shards.
pub fn shard_of(owner: &str, count: u32) -> u32 {
    (fnv1a64(owner.as_bytes()) % u64::from(count.max(1))) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(
            " 1 / 1 ".trim().parse::<Shard>().unwrap().to_string(),
            "1/1"
        );
        for bad in ["0/2", "3/2", "1/0", "1", "a/2", "1/b", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn every_owner_lands_on_exactly_one_shard() {
        let owners: Vec<String> = (0..500).map(|i| format!("phuong-{i}")).collect();
        for n in 1..=5u32 {
            let shards: Vec<Shard> = (1..=n).map(|i| Shard::new(i, n).unwrap()).collect();
            let mut per_shard = vec![0usize; n as usize];
            for o in &owners {
                let owning: Vec<_> = shards.iter().filter(|s| s.owns(o)).collect();
                assert_eq!(owning.len(), 1, "{o} with {n} shards");
                per_shard[owning[0].index() as usize - 1] += 1;
            }
            // Roughly even: no shard gets less than half its fair share.
            for c in per_shard {
                assert!(c * 2 * n as usize >= owners.len(), "uneven split for n={n}");
            }
        }
    }

    #[test]
    fn stable_across_versions() {
        // Pinned: changing the hash would move sites between instances on an upgrade.
        assert_eq!(fnv1a64(b"phuong-ben-thanh"), 0x4dc3_b43b_ed28_45e6);
        assert_eq!(shard_of("phuong-ben-thanh", 3), 2);
        assert_eq!(shard_of("dac-khu-con-dao", 3), 2);
        assert_eq!(shard_of("thu-tuc-hanh-chinh", 3), 3);
        assert_eq!(shard_of("dns", 3), 1);
    }

    #[test]
    fn shards_partition_the_shipped_config() {
        let cfg = crate::config::Config::from_str(
            std::path::Path::new("probes.toml"),
            crate::demo::BUILTIN_CONFIG,
        )
        .expect("shipped config");
        let all = &cfg.inventory;
        let n = 3;
        let mut seen = 0;
        for i in 1..=n {
            let mut inv = (**all).clone();
            Shard::new(i, n).unwrap().apply(&mut inv);
            assert_eq!(inv.sites.len(), all.sites.len(), "sites keep their info");
            for c in &inv.checks {
                assert_eq!(shard_of(c.id.owner(), n), i);
                // All checks of an owner stay together.
                let of_owner = all.checks.iter().filter(|a| a.id.owner() == c.id.owner());
                assert_eq!(
                    of_owner.count(),
                    inv.checks
                        .iter()
                        .filter(|a| a.id.owner() == c.id.owner())
                        .count()
                );
            }
            seen += inv.checks.len();
        }
        assert_eq!(seen, all.checks.len());
    }
}

//! Ward-report tokens (`[reports]` in the config): who may report a problem for which site.
//!
//! A site token reports for its own site; a team token for every site the team covers. The
//! tokens live outside the config: in `tokens_file` (`site <slug> <token>` / `team <name>
//! <token>` lines, `#` comments) and in the environment variables named by `team_token_env`.
//! They are read at start and on every reload, and never logged or served.

use std::path::{Path, PathBuf};

use crate::token::equal;

use crate::config::{Inventory, SiteInfo};

/// Shortest token accepted (a guessable token lets anyone page a team).
pub const MIN_TOKEN_CHARS: usize = 16;

/// Whose token a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Site(String),
    Team(String),
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Site(s) => write!(f, "site {s}"),
            Holder::Team(t) => write!(f, "team {t}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the report tokens file {path}: {source} (set [reports] tokens_file to a readable file)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// The loaded tokens.
#[derive(Default)]
pub struct Tokens {
    entries: Vec<(Holder, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holders only: the tokens never reach a log.
        let holders: Vec<String> = self.entries.iter().map(|(h, _)| h.to_string()).collect();
        f.debug_struct("Tokens").field("holders", &holders).finish()
    }
}

impl Tokens {
    /// Reads `[reports]` of `inv`. A team variable that is unset is skipped with a warning in
    /// the returned list (that team simply has no token); everything else wrong is an error.
    pub fn load(inv: &Inventory) -> Result<(Tokens, Vec<String>), TokensError> {
        let mut out = Tokens::default();
        let mut warnings = Vec::new();
        if let Some(path) = &inv.reports.tokens_file {
            let path = Path::new(path);
            let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            out.parse_file(inv, path, &text)?;
        }
        for (team, var) in &inv.reports.team_token_env {
            match std::env::var(var) {
                Ok(t) if !t.trim().is_empty() => {
                    let t = t.trim();
                    if t.chars().count() < MIN_TOKEN_CHARS {
                        warnings.push(format!(
                            "the token of team {team} in ${var} is shorter than {MIN_TOKEN_CHARS} characters: ignored"
                        ));
                        continue;
                    }
                    out.entries
                        .push((Holder::Team(team.clone()), t.as_bytes().to_vec()));
                }
                _ => warnings.push(format!(
                    "team {team} has no report token: the environment variable {var} is unset"
                )),
            }
        }
        Ok((out, warnings))
    }

    fn parse_file(&mut self, inv: &Inventory, path: &Path, text: &str) -> Result<(), TokensError> {
        let err = |line: usize, message: String| TokensError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = l.split_whitespace().collect();
            let [kind, name, token] = parts.as_slice() else {
                return Err(err(
                    line,
                    "expected `site <slug> <token>` or `team <name> <token>`".into(),
                ));
            };
            let holder = match *kind {
                "site" if inv.site(name).is_some() => Holder::Site(name.to_string()),
                "site" => {
                    let s =
                        crate::report::suggestions(name, inv.sites.iter().map(|s| s.slug.as_str()));
                    return Err(err(
                        line,
                        format!("unknown site `{name}`{}", crate::report::did_you_mean(&s)),
                    ));
                }
                "team" if inv.teams.iter().any(|t| t.name == *name) => {
                    Holder::Team(name.to_string())
                }
                "team" => {
                    let known: Vec<&str> = inv.teams.iter().map(|t| t.name.as_str()).collect();
                    return Err(err(
                        line,
                        format!("unknown team `{name}` (teams: {})", known.join(", ")),
                    ));
                }
                other => {
                    return Err(err(
                        line,
                        format!("`{other}`: a line starts with `site` or `team`"),
                    ))
                }
            };
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(err(
                    line,
                    format!("the token of {holder} is shorter than {MIN_TOKEN_CHARS} characters"),
                ));
            }
            if self.entries.iter().any(|(_, t)| t == token.as_bytes()) {
                return Err(err(
                    line,
                    "this token is already given to another site or team: give each its own".into(),
                ));
            }
            self.entries.push((holder, token.as_bytes().to_vec()));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whose token `presented` is. Compares with every token, each in constant time.
    pub fn holder(&self, presented: &str) -> Option<&Holder> {
        let mut found = None;
        for (h, t) in &self.entries {
            if equal(presented.as_bytes(), t) {
                found = Some(h);
            }
        }
        found
    }

    /// Whether `holder` may report for `site`.
    pub fn may_report(holder: &Holder, site: &SiteInfo, inv: &Inventory) -> bool {
        match holder {
            Holder::Site(s) => *s == site.slug,
            Holder::Team(t) => inv.teams_of_site(site).iter().any(|x| x == t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml");
        (*crate::config::Config::load(&fixture).unwrap().inventory).clone()
    }

    #[test]
    fn file_lines_and_holders() {
        let inv = inv();
        let mut t = Tokens::default();
        t.parse_file(
            &inv,
            Path::new("t"),
            "# comment\nsite phuong-ben-thanh aaaaaaaaaaaaaaaa1\n\nteam to-tphcm bbbbbbbbbbbbbbbb2\n",
        )
        .unwrap();
        assert_eq!(
            t.holder("aaaaaaaaaaaaaaaa1"),
            Some(&Holder::Site("phuong-ben-thanh".into()))
        );
        assert_eq!(
            t.holder("bbbbbbbbbbbbbbbb2"),
            Some(&Holder::Team("to-tphcm".into()))
        );
        assert_eq!(t.holder("aaaaaaaaaaaaaaaa"), None);
        assert_eq!(t.holder(""), None);
        let ben_thanh = inv.site("phuong-ben-thanh").unwrap();
        let other = inv.site("phuong-sai-gon").unwrap();
        let vung_tau = inv
            .sites
            .iter()
            .find(|s| s.former_province == "ba-ria-vung-tau")
            .unwrap();
        let site = Holder::Site("phuong-ben-thanh".into());
        let team = Holder::Team("to-tphcm".into());
        assert!(Tokens::may_report(&site, ben_thanh, &inv));
        assert!(!Tokens::may_report(&site, other, &inv));
        assert!(Tokens::may_report(&team, other, &inv));
        assert!(!Tokens::may_report(&team, vung_tau, &inv));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let inv = inv();
        for (text, want) in [
            (
                "site phuong-ben-thanh short",
                "t:1: the token of site phuong-ben-thanh is shorter",
            ),
            (
                "\nsite phuong-ben-tanh aaaaaaaaaaaaaaaa1",
                "t:2: unknown site `phuong-ben-tanh`",
            ),
            (
                "team to-nowhere aaaaaaaaaaaaaaaa1",
                "t:1: unknown team `to-nowhere`",
            ),
            (
                "site phuong-ben-thanh",
                "t:1: expected `site <slug> <token>`",
            ),
            ("user x aaaaaaaaaaaaaaaa1", "t:1: `user`"),
            (
                "site phuong-ben-thanh aaaaaaaaaaaaaaaa1\nteam to-tphcm aaaaaaaaaaaaaaaa1",
                "t:2: this token is already given",
            ),
        ] {
            let e = Tokens::default()
                .parse_file(&inv, Path::new("t"), text)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
            assert!(!e.contains("aaaaaaaaaaaaaaaa1"), "a token in an error: {e}");
        }
    }
}

//! The shape of `probes.toml` (data only) and its loading: strict parse with line/column errors,
//! then semantic validation that reports every problem at once, then expansion of templates into
//! one [`CheckDef`] per (site, check). Runtime state lives elsewhere.

mod expand;
mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use expand::{CheckDef, CheckId, CheckRole, Inventory, ServiceInfo, SiteInfo};
pub use file::*;

/// One problem in a config file, located by line and column (1-based), with a fix hint.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Everything wrong with one config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(path: &Path, problems: &[ConfigProblem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}:{}: {}",
            path.display(),
            p.line,
            p.column,
            p.message
        ));
        if let Some(h) = &p.hint {
            out.push_str(&format!("\n  hint: {h}"));
        }
    }
    out
}

/// Maps byte offsets of the source text to 1-based line/column (columns count characters).
pub(crate) struct Locator<'a> {
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator { text }
    }

    pub(crate) fn at(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[line_start..].chars().count() + 1)
    }

    pub(crate) fn problem(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ConfigProblem {
        let (line, column) = self.at(span.start);
        ConfigProblem {
            line,
            column,
            message: message.into(),
            hint,
        }
    }
}

/// A loaded, validated config: the file as written plus its expansion.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub file: ConfigFile,
    pub inventory: Arc<Inventory>,
}

impl Config {
    /// Reads, parses, validates and expands `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(path, &text)
    }

    /// Like [`Config::load`] on text already read; `path` is only used in messages.
    pub fn from_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let loc = Locator::new(text);
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            let hint = parse_hint(&message);
            invalid(vec![loc.problem(span, message, hint)])
        })?;
        let inventory = expand::expand(&file, &loc).map_err(invalid)?;
        Ok(Config {
            path: path.to_path_buf(),
            file,
            inventory: Arc::new(inventory),
        })
    }

    /// The one-line summary printed by `check-config`.
    pub fn summary(&self) -> String {
        let inv = &self.inventory;
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &inv.checks {
            *by_kind.entry(c.probe.kind().as_str()).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "{}: ok — {} sites, {} shared services, {} checks ({})",
            self.path.display(),
            inv.sites.len(),
            inv.services.len(),
            inv.checks.len(),
            kinds.join(", ")
        )
    }
}

/// A fix hint for the common parse errors.
fn parse_hint(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("remove the field or fix its spelling; the message lists the accepted names".into())
    } else if message.contains("time unit needed") || message.contains("unknown time unit") {
        Some("durations are strings with a unit, e.g. \"15s\", \"500ms\", \"2m\"".into())
    } else if message.contains("unknown variant") {
        Some("use one of the listed values".into())
    } else if message.contains("missing field") {
        Some("add the field named in the message".into())
    } else {
        None
    }
}

/// A duration as written in the config (`"15s"`), parsed by humantime so a missing unit gets
/// humantime's own explanation ("time unit needed, for example 15sec or 15ms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct HumanDuration(#[serde(with = "humantime_serde")] pub Duration);

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration \"{text}\": {e}")))
    }
}

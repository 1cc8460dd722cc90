//! The shape of `probes.toml` (data only) and its loading: strict parse with line/column errors,
//! then semantic validation that reports every problem at once, then expansion of templates into
//! one [`CheckDef`] per (site, check). Runtime state lives elsewhere.

mod collect;
mod expand;
mod file;
pub mod maintenance;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use expand::{
    AgentDef, AgentToken, CheckDef, CheckId, CheckRole, Degraded, Inventory, ServiceInfo, SiteInfo,
};
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
    /// The I/O error is part of the message, not a separate cause (printed once).
    #[error("cannot read {}: {error}{}", path.display(), read_hint(path, error))]
    Read {
        path: PathBuf,
        error: std::io::Error,
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

fn read_hint(path: &Path, e: &std::io::Error) -> String {
    if e.kind() != std::io::ErrorKind::NotFound {
        return String::new();
    }
    let here = match std::env::current_dir() {
        Ok(d) if path.is_relative() => format!(" in {}", d.display()),
        _ => String::new(),
    };
    format!(
        "\n  hint: no {}{here}; run from the directory that holds it or give its path (`--config PATH`)",
        path.display()
    )
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

    pub(crate) fn text(&self) -> &'a str {
        self.text
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
        // Messages quote values of the file: never a password or a token in a URL.
        ConfigProblem {
            line,
            column,
            message: redact_urls(&message.into()),
            hint: hint.map(|h| redact_urls(&h)),
        }
    }
}

/// A loaded, validated config: the file as written plus its expansion.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub file: ConfigFile,
    pub inventory: Arc<Inventory>,
    /// What loads but probably does not do what the operator wants (`check-config` prints
    /// these, `serve` logs them).
    pub warnings: Vec<ConfigProblem>,
}

impl Config {
    /// Reads, parses, validates and expands `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
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
        if is_empty(text) {
            return Err(invalid(vec![loc.problem(
                0..0,
                "the file is empty",
                Some(format!(
                    "a config needs at least a link class and the sites, e.g.\n{MINIMAL_EXAMPLE}\n  \
                     (the shipped probes.toml has all 168 sites, templates and comments)"
                )),
            )]));
        }
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            // serde stops at the first error: look at every section and entry on its own.
            let mut problems = collect::problems(text, &loc);
            if problems.is_empty() {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                let hint = parse_hint(&message);
                problems.push(loc.problem(span, message, hint));
            }
            invalid(problems)
        })?;
        let mut file = file;
        resolve_relative_paths(&mut file, path);
        let inventory = expand::expand(&file, &loc).map_err(invalid)?;
        let warnings = lint(&file, &loc);
        Ok(Config {
            path: path.to_path_buf(),
            file,
            inventory: Arc::new(inventory),
            warnings,
        })
    }

    /// The warnings, one `file:line:column: warning: …` line each (plus the hint).
    pub fn render_warnings(&self) -> Option<String> {
        (!self.warnings.is_empty()).then(|| {
            let tagged: Vec<ConfigProblem> = self
                .warnings
                .iter()
                .map(|w| ConfigProblem {
                    message: format!("warning: {}", w.message),
                    ..w.clone()
                })
                .collect();
            render_problems(&self.path, &tagged)
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

/// Problems that do not stop a config from loading.
fn lint(file: &ConfigFile, loc: &Locator) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    // An agent whose token file cannot be read is refused (401) until it can: say so early.
    for a in &file.agents {
        if let Some(path) = &a.get_ref().token_file {
            let problem = match std::fs::read_to_string(path) {
                Ok(t) if t.trim().is_empty() => Some("is empty".to_string()),
                Ok(_) => None,
                Err(e) => Some(format!("cannot be read: {e}")),
            };
            if let Some(p) = problem {
                out.push(loc.problem(
                    a.span(),
                    format!(
                        "agent `{}`: token file {path} {p}; the agent is refused until it is fixed",
                        a.get_ref().site
                    ),
                    Some("write the agent's token into it (one line, mode 0600), or use token_sha256".into()),
                ));
            }
        }
    }
    for svc in &file.services {
        for check in &svc.get_ref().checks {
            let c = check.get_ref();
            // A shared system answering 200 with an error page or a maintenance banner passes a
            // status-only check: for a service every ward depends on, assert what only a
            // working system returns.
            if let crate::probe::ProbeSpec::Http(h) = &c.probe {
                if h.body_contains.is_none() && h.body_regex.is_none() && h.expect_json.is_none() {
                    out.push(loc.problem(
                        check.span(),
                        format!(
                            "shared-service check `service/{}/{}` asserts no content: a 200 with a wrong body passes",
                            svc.get_ref().slug,
                            c.name
                        ),
                        Some(
                            "add `body_regex`, `body_contains` or `expect_json = { pointer = \"/status\", equals = \"ok\" }` matching what only a working system returns".into(),
                        ),
                    ));
                }
            }
        }
    }
    out
}

const MINIMAL_EXAMPLE: &str = r#"  [link_class.mainland]
  interval = "15s"
  timeout = "5s"
  packets = 3
  pacing = "200ms"
  max_loss = 0.4
  degraded_loss = 0.05
  degraded_rtt = "60ms"
  degraded_jitter = "20ms"
  degraded_latency = "2s"

  [[template]]
  name = "link"
  role = "link"
  title = "Đường truyền"
  probe.icmp = { host = "{addr.link}" }

  [inventory]
  sites = [
    { code = "26734", slug = "phuong-ben-thanh", name = "Phường Bến Thành", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7725, lon = 106.6980, addr = { link = "127.0.0.1" } },
  ]"#;

/// Relative secret files of transaction checks are relative to the config file's directory
/// (as Prometheus resolves its `*_file` settings), so a config and its secrets move together.
fn resolve_relative_paths(file: &mut ConfigFile, path: &Path) {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return;
    };
    let fix = |probe: &mut crate::probe::ProbeSpec| {
        if let crate::probe::ProbeSpec::Transaction(t) = probe {
            for s in t.secrets.values_mut() {
                if let Some(f) = s
                    .file
                    .as_mut()
                    .filter(|f| Path::new(f.as_str()).is_relative())
                {
                    *f = dir.join(&*f).display().to_string();
                }
            }
        }
    };
    for t in &mut file.templates {
        fix(&mut t.get_mut().probe);
    }
    for svc in &mut file.services {
        for c in &mut svc.get_mut().checks {
            fix(&mut c.get_mut().probe);
        }
    }
    for c in &mut file.site_checks {
        fix(&mut c.get_mut().probe);
    }
    for o in &mut file.site_overrides {
        if let Some(p) = o.get_mut().probe.as_mut() {
            fix(p);
        }
    }
}

/// Nothing but blank lines and comments.
fn is_empty(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#'))
}

/// Hides secrets in URLs quoted by a message: the userinfo (`user:pass@` → `***@`) and every
/// query value (`?token=abc` → `?token=***`).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The URL runs to the next character that cannot be in one as written in a message.
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?') {
            Some((p, query)) => {
                out.push_str(p);
                out.push('?');
                let (query, fragment) = match query.split_once('#') {
                    Some((q, f)) => (q, Some(f)),
                    None => (query, None),
                };
                let pairs: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) => format!("{k}=***"),
                        None => kv.to_string(),
                    })
                    .collect();
                out.push_str(&pairs.join("&"));
                if let Some(f) = fragment {
                    out.push('#');
                    out.push_str(f);
                }
            }
            None => out.push_str(path),
        }
        rest = after;
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::redact_urls;

    #[test]
    fn urls_lose_userinfo_and_query_values() {
        assert_eq!(
            redact_urls("check `x`: bad url `https://ops:hunter2@lgsp.example:99999/a?token=abc&x=1#f` here"),
            "check `x`: bad url `https://***@lgsp.example:99999/a?token=***&x=***#f` here"
        );
        assert_eq!(
            redact_urls("http://127.0.0.1:1/ ok"),
            "http://127.0.0.1:1/ ok"
        );
        assert_eq!(redact_urls("no url at all"), "no url at all");
        assert_eq!(
            redact_urls("\"http://u:p@h\" and \"http://h/?a=b\""),
            "\"http://***@h\" and \"http://h/?a=***\""
        );
    }
}

//! `agent.toml`: where the central is, which site this agent speaks for, its token file, TLS,
//! the spool, and local checks. Errors are reported like `check-config`: file:line:column and
//! a hint, every problem at once where possible.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, ConfigProblem, HumanDuration, Locator};
use crate::probe::{BuildContext, ProbeSpec};

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// Base URL of the central lienthong, e.g. `https://lienthong.example.gov.vn`.
    pub central: Spanned<String>,
    /// The slug of the site this agent runs in (as in the central's `[[agent]]`).
    pub site: Spanned<String>,
    /// File holding this agent's bearer token (never the token itself in this file).
    pub token_file: Spanned<String>,
    /// PEM file of the CA(s) the central's certificate must chain to (pinning); default: the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// Directory of the spool (results not yet acknowledged) and the cached check list.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: String,
    /// Run the central's `[[service]]` checks (fetched from the central).
    #[serde(default = "default_true")]
    pub service_checks: bool,
    /// Results are written to the spool and pushed this often.
    #[serde(default = "default_push_every")]
    pub push_every: HumanDuration,
    #[serde(default)]
    pub spool: SpoolSection,
    /// Local checks of the ward (gateway, devices), `[[check]]`.
    #[serde(default, rename = "check")]
    pub checks: Vec<Spanned<LocalCheck>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Results older than this are dropped (oldest first, counted).
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
    /// The spool's size cap in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: Spanned<u64>,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            max_age: default_max_age(),
            max_bytes: Spanned::new(0..0, default_max_bytes_value()),
        }
    }
}

/// `[[check]]` of agent.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCheck {
    pub name: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    pub probe: ProbeSpec,
}

fn default_spool_dir() -> String {
    "lienthong-agent-spool".into()
}
fn default_true() -> bool {
    true
}
fn default_push_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_max_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(86_400))
}
fn default_max_bytes_value() -> u64 {
    50 * 1024 * 1024
}
fn default_max_bytes() -> Spanned<u64> {
    Spanned::new(0..0, default_max_bytes_value())
}
fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

/// A validated agent config.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub path: PathBuf,
    pub central: url::Url,
    pub site: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub spool_dir: PathBuf,
    pub service_checks: bool,
    pub push_every: Duration,
    pub max_age: Duration,
    pub max_bytes: u64,
    pub checks: Vec<LocalCheck>,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_str(path, &text)
    }

    pub fn from_str(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let loc = Locator::new(text);
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let file: AgentFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            let hint = if message.contains("missing field") {
                Some("agent.toml needs at least central, site and token_file (see examples/agent.toml)".into())
            } else if message.contains("unknown field") {
                Some("remove the field or fix its spelling; the message lists the accepted names".into())
            } else if message.contains("duration") {
                Some("durations are strings with a unit, e.g. \"15s\", \"500ms\", \"2m\"".into())
            } else {
                None
            };
            invalid(vec![loc.problem(span, message, hint)])
        })?;
        let mut problems: Vec<ConfigProblem> = Vec::new();
        let mut push = |span: std::ops::Range<usize>, msg: String, hint: &str| {
            problems.push(loc.problem(span, msg, (!hint.is_empty()).then(|| hint.to_string())));
        };
        let central = match url::Url::parse(file.central.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(u) => {
                push(
                    file.central.span(),
                    format!("central must be an http(s) URL, not `{}`", u.scheme()),
                    "e.g. central = \"https://lienthong.example.gov.vn\"",
                );
                None
            }
            Err(e) => {
                push(
                    file.central.span(),
                    format!("invalid central URL: {e}"),
                    "e.g. central = \"https://lienthong.example.gov.vn\"",
                );
                None
            }
        };
        let site = file.site.get_ref().trim().to_string();
        if site.is_empty()
            || !site
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            push(
                file.site.span(),
                format!("site `{site}` is not a site slug"),
                "the slug of the ward as in the central's site list, e.g. \"phuong-ben-thanh\"",
            );
        }
        match std::fs::read_to_string(file.token_file.get_ref()) {
            Ok(t) if t.trim().is_empty() => push(
                file.token_file.span(),
                format!("token file {} is empty", file.token_file.get_ref()),
                "write the agent's token (as configured centrally) into it, mode 0600",
            ),
            Ok(_) => {}
            Err(e) => push(
                file.token_file.span(),
                format!("cannot read token file {}: {e}", file.token_file.get_ref()),
                "the file holding this agent's token (mode 0600, readable by the agent)",
            ),
        }
        if let Some(ca) = &file.ca_file {
            match std::fs::read(ca.get_ref()) {
                Ok(pem) => {
                    if reqwest::Certificate::from_pem_bundle(&pem).map_or(true, |v| v.is_empty()) {
                        push(
                            ca.span(),
                            format!("ca_file {} holds no PEM certificate", ca.get_ref()),
                            "a PEM bundle (-----BEGIN CERTIFICATE-----)",
                        );
                    }
                }
                Err(e) => push(
                    ca.span(),
                    format!("cannot read ca_file {}: {e}", ca.get_ref()),
                    "omit ca_file to use the system's roots",
                ),
            }
        }
        if *file.spool.max_bytes.get_ref() < 64 * 1024 {
            push(
                file.spool.max_bytes.span(),
                "spool max_bytes must be at least 65536".into(),
                "the default is 52428800 (50 MB)",
            );
        }
        if file.push_every.0 < Duration::from_millis(200)
            || file.push_every.0 > Duration::from_secs(60)
        {
            push(
                0..0,
                "push_every must be between 200ms and 60s".into(),
                "the default is \"5s\"",
            );
        }
        let mut names = std::collections::HashSet::new();
        for c in &file.checks {
            let chk = c.get_ref();
            if chk.name.is_empty()
                || !chk
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                push(
                    c.span(),
                    format!("check name `{}` must be letters, digits, - or _", chk.name),
                    "e.g. name = \"gateway\"",
                );
            }
            if !names.insert(chk.name.clone()) {
                push(
                    c.span(),
                    format!("duplicate check `{}`", chk.name),
                    "check names must be unique in agent.toml",
                );
            }
            if chk.timeout.0 > chk.interval.0 || chk.timeout.0.is_zero() {
                push(
                    c.span(),
                    format!(
                        "check `{}`: timeout must be above 0 and at most its interval",
                        chk.name
                    ),
                    "e.g. interval = \"15s\", timeout = \"5s\"",
                );
            }
            if let Err(e) = chk.probe.build(&BuildContext::default()) {
                push(
                    c.span(),
                    format!("check `{}`: {e}", chk.name),
                    "fix the probe settings",
                );
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        Ok(AgentConfig {
            path: path.to_path_buf(),
            central: central.expect("validated"),
            site,
            token_file: file.token_file.get_ref().into(),
            ca_file: file.ca_file.as_ref().map(|c| c.get_ref().into()),
            spool_dir: file.spool_dir.into(),
            service_checks: file.service_checks,
            push_every: file.push_every.0,
            max_age: file.spool.max_age.0,
            max_bytes: *file.spool.max_bytes.get_ref(),
            checks: file.checks.into_iter().map(|c| c.into_inner()).collect(),
        })
    }
}

//! Transaction probe: an ordered list of HTTP steps (log in → look up → log out) run as one
//! check, so "working end to end" is measured, not just "answering".
//!
//! Each step is one request on a fresh connection (resolve → TCP → rustls → hyper http1, phases
//! timed like the http kind), held to its own deadline (`min(step timeout, whole run)`) by the
//! same IO guard as the http kind, with the same capped body read. Assertions: status, body
//! regex, JSON pointer equals/exists, header regex, max duration. Extractions into variables:
//! JSON pointer, regex group, header, cookie; `{{name}}` in a later step's URL, headers or body
//! uses them. Cookies persist across steps (per host). A `cleanup = true` step runs even after a
//! failure, while the run's deadline allows.
//!
//! Secrets (`secrets.NAME = { file = … }` or `{ env = … }`) are read at build time, never from
//! the TOML itself; their values, and every extracted value, are masked as `***` in every
//! message and detail this probe produces. Details show URL templates (`{{token}}`), extracted
//! variable *names* only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, HOST, USER_AGENT};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use serde::{Deserialize, Serialize};
use url::{Position, Url};

use super::http::exchange;
use super::http::guard::Limits;
use super::http::hyper_fail;
use super::tcp::{Fail, Phase, PhaseClock};
use super::tls::{ExpirySink, TlsClient};
use super::{BuildError, Details, Outcome, Phases, Reason};

/// `probe.transaction = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionSpec {
    /// Named secrets usable as `{{NAME}}`: each read from a file or an environment variable.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Default timeout of one step (the check's timeout bounds the whole transaction).
    #[serde(default = "default_step_timeout", with = "humantime_serde")]
    pub step_timeout: Duration,
    /// Per-step body cap, as `body_max_bytes` of the http kind.
    #[serde(default = "default_body_max_bytes")]
    pub body_max_bytes: u64,
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The steps, in order.
    #[serde(rename = "step")]
    pub steps: Vec<StepSpec>,
}

/// Where a secret comes from: exactly one of `file` (trailing newline stripped) or `env`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Label value of the step series and the name in failure reasons (`tra-cuu`).
    pub name: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// URL template: `{{var}}` is filled (percent-encoded) from secrets and earlier extractions.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `application/x-www-form-urlencoded` body, values are templates.
    #[serde(default)]
    pub form: Option<BTreeMap<String, String>>,
    /// JSON body; string values are templates.
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Raw body template.
    #[serde(default)]
    pub body: Option<String>,
    /// This step's timeout (default: the transaction's `step_timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Runs even after an earlier step failed (log out).
    #[serde(default)]
    pub cleanup: bool,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub body_regex: Option<String>,
    #[serde(default)]
    pub expect_json: Vec<JsonAssertSpec>,
    #[serde(default)]
    pub expect_header: Vec<HeaderAssertSpec>,
    /// The step fails (`too_slow`) when it takes longer than this.
    #[serde(default, with = "humantime_serde")]
    pub max_duration: Option<Duration>,
    #[serde(default)]
    pub extract: Vec<ExtractSpec>,
}

/// `{ pointer = "/status", equals = "ok" }` or `{ pointer = "/id", exists = true }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonAssertSpec {
    pub pointer: String,
    /// Compared with the field's string form (`"ok"`, `true`, `3`); may use `{{var}}`.
    #[serde(default)]
    pub equals: Option<String>,
    /// `true`: the field must exist; `false`: it must not.
    #[serde(default)]
    pub exists: Option<bool>,
}

/// `{ name = "content-type", regex = "json" }`: the header must be present (and match).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderAssertSpec {
    pub name: String,
    #[serde(default)]
    pub regex: Option<String>,
}

/// `{ var = "csrf", regex = '…(…)…' }`, `{ var = "id", json = "/data/id" }`,
/// `{ var = "next", header = "location" }`, `{ var = "sid", cookie = "SESSION" }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    pub var: String,
    #[serde(default)]
    pub json: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// Capture group of `regex` (default 1, or 0 when the regex has no group).
    #[serde(default)]
    pub group: Option<usize>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
}

fn default_step_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_body_max_bytes() -> u64 {
    1024 * 1024
}
fn default_true() -> bool {
    true
}
fn default_method() -> String {
    "GET".into()
}

/// Measurements of one transaction run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransactionDetails {
    /// Every configured step, in order (`ran = false` for a step not reached).
    pub steps: Vec<StepDetails>,
    /// The first failing step (not a cleanup step's failure when an earlier one failed).
    pub failed_step: Option<String>,
    pub cert_earliest_expiry: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StepDetails {
    pub name: String,
    pub method: String,
    /// The URL template as configured: never the filled URL (it may carry tokens).
    pub url: String,
    pub cleanup: bool,
    pub ran: bool,
    pub success: bool,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub phases: Phases,
    pub status: Option<u16>,
    pub body_bytes: u64,
    /// Names of the variables this step extracted (never their values).
    pub extracted: Vec<String>,
    /// The bounded reason and the failing assertion, secrets and extracted values masked.
    pub reason: Option<Reason>,
    pub error: Option<String>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A template split into literal text and variable names.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(String),
}

impl Template {
    fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                pieces.push(Piece::Text(rest[..i].to_owned()));
            }
            let Some(end) = rest[i + 2..].find("}}") else {
                return Err(format!("unclosed {{{{ in {s:?}"));
            };
            let name = rest[i + 2..i + 2 + end].trim();
            if !is_var_name(name) {
                return Err(format!(
                    "{{{{{name}}}}} is not a variable name (letters, digits, _ and -)"
                ));
            }
            pieces.push(Piece::Var(name.to_owned()));
            rest = &rest[i + 2 + end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    fn vars(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Fills the template; `encode` percent-encodes variable values (URLs).
    fn render(&self, vars: &Vars, encode: bool) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => {
                    let value = vars
                        .get(v)
                        .ok_or_else(|| format!("variable {{{{{v}}}}} is not set"))?;
                    match encode {
                        true => out.extend(url::form_urlencoded::byte_serialize(value.as_bytes())),
                        false => out.push_str(value),
                    }
                }
            }
        }
        Ok(out)
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

type Vars = HashMap<String, String>;

#[derive(Debug)]
enum BodyTemplate {
    None,
    Raw(Template),
    Form(Vec<(String, Template)>),
    Json(serde_json::Value),
}

#[derive(Debug)]
struct JsonAssert {
    pointer: String,
    equals: Option<Template>,
    exists: Option<bool>,
}

#[derive(Debug)]
enum Source {
    Json(String),
    Regex(regex::Regex, usize),
    Header(HeaderName),
    Cookie(String),
}

#[derive(Debug)]
struct Extract {
    var: String,
    source: Source,
}

#[derive(Debug)]
struct Step {
    name: String,
    method: Method,
    url_text: String,
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: BodyTemplate,
    timeout: Duration,
    cleanup: bool,
    expect_status: Vec<u16>,
    body_regex: Option<regex::Regex>,
    expect_json: Vec<JsonAssert>,
    expect_header: Vec<(HeaderName, Option<regex::Regex>)>,
    max_duration: Option<Duration>,
    extract: Vec<Extract>,
}

impl Step {
    fn needs_body(&self) -> bool {
        self.body_regex.is_some()
            || !self.expect_json.is_empty()
            || self
                .extract
                .iter()
                .any(|e| matches!(e.source, Source::Json(_) | Source::Regex(..)))
    }
}

/// A secret value: `Debug` never prints it.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A built transaction probe.
#[derive(Debug)]
pub struct TransactionProbe {
    steps: Vec<Step>,
    secrets: Vec<(String, Secret)>,
    body_max_bytes: u64,
    tls: TlsClient,
}

/// A build error located at `locate` (a piece of the check's text) with a fix hint.
fn located(locate: impl Into<String>, message: String, hint: &'static str) -> BuildError {
    BuildError::Located {
        message,
        locate: locate.into(),
        hint,
    }
}

fn read_secret(name: &str, spec: &SecretSpec) -> Result<String, BuildError> {
    match (&spec.file, &spec.env) {
        (Some(path), None) => {
            // The config quotes the path as written (a relative one was joined to the config's
            // directory): its file name finds the line.
            let written = std::path::Path::new(path)
                .file_name()
                .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
            let text = std::fs::read_to_string(path).map_err(|e| {
                located(
                    written.clone(),
                    format!("secret `{name}`: cannot read file {path}: {e}"),
                    "create the file (one line, mode 0600, readable by lienthong) or fix the path; secrets never go in the TOML",
                )
            })?;
            let value = text.trim_end_matches(['\r', '\n']).to_owned();
            if value.is_empty() {
                return Err(located(
                    written,
                    format!("secret `{name}`: file {path} is empty"),
                    "write the secret on the file's first line",
                ));
            }
            Ok(value)
        }
        (None, Some(var)) => std::env::var(var).map_err(|_| BuildError::MissingEnv(var.clone())),
        _ => Err(located(
            name.to_owned(),
            format!("secret `{name}`: give exactly one of file or env"),
            "write secrets.NAME = { file = \"/etc/lienthong/NAME.pass\" } or { env = \"VAR\" }",
        )),
    }
}

/// The values of the secrets of `spec` that can be read now (for the demo simulator, which
/// accepts what the config's transactions send).
pub(crate) fn readable_secrets(spec: &TransactionSpec) -> Vec<String> {
    spec.secrets
        .iter()
        .filter_map(|(name, s)| read_secret(name, s).ok())
        .collect()
}

fn invalid_step(step: &str, locate: &str, what: impl std::fmt::Display) -> BuildError {
    located(
        locate.to_owned(),
        format!("step `{step}`: {what}"),
        "fix the value named in the message",
    )
}

impl TransactionProbe {
    pub fn build(spec: &TransactionSpec) -> Result<Self, BuildError> {
        if spec.steps.is_empty() {
            return Err(located(
                "transaction",
                "a transaction needs at least one [[…probe.transaction.step]]".to_owned(),
                "add steps with name, url and assertions",
            ));
        }
        let mut secrets = Vec::new();
        let mut known: HashSet<String> = HashSet::new();
        for (name, s) in &spec.secrets {
            if !is_var_name(name) {
                return Err(located(
                    name.clone(),
                    format!("secret name `{name}` is not a variable name"),
                    "use letters, digits, _ and -",
                ));
            }
            secrets.push((name.clone(), Secret(read_secret(name, s)?)));
            known.insert(name.clone());
        }
        let mut names = HashSet::new();
        let mut steps = Vec::with_capacity(spec.steps.len());
        for s in &spec.steps {
            let name = &s.name;
            let quoted = format!("\"{name}\"");
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(located(
                    quoted,
                    format!("duplicate step name `{name}`"),
                    "every step needs its own name (it is a metric label and names the failing step)",
                ));
            }
            let step = Self::build_step(s, spec)?;
            // Variables must be known before use: secrets and earlier steps' extractions.
            let mut used: Vec<&str> = step.url.vars().collect();
            step.headers.iter().for_each(|(_, t)| used.extend(t.vars()));
            match &step.body {
                BodyTemplate::Raw(t) => used.extend(t.vars()),
                BodyTemplate::Form(f) => f.iter().for_each(|(_, t)| used.extend(t.vars())),
                BodyTemplate::Json(_) | BodyTemplate::None => {}
            }
            let mut json_vars = Vec::new();
            if let BodyTemplate::Json(v) = &step.body {
                json_template_vars(v, &mut json_vars)?;
            }
            used.extend(json_vars.iter().map(String::as_str));
            step.expect_json
                .iter()
                .filter_map(|j| j.equals.as_ref())
                .for_each(|t| used.extend(t.vars()));
            if let Some(v) = used.iter().find(|v| !known.contains(**v)) {
                return Err(located(
                    format!("{{{{{v}}}}}"),
                    format!("step `{name}` uses {{{{{v}}}}} before any step extracts it"),
                    "extract it in an earlier step (extract = [{ var = \"…\", json = \"/…\" }]) or declare it under secrets",
                ));
            }
            for e in &step.extract {
                if spec.secrets.contains_key(&e.var) {
                    return Err(invalid_step(
                        name,
                        &e.var,
                        format!("extract var `{}` has the name of a secret", e.var),
                    ));
                }
                known.insert(e.var.clone());
            }
            steps.push(step);
        }
        Ok(TransactionProbe {
            steps,
            secrets,
            body_max_bytes: spec.body_max_bytes,
            tls: TlsClient::build(spec.tls_verify, spec.ca_file.as_deref())?,
        })
    }

    fn build_step(s: &StepSpec, spec: &TransactionSpec) -> Result<Step, BuildError> {
        let name = &s.name;
        let bad = |locate: &str, what: String| invalid_step(name, locate, what);
        let url = Template::parse(&s.url).map_err(|e| bad(&s.url, e))?;
        // The template with placeholder values must be an http(s) URL.
        let probe_url: String = url
            .0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Var(_) => "x",
            })
            .collect();
        match Url::parse(&probe_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => return Err(bad(&s.url, format!("{} is not an http(s) URL", s.url))),
        }
        let method = Method::from_bytes(s.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| bad(&s.method, e.to_string()))?;
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            let n = HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(k, e.to_string()))?;
            headers.push((n, Template::parse(v).map_err(|e| bad(v, e))?));
        }
        let body = match (&s.form, &s.json, &s.body) {
            (None, None, None) => BodyTemplate::None,
            (Some(f), None, None) => BodyTemplate::Form(
                f.iter()
                    .map(|(k, v)| Ok((k.clone(), Template::parse(v).map_err(|e| bad(v, e))?)))
                    .collect::<Result<_, BuildError>>()?,
            ),
            (None, Some(j), None) => BodyTemplate::Json(j.clone()),
            (None, None, Some(b)) => BodyTemplate::Raw(Template::parse(b).map_err(|e| bad(b, e))?),
            _ => {
                return Err(bad(
                    name,
                    "give at most one of form, json and body".to_owned(),
                ))
            }
        };
        if let Some(c) = s.expect_status.iter().find(|c| !(100..=599).contains(*c)) {
            return Err(bad("expect_status", format!("{c} is not an HTTP status")));
        }
        let regex = |r: &str| regex::Regex::new(r).map_err(|e| bad(r, e.to_string()));
        let pointer = |p: &str| match p.is_empty() || p.starts_with('/') {
            true => Ok(()),
            false => Err(bad(
                p,
                format!("{p:?} is not a JSON pointer (must start with /)"),
            )),
        };
        let mut expect_json = Vec::new();
        for j in &s.expect_json {
            pointer(&j.pointer)?;
            if j.equals.is_some() == j.exists.is_some() {
                return Err(bad(
                    &j.pointer,
                    format!(
                        "expect_json {}: give exactly one of equals or exists",
                        j.pointer
                    ),
                ));
            }
            expect_json.push(JsonAssert {
                pointer: j.pointer.clone(),
                equals: j
                    .equals
                    .as_deref()
                    .map(|e| Template::parse(e).map_err(|m| bad(e, m)))
                    .transpose()?,
                exists: j.exists,
            });
        }
        let mut expect_header = Vec::new();
        for h in &s.expect_header {
            let n = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|e| bad(&h.name, e.to_string()))?;
            expect_header.push((n, h.regex.as_deref().map(regex).transpose()?));
        }
        let mut extract = Vec::new();
        for e in &s.extract {
            if !is_var_name(&e.var) {
                return Err(bad(&e.var, format!("`{}` is not a variable name", e.var)));
            }
            let sources = [
                e.json.is_some(),
                e.regex.is_some(),
                e.header.is_some(),
                e.cookie.is_some(),
            ];
            if sources.iter().filter(|x| **x).count() != 1 {
                return Err(bad(
                    &e.var,
                    format!(
                        "extract `{}`: give exactly one of json, regex, header, cookie",
                        e.var
                    ),
                ));
            }
            if e.group.is_some() && e.regex.is_none() {
                return Err(bad(
                    &e.var,
                    format!("extract `{}`: group needs regex", e.var),
                ));
            }
            let source = if let Some(p) = &e.json {
                pointer(p)?;
                Source::Json(p.clone())
            } else if let Some(r) = &e.regex {
                let re = regex(r)?;
                let group = e.group.unwrap_or(if re.captures_len() > 1 { 1 } else { 0 });
                if group >= re.captures_len() {
                    return Err(bad(r, format!("regex /{r}/ has no group {group}")));
                }
                Source::Regex(re, group)
            } else if let Some(h) = &e.header {
                Source::Header(
                    HeaderName::from_bytes(h.as_bytes()).map_err(|x| bad(h, x.to_string()))?,
                )
            } else {
                Source::Cookie(e.cookie.clone().unwrap_or_default())
            };
            extract.push(Extract {
                var: e.var.clone(),
                source,
            });
        }
        Ok(Step {
            name: name.clone(),
            method,
            url_text: s.url.clone(),
            url,
            headers,
            body,
            timeout: s.timeout.unwrap_or(spec.step_timeout),
            cleanup: s.cleanup,
            expect_status: s.expect_status.clone(),
            body_regex: s.body_regex.as_deref().map(regex).transpose()?,
            expect_json,
            expect_header,
            max_duration: s.max_duration,
            extract,
        })
    }

    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let sink = ExpirySink::default();
        let mut vars: Vars = self
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let mut mask = Mask::new(self.secrets.iter().map(|(_, s)| s.0.as_str()));
        let mut jar = Jar::default();
        let mut details = TransactionDetails::default();
        let mut failure: Option<(Reason, String)> = None;
        for step in &self.steps {
            let mut d = StepDetails {
                name: step.name.clone(),
                method: step.method.to_string(),
                url: step.url_text.clone(),
                cleanup: step.cleanup,
                ..Default::default()
            };
            if failure.is_some() && !step.cleanup {
                details.steps.push(d);
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                // Nothing left of the run: the step is not started (the deadline is kept).
                let msg = format!("not started: the transaction's timeout {timeout:?} was reached");
                d.reason = Some(Reason::Timeout);
                d.error = Some(msg);
                details.steps.push(d);
                continue;
            }
            let step_deadline = deadline.min(now + step.timeout);
            let whole = step_deadline == deadline;
            d.ran = true;
            let started = Instant::now();
            let mut st = StepState {
                clock: PhaseClock::default(),
                limits: Limits::new(step_deadline),
                status: None,
                body_bytes: 0,
            };
            let result = tokio::time::timeout_at(
                step_deadline,
                self.exchange(step, &vars, &mut jar, &sink, &mut st),
            )
            .await;
            let result = match result {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(fail)) if fail.0 != Reason::Timeout => Err(fail),
                Ok(Err(_)) | Err(_) => {
                    let budget = match whole {
                        true => format!("the transaction's timeout {timeout:?}"),
                        false => format!("the step timeout {:?}", step.timeout),
                    };
                    let mut msg = st.clock.timeout_message(step_deadline - now);
                    msg += &format!(" ({budget})");
                    Err((Reason::Timeout, msg))
                }
            };
            st.clock.end();
            d.duration = started.elapsed();
            d.phases = st.clock.phases;
            d.status = st.status;
            d.body_bytes = st.body_bytes;
            let checked = result.and_then(|resp| {
                self.check(step, &resp, &vars, d.duration)?;
                self.extract(step, &resp, &jar, &mut vars, &mut mask, &mut d)
            });
            match checked {
                Ok(()) => d.success = true,
                Err((reason, msg)) => {
                    let msg = mask.apply(&msg);
                    d.reason = Some(reason);
                    d.error = Some(msg.clone());
                    if failure.is_none() {
                        details.failed_step = Some(step.name.clone());
                        failure = Some((
                            reason,
                            format!("step=\"{}\" reason=\"{reason}\": {msg}", step.name),
                        ));
                    }
                }
            }
            details.steps.push(d);
        }
        details.cert_earliest_expiry = sink.get();
        let details = Details::Transaction(Box::new(details));
        match failure {
            None => Outcome::ok(details),
            Some((reason, message)) => Outcome::fail(reason, message, details),
        }
    }

    /// Builds the request from the step's templates and runs it.
    async fn exchange(
        &self,
        step: &Step,
        vars: &Vars,
        jar: &mut Jar,
        sink: &ExpirySink,
        st: &mut StepState,
    ) -> Result<Response, Fail> {
        let not_set = |e: String| (Reason::Protocol, e);
        let url_text = step.url.render(vars, true).map_err(not_set)?;
        let url = Url::parse(&url_text).map_err(|e| {
            (
                Reason::Protocol,
                format!("filled URL of {} is not valid: {e}", step.url_text),
            )
        })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let (body, content_type) = match &step.body {
            BodyTemplate::None => (Bytes::new(), None),
            BodyTemplate::Raw(t) => (Bytes::from(t.render(vars, false).map_err(not_set)?), None),
            BodyTemplate::Form(fields) => {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, t) in fields {
                    ser.append_pair(k, &t.render(vars, false).map_err(not_set)?);
                }
                let ct = "application/x-www-form-urlencoded";
                (Bytes::from(ser.finish()), Some(ct))
            }
            BodyTemplate::Json(v) => {
                let filled = fill_json(v, vars).map_err(not_set)?;
                (Bytes::from(filled.to_string()), Some("application/json"))
            }
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut req = Request::builder()
            .method(step.method.clone())
            .uri(&url[Position::BeforePath..Position::AfterQuery])
            .body(Full::new(body))
            .map_err(|e| (Reason::Protocol, format!("cannot build request: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            HOST,
            HeaderValue::try_from(authority).map_err(|e| (Reason::Protocol, e.to_string()))?,
        );
        h.insert(USER_AGENT, HeaderValue::from_static("lienthong"));
        if let Some(ct) = content_type {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(cookies) = jar.header(&host) {
            let mut v = HeaderValue::try_from(cookies).map_err(|_| {
                (
                    Reason::Protocol,
                    "a cookie is not a valid header value".to_owned(),
                )
            })?;
            v.set_sensitive(true);
            h.insert(COOKIE, v);
        }
        for (name, t) in &step.headers {
            let value = t.render(vars, false).map_err(not_set)?;
            let mut v = HeaderValue::try_from(value).map_err(|_| {
                (
                    Reason::Protocol,
                    format!("header {name}: the filled value is not a valid header value"),
                )
            })?;
            v.set_sensitive(true);
            h.insert(name.clone(), v);
        }
        let limits = st.limits.clone();
        let io = exchange::connect(&url, &host, &self.tls, &limits, &mut st.clock, sink).await?;
        let resp = self.http1(io, req, step, st).await?;
        jar.store(&host, &resp.headers);
        Ok(resp)
    }

    async fn http1(
        &self,
        io: exchange::Io,
        req: Request<Full<Bytes>>,
        step: &Step,
        st: &mut StepState,
    ) -> Result<Response, Fail> {
        let cap = self.body_max_bytes;
        let keep = step.needs_body();
        let limits = st.limits.clone();
        exchange::http1(io, req, &limits, async |mut sender, req| {
            st.clock.begin(Phase::Processing);
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| hyper_fail("request", &e))?;
            st.clock.end();
            let status = resp.status().as_u16();
            st.status = Some(status);
            let (parts, mut body) = resp.into_parts();
            st.clock.begin(Phase::Transfer);
            let too_large = |what: String| {
                let msg = format!("body exceeds body_max_bytes = {cap} ({what})");
                (Reason::BodyTooLarge, msg)
            };
            if let Some(n) = body.size_hint().exact().filter(|n| *n > cap) {
                return Err(too_large(format!("Content-Length: {n}")));
            }
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| hyper_fail("reading body", &e))?;
                if let Ok(data) = frame.into_data() {
                    st.body_bytes += data.len() as u64;
                    if st.body_bytes > cap {
                        return Err(too_large(format!("{} bytes read", st.body_bytes)));
                    }
                    if keep {
                        buf.extend_from_slice(&data);
                    }
                }
            }
            st.clock.end();
            Ok(Response {
                status,
                headers: parts.headers,
                body: buf,
            })
        })
        .await
    }

    /// The step's assertions, in a fixed order: status, duration, headers, body regex, JSON.
    fn check(&self, step: &Step, r: &Response, vars: &Vars, took: Duration) -> Result<(), Fail> {
        let ok = match step.expect_status.is_empty() {
            true => (200..300).contains(&r.status),
            false => step.expect_status.contains(&r.status),
        };
        if !ok {
            let want = match step.expect_status.is_empty() {
                true => "2xx".to_owned(),
                false => format!("{:?}", step.expect_status),
            };
            let msg = format!("status {} not in expected set {want}", r.status);
            return Err((Reason::HttpStatus, msg));
        }
        if let Some(max) = step.max_duration.filter(|m| took > *m) {
            let msg = format!("took {took:.1?}, more than max_duration {max:?}");
            return Err((Reason::TooSlow, msg));
        }
        for (name, re) in &step.expect_header {
            let Some(value) = r.headers.get(name) else {
                return Err((Reason::HeaderMismatch, format!("no {name} header")));
            };
            if let Some(re) = re {
                let v = String::from_utf8_lossy(value.as_bytes());
                if !re.is_match(&v) {
                    let msg = format!("header {name} does not match /{re}/");
                    return Err((Reason::HeaderMismatch, msg));
                }
            }
        }
        if let Some(re) = &step.body_regex {
            if !re.is_match(&String::from_utf8_lossy(&r.body)) {
                return Err((Reason::BodyMismatch, format!("body does not match /{re}/")));
            }
        }
        if !step.expect_json.is_empty() {
            let json = parse_json(&r.body)?;
            for j in &step.expect_json {
                let field = json.pointer(&j.pointer);
                match (&j.equals, j.exists, field) {
                    (Some(_), _, None) => {
                        let msg = format!("JSON has no field at {}", j.pointer);
                        return Err((Reason::JsonMismatch, msg));
                    }
                    (Some(t), _, Some(f)) => {
                        let want = t.render(vars, false).map_err(|e| (Reason::Protocol, e))?;
                        let got = json_text(f);
                        if got != want {
                            let p = &j.pointer;
                            let msg = format!("JSON {p} is {got:?}, expected {want:?}");
                            return Err((Reason::JsonMismatch, msg));
                        }
                    }
                    (None, Some(true), None) => {
                        let msg = format!("JSON has no field at {}", j.pointer);
                        return Err((Reason::JsonMismatch, msg));
                    }
                    (None, Some(false), Some(_)) => {
                        let msg = format!("JSON has a field at {} (expected none)", j.pointer);
                        return Err((Reason::JsonMismatch, msg));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn extract(
        &self,
        step: &Step,
        r: &Response,
        jar: &Jar,
        vars: &mut Vars,
        mask: &mut Mask,
        d: &mut StepDetails,
    ) -> Result<(), Fail> {
        let mut json = None;
        for e in &step.extract {
            let fail = |what: String| {
                (
                    Reason::ExtractFailed,
                    format!("extract `{}`: {what}", e.var),
                )
            };
            let value = match &e.source {
                Source::Json(p) => {
                    if json.is_none() {
                        json = Some(parse_json(&r.body)?);
                    }
                    let field = json.as_ref().and_then(|j| j.pointer(p));
                    field
                        .map(json_text)
                        .ok_or_else(|| fail(format!("JSON has no field at {p}")))?
                }
                Source::Regex(re, group) => re
                    .captures(&String::from_utf8_lossy(&r.body))
                    .and_then(|c| c.get(*group).map(|m| m.as_str().to_owned()))
                    .ok_or_else(|| fail(format!("body does not match /{re}/")))?,
                Source::Header(h) => r
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| fail(format!("no {h} header")))?,
                Source::Cookie(c) => jar
                    .get(c)
                    .map(str::to_owned)
                    .ok_or_else(|| fail(format!("no cookie {c}")))?,
            };
            mask.add(&value);
            vars.insert(e.var.clone(), value);
            d.extracted.push(e.var.clone());
        }
        Ok(())
    }
}

struct StepState {
    clock: PhaseClock,
    limits: Limits,
    status: Option<u16>,
    body_bytes: u64,
}

struct Response {
    status: u16,
    headers: HeaderMap,
    /// Kept only when an assertion or extraction needs it.
    body: Vec<u8>,
}

fn parse_json(body: &[u8]) -> Result<serde_json::Value, Fail> {
    serde_json::from_slice(body)
        .map_err(|e| (Reason::JsonMismatch, format!("body is not JSON: {e}")))
}

/// Strings unquoted; everything else by its JSON text (`true`, `3`, `null`).
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_template_vars(v: &serde_json::Value, out: &mut Vec<String>) -> Result<(), BuildError> {
    match v {
        serde_json::Value::String(s) => {
            let t = Template::parse(s).map_err(|e| located(s.clone(), e, "fix the template"))?;
            out.extend(t.vars().map(str::to_owned));
        }
        serde_json::Value::Array(a) => {
            for x in a {
                json_template_vars(x, out)?;
            }
        }
        serde_json::Value::Object(m) => {
            for x in m.values() {
                json_template_vars(x, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn fill_json(v: &serde_json::Value, vars: &Vars) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => {
            serde_json::Value::String(Template::parse(s)?.render(vars, false)?)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| fill_json(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), fill_json(x, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Cookies of one run: name → value per host (a transaction talks to one system; no path or
/// domain matching beyond the host). `Max-Age=0` or an empty value removes a cookie.
#[derive(Default)]
struct Jar {
    cookies: BTreeMap<(String, String), String>,
}

impl Jar {
    fn store(&mut self, host: &str, headers: &HeaderMap) {
        for v in headers.get_all(http::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if name.is_empty() {
                continue;
            }
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-")
            });
            let key = (host.to_owned(), name.to_owned());
            if expired || value.is_empty() {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, value.to_owned());
            }
        }
    }

    fn header(&self, host: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|((_, n), v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|((_, n), _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Masks secret and extracted values in texts leaving the probe. Values shorter than 4
/// characters are not masked (they would mangle ordinary words and carry no secret).
struct Mask(Vec<String>);

impl Mask {
    fn new<'a>(values: impl Iterator<Item = &'a str>) -> Mask {
        let mut m = Mask(Vec::new());
        values.for_each(|v| m.add(v));
        m
    }

    fn add(&mut self, v: &str) {
        if v.chars().count() >= 4 && !self.0.iter().any(|x| x == v) {
            self.0.push(v.to_owned());
            // Longest first, so a value containing another is masked whole.
            self.0.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.0 {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
            // The percent-encoded form (in URLs) too.
            let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            if enc != *v && out.contains(enc.as_str()) {
                out = out.replace(enc.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("http://h/a/{{code}}?t={{ tok }}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["code", "tok"]);
        let vars: Vars = [
            ("code".into(), "HS 1/2".into()),
            ("tok".into(), "a&b".into()),
        ]
        .into();
        assert_eq!(
            t.render(&vars, true).unwrap(),
            "http://h/a/HS+1%2F2?t=a%26b"
        );
        assert_eq!(
            Template::parse("{{x}}").unwrap().render(&vars, false),
            Err("variable {{x}} is not set".into())
        );
        assert!(Template::parse("a {{b").is_err());
        assert!(Template::parse("{{a b}}").is_err());
    }

    #[test]
    fn jar_keeps_sets_and_expires_per_host() {
        let mut h = HeaderMap::new();
        h.append(
            "set-cookie",
            HeaderValue::from_static("SID=abc; Path=/; HttpOnly"),
        );
        h.append("set-cookie", HeaderValue::from_static("lang=vi"));
        let mut jar = Jar::default();
        jar.store("a", &h);
        assert_eq!(jar.header("a").as_deref(), Some("SID=abc; lang=vi"));
        assert_eq!(jar.header("b"), None);
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("SID=; Max-Age=0"));
        jar.store("a", &h);
        assert_eq!(jar.header("a").as_deref(), Some("lang=vi"));
    }

    #[test]
    fn mask_hides_values_and_their_url_form() {
        let mut m = Mask::new(["s3cr3t!pass"].into_iter());
        m.add("tok");
        assert_eq!(
            m.apply("x s3cr3t!pass y s3cr3t%21pass tok"),
            "x *** y *** tok"
        );
    }
}

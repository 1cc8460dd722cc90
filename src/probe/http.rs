//! HTTP(S) probe: hand-built request path (resolve → TCP connect → rustls → hyper http1) so each
//! phase is timed separately with blackbox_exporter's semantics, and the full peer chain is seen
//! even when verification fails.
//!
//! Every hop (redirects included) uses a fresh connection driven inside the run's own future, so
//! a timeout drops the socket at once: nothing is spawned that could outlive the run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, HOST, LOCATION, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use url::{Position, Url};

mod check;
pub(crate) mod exchange;
pub(crate) mod guard;

use check::Checks;
use guard::{GuardError, Limits};

use super::tcp::{Fail, Phase, PhaseClock};
use super::tls::{ExpirySink, TlsClient};
use super::{BuildError, Details, Outcome, Phases, Reason};

/// `probe.http = { … }` in `probes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// `http://` or `https://` URL.
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default)]
    pub body: Option<String>,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// The body must contain this substring.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must match this regular expression.
    #[serde(default)]
    pub body_regex: Option<String>,
    /// The body must be JSON whose field at `pointer` (RFC 6901) equals `equals`.
    #[serde(default)]
    pub expect_json: Option<JsonFieldSpec>,
    /// Reading stops and the run fails with `body_too_large` beyond this many bytes.
    #[serde(default = "default_body_max_bytes")]
    pub body_max_bytes: u64,
    /// How many redirects to follow (0 = report the 3xx as is).
    #[serde(default)]
    pub max_redirects: u32,
    /// Verify the server certificate chain and name.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted for this check, e.g. the city's internal CA.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Basic auth; the password is read from the named environment variable.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthSpec>,
    /// Bearer token read from the named environment variable.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFieldSpec {
    /// JSON pointer, e.g. `/status`.
    pub pointer: String,
    /// Expected value; compared with the field's string form (`"ok"`, `true`, `3`).
    pub equals: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSpec {
    pub username: String,
    pub password_env: String,
}

fn default_method() -> String {
    "GET".into()
}
fn default_body_max_bytes() -> u64 {
    1024 * 1024
}
fn default_true() -> bool {
    true
}

/// Measurements of one HTTP run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpDetails {
    pub phases: Phases,
    pub status: Option<u16>,
    /// Earliest `notAfter` over the presented chain, Unix seconds. With redirects, the earliest
    /// over every chain met on the way: any of them expiring breaks the check.
    pub cert_earliest_expiry: Option<i64>,
    /// The first leaf certificate presented, with the verdict when verification failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<super::tls::CertInfo>,
    pub body_bytes: u64,
    pub redirects: u32,
    pub tls: bool,
}

/// A built HTTP probe.
#[derive(Debug)]
pub struct HttpProbe {
    /// Boxed: keeps the `Probe` enum's variants close in size.
    checks: Box<Checks>,
    url: Url,
    method: Method,
    /// The configured headers (a user-agent among them overrides ours), in order; a slice
    /// rather than a `HeaderMap`, whose first insert reserves ~600 bytes per probe.
    headers: Box<[(HeaderName, HeaderValue)]>,
    /// Marked sensitive, so `Debug` never prints it.
    auth: Option<HeaderValue>,
    body: Bytes,
    /// Always built: a plain-http check may be redirected to https.
    tls: TlsClient,
}

/// Per-run state kept outside the timed future so a timeout still reports what was measured.
struct RunState {
    clock: PhaseClock,
    sink: ExpirySink,
    details: HttpDetails,
    /// The run's one deadline (over every hop) and its 1xx count, enforced on each IO.
    limits: Limits,
}

/// How one hop ended when it did not fail.
enum Hop {
    Redirect(StatusCode, String),
    /// Final response; the body is kept only when a body check needs it.
    Done(Vec<u8>),
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid {
        field,
        message: message.to_string(),
    }
}

fn env_secret(name: &str) -> Result<String, BuildError> {
    std::env::var(name).map_err(|_| BuildError::MissingEnv(name.to_owned()))
}

impl HttpProbe {
    pub fn build(spec: &HttpSpec) -> Result<Self, BuildError> {
        let url =
            Url::parse(&spec.url).map_err(|e| invalid("url", format!("{}: {e}", spec.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(
                "url",
                format!("{} is not an http(s) URL", spec.url),
            ));
        }
        let method = Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| invalid("method", e))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid("headers", e))?;
            let v = HeaderValue::from_str(value).map_err(|e| invalid("headers", e))?;
            headers.insert(n, v);
        }
        // One value per name (as `insert` left them), in insertion order.
        let headers = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let auth = match (&spec.basic_auth, &spec.bearer_token_env) {
            (Some(_), Some(_)) => {
                let msg = "cannot be combined with basic_auth";
                return Err(invalid("bearer_token_env", msg));
            }
            (Some(b), None) => {
                let pair = format!("{}:{}", b.username, env_secret(&b.password_env)?);
                Some(format!("Basic {}", base64(pair.as_bytes())))
            }
            (None, Some(var)) => Some(format!("Bearer {}", env_secret(var)?)),
            (None, None) => None,
        };
        let auth = auth
            .map(|a| {
                // The message must not echo the secret.
                let mut v = HeaderValue::try_from(a)
                    .map_err(|_| invalid("basic_auth", "secret is not a valid header value"))?;
                v.set_sensitive(true);
                Ok::<_, BuildError>(v)
            })
            .transpose()?;
        Ok(HttpProbe {
            tls: TlsClient::build(spec.tls_verify, spec.ca_file.as_deref())?,
            body: Bytes::from(spec.body.clone().unwrap_or_default()),
            checks: Box::new(Checks::build(spec)?),
            url,
            method,
            headers,
            auth,
        })
    }

    pub async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut st = RunState {
            clock: PhaseClock::default(),
            sink: ExpirySink::default(),
            details: HttpDetails::default(),
            limits: Limits::new(deadline),
        };
        let result = tokio::time::timeout_at(deadline, self.exchange(&mut st)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(fail)) if fail.0 != Reason::Timeout => Some(fail),
            // The guard saw the deadline before the timer did: the same report.
            Ok(Err(_)) | Err(_) => {
                let mut msg = st.clock.timeout_message(timeout);
                if st.clock.current() == Some(Phase::Transfer) {
                    msg += &format!("; {} body bytes received", st.details.body_bytes);
                }
                Some((Reason::Timeout, msg))
            }
        };
        st.clock.end();
        let mut details = st.details;
        details.phases = st.clock.phases;
        details.cert_earliest_expiry = st.sink.get();
        details.cert = st.sink.leaf();
        match failure {
            None => Outcome::ok(Details::Http(details)),
            Some((reason, message)) => Outcome::fail(reason, message, Details::Http(details)),
        }
    }

    /// Follows redirects up to the limit, then checks the final body.
    async fn exchange(&self, st: &mut RunState) -> Result<(), Fail> {
        let mut url = self.url.clone();
        let mut method = self.method.clone();
        let mut body = self.body.clone();
        loop {
            let same_origin = url.origin() == self.url.origin();
            let req = self.request(&url, &method, body.clone(), same_origin)?;
            match self.hop(&url, req, st).await? {
                Hop::Done(body) => return self.checks.body(&body),
                Hop::Redirect(status, location) => {
                    let next = url.join(&location).map_err(|e| {
                        let msg = format!("redirect to unusable Location {location:?}: {e}");
                        (Reason::Protocol, msg)
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        let msg = format!("redirect to non-HTTP location {next}");
                        return Err((Reason::Protocol, msg));
                    }
                    // Same rule as browsers and reqwest: 301/302/303 turn into a body-less GET.
                    let downgrade = matches!(status.as_u16(), 301..=303);
                    if downgrade && method != Method::GET && method != Method::HEAD {
                        method = Method::GET;
                        body = Bytes::new();
                    }
                    st.details.redirects += 1;
                    url = next;
                }
            }
        }
    }

    /// Credentials and a configured `Host` go only to the configured origin, never to the place
    /// a redirect points at.
    fn request(
        &self,
        url: &Url,
        method: &Method,
        body: Bytes,
        same_origin: bool,
    ) -> Result<Request<Full<Bytes>>, Fail> {
        let host = url.host_str().unwrap_or_default();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url[Position::BeforePath..Position::AfterQuery])
            .body(Full::new(body))
            .map_err(|e| {
                (
                    Reason::Protocol,
                    format!("cannot build request for {url}: {e}"),
                )
            })?;
        let headers = req.headers_mut();
        let host = HeaderValue::try_from(host).map_err(|e| (Reason::Protocol, e.to_string()))?;
        headers.insert(HOST, host);
        headers.insert(USER_AGENT, HeaderValue::from_static("lienthong"));
        for (name, value) in self.headers.iter() {
            if same_origin || name != HOST {
                headers.insert(name, value.clone());
            }
        }
        if let (Some(auth), true) = (&self.auth, same_origin) {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        Ok(req)
    }

    async fn hop(
        &self,
        url: &Url,
        req: Request<Full<Bytes>>,
        st: &mut RunState,
    ) -> Result<Hop, Fail> {
        let host = url.host_str().unwrap_or_default();
        let limits = st.limits.clone();
        st.details.tls = url.scheme() == "https";
        let io = exchange::connect(url, host, &self.tls, &limits, &mut st.clock, &st.sink).await?;
        exchange::http1(io, req, &limits, async |mut sender, req| {
            st.clock.begin(Phase::Processing);
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| hyper_fail("request", &e))?;
            st.clock.end();
            let status = resp.status();
            st.details.status = Some(status.as_u16());
            if status.is_redirection() && self.checks.may_follow(st.details.redirects) {
                if let Some(location) = resp.headers().get(LOCATION) {
                    let location = location.to_str().map_err(|_| {
                        (Reason::Protocol, "Location header is not ASCII".to_owned())
                    })?;
                    return Ok(Hop::Redirect(status, location.to_owned()));
                }
            }
            self.checks.status(status, st.details.redirects)?;
            st.clock.begin(Phase::Transfer);
            let body = self
                .checks
                .read_body(resp.into_body(), &mut st.details)
                .await?;
            st.clock.end();
            Ok(Hop::Done(body))
        })
        .await
    }
}

pub(crate) fn hyper_fail(what: &str, e: &hyper::Error) -> Fail {
    use std::error::Error;
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match GuardError::find(e) {
        Some(GuardError::Deadline) => return (Reason::Timeout, format!("{what}: {e}")),
        Some(g @ GuardError::Informational) => return (Reason::Protocol, format!("{what}: {g}")),
        None => {}
    }
    let mut text = format!("{what}: {e}");
    let mut reason = Reason::Protocol;
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                reason = Reason::Connect;
            }
        }
        source = s.source();
    }
    (reason, text)
}

/// Standard base64 with padding (RFC 4648), for the Basic auth header only.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}

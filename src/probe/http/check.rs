//! What the HTTP probe expects of a response: status set, capped body read, body checks.
//! Compiled once at build time; evaluated on the final response of every run.

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use super::{hyper_fail, invalid, HttpDetails, HttpSpec, JsonFieldSpec};
use crate::probe::tcp::Fail;
use crate::probe::{BuildError, Reason};

#[derive(Debug)]
pub(super) struct Checks {
    expect_status: Vec<u16>,
    max_redirects: u32,
    body_max_bytes: u64,
    contains: Option<String>,
    regex: Option<std::sync::Arc<regex::Regex>>,
    json: Option<JsonFieldSpec>,
}

impl Checks {
    pub(super) fn build(spec: &HttpSpec) -> Result<Self, BuildError> {
        if let Some(c) = spec
            .expect_status
            .iter()
            .find(|c| !(100..=599).contains(*c))
        {
            return Err(invalid(
                "expect_status",
                format!("{c} is not an HTTP status"),
            ));
        }
        let regex = spec
            .body_regex
            .as_deref()
            .map(crate::probe::patterns::text)
            .transpose()
            .map_err(|e| invalid("body_regex", e))?;
        if let Some(j) = &spec.expect_json {
            if !(j.pointer.is_empty() || j.pointer.starts_with('/')) {
                let msg = format!("{:?} is not a JSON pointer (must start with /)", j.pointer);
                return Err(invalid("expect_json.pointer", msg));
            }
        }
        Ok(Checks {
            expect_status: spec.expect_status.clone(),
            max_redirects: spec.max_redirects,
            body_max_bytes: spec.body_max_bytes,
            contains: spec.body_contains.clone(),
            regex,
            json: spec.expect_json.clone(),
        })
    }

    /// Whether a 3xx after `redirects` hops may still be followed.
    pub(super) fn may_follow(&self, redirects: u32) -> bool {
        redirects < self.max_redirects
    }

    pub(super) fn status(&self, status: StatusCode, redirects: u32) -> Result<(), Fail> {
        let expected = &self.expect_status;
        let ok = match expected.is_empty() {
            true => status.is_success(),
            false => expected.contains(&status.as_u16()),
        };
        if ok {
            return Ok(());
        }
        let want = match expected.is_empty() {
            true => "2xx".to_owned(),
            false => format!("{expected:?}"),
        };
        let mut msg = format!("status {status} not in expected set {want}");
        if status.is_redirection() && self.max_redirects > 0 {
            msg += &format!(" (after {redirects} redirects, limit max_redirects reached)");
        }
        Err((Reason::HttpStatus, msg))
    }

    fn needs_body(&self) -> bool {
        self.contains.is_some() || self.regex.is_some() || self.json.is_some()
    }

    /// Reads frames until the end or the cap; never holds more than the cap plus one frame,
    /// and holds nothing when no body check needs the bytes.
    pub(super) async fn read_body(
        &self,
        mut body: Incoming,
        details: &mut HttpDetails,
    ) -> Result<Vec<u8>, Fail> {
        let cap = self.body_max_bytes;
        let too_large = |what: String| {
            let msg = format!("body exceeds body_max_bytes = {cap} ({what})");
            (Reason::BodyTooLarge, msg)
        };
        // A declared Content-Length over the cap fails without reading anything.
        if let Some(n) = body.size_hint().exact().filter(|n| *n > cap) {
            return Err(too_large(format!("Content-Length: {n}")));
        }
        let keep = self.needs_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| hyper_fail("reading body", &e))?;
            if let Ok(data) = frame.into_data() {
                details.body_bytes += data.len() as u64;
                if details.body_bytes > cap {
                    return Err(too_large(format!("{} bytes read", details.body_bytes)));
                }
                if keep {
                    buf.extend_from_slice(&data);
                }
            }
        }
        Ok(buf)
    }

    pub(super) fn body(&self, body: &[u8]) -> Result<(), Fail> {
        if !self.needs_body() {
            return Ok(());
        }
        let mismatch = |msg: String| Err((Reason::BodyMismatch, msg));
        let text = String::from_utf8_lossy(body);
        if let Some(needle) = &self.contains {
            if !text.contains(needle.as_str()) {
                return mismatch(format!("body does not contain {needle:?}"));
            }
        }
        if let Some(re) = &self.regex {
            if !re.is_match(&text) {
                return mismatch(format!("body does not match /{re}/"));
            }
        }
        if let Some(spec) = &self.json {
            let json: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return mismatch(format!("body is not JSON: {e}")),
            };
            let Some(field) = json.pointer(&spec.pointer) else {
                return mismatch(format!("JSON has no field at {}", spec.pointer));
            };
            // Strings compare unquoted; everything else by its JSON text (`true`, `3`, `null`).
            let got = match field {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if got != spec.equals {
                let (p, want) = (&spec.pointer, &spec.equals);
                return mismatch(format!("JSON {p} is {got:?}, expected {want:?}"));
            }
        }
        Ok(())
    }
}

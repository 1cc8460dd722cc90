//! Bearer-token check of the write endpoints.
//!
//! - no token configured (the variable named by `[api] token_env` unset or empty) → 403, whatever
//!   the request carries: no credential can succeed;
//! - no `Authorization` header, or not `Bearer <token>` → 401 with `WWW-Authenticate: Bearer`;
//! - a token that does not match → 403.
//!
//! The comparison takes the same time whatever the presented token is (it depends only on the
//! configured token's length and on the length of the presented one, which the client knows).

use crate::token::equal;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use super::{ApiError, AppState};

/// Proof that the request carried the configured bearer token. Put it first among a handler's
/// extractors so that authentication is decided before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct Writer;

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        authorize(&parts.headers, app.api_token.as_deref())
    }
}

pub const DISABLED: &str =
    "write API disabled: set the environment variable named by [api] token_env";

/// Decides whether `headers` carry `token`.
pub fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<Writer, ApiError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, DISABLED));
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "Bearer realm=\"lienthong\"",
            "missing Authorization header: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(presented) = bearer(value) else {
        return Err(unauthorized(
            "Bearer realm=\"lienthong\", error=\"invalid_request\"",
            "malformed Authorization header: expected `Bearer <token>`",
        ));
    };
    if equal(presented.as_bytes(), token.as_bytes()) {
        Ok(Writer)
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "invalid bearer token"))
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    let rest = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() && !rest.contains(' '))
        .then_some(rest)
}

fn unauthorized(challenge: &'static str, reason: &str) -> ApiError {
    ApiError {
        challenge: Some(challenge),
        ..ApiError::new(StatusCode::UNAUTHORIZED, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    fn status(r: Result<Writer, ApiError>) -> StatusCode {
        r.map_or_else(|e| e.status, |_| StatusCode::OK)
    }

    #[test]
    fn decisions() {
        let t = Some("s3cret");
        assert_eq!(
            status(authorize(&headers(None), t)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(authorize(&headers(Some("Basic abc")), t)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(authorize(&headers(Some("Bearer")), t)),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(authorize(&headers(Some("Bearer s3cre")), t)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(authorize(&headers(Some("Bearer s3cret2")), t)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(authorize(&headers(Some("bearer s3cret")), t)),
            StatusCode::OK
        );
        assert_eq!(
            status(authorize(&headers(Some("Bearer s3cret")), None)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(authorize(&headers(Some("Bearer ")), Some(""))),
            StatusCode::FORBIDDEN
        );
    }
}

//! Where the incident store lives: `[store] url = "sqlite:PATH"` (the default, one box) or
//! `"postgres://user@host:port/db"` (shared by several instances). The PostgreSQL password is
//! never part of the URL: it comes from `[store] password_file` or `PGPASSWORD`, and is kept
//! out of every `Debug`/`Display` form.

use std::path::PathBuf;
use std::time::Duration;

/// A parsed `[store] url`.
#[derive(Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

/// A PostgreSQL server and database, with the password held apart.
#[derive(Clone, PartialEq)]
pub struct PgTarget {
    /// The URL as configured (it has no password: [`StoreLocation::parse`] refuses one).
    pub url: String,
    password: Option<String>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreLocation::Postgres(t) => f.write_str(&t.url),
        }
    }
}

pub const URL_HINT: &str = "expected \"sqlite:PATH\" or \"postgres://USER@HOST:PORT/DATABASE\" \
                            (the password goes in [store] password_file or PGPASSWORD)";

impl StoreLocation {
    /// Parses a `[store] url`. The error never repeats a password given in the URL.
    pub fn parse(s: &str) -> Result<StoreLocation, String> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("store url {s:?} names no file: {URL_HINT}"));
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let u = url::Url::parse(s).map_err(|e| {
                format!("store url is not a valid PostgreSQL URL ({e}): {URL_HINT}")
            })?;
            if u.password().is_some() {
                return Err(format!("store url must not contain a password: {URL_HINT}"));
            }
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("store url {s:?} names no host: {URL_HINT}"));
            }
            s.parse::<tokio_postgres::Config>()
                .map_err(|e| format!("store url {s:?}: {e}: {URL_HINT}"))?;
            return Ok(StoreLocation::Postgres(PgTarget {
                url: s.to_string(),
                password: None,
            }));
        }
        Err(format!("store url {s:?}: {URL_HINT}"))
    }
}

impl PgTarget {
    /// Sets the password (from the password file or `PGPASSWORD`).
    pub fn with_password(mut self, password: Option<String>) -> PgTarget {
        self.password = password.filter(|p| !p.is_empty());
        self
    }

    /// The client configuration: connect timeout, keepalives, `application_name`.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c: tokio_postgres::Config = self.url.parse().expect("checked by parse");
        if let Some(p) = &self.password {
            c.password(p.as_bytes());
        }
        if c.get_application_name().is_none() {
            c.application_name("lienthong");
        }
        c.connect_timeout(Duration::from_secs(5));
        c.keepalives(true);
        c.keepalives_idle(Duration::from_secs(10));
        c
    }
}

/// Reads a password file: its first line, trimmed.
pub fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("store password_file {}: {e}", path.display()))?;
    Ok(s.lines().next().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            StoreLocation::parse("sqlite:/var/lib/lienthong.db").unwrap(),
            StoreLocation::Sqlite("/var/lib/lienthong.db".into())
        );
        assert_eq!(
            StoreLocation::parse("sqlite:rel.db").unwrap(),
            StoreLocation::Sqlite("rel.db".into())
        );
        let pg = StoreLocation::parse("postgres://lt@127.0.0.1:5432/lienthong").unwrap();
        assert_eq!(pg.to_string(), "postgres://lt@127.0.0.1:5432/lienthong");
        let err = StoreLocation::parse("postgres://lt:hunter2@127.0.0.1/x").unwrap_err();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(StoreLocation::parse("mysql://x").is_err());
        assert!(StoreLocation::parse("sqlite:").is_err());
        let StoreLocation::Postgres(t) = pg else {
            unreachable!()
        };
        let t = t.with_password(Some("s3cret".into()));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!format!("{:?}", t.config()).contains("s3cret"));
    }
}

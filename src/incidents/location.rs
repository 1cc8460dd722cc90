//! Where the incident store lives: `[store] url = "sqlite:PATH"` (the default, one box) or
//! `"postgres://user@host:port/db"` (shared by several instances). The PostgreSQL password is
//! never part of the URL: it comes from `[store] password_file` or `PGPASSWORD`, and is kept
//! out of every `Debug`/`Display` form.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

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
    tls: Option<PgTls>,
}

/// TLS to PostgreSQL: required, the server's certificate verified (chain and host name of the
/// URL) against the CA certificates of `[store] ca_file` only.
#[derive(Clone)]
struct PgTls {
    ca_file: PathBuf,
    connector: tokio_postgres_rustls::MakeRustlsConnect,
}

impl PartialEq for PgTls {
    fn eq(&self, other: &Self) -> bool {
        self.ca_file == other.ca_file
    }
}

/// What a connection needs: the client configuration and, with `[store] ca_file`, the TLS
/// connector (None: plain TCP).
#[derive(Clone)]
pub struct PgConfig {
    pub pg: tokio_postgres::Config,
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("pg", &self.pg)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.tls.as_ref().map(|t| &t.ca_file))
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
                tls: None,
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

    /// TLS with the server verified against the PEM certificates of `ca_file`; None keeps
    /// plain TCP, which a URL asking `sslmode=require` refuses (it could not be verified).
    pub fn with_ca_file(mut self, ca_file: Option<&Path>) -> Result<PgTarget, String> {
        let Some(path) = ca_file else {
            let c: tokio_postgres::Config = self.url.parse().expect("checked by parse");
            if c.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                return Err(
                    "store url asks sslmode=require: set [store] ca_file to the PEM file of the \
                     CA that signed the PostgreSQL server's certificate (lienthong verifies it), \
                     or drop sslmode from the URL"
                        .into(),
                );
            }
            self.tls = None;
            return Ok(self);
        };
        let what = |e: &dyn std::fmt::Display| format!("store ca_file {}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| what(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| what(&e))?)
                .map_err(|e| what(&e))?;
        }
        if roots.is_empty() {
            return Err(what(
                &"holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| what(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.tls = Some(PgTls {
            ca_file: path.to_path_buf(),
            connector: tokio_postgres_rustls::MakeRustlsConnect::new(client),
        });
        Ok(self)
    }

    /// True when connections use TLS (`[store] ca_file`).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The client configuration: connect timeout, keepalives, `application_name`; with TLS,
    /// `sslmode=require` and the connector.
    pub fn config(&self) -> PgConfig {
        let mut c: tokio_postgres::Config = self.url.parse().expect("checked by parse");
        if self.tls.is_some() {
            c.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        if let Some(p) = &self.password {
            c.password(p.as_bytes());
        }
        if c.get_application_name().is_none() {
            c.application_name("lienthong");
        }
        c.connect_timeout(Duration::from_secs(5));
        c.keepalives(true);
        c.keepalives_idle(Duration::from_secs(10));
        PgConfig {
            pg: c,
            tls: self.tls.as_ref().map(|t| t.connector.clone()),
        }
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

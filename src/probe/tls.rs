//! TLS helpers shared by the http and tcp kinds: a rustls client config that records the full
//! peer chain and reports verification separately, and certificate expiry parsing.
//!
//! Why a wrapper verifier: when verification fails rustls hands back no connection, so
//! `peer_certificates()` is unavailable exactly when an expired or unknown certificate matters
//! most. The [`Recorder`] sees the presented chain first, notes its earliest `notAfter`, and only
//! then delegates the verdict to the real [`WebPkiServerVerifier`] (or accepts when verification
//! is off).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::BuildError;

/// Verification settings of one check, built once; every handshake gets a fresh config so that
/// no session is resumed (a resumed handshake shows no chain) and the recorder is per run.
#[derive(Clone)]
pub(crate) struct TlsClient {
    provider: Arc<CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
    verify: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trust anchors are webpki-roots plus the certificates of `ca_file` (PEM), if any.
    pub(crate) fn build(verify: bool, ca_file: Option<&str>) -> Result<Self, BuildError> {
        // Checks without their own CA share one verifier: 10,000 checks would otherwise hold
        // 10,000 copies of the web PKI roots (~10 KiB each).
        static SHARED: std::sync::OnceLock<(Arc<CryptoProvider>, Arc<WebPkiServerVerifier>)> =
            std::sync::OnceLock::new();
        if ca_file.is_none() {
            if let Some((provider, webpki)) = SHARED.get() {
                return Ok(TlsClient {
                    provider: provider.clone(),
                    webpki: webpki.clone(),
                    verify,
                });
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            add_pem_roots(&mut roots, path)?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| invalid("ca_file", e))?;
        if ca_file.is_none() {
            let _ = SHARED.set((provider.clone(), webpki.clone()));
        }
        Ok(TlsClient {
            provider,
            webpki,
            verify,
        })
    }

    /// Handshakes over `io` with SNI/verification name `name`. The earliest expiry of the
    /// presented chain lands in `sink` even when the handshake then fails.
    pub(crate) async fn connect<IO>(
        &self,
        io: IO,
        name: &str,
        alpn: &[&[u8]],
        sink: &ExpirySink,
    ) -> Result<TlsStream<IO>, String>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let server_name = ServerName::try_from(name.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
        let recorder = Arc::new(Recorder {
            inner: self.webpki.clone(),
            verify: self.verify,
            sink: sink.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(recorder)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = Resumption::disabled();
        TlsConnector::from(Arc::new(config))
            .connect(server_name, io)
            .await
            .map_err(|e| format!("TLS handshake with {name} failed: {e}"))
    }
}

fn add_pem_roots(roots: &mut RootCertStore, path: &str) -> Result<(), BuildError> {
    let pem = std::fs::read(path).map_err(|source| BuildError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| invalid("ca_file", format!("{path}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid("ca_file", format!("{path}: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(invalid(
            "ca_file",
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid {
        field,
        message: e.to_string(),
    }
}

/// Earliest `notAfter` (Unix seconds) over every chain seen in one run (several with
/// redirects), and the first leaf certificate with the verifier's verdict. Shared with the
/// verifier, and readable after a timeout dropped the handshake.
#[derive(Debug, Clone)]
pub(crate) struct ExpirySink(Arc<AtomicI64>, Arc<std::sync::Mutex<Option<CertInfo>>>);

impl Default for ExpirySink {
    fn default() -> Self {
        ExpirySink(Arc::new(AtomicI64::new(i64::MAX)), Default::default())
    }
}

impl ExpirySink {
    fn record(&self, not_after: i64) {
        self.0.fetch_min(not_after, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<i64> {
        let v = self.0.load(Ordering::Relaxed);
        (v != i64::MAX).then_some(v)
    }

    fn record_leaf(&self, info: CertInfo) {
        let mut g = self.1.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(info);
        }
    }

    /// The first leaf certificate seen in the run, with its verdict.
    pub(crate) fn leaf(&self) -> Option<CertInfo> {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What is wrong with a presented certificate (the reason of a failed handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertProblem {
    /// Past its `notAfter` (or not valid yet).
    Expired,
    /// Not chained to a trusted root: self-signed, unknown CA, bad signature, X.509 v1 …
    Untrusted,
    /// Valid, but not for the name the check asked for.
    Hostname,
}

/// The leaf certificate a target presented: what a technician needs to renew or fix it.
/// `id` (issuer + serial) names one certificate across checks: a site whose endpoint and
/// conference point share a certificate has one certificate incident.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CertInfo {
    pub id: String,
    pub subject: String,
    pub issuer: String,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// Set when verification was on and failed.
    pub problem: Option<CertProblem>,
}

/// Reads a leaf certificate's identity; `None` when it does not parse.
fn leaf_info(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let issuer = cert.issuer().to_string();
    Some(CertInfo {
        id: format!("{issuer}#{}", cert.raw_serial_as_string()),
        subject: cert.subject().to_string(),
        issuer,
        not_after: cert.validity().not_after.timestamp(),
        problem: None,
    })
}

/// Maps the real verifier's error to what a team must do about it.
fn classify(e: &rustls::Error) -> CertProblem {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => CertProblem::Expired,
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => CertProblem::Hostname,
        _ => CertProblem::Untrusted,
    }
}

/// Earliest `notAfter` of the certificates that parse; unparsable ones are skipped (the real
/// verifier rejects them anyway).
pub(crate) fn earliest_expiry<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> Option<i64> {
    chain
        .into_iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    verify: bool,
    sink: ExpirySink,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref());
        if let Some(t) = earliest_expiry(chain) {
            self.sink.record(t);
        }
        let mut leaf = leaf_info(end_entity.as_ref());
        if !self.verify {
            if let Some(info) = leaf {
                self.sink.record_leaf(info);
            }
            return Ok(ServerCertVerified::assertion());
        }
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Some(info) = leaf.as_mut() {
            if let Err(e) = &verdict {
                // An expired certificate is "expired" whatever else is wrong with it (webpki
                // rejects an X.509 v1 or self-signed one before it looks at the dates).
                info.problem = Some(if info.not_after < now.as_secs() as i64 {
                    CertProblem::Expired
                } else {
                    classify(e)
                });
            }
        }
        if let Some(info) = leaf {
            self.sink.record_leaf(info);
        }
        verdict
    }

    // Handshake signatures are checked even with verification off: they prove the peer holds
    // the key of the certificate it showed, which is protocol correctness, not trust.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

//! The demo's certificates: a CA made at start-up (written as PEM for the probes' `ca_file`) and
//! one leaf signed by it for every TLS target, valid for `Scenario::cert_valid_for` (10 days by
//! default, so "certificate near expiry" is always on in the demo).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::SimError;

/// The CA PEM plus a rustls server config serving the leaf (and the CA) to every TLS target.
pub(crate) struct DemoPki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

const DAY: Duration = Duration::from_secs(86_400);

fn cert_err(what: &str) -> impl Fn(rcgen::Error) -> SimError + '_ {
    move |e| SimError::Cert(format!("{what}: {e}"))
}

/// Makes the CA and a leaf for `ips` (plus `names` and `localhost`).
pub(crate) fn make(
    ips: &[IpAddr],
    names: &[String],
    leaf_valid_for: Duration,
) -> Result<DemoPki, SimError> {
    let now = SystemTime::now();
    let back = now.checked_sub(DAY).unwrap_or(now);

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("CA params"))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "lienthong demo CA (simulator only)");
    ca.distinguished_name
        .push(DnType::OrganizationName, "lienthong simulator");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = back.into();
    ca.not_after = (now + 365 * DAY).into();
    let ca_key = KeyPair::generate().map_err(cert_err("CA key"))?;
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(cert_err("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("leaf params"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "lienthong-sim");
    let mut sans: Vec<SanType> = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    for name in names.iter().map(String::as_str).chain(["localhost"]) {
        match name.try_into() {
            Ok(n) => sans.push(SanType::DnsName(n)),
            Err(e) => tracing::warn!("simulator: certificate name {name:?} skipped: {e}"),
        }
    }
    leaf.subject_alt_names = sans;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = back.into();
    leaf.not_after = (now + leaf_valid_for).into();
    let leaf_key = KeyPair::generate().map_err(cert_err("leaf key"))?;
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(cert_err("leaf certificate"))?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Cert(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| SimError::Cert(format!("TLS server config: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(DemoPki {
        ca_pem: ca_cert.pem(),
        server: Arc::new(server),
    })
}

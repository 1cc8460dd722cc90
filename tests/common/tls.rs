//! In-process PKI (rcgen) and TLS test servers (rustls, ring provider).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A calendar date (year, month, day), UTC midnight.
pub type Ymd = (i32, u8, u8);

/// Unix seconds of a [`Ymd`].
pub fn unix(d: Ymd) -> i64 {
    date_time_ymd(d.0, d.1, d.2).unix_timestamp()
}

/// A certificate authority (root or intermediate) able to sign further certificates.
pub struct Ca {
    pub der: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate with its key and the intermediates to present after it.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    /// The leaf certificate and its key as PEM (for servers that read files).
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params(name: &str, not_after: Option<Ymd>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2000, 1, 1);
    if let Some(d) = not_after {
        params.not_after = date_time_ymd(d.0, d.1, d.2);
    }
    params
}

impl Ca {
    /// A self-signed root, valid 2000 → 4096.
    pub fn root(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(name, None);
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by `self`, expiring on `not_after`.
    pub fn intermediate(&self, name: &str, not_after: Ymd) -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(name, Some(not_after));
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP literals), valid `from` → `until`.
    /// `intermediates` are appended to the presented chain (leaf first).
    pub fn leaf(&self, names: &[&str], from: Ymd, until: Ymd, intermediates: &[&Ca]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(until.0, until.1, until.2);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let mut chain = vec![cert.der().clone()];
        chain.extend(intermediates.iter().map(|ca| ca.der.clone()));
        Leaf {
            chain,
            key: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as a PEM file (deleted when the handle drops).
    pub fn pem_file(&self) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &self.pem).expect("write pem");
        file
    }
}

impl Leaf {
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("server cert");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// An axum listener that terminates TLS. Handshakes run one at a time (fine for tests); a
/// failed one (the client rejected our certificate) is skipped.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub async fn bind(config: Arc<ServerConfig>) -> TlsListener {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(2), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over HTTPS with `leaf`.
pub async fn serve_https(router: axum::Router, leaf: &Leaf) -> SocketAddr {
    let listener = TlsListener::bind(leaf.server_config(&[b"http/1.1"])).await;
    let addr = listener.tcp.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Runs `handler` on every connection after a successful TLS handshake.
pub async fn serve_tls_raw<F, Fut>(leaf: &Leaf, handler: F) -> SocketAddr
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(leaf.server_config(&[]));
    let handler = Arc::new(handler);
    super::serve_raw(move |tcp| {
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                handler(tls).await;
            }
        }
    })
    .await
}

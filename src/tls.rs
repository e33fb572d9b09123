//! TLS for `wss://` and HTTPS, through [rustls] (feature `tls`, on by default).
//!
//! RFC 6455 §4.1 step 5: for a `wss://` URL, "the client MUST perform a TLS handshake
//! over the connection after opening the connection and before sending the handshake
//! data"; the WebSocket bytes then travel inside TLS records, unchanged. rustls is
//! sans-IO like [`Connection`](crate::Connection): ciphertext in, plaintext out and the
//! other way round, so it runs inside the event loop ([`server::ServerConfig::tls`])
//! and under the blocking drivers ([`blocking::connect`]) without a runtime.
//!
//! This module makes the rustls configurations: a server's from PEM files, a client's
//! that trusts the platform's roots or a CA of your own. Both offer ALPN `http/1.1`
//! only (WebSocket over HTTP/2, RFC 8441, is not supported). The crypto is rustls'
//! `ring` provider.
//!
//! A local certificate for trying it out (`deploy/local-cert.sh` runs the same). It
//! must not be a CA certificate, which `openssl req -x509` makes unless told otherwise:
//! rustls refuses a CA certificate presented as a server's (`CaUsedAsEndEntity`).
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
//!   -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!   -addext basicConstraints=critical,CA:FALSE -keyout key.pem -out cert.pem
//! rfc6455 serve --tls-cert cert.pem --tls-key key.pem
//! rfc6455 client wss://localhost:9001/ --ca cert.pem
//! ```
//!
//! [`server::ServerConfig::tls`]: crate::server::ServerConfig::tls
//! [`blocking::connect`]: crate::blocking::connect

pub use rustls;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The one application protocol offered in ALPN: HTTP/1.1, which carries the opening
/// handshake (RFC 6455 §4.1).
///
/// ```
/// assert_eq!(rfc6455::tls::ALPN_HTTP_1_1, b"http/1.1");
/// ```
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be made.
///
/// ```
/// let err = rfc6455::tls::server_config("no-such.pem".as_ref(), "no-such-key.pem".as_ref())
///     .unwrap_err();
/// assert!(err.to_string().starts_with("no-such.pem: "), "{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    Pem(PathBuf, String),
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// The platform's trusted roots could not be loaded (none were found).
    NoRoots(String),
    /// rustls refused the configuration (e.g. the key does not match the
    /// certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem(path, e) => write!(f, "{}: {e}", path.display()),
            TlsError::NoCertificate(path) => {
                write!(f, "{}: no certificate in the file", path.display())
            }
            TlsError::NoRoots(e) => write!(f, "no trusted root certificates: {e}"),
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// The crypto provider every configuration here uses: rustls' `ring` (it builds in
/// half the time of `aws-lc-rs` on our machines, and either is maintained).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file (a chain: the leaf first).
pub(crate) fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |e: rustls::pki_types::pem::Error| TlsError::Pem(path.into(), e.to_string());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(chain)
}

/// A server configuration from a certificate chain and its private key (PEM files:
/// PKCS#8, PKCS#1 or SEC1 keys), offering ALPN `http/1.1`, TLS 1.2 and 1.3.
///
/// ```
/// use rfc6455::server::ServerConfig;
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
/// # std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
/// // `dir` holds a self-signed certificate for localhost and its key.
/// let tls = rfc6455::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// // ALPN (RFC 7301) names HTTP/1.1, which carries the opening handshake (RFC 6455 §4.1).
/// assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
/// let config = ServerConfig { tls: Some(tls), ..ServerConfig::default() };
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), rfc6455::tls::TlsError>(())
/// ```
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certificates(cert)?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem(key.into(), e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts the platform's roots (on Linux the system store,
/// e.g. `/etc/ssl/certs`, or `SSL_CERT_FILE`).
///
/// ```
/// use rfc6455::blocking::{self, Error};
/// use rfc6455::tls::rustls::{CertificateError, Error as TlsError};
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
/// # std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
/// # let server = rfc6455::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let port = listener.local_addr()?.port();
/// # std::thread::spawn(move || {
/// #     let tcp = listener.accept()?.0;
/// #     rfc6455::blocking::accept_tls(tcp, server, rfc6455::Config::default(), |_| Ok(None)).map(drop)
/// # });
/// // A local `wss://` server on `port` with a self-signed certificate: no platform root
/// // vouches for it, and a certificate that cannot be verified fails the connection in
/// // the TLS handshake (RFC 6455 §4.1).
/// let config = rfc6455::tls::client_config()?;
/// let refused = blocking::connect_tls(&format!("wss://localhost:{port}/"), config);
/// let unknown = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
/// assert!(matches!(refused, Err(Error::Tls(e)) if e == unknown));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the platform store is empty".into());
        return Err(TlsError::NoRoots(why));
    }
    client_config_with_roots(roots)
}

/// A client configuration that trusts only the certificates of a PEM file (your own
/// CA, or a self-signed server certificate).
///
/// ```
/// use rfc6455::blocking;
///
/// # let dir = std::env::temp_dir().join(format!("rfc6455-doc-{}-{}", std::process::id(), line!()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
/// # std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
/// # std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
/// # let server = rfc6455::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let port = listener.local_addr()?.port();
/// # std::thread::spawn(move || -> Result<(), rfc6455::blocking::Error> {
/// #     for tcp in listener.incoming() {
/// #         let server = server.clone();
/// #         std::thread::spawn(move || -> Result<(), rfc6455::blocking::Error> {
/// #             let config = rfc6455::Config::default();
/// #             let mut ws = rfc6455::blocking::accept_tls(tcp?, server, config, |_| Ok(None))?;
/// #             loop {
/// #                 ws.read()?;
/// #             }
/// #         });
/// #     }
/// #     Ok(())
/// # });
/// // A local `wss://` server on `port`, with a self-signed certificate for localhost
/// // (in `dir`): trusted as its own CA.
/// let config = rfc6455::tls::client_config_with_ca(&dir.join("cert.pem"))?;
/// let ws = blocking::connect_tls(&format!("wss://localhost:{port}/"), config.clone())?;
/// assert!(ws.get_ref().tls().is_some());
/// // Trust does not waive the name check: the certificate names localhost only.
/// let by_ip = blocking::connect_tls(&format!("wss://127.0.0.1:{port}/"), config);
/// let why = by_ip.unwrap_err().to_string();
/// assert!(why.contains(r#"certificate not valid for name "127.0.0.1""#), "{why}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_config_with_ca(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(ca)? {
        roots.add(cert)?;
    }
    client_config_with_roots(roots)
}

/// A client configuration that trusts `roots`, offering ALPN `http/1.1`.
///
/// ```
/// let roots = rfc6455::tls::rustls::RootCertStore::empty();
/// let config = rfc6455::tls::client_config_with_roots(roots)?;
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// # Ok::<(), rfc6455::tls::TlsError>(())
/// ```
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, TlsError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// One line that says what a TLS session agreed: version, cipher suite, ALPN, and the
/// server name the client asked for (SNI), e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384
/// alpn=http/1.1 sni=localhost`. `None` while the handshake is running.
///
/// ```
/// let config = rfc6455::tls::client_config_with_roots(rustls::RootCertStore::empty())?;
/// let name = "localhost".try_into().unwrap();
/// let conn = rfc6455::tls::rustls::ClientConnection::new(config, name).unwrap();
/// assert_eq!(rfc6455::tls::describe(&conn, None), None);
/// # Ok::<(), rfc6455::tls::TlsError>(())
/// ```
pub fn describe<D>(conn: &rustls::ConnectionCommon<D>, sni: Option<&str>) -> Option<String> {
    if conn.is_handshaking() {
        return None;
    }
    let version = conn.protocol_version()?;
    let suite = conn.negotiated_cipher_suite()?;
    let mut line = format!("{version:?} {:?}", suite.suite());
    if let Some(alpn) = conn.alpn_protocol() {
        line += &format!(" alpn={}", String::from_utf8_lossy(alpn));
    }
    if let Some(sni) = sni {
        line += &format!(" sni={sni}");
    }
    Some(line)
}

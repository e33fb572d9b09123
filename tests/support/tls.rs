//! Certificates for the TLS tests, made once per test binary with rcgen: a CA, a
//! server certificate it signs for `localhost` and 127.0.0.1, a second CA nobody
//! trusts, and a certificate (signed by the first CA) for another name.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rfc6455::blocking::{self, ClientStream, Error, WebSocket};
use rfc6455::tls::rustls;
use rfc6455::{CloseCode, Event};
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub struct Pki {
    /// The CA that signs `cert` and `other_name_cert` (PEM).
    pub ca: PathBuf,
    /// The server's certificate for `localhost` and 127.0.0.1, and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA that signed nothing here: a client that trusts only it fails.
    pub other_ca: PathBuf,
    /// A certificate signed by `ca` for `example.test` only, and its key.
    pub other_name_cert: PathBuf,
    pub other_name_key: PathBuf,
}

/// The certificates, written under the test target's temporary directory.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_pem, ca) = new_ca("rfc6455 test CA");
        let (other_ca_pem, _) = new_ca("nobody's CA");
        let (cert, key) = leaf(&["localhost", "127.0.0.1"], &ca);
        let (other_cert, other_key) = leaf(&["example.test"], &ca);
        Pki {
            ca: write("ca.pem", ca_pem),
            cert: write("cert.pem", cert),
            key: write("key.pem", key),
            other_ca: write("other-ca.pem", other_ca_pem),
            other_name_cert: write("other-name.pem", other_cert),
            other_name_key: write("other-name-key.pem", other_key),
        }
    })
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A server certificate for `names` signed by `ca`: its PEM and its key's PEM.
fn leaf(names: &[&str], ca: &Issuer<'static, KeyPair>) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "rfc6455 test server");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A client configuration that trusts the test CA.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    rfc6455::tls::client_config_with_ca(&pki().ca).unwrap()
}

/// The server configuration with the test certificate.
pub fn server_config() -> Arc<rustls::ServerConfig> {
    rfc6455::tls::server_config(&pki().cert, &pki().key).unwrap()
}

/// A raw TLS stream to `addr` (TLS handshake done, nothing else sent), for tests that
/// write bytes of their own inside TLS.
pub type RawTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub fn raw_tls(addr: &str) -> RawTls {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let name = "localhost".try_into().unwrap();
    let mut session = rustls::ClientConnection::new(client_config(), name).unwrap();
    while session.is_handshaking() {
        session.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(session, tcp)
}

/// A `wss://` client that trusts the test CA, with a 10 s read timeout.
pub fn connect(url: &str) -> WebSocket<ClientStream> {
    let ws = blocking::connect_tls(url, client_config()).unwrap();
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ws
}

/// Reads events until the peer's Close; returns its code.
pub fn close_code(ws: &mut WebSocket<ClientStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Event::Close(frame)) => return frame.map_or(1005, |f| f.code.0),
            Ok(_) => {}
            Err(e) => panic!("no Close frame: {e}"),
        }
    }
}

/// Messages both ways, a ping, a close code: what every TLS test client does.
pub fn converse(ws: &mut WebSocket<ClientStream>) {
    ws.send_text("hello over TLS").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("hello over TLS".into()));
    // Larger than rustls' 64 KiB buffer limit and than one TLS record (16 KiB): the
    // writes go out in parts.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(&big).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Binary(big));
    // Back to back, so that records end one message and begin the next (the server
    // takes decrypted bytes straight into the message being assembled).
    let text = "é-".repeat(40_000);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    ws.send_text(&text).unwrap();
    ws.send_binary(&bytes).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text(text));
    assert_eq!(ws.read().unwrap(), Event::Binary(bytes));
    ws.send_ping(b"tls?").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Pong(b"tls?".to_vec()));
    ws.close(CloseCode(4001), "done").unwrap();
    assert_eq!(close_code(ws), 4001);
    assert!(matches!(ws.read(), Err(Error::Closed)));
}

/// Everything a raw TLS stream reads until the server ends it, and whether it ended
/// TLS properly (close_notify: rustls reads `Ok(0)`) rather than with a bare TCP FIN.
pub fn read_to_end(stream: &mut RawTls) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (bytes, true),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return (bytes, false),
            Err(e) => panic!("read failed after {} bytes: {e}", bytes.len()),
        }
    }
}

/// Everything a plain TCP peer reads until the server closes (a reset counts as the
/// end too); panics if the server keeps it open for the 10 s read timeout.
pub fn tcp_read_all(tcp: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    match tcp.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not end the connection: {e}"),
    }
    bytes
}

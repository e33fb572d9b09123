//! The rooms server's token verifier (`cli/src/chat/identity.rs`, built here alone)
//! on hostile tokens: arbitrary text, and tokens built from arbitrary header and
//! claims JSON, signed with the server's HS256 secret or with another one. It must
//! never panic, and never accept a token whose signature is not valid: the server
//! also holds an RSA and a P-256 public key, so any acceptance must be an HS256 token
//! whose HMAC (computed here, independently) is right, and its claims must hold
//! (`sub` present, `exp` not past).
#![no_main]

#[path = "../../cli/src/chat/identity.rs"]
#[allow(dead_code)]
mod identity;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use identity::{Key, TokenVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SECRET: &[u8] = b"fuzz-secret-of-32-bytes-or-more!!";
const RSA: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv6u18ZVGdEz6ICEU87Es
tggjqj8u1TmTU1GZHTlowGR4X+rAlSmN9ZpihTrK15mHPXXLd37WAnhWXdzRgIUl
3qSscF5kJQObGzPFHmeODJESABnnbi/tCotQp2Ki9BhhceLSXIAaM1NLYcnf7rGB
4Ow/Wi3TUY3LzLbsUND6ppRXgkw6D9oXxyEigjhGDQcO+Xg7NQ0h0ZW5tS7Heos6
KGQgiDlgvVH1yXdtXx/LJI0Xqt7nllTdvcVgfF/UzgQE+5UktjdvbZ1CNISsG4iJ
rRWM4hqN2I8Me/cjh1LdhsDIt63Y+xoFePBtHtQo9Pzl8tviYL+VjlCHDw1qLwxf
lwIDAQAB
-----END PUBLIC KEY-----
";
const EC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7I+dWXMDXk8CuUDuVoeC4AOl88Tq
d+TZoiYF5JaeTfMIANI6LaXn+JHKxZ+WKHr97gfOEuifZEpItERi18qlwg==
-----END PUBLIC KEY-----
";

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let keys = vec![
            Key::secret(SECRET),
            Key::public_pem(RSA.as_bytes()).expect("the RSA key"),
            Key::public_pem(EC.as_bytes()).expect("the P-256 key"),
        ];
        TokenVerifier::new(keys, None, None)
    })
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, message).as_ref().to_vec()
}

/// Whether `token` is `header.claims.signature` with the HMAC of the secret.
fn hmac_is_right(token: &str) -> bool {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(signature)
        .is_ok_and(|given| given == hmac(SECRET, signed.as_bytes()))
}

// The first byte: bit 0 set, a token built from the rest, `HEADER \0 CLAIMS` (JSON
// text, any bytes), signed with the server's secret (bit 1 set) or another one;
// bit 0 clear, the rest as the token's text.
fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let key: &[u8] = if mode & 2 != 0 {
            SECRET
        } else {
            b"another-secret"
        };
        let signature = URL_SAFE_NO_PAD.encode(hmac(key, signed.as_bytes()));
        format!("{signed}.{signature}")
    };
    if let Ok(claims) = verifier().verify(&token) {
        assert!(
            hmac_is_right(&token),
            "accepted without a valid signature: {token}"
        );
        assert!(!claims.sub.is_empty(), "accepted without a sub: {token}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            claims.exp + identity::LEEWAY_SECONDS >= now,
            "accepted expired: {token}"
        );
    }
});

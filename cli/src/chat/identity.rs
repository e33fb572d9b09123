//! Signed identity: who a connection is, from a JSON Web Token (RFC 7519) on the
//! upgrade or on an HTTP request, verified with the keys the server was given.
//!
//! The rules (issue #32): the signature is checked with the configured keys only, and
//! **the algorithm comes from the key, never from the token** — a token whose header
//! names another algorithm than its key's is refused, so `alg: none` and an HS256
//! token signed with the bytes of an RSA public key (the classic confusion attack)
//! both fail. `exp` is required, `nbf` and `iat` honoured, with at most 5 s of leeway;
//! `iss` and `aud` are checked when configured.
//!
//! jsonwebtoken parses and checks the claims; the signatures are verified by ring,
//! which rustls already brings, through the small [`CryptoProvider`] below.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier as SignatureVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Validation};
use serde::Deserialize;

/// The leeway on `exp`, `nbf` and `iat`: clocks differ, but not by more than this.
pub const LEEWAY_SECONDS: u64 = 5;

/// A key the server verifies tokens with, and the one algorithm it allows.
pub struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Key {
    /// An HS256 shared secret (`--jwt-secret`).
    pub fn secret(secret: &[u8]) -> Key {
        Key {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// A public key in PEM (`--jwt-public-key`): RS256 for an RSA key, ES256 for a
    /// P-256 key. The algorithm is the key's kind, whatever a token will say.
    pub fn public_pem(pem: &[u8]) -> Result<Key, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_string())?;
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Key {
                algorithm: Algorithm::RS256,
                key,
            });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Key {
                algorithm: Algorithm::ES256,
                key,
            });
        }
        let first = text.lines().next().unwrap_or("");
        Err(format!("not an RSA or P-256 public key ({first})"))
    }
}

/// What the server was told to accept.
pub struct TokenVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// The claims a token carries (RFC 7519 §4.1, and the rooms server's own).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The user: required (a token without it is refused before this is read, as
    /// one without `exp` is: the defaults only let the check name the claim).
    #[serde(default)]
    pub sub: String,
    /// The name shown to others; `sub` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Rooms the user may join and publish to (a trailing `*` matches a prefix);
    /// absent: every room.
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
    /// Rooms the user may only read, same form.
    #[serde(default)]
    pub watch: Option<Vec<String>>,
    /// Expiry, seconds since the epoch: required.
    #[serde(default)]
    pub exp: u64,
    /// When it was issued: one issued in the future (beyond the leeway) is not valid
    /// yet (jsonwebtoken checks `exp` and `nbf`, not `iat`).
    #[serde(default)]
    pub iat: Option<u64>,
}

/// Why a token was refused: the `reason` label of `rfc6455_auth_failures_total`, and
/// the one line of a 401's body. Never the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token where one was looked for.
    Missing,
    Malformed,
    Signature,
    Algorithm,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    MissingClaim,
    /// A refresh whose token names another user than the connection's.
    OtherUser,
    /// A claim that is there but unusable: an empty or over-long `sub`.
    BadClaim,
}

impl Refusal {
    /// Every reason, for `/metrics` (each series is written, at 0 too).
    pub const ALL: [Refusal; 11] = [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::Signature,
        Refusal::Algorithm,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::Issuer,
        Refusal::Audience,
        Refusal::MissingClaim,
        Refusal::OtherUser,
        Refusal::BadClaim,
    ];
}

impl Claims {
    /// The user id: presence, `from`, direct messages and the connection count go by it.
    pub fn user(&self) -> &str {
        &self.sub
    }

    /// The name others see: `name`, or the user id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.sub)
    }

    /// Whether the user may join `room` and speak there (`rooms`; absent: any).
    pub fn may_publish(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rooms| covers(rooms, room))
    }

    /// Whether the user may follow `room`: one it may publish to, or a `watch` room.
    pub fn may_read(&self, room: &str) -> bool {
        self.may_publish(room) || self.watch.as_ref().is_some_and(|w| covers(w, room))
    }
}

/// Whether one of `patterns` names `room`: exactly, or by the prefix before a
/// trailing `*` (`"team-*"` covers `"team-a"`; a lone `"*"` covers every room).
fn covers(patterns: &[String], room: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => room.starts_with(prefix),
        None => p == room,
    })
}

/// Signed identity as `rfc6455 serve` was configured for it.
pub struct Auth {
    pub verifier: TokenVerifier,
    /// The cookie a browser's token may come in (`--jwt-cookie`).
    pub cookie: String,
    /// How long before `exp` a connection is told `expiring` (`--expiring-notice`).
    pub notice: std::time::Duration,
}

impl std::fmt::Debug for Auth {
    /// The keys stay out of any debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.verifier.keys.len())
            .field("cookie", &self.cookie)
            .field("notice", &self.notice)
            .finish()
    }
}

impl Auth {
    /// The claims of the token a request carries, or why there are none. Where a
    /// token is looked for, in this order: `Authorization: Bearer` (the scheme in any
    /// case, RFC 6750 §2.1), `?token=` in the query, the cookie.
    /// The second value says whether the token came from the cookie: a browser sends
    /// a cookie with any request to the site, whichever page makes it.
    pub fn claims(
        &self,
        query: Option<&str>,
        authorization: Option<&str>,
        cookies: Option<&str>,
    ) -> Result<(Claims, bool), Refusal> {
        let bearer = authorization
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let in_query = || query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let in_cookie = || {
            cookies.and_then(|c| {
                c.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    (name == self.cookie).then_some(value.trim_matches('"'))
                })
            })
        };
        let (token, from_cookie) = match bearer.or_else(in_query) {
            Some(token) => (Some(token), false),
            None => (in_cookie(), true),
        };
        match token {
            Some(token) if !token.is_empty() => {
                self.verifier.verify(token).map(|c| (c, from_cookie))
            }
            _ => Err(Refusal::Missing),
        }
    }
}

impl Refusal {
    /// The one line of a 401's body.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "a signed token is required (Authorization: Bearer, ?token= or the cookie)"
            }
            Refusal::Malformed => "the token is not a well-formed JWT",
            Refusal::Signature => "the token's signature does not verify",
            Refusal::Algorithm => "the token's algorithm is not the key's",
            Refusal::Expired => "the token has expired",
            Refusal::NotYetValid => "the token is not valid yet",
            Refusal::Issuer => "the token's issuer is not accepted",
            Refusal::Audience => "the token's audience is not this server",
            Refusal::MissingClaim => "the token lacks a required claim (exp, sub, iss or aud)",
            Refusal::OtherUser => "the new token is another user's",
            Refusal::BadClaim => "the token's sub is empty, too long or has control characters",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Signature => "bad_signature",
            Refusal::Algorithm => "algorithm",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::MissingClaim => "missing_claim",
            Refusal::OtherUser => "other_user",
            Refusal::BadClaim => "bad_claim",
            Refusal::Missing => "missing",
        }
    }
}

impl TokenVerifier {
    pub fn new(keys: Vec<Key>, issuer: Option<String>, audience: Option<String>) -> TokenVerifier {
        install_ring_provider();
        TokenVerifier {
            keys,
            issuer,
            audience,
        }
    }

    /// The claims of `token` if a configured key verifies it and its claims hold.
    /// With several keys, the token's header picks none of them: each key is tried
    /// with its own algorithm, and the most telling refusal is kept.
    pub fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        let mut refusal = Refusal::Algorithm;
        for key in &self.keys {
            let mut validation = Validation::new(key.algorithm);
            validation.leeway = LEEWAY_SECONDS;
            validation.validate_nbf = true;
            // A configured issuer or audience must be in the token, not merely
            // right when present.
            let mut required = vec!["exp", "sub"];
            required.extend(self.issuer.as_ref().map(|_| "iss"));
            required.extend(self.audience.as_ref().map(|_| "aud"));
            validation.set_required_spec_claims(&required);
            match &self.issuer {
                Some(issuer) => validation.set_issuer(&[issuer]),
                None => validation.iss = None,
            }
            match &self.audience {
                Some(audience) => validation.set_audience(&[audience]),
                None => validation.validate_aud = false,
            }
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                // Present is not enough: the user id names the user everywhere.
                Ok(data) if !usable_user(&data.claims.sub) => return Err(Refusal::BadClaim),
                Ok(data)
                    if data
                        .claims
                        .iat
                        .is_some_and(|iat| iat > now() + LEEWAY_SECONDS) =>
                {
                    return Err(Refusal::NotYetValid)
                }
                Ok(data) => return Ok(data.claims),
                Err(err) => {
                    let this = refusal_of(&err);
                    // A wrong algorithm says only that this key is not the token's:
                    // another key may still verify it.
                    if this != Refusal::Algorithm || refusal == Refusal::Algorithm {
                        refusal = this;
                    }
                }
            }
        }
        Err(refusal)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The most characters of a user id (`sub`): a UUID or an e-mail address fits.
pub const MAX_USER: usize = 128;

/// Whether `sub` can be a user id: 1 to `MAX_USER` characters, no control ones (it is
/// shown to other users and written into JSON and Redis keys).
fn usable_user(sub: &str) -> bool {
    !sub.is_empty() && sub.chars().count() <= MAX_USER && !sub.chars().any(char::is_control)
}

fn refusal_of(err: &Error) -> Refusal {
    match err.kind() {
        ErrorKind::InvalidSignature => Refusal::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Refusal::Algorithm,
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidIssuer => Refusal::Issuer,
        ErrorKind::InvalidAudience => Refusal::Audience,
        ErrorKind::MissingRequiredClaim(_) => Refusal::MissingClaim,
        _ => Refusal::Malformed,
    }
}

/// jsonwebtoken's verifiers on ring, for the three algorithms a key here can have.
/// Signing is not offered: the server never makes tokens.
fn install_ring_provider() {
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: no_signer,
        verifier_factory: ring_verifier,
        jwk_utils: JwkUtils::new_unimplemented(),
    };
    // Installed once per process; a second call finds it there.
    let _ = PROVIDER.install_default();
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn ring_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let bytes = match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => bytes.clone(),
        DecodingKeyKind::RsaModulusExponent { .. } => {
            return Err(ErrorKind::InvalidKeyFormat.into())
        }
    };
    match algorithm {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256 => Ok(Box::new(RingVerifier {
            algorithm: *algorithm,
            key: bytes,
        })),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct RingVerifier {
    algorithm: Algorithm,
    key: Vec<u8>,
}

impl SignatureVerifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match self.algorithm {
            Algorithm::HS256 => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.key);
                ring::hmac::verify(&key, message, signature).is_ok()
            }
            Algorithm::RS256 => ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                &self.key,
            )
            .verify(message, signature)
            .is_ok(),
            Algorithm::ES256 => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                &self.key,
            )
            .verify(message, signature)
            .is_ok(),
            _ => false,
        };
        if verified {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
#[path = "../../tests/support/tokens.rs"]
#[allow(dead_code)]
mod tokens;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The tokens of `cli/tests/tokens/make_tokens.py` (PyJWT, not our code).
    fn tokens() -> Value {
        super::tokens::Tokens::make("unit").all.clone()
    }

    fn all_keys(t: &Value) -> Vec<Key> {
        vec![
            Key::secret(t["secret"].as_str().unwrap().as_bytes()),
            Key::public_pem(t["rsa_public"].as_str().unwrap().as_bytes()).unwrap(),
            Key::public_pem(t["ec_public"].as_str().unwrap().as_bytes()).unwrap(),
        ]
    }

    #[test]
    fn every_row_of_the_verification_rules() {
        let t = tokens();
        let verifier = TokenVerifier::new(all_keys(&t), None, None);
        let check = |case: &str| verifier.verify(t[case].as_str().unwrap());
        for case in ["hs256", "rs256", "es256", "expired_within_leeway"] {
            let claims = check(case).unwrap_or_else(|r| panic!("{case}: {r:?}"));
            assert_eq!(claims.sub, "ada", "{case}");
            assert_eq!(claims.name.as_deref(), Some("Ada"), "{case}");
        }
        assert_eq!(check("expired"), Err(Refusal::Expired));
        assert_eq!(check("not_yet_valid"), Err(Refusal::NotYetValid));
        assert_eq!(check("issued_in_future"), Err(Refusal::NotYetValid));
        assert_eq!(check("no_exp"), Err(Refusal::MissingClaim));
        assert_eq!(check("no_sub"), Err(Refusal::MissingClaim));
        // Found by the `token` fuzz target: a present but empty `sub` passed.
        for case in ["empty_sub", "long_sub", "control_sub"] {
            assert_eq!(check(case), Err(Refusal::BadClaim), "{case}");
        }
        assert_eq!(check("wrong_secret"), Err(Refusal::Signature));
        assert_eq!(check("rs256_other_key"), Err(Refusal::Signature));
        assert!(check("alg_none").is_err());
        assert!(check("confusion").is_err());
        let rooms = check("rooms").unwrap();
        assert_eq!(rooms.rooms, Some(vec!["lobby".into(), "team-*".into()]));
        assert_eq!(rooms.watch, Some(vec!["news".into()]));
    }

    /// The algorithm is the key's: with only the RSA key configured, an HS256 token
    /// keyed with that key's PEM bytes is refused for its algorithm.
    #[test]
    fn the_algorithm_comes_from_the_key_not_the_token() {
        let t = tokens();
        let rsa = Key::public_pem(t["rsa_public"].as_str().unwrap().as_bytes()).unwrap();
        let verifier = TokenVerifier::new(vec![rsa], None, None);
        assert_eq!(
            verifier.verify(t["confusion"].as_str().unwrap()),
            Err(Refusal::Algorithm)
        );
        // `none` is no algorithm jsonwebtoken knows: the header itself is refused.
        assert_eq!(
            verifier.verify(t["alg_none"].as_str().unwrap()),
            Err(Refusal::Malformed)
        );
        assert!(verifier.verify(t["rs256"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let t = tokens();
        let key = || vec![Key::secret(t["secret"].as_str().unwrap().as_bytes())];
        let both = TokenVerifier::new(key(), Some("issuer.test".into()), Some("rooms".into()));
        assert!(both.verify(t["with_iss_aud"].as_str().unwrap()).is_ok());
        assert_eq!(
            both.verify(t["hs256"].as_str().unwrap()),
            Err(Refusal::MissingClaim)
        );
        let other_iss = TokenVerifier::new(key(), Some("elsewhere".into()), None);
        assert_eq!(
            other_iss.verify(t["with_iss_aud"].as_str().unwrap()),
            Err(Refusal::Issuer)
        );
        let other_aud = TokenVerifier::new(key(), None, Some("billing".into()));
        assert_eq!(
            other_aud.verify(t["with_iss_aud"].as_str().unwrap()),
            Err(Refusal::Audience)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let t = tokens();
        let verifier = TokenVerifier::new(all_keys(&t), None, None);
        for junk in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJ.eyJ.sig",
            "\u{0}\u{ff}",
            &"x".repeat(10_000),
        ] {
            assert!(verifier.verify(junk).is_err(), "{junk:?}");
        }
    }
}

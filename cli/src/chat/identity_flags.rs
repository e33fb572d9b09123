//! The flags of signed identity (`rfc6455 serve --jwt-...`), apart from the
//! verification itself (`identity.rs`, which the fuzz target `token` builds alone).

use super::identity::{Auth, Key, TokenVerifier};

/// The flags of signed identity (`rfc6455 serve --jwt-...`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// Accept JSON Web Tokens signed HS256 with this secret (users come from the
    /// token's `sub`; see docs/identity.md). From the environment, it stays out of
    /// the process list. With any --jwt-* key, every upgrade, event
    /// stream and POST needs a valid token (401 otherwise); --token then guards only
    /// /metrics.
    #[arg(
        long,
        value_name = "SECRET",
        env = "RFC6455_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Accept tokens signed by this public key in PEM (repeatable): RS256 for an RSA
    /// key, ES256 for a P-256 key. The algorithm is the key's, never the token's.
    #[arg(long, value_name = "FILE.pem")]
    pub jwt_public_key: Vec<std::path::PathBuf>,
    /// Require this `iss` in every token.
    #[arg(long, value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Require this `aud` in every token.
    #[arg(long, value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// The cookie a browser's token may come in.
    #[arg(long, value_name = "NAME", default_value = "token")]
    pub jwt_cookie: String,
    /// A connection is told `{"type":"expiring","in":S}` this long before its token's
    /// `exp` (then `refresh` keeps it; at `exp` it is closed with 4001).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub expiring_notice: u64,
}

impl IdentityArgs {
    /// The verifier the flags describe: `None` without a key (signed identity off).
    pub fn auth(&self) -> Result<Option<Auth>, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &self.jwt_secret {
            // RFC 7518 §3.2: an HS256 key of at least the hash's size, 32 bytes.
            if secret.len() < 32 {
                return Err("--jwt-secret must be at least 32 bytes (RFC 7518 §3.2)".into());
            }
            keys.push(Key::secret(secret.as_bytes()));
        }
        for path in &self.jwt_public_key {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            keys.push(Key::public_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Auth {
            verifier: TokenVerifier::new(keys, self.jwt_issuer.clone(), self.jwt_audience.clone()),
            cookie: self.jwt_cookie.clone(),
            notice: std::time::Duration::from_secs(self.expiring_notice),
        }))
    }
}

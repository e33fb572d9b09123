//! Tokens for the signed-identity tests, made by an implementation that is not ours:
//! PyJWT (with `cryptography`), installed by `tests/setup.sh`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The HS256 secret of `tokens/make_tokens.py` (at least 32 bytes, RFC 7518 §3.2).
pub const SECRET: &str = "test-secret-of-32-bytes-or-more!!";

/// The keys and the ready-made tokens of `tokens/make_tokens.py`: fresh key pairs
/// each run, and a token per row of the verification rules.
pub struct Tokens {
    pub all: Value,
    dir: PathBuf,
}

impl Tokens {
    pub fn make(label: &str) -> Tokens {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens/make_tokens.py");
        let out = Command::new("python3")
            .arg(script)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "make_tokens.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = std::env::temp_dir().join(format!("rfc6455-keys-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["rsa_public", "ec_public"] {
            std::fs::write(dir.join(format!("{name}.pem")), all[name].as_str().unwrap()).unwrap();
        }
        Tokens { all, dir }
    }

    /// The token made for `case`.
    pub fn get(&self, case: &str) -> &str {
        self.all[case]
            .as_str()
            .unwrap_or_else(|| panic!("no token {case:?}"))
    }

    /// Where the public key `name` (`rsa_public`, `ec_public`) was written as PEM.
    pub fn pem(&self, name: &str) -> String {
        self.dir.join(format!("{name}.pem")).display().to_string()
    }
}

impl Drop for Tokens {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HS256 token of `SECRET` with `claims`, made by PyJWT; `"exp_in": S` in the
/// claims becomes `exp` = now + S (and is dropped).
pub fn mint(claims: Value) -> String {
    const PY: &str = "import json, sys, time, jwt\n\
claims = json.loads(sys.argv[1])\n\
if 'exp_in' in claims:\n    claims['exp'] = int(time.time()) + claims.pop('exp_in')\n\
print(jwt.encode(claims, sys.argv[2], algorithm='HS256'))";
    let out = Command::new("python3")
        .args(["-c", PY, &claims.to_string(), SECRET])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "PyJWT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

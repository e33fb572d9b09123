//! What verifying one signed token costs the rooms server (`serve --jwt-*`): an
//! upgrade, an event stream, a POST or a `refresh` each verify one. HS256, RS256
//! (2048-bit) and ES256 (P-256), with only the token's key configured and with all
//! three (a token is tried against each key of its algorithm; the others refuse it
//! before any signature work).
//!
//! `cargo bench -p rfc6455-cli --bench tokens`. The tokens and keys come from
//! `cli/tests/tokens/make_tokens.py` (PyJWT; `tests/setup.sh` installs it).

#[path = "../src/chat/identity.rs"]
#[allow(dead_code)]
mod identity;

use criterion::{criterion_group, criterion_main, Criterion};
use identity::{Key, TokenVerifier};
use std::hint::black_box;

// Under `cargo test`/`clippy --all-targets` the verifier's own unit tests load this
// file too: twice in one crate, on purpose.
#[path = "../tests/support/tokens.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod tokens;

fn verify(c: &mut Criterion) {
    let t = tokens::Tokens::make("bench").all.clone();
    let text = |name: &str| t[name].as_str().unwrap().to_string();
    let secret = || Key::secret(text("secret").as_bytes());
    let rsa = || Key::public_pem(text("rsa_public").as_bytes()).unwrap();
    let ec = || Key::public_pem(text("ec_public").as_bytes()).unwrap();
    let mut group = c.benchmark_group("verify");
    for (name, key) in [("hs256", secret()), ("rs256", rsa()), ("es256", ec())] {
        let token = text(name);
        let alone = TokenVerifier::new(vec![key], None, None);
        assert!(alone.verify(&token).is_ok(), "{name}");
        group.bench_function(format!("{name}/its key"), |b| {
            b.iter(|| alone.verify(black_box(&token)))
        });
        let all = TokenVerifier::new(vec![secret(), rsa(), ec()], None, None);
        group.bench_function(format!("{name}/three keys"), |b| {
            b.iter(|| all.verify(black_box(&token)))
        });
    }
    // A refusal before any signature work: not a JWT at all.
    let all = TokenVerifier::new(vec![secret(), rsa(), ec()], None, None);
    group.bench_function("garbage/three keys", |b| {
        b.iter(|| all.verify(black_box("not.a.token")))
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);

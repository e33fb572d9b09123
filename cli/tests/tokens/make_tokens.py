"""Tokens for the identity tests, made by an implementation that is not ours: PyJWT
with `cryptography` for the signed ones, Python's hmac and base64 for the forged ones.
Prints one JSON object: the public keys (PEM) and a token per case."""
import base64, hashlib, hmac, json, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

now = int(time.time())
secret = "test-secret-of-32-bytes-or-more!!"
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

def pem(public):
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def forged(header, claims, key_bytes=None):
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if key_bytes is None:
        return signing_input + "."
    mac = hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)

good = {"sub": "ada", "name": "Ada", "exp": now + 600, "iat": now}
rsa_pem = pem(rsa_key.public_key())
out = {
    "secret": secret,
    "rsa_public": rsa_pem,
    "ec_public": pem(ec_key.public_key()),
    "hs256": jwt.encode(good, secret, algorithm="HS256"),
    "rs256": jwt.encode(good, rsa_key, algorithm="RS256"),
    "es256": jwt.encode(good, ec_key, algorithm="ES256"),
    "rs256_other_key": jwt.encode(good, other_rsa, algorithm="RS256"),
    "expired": jwt.encode(dict(good, exp=now - 60), secret, algorithm="HS256"),
    "expired_within_leeway": jwt.encode(dict(good, exp=now - 2), secret, algorithm="HS256"),
    "not_yet_valid": jwt.encode(dict(good, nbf=now + 120), secret, algorithm="HS256"),
    "issued_in_future": jwt.encode(dict(good, iat=now + 120), secret, algorithm="HS256"),
    "no_exp": jwt.encode({"sub": "ada"}, secret, algorithm="HS256"),
    "no_sub": jwt.encode({"exp": now + 600}, secret, algorithm="HS256"),
    "empty_sub": jwt.encode({"sub": "", "exp": now + 600}, secret, algorithm="HS256"),
    "long_sub": jwt.encode({"sub": "a" * 129, "exp": now + 600}, secret, algorithm="HS256"),
    "control_sub": jwt.encode({"sub": "ada\nbob", "exp": now + 600}, secret, algorithm="HS256"),
    "wrong_secret": jwt.encode(good, "another-secret-of-32-bytes-more!!", algorithm="HS256"),
    "with_iss_aud": jwt.encode(dict(good, iss="issuer.test", aud="rooms"), secret, algorithm="HS256"),
    "alg_none": forged({"alg": "none", "typ": "JWT"}, good),
    # The confusion attack: HS256 keyed with the bytes of the server's RSA public key.
    "confusion": forged({"alg": "HS256", "typ": "JWT"}, good, rsa_pem.encode()),
    "rooms": jwt.encode(dict(good, rooms=["lobby", "team-*"], watch=["news"]), secret, algorithm="HS256"),
}
json.dump(out, sys.stdout)

"""Bearer token verification with real keys: forgeries refused, good tokens become Principals; the dev key."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fhir_server.security.devkeys import dev_private_key, dev_public_key, issue_dev_token, key_path, thumbprint
from fhir_server.security.scopes import Scope
from fhir_server.security.tokens import Principal, TokenError, TokenVerifier, load_keys

AUD = "https://mes.example/fhir"
DEV_SECRET = "dev-secret-for-tests-only-0123456789abcdef"


# --------------------------------------------------------------------------------------------------
# helpers

@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def claims(**changes: Any) -> dict[str, Any]:
    """A valid claim set; a change to None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {"sub": "Patient/123", "fhirUser": "Patient/123", "aud": AUD, "iat": now, "nbf": now,
                            "exp": now + 600, "scope": "openid fhirUser patient/*.rs", "client_id": "mon-appli"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str = "ES256", kid: str | None = None, **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def refused(verifier: TokenVerifier, token: str, message: str) -> TokenError:
    with pytest.raises(TokenError, match=message) as caught:
        verifier.verify(token)
    return caught.value


def jwks(*entries: tuple[Any, str]) -> dict:
    keys = []
    for key, kid in entries:
        algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
        keys.append({**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"})
    return {"keys": keys}


# --------------------------------------------------------------------------------------------------
# happy paths

def test_rs256_patient(rsa_key) -> None:
    verifier = TokenVerifier([rsa_key.public_key()], [AUD])
    principal = verifier.verify(sign(rsa_key, "RS256"))
    assert principal == Principal(kind="patient", reference="Patient/123", client_id="mon-appli",
                                  subject="Patient/123", scopes=(Scope("patient", "*", frozenset("rs")),))
    assert principal.purpose == "normal" and principal.reason is None


def test_es256_practitioner_with_absolute_fhir_user(ec_key) -> None:
    token = sign(ec_key, sub="user-42", fhirUser=f"{AUD}/Practitioner/9",
                 scope="user/DocumentReference.cruds", client_id=None)
    principal = TokenVerifier([ec_key.public_key()], [AUD]).verify(token)
    assert (principal.kind, principal.reference, principal.subject) == ("practitioner", "Practitioner/9", "user-42")
    assert principal.client_id == "user-42"  # no client_id claim: the subject
    assert principal.scopes == (Scope("user", "DocumentReference", frozenset("cruds")),)


@pytest.mark.parametrize(("fhir_user", "kind", "reference"), [
    ("Patient/123", "patient", "Patient/123"),
    ("RelatedPerson/4", "related", "RelatedPerson/4"),
    ("Practitioner/9", "practitioner", "Practitioner/9"),
    ("PractitionerRole/5", "practitioner", "PractitionerRole/5"),
    (f"{AUD}/RelatedPerson/rp-1.2", "related", "RelatedPerson/rp-1.2"),
])
def test_kinds_from_fhir_user(ec_key, fhir_user: str, kind: str, reference: str) -> None:
    principal = TokenVerifier([ec_key.public_key()], [AUD]).verify(sign(ec_key, fhirUser=fhir_user))
    assert (principal.kind, principal.reference) == (kind, reference)


def test_system_client(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD])
    principal = verifier.verify(sign(ec_key, sub="svc-1", fhirUser=None, client_id="dpi-hopital", scope="system/*.*"))
    assert (principal.kind, principal.reference, principal.client_id) == ("system", None, "dpi-hopital")
    assert principal.scopes == (Scope("system", "*", frozenset("cruds")),)
    principal = verifier.verify(sign(ec_key, sub="dpi-hopital", fhirUser=None, client_id=None))
    assert (principal.kind, principal.client_id) == ("system", "dpi-hopital")


def test_no_scope_claim_grants_no_scopes(ec_key) -> None:
    assert TokenVerifier([ec_key.public_key()], [AUD]).verify(sign(ec_key, scope=None)).scopes == ()


def test_audience_list_and_several_accepted_audiences(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], ["https://other.example/fhir", AUD])
    assert verifier.verify(sign(ec_key, aud=["https://elsewhere.example", AUD])).subject == "Patient/123"
    assert verifier.verify(sign(ec_key, aud="https://other.example/fhir")).subject == "Patient/123"


def test_issuer_checked_when_configured(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD], issuer="https://idp.example")
    assert verifier.verify(sign(ec_key, iss="https://idp.example")).kind == "patient"
    refused(verifier, sign(ec_key, iss="https://evil.example"), "issuer not accepted")
    refused(verifier, sign(ec_key), "lacks the iss claim")
    # without a configured issuer, any iss is fine
    assert TokenVerifier([ec_key.public_key()], [AUD]).verify(sign(ec_key, iss="whoever")).kind == "patient"


def test_jwks_selects_by_kid(rsa_key, ec_key, other_ec_key) -> None:
    keyset = jwks((rsa_key, "r1"), (ec_key, "e1"), (other_ec_key, "e2"))
    for trusted in (keyset, jwt.PyJWKSet.from_dict(keyset)):
        verifier = TokenVerifier([trusted], [AUD])
        assert verifier.verify(sign(rsa_key, "RS256", kid="r1")).kind == "patient"
        assert verifier.verify(sign(ec_key, kid="e1")).kind == "patient"
        assert verifier.verify(sign(other_ec_key, kid="e2")).kind == "patient"
        assert verifier.verify(sign(other_ec_key)).kind == "patient"  # no kid: every ES256 key is tried
        refused(verifier, sign(ec_key, kid="e2"), "signature verification failed")  # kid names another key


def test_jwks_and_pem_keys_together(rsa_key, ec_key) -> None:
    verifier = TokenVerifier([jwks((ec_key, "e1")), rsa_key.public_key()], [AUD])
    assert verifier.verify(sign(ec_key, kid="e1")).kind == "patient"
    # a PEM key has no kid of its own, so a kid cannot rule it out
    assert verifier.verify(sign(rsa_key, "RS256", kid="rotated-2026")).kind == "patient"


def test_hs256_with_a_development_secret(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD], hs256_secret=DEV_SECRET)
    assert verifier.verify(sign(DEV_SECRET, "HS256")).reference == "Patient/123"
    assert verifier.verify(sign(ec_key)).reference == "Patient/123"  # asymmetric keys still work
    refused(verifier, sign("another-secret-of-the-right-length-000000", "HS256"), "signature verification failed")


@pytest.mark.parametrize(("extra", "purpose"), [
    ({}, "normal"),
    ({"purpose_of_use": "normal"}, "normal"),
    ({"purpose_of_use": "bris_de_glace"}, "bris_de_glace"),
    ({"purpose_of_use": {"system": "urn:oid:1.2.250.1.213.1.1.4.248", "code": "centre_15"}}, "centre_15"),
    ({"extensions": {"ihe_iua": {"purpose_of_use": {"system": "urn:x", "code": "bris_de_glace"}}}}, "bris_de_glace"),
    ({"purpose_of_use": "centre_15", "extensions": {"ihe_iua": {"purpose_of_use": {"code": "centre_15"}}}},
     "centre_15"),
    ({"extensions": {"ihe_iua": {"subject_name": "Dr House"}}}, "normal"),
    ({"extensions": "not an object"}, "normal"),
])
def test_purpose_of_use(ec_key, extra: dict, purpose: str) -> None:
    principal = TokenVerifier([ec_key.public_key()], [AUD]).verify(sign(ec_key, **extra))
    assert principal.purpose == purpose
    assert principal.reason is None  # break-the-glass without a reason passes here: the policy demands one


def test_purpose_reason(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD])
    token = sign(ec_key, fhirUser="Practitioner/9", purpose_of_use="bris_de_glace",
                 purpose_reason="  Patient inconscient aux urgences ")
    principal = verifier.verify(token)
    assert (principal.purpose, principal.reason) == ("bris_de_glace", "Patient inconscient aux urgences")
    assert verifier.verify(sign(ec_key, purpose_reason="   ")).reason is None


def test_leeway(ec_key) -> None:
    now = int(time.time())
    token = sign(ec_key, exp=now - 10, nbf=now + 10, iat=now + 10)
    assert TokenVerifier([ec_key.public_key()], [AUD]).verify(token).kind == "patient"
    refused(TokenVerifier([ec_key.public_key()], [AUD], leeway=0), token, "token (expired|not yet valid)")


# --------------------------------------------------------------------------------------------------
# forgeries and bad tokens

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(ec_key, alg: str) -> None:
    unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}."
    for verifier in (TokenVerifier([ec_key.public_key()], [AUD]),
                     TokenVerifier([ec_key.public_key()], [AUD], hs256_secret=DEV_SECRET)):
        refused(verifier, unsigned, "not accepted")
        refused(verifier, unsigned + b64(b"x" * 64), "not accepted")


def test_wrong_key(ec_key, other_ec_key, rsa_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD])
    refused(verifier, sign(other_ec_key), "signature verification failed")
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(TokenVerifier([rsa_key.public_key()], [AUD]), sign(rogue, "RS256"), "signature verification failed")


def test_hs256_signed_with_the_public_key_pem(rsa_key) -> None:
    """The confusion attack: an HMAC whose secret is the server's (public) RSA key."""
    pem = public_pem(rsa_key)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims(scope='user/*.cruds'))}"
    forged = f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    refused(TokenVerifier([rsa_key.public_key()], [AUD]), forged, "signing algorithm HS256 is not accepted")
    with_secret = TokenVerifier([rsa_key.public_key()], [AUD], hs256_secret=DEV_SECRET)
    refused(with_secret, forged, "signature verification failed")


def test_hs256_with_a_jwks_symmetric_key_is_refused(ec_key) -> None:
    secret = b"a-symmetric-key-published-in-a-jwks-000"
    keyset = {"keys": [*jwks((ec_key, "e1"))["keys"], {"kty": "oct", "kid": "h1", "k": b64(secret)}]}
    refused(TokenVerifier([keyset], [AUD]), sign(secret, "HS256", kid="h1"), "HS256 is not accepted")


@pytest.mark.parametrize("alg", ["PS256", "RS512", "RS384"])
def test_other_rsa_algorithms_are_refused(rsa_key, alg: str) -> None:
    refused(TokenVerifier([rsa_key.public_key()], [AUD]), sign(rsa_key, alg), f"signing algorithm {alg} is not")


def test_es256_token_with_only_rsa_keys(rsa_key, ec_key) -> None:
    refused(TokenVerifier([rsa_key.public_key()], [AUD]), sign(ec_key), "no trusted ES256 key")


def test_expired(ec_key) -> None:
    now = int(time.time())
    refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            "token expired")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(ec_key, claim: str) -> None:
    token = sign(ec_key, **{claim: int(time.time()) + 3600, "exp": int(time.time()) + 7200})
    refused(TokenVerifier([ec_key.public_key()], [AUD]), token, "not yet valid")


def test_wrong_audience(ec_key) -> None:
    verifier = TokenVerifier([ec_key.public_key()], [AUD])
    refused(verifier, sign(ec_key, aud="https://other.example/fhir"), "audience not accepted")
    refused(verifier, sign(ec_key, aud=["https://a.example", "https://b.example"]), "audience not accepted")


@pytest.mark.parametrize("claim", ["exp", "sub", "aud"])
def test_required_claims(ec_key, claim: str) -> None:
    refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, **{claim: None}), f"lacks the {claim} claim")


def test_tampered_payload(ec_key, rsa_key) -> None:
    for key, alg in ((ec_key, "ES256"), (rsa_key, "RS256")):
        header, _, signature = sign(key, alg).split(".")
        forged = f"{header}.{b64(claims(scope='user/*.cruds', fhirUser='Practitioner/1'))}.{signature}"
        refused(TokenVerifier([key.public_key()], [AUD]), forged, "signature verification failed")


def test_unknown_kid(ec_key, other_ec_key) -> None:
    verifier = TokenVerifier([jwks((ec_key, "e1"))], [AUD])
    refused(verifier, sign(ec_key, kid="e9"), "no trusted ES256 key with kid e9")
    refused(verifier, sign(other_ec_key, kid="e9"), "no trusted ES256 key with kid e9")


@pytest.mark.parametrize("fhir_user", ["https://other-server.example/fhir/Patient/alice",  # another server's user
                                       "Practitioner/drB/Patient/alice", f"{AUD}x/Patient/1",  # prefixes
                                       "Organization/1", "Device/d1", "Patient", "Patient/", "Patient/1/_history/2",
                                       "XPatient/1", "https://x.example/fhir/Group/7", "Patient/a b", 42,
                                       {"reference": "Patient/1"}])
def test_unsupported_fhir_user(ec_key, fhir_user: Any) -> None:
    refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, fhirUser=fhir_user), "fhirUser must be")


@pytest.mark.parametrize(("extra", "message"), [
    ({"purpose_of_use": "curiosite"}, "unknown purpose_of_use curiosite"),
    ({"purpose_of_use": "BRIS_DE_GLACE"}, "unknown purpose_of_use"),
    ({"purpose_of_use": {"system": "urn:x", "code": "TREAT"}}, "unknown purpose_of_use TREAT"),
    ({"extensions": {"ihe_iua": {"purpose_of_use": {"code": "EMERGENCY"}}}}, "unknown purpose_of_use"),
    ({"purpose_of_use": ["normal"]}, "must be a code or a Coding"),
    ({"purpose_of_use": {"system": "urn:x"}}, "must be a code or a Coding"),
    ({"purpose_of_use": "normal", "extensions": {"ihe_iua": {"purpose_of_use": {"code": "bris_de_glace"}}}},
     "disagree"),
    ({"purpose_reason": 12}, "purpose_reason claim must be a string"),
    ({"client_id": ["a"]}, "client_id claim must be a string"),
    ({"scope": ["patient/*.rs"]}, "scope claim must be"),
    ({"sub": ""}, "sub claim is empty"),
])
def test_bad_claims(ec_key, extra: dict, message: str) -> None:
    refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, **extra), message)


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30=.e30.sig", b64(b"[1]") + ".e30.x", b64(b"{") + ".e30.x",
    b64(b"\xff\xfe") + ".e30.x", "eyJhbGciOiJFUzI1NiJ9..sig", " " + "eyJhbGciOiJFUzI1NiJ9.e30.sig",
])
def test_malformed_tokens(ec_key, token: str) -> None:
    refused(TokenVerifier([ec_key.public_key()], [AUD]), token, "malformed token")


@pytest.mark.parametrize(("header", "message"), [
    ({"alg": "ES256", "b64": False, "crit": ["b64"]}, "malformed token"),  # RFC 7797 unencoded payload
    ({"alg": "ES256", "crit": ["exp"]}, "Unsupported critical extension"),
])
def test_unsupported_header_extensions(ec_key, header: dict, message: str) -> None:
    token = f"{b64(header)}.{b64(claims())}.{b64(b'x' * 64)}"
    refused(TokenVerifier([ec_key.public_key()], [AUD]), token, message)


def test_non_integer_times(ec_key) -> None:
    refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, exp="tomorrow"), "exp.*must be an integer")


def test_error_messages_fit_www_authenticate(ec_key) -> None:
    error = refused(TokenVerifier([jwks((ec_key, "e1"))], [AUD]), sign(ec_key, kid='e"9\\\n\u00e9'), "no trusted")
    assert all(ch not in str(error) for ch in '"\\\n\u00e9')
    error = refused(TokenVerifier([ec_key.public_key()], [AUD]), sign(ec_key, purpose_of_use='x"' * 300), "unknown")
    assert '"' not in str(error) and len(str(error)) <= 200


def test_verifier_configuration_errors(ec_key) -> None:
    with pytest.raises(ValueError, match="too weak"):
        TokenVerifier([rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()], [AUD])
    with pytest.raises(ValueError, match="EC P-256"):
        TokenVerifier([ec.generate_private_key(ec.SECP384R1()).public_key()], [AUD])
    with pytest.raises(ValueError, match="EC P-256"):
        TokenVerifier([ec_key], [AUD])  # a private key is not a trusted key
    with pytest.raises(ValueError, match="audience"):
        TokenVerifier([ec_key.public_key()], [])
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier([], [AUD], hs256_secret="short")
    with pytest.raises(ValueError, match="no RS256 or ES256"):
        TokenVerifier([{"keys": [{"kty": "oct", "k": b64(b"k" * 32)}]}], [AUD])
    with pytest.raises(ValueError, match="JWKS"):
        TokenVerifier([{"keys": []}], [AUD])


def test_a_verifier_without_keys_refuses_everything(ec_key) -> None:
    refused(TokenVerifier([], [AUD]), sign(ec_key), "no trusted ES256 key")


# --------------------------------------------------------------------------------------------------
# load_keys

def self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_load_keys(tmp_path: Path, rsa_key, ec_key, other_ec_key) -> None:
    (tmp_path / "rsa.pem").write_bytes(public_pem(rsa_key))
    (tmp_path / "idp.crt").write_bytes(self_signed_certificate(ec_key))
    (tmp_path / "jwks.json").write_text(json.dumps(jwks((other_ec_key, "e2"))))
    keys = load_keys([tmp_path / "rsa.pem", tmp_path / "idp.crt"], tmp_path / "jwks.json")
    assert keys[0].public_numbers() == rsa_key.public_key().public_numbers()
    assert keys[1].public_numbers() == ec_key.public_key().public_numbers()
    assert isinstance(keys[2], jwt.PyJWKSet)
    verifier = TokenVerifier(keys, [AUD])
    assert verifier.verify(sign(rsa_key, "RS256")).kind == "patient"
    assert verifier.verify(sign(ec_key)).kind == "patient"
    assert verifier.verify(sign(other_ec_key, kid="e2")).kind == "patient"
    assert load_keys([], None) == []


def test_load_keys_errors(tmp_path: Path, ec_key) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=f"cannot read trusted key file {missing}"):
        load_keys([missing], None)
    with pytest.raises(ValueError, match="cannot read trusted key file"):
        load_keys([], tmp_path / "missing.json")
    with pytest.raises(ValueError, match="cannot read trusted key file"):
        load_keys([tmp_path], None)  # a directory
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ValueError, match="garbage.pem is not a usable PEM public key or certificate"):
        load_keys([garbage], None)
    private = tmp_path / "private.pem"
    private.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    with pytest.raises(ValueError, match="private.pem is not a usable PEM"):
        load_keys([private], None)
    weak = tmp_path / "weak.pem"
    weak.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(ValueError, match="weak.pem .*too weak"):
        load_keys([weak], None)
    for name, text, message in [("bad.json", "{", "is not a JSON JWKS"), ("list.json", "[]", "is not a JWKS"),
                                ("empty.json", '{"keys": []}', "did not contain any keys"),
                                ("hmac.json", json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "no RS256")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"{name}.*{message}"):
            load_keys([], tmp_path / name)


# --------------------------------------------------------------------------------------------------
# the development key

def test_dev_key_created_once_with_mode_0600(tmp_path: Path) -> None:
    assert dev_public_key(tmp_path) is None
    assert not key_path(tmp_path).exists()  # asking for the public key creates nothing
    first = dev_private_key(tmp_path)
    path = tmp_path / "auth" / "dev-signing-key.pem"
    assert key_path(tmp_path) == path and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["dev-signing-key.pem"]  # no temporary file left behind
    content = path.read_bytes()
    second = dev_private_key(tmp_path)
    assert second.private_numbers() == first.private_numbers()
    assert path.read_bytes() == content
    public = dev_public_key(tmp_path)
    assert public is not None and public.public_numbers() == first.public_key().public_numbers()


def test_concurrent_first_calls_share_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    found: list[int] = []

    def create() -> None:
        barrier.wait()
        found.append(dev_private_key(tmp_path).private_numbers().private_value)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert found[0] == dev_private_key(tmp_path).private_numbers().private_value
    assert os.listdir(tmp_path / "auth") == ["dev-signing-key.pem"]


def test_dev_key_file_must_hold_an_ec_p256_key(tmp_path: Path) -> None:
    path = key_path(tmp_path)
    path.parent.mkdir()
    path.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="EC P-256"):
        dev_private_key(tmp_path)


def test_thumbprint_is_rfc7638(ec_key) -> None:
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    canonical = '{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}'.format(**jwk)
    expected = b64(hashlib.sha256(canonical.encode()).digest())
    assert thumbprint(ec_key.public_key()) == expected and len(expected) == 43


def test_dev_token_verifies_with_the_dev_public_key(tmp_path: Path, ec_key) -> None:
    token = issue_dev_token(tmp_path, "Patient/123", "openid fhirUser patient/*.rs", AUD)
    public = dev_public_key(tmp_path)
    assert public is not None
    principal = TokenVerifier([public], [AUD]).verify(token)
    assert principal == Principal("patient", "Patient/123", "Patient/123", "Patient/123",
                                  (Scope("patient", "*", frozenset("rs")),))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == thumbprint(public)
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["iss"] == "mes-dev" and body["fhirUser"] == "Patient/123" and "client_id" not in body
    assert body["exp"] - body["iat"] == 3600 and body["nbf"] == body["iat"] and body["jti"]
    assert "purpose_of_use" not in body and "purpose_reason" not in body
    assert jwt.decode(issue_dev_token(tmp_path, "Patient/123", "", AUD), options={"verify_signature": False})["jti"] \
        != body["jti"]
    # another key, another audience or a configured issuer other than mes-dev: refused
    refused(TokenVerifier([ec_key.public_key()], [AUD]), token, "signature verification failed")
    refused(TokenVerifier([public], ["https://other.example/fhir"]), token, "audience not accepted")
    assert TokenVerifier([public], [AUD], issuer="mes-dev").verify(token).kind == "patient"
    refused(TokenVerifier([public], [AUD], issuer="https://idp.example"), token, "issuer not accepted")


@pytest.mark.parametrize(("sub", "kind"), [("Practitioner/456", "practitioner"), ("PractitionerRole/7", "practitioner"),
                                           ("RelatedPerson/4", "related")])
def test_dev_token_users(tmp_path: Path, sub: str, kind: str) -> None:
    principal = TokenVerifier([dev_private_key(tmp_path).public_key()], [AUD]).verify(
        issue_dev_token(tmp_path, sub, "user/*.cruds", AUD))
    assert (principal.kind, principal.reference) == (kind, sub)


def test_dev_token_system_client(tmp_path: Path) -> None:
    token = issue_dev_token(tmp_path, "dpi-hopital", "system/*.*", AUD, lifetime_s=60)
    principal = TokenVerifier([dev_public_key(tmp_path)], [AUD]).verify(token)
    assert (principal.kind, principal.reference, principal.client_id, principal.subject) == \
        ("system", None, "dpi-hopital", "dpi-hopital")
    assert principal.scopes == (Scope("system", "*", frozenset("cruds")),)
    body = jwt.decode(token, options={"verify_signature": False})
    assert "fhirUser" not in body and body["client_id"] == "dpi-hopital" and body["exp"] - body["iat"] == 60


def test_dev_token_purpose_and_reason(tmp_path: Path) -> None:
    token = issue_dev_token(tmp_path, "Practitioner/456", "user/*.rs", AUD, purpose="bris_de_glace",
                            reason="Patient inconscient aux urgences")
    principal = TokenVerifier([dev_public_key(tmp_path)], [AUD]).verify(token)
    assert (principal.purpose, principal.reason) == ("bris_de_glace", "Patient inconscient aux urgences")
    principal = TokenVerifier([dev_public_key(tmp_path)], [AUD]).verify(
        issue_dev_token(tmp_path, "Practitioner/456", "user/*.rs", AUD, purpose="centre_15"))
    assert (principal.purpose, principal.reason) == ("centre_15", None)


def test_dev_token_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown purpose"):
        issue_dev_token(tmp_path, "Practitioner/456", "user/*.rs", AUD, purpose="curiosite")
    with pytest.raises(ValueError, match="lifetime"):
        issue_dev_token(tmp_path, "Practitioner/456", "user/*.rs", AUD, lifetime_s=0)
    assert dev_public_key(tmp_path) is None  # refused before any key was made


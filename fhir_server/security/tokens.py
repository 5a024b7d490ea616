"""Bearer JWT verification: who is asking (a Principal) and what their token grants.

Only signatures by configured keys are trusted: RS256 (RSA of 2048 bits or more) and ES256 (EC
P-256). HS256 is accepted only when a development secret is configured. The algorithm a token
names must match the kind of key that checks it, and each key is only ever used with its own
algorithm, so ``alg: none`` never verifies and a public key is never taken as an HMAC secret (the
RS256/HS256 confusion attack). Header fields that point elsewhere (``jku``, ``x5u``, ``jwk``) are
ignored: keys come from configuration only.

Key objects are built once, in ``TokenVerifier.__init__``; nothing else is cached, so dropping a
key from the configuration (a new verifier) stops its tokens at once.

Cost of ``verify`` (PyJWT 2.15.1, cryptography 50.0.2, one core of the development machine, a
token with fhirUser, scopes and purpose): ES256 about 80 µs, RS256 (2048 bits) about 58 µs, of
which the signature check itself is 42 µs and 15 µs; the rest is PyJWT's decoding and claim checks
(the header is parsed here so that PyJWT decodes the token once, not twice).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhir_server.security.scopes import Scope, parse_scopes

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
TrustedKeys = PublicKey | jwt.PyJWKSet | dict  # a public key, or a JWKS (parsed or as its JSON dict)

# The DMP access modes (TRE_R248): ordinary access, break-the-glass, emergency call centre (SAMU).
PURPOSES = frozenset({"normal", "bris_de_glace", "centre_15"})
_ASYMMETRIC = ("RS256", "ES256")
_OPTIONS = {"require": ["exp", "sub", "aud"]}
_ACTOR = re.compile(r"(Patient|RelatedPerson|Practitioner|PractitionerRole)/([A-Za-z0-9\-.]{1,64})")
_KINDS = {"Patient": "patient", "RelatedPerson": "related", "Practitioner": "practitioner",
          "PractitionerRole": "practitioner"}
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")  # JWS compact form, unpadded
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # outside RFC 6750's error_description characters


class TokenError(Exception):
    """A refused token; the message fits ``WWW-Authenticate: Bearer error_description="…"`` as is."""

    def __init__(self, message: str) -> None:
        super().__init__(_UNSAFE.sub("?", message)[:200])


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts, for which client, with which scopes and in which DMP access mode."""

    kind: str  # patient | related | practitioner | system
    reference: str | None  # Patient/123, RelatedPerson/4, Practitioner/9, PractitionerRole/5; None for a system
    client_id: str
    subject: str
    scopes: tuple[Scope, ...]
    purpose: str = "normal"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class _Key:
    alg: str
    key: PublicKey
    kid: str | None = None


class TokenVerifier:
    """Checks bearer JWTs against trusted keys and turns the good ones into Principals."""

    def __init__(self, keys: Iterable[TrustedKeys], audiences: Iterable[str], issuer: str | None = None,
                 hs256_secret: str | bytes | None = None, leeway: float = 30) -> None:
        self._keys = tuple(k for trusted in keys for k in _keys_of(trusted))
        self._audiences = tuple(audiences)
        if not self._audiences:
            raise ValueError("at least one accepted audience is required")
        self._secret = hs256_secret.encode() if isinstance(hs256_secret, str) else hs256_secret
        if self._secret is not None and len(self._secret) < 32:
            raise ValueError("the HS256 secret must be at least 32 bytes long")
        self._issuer = issuer
        self._leeway = leeway

    def verify(self, token: str) -> Principal:
        """The Principal of a valid token; TokenError for anything else."""
        return self.verify_with_expiry(token)[0]

    def verify_with_expiry(self, token: str) -> tuple[Principal, float]:
        """The Principal of a valid token and when the token expires (epoch seconds)."""
        header = _header(token)
        claims = self._claims(token, header.get("alg"), header.get("kid"))
        return _principal(claims, self._audiences), float(claims["exp"])

    def _claims(self, token: str, alg: object, kid: object) -> dict[str, Any]:
        if alg == "HS256" and self._secret is not None:
            candidates: list[PublicKey | bytes] = [self._secret]
        elif alg in _ASYMMETRIC:
            candidates = [k.key for k in self._keys if k.alg == alg and (kid is None or k.kid in (None, kid))]
        else:
            raise TokenError(f"signing algorithm {alg} is not accepted")
        if not candidates:
            raise TokenError(f"no trusted {alg} key" + (f" with kid {kid}" if kid is not None else ""))
        for key in candidates:
            try:
                return jwt.decode(token, key, algorithms=[alg], audience=self._audiences, issuer=self._issuer,
                                  leeway=self._leeway, options=_OPTIONS)
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as error:
                raise TokenError(_describe(error)) from error
        raise TokenError("signature verification failed")


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read here rather than by PyJWT, which would decode the whole token a second time."""
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise TokenError("malformed token")
    segment = match[1]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError) as error:
        raise TokenError("malformed token") from error
    if not isinstance(header, dict):
        raise TokenError("malformed token")
    return header


def load_keys(pem_paths: Iterable[Path], jwks_path: Path | None) -> list[TrustedKeys]:
    """Trusted keys from PEM files (public keys or certificates) and a JWKS file, for TokenVerifier."""
    keys: list[TrustedKeys] = [_load_pem(path) for path in pem_paths]
    if jwks_path is not None:
        keys.append(_load_jwks(jwks_path))
    return keys


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read trusted key file {path}: {error.strerror or error}") from error


def _load_pem(path: Path) -> PublicKey:
    data = _read(path)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
        _algorithm(key)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError(f"{path} is not a usable PEM public key or certificate: {error}") from error
    return key


def _load_jwks(path: Path) -> jwt.PyJWKSet:
    try:
        document = json.loads(_read(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON JWKS: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a JWKS: a JSON object with a keys array is expected")
    try:
        jwks = jwt.PyJWKSet.from_dict(document)
        _jwks_keys(jwks)
    except (jwt.PyJWTError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    return jwks


def _algorithm(key: object) -> str:
    """RS256 or ES256: the one algorithm a trusted key may verify."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"an RSA key of {key.key_size} bits is too weak (2048 at least)")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError(f"unsupported key {type(key).__name__}: an RSA or EC P-256 public key is expected")


def _jwks_keys(jwks: jwt.PyJWKSet) -> list[_Key]:
    """The RS256 / ES256 signature keys of a JWKS; others (HMAC, encryption, other algorithms) are skipped."""
    keys = []
    for jwk in jwks:
        if jwk.public_key_use not in (None, "sig") or jwk.algorithm_name not in _ASYMMETRIC:
            continue
        try:
            if _algorithm(jwk.key) == jwk.algorithm_name:
                keys.append(_Key(jwk.algorithm_name, jwk.key, jwk.key_id))
        except ValueError:
            continue
    if not keys:
        raise ValueError("the JWKS holds no RS256 or ES256 public signature key")
    return keys


def _keys_of(trusted: TrustedKeys) -> list[_Key]:
    if isinstance(trusted, dict):
        try:
            trusted = jwt.PyJWKSet.from_dict(trusted)
        except jwt.PyJWTError as error:
            raise ValueError(f"unusable JWKS: {error}") from error
    if isinstance(trusted, jwt.PyJWKSet):
        return _jwks_keys(trusted)
    return [_Key(_algorithm(trusted), trusted)]


def _describe(error: jwt.PyJWTError) -> str:
    match error:
        case jwt.ExpiredSignatureError():
            return "token expired"
        case jwt.ImmatureSignatureError():
            return "token not yet valid"
        case jwt.InvalidAudienceError():
            return "token audience not accepted"
        case jwt.InvalidIssuerError():
            return "token issuer not accepted"
        case jwt.MissingRequiredClaimError():
            return f"token lacks the {error.claim} claim"
        case jwt.DecodeError():
            return f"malformed token: {error}"
    return f"invalid token: {error}"


def _principal(claims: dict[str, Any], bases: tuple[str, ...]) -> Principal:
    subject = claims["sub"]  # PyJWT checked it is a string
    if not subject:
        raise TokenError("the sub claim is empty")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise TokenError("the scope claim must be a space-separated string")
    fhir_user = claims.get("fhirUser")
    kind, reference = ("system", None) if fhir_user is None else _actor(fhir_user, bases)
    return Principal(kind, reference, _string(claims, "client_id") or subject, subject, parse_scopes(scope),
                     _purpose(claims), _string(claims, "purpose_reason"))


def _actor(fhir_user: object, bases: tuple[str, ...]) -> tuple[str, str]:
    """(kind, relative reference) of a fhirUser claim: ``Type/id``, or absolute on one of ``bases``
    (this server's accepted audiences, its FHIR base by default) — never another server's user."""
    text = fhir_user if isinstance(fhir_user, str) else ""
    for base in bases:
        prefix = base.rstrip("/") + "/"
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    match = _ACTOR.fullmatch(text)
    if match is None:
        raise TokenError("fhirUser must be Patient/, RelatedPerson/, Practitioner/ or PractitionerRole/<id>, "
                         "relative or on this server")
    return _KINDS[match[1]], f"{match[1]}/{match[2]}"


def _string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise TokenError(f"the {name} claim must be a string")
    return (value or "").strip() or None


def _purpose(claims: dict[str, Any]) -> str:
    """The access mode, from purpose_of_use or IHE IUA's extensions.ihe_iua.purpose_of_use (which must agree)."""
    extensions = claims.get("extensions")
    iua = extensions.get("ihe_iua") if isinstance(extensions, dict) else None
    given = (claims.get("purpose_of_use"), iua.get("purpose_of_use") if isinstance(iua, dict) else None)
    codes = {_purpose_code(value) for value in given if value is not None}
    if len(codes) > 1:
        raise TokenError("purpose_of_use and extensions.ihe_iua.purpose_of_use disagree")
    code = codes.pop() if codes else "normal"
    if code not in PURPOSES:
        raise TokenError(f"unknown purpose_of_use {code}: expected one of {', '.join(sorted(PURPOSES))}")
    return code


def _purpose_code(value: object) -> str:
    """The code of a purpose given as a bare code or as a Coding ({"system", "code"}); the system is not checked."""
    code = value.get("code") if isinstance(value, dict) else value
    if not isinstance(code, str):
        raise TokenError("purpose_of_use must be a code or a Coding with a code")
    return code

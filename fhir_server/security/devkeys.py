"""The development signing key kept in the data directory, and the tokens ``mes token`` signs with it.

``dev_private_key`` creates the key on first use (a server with auth on does so at start-up and
trusts it, so that ``mes token`` on the same data directory works at once); ``dev_public_key``
only reads it. The key is as protected as the database beside it (mode 0600).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.security.tokens import PURPOSES

ISSUER = "mes-dev"
_USER = re.compile(r"(Patient|Practitioner|PractitionerRole|RelatedPerson)/[A-Za-z0-9\-.]{1,64}")


def key_path(data_dir: Path) -> Path:
    """Where the development key lives, so the CLI can tell the user."""
    return data_dir / "auth" / "dev-signing-key.pem"


def dev_private_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 development key, created (mode 0600, in ``data_dir/auth/``) on first use."""
    path = key_path(data_dir)
    if not path.exists():
        _create(path)
    return _load(path)


def dev_public_key(data_dir: Path) -> ec.EllipticCurvePublicKey | None:
    """The development key's public half, or None when no development key was ever created."""
    path = key_path(data_dir)
    return _load(path).public_key() if path.exists() else None


def _create(path: Path) -> None:
    """Write a new key to a temporary file, then hard-link it into place.

    Unlike a rename, a link never replaces a key another process created meanwhile, so concurrent
    first calls all end up with the one key on disk.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: keep its key
            os.link(tmp, path)
    finally:
        tmp.unlink()


def _load(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path} does not hold an EC P-256 private key")
    return key


def thumbprint(key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint of an EC P-256 public key: a stable ``kid``."""
    numbers = key.public_numbers()
    members = {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x.to_bytes(32, "big")),
               "y": _b64(numbers.y.to_bytes(32, "big"))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def issue_dev_token(data_dir: Path, sub: str, scopes: str, audience: str, purpose: str | None = None,
                    reason: str | None = None, lifetime_s: int = 3600) -> str:
    """An ES256 token signed by the development key (created if need be) for ``sub``.

    A ``sub`` such as Patient/123 or Practitioner/9 also becomes the ``fhirUser``; any other
    ``sub`` names a system client (``client_id``).
    """
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: expected one of {', '.join(sorted(PURPOSES))}")
    if lifetime_s <= 0:
        raise ValueError("the token lifetime must be positive")
    key = dev_private_key(data_dir)
    now = int(time.time())
    claims: dict[str, object] = {"iss": ISSUER, "sub": sub, "aud": audience, "scope": scopes, "iat": now,
                                 "nbf": now, "exp": now + lifetime_s, "jti": secrets.token_urlsafe(16)}
    claims["fhirUser" if _USER.fullmatch(sub) else "client_id"] = sub
    if purpose is not None:
        claims["purpose_of_use"] = purpose
    if reason is not None:
        claims["purpose_reason"] = reason
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": thumbprint(key.public_key())})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

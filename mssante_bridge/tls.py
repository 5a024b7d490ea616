"""TLS for the bridge: the server certificate (a self-signed one kept in the data directory when
none is configured, so STARTTLS always works) and the context that asks senders for theirs.

The client certificate is requested in the handshake and verified against the trust anchor
(``MES_SMTP_CLIENT_CA``, the IGC-Santé role); one that does not chain fails the handshake, and a
session without one is refused before MAIL (``smtp.py``)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder: Path) -> tuple[Path, Path]:
    """The data directory's own certificate and key (created once, key mode 0600)."""
    cert, key = folder / "smtp-server.pem", folder / "smtp-server.key"
    if cert.exists() and key.exists():
        return cert, key
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, socket.getfqdn() or "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=825))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(private, hashes.SHA256()))
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def subject_of(peercert: dict | None) -> str | None:
    """The subject of a verified peer certificate (``ssl.getpeercert()``), as ``CN=…, O=…``."""
    if not peercert:
        return None
    return ", ".join(f"{key}={value}" for rdn in peercert.get("subject", ()) for key, value in rdn)

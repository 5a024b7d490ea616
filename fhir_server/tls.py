"""The TLS server context of the doors that authenticate senders by certificate (MLLP, SMTP)."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: str | Path, key: str | Path, client_ca: str | None, *,
                   client_optional: bool = False) -> ssl.SSLContext:
    """TLS 1.2+ with our certificate; with ``client_ca``, clients' certificates are asked for and
    must chain to it. ``client_optional``: a client may come without one (the SMTP door refuses
    such a session itself, with an SMTP reply rather than a failed handshake)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_OPTIONAL if client_optional else ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context

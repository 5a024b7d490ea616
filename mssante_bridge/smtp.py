"""The bridge's SMTP listener (aiosmtpd) — thin: check, spool durably, answer; delivery is later.

- STARTTLS is required before MAIL (RFC 3207), and the sender's TLS client certificate must chain
  to the trust anchor (checked in the handshake; a session without a certificate is refused at
  STARTTLS, ``554``). Without a trust anchor configured the bridge accepts no mail at all.
- MAIL FROM: the sender's domain must be on the allow-list (``550 5.7.1``).
- RCPT TO: a patient address of the configured domain, whom the sender may write to (the core
  says: unknown patient, closed space, blocked sender → ``550``); nothing is accepted that could
  not be delivered.
- DATA: the size limit (``552``), then the message is read (MIME, IHE XDM: bombs and malformed
  mail refused with ``552`` / ``554``), written to the spool and synced, and only then ``250``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session

from mssante_bridge.addresses import allowed_domain, bare, patient_matricule
from mssante_bridge.spool import Envelope as Spooled
from mssante_bridge.spool import Spool
from mssante_bridge.tls import subject_of

log = logging.getLogger("mes")

#: (sender, matricule) → an SMTP refusal ("550 5.1.1 …") or None.
RecipientCheck = Callable[[str, str], "str | None"]
#: The message's bytes → (an SMTP refusal or None, what reading it gave: handed to ``accepted``
#: so that delivery need not read it again).
ContentCheck = Callable[[bytes], "tuple[str | None, object]"]


@dataclass(frozen=True)
class Gate:
    allowed_domains: frozenset[str]
    patient_domain: str
    trusted: bool  # a trust anchor is configured: client certificates can be verified
    recipient: RecipientCheck
    content: ContentCheck
    accepted: Callable[[str, object], Awaitable[None]]  # a mail was spooled under this key (and read so)


class BridgeHandler:
    """aiosmtpd's hooks."""

    def __init__(self, gate: Gate, spool: Spool) -> None:
        self.gate = gate
        self.spool = spool

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        certificate = (session.ssl or {}).get("peercert")
        if not self.gate.trusted or not certificate:
            log.warning("MSSanté bridge: session from %s without a trusted client certificate", session.peer)
            return False
        return True

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if not (session.ssl or {}).get("peercert"):
            return "530 5.7.0 A trusted TLS client certificate is required (STARTTLS)"
        if not bare(address):
            return "550 5.7.1 This bridge takes no bounces or receipts (null sender): write from an MSSanté address"
        if not allowed_domain(address, self.gate.allowed_domains):
            return f"550 5.7.1 The domain of {bare(address)} is not on this bridge's MSSanté allow-list"
        envelope.mail_from = bare(address)
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        matricule = patient_matricule(address, self.gate.patient_domain)
        if matricule is None:
            return f"550 5.1.1 {bare(address)} is not a patient address of {self.gate.patient_domain}"
        refusal = self.gate.recipient(envelope.mail_from, matricule)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(bare(address))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        refusal, read = await asyncio.to_thread(self.gate.content, data)  # a 30 MB mail takes a while to read
        if refusal is not None:
            return refusal
        certificate = (session.ssl or {}).get("peercert")
        key = await asyncio.to_thread(self.spool.put, Spooled(
            envelope.mail_from, tuple(envelope.rcpt_tos), str((session.peer or ("",))[0]), subject_of(certificate),
            time.time()), data)
        await self.gate.accepted(key, read)
        return f"250 2.0.0 Accepted for delivery as {key}"


async def start(gate: Gate, spool: Spool, host: str, port: int, tls_context, max_bytes: int,
                hostname: str) -> asyncio.AbstractServer:
    """The listener on the running loop (the one the FHIR server and the core use)."""
    handler = BridgeHandler(gate, spool)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, hostname=hostname, tls_context=tls_context, require_starttls=True,
                     data_size_limit=max_bytes, enable_SMTPUTF8=True, decode_data=False, loop=loop),
        host, port)

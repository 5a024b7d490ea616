"""The MSSanté door: the SMTP listener (``mssante_bridge/smtp.py``) wired to the core, and the
postman that delivers what the spool holds.

The door acts as one system client (``MES_SMTP_CLIENT_ID``, ``mssante-bridge``) whose writes are
traced with the sending server's address. Delivery runs in a worker thread, one mail at a time,
nudged when a mail is spooled and at start-up (what a crash left in the spool is delivered then), and retried
with growing waits when it fails (a store busy, a patient gone between RCPT and delivery); a mail
that keeps failing moves to the spool's ``failed/`` folder and is logged, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path

from fhir_server.config import Settings
from fhir_server.core.repository import Repository
from fhir_server.inbox.client import bridge_principal
from fhir_server.inbox.courier import CourierProcess
from fhir_server.inbox.deliver import Undeliverable, deliver
from fhir_server.inbox.filing import ZIP_TYPES
from fhir_server.inbox.recipients import refusal_for
from fhir_server.security.audit import AuditRecorder, AuditTrail
from fhir_server.tls import server_context
from mssante_bridge import smtp
from mssante_bridge.addresses import allow_list
from mssante_bridge.mail import MailError, MailLimits, ParsedMail, Trust, parse_mail
from mssante_bridge.relay import Relay
from mssante_bridge.spool import Spool
from mssante_bridge.tls import self_signed
from mssante_bridge.xdm import NotXdm, XdmError, XdmPackage, read_xdm

log = logging.getLogger("mes")

#: A mail as read: what it says, and the IHE XDM packages it carries.
Read = tuple[ParsedMail, list[XdmPackage]]
POSTMEN = 2  # mails delivered at once
MAX_ATTEMPTS = 8  # waits of 1, 2, 4 … 64 s between them: about two minutes of trying
POLL_SECONDS = 1.0


def check_smtp_settings(settings: Settings) -> None:
    if bool(settings.smtp_tls_cert) != bool(settings.smtp_tls_key):
        raise ValueError("MES_SMTP_TLS_CERT and MES_SMTP_TLS_KEY go together")
    if settings.smtp_client_ca and not Path(settings.smtp_client_ca).is_file():
        raise ValueError(f"MES_SMTP_CLIENT_CA names no file: {settings.smtp_client_ca}")
    if settings.smtp_relay:
        Relay.parse(settings.smtp_relay)


def xdm_packages(mail: ParsedMail) -> list[XdmPackage]:
    """The IHE XDM packages a mail carries: ``IHE_XDM.zip``, or any ZIP that holds one (another
    ZIP is an ordinary attachment; one named ``IHE_XDM.zip`` must be a package)."""
    packages = []
    for attachment in mail.attachments:
        name = (attachment.filename or "").lower()
        if not name.endswith(".zip") and attachment.content_type not in ZIP_TYPES:
            continue
        try:
            packages.append(read_xdm(attachment.data))
        except NotXdm:
            if name == "ihe_xdm.zip":
                raise
    return packages


class MssanteDoor:
    def __init__(self, settings: Settings, repository: Repository, audit: AuditTrail) -> None:
        check_smtp_settings(settings)
        self.settings = settings
        folder = Path(settings.data_dir) / "mssante"
        self.spool = Spool(folder / "spool")
        self._access = repository.resolve_access(bridge_principal(settings))
        self._repository = repository
        self._audit = audit
        self._limits = MailLimits(total_bytes=settings.smtp_max_message_bytes)
        self._trust = Trust.from_file(Path(settings.smtp_client_ca)) if settings.smtp_client_ca else None
        cert, key = ((Path(settings.smtp_tls_cert), Path(settings.smtp_tls_key)) if settings.smtp_tls_cert
                     else self_signed(folder / "tls"))
        self._tls = server_context(cert, key, settings.smtp_client_ca or None, client_optional=True)
        self._wake = asyncio.Event()
        self._courier: CourierProcess | None = None  # the outbox's own process, with a relay
        self._not_before: dict[str, float] = {}  # spool key → when to try a failed delivery again (monotonic)
        self._read: dict[str, Read] = {}  # spool key → the mail as read at DATA, until delivered
        self._delivering: dict[str, asyncio.Task] = {}  # spool key → its delivery under way
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        s = self.settings
        if not s.smtp_client_ca:
            log.warning("MSSanté bridge: no MES_SMTP_CLIENT_CA, so no sender can be authenticated: it accepts no mail")
        gate = smtp.Gate(allow_list(s.smtp_allowed_domains), s.patient_mail_domain, bool(s.smtp_client_ca),
                         self._recipient, self._content, self._accepted)
        self._server = await smtp.start(gate, self.spool, s.smtp_host, s.smtp_port, self._tls,
                                        s.smtp_max_message_bytes, socket.getfqdn())
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._deliver_forever()))
        if s.smtp_relay:
            self._courier = CourierProcess(s)
            self._courier.start()
            self._tasks.append(loop.create_task(self._courier.watch()))
        else:
            log.warning("MSSanté bridge: no MES_SMTP_RELAY, so receipts and patients' answers wait in the outbox")
        log.info("MSSanté bridge on %s:%s", s.smtp_host, s.smtp_port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*self._delivering.values(), return_exceptions=True)  # let deliveries under way end
        if self._courier is not None:
            await asyncio.to_thread(self._courier.stop)

    def _recipient(self, sender: str, matricule: str) -> str | None:
        refusal = refusal_for(self._repository.acting_as(self._access), sender, matricule)
        return refusal.reply() if refusal else None

    def _content(self, data: bytes) -> tuple[str | None, Read | None]:
        """Refuse at DATA what could never be delivered: malformed mail, MIME or ZIP bombs."""
        try:
            mail = parse_mail(data, self._limits, self._trust)
            return None, (mail, xdm_packages(mail))
        except MailError as error:
            return f"{error.reply_code} {error.enhanced} {error.text}", None
        except XdmError as error:
            return f"554 5.6.0 The IHE XDM package is refused: {error}", None

    async def _accepted(self, key: str, read: Read) -> None:
        if key not in self._delivering and self.spool.holds(key):  # a scan may have taken it already
            self._read[key] = read  # the postman delivers it next, without reading it again
        self._wake.set()

    def _reread(self, data: bytes) -> Read:
        """A mail read again (after a restart, or for another attempt)."""
        mail = parse_mail(data, self._limits, self._trust)
        return mail, xdm_packages(mail)

    async def _deliver_forever(self) -> None:
        """Deliver what the spool holds, oldest first, ``POSTMEN`` mails at a time (their documents
        are read side by side; their writes take turns in the store)."""
        delivering = self._delivering
        while True:
            self._wake.clear()  # before the scan: a mail spooled (or delivered) during it wakes the next one
            for key in self.spool.pending():
                if len(delivering) >= POSTMEN:
                    break
                if key not in delivering and self._not_before.get(key, 0) <= time.monotonic():
                    delivering[key] = task = asyncio.create_task(self._deliver_one(key))
                    task.add_done_callback(lambda _, key=key: (delivering.pop(key, None), self._wake.set()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _deliver_one(self, key: str) -> None:
        spooled = self.spool.load(key)
        recorder = AuditRecorder(self._access, spooled.envelope.peer)
        try:
            mail, packages = self._read.pop(key, None) or await asyncio.to_thread(self._reread, spooled.data)
            await asyncio.to_thread(  # off the loop: the listener goes on accepting meanwhile
                deliver, self._repository.acting_as(self._access, recorder), spooled.envelope, spooled.data, mail,
                packages, self.settings.patient_mail_domain)
            await self._audit.record(recorder)
        except Undeliverable as error:  # no retry brings a patient back
            log.error("MSSanté bridge: %s set aside in %s: %s", key, self.spool.failed, error)
            self.spool.fail(key)
            return
        except Exception:
            log.exception("MSSanté bridge: delivery of %s failed (attempt %d)", key, spooled.attempts + 1)
            self._not_before[key] = time.monotonic() + 2 ** spooled.attempts
            if self.spool.retry_later(key, MAX_ATTEMPTS):
                log.error("MSSanté bridge: %s moved to %s after %d attempts", key, self.spool.failed, MAX_ATTEMPTS)
                self._not_before.pop(key, None)
            return
        self._not_before.pop(key, None)
        self.spool.done(key)

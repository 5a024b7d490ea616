"""The MSSanté bridge as a professional's mail server sees it: a running ``mes serve`` with its
SMTP listener (STARTTLS, client certificates from a CA the suite makes), and an SMTP client
that speaks to it over loopback."""

from __future__ import annotations

import dataclasses
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller
from conftest import FHIR_JSON, ThreadServer, free_port

from fhir_server.security.devkeys import issue_dev_token
from fhir_server.synthetic_mail import MailSpec, professional_mail, to_bytes
from fhir_server.synthetic_pki import Ca, Issued

SENDER = "adam.hoda@test-ci-sis.mssante.fr"
DOMAINS = "test-ci-sis.mssante.fr,hopital-test.mssante.fr"
INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"


@dataclass(frozen=True)
class Pki:
    ca: Ca
    server: Issued
    client: Issued
    intruder: Issued  # issued by another CA

    @classmethod
    def make(cls, folder: Path) -> Pki:
        ca, other = Ca(folder / "ca"), Ca(folder / "other", "Other CA")
        return cls(ca, ca.issue("bridge.mes.test", server=True), ca.issue("cabinet-hoda"), other.issue("intruder"))

    def client_context(self, issued: Issued | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if issued is not None:
            context.load_cert_chain(issued.cert, issued.key)
        return context


def bridge_settings(pki: Pki, port: int, **overrides) -> dict:
    return {"smtp_port": port, "smtp_tls_cert": str(pki.server.cert), "smtp_tls_key": str(pki.server.key),
            "smtp_client_ca": str(pki.ca.cert), "smtp_allowed_domains": DOMAINS, **overrides}


@contextmanager
def running_bridge(data_dir: Path, pki: Pki, **overrides) -> Iterator[ThreadServer]:
    """The server with its bridge, auth on: ``http`` is a system client, ``client(sub, scope)`` any other."""
    port = free_port()
    with ThreadServer(data_dir, auth="on", **bridge_settings(pki, port, **overrides)) as running:
        def client(sub: str, scope: str) -> httpx.Client:
            token = issue_dev_token(data_dir, sub, scope, running.base)
            return httpx.Client(base_url=running.base, timeout=30,
                                headers={"Accept": FHIR_JSON, "Authorization": f"Bearer {token}"})

        running.smtp_port, running.client = port, client
        with client("integration-tests", "system/*.cruds") as running.http:
            yield running


@contextmanager
def session(port: int, context: ssl.SSLContext | None) -> Iterator[smtplib.SMTP]:
    """An SMTP session, after STARTTLS when ``context`` is given."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("cabinet.test-ci-sis.mssante.fr")
        if context is not None:
            smtp.starttls(context=context)
            smtp.ehlo("cabinet.test-ci-sis.mssante.fr")
        yield smtp


def send(port: int, context: ssl.SSLContext, data: bytes, recipients: list[str], sender: str = SENDER
         ) -> list[tuple[int, bytes]]:
    """MAIL, each RCPT and DATA (if a recipient was accepted): every reply, in order."""
    with session(port, context) as smtp:
        replies = [smtp.mail(sender)]
        replies += [smtp.rcpt(address) for address in recipients]
        if any(code == 250 for code, _ in replies[1:]):
            replies.append(smtp.data(data))
        return replies


def new_matricule() -> str:
    return "2" + f"{uuid.uuid4().int % 10**14:014d}"


def address(matricule: str) -> str:
    return f"{matricule}@patient.mssante.fr"


def new_patient(http: httpx.Client, matricule: str | None = None, **extra) -> tuple[str, str]:
    """A patient with a NIR INS: (id, address)."""
    matricule = matricule or new_matricule()
    resource = {"resourceType": "Patient", "identifier": [{"system": INS_NIR, "value": matricule}],
                "name": [{"family": "Lefèvre", "given": ["Hélène"]}], **extra}
    created = http.post("/Patient", json=resource)
    assert created.status_code == 201, created.text
    return created.json()["id"], address(matricule)


def mail(recipient: str, **changes) -> bytes:
    changes.setdefault("message_id", f"<{uuid.uuid4().hex}@test-ci-sis.mssante.fr>")
    return to_bytes(professional_mail(dataclasses.replace(MailSpec(), recipient=recipient, **changes)))


def inbox(http: httpx.Client, patient_id: str, **params) -> list[dict]:
    found = http.get("/Communication", params={"recipient": f"Patient/{patient_id}", **params})
    assert found.status_code == 200, found.text
    return [entry["resource"] for entry in found.json().get("entry", ())]


def eventually(probe: Callable[[], object], seconds: float = 20) -> object:
    """Delivery happens after the 250: wait for what it should do."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@dataclass
class Relayed:
    mail_from: str
    rcpt_tos: list[str]
    message: Message


class RelaySink:
    """The outbound relay (``MES_SMTP_RELAY``) as a loopback SMTP server that keeps what it is
    given; ``refusing`` makes it answer ``451`` (a relay that is down or throttling)."""

    def __init__(self) -> None:
        self.received: list[Relayed] = []
        self.refusing = False
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refusing:
            return "451 4.3.0 Relay busy, try again later"
        self.received.append(Relayed(envelope.mail_from, list(envelope.rcpt_tos),
                                     BytesParser(policy=policy.default).parsebytes(envelope.original_content)))
        return "250 2.0.0 OK"

    def __enter__(self) -> RelaySink:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def about(self, text: str) -> list[Relayed]:
        """What was relayed whose subject contains ``text``."""
        return [r for r in self.received if text in str(r.message["Subject"])]

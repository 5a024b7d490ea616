"""Handing a mail to the outbound SMTP relay (``MES_SMTP_RELAY``, ``host:port``): the MSSanté
operator's server that carries receipts and patients' answers to professionals.

Blocking (smtplib): callers run it in a worker thread. A refusal or a network failure raises
``RelayError`` with what the relay said, which the outbox keeps as the last error and retries."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from mssante_bridge.wire import to_wire

TIMEOUT_SECONDS = 30


class RelayError(Exception):
    """The relay did not take the mail (not reachable, or refused it)."""


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    tls: ssl.SSLContext | None = None  # STARTTLS when given (and offered)

    @classmethod
    def parse(cls, spec: str, tls: ssl.SSLContext | None = None) -> Relay:
        host, _, port = spec.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"MES_SMTP_RELAY must be host:port, not {spec!r}")
        return cls(host.strip("[]"), int(port), tls)

    def send(self, message: EmailMessage, envelope_from: str, recipients: list[str]) -> None:
        """Hand ``message`` over; returns once the relay accepted it for every recipient."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS) as smtp:
                smtp.ehlo()
                if self.tls is not None and smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls)
                    smtp.ehlo()
                refused = smtp.sendmail(envelope_from, recipients, to_wire(message))
        except smtplib.SMTPResponseException as error:
            raise RelayError(f"{error.smtp_code} {error.smtp_error.decode('utf-8', 'replace')}") from error
        except (smtplib.SMTPException, OSError) as error:
            raise RelayError(f"{type(error).__name__}: {error}") from error
        if refused:
            raise RelayError("; ".join(f"{to}: {code} {text.decode('utf-8', 'replace')}"
                                       for to, (code, text) in refused.items()))

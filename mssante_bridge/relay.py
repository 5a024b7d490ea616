"""Handing a mail to the outbound SMTP relay (``MES_SMTP_RELAY``, ``host:port``): the MSSanté
operator's server that carries receipts and patients' answers to professionals.

Blocking (smtplib): callers run it in a worker thread, one session per round of sending. A
refusal or a network failure raises ``RelayError`` with what the relay said, which the outbox keeps
as the last error and retries."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
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

    @contextmanager
    def session(self) -> Iterator[RelaySession]:
        """One connection for several mails (opened at the first, closed at the end)."""
        session = RelaySession(self)
        try:
            yield session
        finally:
            session.close()


class RelaySession:
    """Mails handed over one after another on one SMTP connection, opened when first needed and
    opened again after a failure of the connection (a refused mail leaves it usable)."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: EmailMessage, envelope_from: str, recipients: list[str]) -> None:
        """Hand ``message`` over; returns once the relay accepted it for every recipient."""
        try:
            refused = self._connected().sendmail(envelope_from, recipients, to_wire(message))
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:  # the relay is closing the connection
                self.close()
            raise RelayError(f"{error.smtp_code} {error.smtp_error.decode('utf-8', 'replace')}") from error
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise RelayError(f"{type(error).__name__}: {error}") from error
        if refused:
            raise RelayError("; ".join(f"{to}: {code} {text.decode('utf-8', 'replace')}"
                                       for to, (code, text) in refused.items()))

    def _connected(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp = smtplib.SMTP(self._relay.host, self._relay.port, timeout=TIMEOUT_SECONDS)
            smtp.ehlo()
            if self._relay.tls is not None and smtp.has_extn("starttls"):
                smtp.starttls(context=self._relay.tls)
                smtp.ehlo()
            self._smtp = smtp
        return self._smtp

    def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

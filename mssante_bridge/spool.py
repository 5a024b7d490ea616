"""The durable spool: a mail accepted by SMTP is on disk, synced, before the ``250``.

One file per accepted mail: a first line of JSON (the envelope: MAIL FROM, RCPT TO, the peer,
its certificate's subject, when) then the message's bytes as received. Written to a temporary
name, synced, renamed into place and the folder synced: a crash leaves either no file (the
client got no ``250`` and sends again) or a whole one. Delivery reads the spool and removes a
file only once what it delivered is committed; a file that keeps failing moves to ``failed/``
for an operator, never away.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

SUFFIX = ".eml"


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str
    tls_subject: str | None
    received: float  # seconds since the epoch


@dataclass(frozen=True)
class Spooled:
    key: str
    envelope: Envelope
    data: bytes
    attempts: int


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.failed = self.folder / "failed"
        self.failed.mkdir(parents=True, exist_ok=True)
        self._attempts: dict[str, int] = {}

    def put(self, envelope: Envelope, data: bytes) -> str:
        """Keep a mail durably; its key. Returns only once it would survive a crash."""
        key = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        temporary = self.folder / f".{key}.tmp"
        header = json.dumps({**asdict(envelope), "rcpt_tos": list(envelope.rcpt_tos)}).encode()
        with open(temporary, "wb") as out:
            out.write(header + b"\n" + data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.folder / f"{key}{SUFFIX}")
        _sync_folder(self.folder)
        return key

    def pending(self) -> list[str]:
        """Keys of the mails not yet delivered, oldest first."""
        return sorted(p.name.removesuffix(SUFFIX) for p in self.folder.glob(f"*{SUFFIX}"))

    def holds(self, key: str) -> bool:
        """Whether the mail is still waiting for delivery."""
        return (self.folder / f"{key}{SUFFIX}").exists()

    def load(self, key: str) -> Spooled:
        raw = (self.folder / f"{key}{SUFFIX}").read_bytes()
        header, _, data = raw.partition(b"\n")
        fields = json.loads(header)
        envelope = Envelope(**{**fields, "rcpt_tos": tuple(fields["rcpt_tos"])})
        return Spooled(key, envelope, data, self._attempts.get(key, 0))

    def done(self, key: str) -> None:
        (self.folder / f"{key}{SUFFIX}").unlink(missing_ok=True)
        self._attempts.pop(key, None)

    def retry_later(self, key: str, max_attempts: int) -> bool:
        """Count a failed delivery; past ``max_attempts`` the mail moves to ``failed/``. True if it moved."""
        self._attempts[key] = self._attempts.get(key, 0) + 1
        if self._attempts[key] < max_attempts:
            return False
        self.fail(key)
        return True

    def fail(self, key: str) -> None:
        """Set a mail aside in ``failed/`` for an operator (it can be moved back to be retried)."""
        os.replace(self.folder / f"{key}{SUFFIX}", self.failed / f"{key}{SUFFIX}")
        self._attempts.pop(key, None)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

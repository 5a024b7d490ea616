"""A mail as the bytes that go on the wire (RFC 5322 CRLF lines) — the email package's generator,
minus its line-by-line rewriting of text that is already CRLF throughout: receipts carry the
original mail and its ~100 KB of attachments, which that loop spent milliseconds on."""

from __future__ import annotations

from email.generator import BytesGenerator
from email.message import Message
from email.policy import SMTP
from io import BytesIO


class _WireGenerator(BytesGenerator):
    def _write_lines(self, lines: str) -> None:
        if self._NL == "\r\n" and lines.count("\n") == lines.count("\r\n") == lines.count("\r"):
            self.write(lines)  # what the line-by-line loop would write, at once
        else:
            super()._write_lines(lines)


def to_wire(message: Message) -> bytes:
    """``message.as_bytes(policy=email.policy.SMTP)``, faster for large CRLF parts."""
    out = BytesIO()
    _WireGenerator(out, mangle_from_=False, policy=SMTP).flatten(message)
    return out.getvalue()

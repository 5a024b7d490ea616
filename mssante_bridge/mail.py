"""One received MSSanté mail's bytes → what the inbox needs (headers, text, attachments, signature).

Pure: no network, store or files. What must be refused raises ``MailError`` carrying the SMTP answer
(``552 5.3.4`` for a limit, ``554 5.6.0`` for malformed content); anything else that goes wrong while
reading hostile bytes becomes a ``554`` too, never a crash. Limits are checked before the costly work:
the size first, the top-level header block by a byte scan, and the part count while the stdlib parser
creates parts (a MIME bomb stops at part ``max_parts + 1``).
"""

from __future__ import annotations

import codecs
import datetime
import re
from dataclasses import dataclass, field
from email import errors, policy, utils
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from html.parser import HTMLParser

from asn1crypto import cms

from mssante_bridge import smime
from mssante_bridge.smime import SignatureResult, Trust

__all__ = ["Attachment", "MailError", "MailLimits", "ParsedMail", "SignatureResult", "Trust", "parse_mail"]

XDM_PREFIX = re.compile(r"^\s*XDM/1\.0/DDM\+\s*", re.IGNORECASE)
SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature"}
OPAQUE_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes the parser could not decode (surrogateescape)
_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")
_LATIN1 = {"iso8859-1", "latin-1", "ascii"}  # labels that in practice mean windows-1252 (WHATWG)


class MailError(Exception):
    """A refusal, as the SMTP answer to give (``reply()``)."""

    def __init__(self, reply_code: int, enhanced: str, text: str) -> None:
        text = _CONTROLS.sub(" ", text.replace("\r", " ").replace("\n", " ")).encode("ascii", "replace").decode()
        super().__init__(f"{reply_code} {enhanced} {text}")
        self.reply_code, self.enhanced, self.text = reply_code, enhanced, text

    def reply(self) -> str:
        return f"{self.reply_code} {self.enhanced} {self.text}"


def _too_big(text: str) -> MailError:
    return MailError(552, "5.3.4", text)


def _malformed(text: str) -> MailError:
    return MailError(554, "5.6.0", text)


@dataclass(frozen=True)
class MailLimits:
    total_bytes: int = 30 * 1024 * 1024
    max_parts: int = 100  # MIME entities, the message itself included
    max_depth: int = 10  # nesting below the message (a part of a multipart/mixed is at depth 1)
    max_headers: int = 500  # header fields of one entity
    max_header_line: int = 4096  # one physical header line, in bytes
    max_header_block: int = 256 * 1024  # one entity's header section, in bytes


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    data: bytes
    content_id: str | None = None  # without <>, as ``cid:`` URLs name it (inline images)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    subject_shown: str  # without the CI-SIS ``XDM/1.0/DDM+`` prefix, as Mon Espace Santé shows it
    sender: str
    sender_name: str | None
    sent: datetime.datetime | None
    disposition_notification_to: str | None
    return_path: str | None
    mss: dict[str, str]
    text: str | None
    attachments: tuple[Attachment, ...]
    signature: SignatureResult | None


def parse_mail(data: bytes, limits: MailLimits = MailLimits(), trust: Trust | None = None) -> ParsedMail:  # noqa: B008
    """Read one message; ``MailError`` for what must be refused."""
    data = bytes(data)
    if len(data) > limits.total_bytes:
        raise _too_big(f"Message of {len(data)} bytes exceeds the {limits.total_bytes}-byte limit")
    _scan_header_block(data, limits)
    try:
        return _parse(data, limits, trust)
    except MailError:
        raise
    except Exception as error:  # hostile input must never become a crash
        raise _malformed(f"Malformed message ({type(error).__name__})") from error


def _scan_header_block(data: bytes, limits: MailLimits) -> None:
    """The top-level header section's limits, on bytes, before any parsing."""
    position = count = 0
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end + 1
        line = data[position:end]
        if line in (b"\n", b"\r\n"):
            return
        if end - position > limits.max_header_line:
            raise _too_big(f"A header line exceeds {limits.max_header_line} bytes")
        if end > limits.max_header_block:
            raise _too_big(f"The header section exceeds {limits.max_header_block} bytes")
        count += line[:1] not in (b" ", b"\t")
        if count > limits.max_headers:
            raise _too_big(f"More than {limits.max_headers} header fields")
        position = end


class _Budget:
    """Counts every entity the parser creates; shared by a message and the content of its opaque signature."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def __call__(self, policy: policy.Policy = policy.default) -> EmailMessage:
        self.used += 1
        if self.used > self.limit:
            raise _too_big(f"More than {self.limit} MIME parts")
        return EmailMessage(policy=policy)


def _read(data: bytes, budget: _Budget) -> EmailMessage:
    used = budget.used
    parser = BytesFeedParser(budget, policy=policy.default)
    budget.used = used  # the parser tries its factory once when built
    parser.feed(data)
    return parser.close()


def _parse(data: bytes, limits: MailLimits, trust: Trust | None) -> ParsedMail:
    budget = _Budget(limits.max_parts)
    message = _read(data, budget)
    _check_tree(message, limits, 0)
    content = _Content(limits, trust, budget)
    content.walk(message, data, (), 0, None)
    text, attachments = content.split()
    sender = _address(message, "From")
    if sender is None:
        raise _malformed("The message has no From address")
    subject = _header(message, "Subject") or ""
    return ParsedMail(
        message_id=_first_id(_raw(message, "Message-ID")), in_reply_to=_first_id(_raw(message, "In-Reply-To")),
        references=tuple(_MESSAGE_IDS.findall(_raw(message, "References") or "")),
        subject=subject, subject_shown=XDM_PREFIX.sub("", subject), sender=sender[1], sender_name=sender[0],
        sent=_date(_raw(message, "Date")),
        disposition_notification_to=_address_only(message, "Disposition-Notification-To"),
        return_path=_address_only(message, "Return-Path"), mss=_mss(message), text=text,
        attachments=tuple(attachments), signature=content.signature)


def _check_tree(root: Message, limits: MailLimits, base_depth: int) -> None:
    """Depth and per-entity header limits over everything parsed (attached messages included)."""
    stack: list[tuple[Message, int]] = [(root, base_depth)]
    while stack:
        part, depth = stack.pop()
        if depth > limits.max_depth:
            raise _too_big(f"MIME nesting deeper than {limits.max_depth}")
        items = list(part.raw_items())
        if len(items) > limits.max_headers:
            raise _too_big(f"More than {limits.max_headers} header fields in a part")
        size = 0
        for name, value in items:
            for line in f"{name}: {value}".split("\n"):
                size += len(line) + 1
                if len(line) + 1 > limits.max_header_line:
                    raise _too_big(f"A header line exceeds {limits.max_header_line} bytes")
        if size > limits.max_header_block:
            raise _too_big(f"A header section exceeds {limits.max_header_block} bytes")
        if part.is_multipart():
            stack.extend((child, depth + 1) for child in part.get_payload())


@dataclass
class _Leaf:
    part: Message
    alternative: int | None  # the nearest multipart/alternative around it
    base: bytes  # with ``path``: where its bytes are, for an attached message kept as received
    path: tuple[tuple[str, int], ...]


@dataclass
class _Content:
    """Walks the content tree: leaves in order, S/MIME layers opened and checked on the way."""

    limits: MailLimits
    trust: Trust | None
    budget: _Budget
    leaves: list[_Leaf] = field(default_factory=list)
    signature: SignatureResult | None = None
    _groups: int = 0

    def walk(self, part: Message, base: bytes, path: tuple[tuple[str, int], ...], depth: int,
             alternative: int | None) -> None:
        """``base`` + ``path`` (boundary, index per level) locate ``part``'s exact bytes for a signature."""
        kind = part.get_content_type()
        if kind == "multipart/signed":
            signed = self._detached(part, base, path)
            self.walk(signed, base, (*path, (part.get_boundary(), 0)), depth + 1, alternative)
        elif kind in OPAQUE_TYPES and (signed := self._opaque(part)) is not None:
            try:
                content = smime.content_of(signed)
            except smime.SmimeError as error:
                raise _malformed(f"Broken S/MIME signed-data: {error}") from error
            self.signature = self.signature or smime.verify(signed, None, self.trust)
            inner = _read(content, self.budget)
            _check_tree(inner, self.limits, depth + 1)
            self.walk(inner, content, (), depth + 1, alternative)
        elif part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if not isinstance(children, list) or not part.get_boundary():
                raise _malformed(f"A {kind} part has no usable boundary")
            if kind == "multipart/alternative":
                self._groups += 1
                alternative = self._groups
            for index, child in enumerate(children):
                self.walk(child, base, (*path, (part.get_boundary(), index)), depth + 1, alternative)
        else:
            self.leaves.append(_Leaf(part, alternative, base, path))

    def _detached(self, part: Message, base: bytes, path: tuple[tuple[str, int], ...]) -> Message:
        children = part.get_payload()
        if not isinstance(children, list) or len(children) != 2:
            raise _malformed("multipart/signed must have exactly two parts")
        if children[1].get_content_type() not in SIGNATURE_TYPES:
            raise _malformed("The second part of multipart/signed is not a PKCS#7 signature")
        try:
            signed = smime.load(_decoded(children[1]))
        except smime.SmimeError as error:
            raise _malformed(f"Broken S/MIME signature: {error}") from error
        exact = _locate(base, (*path, (part.get_boundary(), 0)))
        result = (SignatureResult(False, None, "the signed part could not be located in the message bytes")
                  if exact is None else smime.verify(signed, re.sub(rb"\r?\n", b"\r\n", exact), self.trust))
        self.signature = self.signature or result
        return children[0]

    def _opaque(self, part: Message) -> cms.SignedData | None:
        """An opaque signature (``smime-type=signed-data``, or a .p7m that holds one), else None: a file."""
        declared = part.get_param("smime-type") or ""
        declared = declared.lower() if isinstance(declared, str) else ""
        if declared and declared != "signed-data":
            return None  # enveloped-data (we hold no key) or certs-only: kept as an attachment
        try:
            return smime.load(_decoded(part))
        except smime.SmimeError as error:
            if declared:
                raise _malformed(f"Broken S/MIME signed-data: {error}") from error
            return None

    def split(self) -> tuple[str | None, list[Attachment]]:
        """The body text (plain preferred within its alternative) and every other leaf as an attachment."""
        body = next((leaf for leaf in self.leaves if _is_body_text(leaf.part)), None)
        if body is not None and body.alternative is not None and body.part.get_content_subtype() != "plain":
            body = next((leaf for leaf in self.leaves if leaf.alternative == body.alternative
                         and _is_body_text(leaf.part) and leaf.part.get_content_subtype() == "plain"), body)
        text = None
        attachments = []
        for leaf in self.leaves:
            if leaf is body:
                raw = _text_of(leaf.part)
                text = _html_text(raw) if leaf.part.get_content_subtype() == "html" else raw
                text = _CONTROLS.sub("", text.replace("\r\n", "\n")).rstrip()
            elif not (body is not None and body.alternative is not None and leaf.alternative == body.alternative
                      and _is_body_text(leaf.part)):
                attachments.append(_attachment(leaf))
        return text, attachments


def _is_body_text(part: Message) -> bool:
    return (part.get_content_type() in ("text/plain", "text/html") and part.get_filename() is None
            and part.get_content_disposition() != "attachment")


def _locate(base: bytes, path: tuple[tuple[str, int], ...]) -> bytes | None:
    """The exact bytes of the entity at ``path`` (what a detached signature covers)."""
    entity = base
    for boundary, index in path:
        children = _raw_children(entity, boundary)
        if index >= len(children):
            return None
        entity = children[index]
    return entity


def _raw_children(entity: bytes, boundary: str) -> list[bytes]:
    """Split a multipart entity's body as the stdlib parser does (RFC 2046 §5.1.1)."""
    body = entity[_body_start(entity):]
    delimiter = re.compile(rb"^--" + re.escape(boundary.encode("utf-8", "surrogateescape")) + rb"(--)?[ \t]*\r?$",
                           re.MULTILINE)
    parts, opened = [], None
    for match in delimiter.finditer(body):
        if opened is not None:
            end = match.start()
            end -= 2 if body[end - 2:end] == b"\r\n" else 1 if body[end - 1:end] == b"\n" else 0
            parts.append(body[opened:end])
        if match.group(1):
            return parts
        after = match.end()
        opened = after + (2 if body[after:after + 2] == b"\r\n" else 1 if body[after:after + 1] == b"\n" else 0)
    if opened is not None:
        parts.append(body[opened:])
    return parts


def _body_start(entity: bytes) -> int:
    """Where the body begins: after the first empty line (or at 0 when the entity has no header)."""
    if entity.startswith(b"\r\n"):
        return 2
    if entity.startswith(b"\n"):
        return 1
    match = re.search(rb"\r?\n\r?\n", entity)
    return match.end() if match else len(entity)


def _decoded(part: Message) -> bytes:
    """A leaf's bytes, transfer encoding undone; a base64 body that cannot be decoded is refused."""
    payload = part.get_payload(decode=True)
    if any(isinstance(d, errors.InvalidBase64LengthDefect) for d in part.defects):
        raise _malformed(f"Corrupt base64 in a {part.get_content_type()} part")
    return payload if isinstance(payload, bytes) else b""


def _attachment(leaf: _Leaf) -> Attachment:
    part = leaf.part
    if part.get_content_maintype() == "message" and part.is_multipart():
        entity = _locate(leaf.base, leaf.path) or b""  # an attached message: its bytes as received
        data = entity[_body_start(entity):]
    else:
        data = _decoded(part)
    filename = part.get_filename()
    if filename is not None:
        filename = _clean(str(make_header(decode_header(filename))) if "=?" in filename else filename)
    content_id = _raw(part, "Content-ID")
    return Attachment(filename or None, part.get_content_type(), data,
                      content_id.strip().strip("<>") or None if content_id else None)


def _text_of(part: Message) -> str:
    return _decode_text(_decoded(part), part.get_content_charset())


def _decode_text(raw: bytes, charset: str | None) -> str:
    """Decode with the declared charset; none, unknown or mislabelled ones fall back on UTF-8 then windows-1252."""
    name = None
    if charset:
        try:
            info = codecs.lookup(charset)
            name = info.name if info._is_text_encoding else None  # type: ignore[attr-defined]
        except (LookupError, ValueError):
            name = None
    if name is not None and name not in _LATIN1:
        return raw.decode(name, errors="replace")
    if name is None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return raw.decode("cp1252", errors="replace")


class _HtmlText(HTMLParser):
    """Visible text of an HTML body: tags dropped, nothing fetched, blocks become line breaks."""

    BLOCKS = {"br", "p", "div", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
              "pre", "hr", "section", "article", "header", "footer", "address"}
    HIDDEN = {"script", "style", "head", "title", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.hidden += tag in self.HIDDEN
        if tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        if tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _raw(part: Message, name: str) -> str | None:
    """A header's value as received (unfolded), without the stdlib's structured parsing."""
    value = _received(part, name)
    return None if value is None else _clean(value).strip()


def _received(part: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in part.raw_items():
        if key.lower() == wanted:
            return re.sub(r"\r?\n([ \t])", r"\1", str(value))
    return None


def _header(part: Message, name: str) -> str | None:
    """A header decoded (RFC 2047); a raw 8-bit one (against the rules, but seen) as UTF-8 or windows-1252."""
    value = _received(part, name)
    if value is None or _ESCAPED.search(value):
        return None if value is None else _clean(value).strip()
    try:
        return _clean(str(part.get(name))).strip()
    except Exception:
        return _clean(value).strip()


def _clean(text: str) -> str:
    """Undo the parser's surrogate escapes (8-bit headers: UTF-8, else windows-1252) and drop control characters."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", errors="replace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", errors="replace")
    return _CONTROLS.sub("", text)


def _address(part: Message, name: str) -> tuple[str | None, str] | None:
    """(display name, lower-cased address) of the first address of a header."""
    raw = _raw(part, name)
    if not raw:
        return None
    try:
        found = [(a.display_name, a.addr_spec) for a in part[name].addresses]
    except Exception:
        found = [utils.parseaddr(raw)]
    display, address = next(((d, a) for d, a in found if a and a != "<>"), (None, ""))
    if not address:
        return None
    return (_clean(display).strip() or None if display else None), _clean(address).strip().lower()


def _address_only(part: Message, name: str) -> str | None:
    found = _address(part, name)
    return found[1] if found else None


def _first_id(raw: str | None) -> str | None:
    if not raw:
        return None
    match = _MESSAGE_IDS.search(raw)
    return match.group(0) if match else raw.split()[0]


def _date(raw: str | None) -> datetime.datetime | None:
    if not raw:
        return None
    try:
        when = utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _mss(part: Message) -> dict[str, str]:
    """The MSSanté ``X-MSS-*`` headers (first occurrence of each), names upper-cased."""
    found: dict[str, str] = {}
    for key, _value in part.raw_items():
        name = key.strip().upper()
        if name.startswith("X-MSS-") and name not in found:
            found[name] = _header(part, key) or ""
    return found


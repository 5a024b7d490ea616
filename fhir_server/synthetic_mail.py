"""Synthetic MSSanté mail, as a professional's mailbox would send it to a patient, for tests and demos.

A `MailSpec` holds every value the mail carries, so a test can compare what the bridge reads with
what was written. The mail is built with the stdlib ``email`` package (CRLF, 7-bit transfer
encodings, so a signature over it survives SMTP); ``sign_detached`` / ``sign_opaque`` wrap it in
S/MIME with ``cryptography`` (which signs but cannot verify: the bridge's checker is separate).
Addresses and INS are test ones (FRENCH_STANDARDS.md §5.3).
"""

from __future__ import annotations

import base64
import copy
import datetime
import secrets
from dataclasses import dataclass, field
from email import policy, utils
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7

from fhir_server.synthetic import tiny_pdf

PARIS = datetime.timezone(datetime.timedelta(hours=1))
DEFAULT_PDF = tiny_pdf(["Compte rendu d'hospitalisation", "Patiente : LEFEVRE Helene", "Dr Adam Hoda"])
_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}


@dataclass(frozen=True)
class MailSpec:
    sender: str = "adam.hoda@test-ci-sis.mssante.fr"
    sender_name: str = "Dr Adam Hôda"
    recipient: str = "279035121518989@patient.mssante.fr"
    subject: str = "XDM/1.0/DDM+Compte rendu d’hospitalisation LEFÈVRE Hélène 12/03/1979"
    text: str = ("Bonjour Madame Lefèvre,\n\nVeuillez trouver ci-joint le compte rendu de votre séjour.\n\n"
                 "Bien cordialement,\nDr Adam Hôda")
    pdf: bytes | None = DEFAULT_PDF
    pdf_name: str = "Compte rendu d’hospitalisation – Hélène Lefèvre.pdf"
    xdm_zip: bytes | None = None  # attached as IHE_XDM.zip (application/zip) when given
    message_id: str = "<cr-2026-0001@test-ci-sis.mssante.fr>"
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    disposition_notification_to: str | None = "adam.hoda@test-ci-sis.mssante.fr"
    sent: datetime.datetime = datetime.datetime(2026, 3, 3, 10, 15, tzinfo=PARIS)
    mss: dict[str, str] = field(default_factory=lambda: {"X-MSS-INS": "O", "X-MSS-NIL": "NIL-TEST-LPS-0001"})


def professional_mail(spec: MailSpec = MailSpec()) -> EmailMessage:  # noqa: B008
    """The unsigned mail: text body, the PDF (RFC 2231 name), optionally IHE_XDM.zip, MSSanté headers."""
    message = EmailMessage(policy=policy.SMTP)
    local, domain = spec.sender.split("@")
    message["From"] = Address(spec.sender_name, local, domain)
    message["To"] = spec.recipient
    message["Subject"] = spec.subject
    message["Date"] = utils.format_datetime(spec.sent)
    message["Message-ID"] = spec.message_id
    if spec.in_reply_to:
        message["In-Reply-To"] = spec.in_reply_to
    if spec.references:
        message["References"] = " ".join(spec.references)
    if spec.disposition_notification_to:
        message["Disposition-Notification-To"] = spec.disposition_notification_to
    for name, value in spec.mss.items():
        message[name] = value
    message.set_content(spec.text, cte="quoted-printable")
    if spec.pdf is not None:
        message.add_attachment(spec.pdf, maintype="application", subtype="pdf", filename=spec.pdf_name)
    if spec.xdm_zip is not None:
        message.add_attachment(spec.xdm_zip, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """The bytes as sent over SMTP (CRLF line ends)."""
    return message.as_bytes(policy=policy.SMTP)


@dataclass(frozen=True)
class Signer:
    certificate: x509.Certificate
    key: object  # an RSA or EC private key
    digest: hashes.HashAlgorithm = field(default_factory=hashes.SHA256)
    rsa_padding: padding.PSS | padding.PKCS1v15 | None = None
    chain: tuple[x509.Certificate, ...] = ()  # intermediate CA certificates to carry

    @classmethod
    def from_files(cls, cert: Path, key: Path, **options) -> Signer:
        return cls(x509.load_pem_x509_certificate(Path(cert).read_bytes()),
                   serialization.load_pem_private_key(Path(key).read_bytes(), None), **options)


def split_headers(message: EmailMessage) -> tuple[bytes, bytes]:
    """(the RFC 5322 header lines, the MIME entity that a signature covers) of an unsigned mail."""
    inner = copy.deepcopy(message)
    for name in set(inner.keys()):
        if not name.lower().startswith("content-"):
            del inner[name]
    outer = b"".join(policy.SMTP.fold_binary(name, value) for name, value in message.items()
                     if not name.lower().startswith("content-") and name.lower() != "mime-version")
    return outer, inner.as_bytes(policy=policy.SMTP)


def cms_signature(content: bytes, signer: Signer, *, detached: bool) -> bytes:
    """A DER CMS SignedData over ``content`` (taken as is: already canonical CRLF)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(
        signer.certificate, signer.key, signer.digest, rsa_padding=signer.rsa_padding)
    for extra in signer.chain:
        builder = builder.add_certificate(extra)
    options = [pkcs7.PKCS7Options.Binary] + ([pkcs7.PKCS7Options.DetachedSignature] if detached else [])
    return builder.sign(serialization.Encoding.DER, options)


def sign_detached(message: EmailMessage, signer: Signer) -> bytes:
    """``multipart/signed; protocol="application/pkcs7-signature"`` (RFC 8551 §3.5.3)."""
    outer, inner = split_headers(message)
    return detached_mail(outer, inner, cms_signature(inner, signer, detached=True), _MICALG[signer.digest.name])


def sign_opaque(message: EmailMessage, signer: Signer) -> bytes:
    """``application/pkcs7-mime; smime-type=signed-data`` (RFC 8551 §3.5.2): the content inside the CMS."""
    outer, inner = split_headers(message)
    return opaque_mail(outer, cms_signature(inner, signer, detached=False))


def detached_mail(outer: bytes, inner: bytes, signature: bytes, micalg: str = "sha-256") -> bytes:
    """Header lines + signed entity + DER signature → the multipart/signed mail (for hand-made signatures)."""
    boundary = f"----=_smime_{secrets.token_hex(12)}".encode()
    return (outer + b"MIME-Version: 1.0\r\nContent-Type: multipart/signed;\r\n"
            b' protocol="application/pkcs7-signature"; micalg=' + micalg.encode()
            + b';\r\n boundary="' + boundary + b'"\r\n\r\nThis is an S/MIME signed message\r\n\r\n--' + boundary
            + b"\r\n" + inner + b"\r\n--" + boundary + b"\r\nContent-Type: application/pkcs7-signature;"
            b' name="smime.p7s"\r\nContent-Transfer-Encoding: base64\r\n'
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
            + _base64_lines(signature) + b"\r\n--" + boundary + b"--\r\n")


def opaque_mail(outer: bytes, signed_data: bytes) -> bytes:
    """Header lines + DER SignedData (content inside) → the application/pkcs7-mime mail."""
    return (outer + b"MIME-Version: 1.0\r\n"
            b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
            + _base64_lines(signed_data))


def _base64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i:i + 76] + b"\r\n" for i in range(0, len(text), 76))

"""S/MIME signature checks for received MSSanté mail (RFC 8551 over CMS, RFC 5652).

Why our own code: ``cryptography`` signs PKCS#7 but cannot verify it, so the CMS structure is read
with ``asn1crypto`` and the maths done by ``cryptography``. A bad or untrusted signature is a
*result* (kept with the mail), never an exception; only a CMS that cannot be read at all raises
``SmimeError`` (the mail is then structurally broken). Nothing is fetched (no AIA, CRL or OCSP):
the signer's chain is built from the certificates the message carries, up to a configured anchor.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha384": hashes.SHA384,
                                                 "sha512": hashes.SHA512}
MAX_CERTIFICATES = 20  # certificates carried in one signature
MAX_SIGNERS = 4
MAX_CHAIN = 6  # certificates from the signer to the anchor, both included
FUTURE_SKEW = datetime.timedelta(minutes=5)
#: Critical extensions this checker understands; any other critical one makes a certificate unusable.
_KNOWN_CRITICAL = {x509.BasicConstraints, x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectAlternativeName,
                   x509.CertificatePolicies}


class SmimeError(ValueError):
    """The CMS structure cannot be read: not a signature at all."""


@dataclass(frozen=True)
class SignatureResult:
    valid: bool
    signer: str | None  # the signer certificate's subject (RFC 4514), when it could be found
    detail: str


@dataclass(frozen=True)
class Trust:
    """Trust anchors (the IGC-Santé role): a signer must chain to one of them."""

    anchors: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, pem: bytes) -> Trust:
        anchors = tuple(x509.load_pem_x509_certificates(pem))
        return cls(anchors)

    @classmethod
    def from_file(cls, path: Path) -> Trust:
        return cls.from_pem(Path(path).read_bytes())


def load(der: bytes) -> cms.SignedData:
    """A CMS SignedData, read far enough to know it is one (``SmimeError`` otherwise)."""
    try:
        info = cms.ContentInfo.load(bytes(der), strict=True)
        if info["content_type"].native != "signed_data":
            raise SmimeError(f"CMS content is {info['content_type'].native}, not signed-data")
        signed = info["content"]
        signers = signed["signer_infos"]
        if len(signers) == 0:
            raise SmimeError("CMS signed-data without a signer")
        # Force the parse of everything but the content, so broken DER is found here, not while checking.
        for name in ("version", "digest_algorithms", "certificates", "signer_infos"):
            signed[name].native  # noqa: B018
        signed["encap_content_info"]["content_type"].native  # noqa: B018
        return signed
    except SmimeError:
        raise
    except Exception as error:  # asn1crypto raises many types on bad DER
        raise SmimeError(f"unreadable CMS signature ({type(error).__name__})") from error


def content_of(signed: cms.SignedData) -> bytes:
    """The encapsulated content of an opaque signature (``SmimeError`` if it has none)."""
    try:
        content = signed["encap_content_info"]["content"]
        data = None if content is None else content.native
    except Exception as error:
        raise SmimeError(f"unreadable encapsulated content ({type(error).__name__})") from error
    if not isinstance(data, bytes):
        raise SmimeError("the signature encapsulates no content")
    return data


def verify(signed: cms.SignedData, content: bytes | None, trust: Trust | None, *,
           now: datetime.datetime | None = None) -> SignatureResult:
    """Check a signature over ``content`` (``None``: the encapsulated content); valid if one signer is
    intact and chains to an anchor at the signing time or now."""
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        data = content_of(signed) if content is None else content
        pool = _certificates(signed)
        failure: SignatureResult | None = None
        for signer_info in list(signed["signer_infos"])[:MAX_SIGNERS]:
            result = _one_signer(signer_info, signed, data, pool, trust, now)
            if result.valid:
                return result
            failure = failure or result
        assert failure is not None
        return failure
    except Exception as error:  # a readable envelope with unreadable insides: a failed check, kept
        return SignatureResult(False, None, f"unreadable signature ({type(error).__name__}: {error})")


def _certificates(signed: cms.SignedData) -> list[x509.Certificate]:
    choices = signed["certificates"]
    found = [c.chosen for c in (choices if choices.native is not None else []) if c.name == "certificate"]
    if len(found) > MAX_CERTIFICATES:
        raise ValueError(f"more than {MAX_CERTIFICATES} certificates")
    return [x509.load_der_x509_certificate(c.dump()) for c in found]


def _one_signer(signer_info: cms.SignerInfo, signed: cms.SignedData, data: bytes, pool: list[x509.Certificate],
                trust: Trust | None, now: datetime.datetime) -> SignatureResult:
    cert = _signer_certificate(signer_info, pool)
    if cert is None:
        return SignatureResult(False, None, "the signer certificate is not in the message")
    subject = cert.subject.rfc4514_string()
    problem, signing_time = _check_signature(signer_info, signed, data, cert)
    if problem:
        return SignatureResult(False, subject, problem)
    if trust is None or not trust.anchors:
        return SignatureResult(False, subject, "signature intact, but no trust anchor is configured")
    problem = _usable_for_mail(cert)
    if problem:
        return SignatureResult(False, subject, problem)
    problem, anchor = _chain(cert, pool, trust, now)
    when = "now"
    if problem and signing_time is not None and signing_time <= now + FUTURE_SKEW:
        late, anchor = _chain(cert, pool, trust, signing_time)
        problem, when = (None, f"at the signing time {signing_time.isoformat()}") if late is None else (problem, "")
    if problem:
        return SignatureResult(False, subject, problem)
    return SignatureResult(True, subject, f"signature verified; certificate chains to {anchor} {when}")


def _signer_certificate(signer_info: cms.SignerInfo, pool: list[x509.Certificate]) -> x509.Certificate | None:
    sid = signer_info["sid"]
    for cert in pool:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (cert.serial_number == wanted["serial_number"].native
                    and cert.issuer.public_bytes() == wanted["issuer"].dump()):
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                return cert
    return None


def _check_signature(signer_info: cms.SignerInfo, signed: cms.SignedData, data: bytes,
                     cert: x509.Certificate) -> tuple[str | None, datetime.datetime | None]:
    """Digest then signature; (problem or None, the signed signing time)."""
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in HASHES:
        return f"digest algorithm {digest_name} is not accepted", None
    attrs = signer_info["signed_attrs"]
    signing_time = None
    if attrs.native is None:  # no signed attributes: the signature is over the content itself
        signed_bytes = data
    else:
        values = {a["type"].native: list(a["values"]) for a in attrs}
        digests, types = values.get("message_digest", []), values.get("content_type", [])
        if len(digests) != 1 or len(types) != 1:
            return "signed attributes lack a single message-digest and content-type", None
        if types[0].native != signed["encap_content_info"]["content_type"].native:
            return "signed content-type attribute differs from the content type", None
        if not hmac.compare_digest(digests[0].native, hashlib.new(digest_name, data).digest()):
            return "message digest does not match the signed content", None
        times = values.get("signing_time", [])
        signing_time = times[0].native if len(times) == 1 else None
        # The signature covers the DER of the attributes as a SET OF: the exact bytes, retagged.
        signed_bytes = b"\x31" + attrs.dump()[1:]
    try:
        _check_math(signer_info, cert, signed_bytes, HASHES[digest_name]())
    except InvalidSignature:
        return "signature does not verify with the signer certificate", signing_time
    except _Unsupported as error:
        return str(error), signing_time
    return None, signing_time


class _Unsupported(Exception):
    pass


def _check_math(signer_info: cms.SignerInfo, cert: x509.Certificate, signed_bytes: bytes,
                digest: hashes.HashAlgorithm) -> None:
    algorithm = signer_info["signature_algorithm"]
    try:
        kind = algorithm.signature_algo
    except ValueError as error:
        raise _Unsupported(f"signature algorithm {algorithm['algorithm'].native} is not supported") from error
    signature = signer_info["signature"].native
    key = cert.public_key()
    if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, signed_bytes, padding.PKCS1v15(), digest)
    elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
        params = algorithm["parameters"]
        pss_hash = params["hash_algorithm"]["algorithm"].native
        mgf = params["mask_gen_algorithm"]
        mgf_hash = mgf["parameters"]["algorithm"].native
        if pss_hash not in HASHES or mgf["algorithm"].native != "mgf1" or mgf_hash not in HASHES:
            raise _Unsupported("RSA-PSS parameters are not supported")
        key.verify(signature, signed_bytes,
                   padding.PSS(mgf=padding.MGF1(HASHES[mgf_hash]()), salt_length=params["salt_length"].native),
                   HASHES[pss_hash]())
    elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, signed_bytes, ec.ECDSA(digest))
    else:
        raise _Unsupported(f"signature algorithm {kind} does not fit the signer's {type(key).__name__}")


def _usable_for_mail(cert: x509.Certificate) -> str | None:
    """RFC 8550 §4.4: key usage, if present, allows signing; extended key usage, if present, e-mail."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (usage.digital_signature or usage.content_commitment):
            return "the signer certificate's key usage does not allow signatures"
    except x509.ExtensionNotFound:
        pass
    try:
        purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if not {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(purposes):
            return "the signer certificate is not for e-mail protection"
    except x509.ExtensionNotFound:
        pass
    return None


def _chain(leaf: x509.Certificate, pool: list[x509.Certificate], trust: Trust,
           at: datetime.datetime) -> tuple[str | None, str | None]:
    """Walk up from ``leaf`` to an anchor by issuer name and signature; (problem, anchor subject)."""
    current, below = leaf, 0  # intermediate CA certificates under the issuer looked for
    for _ in range(MAX_CHAIN):
        problem = _sound(current, at)
        if problem:
            return problem, None
        if current in trust.anchors:
            return None, current.subject.rfc4514_string()
        anchor = next((a for a in trust.anchors if _issued_by(current, a, below)), None)
        if anchor is not None:
            problem = _sound(anchor, at)
            return (problem, None) if problem else (None, anchor.subject.rfc4514_string())
        issuer = next((c for c in pool if c != current and _issued_by(current, c, below)), None)
        if issuer is None:
            return "the signer certificate does not chain to a trusted CA", None
        current, below = issuer, below + 1
    return "the certificate chain is too long", None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate, below: int) -> bool:
    """``issuer`` is a CA (basic constraints, path length, key usage if present) whose key signed ``cert``."""
    try:
        extensions = issuer.extensions
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if not constraints.ca or (constraints.path_length is not None and constraints.path_length < below):
        return False
    try:
        if not extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _sound(cert: x509.Certificate, at: datetime.datetime) -> str | None:
    """Dates and critical extensions of one certificate of the chain."""
    name = cert.subject.rfc4514_string()
    if at < cert.not_valid_before_utc:
        return f"certificate {name} is not valid before {cert.not_valid_before_utc.isoformat()}"
    if at > cert.not_valid_after_utc:
        return f"certificate {name} expired on {cert.not_valid_after_utc.isoformat()}"
    try:
        unknown = [e.oid.dotted_string for e in cert.extensions if e.critical and type(e.value) not in _KNOWN_CRITICAL]
    except ValueError:
        return f"certificate {name} has unreadable extensions"
    return f"certificate {name} has unknown critical extensions {unknown}" if unknown else None

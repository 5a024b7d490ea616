"""All server settings in one place.

Each setting has a default, an environment variable ``MES_<NAME>`` and (for the common ones)
a ``mes serve`` flag; flags win over the environment, which wins over the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

#: Resource types the server stores and serves; any other type answers 404.
SUPPORTED_TYPES: tuple[str, ...] = (
    "Patient", "DocumentReference", "Appointment", "Communication", "Binary", "Practitioner",
    "PractitionerRole", "Organization", "List", "AuditEvent", "Consent", "Provenance", "RelatedPerson",
)

#: Extra SearchParameter definitions (JSON arrays or Bundles), ``os.pathsep``-separated file paths.
#: Read by ``search/registry.py`` rather than ``Settings``: search parameters are process-wide, like
#: the R4 ones, and checked when the server starts (``docs/user-guide.md``, "Custom search parameters").
SEARCH_PARAMETERS_ENV = "MES_SEARCH_PARAMETERS"


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "address the HTTP server binds"})
    port: int = field(default=8080, metadata={"help": "HTTP port"})
    data_dir: Path = field(default=Path("./var"), metadata={"help": "directory of the SQLite database"})
    base_url: str = field(default="", metadata={"help": "public FHIR base URL (default http://HOST:PORT/fhir)"})
    max_body_bytes: int = field(default=20 * 1024 * 1024, metadata={"help": "largest request body accepted"})
    default_count: int = field(default=50, metadata={"help": "page size when _count is absent"})
    max_count: int = field(default=1000, metadata={"help": "largest _count honoured"})
    max_bundle_entries: int = field(default=10_000, metadata={"help": "largest batch/transaction bundle"})
    max_include: int = field(default=1000, metadata={"help": "most _include/_revinclude resources per page"})
    sqlite_synchronous: str = field(default="NORMAL", metadata={
        "help": "SQLite synchronous mode: NORMAL survives a process crash, FULL also a power loss"})
    auth: str = field(default="on", metadata={
        "help": "on: bearer tokens required; off: full access for everyone (loopback hosts only, development)"})
    auth_keys: str = field(default="", metadata={"help": "PEM public keys or certificates trusted for RS256/ES256 "
                                                         "tokens, separated by ':'"})
    auth_jwks: str = field(default="", metadata={"help": "a JWKS file of trusted token keys"})
    auth_audience: str = field(default="", metadata={"help": "accepted token audiences, space-separated "
                                                             "(default: the FHIR base URL)"})
    auth_issuer: str = field(default="", metadata={"help": "the required token issuer, if any"})
    auth_hs256_secret: str = field(default="", metadata={
        "help": "development only: also accept HS256 tokens with this secret (loopback hosts only)"})
    cda_xsd: str = field(default="", metadata={
        "help": "XSD that CDA documents are validated against, e.g. the ANS CDA_extended.xsd (default: the "
                "HL7 CDA R2 schema shipped in cda/schemas)"})
    cda_schematron: str = field(default="", metadata={
        "help": "the ANS structuration minimale schematron (.sch) to run on CDA documents too; needs the "
                "'schematron' extra (Saxon-HE)"})
    cda_unknown_patients: str = field(default="create", metadata={
        "help": "a CDA document (any door) or an HL7 v2 SIU for a patient nobody knows: create the patient, or "
                "refuse (DMP error 902 / AE)"})
    mllp_host: str = field(default="127.0.0.1", metadata={"help": "address the HL7 v2 MLLP listener binds"})
    mllp_port: int = field(default=2575, metadata={"help": "HL7 v2 MLLP port; 0 turns the listener off"})
    mllp_allowed_networks: str = field(default="127.0.0.0/8,::1/128", metadata={
        "help": "comma-separated networks whose peers may send HL7 v2 messages (when no client CA is set)"})
    mllp_tls_cert: str = field(default="", metadata={"help": "PEM certificate of the MLLP listener: TLS on when set"})
    mllp_tls_key: str = field(default="", metadata={"help": "PEM private key of the MLLP listener's certificate"})
    mllp_client_ca: str = field(default="", metadata={
        "help": "PEM CA that MLLP clients' certificates must chain to; when set, the certificate is the credential "
                "(needs MLLP TLS)"})
    mllp_client_id: str = field(default="mllp-gateway", metadata={
        "help": "the system client the MLLP door acts as (its traces name it)"})
    mllp_scopes: str = field(default=(
        "system/Patient.crus system/Appointment.cruds system/DocumentReference.crus system/Binary.cr "
        "system/Consent.crus system/Practitioner.crus system/Communication.rus"), metadata={
        "help": "SMART scopes of the MLLP door's system client"})
    mllp_validation: str = field(default="off", metadata={
        "help": "off: the gateway reads what it maps; strict: hl7apy also validates each message's structure, "
                "required fields and data types first (about 10 ms a message)"})
    mllp_max_connections: int = field(default=64, metadata={"help": "most MLLP connections open at once"})
    mllp_max_message_bytes: int = field(default=48 * 1024 * 1024, metadata={
        "help": "largest HL7 v2 message accepted (a base64 CDA document inside counts)"})
    smtp_host: str = field(default="127.0.0.1", metadata={"help": "address the MSSanté bridge's SMTP listener binds"})
    smtp_port: int = field(default=2525, metadata={"help": "SMTP port of the MSSanté bridge; 0 turns it off"})
    smtp_tls_cert: str = field(default="", metadata={
        "help": "PEM certificate for STARTTLS (default: a self-signed one kept in the data directory)"})
    smtp_tls_key: str = field(default="", metadata={"help": "PEM private key of MES_SMTP_TLS_CERT"})
    smtp_client_ca: str = field(default="", metadata={
        "help": "PEM trust anchor (IGC-Santé) that senders' TLS client certificates and S/MIME signatures must chain "
                "to; without it the bridge accepts no mail"})
    smtp_allowed_domains: str = field(default="", metadata={
        "help": "comma-separated sender domains (the MSSanté allow-list); empty: any domain with a trusted "
                "certificate"})
    patient_mail_domain: str = field(default="patient.mssante.fr", metadata={
        "help": "the domain of patients' addresses: <INS matricule>@<domain>"})
    smtp_relay: str = field(default="", metadata={
        "help": "outbound SMTP relay host:port for read receipts, error mails and patients' replies"})
    smtp_max_message_bytes: int = field(default=30 * 1024 * 1024, metadata={
        "help": "largest mail the bridge accepts (552 above)"})
    smtp_client_id: str = field(default="mssante-bridge", metadata={
        "help": "the system client the MSSanté bridge acts as (its traces name it)"})

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/") or f"http://{self.host}:{self.port}/fhir"

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "mes.sqlite3"


def _coerce(kind: type, raw: str):
    if kind is int or kind == "int":
        return int(raw)
    if kind is Path or kind == "Path":
        return Path(raw)
    return raw


def load_settings(**overrides) -> Settings:
    """Defaults, then ``MES_*`` environment variables, then explicit overrides (flags)."""
    values = {}
    for f in fields(Settings):
        env = os.environ.get(f"MES_{f.name.upper()}")
        if env is not None:
            values[f.name] = _coerce(f.type, env)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)

"""HL7 v2 fixtures of our own (tests, the MLLP benchmark): PAM-FR ADT, MDM carrying a CDA
document, merges and identifier changes, in UTF-8 or ISO 8859-1, for a patient drawn as the
synthetic CDA documents draw theirs (so an MDM's PID and its document agree).
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass

from fhir_server.synthetic_cda import CdaSpec, spec
from hl7v2.er7 import escape

INS_AUTHORITY = "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO"
FACILITY_OID = "1.2.250.1.999.1.1"  # an IPP authority of our own making
CHARSET_CODECS = {"UNICODE UTF-8": "utf-8", "8859/1": "iso-8859-1", "": "utf-8"}


@dataclass(frozen=True)
class V2Patient:
    ins: str | None
    ipp: str
    birth_family: str
    given: tuple[str, ...]
    gender: str  # M, F, U
    birth_date: str  # YYYYMMDD
    birthplace_cog: str | None = None
    used_family: str | None = None
    street: str = "12 rue de l'Église"
    city: str = "Clermont-Ferrand"
    postal_code: str = "63000"
    phone: str = "0473000000"
    email: str | None = None
    reliability: str = "VALI"
    ipp_authority: str = FACILITY_OID


def patient_of(cda: CdaSpec | None = None, **overrides: object) -> V2Patient:
    """The patient of a synthetic CDA document (or of ``spec()``), as a PID states them."""
    s = cda or spec()
    drawn = V2Patient(ins=s.ins, ipp=s.ipp, birth_family=s.birth_family, given=tuple(s.given), gender=s.gender,
                      birth_date=s.birth_date, birthplace_cog=s.birthplace_cog, used_family=s.used_family)
    return dataclasses.replace(drawn, **overrides)


def pid(p: V2Patient) -> str:
    ids = [f"{p.ipp}^^^MES-TEST&{p.ipp_authority}&ISO^PI"]
    if p.ins:
        ids.append(f"{p.ins}^^^{INS_AUTHORITY}^INS")
    names = [f"{escape(p.birth_family)}^{escape(p.given[0])}^{escape(' '.join(p.given))}^^^^L"]
    if p.used_family:
        names.append(f"{escape(p.used_family)}^{escape(p.given[0])}^^^^^D")
    addresses = [f"{escape(p.street)}^^{escape(p.city)}^^{p.postal_code}^FRA^H"]
    if p.birthplace_cog:
        addresses.append(f"^^^^^^BDL^^{p.birthplace_cog}")
    phones = [f"^PRN^PH^^^^^^^^^{p.phone}"] + ([f"^NET^Internet^{escape(p.email)}"] if p.email else [])
    fields = ["PID", "1", "", "~".join(ids), "", "~".join(names), "", p.birth_date, p.gender, "", "",
              "~".join(addresses), "", "~".join(phones)] + [""] * 18 + [p.reliability]
    return "|".join(fields)


def msh(message_type: str, control_id: str, *, charset: str = "UNICODE UTF-8", version: str = "2.5",
        sender: str = "LPS-TEST|CABINET-TEST") -> str:
    return "|".join(["MSH", "^~\\&", *sender.split("|"), "MES", "MES", "20261124101500", "", message_type,
                     control_id, "P", version, "", "", "", "", "FRA", charset])


def encoded(segments: list[str], charset: str) -> bytes:
    return "\r".join(segments).encode(CHARSET_CODECS.get(charset, "utf-8")) + b"\r"


def adt(event: str, patient: V2Patient, control_id: str, *, charset: str = "UNICODE UTF-8",
        extra: tuple[str, ...] = (), sender: str = "LPS-TEST|CABINET-TEST") -> bytes:
    """An ADT message (A01, A04, A08, A28, A31, …) for ``patient``."""
    structure = {"A04": "ADT_A01", "A08": "ADT_A01", "A28": "ADT_A05", "A31": "ADT_A05", "A05": "ADT_A05"}
    segments = [msh(f"ADT^{event}^{structure.get(event, 'ADT_A01')}", control_id, charset=charset, sender=sender),
                "EVN||20261124101500", pid(patient), "PV1|1|O", *extra]
    return encoded(segments, charset)


def merge(survivor: V2Patient, merged_ipp: str, control_id: str, *, event: str = "A40") -> bytes:
    """A40 (``merged_ipp``'s patient merged into ``survivor``) or A47 (the IPP changed to survivor's)."""
    structure = "ADT_A39" if event == "A40" else "ADT_A30"
    return encoded([msh(f"ADT^{event}^{structure}", control_id), "EVN||20261124101500", pid(survivor),
                    f"MRG|{merged_ipp}^^^MES-TEST&{survivor.ipp_authority}&ISO^PI"], "UNICODE UTF-8")


def zfa(*, feeding_opposed: bool = False, consults: bool = True, break_glass_opposed: bool = False) -> str:
    return "|".join(["ZFA", "ACTIF", "20261124101500", "", "", "", "Y" if break_glass_opposed else "N", "", "",
                     "IO" if feeding_opposed else "INO", "20261124101500", "IC" if consults else "INC",
                     "20261124101500"])


def mdm(event: str, document: bytes, patient: V2Patient, control_id: str, *,
        flags: dict[str, bool] | None = None, charset: str = "UNICODE UTF-8") -> bytes:
    """An MDM (T02, T04, T10) or, with ``event`` "R01", an ORU carrying ``document`` in OBX-5."""
    kind = "ORU^R01^ORU_R01" if event == "R01" else f"MDM^{event}^MDM_{'T02' if event != 'T01' else 'T01'}"
    data = base64.b64encode(document).decode("ascii")
    segments = [msh(kind, control_id, charset=charset), "EVN||20261124101500", pid(patient), "PV1|1|O",
                f"TXA|1|11488-4|TEXT|20261124101500||||||||{control_id}^MES-TEST|||||AU"] if event != "R01" else \
        [msh(kind, control_id, charset=charset), pid(patient), "OBR|1|||11488-4^Compte rendu^LN"]
    segments.append(f"OBX|1|ED|11488-4^Compte rendu^LN||^text^XML^Base64^{data}||||||F")
    for n, (flag, value) in enumerate((flags or {}).items(), 2):
        segments.append(f"OBX|{n}|CWE|{flag}^{flag}^MetaDMPMSS||{'Y' if value else 'N'}^^expandedYes-NoIndicator"
                        "||||||F")
    return encoded(segments, charset)

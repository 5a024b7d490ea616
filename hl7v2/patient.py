"""PID (IHE PAM, French national extension) → a FR Core Patient.

Identity follows the INS rules the CDA mapping already applies (``cda/mapping.py``): the INS with
its FR Core type and system, the birth name with the list of given names and the first given
name, the used name, sex, birth date and birth place (INSEE code). On top of that, what only PAM
carries: the facilities' identifiers (IPP, typed PI, with their authority's OID), addresses,
phones and e-mail, death, and the identity reliability of PID-32.

Fields read — PID-3 CX (ID, assigning authority namespace & OID, type: INS, PI, …), PID-5 XPN
(family, first given, given names list, name type L birth name / D used name), PID-7 birth date,
PID-8 sex, PID-11 XAD (type H home, O office, BDL / BR birth place with the INSEE code in
XAD-9), PID-13/14 XTN (use, equipment, e-mail, number), PID-29/30 death, PID-32 reliability.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from cda.header import Ident
from cda.header import Patient as Identity
from cda.mapping import INS_TYPES, patient
from fhir_server.french.fr_core import CS_V2_0445, EXT_IDENTITY_RELIABILITY, FR_CORE
from hl7v2.ack import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, Location, V2Error, V2Problem
from hl7v2.er7 import Field, Segment
from hl7v2.values import fhir_date, fhir_date_time

#: Where identifiers go whose assigning authority has no OID (a FINESS typed M, a namespace).
AUTHORITY = "https://mes-interop.org/fhir/NamingSystem/assigning-authority/"
OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
SEXES = {"M": "male", "F": "female", "U": "unknown", "O": "other", "A": "other", "N": "unknown"}
RELIABILITY = frozenset({"VIDE", "PROV", "VALI", "DOUB", "DESA", "DPOT", "DOUA", "COLP", "COLV", "FILI", "CACH",
                         "ANOM", "IDVER", "RECD", "IDRA", "USUR", "HOMD", "HOMA", "INVA", "FICT", "DOUT"})
PHONE_USES = {"PRN": "home", "ORN": "home", "VHN": "temp", "WPN": "work", "EMR": "temp"}
EQUIPMENT = {"PH": "phone", "CP": "phone", "FX": "fax", "BP": "pager", "Internet": "email", "X.400": "email"}
BIRTH_PLACE_TYPES = frozenset({"BDL", "BR"})
ADDRESS_USES = {"H": "home", "O": "work", "B": "work", "C": "temp", "M": "home"}


@dataclass(frozen=True)
class PatientIdentity:
    """A PID read: the resource to write and the identifiers that find it again."""

    resource: dict
    ins: str | None  # "system|value" of the INS
    local: tuple[str, ...]  # "system|value" of the other identifiers, IPP first

    @property
    def keys(self) -> tuple[str, ...]:
        return ((self.ins,) if self.ins else ()) + self.local


def read_pid(pid: Segment | None) -> PatientIdentity:
    if pid is None:
        raise V2Error("AE", V2Problem(REQUIRED_FIELD_MISSING, "The message has no PID segment",
                                      "Le message n'a pas de segment PID", Location("PID")))
    ins, others = _identifiers(pid)
    if ins is None and not others:
        raise V2Error("AE", V2Problem(REQUIRED_FIELD_MISSING, "PID-3 holds no identifier with an assigning authority",
                                      "PID-3 ne contient aucun identifiant avec son autorité d'affectation",
                                      Location("PID", 3)))
    birth, used = _names(pid)
    identity = Identity(
        ins=ins, other_ids=(), birth_family=birth.get(1) or None, used_family=used.get(1) or None,
        given_names=birth.get(3) or birth.get(2) or None, first_given=birth.get(2) or None,
        used_given=used.get(2) or None, gender=None, birth_time=_birth_date(pid), birthplace_cog=_birthplace(pid),
        telecoms=())
    resource = patient(identity)
    if ins is None:
        resource["meta"] = {"profile": [FR_CORE + "fr-core-patient"]}
    resource["identifier"] = resource.get("identifier", []) + [_identifier(*other) for other in others]
    resource.update(_demographics(pid))
    reliability = _reliability(pid)
    if reliability:
        resource["extension"] = [reliability, *resource.get("extension", [])]
    return PatientIdentity(
        _ordered(resource), f"urn:oid:{ins.root}|{ins.extension}" if ins else None,
        tuple(f"{system}|{value}" for system, value, _ in others))


def identifiers_of(field_repetitions: list[Field]) -> tuple[Ident | None, list[tuple[str, str, str]]]:
    """CX repetitions (PID-3, MRG-1) → the INS and the other identifiers as (system, value, type
    code), IPP first. An identifier without an assigning authority is left out: nothing would tell
    it from another facility's."""
    ins, others = None, []
    for cx in field_repetitions:
        value, kind = cx.get(1).strip(), cx.get(5).strip()
        system = authority_system(cx)
        if not value or system is None:
            continue
        if system.removeprefix("urn:oid:") in INS_TYPES:
            ins = ins or Ident(system.removeprefix("urn:oid:"), value)
        else:
            others.append((system, value, kind))
    others.sort(key=lambda triple: triple[2] != "PI")
    return ins, others


def authority_system(cx: Field) -> str | None:
    """CX-4, the assigning authority, as an identifier system (``hd_system``)."""
    return hd_system(cx.get(4, 1), cx.get(4, 2))


def hd_system(namespace: str, universal: str) -> str | None:
    """An HD (namespace, universal id) as an identifier system: ``urn:oid:`` for a universal id
    that is an OID (whatever HD-3 says), else a name of the server's under which the authority's
    id or namespace is kept; None without either. EI, XCN and PL spread an HD over components."""
    namespace, universal = namespace.strip(), universal.strip()
    if universal and OID.fullmatch(universal):
        return f"urn:oid:{universal}"
    local = universal or namespace
    return AUTHORITY + quote(local, safe="") if local else None


def _identifiers(pid: Segment) -> tuple[Ident | None, list[tuple[str, str, str]]]:
    return identifiers_of(pid.repetitions(3))


def _identifier(system: str, value: str, kind: str) -> dict:
    out: dict = {"use": "usual" if kind == "PI" else "secondary"}
    if kind:
        out["type"] = {"coding": [{"system": V2_0203, "code": kind}]}
    return {**out, "system": system, "value": value}


def _names(pid: Segment) -> tuple[dict[int, str], dict[int, str]]:
    """The birth name (type L; an untyped name when there is no L) and the used name (type D)."""
    by_type: dict[str, dict[int, str]] = {}
    for xpn in pid.repetitions(5):
        kind = xpn.get(7) or ""
        by_type.setdefault(kind, {i: xpn.get(i).strip() for i in (1, 2, 3)})
    birth = by_type.get("L") or by_type.get("") or by_type.get("M") or {}
    if not birth.get(1):
        raise V2Error("AE", V2Problem(REQUIRED_FIELD_MISSING, "PID-5 holds no birth name (name type L)",
                                      "PID-5 ne contient pas de nom de naissance (type L)", Location("PID", 5)))
    return birth, by_type.get("D", {})


def _birth_date(pid: Segment) -> str | None:
    raw = pid(7)
    if not raw:
        return None
    if fhir_date(raw) is None or len(raw) < 8:
        raise V2Error("AE", V2Problem(DATA_TYPE_ERROR, f"PID-7 is not a date: {raw!r}",
                                      f"PID-7 n'est pas une date : {raw!r}", Location("PID", 7)))
    return raw[:8]


def _birthplace(pid: Segment) -> str | None:
    for xad in pid.repetitions(11):
        if xad.get(7) in BIRTH_PLACE_TYPES and xad.get(9):
            return xad.get(9)
    return None


def _demographics(pid: Segment) -> dict:
    out: dict = {}
    sex = pid(8)
    if sex:
        out["gender"] = SEXES.get(sex, "unknown")
    telecom = [t for n in (13, 14) for t in map(_contact, pid.repetitions(n), [n] * 99) if t]
    if telecom:
        out["telecom"] = telecom
    addresses = [a for a in map(_address, pid.repetitions(11)) if a]
    if addresses:
        out["address"] = addresses
    death = fhir_date_time(pid(29)) if pid(29) else None
    if death:
        out["deceasedDateTime"] = death
    elif pid(30) == "Y":
        out["deceasedBoolean"] = True
    return out


def _reliability(pid: Segment) -> dict | None:
    """PID-32 → the FR Core identity-reliability extension (its first code FR Core knows)."""
    status = next((c.get(1) for c in pid.repetitions(32) if c.get(1) in RELIABILITY), None)
    if status is None:
        return None
    return {"url": EXT_IDENTITY_RELIABILITY, "extension": [
        {"url": "identityStatus", "valueCoding": {"system": CS_V2_0445, "code": status}}]}


def _contact(xtn: Field, field: int) -> dict | None:
    email = xtn.get(4)
    number = xtn.get(12) or xtn.get(1)
    system = "email" if email else EQUIPMENT.get(xtn.get(3), "phone")
    value = email or number
    if not value:
        return None
    out = {"system": system, "value": value}
    use = "mobile" if xtn.get(3) == "CP" else PHONE_USES.get(xtn.get(2)) or ("work" if field == 14 else None)
    return {**out, "use": use} if use else out


def _address(xad: Field) -> dict | None:
    kind = xad.get(7)
    if kind in BIRTH_PLACE_TYPES:
        return None
    out: dict = {}
    lines = [line for line in (xad.get(1), xad.get(2)) if line]
    if lines:
        out["line"] = lines
    for key, n in (("city", 3), ("state", 4), ("postalCode", 5), ("country", 6)):
        if xad.get(n):
            out[key] = xad.get(n)
    if not out:
        return None
    return {"use": ADDRESS_USES[kind], **out} if kind in ADDRESS_USES else out


ORDER = ("resourceType", "meta", "extension", "identifier", "name", "telecom", "gender", "birthDate",
         "deceasedBoolean", "deceasedDateTime", "address")


def _ordered(resource: dict) -> dict:
    """FHIR's element order, for resources that read like the specification's examples."""
    return {k: resource[k] for k in ORDER if k in resource}

"""The project's own synthetic CI-SIS CDA R2 documents, and hostile XML, for tests, benchmarks and demos.

Every value a generated document carries is in a `CdaSpec`, so a test can compare what the
parser reads with what was written. Defaults come from a seeded `random.Random` over the
tables of `fhir_server.synthetic` (names, communes with their INSEE COG code, Luhn-checked
RPPS/FINESS numbers) and INS keys from `fhir_server.french.ins`; nothing is copied from the
ANS examples but the shape of the header (FRENCH_STANDARDS.md §3). The default document
satisfies the CI-SIS "structuration minimale" header rules and the CDA schemas.

Identifiers that are not national ones (document ids, set ids, the facility's IPP namespace,
our structured-body template) live under `PROJECT_OID`, a fictitious arc for test data.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import re
import struct
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from lxml import etree
from lxml.builder import ElementMaker

from fhir_server.french.ins import OID_IDNAT_PS, OID_IDNAT_ST, OID_INS_NIR_TEST, with_key
from fhir_server.synthetic import COMMUNES, FAMILY_NAMES, GIVEN_FEMALE, GIVEN_MALE, STREETS, Commune, finess, rpps
from fhir_server.synthetic import tiny_pdf as _tiny_pdf

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"h": HL7}
SEED = 20260315

# Our own (fictitious) arc: document and set ids, IPP namespaces, template of our structured documents.
PROJECT_OID = "1.2.250.1.999"
DOCUMENT_OID = PROJECT_OID + ".1"
FACILITY_OID = PROJECT_OID + ".2"
STRUCTURED_TEMPLATE = PROJECT_OID + ".3.1"

# Header conformance declarations (templateId/@root).
TEMPLATE_HL7_FRANCE = "2.16.840.1.113883.2.8.2.1"
TEMPLATE_CISIS = "1.2.250.1.213.1.1.1.1"
TEMPLATE_XDS_SD = "1.3.6.1.4.1.19376.1.2.20"

# Code systems and identifier roots, as bare OIDs (CDA writes no urn:oid: prefix).
LOINC = "2.16.840.1.113883.6.1"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
GENDER = "2.16.840.1.113883.5.1"
TRE_A02 = "1.2.250.1.213.1.1.4.5"  # ProfessionSavFaire-CISIS: author speciality (JDV J01)
TRE_A01 = "1.2.250.1.213.1.1.4.9"  # CadreExercice: practice setting (JDV J04)
TRE_R02 = "1.2.250.1.71.4.2.4"  # SecteurActivite: facility type (JDV J02)
CCAM = "1.2.250.1.213.2.5"
INS_NIR_TEST = OID_INS_NIR_TEST.removeprefix("urn:oid:")
IDNAT_PS = OID_IDNAT_PS.removeprefix("urn:oid:")
IDNAT_ST = OID_IDNAT_ST.removeprefix("urn:oid:")

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "text": "text/plain",
    "rtf": "text/rtf",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
}
BODIES = (*MEDIA_TYPES, "structured")

# displayName of the codes we write (CI-SIS value sets J01/J02/J04/J07 and HL7 v3); unknown codes show their code.
DISPLAYS: dict[str, dict[str, str]] = {
    LOINC: {
        "11488-4": "CR ou fiche de consultation ou de visite",
        "28617-9": "Bilan bucco-dentaire",
        "83836-7": "Schéma dentaire",
        "34133-9": "Synthèse d'épisode de soins",
        "60591-5": "Synthèse médicale",
    },
    TRE_A02: {
        "G15_10/SM26": "Médecin - Qualifié en Médecine Générale (SM)",
        "G15_10/SM54": "Médecin - Médecine Générale (SM)",
        "G15_40": "Chirurgien-Dentiste",
    },
    TRE_A01: {"AMBULATOIRE": "Ambulatoire", "ETABLISSEMENT": "Etablissement de santé"},
    TRE_R02: {"SA07": "Cabinet individuel", "SA08": "Cabinet de groupe"},
    CONFIDENTIALITY: {"N": "Normal", "R": "Restreint", "V": "Très restreint"},
    GENDER: {"M": "Masculin", "F": "Féminin", "U": "Inconnu"},
    CCAM: {"HBJD001": "Détartrage et polissage des dents"},
}

E = ElementMaker(namespace=HL7, nsmap={None: HL7})


def display(system: str, code: str) -> str:
    """The displayName the CI-SIS wants on every coded header element (the code itself when unknown)."""
    return DISPLAYS.get(system, {}).get(code, code)


# --- the specification of a document ---------------------------------------------------------


@dataclass(frozen=True)
class CdaSpec:
    """Everything a generated document says, so tests can compare the parse with it."""

    doc_root: str
    doc_extension: str | None
    set_id_root: str
    set_id_extension: str | None
    version: int
    type_code: str
    type_system: str
    type_display: str
    title: str
    effective_time: str  # HL7 TS, e.g. 20260315101500+0100
    confidentiality: str  # N, R or V
    language: str
    ins: str | None  # None: the patient has no INS id at all
    ins_root: str
    ipp: str
    ipp_root: str
    birth_family: str
    used_family: str | None
    given: list[str]  # given[0] is the first given name (qualifier BR)
    gender: str  # M, F or U
    birth_date: str  # YYYYMMDD
    birthplace_cog: str | None
    author_rpps: str
    author_family: str
    author_given: str
    author_specialty: str  # TRE_A02 code
    organization_finess: str
    organization_name: str
    service_start: str
    service_end: str
    event_code: str | None  # CCAM act of documentationOf/serviceEvent
    practice_setting: str  # TRE_A01 code
    facility_type: str  # TRE_R02 code
    body: str  # one of BODIES
    body_bytes: bytes  # b"" for a structured body
    replaces: str | None  # root or root^extension of the replaced document
    omit: tuple[str, ...] = ()  # header elements left out: local names, or paths like "recordTarget/patientRole/id"
    used_qualifier: str = "CL"  # qualifier of the used family name: CL as the ANS examples, or SP

    @property
    def document_id(self) -> str:
        """The id as an XDS uniqueId: root, or root^extension."""
        return f"{self.doc_root}^{self.doc_extension}" if self.doc_extension else self.doc_root


_FIELDS = frozenset(f.name for f in dataclasses.fields(CdaSpec))


def _ts(moment: datetime) -> str:
    """HL7 TS in French winter time (every generated moment falls in CET)."""
    return moment.strftime("%Y%m%d%H%M%S") + "+0100"


def _shift(ts: str, delta: timedelta) -> str:
    """A TS moved by `delta`, keeping its offset."""
    return _ts(datetime.strptime(ts[:14], "%Y%m%d%H%M%S") + delta)


def _person(rng: random.Random) -> tuple[str, list[str], str, date, Commune]:
    """Gender, given names, family name, birth date and birth commune of a patient."""
    gender = rng.choice("FM")
    pool = GIVEN_FEMALE if gender == "F" else GIVEN_MALE
    given = rng.sample(pool, rng.choice((2, 2, 3)))  # several, so the list differs from the first given name
    born = date(1935, 1, 1) + timedelta(days=rng.randrange((date(2022, 12, 31) - date(1935, 1, 1)).days))
    return gender, given, rng.choice(FAMILY_NAMES), born, rng.choice(COMMUNES)


def _ins(gender: str, birth_date: str, cog: str, order: int, fallback_sex: str) -> str:
    """A test INS consistent with the traits: sex digit, birth year and month, birth commune, order, key."""
    sex = {"M": "1", "F": "2"}.get(gender, fallback_sex)
    return with_key(f"{sex}{birth_date[2:4]}{birth_date[4:6]}{cog}{order:03d}")


def _draw(rng: random.Random) -> tuple[dict, dict]:
    """The independent fields of a spec, and what derived fields need (NIR order, drawn sex and commune)."""
    serial = rng.randrange(10**6, 10**7)
    gender, given, family, born, birthplace = _person(rng)
    author_given = rng.choice(GIVEN_FEMALE + GIVEN_MALE)
    author_family = rng.choice(FAMILY_NAMES)
    office = rng.choice([c for c in COMMUNES if c.cog[:2].isdigit()])  # FINESS keys need a numeric department
    finess_number = finess(rng, office.cog[:2])
    day = date(2025, 11, 3) + timedelta(days=rng.randrange(130))  # before the 2026 switch to summer time
    created = datetime(day.year, day.month, day.day, rng.randint(8, 17), rng.choice((0, 15, 30, 45)))
    values = {
        "doc_root": f"{DOCUMENT_OID}.{serial}.1",
        "doc_extension": None,
        "set_id_root": f"{DOCUMENT_OID}.{serial}",
        "set_id_extension": None,
        "type_code": "11488-4",
        "type_system": LOINC,
        "effective_time": _ts(created),
        "confidentiality": "N",
        "language": "fr-FR",
        "ins_root": INS_NIR_TEST,
        "ipp": f"{rng.randrange(10**7, 10**8)}",
        "ipp_root": f"{FACILITY_OID}.{int(finess_number)}",  # an OID arc has no leading zero
        "birth_family": family.upper(),
        "used_family": rng.choice([f for f in FAMILY_NAMES if f != family]).upper(),
        "given": [name.upper() for name in given],
        "gender": gender,
        "birth_date": born.strftime("%Y%m%d"),
        "birthplace_cog": birthplace.cog,
        "author_rpps": rpps(rng),
        "author_family": author_family,
        "author_given": author_given,
        "author_specialty": "G15_10/SM26",
        "organization_finess": finess_number,
        "organization_name": f"Cabinet du Dr {author_given} {author_family}",
        "service_start": _ts(created - timedelta(minutes=rng.choice((20, 30, 40)))),
        "service_end": _ts(created - timedelta(minutes=5)),
        "event_code": None,
        "practice_setting": "AMBULATOIRE",
        "facility_type": "SA07",
        "body": "pdf",
        "replaces": None,
        "omit": (),
    }
    context = {"order": rng.randint(1, 999), "sex": "1" if gender == "M" else "2", "cog": birthplace.cog}
    return values, context


def _derive(values: dict, overrides: dict, context: dict) -> None:
    """Fill the fields that follow from others (type display, title, version, INS, content) unless overridden."""
    if "type_display" not in overrides:
        values["type_display"] = display(values["type_system"], values["type_code"])
    if "title" not in overrides:
        values["title"] = values["type_display"]
    if "version" not in overrides:
        values["version"] = 2 if values["replaces"] else 1
    if "ins" not in overrides:
        cog = values["birthplace_cog"] or context["cog"]
        values["ins"] = _ins(values["gender"], values["birth_date"], cog, context["order"], context["sex"])
    if "body_bytes" not in overrides:
        values["body_bytes"] = body_content(values["body"], _report_lines(values))


def spec(*, seed: int = SEED, **overrides: object) -> CdaSpec:
    """A complete spec drawn from `seed` (same seed, same spec); `overrides` replace fields.

    Fields derived from others follow the overrides: the type display and title follow type_code,
    the INS follows gender/birth_date/birthplace_cog, version becomes 2 with `replaces`, and
    body_bytes is rendered for `body`.
    """
    unknown = set(overrides) - _FIELDS
    if unknown:
        raise TypeError(f"unknown CdaSpec fields: {sorted(unknown)}")
    if overrides.get("body", "pdf") not in BODIES:
        raise ValueError(f"body must be one of {BODIES}")
    values, context = _draw(random.Random(seed))
    values.update(overrides)
    _derive(values, overrides, context)
    return CdaSpec(**values)


def dental_spec(*, seed: int = SEED, **overrides: object) -> CdaSpec:
    """A dentist's (G15_40) "Bilan bucco-dentaire" (28617-9) as PDF, from a single-practitioner office."""
    drawn = spec(seed=seed)
    dental = {
        "type_code": "28617-9",
        "author_specialty": "G15_40",
        "organization_name": f"Cabinet dentaire du Dr {drawn.author_given} {drawn.author_family}",
        "event_code": "HBJD001",
        "practice_setting": "AMBULATOIRE",
        "facility_type": "SA07",
        "body": "pdf",
    }
    return spec(seed=seed, **(dental | overrides))


def replacement(parent: CdaSpec, **overrides: object) -> CdaSpec:
    """The next version of `parent`: a new id in the same set, version + 1, RPLC of the parent, a day later."""
    changes = {
        "doc_root": f"{parent.set_id_root}.{parent.version + 1}",
        "doc_extension": None,
        "version": parent.version + 1,
        "replaces": parent.document_id,
        "effective_time": _shift(parent.effective_time, timedelta(days=1)),
    }
    return dataclasses.replace(parent, **(changes | overrides))


# --- unstructured contents ------------------------------------------------------------------


def _report_lines(values: dict) -> list[str]:
    """The French text of the document, whatever its format."""
    born = values["birth_date"]
    return [
        values["title"],
        f"Patient(e) : {values['given'][0]} {values['birth_family']}, né(e) le {born[6:8]}/{born[4:6]}/{born[:4]}",
        f"Date : {values['effective_time'][6:8]}/{values['effective_time'][4:6]}/{values['effective_time'][:4]}",
        "Examen clinique sans particularité. Conclusion remise au patient.",
        f"Dr {values['author_given']} {values['author_family']}, {values['organization_name']}",
    ]


def tiny_rtf(lines: list[str]) -> bytes:
    """A minimal RTF document; non-ASCII characters as \\uN? escapes, so the bytes are plain ASCII."""

    def escape(ch: str) -> str:
        if ch in "\\{}":
            return "\\" + ch
        if ord(ch) < 128:
            return ch
        units = struct.unpack(f"<{len(ch.encode('utf-16-le')) // 2}H", ch.encode("utf-16-le"))
        return "".join(f"\\u{u - 65536 if u > 32767 else u}?" for u in units)

    body = "\\par\n".join("".join(escape(ch) for ch in line) for line in lines)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Helvetica;}}\\f0\\fs22\n" + body + "\\par\n}\n").encode()


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment: FF xx, big-endian length (itself included), payload."""
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def tiny_jpeg(comment: str) -> bytes:
    """A baseline JPEG of one mid-grey pixel, with `comment` in a COM segment.

    One-symbol Huffman tables make the scan two bits: DC difference 0 ("0"), end of block ("0").
    """
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    return b"".join(
        (
            b"\xff\xd8",
            _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00" + struct.pack(">HH", 1, 1) + b"\x00\x00"),
            _jpeg_segment(0xFE, comment.encode("utf-8")[:60000]),
            _jpeg_segment(0xDB, b"\x00" + bytes([1] * 64)),
            _jpeg_segment(0xC0, struct.pack(">BHHB", 8, 1, 1, 1) + b"\x01\x11\x00"),
            _jpeg_segment(0xC4, b"\x00" + one_symbol),
            _jpeg_segment(0xC4, b"\x10" + one_symbol),
            _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
            b"\x3f\xff\xd9",
        )
    )


def tiny_tiff() -> bytes:
    """An uncompressed little-endian TIFF of one 8-bit grey pixel."""
    data_offset = 8 + 2 + 9 * 12 + 4
    shorts = ((256, 1), (257, 1), (258, 8), (259, 1), (262, 1))  # width, length, bits, no compression, BlackIsZero
    entries = [struct.pack("<HHIHH", tag, 3, 1, value, 0) for tag, value in shorts]
    entries.append(struct.pack("<HHII", 273, 4, 1, data_offset))  # StripOffsets
    entries += [struct.pack("<HHIHH", tag, 3, 1, 1, 0) for tag in (277, 278)]  # SamplesPerPixel, RowsPerStrip
    entries.append(struct.pack("<HHII", 279, 4, 1, 1))  # StripByteCounts
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 9) + b"".join(entries) + b"\x00" * 4 + b"\x80"


def body_content(body: str, lines: list[str]) -> bytes:
    """The unstructured content for a body kind (b"" for a structured body)."""
    renderers = {
        "pdf": lambda: _tiny_pdf(lines),
        "text": lambda: ("\n".join(lines) + "\n").encode("utf-8"),
        "rtf": lambda: tiny_rtf(lines),
        "jpeg": lambda: tiny_jpeg(" / ".join(lines)),
        "tiff": tiny_tiff,
        "structured": lambda: b"",
    }
    return renderers[body]()


# --- the XML --------------------------------------------------------------------------------


def _coded(tag: str, code: str, system: str) -> etree._Element:
    """A CE/CS with the displayName the CI-SIS requires."""
    return E(tag, code=code, displayName=display(system, code), codeSystem=system)


def _ii(root: str, extension: str | None = None, tag: str = "id") -> etree._Element:
    """An II: root, and extension when there is one."""
    return E(tag, root=root, extension=extension) if extension else E(tag, root=root)


def _split_id(value: str) -> etree._Element:
    """An id written as root or root^extension."""
    root, _, extension = value.partition("^")
    return _ii(root, extension or None)


def _addr(seed: str, department: str | None = None) -> etree._Element:
    """A French postal address, drawn from `seed` so a spec always renders the same one (in `department` if any)."""
    rng = random.Random(seed)
    where = rng.choice([c for c in COMMUNES if c.cog.startswith(department or "")] or COMMUNES)
    return E.addr(
        E.houseNumber(str(rng.randint(1, 120))),
        E.streetName(rng.choice(STREETS)),
        E.postalCode(where.postal),
        E.city(where.city.upper()),
        E.country("FRANCE"),
    )


def _patient_name(s: CdaSpec) -> etree._Element:
    """Birth name (BR), list of birth given names, first given name (BR), used names: as the ANS examples."""
    name = E.name(E.family(s.birth_family, qualifier="BR"), E.given(" ".join(s.given)))
    name.append(E.given(s.given[0], qualifier="BR"))
    if s.used_family:
        name.append(E.family(s.used_family, qualifier=s.used_qualifier))
        name.append(E.given(s.given[0], qualifier="CL"))
    return name


def _record_target(s: CdaSpec) -> etree._Element:
    """The patient: INS and IPP ids, address, secure-messaging address, INS traits, birthplace."""
    role = E.patientRole()
    if s.ins is not None:
        role.append(_ii(s.ins_root, s.ins))
    role.append(_ii(s.ipp_root, s.ipp))
    role.append(_addr(f"patient {s.ipp}"))
    if s.ins is not None:
        role.append(E.telecom(value=f"mailto:{s.ins}@patient.mssante.fr"))
    patient = E.patient(
        _patient_name(s),
        _coded("administrativeGenderCode", s.gender, GENDER),
        E.birthTime(value=s.birth_date),
        classCode="PSN",
    )
    if s.birthplace_cog:
        patient.append(E.birthplace(E.place(E.addr(E.county(s.birthplace_cog)))))
    role.append(patient)
    return E.recordTarget(role)


def _professional(s: CdaSpec) -> list[etree._Element]:
    """idNatPs ("8" + RPPS) and the speciality of the author."""
    return [_ii(IDNAT_PS, "8" + s.author_rpps), _coded("code", s.author_specialty, TRE_A02)]


def _person_name(s: CdaSpec) -> etree._Element:
    return E.assignedPerson(E.name(E.given(s.author_given), E.family(s.author_family), E.suffix("DR")))


def _organization(s: CdaSpec, tag: str = "representedOrganization", setting: bool = False) -> etree._Element:
    """The office: idNatSt ("1" + FINESS), name, address and, for the performer, the practice setting."""
    org = E(tag, _ii(IDNAT_ST, "1" + s.organization_finess), E.name(s.organization_name))
    org.append(_addr(f"organization {s.organization_finess}", s.organization_finess[:2]))
    if setting:
        org.append(_coded("standardIndustryClassCode", s.practice_setting, TRE_A01))
    return org


def _author(s: CdaSpec) -> etree._Element:
    return E.author(
        E.time(value=s.effective_time),
        E.assignedAuthor(*_professional(s), _person_name(s), _organization(s)),
    )


def _custodian(s: CdaSpec) -> etree._Element:
    return E.custodian(E.assignedCustodian(_organization(s, "representedCustodianOrganization")))


def _legal_authenticator(s: CdaSpec) -> etree._Element:
    return E.legalAuthenticator(
        E.time(value=s.effective_time),
        E.signatureCode(code="S"),
        E.assignedEntity(*_professional(s), _person_name(s), _organization(s)),
    )


def _documentation_of(s: CdaSpec) -> etree._Element:
    """The documented act: code, period, and the one performer whose office carries the practice setting."""
    event = E.serviceEvent(classCode="ACT", moodCode="EVN")
    if s.event_code:
        event.append(_coded("code", s.event_code, CCAM))
    event.append(E.effectiveTime(E.low(value=s.service_start), E.high(value=s.service_end)))
    entity = E.assignedEntity(_ii(IDNAT_PS, "8" + s.author_rpps), _person_name(s), _organization(s, setting=True))
    event.append(E.performer(entity, typeCode="PRF"))
    return E.documentationOf(event)


def _component_of(s: CdaSpec) -> etree._Element:
    facility = E.healthCareFacility(
        _ii(IDNAT_ST, "1" + s.organization_finess), _coded("code", s.facility_type, TRE_R02)
    )
    return E.componentOf(
        E.encompassingEncounter(
            E.effectiveTime(E.low(value=s.service_start), E.high(value=s.service_end)),
            E.location(facility),
        )
    )


def _body(s: CdaSpec) -> etree._Element:
    """nonXMLBody with the base64 content, or a structuredBody with one narrative section."""
    if s.body != "structured":
        content = base64.b64encode(s.body_bytes).decode("ascii")
        text = E.text(content, mediaType=MEDIA_TYPES[s.body], representation="B64")
        return E.component(E.nonXMLBody(text))
    paragraphs = [E.paragraph(line) for line in _report_lines(dataclasses.asdict(s))[1:]]
    section = E.section(_coded("code", s.type_code, s.type_system), E.title(s.title), E.text(*paragraphs))
    return E.component(E.structuredBody(E.component(section)))


def _templates(s: CdaSpec) -> list[etree._Element]:
    """HL7 France, CI-SIS, then XDS-SD for an unstructured body or our own template for a structured one."""
    third = STRUCTURED_TEMPLATE if s.body == "structured" else TEMPLATE_XDS_SD
    return [_ii(root, tag="templateId") for root in (TEMPLATE_HL7_FRANCE, TEMPLATE_CISIS, third)]


def _header(s: CdaSpec) -> list[etree._Element]:
    """The header elements, in the order of the CDA schema."""
    parts = [
        E.realmCode(code="FR"),
        _ii("2.16.840.1.113883.1.3", "POCD_HD000040", tag="typeId"),
        *_templates(s),
        _ii(s.doc_root, s.doc_extension),
        E.code(code=s.type_code, displayName=s.type_display, codeSystem=s.type_system),
        E.title(s.title),
        E.effectiveTime(value=s.effective_time),
        _coded("confidentialityCode", s.confidentiality, CONFIDENTIALITY),
        E.languageCode(code=s.language),
        _ii(s.set_id_root, s.set_id_extension, tag="setId"),
        E.versionNumber(value=str(s.version)),
        _record_target(s),
        _author(s),
        _custodian(s),
        _legal_authenticator(s),
        _documentation_of(s),
    ]
    if s.replaces:
        parts.append(E.relatedDocument(E.parentDocument(_split_id(s.replaces)), typeCode="RPLC"))
    parts.append(_component_of(s))
    return parts


def _omit(root: etree._Element, omit: tuple[str, ...]) -> None:
    """Remove the elements named by local name or by a path of local names below ClinicalDocument."""
    for path in omit:
        for element in root.findall("/".join(f"h:{step}" for step in path.split("/")), NS):
            element.getparent().remove(element)


def document_tree(s: CdaSpec) -> etree._Element:
    """The ClinicalDocument element of a spec, for tests that want to alter it further."""
    root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap={None: HL7, "xsi": XSI})
    root.set(f"{{{XSI}}}schemaLocation", f"{HL7} CDA.xsd")
    root.extend(_header(s))
    root.append(_body(s))
    _omit(root, s.omit)
    return root


def cda_document(s: CdaSpec | None = None, **overrides: object) -> bytes:
    """UTF-8 XML with its declaration; `overrides` go to spec() or, with a spec, replace its fields as they are."""
    if s is None:
        s = spec(**overrides)
    elif overrides:
        s = dataclasses.replace(s, **overrides)
    return etree.tostring(document_tree(s), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def dental_document(**overrides: object) -> bytes:
    """A dentist's "Bilan bucco-dentaire" PDF document (see dental_spec)."""
    return cda_document(dental_spec(**overrides))


# --- hostile documents ----------------------------------------------------------------------
# Built as text: what makes them hostile (DTDs, entities) is what an XML builder will not write.


def _with_doctype(doctype: str, title: str | None = None, body: str | None = None) -> bytes:
    """The default document with a DOCTYPE after its declaration; optionally raw markup as title or body."""
    s = spec(omit=("component",)) if body is not None else spec()
    declaration, rest = cda_document(s).decode("utf-8").split("\n", 1)
    if title is not None:
        rest = re.sub(r"<title>.*?</title>", lambda _: f"<title>{title}</title>", rest, count=1)
    if body is not None:
        rest = rest.replace("</ClinicalDocument>", body + "</ClinicalDocument>")
    return "\n".join(part for part in (declaration, doctype, rest) if part).encode("utf-8")


def _system_literal(uri: str) -> str:
    """A quoted SystemLiteral; a URI carrying both quote kinds cannot be one."""
    if '"' in uri:
        raise ValueError("the URI must not contain a double quote")
    return f'"{uri}"'


def billion_laughs(levels: int = 10, fan_out: int = 10) -> bytes:
    """Nested internal entities: the title expands to 3 * fan_out ** (levels - 1) bytes (3 GB by default)."""
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * fan_out}">' for n in range(1, levels)]
    doctype = "<!DOCTYPE ClinicalDocument [\n  " + "\n  ".join(entities) + "\n]>"
    return _with_doctype(doctype, title=f"&lol{levels - 1};")


def xxe_file(path: str) -> bytes:
    """An external entity reading a local file into the title."""
    uri = path if path.startswith("file:") else Path(path).absolute().as_uri()
    return _with_doctype(f"<!DOCTYPE ClinicalDocument [\n  <!ENTITY xxe SYSTEM {_system_literal(uri)}>\n]>", "&xxe;")


def xxe_network(url: str) -> bytes:
    """An external entity fetching a URL into the title (server-side request forgery)."""
    return _with_doctype(f"<!DOCTYPE ClinicalDocument [\n  <!ENTITY xxe SYSTEM {_system_literal(url)}>\n]>", "&xxe;")


def external_dtd(url: str) -> bytes:
    """A DOCTYPE whose external subset is at `url`: loading it is a network request the sender controls."""
    return _with_doctype(f"<!DOCTYPE ClinicalDocument SYSTEM {_system_literal(url)}>")


def deeply_nested(depth: int) -> bytes:
    """The default header over a structuredBody whose sections nest `depth` times (element depth 2 * depth + 3)."""
    nested = "<component><section>" * depth + "</section></component>" * depth
    return _with_doctype("", body=f"<component><structuredBody>{nested}</structuredBody></component>\n")

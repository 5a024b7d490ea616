"""Deterministic synthetic French health data for `mes serve --demo` and for benchmarks.

Every resource comes from a `random.Random(seed)`, so a given seed always yields the same
bytes: demos are reproducible and benchmark runs compare like with like. Identifiers are
well-formed (INS keys, Luhn-checked RPPS/FINESS) but live in the *test* INS namespace, so
nothing here can be mistaken for a real person.
"""

from __future__ import annotations

import base64
import hashlib
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from fhir_server.french.fr_core import (
    CS_COMMUNE,
    CS_V2_0203,
    CS_V2_0445,
    EXT_BIRTH_GIVEN_NAMES,
    EXT_BIRTH_PLACE,
    EXT_IDENTITY_RELIABILITY,
    EXT_INSEE_CODE,
    PROFILE_ORGANIZATION,
    PROFILE_PATIENT_INS,
    PROFILE_PRACTITIONER,
)
from fhir_server.french.ins import (
    OID_IDNAT_PS,
    OID_IDNAT_ST,
    OID_INS_NIR_TEST,
    SYSTEM_FINESS,
    SYSTEM_RPPS,
    luhn_digit,
    with_key,
)

CS_CLASSE_DOCUMENT = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
CS_PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
CS_SPECIALITE = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
CS_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
CS_APPOINTMENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
LOINC = "http://loinc.org"

TZ = "+01:00"  # every generated timestamp falls in winter (CET), so +01:00 is the true offset


# --- reference data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Commune:
    """A French commune: INSEE COG code (its first 5 chars are NIR positions 6-10), name, postcode."""

    cog: str
    city: str
    postal: str


COMMUNES: tuple[Commune, ...] = (
    Commune("75115", "Paris 15e Arrondissement", "75015"),
    Commune("69383", "Lyon 3e Arrondissement", "69003"),
    Commune("13208", "Marseille 8e Arrondissement", "13008"),
    Commune("44109", "Nantes", "44000"),
    Commune("59350", "Lille", "59000"),
    Commune("67482", "Strasbourg", "67000"),
    Commune("31555", "Toulouse", "31000"),
    Commune("29019", "Brest", "29200"),
    Commune("33063", "Bordeaux", "33000"),
    Commune("35238", "Rennes", "35000"),
    Commune("34172", "Montpellier", "34000"),
    Commune("06088", "Nice", "06000"),
    Commune("38185", "Grenoble", "38000"),
    Commune("87085", "Limoges", "87000"),
    Commune("21231", "Dijon", "21000"),
    Commune("63113", "Clermont-Ferrand", "63000"),
    Commune("2A004", "Ajaccio", "20000"),
    Commune("2B033", "Bastia", "20200"),
    Commune("97411", "Saint-Denis", "97400"),
)
_COMMUNE_BY_COG = {c.cog: c for c in COMMUNES}

GIVEN_FEMALE = (
    "Hélène", "Zoë", "Anaïs", "Inès", "Léa", "Chloé", "Maëlle", "Émilie", "Agnès", "Françoise",
    "Bérénice", "Noémie", "Joséphine", "Océane", "Aurélie", "Séverine", "Gaëlle", "Cécile",
)  # fmt: skip
GIVEN_MALE = (
    "François", "Noël", "Jérôme", "Loïc", "Théo", "Mathéo", "Raphaël", "Gaël", "Jean-Baptiste",
    "Stéphane", "Frédéric", "Benoît", "Cédric", "Léon", "Anatole", "Hervé", "Joël", "Grégoire",
)  # fmt: skip
FAMILY_NAMES = (
    "Œuvray", "Lefèvre", "Château", "Bénard", "Dubœuf", "Garçon", "Pérez", "Le Guével", "Santoni",
    "Mercier", "Lemaître", "Bréhat", "Cœurdacier", "Fournier", "Müller", "Nguyễn", "Dupré",
    "Roussel", "Faure", "Duchêne", "Évrard", "Lévêque", "Lœillet", "Hébert",
)  # fmt: skip
STREETS = (
    "rue des Lilas", "avenue Jean-Jaurès", "boulevard Victor-Hugo", "place de l'Église",
    "chemin des Écoliers", "rue du Général-de-Gaulle", "allée des Châtaigniers", "quai de la Loire",
)  # fmt: skip


# --- small primitives -----------------------------------------------------------------------


def _urn(rng: random.Random) -> str:
    """A urn:uuid fullUrl drawn from the seeded generator (uuid4() would break determinism)."""
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _instant(day: date, hour: int, minute: int) -> str:
    """FHIR instant (seconds and offset are mandatory) in French winter time."""
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{TZ}"


def _digits(rng: random.Random, n: int) -> str:
    """n random decimal digits."""
    return "".join(rng.choice("0123456789") for _ in range(n))


def _document_day(rng: random.Random) -> date:
    """A day between Nov 2025 and mid-March 2026: in the past, and on CET."""
    return date(2025, 11, 3) + timedelta(days=rng.randrange(130))


def _appointment_day(rng: random.Random) -> date:
    """A weekday between Dec 2026 and Feb 2027: upcoming, and on CET."""
    day = date(2026, 12, 1) + timedelta(days=rng.randrange(85))
    return day + timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)


def _ascii(text: str) -> str:
    """Lower-case ASCII form of a name, for e-mail local parts."""
    table = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", " ": "-", "'": ""})
    decomposed = unicodedata.normalize("NFKD", text.translate(table))
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c == "-")).lower()


def _coding(system: str, code: str, display: str | None = None) -> dict:
    """A Coding, leaving out display when there is none (FHIR forbids empty strings)."""
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _identifier(type_code: str, system: str, value: str) -> dict:
    """An official identifier typed with the FR Core v2-0203 code system."""
    return {"use": "official", "type": {"coding": [_coding(CS_V2_0203, type_code)]}, "system": system, "value": value}


def _ref(full_url: str, display: str | None = None) -> dict:
    """A Reference to a bundle entry, by its fullUrl."""
    return {"reference": full_url, "display": display} if display else {"reference": full_url}


# --- patients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """The identity traits a Patient and its INS are derived from."""

    given: tuple[str, ...]
    family: str
    gender: str  # "female" | "male"
    birth_date: date
    birthplace: Commune


def nir13(person: Person, order: int) -> str:
    """The 13-character NIR matching the person's sex, birth year/month and birth commune."""
    sex = "1" if person.gender == "male" else "2"
    born = person.birth_date
    return f"{sex}{born.year % 100:02d}{born.month:02d}{person.birthplace.cog}{order:03d}"


def _draw_ins(rng: random.Random, person: Person, seen: set[str]) -> str:
    """A test INS for the person, unique within `seen` (the order number is redrawn on clashes)."""
    while True:
        ins = with_key(nir13(person, rng.randint(1, 999)))
        if ins not in seen:
            seen.add(ins)
            return ins


def _birth_date(rng: random.Random, first_year: int, last_year: int) -> date:
    """A birth date within [first_year, last_year]."""
    start = date(first_year, 1, 1)
    return start + timedelta(days=rng.randrange((date(last_year, 12, 31) - start).days + 1))


def _random_person(rng: random.Random) -> Person:
    """A plausible person drawn from the name and commune tables."""
    gender = rng.choice(("female", "male"))
    pool = GIVEN_FEMALE if gender == "female" else GIVEN_MALE
    given = tuple(rng.sample(pool, rng.choice((1, 1, 2))))
    return Person(given, rng.choice(FAMILY_NAMES), gender, _birth_date(rng, 1935, 2022), rng.choice(COMMUNES))


def _phone(rng: random.Random) -> str:
    """A French mobile number in international format."""
    return "+33 " + rng.choice("67") + " " + " ".join(_digits(rng, 2) for _ in range(4))


VALIDATED_IDENTITY = _coding(CS_V2_0445, "VALI", "Identité validée")


def patient_resource(person: Person, ins: str, rng: random.Random) -> dict:
    """A FR Core Patient-INS: test INS, validated identity, birthplace COG code, MSSanté address."""
    home = rng.choice(COMMUNES)
    return {
        "resourceType": "Patient",
        "meta": {"profile": [PROFILE_PATIENT_INS]},
        "extension": [
            {
                "url": EXT_IDENTITY_RELIABILITY,
                "extension": [{"url": "identityStatus", "valueCoding": dict(VALIDATED_IDENTITY)}],
            },
            {
                "url": EXT_BIRTH_PLACE,
                "valueAddress": {
                    "extension": [{"url": EXT_INSEE_CODE, "valueCoding": _coding(CS_COMMUNE, person.birthplace.cog)}],
                    "city": person.birthplace.city,
                    "country": "FR",
                },
            },
        ],
        "identifier": [_identifier("INS-NIR-TEST", OID_INS_NIR_TEST, ins)],
        "active": True,
        "name": [
            {
                "extension": [{"url": EXT_BIRTH_GIVEN_NAMES, "valueString": " ".join(person.given)}],
                "use": "official",
                "family": person.family,
                "given": [person.given[0]],
            }
        ],
        "telecom": [
            {"system": "email", "value": f"{ins}@patient.mssante.fr", "use": "home"},
            {"system": "phone", "value": _phone(rng), "use": "mobile"},
        ],
        "gender": person.gender,
        "birthDate": person.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": [f"{rng.randint(1, 120)} {rng.choice(STREETS)}"],
                "city": home.city,
                "postalCode": home.postal,
                "country": "FR",
            }
        ],
    }


def patients(count: int, seed: int) -> Iterator[dict]:
    """`count` distinct Patients (no two share an INS), e.g. to load thousands in a benchmark."""
    rng = random.Random(seed)
    seen: set[str] = set()
    for _ in range(count):
        person = _random_person(rng)
        yield patient_resource(person, _draw_ins(rng, person, seen), rng)


def ins_of(patient: dict) -> str:
    """The test INS carried by a generated Patient."""
    return next(i["value"] for i in patient["identifier"] if i["system"] == OID_INS_NIR_TEST)


def _display_name(patient: dict) -> str:
    """'Given FAMILY' for reference displays and letters."""
    name = patient["name"][0]
    return f"{name['given'][0]} {name['family']}"


# --- professionals and organisations --------------------------------------------------------


@dataclass(frozen=True)
class Professional:
    """A health professional of the demo cast, with the codes PractitionerRole needs."""

    key: str
    given: str
    family: str
    gender: str
    profession: tuple[str, str]  # TRE_G15 code, display
    specialty: tuple[str, str] | None  # TRE_R38 code, display
    org: int  # index into the demo organisations
    title: str = "Dr"  # nurses have none

    @property
    def display(self) -> str:
        """How letters and reference displays name the professional."""
        return " ".join(part for part in (self.title, self.given, self.family) if part)


DEMO_PROFESSIONALS = (
    Professional("gp", "Sophie", "Beaumont", "female", ("10", "Médecin"), ("SM54", "Médecine générale"), 0),
    Professional(
        "cardio", "Étienne", "Marchand", "male", ("10", "Médecin"), ("SM04", "Cardiologie et maladies vasculaires"), 0
    ),
    Professional("dentist", "Amélie", "Rousseau", "female", ("40", "Chirurgien-Dentiste"), None, 1),
    Professional("nurse", "Benoît", "Giraud", "male", ("60", "Infirmier"), None, 0, title=""),
)

# Name, commune, telephone area.
DEMO_ORGANIZATIONS = (
    ("Maison de santé pluriprofessionnelle des Lilas", _COMMUNE_BY_COG["44109"], "2"),
    ("Centre de santé dentaire Saint-Éloi", _COMMUNE_BY_COG["69383"], "4"),
)


def rpps(rng: random.Random) -> str:
    """An 11-digit RPPS number ("10" + 8 digits + Luhn key)."""
    body = "10" + _digits(rng, 8)
    return body + luhn_digit(body)


def finess(rng: random.Random, dept: str) -> str:
    """A 9-digit FINESS number in a department (2 digits + 6 digits + Luhn key)."""
    body = dept + _digits(rng, 6)
    return body + luhn_digit(body)


def practitioner_resource(pro: Professional, rpps_number: str) -> dict:
    """A FR Core Practitioner with RPPS, idNatPs and an MSSanté mailbox."""
    mailbox = f"{_ascii(pro.given)}.{_ascii(pro.family)}@pro.mssante.fr"
    name = {"use": "official", "family": pro.family, "given": [pro.given]}
    if pro.title:
        name["prefix"] = [pro.title]
    return {
        "resourceType": "Practitioner",
        "meta": {"profile": [PROFILE_PRACTITIONER]},
        "identifier": [
            _identifier("IDNPS", OID_IDNAT_PS, "8" + rpps_number),
            _identifier("RPPS", SYSTEM_RPPS, rpps_number),
        ],
        "active": True,
        "name": [name],
        "telecom": [{"system": "email", "value": mailbox, "use": "work"}],
        "gender": pro.gender,
        "qualification": [{"code": {"coding": [_coding(CS_PROFESSION, *pro.profession)]}}],
    }


def _landline(rng: random.Random, area: str) -> str:
    """A French landline number for a telephone area (1-5)."""
    return f"+33 {area} " + " ".join(_digits(rng, 2) for _ in range(4))


def organization_resource(name: str, finess_number: str, commune: Commune, area: str, rng: random.Random) -> dict:
    """A FR Core Organization identified by FINESS and idNatSt."""
    return {
        "resourceType": "Organization",
        "meta": {"profile": [PROFILE_ORGANIZATION]},
        "identifier": [
            _identifier("IDNST", OID_IDNAT_ST, "1" + finess_number),
            _identifier("FINEG", SYSTEM_FINESS, finess_number),
        ],
        "active": True,
        "name": name,
        "telecom": [{"system": "phone", "value": _landline(rng, area), "use": "work"}],
        "address": [
            {
                "use": "work",
                "line": [f"{rng.randint(1, 80)} {rng.choice(STREETS)}"],
                "city": commune.city,
                "postalCode": commune.postal,
                "country": "FR",
            }
        ],
    }


def practitioner_role_resource(pro: Professional, practitioner_url: str, organization_url: str) -> dict:
    """Links a practitioner to the organisation they practise in, with profession and specialty."""
    role: dict = {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": _ref(practitioner_url, pro.display),
        "organization": _ref(organization_url),
        "code": [{"coding": [_coding(CS_PROFESSION, *pro.profession)]}],
    }
    if pro.specialty:
        role["specialty"] = [{"coding": [_coding(CS_SPECIALITE, *pro.specialty)]}]
    return role


# --- documents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocKind:
    """A document type: LOINC code, French label, who writes it, and (motive, conclusion) cases."""

    loinc: str
    label: str
    author: str  # Professional.key
    pdf: bool
    cases: tuple[tuple[str, str], ...]


DOC_KINDS: dict[str, DocKind] = {
    "consultation": DocKind(
        "11488-4",
        "Compte rendu de consultation",
        "gp",
        False,
        (
            ("Fièvre et toux depuis trois jours", "Virose probable, traitement symptomatique."),
            ("Renouvellement d'ordonnance", "Traitement bien toléré, reconduit pour trois mois."),
            ("Lombalgie aiguë", "Pas de signe neurologique ; antalgiques et kinésithérapie."),
            ("Bilan annuel", "État général conservé, bilan sanguin prescrit."),
        ),
    ),
    "synthese": DocKind(
        "34133-9",
        "Synthèse médicale",
        "gp",
        True,
        (
            ("Synthèse annuelle du médecin traitant", "Antécédents : appendicectomie (2004). Allergie : pénicilline."),
            ("Mise à jour du volet de synthèse médicale", "Hypertension artérielle traitée, vaccinations à jour."),
        ),
    ),
    "cardiologie": DocKind(
        "34099-2",
        "Compte rendu de consultation de cardiologie",
        "cardio",
        False,
        (
            ("Palpitations à l'effort", "ECG : rythme sinusal régulier, Holter prescrit."),
            ("Suivi d'hypertension artérielle", "Tension équilibrée sous traitement, contrôle dans un an."),
            ("Essoufflement inhabituel", "Échographie cardiaque normale, pas de cause cardiaque retenue."),
        ),
    ),
    "dentaire": DocKind(
        "34756-7",
        "Compte rendu de consultation dentaire",
        "dentist",
        True,
        (
            ("Détartrage annuel", "Hygiène bucco-dentaire satisfaisante, détartrage réalisé."),
            ("Douleur sur la 36", "Carie traitée par composite, contrôle dans six mois."),
            ("Contrôle après soins conservateurs", "Cicatrisation normale, pas de nouvelle lésion."),
        ),
    ),
}


def _report_lines(kind: DocKind, patient_name: str, author_name: str, day: date, rng: random.Random) -> list[str]:
    """The French text of a short clinical report."""
    motive, conclusion = rng.choice(kind.cases)
    return [
        f"{kind.label} du {day.strftime('%d/%m/%Y')}",
        f"Patient(e) : {patient_name}",
        f"Motif : {motive}",
        f"Conclusion : {conclusion}",
        author_name,
    ]


def _pdf_escape(text: str) -> str:
    """Escape a PDF literal string."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def tiny_pdf(lines: list[str]) -> bytes:
    """A minimal, valid one-page PDF (WinAnsi Helvetica, exact xref offsets) showing `lines`."""
    text = ["BT", "/F1 11 Tf", "16 TL", "56 780 Td"] + [f"({_pdf_escape(line)}) Tj T*" for line in lines] + ["ET"]
    stream = "\n".join(text).encode("cp1252", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]"
        b" /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%b\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%b\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _render(kind: DocKind, lines: list[str]) -> tuple[bytes, str]:
    """The document bytes and their MIME type."""
    if kind.pdf:
        return tiny_pdf(lines), "application/pdf"
    return ("\n".join(lines) + "\n").encode("utf-8"), "text/plain"


def sha1_b64(raw: bytes) -> str:
    """Attachment.hash: base64 of the 20-byte SHA-1 digest."""
    return base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii")


def _attachment(raw: bytes, content_type: str, title: str, created: str) -> dict:
    """Attachment metadata whose size and hash describe `raw` exactly."""
    return {
        "contentType": content_type,
        "language": "fr-FR",
        "size": len(raw),
        "hash": sha1_b64(raw),
        "title": title,
        "creation": created,
    }


def binary_resource(raw: bytes, content_type: str, patient_url: str) -> dict:
    """A Binary holding document bytes; securityContext ties its access rules to the patient."""
    return {
        "resourceType": "Binary",
        "contentType": content_type,
        "securityContext": _ref(patient_url),
        "data": base64.b64encode(raw).decode("ascii"),
    }


def _document_reference(
    kind: DocKind,
    attachment: dict,
    patient_ref: dict,
    author_ref: dict | None,
    custodian_ref: dict | None,
    rng: random.Random,
) -> dict:
    """A DMP-style DocumentReference (current, LOINC type, TRE_A03 class, normal confidentiality)."""
    doc: dict = {
        "resourceType": "DocumentReference",
        # OID under 2.25 derived from a UUID: a valid, globally unique XDS uniqueId without a private root.
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.25.{rng.getrandbits(122)}"},
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [_coding(LOINC, kind.loinc, kind.label)]},
        "category": [{"coding": [_coding(CS_CLASSE_DOCUMENT, "10", "Compte rendu")]}],
        "subject": patient_ref,
        "date": attachment["creation"],
        "description": kind.label,
        "securityLabel": [{"coding": [_coding(CS_CONFIDENTIALITY, "N", "normal")]}],
        "content": [{"attachment": attachment}],
    }
    if author_ref:
        doc["author"] = [author_ref]
    if custodian_ref:
        doc["custodian"] = custodian_ref
    return doc


def document_reference(patient_ref: str, seed: int, author_ref: str | None = None, kind: str | None = None) -> dict:
    """A self-contained DocumentReference for an existing patient (data inline), e.g. for benchmarks.

    Distinct seeds give distinct documents (identifier, date, text, hence hash).
    """
    rng = random.Random(seed)
    doc_kind = DOC_KINDS[kind] if kind else rng.choice(list(DOC_KINDS.values()))
    day = _document_day(rng)
    created = _instant(day, rng.randint(8, 18), rng.choice((0, 15, 30, 45)))
    lines = _report_lines(doc_kind, f"patient n° {seed}", "Le praticien", day, rng)
    raw, content_type = _render(doc_kind, lines)
    attachment = _attachment(raw, content_type, doc_kind.label, created)
    attachment["data"] = base64.b64encode(raw).decode("ascii")
    author = {"reference": author_ref} if author_ref else None
    return _document_reference(doc_kind, attachment, {"reference": patient_ref}, author, None, rng)


# --- agenda and messages --------------------------------------------------------------------

APPOINTMENT_REASONS = {
    "gp": "Consultation de suivi",
    "cardio": "Consultation de cardiologie",
    "dentist": "Contrôle dentaire",
    "nurse": "Prise de sang à domicile",
}


def appointment_resource(
    patient_url: str, patient_name: str, pro_url: str, pro: Professional, rng: random.Random
) -> dict:
    """A booked appointment that both the patient and the practitioner have accepted."""
    day = _appointment_day(rng)
    hour, minute = rng.randint(8, 17), rng.choice((0, 15, 30, 45))
    duration = 30 if pro.key in ("cardio", "dentist") else 15
    end_minutes = hour * 60 + minute + duration
    appointment: dict = {
        "resourceType": "Appointment",
        "status": "booked",
        "appointmentType": {"coding": [_coding(CS_APPOINTMENT_TYPE, "ROUTINE", "Routine appointment")]},
        "description": APPOINTMENT_REASONS[pro.key],
        "start": _instant(day, hour, minute),
        "end": _instant(day, end_minutes // 60, end_minutes % 60),
        "minutesDuration": duration,
        "participant": [
            {"actor": _ref(patient_url, patient_name), "required": "required", "status": "accepted"},
            {"actor": _ref(pro_url, pro.display), "required": "required", "status": "accepted"},
        ],
    }
    if pro.specialty:
        appointment["specialty"] = [{"coding": [_coding(CS_SPECIALITE, *pro.specialty)]}]
    return appointment


def _is_minor(patient: dict, day: date) -> bool:
    """Under 18 on `day`: letters then go to the parents rather than to the patient."""
    born = date.fromisoformat(patient["birthDate"])
    return (day.year - born.year - ((day.month, day.day) < (born.month, born.day))) < 18


def _letter(patient: dict, pro: Professional, kind: DocKind, day: date) -> str:
    """The French body of an inbox message announcing a new document."""
    document = f"{kind.label.lower()} du {day.strftime('%d/%m/%Y')}"
    if _is_minor(patient, day):
        opening = f"Bonjour,\nLe {document} concernant {patient['name'][0]['given'][0]} est disponible"
    else:
        civility = "Madame" if patient["gender"] == "female" else "Monsieur"
        opening = f"Bonjour {civility} {patient['name'][0]['family']},\nVotre {document} est disponible"
    return (
        f"{opening} dans Mon Espace Santé. "
        "N'hésitez pas à me recontacter si vous avez des questions.\n"
        f"Bien cordialement,\n{pro.display}"
    )


def communication_resource(
    patient_url: str, patient: dict, pro_url: str, pro: Professional, kind: DocKind, day: date, sent: str
) -> dict:
    """A completed message from a practitioner to the patient's secure inbox about a new document."""
    return {
        "resourceType": "Communication",
        "status": "completed",
        "subject": _ref(patient_url, _display_name(patient)),
        "topic": {"text": f"Nouveau document : {kind.label}"},
        "sent": sent,
        "recipient": [_ref(patient_url, _display_name(patient))],
        "sender": _ref(pro_url, pro.display),
        "payload": [{"contentString": _letter(patient, pro, kind, day)}],
    }


# --- the demo bundle ------------------------------------------------------------------------

# Given names, family name, sex, birth commune, birth years: a cast that exercises accents,
# ligatures and a Corsican (2A) birthplace.
DEMO_CAST = (
    (("Hélène", "Marie"), "Œuvray", "female", "69383", (1950, 1965)),
    (("François",), "Lefèvre", "male", "75115", (1970, 1985)),
    (("Zoë", "Léonie"), "Château", "female", "44109", (2012, 2018)),
    (("Jean-Baptiste",), "Santoni", "male", "2A004", (1980, 1992)),
    (("Anaïs",), "Dubœuf", "female", "59350", (1990, 2000)),
    (("Noël", "Gaston"), "Garçon", "male", "67482", (1940, 1950)),
    (("Inès",), "Pérez", "female", "31555", (1985, 1995)),
    (("Jérôme",), "Le Guével", "male", "29019", (1960, 1975)),
)

# Documents per cast member, cycled: everyone sees their GP, then a specialist or the dentist.
_DEMO_DOCS = (("consultation", "cardiologie"), ("synthese", "dentaire"), ("consultation", "dentaire"))


def entry(full_url: str, resource: dict, if_none_exist: str | None = None) -> dict:
    """A transaction entry that POSTs `resource` under a urn:uuid fullUrl."""
    request = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _demo_people(rng: random.Random) -> list[Person]:
    """The demo cast with seeded birth dates."""
    return [
        Person(given, family, gender, _birth_date(rng, *years), _COMMUNE_BY_COG[cog])
        for given, family, gender, cog, years in DEMO_CAST
    ]


def _add_documents(
    entries: list[dict], rng: random.Random, patient_url: str, patient: dict, pros: dict, kinds: tuple[str, ...]
) -> list[tuple[DocKind, date]]:
    """Append (Binary, DocumentReference) pairs; return what was written when, for the letters."""
    written = []
    for name in kinds:
        kind = DOC_KINDS[name]
        pro, pro_url, org_url = pros[kind.author]
        day = _document_day(rng)
        created = _instant(day, rng.randint(8, 17), rng.choice((0, 15, 30, 45)))
        lines = _report_lines(kind, _display_name(patient), pro.display, day, rng)
        raw, content_type = _render(kind, lines)
        binary_url, doc_url = _urn(rng), _urn(rng)
        attachment = _attachment(raw, content_type, kind.label, created) | {"url": binary_url}
        doc = _document_reference(
            kind,
            attachment,
            _ref(patient_url, _display_name(patient)),
            _ref(pro_url, pro.display),
            _ref(org_url),
            rng,
        )
        entries.append(entry(binary_url, binary_resource(raw, content_type, patient_url)))
        entries.append(entry(doc_url, doc))
        written.append((kind, day))
    return written


def demo_bundle(seed: int = 1) -> dict:
    """A transaction Bundle with a small, coherent French dataset for demos.

    8 patients, 4 practitioners, 2 organisations, their roles, 2 documents per patient (each a
    DocumentReference + Binary), one upcoming appointment and one inbox message per patient.
    Patients are conditional creates on their INS, so loading the demo twice adds no duplicates.
    """
    rng = random.Random(seed)
    entries: list[dict] = []
    org_urls = []
    for name, commune, area in DEMO_ORGANIZATIONS:
        url = _urn(rng)
        org_urls.append(url)
        entries.append(entry(url, organization_resource(name, finess(rng, commune.cog[:2]), commune, area, rng)))
    pros: dict[str, tuple[Professional, str, str]] = {}
    for pro in DEMO_PROFESSIONALS:
        url, role_url = _urn(rng), _urn(rng)
        entries.append(entry(url, practitioner_resource(pro, rpps(rng))))
        entries.append(entry(role_url, practitioner_role_resource(pro, url, org_urls[pro.org])))
        pros[pro.key] = (pro, url, org_urls[pro.org])
    seen: set[str] = set()
    for index, person in enumerate(_demo_people(rng)):
        ins = _draw_ins(rng, person, seen)
        patient, patient_url = patient_resource(person, ins, rng), _urn(rng)
        entries.append(entry(patient_url, patient, f"identifier={OID_INS_NIR_TEST}|{ins}"))
        written = _add_documents(entries, rng, patient_url, patient, pros, _DEMO_DOCS[index % len(_DEMO_DOCS)])
        kind, day = written[-1]
        pro, pro_url, _ = pros[kind.author]
        sent = _instant(day, 19, rng.choice((0, 30)))
        letter = communication_resource(patient_url, patient, pro_url, pro, kind, day, sent)
        entries.append(entry(_urn(rng), letter))
        visit_pro, visit_url, _ = pros[DEMO_PROFESSIONALS[index % len(DEMO_PROFESSIONALS)].key]
        appointment = appointment_resource(patient_url, _display_name(patient), visit_url, visit_pro, rng)
        entries.append(entry(_urn(rng), appointment))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

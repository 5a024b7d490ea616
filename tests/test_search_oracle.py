"""The indexed search agrees with the reference evaluator (``search_oracle.py``).

Hypothesis draws small sets of realistic, valid resources of our types (accents, ligatures, case
variants, partial dates, time zones, open periods, references in every form, relatesTo pairs for the
composite ``relationship``) and queries built
from their values and from values next to them (prefixes, other case or accents, date
boundaries, each prefix, URL parents and children). Each example writes the resources through
the real ``Repository`` into a fresh SQLite file and compares ``Repository.search`` with
``oracle_search``. Examples are derandomised and few, so the file stays fast and deterministic.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search_oracle import (
    EPOCH,
    LOCAL_BASE,
    ZONE,
    date_range,
    engine_search,
    oracle_search,
    strings_of,
    texts_of,
    tokens_of,
    values_of,
)

from fhir_server.core.validation import validate_resource

ORACLE = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FOREIGN_BASE = "https://annuaire.example.org/fhir"
Query = list[tuple[str, str]]

# --- value pools ----------------------------------------------------------------------------

GIVEN = ["Hélène", "HELENE", "helene", "Zoë", "Zoe", "François", "FRANÇOIS", "Jean-Pierre", "Ève", "Ægir"]
FAMILY = ["Œuvray", "oeuvray", "OEUVRAY", "Lefèvre", "LEFEVRE", "Çelik", "Dupont", "Le Goff", "D'Arc", "Strauß"]
PREFIXES_OF_NAMES = ["Mme", "M.", "Dr"]
CITIES = ["Paris", "Besançon", "Saint-Étienne", "SAINT-ETIENNE", "Évry", "Nîmes", "Lœuilly"]
POSTAL_CODES = ["75001", "25000", "42000", "91000"]
COUNTRIES = ["France", "FR"]
LINES = ["12 rue de l'Église", "3 place Bellecour"]
TEXTS = ["Compte rendu d'hospitalisation", "Lettre de sortie – cardiologie", "taux à 100% (a_b)", "Bilan, suivi $1",
         "Résultats de biologie", "RDV de suivi", "Téléconsultation"]
IDENT_SYSTEMS = ["urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.10", "https://hopital.example.org/ipp"]
IDENT_VALUES = ["1790305123456", "ABC123", "abc123", "42", "FR,42"]
IDENT_TYPE_TEXTS = ["NIR définitif", "INS-NIA", "IPP"]
TELECOMS = [("phone", "+33612345678"), ("phone", "0612345678"), ("email", "helene@example.fr"),
            ("email", "HELENE@example.fr"), ("url", "https://example.fr")]
LOINC = "http://loinc.org"
DOC_TYPES = [(LOINC, "11488-4", "Note de consultation"), (LOINC, "34133-9", "Synthèse d'épisode"),
             (LOINC, "18842-5", "Lettre de sortie"), ("urn:oid:1.2.250.1.213.1.1.4.12", "CR-BIO", "Compte rendu")]
CONFIDENTIALITY = [("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", c, d)
                   for c, d in (("N", "normal"), ("R", "restreint"), ("V", "très restreint"))]
SERVICE_TYPES = [("http://terminology.hl7.org/CodeSystem/service-type", "124", "Cardiologie"),
                 ("urn:oid:1.2.250.1.213.2.5", "VAC", "Vaccination")]
ICD10, ATC = "http://hl7.org/fhir/sid/icd-10", "http://www.whocc.no/atc"
REASONS = [(ICD10, "I21", "Infarctus aigu du myocarde"), (ICD10, "I21.0", "Infarctus transmural antérieur"),
           (ICD10, "I25.1", "Cardiopathie athéroscléreuse"), ("urn:oid:2.16.840.1.113883.6.3", "J45", "Asthme"),
           (ATC, "A10BA02", "metformine"), (ATC, "A10B", "Hypoglycémiants"), (LOINC, "11488-4", "Consultation")]
MEDIUMS = [("http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", c, d)
           for c, d in (("EMAILWRIT", "email"), ("PHONE", "téléphone"))]
URLS = ["https://dmp.example.fr/docs/2024/cr-1.pdf", "https://dmp.example.fr/docs/2024", "https://dmp.example.fr/docs",
        "https://dmp.example.fr/docsx/1", "https://dmp.example.fr/docs/2024/", "https://dmp.example.fr",
        "https://dmp.example.fr/docs/a_b%20c", "urn:oid:1.2.250.1.213.1.1"]
PROFILES = ["https://interop.esante.gouv.fr/ig/fhir/ins/StructureDefinition/FrPatientINS",
            "https://interop.esante.gouv.fr/ig/fhir/ins", "http://hl7.org/fhir/StructureDefinition/Patient"]
REF_IDS = ["1", "2", "pr-1"]
RELATIONS = ["replaces", "transforms", "signs", "appends"]
#: DocumentReference ids: the generated ones are doc0, doc1...; doc99 is never written.
DOC_IDS = ["doc0", "doc1", "doc2", "doc99"]

# Instants next to interesting boundaries: local midnight in Paris, the DST changes, a new year.
ANCHORS = [datetime(2013, 1, 14, 9, 0, tzinfo=UTC), datetime(2013, 1, 13, 23, 0, tzinfo=UTC),
           datetime(2024, 3, 31, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 0, 59, 59, tzinfo=UTC),
           datetime(1979, 3, 5, 11, 0, tzinfo=UTC), datetime(1979, 12, 31, 23, 30, tzinfo=UTC)]
SHIFTS = [0, 0, 1, -1, 0.5, 0.123, 3600, -3600, 86400, -86400 * 31]
OFFSETS = ["Z", "+01:00", "+02:00", "-05:00"]
DATE_PREFIXES = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]

#: The parameters exercised per type and kind (phonetic, part-agree and extensions are left out).
PARAMS: dict[str, dict[str, list[str]]] = {
    "Patient": {
        "string": ["name", "family", "given", "address", "address-city", "address-postalcode", "address-country"],
        "token": ["gender", "identifier", "telecom", "email", "phone", "active", "address-use", "deceased"],
        "date": ["birthdate", "death-date"],
        "reference": ["general-practitioner", "organization"],
        "uri": ["_profile"],
    },
    "DocumentReference": {
        "string": ["description"],
        "token": ["status", "type", "category", "security-label", "identifier", "contenttype", "_security"],
        "date": ["date", "period", "period-start", "period-end"],
        "reference": ["subject", "patient", "author", "custodian"],
        "uri": ["location"],
        "composite": ["relationship"],
    },
    "Appointment": {
        "string": ["description"],
        "token": ["status", "part-status", "service-type", "identifier", "reason-code"],
        "date": ["date"],
        "reference": ["actor", "patient", "practitioner", "location"],
    },
    "Communication": {
        "token": ["status", "category", "medium"],
        "date": ["sent", "received"],
        "reference": ["subject", "patient", "recipient", "sender"],
        "uri": ["instantiates-uri"],
    },
}


def types_with(kind: str) -> list[str]:
    return [t for t, kinds in PARAMS.items() if kinds.get(kind)]


# --- dates ----------------------------------------------------------------------------------

def _offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def format_moment(moment: datetime, precision: str, offset: str | None) -> str:
    """``moment`` written at a precision, in an offset (None: Paris wall time, written without zone)."""
    local = moment.astimezone(ZONE if offset is None else _offset(offset))
    text = f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}"
    text = {"year": text[:4], "month": text[:7], "day": text[:10]}.get(precision, text)
    if precision in ("second", "tenth", "millis"):
        text += f":{local.second:02d}"
    if precision == "tenth":
        text += f".{local.microsecond // 100_000}"
    if precision == "millis":
        text += f".{local.microsecond // 1000:03d}"
    suffix = "" if offset is None or precision in ("year", "month", "day") else offset
    return text + suffix


PRECISIONS = {"date": ["year", "month", "day"], "dateTime": ["year", "month", "day", "second", "millis"],
              "instant": ["second", "millis", "tenth"],
              "query": ["year", "month", "day", "minute", "second", "millis"]}


@st.composite
def date_texts(draw, kind: str) -> str:
    """A date, dateTime or instant (or a query date, maybe without zone) near one of the anchors."""
    moment = draw(st.sampled_from(ANCHORS)) + timedelta(seconds=draw(st.sampled_from(SHIFTS)))
    offsets = OFFSETS + [None] if kind == "query" else OFFSETS
    return format_moment(moment, draw(st.sampled_from(PRECISIONS[kind])), draw(st.sampled_from(offsets)))


def _ordered(period: dict) -> dict:
    """A Period whose start is not after its end (per-1)."""
    if "start" in period and "end" in period and date_range(period["start"])[0] > date_range(period["end"])[0]:
        return {"start": period["end"], "end": period["start"]}
    return period


periods = st.fixed_dictionaries({}, optional={"start": date_texts("dateTime"), "end": date_texts("dateTime")}
                                ).filter(bool).map(_ordered)

# --- datatypes --------------------------------------------------------------------------------


def _reference_text(resource_type: str, ident: str, form: str) -> str:
    return {"relative": f"{resource_type}/{ident}", "absolute": f"{LOCAL_BASE}/{resource_type}/{ident}",
            "versioned": f"{resource_type}/{ident}/_history/2", "foreign": f"{FOREIGN_BASE}/{resource_type}/{ident}",
            }[form]


def references(types: list[str]):
    """A reference: relative, absolute on our base, versioned, or to another server (same type and ids)."""
    forms = ["relative", "relative", "absolute", "versioned", "foreign"]
    return st.builds(lambda t, i, f: {"reference": _reference_text(t, i, f)}, st.sampled_from(types),
                     st.sampled_from(REF_IDS), st.sampled_from(forms))


def concepts(pool: list[tuple[str, str, str]]):
    """A CodeableConcept with one coding (display or not), or with text only, or both."""
    coding = st.builds(lambda c, show: {"system": c[0], "code": c[1], **({"display": c[2]} if show else {})},
                       st.sampled_from(pool), st.booleans())
    return st.fixed_dictionaries({}, optional={"coding": st.lists(coding, min_size=1, max_size=2),
                                               "text": st.sampled_from(TEXTS)}).filter(bool)


identifiers = st.fixed_dictionaries(
    {"value": st.sampled_from(IDENT_VALUES)},
    optional={"system": st.sampled_from(IDENT_SYSTEMS), "type": st.sampled_from(IDENT_TYPE_TEXTS).map(
        lambda t: {"text": t})})
human_names = st.fixed_dictionaries({}, optional={
    "family": st.sampled_from(FAMILY), "given": st.lists(st.sampled_from(GIVEN), min_size=1, max_size=2),
    "prefix": st.lists(st.sampled_from(PREFIXES_OF_NAMES), min_size=1, max_size=1)}).filter(bool)
addresses = st.fixed_dictionaries({"city": st.sampled_from(CITIES)}, optional={
    "line": st.lists(st.sampled_from(LINES), min_size=1, max_size=1), "postalCode": st.sampled_from(POSTAL_CODES),
    "country": st.sampled_from(COUNTRIES), "use": st.sampled_from(["home", "work", "temp"])})
telecoms = st.sampled_from(TELECOMS).map(lambda t: {"system": t[0], "value": t[1]})
attachments = st.fixed_dictionaries({}, optional={
    "contentType": st.sampled_from(["application/pdf", "text/plain", "application/fhir+xml"]),
    "url": st.sampled_from(URLS), "language": st.just("fr-FR")}).filter(bool)


def listed(strategy, max_size: int = 2):
    return st.lists(strategy, min_size=1, max_size=max_size)


# --- resources ------------------------------------------------------------------------------

deceased = st.one_of(st.just({}), st.booleans().map(lambda b: {"deceasedBoolean": b}),
                     date_texts("dateTime").map(lambda d: {"deceasedDateTime": d}))
patients = st.tuples(st.fixed_dictionaries({"resourceType": st.just("Patient")}, optional={
    "name": listed(human_names), "gender": st.sampled_from(["male", "female", "other", "unknown"]),
    "birthDate": date_texts("date"), "identifier": listed(identifiers), "telecom": listed(telecoms),
    "address": listed(addresses, 1), "active": st.booleans(),
    "generalPractitioner": listed(references(["Practitioner", "Organization", "PractitionerRole"])),
    "managingOrganization": references(["Organization"]),
    "meta": listed(st.sampled_from(PROFILES)).map(lambda p: {"profile": p}),
}), deceased).map(lambda parts: {**parts[0], **parts[1]})

#: A relatesTo: a relation and a document, by a local reference in any form or one on another server.
relations = st.builds(lambda code, ident, form: {"code": code, "target": {"reference": _reference_text(
    "DocumentReference", ident, form)}}, st.sampled_from(RELATIONS), st.sampled_from(DOC_IDS),
    st.sampled_from(["relative", "relative", "absolute", "versioned", "foreign"]))

documents = st.fixed_dictionaries({
    "resourceType": st.just("DocumentReference"),
    "status": st.sampled_from(["current", "superseded", "entered-in-error"]),
    "content": listed(attachments.map(lambda a: {"attachment": a})),
}, optional={
    "masterIdentifier": identifiers, "identifier": listed(identifiers), "type": concepts(DOC_TYPES),
    "category": listed(concepts(DOC_TYPES)), "subject": references(["Patient", "Group", "Practitioner"]),
    "date": date_texts("instant"), "author": listed(references(["Practitioner", "Organization", "Patient"])),
    "custodian": references(["Organization"]), "description": st.sampled_from(TEXTS),
    "securityLabel": listed(concepts(CONFIDENTIALITY)), "context": periods.map(lambda p: {"period": p}),
    "meta": listed(st.sampled_from(CONFIDENTIALITY)).map(
        lambda cs: {"security": [{"system": s, "code": c} for s, c, _ in cs]}),
    "relatesTo": listed(relations, 3),
})

participants = st.fixed_dictionaries({
    "status": st.sampled_from(["accepted", "declined", "tentative", "needs-action"]),
    "actor": references(["Patient", "Practitioner", "Location", "PractitionerRole"]),
})
appointments = st.fixed_dictionaries({
    "resourceType": st.just("Appointment"),
    "status": st.sampled_from(["proposed", "booked", "arrived", "fulfilled", "cancelled", "noshow"]),
    "participant": listed(participants, 3),
}, optional={
    "start": date_texts("instant"), "description": st.sampled_from(TEXTS), "comment": st.sampled_from(TEXTS),
    "serviceType": listed(concepts(SERVICE_TYPES)), "identifier": listed(identifiers),
    "reasonCode": listed(concepts(REASONS)),
})

communications = st.fixed_dictionaries({
    "resourceType": st.just("Communication"),
    "status": st.sampled_from(["preparation", "in-progress", "completed", "stopped", "unknown"]),
}, optional={
    "sent": date_texts("dateTime"), "received": date_texts("dateTime"),
    "subject": references(["Patient", "Group"]), "recipient": listed(references(["Practitioner", "Patient",
                                                                                 "Organization"])),
    "sender": references(["Practitioner", "Organization"]), "category": listed(concepts(DOC_TYPES)),
    "medium": listed(concepts(MEDIUMS)), "instantiatesUri": listed(st.sampled_from(URLS)),
})

RESOURCES = {"Patient": patients, "DocumentReference": documents, "Appointment": appointments,
             "Communication": communications}


def _with_ids(resources: list[dict]) -> list[dict]:
    return [{**r, "id": f"{r['resourceType'][:3].lower()}{i}"} for i, r in enumerate(resources)]


def resource_sets(resource_type: str):
    """3 to 15 resources of one type, each valid for the server."""
    return st.lists(RESOURCES[resource_type], min_size=3, max_size=15).map(_with_ids)


# --- query values -----------------------------------------------------------------------------

def _values(resources: list[dict], code: str) -> list:
    return [v for r in resources for v in values_of(r, code)]


def _ascii(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _spelled(text: str) -> str:
    """Ligatures and ß as a keyboard without them types them: Œuvray → OEuvray, Strauß → Strauss."""
    for letter, spelled in (("œ", "oe"), ("Œ", "OE"), ("æ", "ae"), ("Æ", "AE"), ("ß", "ss")):
        text = text.replace(letter, spelled)
    return text


@st.composite
def text_variants(draw, texts: list[str], infix: bool = False) -> str:
    """One of ``texts`` as written, in another case, without accents, or a prefix (or infix) of it."""
    text = draw(st.sampled_from(texts))
    how = draw(st.sampled_from(["same", "upper", "lower", "ascii", "spelled", "part", "part"]))
    if how == "part":
        start = draw(st.integers(0, len(text) - 1)) if infix else 0
        text = text[start:draw(st.integers(start + 1, len(text)))]
    text = {"upper": text.upper(), "lower": text.lower(), "ascii": _ascii(text), "spelled": _spelled(text)}.get(
        how, text)
    return text.strip() or text


def _escape(text: str) -> str:
    return re.sub(r"([,|$\\])", r"\\\1", text)


@st.composite
def string_values(draw, resources: list[dict], code: str, modifier: str | None) -> str:
    texts = [s for v in _values(resources, code) for s in strings_of(v)] + GIVEN[:2] + CITIES[:2]
    return _escape(draw(text_variants(texts, infix=modifier == "contains")))


@st.composite
def token_values(draw, resources: list[dict], code: str, modifier: str | None) -> str:
    values = _values(resources, code)
    if modifier in ("above", "below"):
        return draw(hierarchy_values([p for v in values for p in tokens_of(v)]))
    if modifier == "text":
        return _escape(draw(text_variants([t for v in values for t in texts_of(v)] + TEXTS[:1])))
    pairs = [p for v in values for p in tokens_of(v)] + [(LOINC, "11488-4"), (None, "abc123"), (None, "male")]
    system, code_ = draw(st.sampled_from(pairs))
    form = draw(st.sampled_from(["code", "code", "system|code", "|code", "system|", "other-case"]))
    if form == "other-case":
        return _escape(code_.swapcase())
    if form == "system|code" and system:
        return f"{_escape(system)}|{_escape(code_)}"
    if form == "system|" and system:
        return f"{_escape(system)}|"
    return ("|" if form == "|code" else "") + _escape(code_)


@st.composite
def hierarchy_values(draw, pairs: list[tuple[str | None, str]]) -> str:
    """``system|code`` of a prefix hierarchy: a code of the data, cut shorter or extended."""
    known = [(s, c) for s, c in pairs if s in (ICD10, ATC)] + [(ICD10, "I2"), (ATC, "A10BA02"), (ICD10, "I21.09")]
    system, code = draw(st.sampled_from(known))
    cut = draw(st.integers(1, len(code) + 1))
    return f"{system}|{code[:cut]}" if cut <= len(code) else f"{system}|{code}9"


@st.composite
def date_values(draw, resources: list[dict], code: str, prefix: str | None = None) -> str:
    """A prefix and a date: a value of the data cut to a coarser precision, an instant at or next to the start,
    middle or end of a value's range (so finer than the value, or just touching it), or one near an anchor."""
    values = _values(resources, code)
    texts = [t for v in values for t in ([v] if isinstance(v, str) else v.values())]
    how = draw(st.sampled_from(["cut", "within", "within", "anchor"])) if texts else "anchor"
    if how == "cut":
        text = draw(st.sampled_from(texts))
        text = text[:draw(st.sampled_from([4, 7, 10, len(text)]))]
    elif how == "within":
        low, high = date_range(draw(st.sampled_from(texts)))
        at = draw(st.sampled_from([low - 1, low - 1, low, (low + high) // 2, high - 1, high, high]))
        moment = EPOCH + timedelta(microseconds=at)
        precision, offset = draw(st.sampled_from(PRECISIONS["query"])), draw(st.sampled_from([*OFFSETS, None]))
        text = format_moment(moment, precision, offset)
    else:
        text = draw(date_texts("query"))
    prefix = prefix if prefix is not None else draw(st.sampled_from(["", *DATE_PREFIXES]))
    return prefix + text


@st.composite
def reference_values(draw, resources: list[dict], code: str, forms: tuple[str, ...]) -> tuple[str, str]:
    """(modifier, value): an id, Type/id, a URL on our base or another, a versioned reference, or ``:Type`` + id."""
    texts = [v["reference"] for v in _values(resources, code) if isinstance(v, dict) and "reference" in v]
    texts += ["Practitioner/1", "Organization/2", "Patient/pr-1"]
    match = re.search(r"([A-Z][A-Za-z]+)/([^/]+)(/_history/.*)?$", draw(st.sampled_from(texts)))
    kind, ident = match[1], match[2]
    other = draw(st.sampled_from([kind, kind, kind, "Patient", "Practitioner", "Organization"]))
    form = draw(st.sampled_from(forms))
    if form == "type-modifier":
        return other, ident
    return None, {"id": ident, "relative": f"{other}/{ident}", "absolute": f"{LOCAL_BASE}/{other}/{ident}",
                  "versioned": f"{other}/{ident}/_history/{draw(st.sampled_from(['2', '2', '1']))}",
                  "foreign": f"{FOREIGN_BASE}/{other}/{ident}"}[form]


@st.composite
def uri_values(draw, resources: list[dict], code: str) -> str:
    """A uri of the data, a parent or child of one (on or off a path segment), with or without '/'."""
    uri = draw(st.sampled_from([v for v in _values(resources, code) if isinstance(v, str)] + URLS[:1]))
    how = draw(st.sampled_from(["same", "parent", "child", "cut", "slash"]))
    if how == "parent" and uri.count("/") > 2:
        uri = uri.rstrip("/").rsplit("/", 1)[0]
    elif how == "child":
        uri = uri.rstrip("/") + "/x/1"
    elif how == "cut":
        uri = uri[:draw(st.integers(1, len(uri)))]
    elif how == "slash":
        uri = uri[:-1] if uri.endswith("/") else uri + "/"
    return _escape(uri)


RELATION_SYSTEM = "http://hl7.org/fhir/document-relationship-type"


def _target_forms(reference: str) -> list[str]:
    """The ways a query may name this target: a local one by id, Type/id, our URL (and its version);
    one on another server by its URL (its id and Type/id name a local document: near misses)."""
    match = re.search(r"([A-Z][A-Za-z]+)/([^/]+)(/_history/.*)?$", reference)
    kind, ident = match[1], match[2]
    return [ident, f"{kind}/{ident}", f"{LOCAL_BASE}/{kind}/{ident}", reference]


@st.composite
def composite_values(draw, resources: list[dict], code: str) -> str:
    """``target$relation``: both from one relatesTo, or a near miss (the right target with another
    relation, the relation of another element of the same document), in the target's query forms and
    the relation as ``code``, ``|code`` or ``system|code``."""
    elements = [(r["id"], e) for r in resources for e in values_of(r, code)]
    elements += [("", {"code": "replaces", "target": {"reference": "DocumentReference/doc1"}})]
    owner, element = draw(st.sampled_from(elements))
    relation = element["code"]
    how = draw(st.sampled_from(["same", "same", "other-relation", "other-element"]))
    if how == "other-relation":
        relation = draw(st.sampled_from(RELATIONS))
    elif how == "other-element":
        siblings = [e for i, e in elements if i == owner]
        relation = draw(st.sampled_from(siblings))["code"]
    target = draw(st.sampled_from(_target_forms(element["target"]["reference"])))
    relation = draw(st.sampled_from([relation, relation, f"|{relation}", f"{RELATION_SYSTEM}|{relation}"]))
    return f"{target}${relation}"


def _or(draw, one) -> str:
    """One value, or sometimes two joined by a comma (OR)."""
    first = draw(one)
    return f"{first},{draw(one)}" if draw(st.integers(0, 3)) == 0 else first


@st.composite
def queries(draw, resources: list[dict], kind: str, modifier: str | None = None, **options) -> tuple[str, str]:
    """One ``name=value`` on a parameter of ``kind`` of the resources' type."""
    resource_type = resources[0]["resourceType"]
    code = draw(st.sampled_from(PARAMS[resource_type][kind]))
    if modifier == "missing":
        return f"{code}:missing", draw(st.sampled_from(["true", "false"]))
    if kind == "string":
        value = _or(draw, string_values(resources, code, modifier))
    elif kind == "token":
        value = _or(draw, token_values(resources, code, modifier if modifier in ("text", "above", "below") else None))
    elif kind == "date":
        value = _or(draw, date_values(resources, code, options.get("prefix")))
    elif kind == "composite":
        value = _or(draw, composite_values(resources, code))
    elif kind == "reference":
        forms = options.get("forms", ("id",))
        modifier, value = draw(reference_values(resources, code, forms))
        if modifier is None and "type-modifier" not in forms and draw(st.integers(0, 3)) == 0:
            value += "," + draw(reference_values(resources, code, forms))[1]
    else:
        value = _or(draw, uri_values(resources, code))
    return (f"{code}:{modifier}" if modifier else code), value


# --- the comparison ---------------------------------------------------------------------------

def assert_agree(resources: list[dict], resource_type: str, searches: list[Query]) -> None:
    """The engine and the oracle find the same ids for every search; else show what differs."""
    for query, (found, unsupported) in zip(searches, engine_search(resources, resource_type, searches), strict=True):
        expected = oracle_search(resources, resource_type, query)
        if found == expected and not unsupported:
            continue
        differing = found ^ expected
        shown = [r for r in resources if r["id"] in differing]
        raise AssertionError(
            f"{resource_type}?{'&'.join(f'{n}={v}' for n, v in query)}\n"
            f"engine: {sorted(found)}  oracle: {sorted(expected)}  unsupported: {unsupported}\n"
            f"resources that differ:\n" + "\n".join(json.dumps(r, ensure_ascii=False) for r in shown))


def check(data: st.DataObject, kind: str, modifier: str | None = None, **options) -> None:
    """Draw a type having ``kind`` parameters, its resources, and 1-4 queries; compare engine and oracle."""
    resource_type = data.draw(st.sampled_from(types_with(kind)), label="type")
    resources = data.draw(resource_sets(resource_type), label="resources")
    searches = data.draw(st.lists(queries(resources, kind, modifier, **options).map(lambda q: [q]),
                                  min_size=1, max_size=4), label="searches")
    assert_agree(resources, resource_type, searches)


# --- properties: one per parameter type and modifier --------------------------------------------

@ORACLE
@given(st.data())
def test_string_starts_with_ignoring_case_and_accents(data: st.DataObject) -> None:
    check(data, "string")


@ORACLE
@given(st.data())
def test_string_exact(data: st.DataObject) -> None:
    check(data, "string", "exact")


@ORACLE
@given(st.data())
def test_string_contains(data: st.DataObject) -> None:
    check(data, "string", "contains")


@ORACLE
@given(st.data())
def test_token_code_system_forms(data: st.DataObject) -> None:
    check(data, "token")


@ORACLE
@given(st.data())
def test_token_not(data: st.DataObject) -> None:
    check(data, "token", "not")


@ORACLE
@given(st.data())
def test_token_text(data: st.DataObject) -> None:
    check(data, "token", "text")


@pytest.mark.parametrize("modifier", ["below", "above"])
@settings(ORACLE, max_examples=15)
@given(data=st.data())
def test_token_hierarchy(modifier: str, data: st.DataObject) -> None:
    """:below / :above on codes whose hierarchy is in the code (ATC, ICD-10), on Appointment reasons."""
    resources = data.draw(resource_sets("Appointment"), label="resources")
    searches = [[(f"reason-code:{modifier}", _or(data.draw, token_values(resources, "reason-code", modifier)))]
                for _ in range(3)]
    assert_agree(resources, "Appointment", searches)


@pytest.mark.parametrize("kind", ["string", "token", "date", "reference", "uri", "composite"])
@settings(ORACLE, max_examples=10)
@given(data=st.data())
def test_missing(kind: str, data: st.DataObject) -> None:
    check(data, kind, "missing")


@pytest.mark.parametrize("prefix", [pytest.param("", id="no-prefix"), *DATE_PREFIXES])
@settings(ORACLE, max_examples=15)
@given(data=st.data())
def test_date_prefix(prefix: str, data: st.DataObject) -> None:
    check(data, "date", prefix=prefix)


@pytest.mark.parametrize("form", ["id", "relative", "absolute", "versioned", "foreign", "type-modifier"])
@settings(ORACLE, max_examples=12)
@given(data=st.data())
def test_reference(form: str, data: st.DataObject) -> None:
    check(data, "reference", forms=(form,))


@pytest.mark.parametrize("modifier", [None, "below", "above"])
@settings(ORACLE, max_examples=16)
@given(data=st.data())
def test_uri(modifier: str | None, data: st.DataObject) -> None:
    check(data, "uri", modifier)


@ORACLE
@given(st.data())
def test_composite_both_parts_on_one_element(data: st.DataObject) -> None:
    """``relationship=[target]$[relation]`` (R4 search.html#composite): the target by its reference rules,
    the relation by the token rules, both in the same relatesTo; OR lists of such pairs."""
    check(data, "composite")


@st.composite
def combined_queries(draw, resources: list[dict]) -> Query:
    """Two parameters of different kinds (AND), each with its default or a modifier."""
    kinds = [k for k, codes in PARAMS[resources[0]["resourceType"]].items() if codes]
    first, second = draw(st.lists(st.sampled_from(kinds), min_size=2, max_size=2, unique=True))
    modifiers = {"string": [None, "exact", "contains"], "token": [None, "not", "text"], "uri": [None, "below"],
                 "date": [None], "reference": [None], "composite": [None]}
    out = []
    for kind in (first, second):
        modifier = draw(st.sampled_from([*modifiers[kind], "missing"]))
        out.append(draw(queries(resources, kind, modifier, forms=("id", "relative", "foreign", "type-modifier"))))
    return out


@ORACLE
@given(st.data())
def test_two_parameters_and(data: st.DataObject) -> None:
    resource_type = data.draw(st.sampled_from(list(PARAMS)), label="type")
    resources = data.draw(resource_sets(resource_type), label="resources")
    searches = data.draw(st.lists(combined_queries(resources), min_size=1, max_size=4), label="searches")
    assert_agree(resources, resource_type, searches)


@ORACLE
@given(st.sampled_from(list(RESOURCES)).flatmap(lambda t: RESOURCES[t]))
def test_generated_resources_are_valid(resource: dict) -> None:
    validate_resource(resource)


# --- R4 search.html examples: partial dates and time zones (not generated) --------------------

def _patient(ident: str, birth: str) -> dict:
    return {"resourceType": "Patient", "id": ident, "birthDate": birth}


def _sent(ident: str, sent: str) -> dict:
    return {"resourceType": "Communication", "id": ident, "status": "completed", "sent": sent}


def _period(ident: str, **period: str) -> dict:
    return {"resourceType": "DocumentReference", "id": ident, "status": "current",
            "content": [{"attachment": {"contentType": "application/pdf"}}], "context": {"period": period}}


BIRTHS = [_patient("d", "1979-03-05"), _patient("m", "1979-03"), _patient("y", "1979"),
          _patient("next", "1980-01-01"), _patient("before", "1978-12-31")]
SENT = [_sent("midnight", "2013-01-14T00:00:00+01:00"), _sent("ten", "2013-01-14T10:00:00+01:00"),
        _sent("tenz", "2013-01-14T09:00:00Z"), _sent("before", "2013-01-14T08:59:59Z"),
        _sent("next", "2013-01-15T00:00:00+01:00"), _sent("day", "2013-01-14"), _sent("prev", "2013-01-13")]
PERIODS = [_period("onwards", start="2013-01-21"), _period("until", end="2013-01-21"),
           _period("march", start="2013-03-01", end="2013-03-31")]

SPEC_EXAMPLES = [
    # birthdate=1979: the search range (the year) contains each target range
    (BIRTHS, "Patient", [("birthdate", "1979")], {"d", "m", "y"}),
    (BIRTHS, "Patient", [("birthdate", "1979-03")], {"d", "m"}),
    (BIRTHS, "Patient", [("birthdate", "1979-03-05")], {"d"}),
    (BIRTHS, "Patient", [("birthdate", "ne1979-03")], {"y", "next", "before"}),
    (BIRTHS, "Patient", [("birthdate", "lt1979-03-05")], {"m", "y", "before"}),
    (BIRTHS, "Patient", [("birthdate", "sa1979")], {"next"}),
    (BIRTHS, "Patient", [("birthdate", "eb1979-03")], {"before"}),
    # eq2013-01-14 matches 2013-01-14T00:00 and 2013-01-14T10:00 but not 2013-01-15T00:00 (local days)
    (SENT, "Communication", [("sent", "eq2013-01-14")], {"midnight", "ten", "tenz", "before", "day"}),
    (SENT, "Communication", [("sent", "ne2013-01-14")], {"next", "prev"}),
    # lt/gt2013-01-14T10:00 both match the day 2013-01-14: it holds times before and after 10am
    (SENT, "Communication", [("sent", "lt2013-01-14T10:00")], {"midnight", "before", "day", "prev"}),
    (SENT, "Communication", [("sent", "gt2013-01-14T10:00")], {"next", "day"}),
    # one instant in three spellings: +01:00, Z, and without zone (the server's, Paris)
    (SENT, "Communication", [("sent", "ge2013-01-14T10:00:00+01:00")], {"ten", "tenz", "next", "day"}),
    (SENT, "Communication", [("sent", "2013-01-14T09:00:00Z")], {"ten", "tenz"}),
    (SENT, "Communication", [("sent", "2013-01-14T10:00:00")], {"ten", "tenz"}),
    (SENT, "Communication", [("sent", "lt2013-01-14T10:00:00 01:00")], {"midnight", "before", "day", "prev"}),
    # "from 21-Jan 2013 onwards" may hold times after and before 14-Mar 2013
    (PERIODS, "DocumentReference", [("period", "ge2013-03-14")], {"onwards", "march"}),
    (PERIODS, "DocumentReference", [("period", "le2013-03-14")], {"onwards", "until", "march"}),
    (PERIODS, "DocumentReference", [("period", "gt2013-03-14")], {"onwards", "march"}),
    (PERIODS, "DocumentReference", [("period", "eq2013-03")], {"march"}),
    (PERIODS, "DocumentReference", [("period", "sa2013-01-21")], {"march"}),
    (PERIODS, "DocumentReference", [("period", "eb2013-01-22")], {"until"}),
]


@pytest.mark.parametrize(("resources", "resource_type", "query", "expected"), SPEC_EXAMPLES,
                         ids=[f"{t}?{q[0][0]}={q[0][1]}" for _, t, q, _ in SPEC_EXAMPLES])
def test_r4_date_examples(resources: list[dict], resource_type: str, query: Query, expected: set[str]) -> None:
    assert oracle_search(resources, resource_type, query) == expected
    [(found, unsupported)] = engine_search(resources, resource_type, [query])
    assert (found, unsupported) == (expected, [])


def test_approximately_widens_by_a_tenth_of_the_distance_to_now() -> None:
    """``ap`` is not generated (it depends on the clock): far from now, 10% is years, so it is stable."""
    now = datetime.now(UTC)
    births = [_patient("near", "2012-06-01"), _patient("far", "1990-01-01"), _patient("on", "2013-01-14")]
    query = [("birthdate", "ap2013-01-14")]
    assert oracle_search(births, "Patient", query, now=now) == {"near", "on"}
    [(found, _)] = engine_search(births, "Patient", [query])
    assert found == {"near", "on"}


# --- regressions: divergences the oracle found, fixed in fd79729 ---------------------------------

GPS = [{"resourceType": "Patient", "id": ident, "generalPractitioner": [{"reference": ref}]}
       for ident, ref in (("foreign", f"{FOREIGN_BASE}/Practitioner/1"), ("local", "Practitioner/1"),
                          ("base", f"{LOCAL_BASE}/Practitioner/1"))]


@pytest.mark.parametrize(("query", "expected"), [
    ([("general-practitioner", "1")], {"local", "base"}),
    ([("general-practitioner", "Practitioner/1")], {"local", "base"}),
    ([("general-practitioner:Practitioner", "1")], {"local", "base"}),
    ([("general-practitioner", f"{LOCAL_BASE}/Practitioner/1")], {"local", "base"}),
    ([("general-practitioner", f"{FOREIGN_BASE}/Practitioner/1")], {"foreign"}),
    ([("general-practitioner:missing", "false")], {"foreign", "local", "base"}),
])
def test_reference_to_another_server(query: Query, expected: set[str]) -> None:
    """R4 search.html#reference: ``[id]`` and ``[type]/[id]`` are "a local reference (i.e. a relative
    reference)"; a reference to another server (same type and id) is found by its URL only."""
    [(found, _)] = engine_search(GPS, "Patient", [query])
    assert found == oracle_search(GPS, "Patient", query) == expected


def test_chain_does_not_follow_a_reference_to_another_server() -> None:
    martin = {"resourceType": "Practitioner", "id": "1", "name": [{"family": "Martin"}]}
    [(found, _)] = engine_search([martin, *GPS], "Patient", [[("general-practitioner.name", "Martin")]])
    assert found == {"local", "base"}


def test_below_a_uri_with_a_trailing_slash() -> None:
    """``:below=https://dmp.example.fr/docs/`` also finds ``https://dmp.example.fr/docs`` itself."""
    sent = [{"resourceType": "Communication", "id": ident, "status": "completed", "instantiatesUri": [uri]}
            for ident, uri in (("docs", "https://dmp.example.fr/docs"), ("child", "https://dmp.example.fr/docs/2024"),
                               ("docsx", "https://dmp.example.fr/docsx"))]
    query = [("instantiates-uri:below", "https://dmp.example.fr/docs/")]
    [(found, _)] = engine_search(sent, "Communication", [query])
    assert found == oracle_search(sent, "Communication", query) == {"docs", "child"}


def _instantiating(*uris: str) -> list[dict]:
    return [{"resourceType": "Communication", "id": f"c{i}", "status": "completed", "instantiatesUri": [uri]}
            for i, uri in enumerate(uris)]


@pytest.mark.parametrize(("uris", "query", "expected"), [
    (("https://lgc.example.fr/sih#a1b2", "https://lgc.example.fr/sih"), "above=https://lgc.example.fr/sih#a1b2/x/1",
     {"c0"}),
    (("https://lgc.example.fr/sih#a1b2/x/1", "https://lgc.example.fr/sih#a1b2"), "below=https://lgc.example.fr/sih",
     set()),
    (("https://lgc.example.fr/sih#a1b2/x/1", "https://lgc.example.fr/sih#a1b2"),
     "below=https://lgc.example.fr/sih#a1b2", {"c0", "c1"}),
    (("https://lgc.example.fr/sih", "https://lgc.example.fr/sih?v=1/2"), "above=https://lgc.example.fr/sih?v=1/2/3",
     {"c1"}),
    (("urn:uuid:1f5a2c1e/x/1", "urn:uuid:1f5a2c1e"), "below=urn:uuid:1f5a2c1e", {"c1"}),
    (("urn:uuid:1f5a2c1e/x/1", "urn:uuid:1f5a2c1e"), "above=urn:uuid:1f5a2c1e/x/1", {"c0"}),
], ids=["above-a-fragment", "a-fragment-is-not-a-segment", "below-a-fragment", "above-a-query", "below-a-urn",
        "above-a-urn"])
def test_above_and_below_agree(uris: tuple[str, ...], query: str, expected: set[str]) -> None:
    """``:above`` is ``:below`` the other way round: both cut at each ``/`` after the authority. ``:above``
    cut the path only, before ``?`` or ``#`` (``…/sih#a1b2`` was not above ``…/sih#a1b2/x/1``, yet
    ``…/sih#a1b2/x/1`` was below ``…/sih#a1b2``), and ``:below`` cut URNs at ``/``, ``:above`` did not.
    R4 search.html#uri: "the :above and :below modifiers only apply to URLs, and not URNs such as OIDs"."""
    resources = _instantiating(*uris)
    modifier, value = query.split("=", 1)
    search: Query = [(f"instantiates-uri:{modifier}", value)]
    [(found, _)] = engine_search(resources, "Communication", [search])
    assert found == oracle_search(resources, "Communication", search) == expected


# --- regressions: composite parts follow their own type's rules; choice elements in paths ----------

def _related(ident: str, *relations: tuple[str, str]) -> dict:
    return {"resourceType": "DocumentReference", "id": ident, "status": "current",
            "content": [{"attachment": {"contentType": "application/pdf"}}],
            **({"relatesTo": [{"code": c, "target": {"reference": t}} for c, t in relations]} if relations else {})}


RELATED = [_related("local", ("replaces", "DocumentReference/doc1"), ("signs", "DocumentReference/doc2")),
           _related("base", ("replaces", f"{LOCAL_BASE}/DocumentReference/doc1")),
           _related("foreign", ("replaces", f"{FOREIGN_BASE}/DocumentReference/doc1")),
           _related("versioned", ("replaces", "DocumentReference/doc1/_history/2")),
           _related("none")]


@pytest.mark.parametrize(("query", "expected"), [
    ([("relationship", "doc1$replaces")], {"local", "base", "versioned"}),
    ([("relationship", "DocumentReference/doc1$|replaces")], {"local", "base", "versioned"}),
    ([("relationship", f"{LOCAL_BASE}/DocumentReference/doc1$replaces")], {"local", "base", "versioned"}),
    ([("relationship", f"{FOREIGN_BASE}/DocumentReference/doc1$replaces")], {"foreign"}),
    ([("relationship", "DocumentReference/doc1/_history/2$replaces")], {"versioned"}),
    ([("relationship", "DocumentReference/doc1/_history/1$replaces")], set()),
    ([("relationship", "doc1$signs")], set()),  # each part matches, but in two different relatesTo
    ([("relationship", "doc1$appends,doc2$signs")], {"local"}),
    ([("relationship", f"doc1${RELATION_SYSTEM}|replaces")], set()),  # a code has no system
    ([("relationship:missing", "true")], {"none"}),
])
def test_composite_parts_follow_their_types(query: Query, expected: set[str]) -> None:
    """The reference part of ``relationship`` is a reference search: a document on another server is
    found by its URL only (its id named a local document, and its URL found nothing), and a version
    must be the reference's (it was ignored)."""
    [(found, unsupported)] = engine_search(RELATED, "DocumentReference", [query])
    assert (found, unsupported) == (expected, [])
    assert oracle_search(RELATED, "DocumentReference", query) == expected


def _consent(ident: str, **source: dict) -> dict:
    return {"resourceType": "Consent", "id": ident, "status": "active", "patient": {"reference": "Patient/p1"},
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}], **source}


CONSENTS = [_consent("reference", sourceReference={"reference": "DocumentReference/doc1"}),
            _consent("attachment", sourceAttachment={"url": f"{LOCAL_BASE}/Binary/1"}), _consent("none")]


@pytest.mark.parametrize(("query", "expected"), [
    ([("source-reference", "DocumentReference/doc1")], {"reference"}),
    ([("source-reference:missing", "false")], {"reference"}),
    ([("source-reference:missing", "true")], {"attachment", "none"}),
])
def test_a_path_through_a_choice_element(query: Query, expected: set[str]) -> None:
    """R4 ``source-reference`` is ``Consent.source``, a choice (``sourceReference`` or ``sourceAttachment``):
    the engine walked the key ``source`` and indexed nothing."""
    [(found, unsupported)] = engine_search(CONSENTS, "Consent", [query])
    assert (found, unsupported) == (expected, [])
    assert oracle_search(CONSENTS, "Consent", query) == expected


def test_a_reference_by_identifier_only_is_not_missing() -> None:
    patients = [{"resourceType": "Patient", "id": "p", "generalPractitioner": [
        {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000001"}}]}]
    query: Query = [("general-practitioner:missing", "true")]
    assert oracle_search(patients, "Patient", query) == set()
    [(found, _)] = engine_search(patients, "Patient", [query])
    assert found == set()

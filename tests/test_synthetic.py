"""Synthetic data must be valid FHIR R4, carry valid INS, and be reproducible from its seed."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.french.ins import OID_INS_NIR_TEST, is_luhn_valid, is_valid_ins, nir_key
from fhir_server.synthetic import demo_bundle, document_reference, ins_of, patients, tiny_pdf
from profiles.definitions import Context, child, required_valuesets, resource_context

SHARED = Path(__file__).resolve().parents[2] / "shared"
DV9_PATIENTS = SHARED / "data" / "test-data" / "dmp_dv9_test_patients.csv"


@pytest.fixture(scope="module")
def bundle() -> dict:
    return demo_bundle()


def _resources(bundle: dict, resource_type: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def _references(node: object) -> list[str]:
    """Every Reference.reference string anywhere in a JSON tree."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            found.append(node["reference"])
        for value in node.values():
            found.extend(_references(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_references(value))
    return found


def _has_empty(node: object) -> bool:
    """FHIR JSON forbids empty strings, arrays and objects."""
    if node in ("", [], {}):
        return True
    if isinstance(node, dict):
        return any(_has_empty(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_empty(v) for v in node)
    return False


# --- INS arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize("ins", ["279035121518989", "188102B17295165"])
def test_known_test_ins_are_valid(ins: str) -> None:
    assert is_valid_ins(ins)


def test_wrong_key_and_malformed_ins_are_rejected() -> None:
    assert not is_valid_ins("279035121518988")
    assert not is_valid_ins("27903512151898")
    assert not is_valid_ins("2790351215189890")
    assert not is_valid_ins("2790351215X8989")
    assert not is_valid_ins("188102C17295165")


def test_corsica_departments_are_substituted() -> None:
    assert nir_key("188102B172951") == "65"
    assert nir_key("188102B172951") == f"{97 - 1881018172951 % 97:02d}"
    assert nir_key("188102A172951") == f"{97 - 1881019172951 % 97:02d}"
    assert nir_key("188102a172951") == nir_key("188102A172951")


def test_key_is_zero_padded() -> None:
    nir = next(f"1800175115{n:03d}" for n in range(1000) if 97 - int(f"1800175115{n:03d}") % 97 < 10)
    assert len(nir_key(nir)) == 2 and nir_key(nir).startswith("0")


@pytest.mark.skipif(not DV9_PATIENTS.exists(), reason="shared DMP test patients not available")
def test_every_dmp_test_patient_ins_is_valid() -> None:
    with DV9_PATIENTS.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    invalid = [r["matricule_ins_nir"] for r in rows if not is_valid_ins(r["matricule_ins_nir"])]
    assert invalid == []


# --- demo bundle ----------------------------------------------------------------------------


def test_demo_bundle_shape(bundle: dict) -> None:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    counts: dict[str, int] = {}
    for e in bundle["entry"]:
        counts[e["resource"]["resourceType"]] = counts.get(e["resource"]["resourceType"], 0) + 1
        assert e["fullUrl"].startswith("urn:uuid:")
        assert e["request"] | {"ifNoneExist": None} == {
            "method": "POST",
            "url": e["resource"]["resourceType"],
            "ifNoneExist": None,
        }
    assert counts["Patient"] == 8 and counts["Practitioner"] == 4 and counts["Organization"] == 2
    assert counts["PractitionerRole"] == 4
    assert counts["DocumentReference"] == counts["Binary"] >= 8
    assert counts["Appointment"] >= 1 and counts["Communication"] >= 1
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


def test_demo_is_deterministic() -> None:
    assert json.dumps(demo_bundle(1)) == json.dumps(demo_bundle(1))
    assert json.dumps(demo_bundle(2)) != json.dumps(demo_bundle(1))


def test_demo_names_exercise_french_characters(bundle: dict) -> None:
    text = json.dumps(_resources(bundle, "Patient"), ensure_ascii=False)
    for fragment in ("Hélène", "François", "Zoë", "Œuvray"):
        assert fragment in text
    birth_codes = [
        ext["valueAddress"]["extension"][0]["valueCoding"]["code"]
        for p in _resources(bundle, "Patient")
        for ext in p["extension"]
        if ext["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
    ]
    assert len(birth_codes) == 8 and any(code[:2] in ("2A", "2B") for code in birth_codes)


def test_patients_have_valid_consistent_test_ins(bundle: dict) -> None:
    for patient, entry in zip(
        _resources(bundle, "Patient"),
        [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"],
        strict=True,
    ):
        ins = ins_of(patient)
        assert is_valid_ins(ins)
        assert ins[0] == ("2" if patient["gender"] == "female" else "1")
        assert ins[1:5] == patient["birthDate"][2:4] + patient["birthDate"][5:7]
        birthplace = next(x for x in patient["extension"] if x["url"].endswith("patient-birthPlace"))
        assert ins[5:10] == birthplace["valueAddress"]["extension"][0]["valueCoding"]["code"]
        assert {"system": "email", "value": f"{ins}@patient.mssante.fr", "use": "home"} in patient["telecom"]
        assert entry["request"]["ifNoneExist"] == f"identifier={OID_INS_NIR_TEST}|{ins}"
        reliability = next(x for x in patient["extension"] if x["url"].endswith("fr-core-identity-reliability"))
        assert reliability["extension"][0]["valueCoding"]["code"] == "VALI"


def test_professional_identifiers(bundle: dict) -> None:
    for practitioner in _resources(bundle, "Practitioner"):
        ids = {i["system"]: i["value"] for i in practitioner["identifier"]}
        rpps = ids["https://rpps.esante.gouv.fr"]
        assert len(rpps) == 11 and is_luhn_valid(rpps)
        assert ids["urn:oid:1.2.250.1.71.4.2.1"] == "8" + rpps
        assert practitioner["telecom"][0]["value"].endswith(".mssante.fr")
    professions = {p["qualification"][0]["code"]["coding"][0]["code"] for p in _resources(bundle, "Practitioner")}
    assert "40" in professions  # a dentist
    for organization in _resources(bundle, "Organization"):
        ids = {i["system"]: i["value"] for i in organization["identifier"]}
        finess = ids["https://finess.esante.gouv.fr"]
        assert len(finess) == 9 and is_luhn_valid(finess)
        assert ids["urn:oid:1.2.250.1.71.4.2.2"] == "1" + finess


def test_attachments_match_their_binaries(bundle: dict) -> None:
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    content_types = set()
    for doc in _resources(bundle, "DocumentReference"):
        attachment = doc["content"][0]["attachment"]
        binary = by_url[attachment["url"]]
        raw = base64.b64decode(binary["data"], validate=True)
        assert binary["resourceType"] == "Binary"
        assert binary["contentType"] == attachment["contentType"]
        assert attachment["size"] == len(raw)
        assert base64.b64decode(attachment["hash"]) == hashlib.sha1(raw).digest()
        if attachment["contentType"] == "application/pdf":
            assert raw.startswith(b"%PDF-") and raw.rstrip().endswith(b"%%EOF")
        else:
            assert "Compte rendu" in raw.decode("utf-8") or "Synthèse" in raw.decode("utf-8")
        content_types.add(attachment["contentType"])
        assert doc["subject"]["reference"] == binary["securityContext"]["reference"]
    assert content_types == {"text/plain", "application/pdf"}


def test_document_codes(bundle: dict) -> None:
    loinc = {d["type"]["coding"][0]["code"] for d in _resources(bundle, "DocumentReference")}
    assert {"11488-4", "34133-9", "34756-7"} <= loinc
    for doc in _resources(bundle, "DocumentReference"):
        assert doc["status"] == "current"
        assert doc["securityLabel"][0]["coding"][0]["code"] == "N"
        assert doc["category"][0]["coding"][0]["system"].endswith("TRE-A03-ClasseDocument")


def test_every_reference_resolves_within_the_bundle(bundle: dict) -> None:
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    references = _references(bundle) + [
        d["content"][0]["attachment"]["url"] for d in _resources(bundle, "DocumentReference")
    ]
    assert references
    for reference in references:
        assert reference.startswith("urn:uuid:") and reference in full_urls, reference


def test_timestamps_carry_paris_winter_offset(bundle: dict) -> None:
    for appointment in _resources(bundle, "Appointment"):
        assert appointment["status"] == "booked"
        assert appointment["start"].endswith("+01:00") and appointment["end"] > appointment["start"]
        assert {p["status"] for p in appointment["participant"]} == {"accepted"}
    for communication in _resources(bundle, "Communication"):
        assert communication["sent"].endswith("+01:00")
        assert communication["status"] == "completed"


def test_no_empty_values(bundle: dict) -> None:
    assert not _has_empty(bundle)


# --- FHIR validity --------------------------------------------------------------------------


def _validate(resource: dict) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_demo_resources_validate_against_fhir_models(bundle: dict) -> None:
    for e in bundle["entry"]:
        _validate(e["resource"])
    _validate(bundle)


def _bound_codes(node: dict, ctx: Context) -> list[tuple[str, str, str]]:
    """(path, required value set, code) for every coded primitive; unknown elements are reported as such."""
    found = []
    for name, value in node.items():
        if name == "resourceType":
            continue
        element = child(ctx, name)
        if element is None:
            found.append((f"{ctx.path}.{name}", "unknown element", ""))
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                inner = resource_context(item["resourceType"]) if element.fhir_type == "Resource" else element.context
                found.extend(_bound_codes(item, inner))
            elif element.required_valueset:
                found.append((element.path, element.required_valueset, item))
    return found


def test_codes_come_from_required_value_sets(bundle: dict) -> None:
    """fhir.resources checks structure only; the project's R4 tables know the required bindings."""
    valuesets = required_valuesets()
    resources = [bundle, *patients(20, seed=3), *(document_reference("Patient/1", s) for s in range(8))]
    bad = [
        hit
        for resource in resources
        for hit in _bound_codes(resource, resource_context(resource["resourceType"]))
        if hit[1] == "unknown element" or hit[2] not in valuesets.get(hit[1], {hit[2]})
    ]
    assert bad == []


def test_benchmark_helpers_validate() -> None:
    for patient in patients(20, seed=7):
        _validate(patient)
        assert not _has_empty(patient)
    for seed in range(20):
        doc = document_reference("Patient/123", seed, author_ref="Practitioner/9")
        _validate(doc)
        raw = base64.b64decode(doc["content"][0]["attachment"]["data"])
        assert doc["content"][0]["attachment"]["size"] == len(raw)
        assert base64.b64decode(doc["content"][0]["attachment"]["hash"]) == hashlib.sha1(raw).digest()


# --- benchmark helpers ----------------------------------------------------------------------


def test_patients_are_unique_valid_and_deterministic() -> None:
    generated = list(patients(500, seed=42))
    ins = [ins_of(p) for p in generated]
    assert len(set(ins)) == 500
    assert all(is_valid_ins(value) for value in ins)
    assert json.dumps(generated[:50]) == json.dumps(list(patients(50, seed=42)))


def test_document_references_are_distinct() -> None:
    docs = [document_reference("Patient/1", seed) for seed in range(200)]
    assert len({d["masterIdentifier"]["value"] for d in docs}) == 200
    assert document_reference("Patient/1", 5) == document_reference("Patient/1", 5)


def test_tiny_pdf_xref_offsets_point_at_objects() -> None:
    pdf = tiny_pdf(["Synthèse médicale", "Œdème (léger)"])
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref\n")
    rows = pdf[xref_at:].split(b"\n")[3:8]
    for number, row in enumerate(rows, start=1):
        offset = int(row[:10])
        assert pdf[offset:].startswith(b"%d 0 obj" % number)

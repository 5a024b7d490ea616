"""Write-time validation: one test per rule, plus cross-checks against fhir.resources (R4B models).

The French fixtures are realistic (INS test NIR, RPPS, FINESS, PDSm-like DocumentReference) so a
rule that is too strict for real French data shows up here before it shows up in production.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.core.errors import FhirError, Issue
from fhir_server.core.validation import MAX_ISSUES, validate_resource

SHARED = Path(__file__).resolve().parents[2] / "shared"
FRCORE = SHARED / "data" / "fhir" / "frcore"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'

INS_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"
RPPS = "https://rpps.esante.gouv.fr"
FINESS = "https://finess.esante.gouv.fr"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition"


def issues_of(resource: dict, expected_type: str | None = None) -> list[Issue]:
    """The issues the validator reports (empty when it accepts the resource)."""
    try:
        validate_resource(resource, expected_type)
    except FhirError as exc:
        assert exc.status == 400
        return exc.issues
    return []


def expressions(resource: dict, expected_type: str | None = None) -> list[str]:
    return [e for issue in issues_of(resource, expected_type) for e in issue.expression]


def assert_rejected_at(resource: dict, expression: str) -> None:
    found = expressions(resource)
    assert expression in found, f"expected an issue at {expression}, got {found}"


def r4b_accepts(resource: dict) -> bool:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(copy.deepcopy(resource))
    except Exception:  # pydantic.ValidationError and the model's own errors
        return False
    return True


# ------------------------------------------------------------------------------------------
# Realistic French resources.

def patient() -> dict:
    """A ~2 KB FR Core-style patient with INS (test NIR), identity reliability and birthplace."""
    return {
        "resourceType": "Patient",
        "id": "pat-ins-0001",
        "meta": {"versionId": "3", "lastUpdated": "2024-05-02T10:15:30.123+02:00",
                 "profile": [f"{FR_CORE}/fr-core-patient-ins"]},
        "text": {"status": "generated",
                 "div": f'<div {XHTML}><p>Jeanne <b>MARTIN</b>, née le 3 mars 1979 à Lyon&nbsp;(69)</p></div>'},
        "extension": [
            {"url": f"{FR_CORE}/fr-core-identity-reliability",
             "extension": [
                 {"url": "identityStatus",
                  "valueCoding": {"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445",
                                  "code": "QUAL", "display": "Identité qualifiée"}},
                 {"url": "validationDate", "valueDate": "2023-11-20"},
                 {"url": "validationMode",
                  "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R336-ModaliteValidationIdentite"
                                            "/FHIR/TRE-R336-ModaliteValidationIdentite",
                                  "code": "CN", "display": "Carte nationale d'identité"}}]},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
             "valueAddress": {"extension": [{"url": f"{FR_CORE}/fr-core-address-insee-code",
                                             "valueCoding": {"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-"
                                                                       "CommuneOM/FHIR/TRE-R13-CommuneOM",
                                                             "code": "69123"}}],
                              "city": "Lyon", "postalCode": "69001", "country": "FR"}},
        ],
        "identifier": [
            {"use": "official",
             "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
                                  "code": "INS-NIR-TEST"}]},
             "system": INS_NIR_TEST, "value": "279035121518989"},
            {"use": "usual", "system": "urn:oid:1.2.250.1.71.4.2.7.1", "value": "IPP-0042-77"},
        ],
        "active": True,
        "name": [
            {"use": "official", "family": "MARTIN", "given": ["Jeanne", "Marie"],
             "extension": [{"url": f"{FR_CORE}/fr-core-patient-birth-list-given-name",
                            "valueString": "Jeanne Marie Louise"}]},
            {"use": "usual", "family": "DUPONT", "given": ["Jeanne"]},
        ],
        "telecom": [
            {"system": "phone", "value": "+33 6 12 34 56 78", "use": "mobile", "rank": 1},
            {"system": "email", "value": "jeanne.martin@example.fr", "use": "home"},
        ],
        "gender": "female",
        "birthDate": "1979-03-03",
        "deceasedBoolean": False,
        "address": [{"use": "home", "type": "both", "line": ["12 rue de la République", "Bâtiment B"],
                     "city": "Lyon", "postalCode": "69002", "country": "FR",
                     "period": {"start": "2019-07-01"}}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                      "code": "M", "display": "Married"}]},
        "multipleBirthBoolean": False,
        "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                                   "code": "N"}]}],
                     "name": {"family": "MARTIN", "given": ["Paul"]},
                     "telecom": [{"system": "phone", "value": "+33 4 78 00 00 00"}]}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr-FR"}]},
                           "preferred": True}],
        "generalPractitioner": [{"reference": "Practitioner/rpps-10101201234", "display": "Dr Sophie LECLERC"}],
        "managingOrganization": {"reference": "Organization/finess-690000880"},
    }


def practitioner() -> dict:
    return {
        "resourceType": "Practitioner", "id": "rpps-10101201234",
        "identifier": [
            {"use": "official",
             "type": {"coding": [{"system": "http://interopsante.org/fhir/CodeSystem/fr-v2-0203", "code": "RPPS"}]},
             "system": RPPS, "value": "10101201234"},
            {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810101201234"},
        ],
        "active": True,
        "name": [{"use": "official", "family": "LECLERC", "given": ["Sophie"], "prefix": ["DR"]}],
        "telecom": [{"system": "email", "value": "sophie.leclerc@medecin.mssante.fr"}],
        "qualification": [{"code": {"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante"
                                                          "/FHIR/TRE-G15-ProfessionSante", "code": "10"}]}}],
    }


def organization() -> dict:
    return {
        "resourceType": "Organization", "id": "finess-690000880",
        "identifier": [{"system": FINESS, "value": "690000880"},
                       {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1690000880"}],
        "active": True,
        "type": [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/"
                                        "TRE-R66-CategorieEtablissement", "code": "355"}]}],
        "name": "Hospices Civils de Lyon",
        "address": [{"line": ["3 quai des Célestins"], "city": "Lyon", "postalCode": "69002", "country": "FR"}],
    }


def document_reference() -> dict:
    """A PDSm-comprehensive-like DocumentReference with contained author and local references."""
    return {
        "resourceType": "DocumentReference", "id": "doc-cr-2024-001",
        "contained": [{"resourceType": "Practitioner", "id": "author",
                       "identifier": [{"system": RPPS, "value": "10101201234"}],
                       "name": [{"family": "LECLERC", "given": ["Sophie"]}]}],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.213.1.4.8.99999.1"},
        "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]},
        "category": [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/"
                                            "TRE-A03-ClasseDocument", "code": "11", "display": "Synthèse"}]}],
        "subject": {"reference": "Patient/pat-ins-0001"},
        "date": "2024-05-02T09:00:00+02:00",
        "author": [{"reference": "#author"}],
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": "N", "display": "normal"}]}],
        "content": [{"attachment": {"contentType": "application/pdf", "language": "fr-FR",
                                    "url": "Binary/bin-cr-2024-001", "size": 48213,
                                    "hash": "A/hMRrv6Y15BjSM8kMLidrz+mHc=",
                                    "title": "Compte rendu de consultation", "creation": "2024-05-02T09:00:00+02:00"},
                     "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                                "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}}],
        "context": {"period": {"start": "2024-05-02T08:30:00+02:00"},
                    "practiceSetting": {"coding": [{"system": "http://snomed.info/sct", "code": "394802001"}]}},
    }


def appointment() -> dict:
    return {
        "resourceType": "Appointment", "id": "rdv-001", "status": "booked",
        "serviceType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "124"}]}],
        "description": "Consultation de suivi", "start": "2024-06-12T14:30:00+02:00",
        "end": "2024-06-12T14:45:00+02:00", "minutesDuration": 15,
        "participant": [
            {"actor": {"reference": "Patient/pat-ins-0001"}, "required": "required", "status": "accepted"},
            {"actor": {"reference": "Practitioner/rpps-10101201234"}, "status": "accepted",
             "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                   "code": "PPRF"}]}]},
        ],
    }


def communication() -> dict:
    return {
        "resourceType": "Communication", "id": "msg-001", "status": "completed",
        "subject": {"reference": "Patient/pat-ins-0001"},
        "sent": "2024-05-03T08:00:00Z",
        "recipient": [{"reference": "Patient/pat-ins-0001"}],
        "sender": {"reference": "Practitioner/rpps-10101201234"},
        "payload": [{"contentString": "Bonjour, vos résultats sont disponibles dans votre espace."},
                    {"contentReference": {"reference": "DocumentReference/doc-cr-2024-001"}}],
    }


def list_resource() -> dict:
    return {
        "resourceType": "List", "id": "lot-001", "status": "current", "mode": "working",
        "title": "Lot de soumission", "date": "2024-05-02T09:00:00+02:00",
        "subject": {"reference": "Patient/pat-ins-0001"},
        "entry": [{"item": {"reference": "DocumentReference/doc-cr-2024-001"}}],
    }


def consent() -> dict:
    return {
        "resourceType": "Consent", "id": "consent-001", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/pat-ins-0001"}, "dateTime": "2024-05-01T12:00:00+02:00",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "deny",
                      "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                                                      "code": "PROV"}]},
                                 "reference": {"reference": "Practitioner/rpps-10101201234"}}]},
    }


def provenance() -> dict:
    return {
        "resourceType": "Provenance", "id": "prov-001",
        "target": [{"reference": "DocumentReference/doc-cr-2024-001"}],
        "recorded": "2024-05-02T09:00:01.250+02:00",
        "agent": [{"who": {"reference": "Practitioner/rpps-10101201234"}}],
    }


def audit_event() -> dict:
    return {
        "resourceType": "AuditEvent", "id": "audit-001",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "create"}],
        "action": "C", "recorded": "2024-05-02T09:00:01.250+02:00", "outcome": "0",
        "agent": [{"who": {"reference": "Practitioner/rpps-10101201234"}, "requestor": True}],
        "source": {"observer": {"display": "MES interop"}},
        "entity": [{"what": {"reference": "DocumentReference/doc-cr-2024-001"}}],
    }


def binary() -> dict:
    return {"resourceType": "Binary", "id": "bin-cr-2024-001", "contentType": "application/pdf",
            "data": "JVBERi0xLjQKJcOkw7zDtsOfCg=="}


VALID = [patient, practitioner, organization, document_reference, appointment, communication, list_resource,
         consent, provenance, audit_event, binary]


@pytest.mark.parametrize("make", VALID, ids=lambda f: f.__name__)
def test_realistic_french_resources_are_accepted_by_both(make):
    resource = make()
    assert issues_of(resource) == []
    assert issues_of(resource, resource["resourceType"]) == []
    assert r4b_accepts(resource)


def test_validation_does_not_modify_the_resource():
    resource = patient()
    validate_resource(resource)
    assert resource == patient()


# ------------------------------------------------------------------------------------------
# Cross-check: what fhir.resources (R4B) rejects, we reject too.

def _with(make, **changes) -> dict:
    resource = make()
    resource.update(changes)
    return resource


def _without(make, *names) -> dict:
    resource = make()
    for name in names:
        del resource[name]
    return resource


R4B_INVALID = {
    "unknown field": _with(patient, nickname="Jeannot"),
    "unknown nested field": _with(patient, name=[{"family": "MARTIN", "surname": "X"}]),
    "object where a list is expected": _with(patient, name={"family": "MARTIN"}),
    "list where an object is expected": _with(patient, maritalStatus=[{"text": "Mariée"}]),
    "empty string": _with(patient, name=[{"family": ""}]),
    "birthDate not a date": _with(patient, birthDate="03/03/1979"),
    "birthDate not a real day": _with(patient, birthDate="2023-02-30"),
    "two deceased[x] types": _with(patient, deceasedDateTime="2020-01-01"),
    "extension without url": _with(patient, extension=[{"valueString": "x"}]),
    "DocumentReference without status": _without(document_reference, "status"),
    "DocumentReference without content": _without(document_reference, "content"),
    "Appointment without participant": _without(appointment, "participant"),
    "Bundle without type": {"resourceType": "Bundle", "id": "b1"},
    "Binary without contentType": _without(binary, "contentType"),
    "Provenance without target": _without(provenance, "target"),
    "AuditEvent without type": _without(audit_event, "type"),
    "quantity value not a number": {"resourceType": "Observation", "status": "final", "code": {"text": "Poids"},
                                    "valueQuantity": {"value": "soixante", "unit": "kg"}},
    "telecom rank not an integer": _with(patient, telecom=[{"system": "phone", "value": "0600", "rank": "un"}]),
    "reference not an object": _with(communication, subject="Patient/pat-ins-0001"),
}


@pytest.mark.parametrize("resource", R4B_INVALID.values(), ids=list(R4B_INVALID))
def test_what_fhir_resources_rejects_we_reject(resource):
    assert not r4b_accepts(resource), "the corpus must hold only resources fhir.resources rejects"
    assert issues_of(resource), "our validator accepted it"


# ------------------------------------------------------------------------------------------
# 1. resourceType

def test_resource_type_missing():
    assert_rejected_at({"id": "x"}, "Resource.resourceType")


def test_resource_type_unknown_or_abstract():
    assert_rejected_at({"resourceType": "Patients"}, "Resource.resourceType")
    assert_rejected_at({"resourceType": "DomainResource"}, "Resource.resourceType")


def test_resource_type_must_match_expected():
    assert expressions(patient(), "Practitioner") == ["Patient.resourceType"]
    assert expressions({"id": "x"}, "Patient") == ["Patient.resourceType"]


def test_not_an_object():
    with pytest.raises(FhirError) as exc:
        validate_resource([patient()])  # type: ignore[arg-type]
    assert exc.value.status == 400


def test_error_shape():
    with pytest.raises(FhirError) as exc:
        validate_resource(_with(patient, active="yes", gender="mal"))
    err = exc.value
    assert err.status == 400
    assert {tuple(i.expression) for i in err.issues} == {("Patient.active",), ("Patient.gender",)}
    outcome = err.outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert all(i["severity"] == "error" for i in outcome["issue"])
    assert "1 more issue" in str(err)


# ------------------------------------------------------------------------------------------
# 2. unknown properties, primitive extensions

def test_unknown_property_has_its_path():
    resource = patient()
    resource["contact"][0]["name"]["nickname"] = "Polo"
    assert expressions(resource) == ["Patient.contact[0].name.nickname"]


def test_long_unknown_property_name_truncated():
    [found] = expressions(_with(patient, **{"x" * 5000: 1}))
    assert found.startswith("Patient.xxx") and len(found) < 100


def test_resource_type_only_allowed_at_resource_root():
    assert_rejected_at(_with(patient, name=[{"resourceType": "HumanName", "family": "X"}]),
                       "Patient.name[0].resourceType")


def test_primitive_extension_sibling_accepted():
    resource = _with(patient, _birthDate={"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/"
                                                                "patient-birthTime",
                                                         "valueDateTime": "1979-03-03T04:05:00+01:00"}]})
    assert issues_of(resource) == []


def test_primitive_extension_without_value():
    resource = _without(patient, "gender")
    resource["_gender"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                          "valueCode": "unknown"}]}
    assert issues_of(resource) == []


def test_primitive_extension_on_unknown_or_complex_element_refused():
    assert_rejected_at(_with(patient, _nickname={"id": "a"}), "Patient._nickname")
    assert_rejected_at(_with(patient, _maritalStatus={"extension": []}), "Patient._maritalStatus")


def test_parallel_primitive_arrays():
    ext = {"extension": [{"url": "http://example.org/syllables", "valueInteger": 2}]}
    ok = _with(patient, name=[{"family": "MARTIN", "given": ["Jeanne", None], "_given": [None, ext]}])
    assert issues_of(ok) == []
    both_null = _with(patient, name=[{"family": "MARTIN", "given": ["Jeanne", None], "_given": [ext, None]}])
    assert set(expressions(both_null)) == {"Patient.name[0].given[1]", "Patient.name[0]._given[1]"}
    short = _with(patient, name=[{"family": "MARTIN", "given": ["Jeanne", "Marie"], "_given": [ext]}])
    assert_rejected_at(short, "Patient.name[0]._given")


# ------------------------------------------------------------------------------------------
# 3. cardinality

def test_list_where_single_expected():
    assert_rejected_at(_with(patient, gender=["female"]), "Patient.gender")


def test_single_where_list_expected():
    assert_rejected_at(_with(patient, identifier={"system": INS_NIR_TEST, "value": "279035121518989"}),
                       "Patient.identifier")
    resource = patient()
    resource["name"][0]["given"] = "Jeanne"
    assert_rejected_at(resource, "Patient.name[0].given")


@pytest.mark.parametrize(("make", "element"), [
    (document_reference, "status"), (document_reference, "content"), (appointment, "status"),
    (appointment, "participant"), (communication, "status"), (consent, "status"), (consent, "scope"),
    (provenance, "target"), (provenance, "recorded"), (audit_event, "type"), (audit_event, "source"),
    (list_resource, "status"), (list_resource, "mode"), (binary, "contentType"),
])
def test_mandatory_elements(make, element):
    resource = _without(make, element)
    assert expressions(resource) == [f"{resource['resourceType']}.{element}"]


def test_mandatory_nested_elements():
    resource = document_reference()
    del resource["content"][0]["attachment"]
    assert expressions(resource) == ["DocumentReference.content[0].attachment"]
    resource = appointment()
    del resource["participant"][1]["status"]
    assert expressions(resource) == ["Appointment.participant[1].status"]
    assert expressions({"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"url": "Patient"}}]}) \
        == ["Bundle.entry[0].request.method"]


def test_mandatory_choice_element():
    resource = communication()
    resource["payload"] = [{"id": "p1", "extension": [{"url": "http://example.org/x", "valueString": "y"}]}]
    assert expressions(resource) == ["Communication.payload[0].content[x]"]


def test_mandatory_primitive_may_be_only_an_extension():
    resource = _without(appointment, "status")
    resource["_status"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                          "valueCode": "unknown"}]}
    assert issues_of(resource) == []


def test_extension_url_mandatory():
    assert_rejected_at(_with(patient, extension=[{"valueString": "x"}]), "Patient.extension[0].url")


# ------------------------------------------------------------------------------------------
# 4. no empty or null values

def test_empty_array_refused():
    assert expressions(_with(patient, name=[])) == ["Patient.name"]


def test_empty_object_refused():
    assert expressions(_with(patient, maritalStatus={})) == ["Patient.maritalStatus"]
    assert_rejected_at(_with(patient, name=[{}]), "Patient.name[0]")


def test_empty_string_refused():
    assert expressions(_with(patient, name=[{"family": ""}])) == ["Patient.name[0].family"]


def test_null_refused():
    assert expressions(_with(patient, gender=None)) == ["Patient.gender"]
    assert expressions(_with(patient, name=[None])) == ["Patient.name[0]"]
    resource = patient()
    resource["name"][0]["given"] = ["Jeanne", None]
    assert expressions(resource) == ["Patient.name[0].given[1]"]


def test_element_with_only_an_id_refused():
    assert_rejected_at(_with(patient, maritalStatus={"id": "m1"}), "Patient.maritalStatus")


# ------------------------------------------------------------------------------------------
# 5. primitive types

@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None])
def test_boolean_must_be_json_boolean(value):
    assert expressions(_with(patient, active=value)) == ["Patient.active"]


@pytest.mark.parametrize("value", [True, Decimal("2.0"), Decimal("2"), "2", 2**31, -(2**31) - 1])
def test_integer_type_and_range(value):
    assert expressions(_with(_without_multiple, multipleBirthInteger=value)) == ["Patient.multipleBirthInteger"]


def _without_multiple() -> dict:
    return _without(patient, "multipleBirthBoolean")


def test_integer_accepts_range_ends():
    for value in (2**31 - 1, -(2**31), 0):
        assert issues_of(_with(_without_multiple, multipleBirthInteger=value)) == []


def test_positive_and_unsigned_int():
    resource = patient()
    resource["telecom"][0]["rank"] = 0
    assert expressions(resource) == ["Patient.telecom[0].rank"]  # positiveInt
    resource = document_reference()
    resource["content"][0]["attachment"]["size"] = -1
    assert expressions(resource) == ["DocumentReference.content[0].attachment.size"]  # unsignedInt
    resource["content"][0]["attachment"]["size"] = 0
    assert issues_of(resource) == []


def _observation(quantity_value) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "Poids"},
            "valueQuantity": {"value": quantity_value, "unit": "kg", "system": "http://unitsofmeasure.org",
                              "code": "kg"}}


@pytest.mark.parametrize("value", [Decimal("1.50"), Decimal("72.0"), 72, Decimal("-0.5"), Decimal("1E+3")])
def test_decimal_accepted(value):
    assert issues_of(_observation(value)) == []


@pytest.mark.parametrize("value", ["72.5", True, Decimal("NaN"), Decimal("Infinity"), 72.5])
def test_decimal_refused(value):
    assert expressions(_observation(value)) == ["Observation.valueQuantity.value"]


def test_strings_must_be_strings():
    assert expressions(_with(patient, name=[{"family": 12}])) == ["Patient.name[0].family"]
    assert expressions(_with(patient, birthDate=19790303)) == ["Patient.birthDate"]


def test_string_control_characters_and_size():
    assert expressions(_with(patient, name=[{"family": "MAR\x00TIN"}])) == ["Patient.name[0].family"]
    assert expressions(_with(patient, name=[{"text": "x" * (1024 * 1024 + 1)}])) == ["Patient.name[0].text"]
    assert issues_of(_with(patient, name=[{"family": "MARTIN\u00a0DUPONT", "text": "ligne 1\nligne 2"}])) == []


@pytest.mark.parametrize("value", ["1979", "1979-03", "1979-03-03", "2024-02-29", "2000-02-29"])
def test_dates_accepted(value):
    assert issues_of(_with(patient, birthDate=value)) == []


@pytest.mark.parametrize("value", ["1979-3-3", "79-03-03", "1979-03-03T10:00:00Z", "2023-02-30", "2023-02-29",
                                   "1900-02-29", "2024-04-31", "2024-13-01", "0000-01-01", " 1979-03-03"])
def test_dates_refused(value):
    assert expressions(_with(patient, birthDate=value)) == ["Patient.birthDate"]


@pytest.mark.parametrize("value", ["2024", "2024-05", "2024-05-02", "2024-05-02T10:15:30Z",
                                   "2024-05-02T10:15:30.123+02:00", "2024-05-02T10:15:30-14:00",
                                   "2016-12-31T23:59:60Z"])
def test_datetimes_accepted(value):
    resource = _with(_without_deceased, deceasedDateTime=value)
    assert issues_of(resource) == []


def _without_deceased() -> dict:
    return _without(patient, "deceasedBoolean")


@pytest.mark.parametrize("value", ["2024-05-02T10:15:30", "2024-05-02T10:15Z", "2024-05-02T25:00:00Z",
                                   "2024-05-02 10:15:30Z", "2024-02-30T10:00:00Z", "2024-05-02T10:15:30+15:00"])
def test_datetimes_refused(value):
    assert expressions(_with(_without_deceased, deceasedDateTime=value)) == ["Patient.deceasedDateTime"]


@pytest.mark.parametrize(("value", "ok"), [
    ("2024-05-02T10:15:30Z", True), ("2024-05-02T10:15:30.5+01:00", True), ("2024-05-02T10:15:30", False),
    ("2024-05-02T10:15Z", False), ("2024-05-02", False),
])
def test_instant(value, ok):
    resource = _with(patient, meta={"lastUpdated": value})
    assert (issues_of(resource) == []) is ok


@pytest.mark.parametrize(("value", "ok"), [("09:30:00", True), ("23:59:59.5", True), ("9:30", False),
                                           ("24:00:00", False), ("09:30", False)])
def test_time(value, ok):
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "Heure"}, "valueTime": value}
    assert (issues_of(resource) == []) is ok


@pytest.mark.parametrize("value", [" male", "male ", "ma  le", "\tmale"])
def test_code_whitespace_refused(value):
    assert expressions(_with(patient, gender=value)) == ["Patient.gender"]


@pytest.mark.parametrize(("value", "ok"), [
    ("urn:oid:1.2.250.1.213.1.4.10", True), (RPPS, True), ("http://exemple.fr/a b", False),
])
def test_uri(value, ok):
    resource = _with(patient, identifier=[{"system": value, "value": "1"}])
    assert (issues_of(resource) == []) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("urn:oid:1.2.250.1.213.1.4.10", True), ("urn:oid:1.2.250.01", False), ("1.2.250.1", False),
    ("urn:oid:3.1", False),
])
def test_oid(value, ok):
    resource = _with(patient, extension=[{"url": "http://example.org/oid", "valueOid": value}])
    assert (issues_of(resource) == []) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("urn:uuid:c757873d-ec9a-4326-a141-556f43239520", True), ("c757873d-ec9a-4326-a141-556f43239520", False),
    ("urn:uuid:C757873D-EC9A-4326-A141-556F43239520", False),
])
def test_uuid(value, ok):
    resource = _with(patient, extension=[{"url": "http://example.org/uuid", "valueUuid": value}])
    assert (issues_of(resource) == []) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("JVBERi0xLjQK", True), ("JVBE Ri0x\nLjQK", True), ("JVBERi0xLjQ=", True), ("JVBERi0xLjQ", False),
    ("JVBERi0*LjQK", False), ("=JVBERi0xLjQ", False),
])
def test_base64(value, ok):
    assert (issues_of(_with(binary, data=value)) == []) is ok


def test_markdown_and_canonical():
    resource = {"resourceType": "Questionnaire", "status": "draft", "description": "**Suivi** post-opératoire",
                "derivedFrom": ["http://example.org/Questionnaire/base|1.0"]}
    assert issues_of(resource) == []
    resource["derivedFrom"] = ["http://example.org/Questionnaire/ base"]
    assert expressions(resource) == ["Questionnaire.derivedFrom[0]"]


# ------------------------------------------------------------------------------------------
# 6. choice types

def test_one_choice_variant_only():
    assert expressions(_with(patient, deceasedDateTime="2024-01-01")) == ["Patient.deceasedDateTime"]


def test_choice_variant_with_its_primitive_extension_is_one_variant():
    resource = _with(patient, _deceasedBoolean={"id": "d1", "extension": [{"url": "http://example.org/x",
                                                                            "valueString": "y"}]})
    assert issues_of(resource) == []


def test_unknown_choice_variant():
    assert expressions(_with(_without_deceased, deceasedString="oui")) == ["Patient.deceasedString"]


# ------------------------------------------------------------------------------------------
# 7. required bindings

def test_code_not_in_required_valueset():
    assert expressions(_with(patient, gender="mal")) == ["Patient.gender"]
    assert issues_of(_with(patient, gender="unknown")) == []


def test_nested_code_binding():
    resource = patient()
    resource["name"][0]["use"] = "officiel"
    resource["telecom"][0]["system"] = "fax-machine"
    assert expressions(resource) == ["Patient.name[0].use", "Patient.telecom[0].system"]


def test_codeable_concept_required_binding():
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    resource = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"},
                "clinicalStatus": {"coding": [{"system": system, "code": "active"}]}}
    assert issues_of(resource) == []
    resource["clinicalStatus"]["coding"].append({"code": "en-cours"})
    assert expressions(resource) == ["Condition.clinicalStatus.coding[1].code"]
    # a coding from another system (a translation) is not judged against the value set
    resource["clinicalStatus"]["coding"][1] = {"system": "https://mos.esante.gouv.fr/x", "code": "en-cours"}
    assert issues_of(resource) == []


def test_unexpandable_valueset_is_skipped():
    # Attachment.contentType is bound (required) to mimetypes, which needs a terminology server
    resource = document_reference()
    resource["content"][0]["attachment"]["contentType"] = "application/x-hl7-cda+xml"
    assert issues_of(resource) == []


# ------------------------------------------------------------------------------------------
# 8. contained resources and Bundle entries

def test_contained_validated_with_its_own_type():
    resource = document_reference()
    author = resource["contained"][0]
    author["qualification"] = practitioner()["qualification"]  # a Practitioner element: fine here
    assert issues_of(resource) == []
    author["identifier"][0]["system"] = "urn:oid:1.2.250. 1"
    author["maritalStatus"] = {"text": "Mariée"}  # a Patient element, not a Practitioner one
    author["gender"] = "homme"
    assert expressions(resource) == ["DocumentReference.contained[0].identifier[0].system",
                                     "DocumentReference.contained[0].maritalStatus",
                                     "DocumentReference.contained[0].gender"]


def test_contained_unknown_property_path():
    resource = patient()
    resource["contained"] = [{"resourceType": "Organization", "id": "o1", "name": "HCL", "foo": 1}]
    assert expressions(resource) == ["Patient.contained[0].foo"]


def test_contained_must_have_id_and_not_nest():
    resource = document_reference()
    del resource["contained"][0]["id"]
    resource["author"] = [{"reference": "Practitioner/rpps-10101201234"}]
    assert expressions(resource) == ["DocumentReference.contained[0].id"]
    resource = document_reference()
    resource["contained"][0]["contained"] = [{"resourceType": "Organization", "id": "o", "name": "HCL"}]
    assert "DocumentReference.contained[0].contained" in expressions(resource)


def test_contained_bad_resource_type():
    resource = _with(patient, contained=[{"id": "x", "name": "HCL"}])
    assert expressions(resource) == ["Patient.contained[0].resourceType"]


def test_local_reference_must_match_contained():
    resource = document_reference()
    resource["author"] = [{"reference": "#someone-else"}]
    assert expressions(resource) == ["DocumentReference.author[0].reference"]


def test_bundle_entries_validated():
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "resource": patient(),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": _with(appointment, status="confirmée"), "request": {"method": "POST", "url": "Appointment"}},
    ]}
    assert expressions(bundle) == ["Bundle.entry[1].resource.status"]
    bundle["entry"][1]["resource"] = appointment()
    assert issues_of(bundle) == []
    bundle["entry"][0]["request"]["method"] = "FETCH"
    assert expressions(bundle) == ["Bundle.entry[0].request.method"]


# ------------------------------------------------------------------------------------------
# 9. narrative

def _narrative(div) -> dict:
    return _with(patient, text={"status": "generated", "div": div})


@pytest.mark.parametrize("div", [
    f"<div {XHTML}>Jeanne MARTIN</div>",
    f'<div {XHTML} xml:lang="fr" lang="fr"><p class="x" style="color: red">é&eacute;&amp;&#233;</p></div>',
    f'<div {XHTML}><a href="https://esante.gouv.fr">lien</a><img src="#p" alt="x"/></div>',
])
def test_narrative_accepted(div):
    assert issues_of(_narrative(div)) == []


@pytest.mark.parametrize("div", [
    "<p>Jeanne</p>",
    "<div>Jeanne MARTIN</div>",
    f"<div {XHTML}><script>alert(1)</script>x</div>",
    f"<div {XHTML}><SCRIPT>alert(1)</SCRIPT>x</div>",
    f'<div {XHTML}><p onclick="alert(1)">x</p></div>',
    f'<div {XHTML}><a href="javascript:alert(1)">x</a></div>',
    f'<div {XHTML}><a href="jav&#x61;script:alert(1)">x</a></div>',
    f'<div {XHTML}><a href="VBScript:msgbox(1)">x</a></div>',
    f'<div {XHTML}><iframe src="https://evil.example"/>x</div>',
    f"<div {XHTML}><p>unclosed</div>",
    f"<div {XHTML}>   </div>",
    f"<div {XHTML}>&bogus;</div>",
    f'<!DOCTYPE div [<!ENTITY x "y">]><div {XHTML}>&x;</div>',
    123,
])
def test_narrative_refused(div):
    assert expressions(_narrative(div)) == ["Patient.text.div"]


def test_narrative_status_mandatory():
    assert expressions(_with(patient, text={"div": f"<div {XHTML}>x</div>"})) == ["Patient.text.status"]


# ------------------------------------------------------------------------------------------
# 10. resource id

@pytest.mark.parametrize(("value", "ok"), [
    ("a" * 64, True), ("a" * 65, False), ("pat.ins-0001", True), ("pat_0001", False), ("pat/1", False),
    ("", False), (12, False),
])
def test_resource_id(value, ok):
    found = expressions(_with(patient, id=value))
    assert found == ([] if ok else ["Patient.id"])


# ------------------------------------------------------------------------------------------
# 11. extensions (ext-1)

def test_extension_needs_value_or_extensions_not_both():
    both = {"url": "http://example.org/x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}
    assert expressions(_with(patient, extension=[both])) == ["Patient.extension[0]"]
    neither = {"url": "http://example.org/x"}
    assert expressions(_with(patient, extension=[neither])) == ["Patient.extension[0]"]


def test_modifier_extension_checked_too():
    resource = _with(patient, modifierExtension=[{"url": "http://example.org/x"}])
    assert expressions(resource) == ["Patient.modifierExtension[0]"]


def test_extension_value_validated_with_its_type():
    resource = _with(patient, extension=[{"url": "http://example.org/x", "valueDate": "2023-02-30"}])
    assert expressions(resource) == ["Patient.extension[0].valueDate"]
    resource = _with(patient, extension=[{"url": "http://example.org/x", "valueString": "a", "valueCode": "b"}])
    assert expressions(resource) == ["Patient.extension[0].valueCode"]


# ------------------------------------------------------------------------------------------
# 12. references

def test_reference_string_not_empty():
    resource = patient()
    resource["managingOrganization"] = {"reference": ""}
    assert expressions(resource) == ["Patient.managingOrganization.reference"]


def test_reference_forms_accepted():
    resource = patient()
    resource["generalPractitioner"] = [
        {"reference": "Practitioner/rpps-10101201234"},
        {"reference": "https://annuaire.sante.fr/fhir/Practitioner/003-1234"},
        {"reference": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
        {"identifier": {"system": RPPS, "value": "10101201234"}, "display": "Dr Sophie LECLERC"},
    ]
    assert issues_of(resource) == []


# ------------------------------------------------------------------------------------------
# Several problems at once, and the issue cap.

def test_all_issues_reported_together():
    resource = _with(patient, active="yes", gender="mal", name=[], id="x" * 65)
    resource["telecom"][0]["rank"] = 0
    assert sorted(expressions(resource)) == ["Patient.active", "Patient.gender", "Patient.id", "Patient.name",
                                             "Patient.telecom[0].rank"]


def test_issue_count_capped():
    resource = _with(patient, name=[{"family": ""} for _ in range(500)])
    assert len(issues_of(resource)) == MAX_ISSUES


# ------------------------------------------------------------------------------------------
# FR Core published examples (shared data, when present).

FRCORE_EXAMPLES = ["2.2.0_Patient-FRCorePatientExample.json", "2.2.0_Practitioner-FRCorePractitionerExample.json",
                   "2.2.0_Appointment-FRCoreAppointmentExample.json"]


@pytest.mark.skipif(not FRCORE.is_dir(), reason="shared FR Core examples not available")
@pytest.mark.parametrize("name", FRCORE_EXAMPLES)
def test_frcore_examples_accepted(name):
    """Published FR Core 2.2.0 examples are valid R4 (profiles themselves are not checked here)."""
    path = FRCORE / name
    if not path.exists():
        pytest.skip(f"{name} not in shared data")
    resource = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    assert issues_of(resource) == []


PDSM4DMP = SHARED / "data" / "fhir" / "pdsm4dmp"


@pytest.mark.skipif(not PDSM4DMP.is_dir(), reason="shared PDSm examples not available")
def test_pdsm_examples_accepted():
    """DocumentReference and Bundle examples of the DMP PDSm guide (contained authors, local refs)."""
    for path in sorted(PDSM4DMP.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        assert issues_of(resource) == [], path.name

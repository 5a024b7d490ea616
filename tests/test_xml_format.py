"""FHIR XML codec: lossless round trips with JSON, R4 XML rules, and hardened parsing."""

from __future__ import annotations

import copy
import tarfile
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from fhir_server.core.errors import FhirError
from fhir_server.formats.json import loads
from fhir_server.formats.xml import dump_resource, parse_resource

F = "{http://hl7.org/fhir}"
H = "{http://www.w3.org/1999/xhtml}"
NS = {"f": "http://hl7.org/fhir", "h": "http://www.w3.org/1999/xhtml"}
SHARED = Path(__file__).resolve().parents[2] / "shared"
R4_PACKAGE = SHARED / "data" / "fhir" / "r4" / "hl7.fhir.r4.core-4.0.1.tgz"
INS_OID = "urn:oid:1.2.250.1.213.1.4.10"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Jean <b>Dupont</b>, né le 01/03/1979</p><br/></div>'


def _patient() -> dict:
    return {
        "resourceType": "Patient",
        "id": "ins-279035121518989",
        "meta": {"versionId": "3", "lastUpdated": "2024-05-02T10:15:00.000+02:00",
                 "profile": ["https://interop.esante.gouv.fr/ig/fhir/ins/StructureDefinition/FrPatientINS"]},
        "text": {"status": "generated", "div": DIV},
        "contained": [{"resourceType": "Practitioner", "id": "mt",
                       "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810002673899"}],
                       "name": [{"family": "Martin", "given": ["Claire"], "prefix": ["Dr"]}]}],
        "extension": [
            {"url": BIRTH_PLACE, "valueAddress": {"city": "Lyon", "postalCode": "69003", "country": "FR"}},
            {"url": "https://interop.esante.gouv.fr/ig/fhir/ins/StructureDefinition/ins-identity-reliability",
             "extension": [
                 {"url": "identityReliability", "valueCoding": {
                     "system": "https://mos.esante.gouv.fr/NOS/TRE_R323-NiveauIdentification/FHIR", "code": "VALI"}},
                 {"url": "validationDate", "valueDate": "2024-01-15"},
                 {"url": "score", "valueDecimal": Decimal("1.50")},
             ]},
        ],
        "identifier": [
            {"use": "official",
             "type": {"coding": [{"system": "http://interopsante.org/CodeSystem/v2-0203", "code": "INS-NIR"}]},
             "system": INS_OID, "value": "279035121518989"},
        ],
        "active": True,
        "name": [
            {"id": "birth", "use": "official", "family": "Dupont",
             "given": ["Jean", None, "Pierre"],
             "_given": [None, {"extension": [{"url": "http://example.org/rang", "valueInteger": 2}]},
                        {"id": "g3"}]},
            {"use": "usual", "family": "Dupont-Lefèvre", "given": ["Jean"]},
        ],
        "telecom": [{"system": "email", "value": "jean.dupont@patient.mssante.fr", "rank": 1}],
        "gender": "male",
        "birthDate": "1979-03-01",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1979-03-01T08:30:00+01:00"}]},
        "deceasedBoolean": False,
        "address": [{"line": ["12 rue de la République", "Bâtiment B"], "city": "Lyon", "postalCode": "69002"}],
        "multipleBirthInteger": 1,
        "contact": [{"relationship": [{"text": "épouse"}], "name": {"family": "Dupont", "given": ["Marie"]}}],
        "generalPractitioner": [{"reference": "#mt"}],
    }


def _document_reference() -> dict:
    return {
        "resourceType": "DocumentReference",
        "id": "cr-bio-1",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.250.1.213.1.1.9.42"},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2", "display": "CR d'examens biologiques"}]},
        "category": [{"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.1", "code": "10"}]}],
        "subject": {"reference": "Patient/ins-279035121518989",
                    "identifier": {"system": INS_OID, "value": "279035121518989"}},
        "date": "2024-05-02T10:15:00+02:00",
        "author": [{"reference": "Practitioner/mt", "display": "Dr Claire Martin"}],
        "description": "Bilan sanguin\nligne 2\tavec tabulation",
        "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                       "code": "N"}]}],
        "content": [{"attachment": {"contentType": "application/pdf", "language": "fr-FR",
                                    "data": "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoK", "size": 26,
                                    "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "title": "CR biologie",
                                    "creation": "2024-05-02T09:00:00+02:00"},
                     "format": {"system": "urn:oid:1.3.6.1.4.1.19376.1.2.3",
                                "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}}],
        "context": {"period": {"start": "2024-05-01", "end": "2024-05-02"},
                    "facilityType": {"coding": [{"system": "urn:oid:1.2.250.1.213.1.1.4.9", "code": "SA07"}]}},
    }


def _appointment() -> dict:
    return {
        "resourceType": "Appointment",
        "id": "rdv-1",
        "status": "booked",
        "serviceType": [{"coding": [{"system": "urn:oid:1.2.250.1.213.2.5", "code": "SM26"}]}],
        "description": "Consultation de suivi",
        "start": "2024-06-10T09:00:00+02:00",
        "end": "2024-06-10T09:20:00+02:00",
        "minutesDuration": 20,
        "participant": [
            {"actor": {"reference": "Patient/ins-279035121518989"}, "required": "required", "status": "accepted"},
            {"type": [{"text": "médecin"}], "actor": {"reference": "Practitioner/mt"}, "status": "accepted"},
        ],
    }


def _transaction() -> dict:
    return {
        "resourceType": "Bundle",
        "id": "tx-1",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6c1b1d6e-3f2a-4c44-9d3c-1f0b2a7e9a01", "resource": _patient(),
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={INS_OID}|279035121518989"}},
            {"fullUrl": "urn:uuid:0a9d3c55-2b7f-4a55-8e0c-7f6b1c2d3e04", "resource": _appointment(),
             "request": {"method": "POST", "url": "Appointment"}},
            {"search": {"mode": "match", "score": Decimal("1.50")},
             "request": {"method": "DELETE", "url": "Appointment/old"}},
        ],
    }


def _transaction_response() -> dict:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "information", "code": "informational", "diagnostics": "créé"}]}
    return {"resourceType": "Bundle", "type": "transaction-response",
            "link": [{"relation": "self", "url": "https://mes.example.org/fhir"}],
            "entry": [{"link": [{"relation": "alternate", "url": "Patient/1"}],
                       "response": {"status": "201 Created", "location": "Patient/1/_history/1",
                                    "etag": 'W/"1"', "outcome": outcome}}]}


def _parameters() -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "resource": _patient()},
            {"name": "poids", "valueQuantity": {"value": Decimal("72.50"), "unit": "kg",
                                                "system": "http://unitsofmeasure.org", "code": "kg"}},
            {"name": "onlyCertainMatches", "valueBoolean": True},
            {"name": "count", "valueInteger": -3},
            {"name": "match", "part": [{"name": "score", "valueDecimal": Decimal("0.950")},
                                       {"name": "detail", "part": [{"name": "x", "valueString": "y"}]}]},
        ],
    }


RESOURCES = {"patient": _patient, "document-reference": _document_reference, "appointment": _appointment,
             "transaction": _transaction, "transaction-response": _transaction_response,
             "parameters": _parameters}


def _bad(body: bytes | str) -> FhirError:
    if isinstance(body, str):
        body = body.encode()
    with pytest.raises(FhirError) as info:
        parse_resource(body)
    assert info.value.status == 400
    assert info.value.issues[0].code == "structure"
    return info.value


def _patient_xml(inner: str) -> bytes:
    return f'<Patient xmlns="http://hl7.org/fhir">{inner}</Patient>'.encode()


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESOURCES))
@pytest.mark.parametrize("pretty", [False, True])
def test_round_trip(name: str, pretty: bool) -> None:
    resource = RESOURCES[name]()
    original = copy.deepcopy(resource)
    xml = dump_resource(resource, pretty=pretty)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert parse_resource(xml) == original
    assert resource == original  # dumping does not touch its input


def test_round_trip_is_stable() -> None:
    xml = dump_resource(_transaction())
    assert dump_resource(parse_resource(xml)) == xml


def test_decimal_precision_is_kept() -> None:
    back = parse_resource(dump_resource(_parameters()))
    quantity = back["parameter"][1]["valueQuantity"]["value"]
    assert isinstance(quantity, Decimal) and str(quantity) == "72.50"
    assert str(back["parameter"][4]["part"][0]["valueDecimal"]) == "0.950"
    score = parse_resource(dump_resource(_transaction()))["entry"][2]["search"]["score"]
    assert str(score) == "1.50"


def test_json_types_come_back() -> None:
    back = parse_resource(dump_resource(_patient()))
    assert back["active"] is True and back["deceasedBoolean"] is False
    assert back["multipleBirthInteger"] == 1 and isinstance(back["multipleBirthInteger"], int)
    assert back["telecom"][0]["rank"] == 1
    assert parse_resource(dump_resource(_document_reference()))["content"][0]["attachment"]["size"] == 26


# --- what the XML looks like ---------------------------------------------------------------


def _tree(resource: dict) -> etree._Element:
    return etree.fromstring(dump_resource(resource))


def test_patient_xml_shape() -> None:
    root = _tree(_patient())
    assert root.tag == F + "Patient"
    order = [etree.QName(el).localname for el in root]
    assert order == ["id", "meta", "text", "contained", "extension", "extension", "identifier", "active", "name",
                     "name", "telecom", "gender", "birthDate", "deceasedBoolean", "address",
                     "multipleBirthInteger", "contact", "generalPractitioner"]
    assert root.find("f:id", NS).get("value") == "ins-279035121518989"
    assert root.find("f:active", NS).get("value") == "true"
    assert root.find("f:deceasedBoolean", NS).get("value") == "false"
    ins = root.find("f:identifier", NS)
    assert [etree.QName(el).localname for el in ins] == ["use", "type", "system", "value"]
    assert ins.find("f:system", NS).get("value") == INS_OID
    assert ins.find("f:value", NS).get("value") == "279035121518989"


def test_attributes_and_primitive_extensions() -> None:
    root = _tree(_patient())
    reliability = root.findall("f:extension", NS)[1]
    assert reliability.get("url").endswith("ins-identity-reliability")
    assert reliability.find("f:extension[@url='score']/f:valueDecimal", NS).get("value") == "1.50"
    name = root.find("f:name", NS)
    assert name.get("id") == "birth" and name.find("f:id", NS) is None
    given = name.findall("f:given", NS)
    assert given[0].attrib == {"value": "Jean"}
    assert "value" not in given[1].attrib
    assert given[1].find("f:extension", NS).get("url") == "http://example.org/rang"
    assert given[1].find("f:extension/f:valueInteger", NS).get("value") == "2"
    assert given[2].attrib == {"id": "g3", "value": "Pierre"}
    birth = root.find("f:birthDate", NS)
    assert birth.get("value") == "1979-03-01"
    assert birth.find("f:extension/f:valueDateTime", NS).get("value") == "1979-03-01T08:30:00+01:00"


def test_nested_resources_are_wrapped() -> None:
    root = _tree(_patient())
    practitioner = root.find("f:contained/f:Practitioner", NS)
    assert practitioner.find("f:id", NS).get("value") == "mt"
    bundle = _tree(_transaction_response())
    assert bundle.find("f:entry/f:response/f:outcome/f:OperationOutcome/f:issue/f:code", NS).get(
        "value") == "informational"
    params = _tree(_parameters())
    assert params.find("f:parameter/f:resource/f:Patient", NS) is not None
    assert params.find("f:parameter/f:part/f:part/f:valueString", NS).get("value") == "y"


def test_narrative_is_real_xhtml() -> None:
    div = _tree(_patient()).find("f:text/h:div", NS)
    assert div is not None
    assert div.find("h:p/h:b", NS).text == "Dupont"
    pretty = etree.fromstring(dump_resource(_patient(), pretty=True))
    assert etree.tostring(pretty.find("f:text/h:div", NS), encoding="unicode", with_tail=False) == DIV


def test_narrative_without_namespace_is_moved_into_xhtml() -> None:
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": "<div><p>x</p></div>"}}
    back = parse_resource(dump_resource(patient))
    assert back["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div>'


def test_backbone_order_follows_definitions() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"request": {"url": "Patient", "method": "POST"}, "resource": {"resourceType": "Patient"},
                         "fullUrl": "urn:uuid:1"}]}
    entry = _tree(bundle).find("f:entry", NS)
    assert [etree.QName(el).localname for el in entry] == ["fullUrl", "resource", "request"]
    assert [etree.QName(el).localname for el in entry.find("f:request", NS)] == ["method", "url"]


# --- parsing hand-written XML --------------------------------------------------------------


HAND_WRITTEN = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <id value="example"/>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>H\xc3\xa9l\xc3\xa8ne <i>Durand</i></p></div>
  </text>
  <!-- the INS -->
  <identifier>
    <system value="urn:oid:1.2.250.1.213.1.4.10"/>
    <value value="279035121518989"/>
  </identifier>
  <active value="true"/>
  <name>
    <family value="Durand"/>
    <given value="H\xc3\xa9l\xc3\xa8ne"/>
    <given>
      <extension url="http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier">
        <valueCode value="CL"/>
      </extension>
    </given>
  </name>
  <gender value="female"/>
  <birthDate id="bd" value="1985-07-14"/>
  <multipleBirthBoolean value="false"/>
  <photo>
    <contentType value="image/png"/>
    <size value="0"/>
  </photo>
</Patient>
"""


def test_parse_hand_written_example() -> None:
    assert parse_resource(HAND_WRITTEN) == {
        "resourceType": "Patient",
        "id": "example",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hélène <i>Durand</i></p></div>'},
        "identifier": [{"system": INS_OID, "value": "279035121518989"}],
        "active": True,
        "name": [{"family": "Durand", "given": ["Hélène", None],
                  "_given": [None, {"extension": [{
                      "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"}]}]}],
        "gender": "female",
        "birthDate": "1985-07-14",
        "_birthDate": {"id": "bd"},
        "multipleBirthBoolean": False,
        "photo": [{"contentType": "image/png", "size": 0}],
    }


def test_parse_prefixed_namespace_and_latin1() -> None:
    body = ('<?xml version="1.0" encoding="ISO-8859-1"?>'
            '<f:Patient xmlns:f="http://hl7.org/fhir"><f:name><f:family value="Lefèvre"/></f:name></f:Patient>')
    assert parse_resource(body.encode("latin-1")) == {"resourceType": "Patient", "name": [{"family": "Lefèvre"}]}


def test_parse_list_of_extension_only_primitives() -> None:
    ext = '<extension url="http://example.org/x"><valueBoolean value="true"/></extension>'
    back = parse_resource(_patient_xml(f"<name><given>{ext}</given><given>{ext}</given></name>"))
    assert "given" not in back["name"][0]
    assert back["name"][0]["_given"] == [{"extension": [{"url": "http://example.org/x", "valueBoolean": True}]}] * 2
    assert parse_resource(dump_resource(back)) == back


def test_parse_bundle_with_nested_resources() -> None:
    body = b"""<Bundle xmlns="http://hl7.org/fhir"><type value="searchset"/><total value="1"/>
      <entry><fullUrl value="https://mes.example.org/fhir/Appointment/rdv-1"/>
        <resource><Appointment><id value="rdv-1"/><status value="booked"/><minutesDuration value="15"/>
          <participant><actor><reference value="Patient/p1"/></actor><status value="accepted"/></participant>
        </Appointment></resource>
        <search><mode value="match"/><score value="1.0"/></search>
      </entry></Bundle>"""
    bundle = parse_resource(body)
    assert bundle["total"] == 1
    entry = bundle["entry"][0]
    assert entry["resource"] == {"resourceType": "Appointment", "id": "rdv-1", "status": "booked",
                                 "minutesDuration": 15,
                                 "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]}
    assert str(entry["search"]["score"]) == "1.0"


def test_multiline_values_survive() -> None:
    back = parse_resource(dump_resource(_document_reference()))
    assert back["description"] == "Bilan sanguin\nligne 2\tavec tabulation"


# --- refused input -------------------------------------------------------------------------


def test_malformed_xml() -> None:
    assert "Malformed XML" in str(_bad("<Patient xmlns='http://hl7.org/fhir'><id value='x'></Patient>"))
    _bad(b"")
    _bad(b"not xml at all")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><text>&xxe;</text></name></Patient>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_doctype_is_refused(body: str) -> None:
    assert "DOCTYPE" in str(_bad(body))


def test_doctype_hidden_by_encoding_is_refused() -> None:
    _bad(('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE Patient>'
          '<Patient xmlns="http://hl7.org/fhir"/>').encode("utf-16"))


def test_wrong_or_missing_namespace() -> None:
    _bad("<Patient><id value='x'/></Patient>")
    _bad("<Patient xmlns='http://hl7.org/fhir/other'/>")
    _bad(_patient_xml("<x:gender xmlns:x='urn:other' value='male'/>"))
    _bad(_patient_xml("<text><status value='generated'/><div><p>fhir namespace</p></div></text>"))


def test_unknown_resource_type() -> None:
    assert "Unknown resource type" in str(_bad("<Patientt xmlns='http://hl7.org/fhir'/>"))
    _bad("<DomainResource xmlns='http://hl7.org/fhir'/>")
    _bad(_patient_xml("<contained><Nope/></contained>"))


def test_unknown_element() -> None:
    error = _bad(_patient_xml("<name><familyName value='Dupont'/></name>"))
    assert "Unknown element familyName" in str(error)
    assert error.issues[0].expression == ["Patient.name[0].familyName"]
    _bad(_patient_xml("<resourceType value='Patient'/>"))
    _bad(_patient_xml("<deceased value='true'/>"))
    _bad(_patient_xml("<contact.name><family value='x'/></contact.name>"))
    _bad(_patient_xml("<name><id value='n1'/></name>"))  # Element.id is an attribute
    _bad(_patient_xml("<extension><url value='http://x'/></extension>"))  # so is Extension.url
    _bad(_patient_xml("<gender value='male'><value value='male'/></gender>"))


def test_unknown_attribute() -> None:
    _bad(_patient_xml("<gender value='male' code='x'/>"))
    _bad(_patient_xml("<name value='Dupont'/>"))
    _bad(_patient_xml("<contained id='x'><Practitioner/></contained>"))


def test_repeated_single_element() -> None:
    error = _bad(_patient_xml("<gender value='male'/><gender value='female'/>"))
    assert "repeated" in str(error)
    assert error.issues[0].expression == ["Patient.gender"]
    _bad(_patient_xml("<deceasedBoolean value='true'/><deceasedDateTime value='2020-01-01'/>"))
    _bad(_patient_xml("<contained><Practitioner/><Organization/></contained>"))


@pytest.mark.parametrize("inner", [
    "<active value='yes'/>",
    "<active value='True'/>",
    "<active value=''/>",
    "<multipleBirthInteger value='1.5'/>",
    "<multipleBirthInteger value='2147483648'/>",
    "<multipleBirthInteger value=' 1'/>",
    "<photo><size value='-1'/></photo>",
    "<extension url='x'><valueDecimal value='1,5'/></extension>",
    "<extension url='x'><valuePositiveInt value='0'/></extension>",
])
def test_bad_primitive_value(inner: str) -> None:
    assert "Invalid" in str(_bad(_patient_xml(inner)))


def test_empty_elements_and_stray_text() -> None:
    _bad(_patient_xml("<gender/>"))
    _bad(_patient_xml("<name/>"))
    _bad(_patient_xml("<gender value='male'>male</gender>"))
    _bad(_patient_xml("stray<gender value='male'/>"))


def test_depth_is_bounded() -> None:
    nested = "<extension url='x'>" * 70 + "<valueString value='deep'/>" + "</extension>" * 70
    assert "deeper than 64" in str(_bad(_patient_xml(nested)))
    div = "<div xmlns='http://www.w3.org/1999/xhtml'>" + "<span>" * 70 + "</span>" * 70 + "</div>"
    _bad(_patient_xml(f"<text><status value='generated'/>{div}</text>"))
    shallow = "<extension url='x'>" * 20 + "<valueString value='ok'/>" + "</extension>" * 20
    assert parse_resource(_patient_xml(shallow))["extension"][0]["url"] == "x"


# --- refused output ------------------------------------------------------------------------


def _bad_dump(resource: dict) -> FhirError:
    with pytest.raises(FhirError) as info:
        dump_resource(resource)
    assert info.value.status == 400
    return info.value


def test_dump_refuses_what_xml_cannot_carry() -> None:
    assert _bad_dump({"resourceType": "Patient", "nickname": "JD"}).issues[0].expression == ["Patient.nickname"]
    _bad_dump({"resourceType": "Nope"})
    _bad_dump({"id": "no-type"})
    _bad_dump({"resourceType": "Patient", "gender": "male\x00"})
    _bad_dump({"resourceType": "Patient", "gender": ["male"]})
    _bad_dump({"resourceType": "Patient", "name": {"family": "x"}})
    _bad_dump({"resourceType": "Patient", "_name": [{"id": "x"}]})
    _bad_dump({"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"})
    _bad_dump({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>unclosed"}})
    _bad_dump({"resourceType": "Patient", "text": {"status": "generated", "div": "<p>not a div</p>"}})
    _bad_dump({"resourceType": "Patient", "contained": [{"resourceType": "Patient", "bogus": 1}]})


# --- the official R4 package (JSON only: it ships no XML examples) ---------------------------


R4_SAMPLES = ["StructureDefinition-Patient.json", "ValueSet-administrative-gender.json",
              "CodeSystem-administrative-gender.json", "SearchParameter-individual-birthdate.json",
              "OperationDefinition-Patient-match.json", "CapabilityStatement-base.json"]


@pytest.mark.parametrize("name", R4_SAMPLES)
def test_round_trip_r4_package_resources(name: str) -> None:
    if not R4_PACKAGE.exists():
        pytest.skip(f"{R4_PACKAGE} is not available")
    with tarfile.open(R4_PACKAGE) as tar:
        try:
            member = tar.extractfile(f"package/{name}")
        except KeyError:
            pytest.skip(f"{name} is not in the package")
        resource = loads(member.read())
    assert parse_resource(dump_resource(resource)) == resource

"""The ANS HL7 v2 examples (../shared/data/hl7v2) through a real MLLP socket; skipped without them."""

from __future__ import annotations

import httpx
import pytest
from conftest import SHARED, ThreadServer, free_port

from hl7v2.client import MllpClient
from hl7v2.er7 import parse

EXAMPLES = SHARED / "data" / "hl7v2"
pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the ANS HL7 v2 examples (../shared/data) are absent")
PAT_TROIS = "urn:oid:1.2.250.1.213.1.4.10|279035121518989"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    port = free_port()
    with ThreadServer(tmp_path_factory.mktemp("ans"), mllp_port=port) as server, \
            MllpClient("127.0.0.1", port) as client:
        yield server, client


def send(client: MllpClient, name: str):
    """An example as stored (LF line ends) → its ACK's MSA-1, MSA-2 and ERR-7."""
    answer = parse(client.send((EXAMPLES / name).read_bytes()))
    err = answer.first("ERR")
    return answer.first("MSA")(1), answer.first("MSA")(2), err(7) if err else ""


def test_pam_fr_admissions_register_pat_trois_with_the_dmp_consents(gateway):
    server, client = gateway
    assert send(client, "PAMFR_ADT_A01_DMP_ConsentementConsultation_NonOppositionAlimentation.er7")[:2] == \
        ("AA", "3975")
    (patient,) = [e["resource"] for e in httpx.get(f"{server.base}/Patient",
                                                    params={"identifier": PAT_TROIS}).json()["entry"]]
    official = next(n for n in patient["name"] if n["use"] == "official")
    assert (official["family"], patient["birthDate"], patient["gender"]) == ("PAT-TROIS", "1979-03-28", "female")
    consent = httpx.get(f"{server.base}/Consent", params={"patient": f"Patient/{patient['id']}"}).json()
    assert {p["type"] for p in consent["entry"][0]["resource"]["provision"]["provision"]} == {"permit"}
    assert send(client, "PAMFR_ADT_A01_DMP_NonConsentementConsultation_OppositionAlimentation.er7")[:2] == \
        ("AA", "3977")
    consent = httpx.get(f"{server.base}/Consent", params={"patient": f"Patient/{patient['id']}"}).json()
    assert {p["type"] for p in consent["entry"][0]["resource"]["provision"]["provision"]} == {"deny"}


def test_pam_fr_admission_is_applied_and_discharge_is_refused_with_its_reason(gateway):
    _, client = gateway
    assert send(client, "pam-fr/admission.er7")[0] == "AA"
    code, echoed, text = send(client, "pam-fr/sortie.er7")
    assert (code, echoed) == ("AR", "3995") and "A03" in text


def test_the_mdm_example_is_parsed_and_its_placeholder_document_refused(gateway):
    _, client = gateway
    code, echoed, text = send(client, "MDM_T02_LPS_MSS_CR_Radio_INIT_N1.er7")
    assert (code, echoed) == ("AE", "015")  # its OBX-5 is a sentence in base64, not a CDA document
    assert "400" in text


def test_an_ack_sent_to_the_gateway_is_rejected(gateway):
    _, client = gateway
    assert send(client, "MDM_T02_ack.er7")[:2] == ("AR", "016")

"""The MLLP door over TLS: a client certificate that chains to the configured CA is the
credential; none, or one from another CA, gets no message through."""

from __future__ import annotations

import ssl
import uuid

import httpx
import pytest
from conftest import ThreadServer, free_port

from fhir_server.synthetic_cda import spec
from fhir_server.synthetic_pki import Ca
from fhir_server.synthetic_v2 import adt, patient_of
from hl7v2.client import MllpClient
from hl7v2.er7 import parse


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = Ca(folder / "ca"), Ca(folder / "other", "Other CA")
    return ca, ca.issue("mllp.mes.test", server=True), ca.issue("lps-cabinet"), stranger.issue("intruder")


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory, pki):
    ca, server, _, _ = pki
    port = free_port()
    with ThreadServer(tmp_path_factory.mktemp("tls"), mllp_port=port, mllp_tls_cert=str(server.cert),
                      mllp_tls_key=str(server.key), mllp_client_ca=str(ca.cert),
                      mllp_allowed_networks="10.0.0.0/8") as running:  # the certificate, not the network, admits
        running.mllp_port = port
        yield running


def client_context(ca: Ca, issued=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    if issued is not None:
        context.load_cert_chain(issued.cert, issued.key)
    return context


def test_a_trusted_client_certificate_gets_its_messages_applied(tls_gateway, pki):
    ca, _, client, _ = pki
    p = patient_of(spec(seed=uuid.uuid4().int % 10**8))
    with MllpClient("127.0.0.1", tls_gateway.mllp_port, context=client_context(ca, client)) as mllp:
        answer = parse(mllp.send(adt("A28", p, "TLS-1")))
    assert (answer.first("MSA")(1), answer.first("MSA")(2)) == ("AA", "TLS-1")
    found = httpx.get(f"{tls_gateway.base}/Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.10|{p.ins}"})
    assert len(found.json()["entry"]) == 1


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_no_message_gets_through_without_a_trusted_certificate(tls_gateway, pki, who):
    ca, _, _, intruder = pki
    p = patient_of(spec(seed=uuid.uuid4().int % 10**8))
    context = client_context(ca, intruder if who == "another CA's certificate" else None)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)), \
            MllpClient("127.0.0.1", tls_gateway.mllp_port, context=context, timeout=5) as mllp:
        mllp.send(adt("A28", p, "TLS-2"))
    found = httpx.get(f"{tls_gateway.base}/Patient", params={"identifier": f"urn:oid:1.2.250.1.213.1.4.10|{p.ins}"})
    assert not found.json().get("entry")


def test_plain_mllp_is_not_spoken_on_the_tls_port(tls_gateway):
    with pytest.raises((ConnectionError, OSError)), MllpClient("127.0.0.1", tls_gateway.mllp_port, timeout=5) as mllp:
        mllp.send(adt("A28", patient_of(spec()), "PLAIN-1"))


@pytest.mark.parametrize(("settings", "message"), [
    ({"mllp_tls_cert": "x.pem"}, "go together"),
    ({"mllp_client_ca": "ca.pem"}, "needs TLS"),
    ({"mllp_allowed_networks": "not-a-network"}, "not-a-network"),
])
def test_settings_that_would_leave_the_door_unusable_are_refused_at_start(tmp_path, settings, message):
    from fhir_server.app import create_app
    from fhir_server.config import load_settings

    with pytest.raises(ValueError, match=message):
        create_app(load_settings(data_dir=tmp_path, **settings))

"""A small world for access-control tests, and the rules it should obey, written from
docs/security.md independently of ``security/policy.py``.

Documents are plain, masked, hidden from the patient or from representatives; bob blocks drBad;
carol's space is closed once her record is loaded; rita is dan's guardian; drB works at org-a,
which sent alice a message; drA wrote every document and has an appointment with alice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
from conftest import FHIR_JSON, ThreadServer

from fhir_server.french.visibility import TRE_A07
from fhir_server.security.devkeys import dev_private_key, issue_dev_token, thumbprint
from fhir_server.security.space import SPACE_CLOSURE

LABELS = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX")
DMP = {"Patient", "DocumentReference", "List", "Provenance"}
DIRECTORY = {"Practitioner", "PractitionerRole", "Organization"}
OPEN = ("alice", "bob", "dan")  # carol's space is closed


def closure_extension(date: str, reason: str) -> dict:
    """How a space is closed (docs/security.md): the Patient carries this extension."""
    return {"url": SPACE_CLOSURE, "extension": [{"url": "date", "valueDateTime": date},
                                                {"url": "reason", "valueString": reason}]}


def block_consent(patient_id: str, actor: str) -> dict:
    """A patient's block of a professional or organisation (docs/security.md): an active Consent
    whose provision denies the actor."""
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient_id}"},
            "provision": {"type": "deny", "actor": [{"role": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                "reference": {"reference": actor}}]}}


CLOSED = closure_extension("2026-01-02T10:00:00+01:00", "décès")


@dataclass
class Item:
    """A world resource and the facts the rules need."""

    resource: dict
    owner: str | None = None  # the patient whose record holds it
    labels: tuple[str, ...] = ()
    author: str | None = None
    participants: tuple[str, ...] = ()
    context: str | None = None  # a Binary's securityContext ("Type/id")

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass
class World:
    items: dict[str, Item] = field(default_factory=dict)

    def add(self, item: Item) -> None:
        self.items[item.key] = item


def _doc(doc_id: str, owner: str, author: str, labels: tuple[str, ...] = ()) -> Item:
    security = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]}]
    security += [{"coding": [{"system": TRE_A07, "code": code}]} for code in labels]
    resource = {"resourceType": "DocumentReference", "id": doc_id, "status": "current",
                "subject": {"reference": f"Patient/{owner}"}, "author": [{"reference": f"Practitioner/{author}"}],
                "securityLabel": security, "description": f"{doc_id} de {owner}",
                "content": [{"attachment": {"contentType": "text/plain", "url": f"Binary/bin-{doc_id}"}}]}
    return Item(resource, owner, labels, author=author)


def build_world() -> World:
    world = World()
    for pid in ("alice", "bob", "carol", "dan"):
        world.add(Item({"resourceType": "Patient", "id": pid, "name": [{"family": pid.title()}]}, pid))
    world.add(Item({"resourceType": "Organization", "id": "org-a", "name": "Cabinet A"}))
    for dr in ("drA", "drB", "drBad"):
        world.add(Item({"resourceType": "Practitioner", "id": dr, "name": [{"family": dr}]}))
    world.add(Item({"resourceType": "PractitionerRole", "id": "role-b",
                    "practitioner": {"reference": "Practitioner/drB"},
                    "organization": {"reference": "Organization/org-a"}}))
    world.add(Item({"resourceType": "RelatedPerson", "id": "rita", "patient": {"reference": "Patient/dan"},
                    "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                  "code": "GUARD"}]}]}, "dan"))
    for pid in ("alice", "bob", "carol", "dan"):
        for labels in ((), ("MASQUE_PS",), ("INVISIBLE_PATIENT",), ("INVISIBLE_REPRESENTANTS_LEGAUX",)):
            doc = _doc(f"doc-{pid}-{'-'.join(labels).lower() or 'plain'}".replace("_", ""), pid, "drA", labels)
            world.add(doc)
            world.add(Item({"resourceType": "Binary", "id": f"bin-{doc.resource['id']}", "contentType": "text/plain",
                            "securityContext": {"reference": doc.key}, "data": "Ym9uam91cg=="}, context=doc.key))
    world.add(Item({"resourceType": "Binary", "id": "bin-orphan", "contentType": "text/plain", "data": "eA=="}))
    world.add(Item({"resourceType": "List", "id": "list-alice", "status": "current", "mode": "working",
                    "subject": {"reference": "Patient/alice"},
                    "entry": [{"item": {"reference": "DocumentReference/doc-alice-plain"}}]}, "alice"))
    world.add(Item({"resourceType": "Appointment", "id": "appt-alice", "status": "booked", "participant": [
        {"actor": {"reference": "Patient/alice"}, "status": "accepted"},
        {"actor": {"reference": "Practitioner/drA"}, "status": "accepted"}]}, "alice", participants=("drA",)))
    world.add(Item({"resourceType": "Communication", "id": "msg-alice", "status": "completed",
                    "subject": {"reference": "Patient/alice"}, "recipient": [{"reference": "Patient/alice"}],
                    "sender": {"reference": "Organization/org-a"}}, "alice", participants=("drB",)))
    world.add(Item({**block_consent("bob", "Practitioner/drBad"), "id": "bob-blocks-drbad"}, "bob"))
    return world


#: The principals: name → (sub, scopes, kind, who).
PRINCIPALS = {
    "alice": ("Patient/alice", "patient/*.cruds", "patient", "alice"),
    "rita": ("RelatedPerson/rita", "patient/*.rs", "related", "dan"),
    "drA": ("Practitioner/drA", "user/*.cruds", "practitioner", "drA"),
    "drB": ("Practitioner/drB", "user/*.rs", "practitioner", "drB"),
    "drBad": ("Practitioner/drBad", "user/*.rs", "practitioner", "drBad"),
    "system": ("dpi-hopital", "system/*.rs", "system", None),
}


def sees(world: World, principal: str, item: Item) -> bool:
    """The rules of docs/security.md, on the annotated world."""
    _, _, kind, who = PRINCIPALS[principal]
    rtype = item.resource["resourceType"]
    if kind == "system" or rtype in DIRECTORY:
        return True
    if rtype == "Binary":
        if item.context is None:
            return False
        return sees(world, principal, world.items[item.context])
    if kind in ("patient", "related"):
        hidden = {"INVISIBLE_PATIENT"} | ({"INVISIBLE_REPRESENTANTS_LEGAUX"} if kind == "related" else set())
        return item.owner == who and not hidden & set(item.labels)
    if rtype in ("Communication", "Appointment"):
        return who in item.participants
    if rtype not in DMP:
        return False
    blocked = (item.owner, who) == ("bob", "drBad")
    masked = "MASQUE_PS" in item.labels and item.author != who
    return item.owner in OPEN and not blocked and not masked


@contextmanager
def running_world(data_dir: Path) -> Iterator[tuple[ThreadServer, World, dict[str, httpx.Client]]]:
    """A server with auth on, the world loaded by a system client, and one client per principal."""
    world = build_world()
    with ThreadServer(data_dir, auth="on") as server:
        def token(sub: str, scope: str, purpose: str | None = None, reason: str | None = None) -> str:
            return issue_dev_token(data_dir, sub, scope, server.base, purpose=purpose, reason=reason)

        def sign(claims: dict) -> str:
            """Any claims, signed with the development key the server trusts."""
            key = dev_private_key(data_dir)
            return jwt.encode(claims, key, algorithm="ES256", headers={"kid": thumbprint(key.public_key())})

        def client(sub: str, scope: str, purpose: str | None = None, reason: str | None = None,
                   **headers: str) -> httpx.Client:
            return httpx.Client(base_url=server.base, timeout=30, headers={
                "Accept": FHIR_JSON, "Authorization": f"Bearer {token(sub, scope, purpose, reason)}", **headers})

        server.data_dir, server.token, server.sign, server.client = data_dir, token, sign, client
        loader = client("chargeur", "system/*.cruds")
        entries = [{"resource": i.resource, "request": {"method": "PUT", "url": i.key}} for i in world.items.values()]
        r = loader.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
        assert r.status_code == 200, r.text
        carol = {**world.items["Patient/carol"].resource, "extension": [CLOSED]}  # closed once her record is full
        assert loader.put("/Patient/carol", json=carol).status_code == 200
        world.items["Patient/carol"].resource = carol
        clients = {name: client(sub, scope) for name, (sub, scope, _, _) in PRINCIPALS.items()}
        clients["loader"] = loader
        yield server, world, clients
        for c in clients.values():
            c.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[tuple[ThreadServer, World, dict[str, httpx.Client]]]:
    """A fresh world per test module (the modules write into it); a plugin of conftest.py."""
    with running_world(tmp_path_factory.mktemp("world")) as running:
        yield running


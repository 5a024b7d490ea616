"""Who may write what, as a matrix over real HTTP: every principal with write scopes × every type
× the record of an open patient, of a patient who blocks one professional, of a child with a
representative, of a closed space — creates checked against ``may_create``, and every world
resource written back unchanged by every principal checked against ``may_update``, both written
from docs/security.md independently of ``security/writes.py``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from access_world import ThreadServer, World, running_world, sees

#: name → (sub, kind, who): every principal with write scopes.
WRITERS = {
    "alice": ("Patient/alice", "patient", "alice"),
    "rita": ("RelatedPerson/rita", "related", "dan"),
    "drA": ("Practitioner/drA", "practitioner", "drA"),
    "drBad": ("Practitioner/drBad", "practitioner", "drBad"),
    "system": ("dpi-hopital", "system", None),
}
OWNERS = ("alice", "bob", "dan", "carol")  # carol's space is closed; bob blocks drBad
REFUSED_WHEN_CLOSED = {"DocumentReference", "Communication", "Appointment", "Binary", "List"}


def template(rtype: str, owner: str, me: str) -> dict:
    """A valid resource of ``rtype`` in ``owner``'s record, naming ``me`` where a writer is named."""
    patient = {"reference": f"Patient/{owner}"}
    actor = {"reference": me} if "/" in me else {"reference": "Organization/org-a"}
    return {
        "DocumentReference": {"resourceType": "DocumentReference", "status": "current", "subject": patient,
                              "author": [actor], "content": [{"attachment": {"contentType": "text/plain"}}]},
        "Appointment": {"resourceType": "Appointment", "status": "booked", "participant": [
            {"actor": patient, "status": "accepted"}, {"actor": actor, "status": "accepted"}]},
        "Communication": {"resourceType": "Communication", "status": "completed", "subject": patient,
                          "recipient": [patient], "sender": actor},
        "List": {"resourceType": "List", "status": "current", "mode": "working", "subject": patient,
                 "source": actor},
        "Consent": {"resourceType": "Consent", "status": "active", "scope": {"text": "blocage"},
                    "category": [{"text": "blocage"}], "patient": patient,
                    "provision": {"type": "deny", "actor": [{"role": {"text": "PS"},
                                                             "reference": {"reference": "Practitioner/drB"}}]}},
        "Binary": {"resourceType": "Binary", "contentType": "text/plain", "data": "eA==",
                   "securityContext": {"reference": f"DocumentReference/doc-{owner}-plain"}},
        "Patient": {"resourceType": "Patient", "name": [{"family": f"Nouveau-{owner}"}]},
        "RelatedPerson": {"resourceType": "RelatedPerson", "patient": patient, "relationship": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "GUARD"}]}]},
        "Practitioner": {"resourceType": "Practitioner", "name": [{"family": "Nouveau"}]},
        "Organization": {"resourceType": "Organization", "name": "Nouvelle"},
    }[rtype]


def may_create(writer: str, rtype: str, owner: str) -> bool:
    """The rules of docs/security.md for a create."""
    _, kind, who = WRITERS[writer]
    if owner == "carol" and rtype in REFUSED_WHEN_CLOSED:
        return False  # a closed space accepts no new data, from anyone
    if kind == "system":
        return True
    if rtype in ("RelatedPerson", "Practitioner", "Organization"):
        return False  # the service registers those
    if kind in ("patient", "related"):  # their Communications are answers to mail: tests/test_mssante_replies.py
        return rtype not in ("Patient", "Communication") and owner == who
    if rtype == "Patient":
        return True  # a professional may register a new patient
    if rtype == "Consent":
        return False
    return owner != "carol" and (owner, who) != ("bob", "drBad")


TYPES = ["DocumentReference", "Appointment", "Communication", "List", "Consent", "Binary", "Patient",
         "RelatedPerson", "Practitioner", "Organization"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[tuple[ThreadServer, World, dict[str, httpx.Client]]]:
    with running_world(tmp_path_factory.mktemp("write-matrix")) as running:
        server = running[0]
        writers = {name: server.client(sub, "system/*.cruds" if kind == "system" else
                                       "patient/*.cruds" if kind in ("patient", "related") else "user/*.cruds")
                   for name, (sub, kind, _) in WRITERS.items()}
        yield server, running[1], writers
        for c in writers.values():
            c.close()


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("rtype", TYPES)
def test_creates_follow_the_rules(env, writer, rtype):
    _, _, writers = env
    sub = WRITERS[writer][0]
    for owner in OWNERS:
        r = writers[writer].post(f"/{rtype}", json=template(rtype, owner, sub))
        expected = 201 if may_create(writer, rtype, owner) else 403
        assert r.status_code == expected, f"{writer} creating {rtype} in {owner}'s record: {r.text[:300]}"


def may_update(world: World, writer: str, item) -> int:
    """The status of writing a world resource back unchanged, by the documented rules."""
    _, kind, who = WRITERS[writer]
    rtype = item.resource["resourceType"]
    if kind == "system":
        return 200
    if not sees(world, writer, item):
        return 404  # hidden: answered as for an id one may not write
    if rtype in ("RelatedPerson", "Practitioner", "PractitionerRole", "Organization"):
        return 403
    if kind in ("patient", "related"):
        return 200  # their own record, nothing changed
    if rtype == "Patient":
        return 403
    if rtype == "Binary":
        return 200 if world.items[item.context].author == who else 403
    if rtype == "DocumentReference":
        return 200 if item.author == who else 403
    if rtype == "Appointment":
        return 200 if who in item.participants else 403
    return 403  # List without a source, Provenance: nobody's to change


@pytest.mark.parametrize("writer", WRITERS)
def test_updates_follow_the_rules(env, writer):
    _, world, writers = env
    for key, item in world.items.items():
        body = writers["system"].get(key).json()  # as stored (a Binary as its JSON resource)
        r = writers[writer].put(key, json=body)
        assert r.status_code == may_update(world, writer, item), f"{writer} writing back {key}: {r.text[:300]}"

"""Durability: what the server acknowledged survives ``kill -9``; a transaction is whole or absent."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from conftest import ProcessServer, patient, unique

TEST_INS = "urn:oid:1.2.250.1.213.1.4.10"


def _writer(base: str, acknowledged: list[tuple[str, str]], stop: threading.Event) -> None:
    """Create patients as fast as possible, remembering each acknowledged (id, versionId)."""
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            try:
                r = c.post(f"{base}/Patient", json=patient())
            except httpx.TransportError:
                return
            if r.status_code == 201:
                body = r.json()
                acknowledged.append((body["id"], body["meta"]["versionId"]))


def _transactions(base: str, sent: list[str], stop: threading.Event) -> None:
    """Send 50-entry transactions whose patients share a batch marker in their identifiers."""
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            marker = unique()
            sent.append(marker)
            entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                        "resource": patient(identifier=[{"system": "urn:batch", "value": marker},
                                                        {"system": TEST_INS, "value": unique()}]),
                        "request": {"method": "POST", "url": "Patient"}} for i in range(50)]
            try:
                c.post(f"{base}", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            except httpx.TransportError:
                return


def test_acknowledged_writes_survive_kill_9_and_transactions_stay_whole(tmp_path):
    server = ProcessServer(tmp_path).start()
    acknowledged: list[tuple[str, str]] = []
    markers: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(server.base, acknowledged, stop)),
               threading.Thread(target=_transactions, args=(server.base, markers, stop))]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill9()  # in the middle of writes
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(acknowledged) > 10, "the writer made too little progress to test anything"
    restarted = ProcessServer(tmp_path, port=server.port).start()
    try:
        with httpx.Client(base_url=restarted.base, timeout=30) as c:
            for patient_id, version in acknowledged:
                r = c.get(f"/Patient/{patient_id}")
                assert r.status_code == 200, f"acknowledged Patient/{patient_id} lost"
                assert r.json()["meta"]["versionId"] == version
            sizes = [len(c.get("/Patient", params={"identifier": f"urn:batch|{m}", "_count": 100}).json()
                         .get("entry", [])) for m in markers]
            assert set(sizes) <= {0, 50}, "a transaction was half applied"
            assert 50 in sizes, "no transaction completed before the kill: nothing was tested"
            assert c.post("/Patient", json=patient()).status_code == 201  # the store still works
    finally:
        restarted.stop()


def test_hl7_v2_messages_acknowledged_before_kill_9_are_kept_and_not_applied_twice(tmp_path):
    """A sender that loses the connection sends again: what was acknowledged is there once, and
    the resent messages get their first ACK back."""
    from conftest import free_port

    from fhir_server.synthetic_cda import spec
    from fhir_server.synthetic_v2 import adt, patient_of
    from hl7v2.client import MllpClient

    mllp_port = free_port()
    server = ProcessServer(tmp_path, args=("--mllp-port", str(mllp_port))).start()
    messages = [adt("A28", patient_of(spec(seed=9000 + i), ipp=f"K{i}"), f"KILL-{i}") for i in range(200)]
    acknowledged: dict[bytes, bytes] = {}

    def send_until_killed() -> None:
        with MllpClient("127.0.0.1", mllp_port) as client:
            for message in messages:
                try:
                    acknowledged[message] = client.send(message)
                except OSError:
                    return

    sender = threading.Thread(target=send_until_killed)
    sender.start()
    while len(acknowledged) < 40:
        time.sleep(0.005)
    server.kill9()  # while messages are in flight
    sender.join(10)
    assert 40 <= len(acknowledged) < len(messages)
    server = ProcessServer(tmp_path, port=server.port, args=("--mllp-port", str(mllp_port))).start()
    try:
        with MllpClient("127.0.0.1", mllp_port) as client:
            answers = {message: client.send(message) for message in messages}
        assert all(answers[m] == first for m, first in acknowledged.items())  # the kept ACK, byte for byte
        assert all(b"MSA|AA|" in answer for answer in answers.values())
        bundle = httpx.get(f"{server.base}/Patient", params={"_summary": "count"}).json()
        assert bundle["total"] == len({m for m in messages})
        history = httpx.get(f"{server.base}/Patient/_history", params={"_count": 1000}).json()
        assert len(history["entry"]) == 200  # each applied exactly once
    finally:
        server.stop()


def test_mail_accepted_before_kill_9_is_delivered_once(tmp_path):
    """Every mail that got its ``250`` is in the inbox after a ``kill -9`` during delivery, once.
    To be sure deliveries are under way at the kill, the test holds the store's write lock once a
    few mails went through (the postmen then wait inside their units, as behind a busy store)."""
    import sqlite3

    from conftest import free_port
    from mssante_world import Pki, bridge_settings, inbox, mail, new_patient, send

    pki = Pki.make(tmp_path / "pki")
    smtp_port = free_port()
    flags = [(f"--{name.replace('_', '-')}", str(value)) for name, value in bridge_settings(pki, smtp_port).items()]
    args = tuple(part for flag in flags for part in flag)
    data = tmp_path / "data"
    server = ProcessServer(data, args=args).start()
    with httpx.Client(base_url=server.base) as http:
        patient_id, to = new_patient(http)
    accepted: list[str] = []

    def send_until_killed(worker: int) -> None:
        for n in range(200):
            message_id = f"<kill-{worker}-{n}@test-ci-sis.mssante.fr>"
            try:
                if send(smtp_port, pki.client_context(pki.client), mail(to, message_id=message_id), [to])[-1][0] \
                        == 250:
                    accepted.append(message_id)
            except OSError:
                return

    senders = [threading.Thread(target=send_until_killed, args=(w,)) for w in range(3)]
    for t in senders:
        t.start()
    while len(accepted) < 10:
        time.sleep(0.005)
    lock = sqlite3.connect(data / "mes.sqlite3", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")  # the postmen's next units wait for it
    spool = data / "mssante" / "spool"
    deadline = time.monotonic() + 20
    while len(list(spool.glob("*.eml"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill9()
    lock.rollback()
    lock.close()
    for t in senders:
        t.join(10)
    assert len(list(spool.glob("*.eml"))) >= 5, "no delivery was under way at the kill: nothing was tested"
    server = ProcessServer(data, port=server.port, args=args).start()
    try:
        deadline = time.monotonic() + 60
        http = httpx.Client(base_url=server.base)
        while (len(inbox(http, patient_id, _count="1000")) < len(accepted) or list(spool.glob("*.eml"))) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        delivered = [m["identifier"][0]["value"] for m in inbox(http, patient_id, _count="1000")]
        assert len(delivered) == len(set(delivered))  # each once
        assert {f"mid:{m.strip('<>')}" for m in accepted} <= set(delivered)  # none lost
        assert not list(spool.glob("*.eml"))  # the spool emptied once delivered
    finally:
        server.stop()


def test_the_outbox_courier_ends_with_a_killed_server(tmp_path):
    """``kill -9`` of ``mes serve`` leaves no courier process behind (it watches its parent)."""
    from conftest import free_port
    from mssante_world import Pki, bridge_settings

    pki = Pki.make(tmp_path / "pki")
    settings = bridge_settings(pki, free_port(), smtp_relay=f"127.0.0.1:{free_port()}")
    args = tuple(part for name, value in settings.items() for part in (f"--{name.replace('_', '-')}", str(value)))
    server = ProcessServer(tmp_path / "data", args=args).start()
    courier = None
    deadline = time.monotonic() + 10
    while courier is None and time.monotonic() < deadline:
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        courier = next((int(pid) for pid in children
                        if b"fhir_server.inbox.courier" in Path(f"/proc/{pid}/cmdline").read_bytes()), None)
        time.sleep(0.05)
    assert courier is not None, "mes serve started no outbox courier"
    server.kill9()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{courier}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{courier}").exists() or "Z" in Path(f"/proc/{courier}/stat").read_text().split()[2]

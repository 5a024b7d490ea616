"""MSSanté bridge benchmark: ~100 KB professional mails carrying an IHE_XDM.zip, accepted per second
over SMTP (STARTTLS and a client certificate) and delivered per second into patients' inboxes, side
by side with a bare SMTP server behind the same TLS.

    python -m bench.smtp_bench [--messages N] [--runs R] [--no-receipts] [--out FILE]

One benchmark makes its own CA (``fhir_server/synthetic_pki.py``: a server certificate for
127.0.0.1 and a client one) and starts three subprocesses on 127.0.0.1:

- the real server (``python -m fhir_server.cli serve``, auth off, a temporary data directory) with
  its bridge on a free port: ``MES_SMTP_TLS_CERT``/``KEY``, ``MES_SMTP_CLIENT_CA`` (our CA), the
  sender's domain allowed, and ``MES_SMTP_RELAY`` pointing at the sink below;
- the **baseline**: a bare aiosmtpd server run by this script (``--serve bare``) on uvloop, like the
  bridge, with the same TLS context (``fhir_server.tls.server_context``, client certificate asked
  for and checked against the CA, refused at STARTTLS without one, STARTTLS required before MAIL)
  and the same aiosmtpd options; it answers ``250`` after DATA and keeps nothing (no parsing, no
  spool, no delivery);
- the **relay sink** (``--serve sink``): a plain aiosmtpd server that answers ``250`` to whatever the
  bridge relays. The mails ask for a read receipt (``Disposition-Notification-To``, as
  ``synthetic_mail.MailSpec`` does by default), so the bridge owes a "processed" receipt per mail
  and its outbox relays it there while the benchmark runs, as in production. ``--no-receipts`` sends
  the mails without that header (nothing is relayed then).

Twenty patients are created through ``POST /fhir/Patient`` from the record targets of twenty
synthetic CDA documents (INS NIR, traits). Each mail is a professional's (``synthetic_mail``) to one
of them: text, a small PDF, and ``IHE_XDM.zip`` holding that patient's CDA document with a PDF body
plus its PDF rendition (random PDF bytes sized so the whole mail is about 100 KB on the wire; the
report gives the mean size). Two workloads:

- **inbox**: XDM without DMP destination, the mail stays in the inbox (the issue's workload);
- **DMP**: ``DESTDMP=Y``, the CDA document (a new id per mail) is also filed in the patient's DMP
  and named in the message; the benchmark checks that every one was filed.

Per run, for each workload and for 1 then 4 connections, N mails are sent to the bridge and the
same mails to the baseline, alternating which goes first across runs. Each connection is one SMTP
session (EHLO, STARTTLS, EHLO; TCP_NODELAY, or Nagle holds DATA's last segment for the peer's
delayed ACK, ~40 ms) that sends its share one mail after the other: MAIL, RCPT, DATA, each
waiting for its ``250``. Accept rate: N ÷ (first MAIL to last ``250`` after DATA); accept
latency: MAIL to that ``250``, per mail (p50, p99). Delivered rate: N ÷ (first MAIL until
``GET /fhir/Communication?_summary=count`` shows all N new messages), polled every 50 ms once the
last mail is accepted. Before the next measurement, the benchmark waits until the bridge owes no
receipt (``Communication?receipt-owed=processed,error-mail``), so each one starts on a quiet
server. Clients are Python threads on the same machine. The table gives medians; ratios are
medians of per-run ratios. At the end the report says what was checked: every mail delivered, every
DMP document filed, the receipts the sink got, the spool's ``failed/`` folder and the server log.

The breakdown runs, in-process on 30 mails of each workload, what the bridge does per mail: the
check at DATA (``parse_mail`` and ``read_xdm``), the spool write (fsync'd), and the delivery
(``parse_mail``, ``read_xdm`` again and ``deliver`` into a fresh SQLite store, without the
access trace the server also writes).

The subprocesses and the temporary directory are removed on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.cda_bench import Measured
from bench.http_bench import (
    HOST,
    READY_TIMEOUT_S,
    ROOT,
    _stop,
    _terminate,
    free_port,
    http,
    machine_facts,
    median,
    publish,
    running,
    server_command,
)
from cda.document import read_cda
from cda.mapping import patient as patient_of_cda
from fhir_server.synthetic_cda import CdaSpec, cda_document, spec
from fhir_server.synthetic_mail import MailSpec, professional_mail, to_bytes
from fhir_server.synthetic_pki import Ca
from fhir_server.synthetic_xdm import xdm_package

TARGET = 50  # messages/s accepted and delivered (the issue's target)
CONNECTIONS = (1, 4)
WORKLOADS = ("inbox", "DMP")
SEED = 2026
PATIENTS = 20
PDF_BYTES = 33_000  # random bytes of the CDA's PDF body (twice in the package): ~100 KB mails
SENDER = "adam.hoda@test-ci-sis.mssante.fr"
DOMAIN = "test-ci-sis.mssante.fr"
MAX_BYTES = 30 * 1024 * 1024  # the bridge's default MES_SMTP_MAX_MESSAGE_BYTES, for the baseline too
POLL_S = 0.05
CLIENT = "Python threads (smtplib) on the same machine, one SMTP session each, one mail at a time"

Mail = tuple[str, bytes]  # (RCPT TO, the message as sent)


# --- the baseline and the relay sink (run as subprocesses of this script) ------------------------


class Bare:
    """aiosmtpd hooks of the baseline: the bridge's certificate check at STARTTLS, then ``250``; the
    sink also writes a line per mail to its log, for the final check."""

    def __init__(self, sink: bool) -> None:
        self.sink = sink

    def handle_STARTTLS(self, server, session, envelope) -> bool:
        return bool((session.ssl or {}).get("peercert"))

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.sink:
            print("relayed", flush=True)
        return "250 2.0.0 OK"


def serve(args: argparse.Namespace) -> None:
    """``--serve bare`` (STARTTLS required, client certificate) or ``--serve sink`` (plain), until SIGTERM."""
    import uvloop
    from aiosmtpd.smtp import SMTP

    from fhir_server.tls import server_context

    tls = server_context(args.cert, args.key, args.ca, client_optional=True) if args.serve == "bare" else None

    async def forever() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: SMTP(Bare(tls is None), hostname=f"{args.serve}.bench", tls_context=tls,
                         require_starttls=tls is not None, data_size_limit=MAX_BYTES, enable_SMTPUTF8=True,
                         decode_data=False, loop=loop),
            HOST, args.port)
        await asyncio.Event().wait()

    uvloop.run(forever())


@contextmanager
def smtp_server(kind: str, port: int, log_path: Path, *tls: Path) -> Iterator[None]:
    """This script's ``--serve kind`` until the block ends; ready once it greets with ``220``."""
    cmd = [sys.executable, "-m", "bench.smtp_bench", "--serve", kind, "--port", str(port)]
    if tls:
        cmd += [f"--{name}={path}" for name, path in zip(("cert", "key", "ca"), tls, strict=True)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{kind} SMTP server exited with {process.returncode}:\n"
                                       f"{log_path.read_text()[-2000:]}")
                try:
                    with socket.create_connection((HOST, port), timeout=1) as sock:
                        if sock.recv(64).startswith(b"220"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} SMTP server not ready after {READY_TIMEOUT_S}s")
                time.sleep(0.1)
            yield
        finally:
            _stop(process)


# --- the mails -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class World:
    people: list[CdaSpec]  # the patients, as their CDA documents describe them
    pdf: bytes
    receipts: bool
    packages: dict[int, bytes] = dataclasses.field(default_factory=dict)  # inbox packages, per person


def people() -> list[CdaSpec]:
    """``PATIENTS`` synthetic people with distinct INS. Corsican NIRs (2A/2B) are left out: the bridge
    refuses their addresses at RCPT (``mssante_bridge.addresses.MATRICULE`` expects the letter as
    the second character, where a NIR has it as the seventh)."""
    found: dict[str, CdaSpec] = {}
    seed = SEED
    while len(found) < PATIENTS:
        s = spec(seed=seed)
        if s.ins.isdigit():
            found.setdefault(s.ins, s)
        seed += 1
    return list(found.values())


def create_patients(base: str, specs: list[CdaSpec]) -> None:
    for s in specs:
        resource = patient_of_cda(read_cda(cda_document(s)).header.patient)
        status, _, answer = http("POST", f"{base}/fhir/Patient", json.dumps(resource).encode())
        if status != 201:
            raise RuntimeError(f"Patient not created: {status} {answer[:300]!r}")


def mails(world: World, workload: str, count: int, run: int, part: int) -> list[Mail]:
    """``count`` distinct mails (new Message-IDs; for the DMP, new document ids), round the patients."""
    out = []
    for n in range(count):
        index = n % len(world.people)
        person = dataclasses.replace(world.people[index], body="pdf", body_bytes=world.pdf)
        if workload == "DMP":
            root = f"1.2.250.1.999.8.{run}.{part}.{n}"
            package = xdm_package([[dataclasses.replace(person, doc_root=root, set_id_root=root + ".0")]],
                                  dest_dmp="Y")
        else:
            package = world.packages.get(index) or world.packages.setdefault(index, xdm_package([[person]]))
        recipient = f"{person.ins}@patient.mssante.fr"
        changes = {} if world.receipts else {"disposition_notification_to": None}
        data = to_bytes(professional_mail(MailSpec(
            recipient=recipient, xdm_zip=package, message_id=f"<bench-{run}-{part}-{n}@{DOMAIN}>", **changes)))
        out.append((recipient, data))
    return out


# --- sending and waiting -----------------------------------------------------------------------------


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(cert, key)
    return context


def send_share(port: int, context: ssl.SSLContext, share: list[Mail]) -> list[tuple[float, float]]:
    """One SMTP session sending ``share`` mail after mail: (MAIL sent, 250 after DATA) of each."""
    out = []
    with smtplib.SMTP(HOST, port, timeout=120) as smtp:
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait on DATA's last segment
        smtp.ehlo("cabinet." + DOMAIN)
        smtp.starttls(context=context)
        smtp.ehlo("cabinet." + DOMAIN)
        for recipient, data in share:
            start = time.perf_counter()
            replies = [smtp.mail(SENDER), smtp.rcpt(recipient)]
            if all(code == 250 for code, _ in replies):
                replies.append(smtp.data(data))
            end = time.perf_counter()
            if [code for code, _ in replies] != [250, 250, 250]:
                raise RuntimeError(f"not accepted: {replies}")
            out.append((start, end))
    return out


def spread(port: int, context: ssl.SSLContext, items: list[Mail], connections: int) -> list[tuple[float, float]]:
    """Send ``items`` over ``connections`` concurrent sessions; every mail's (start, end)."""
    shares = [items[i::connections] for i in range(connections)]
    results: list[list[tuple[float, float]]] = [[] for _ in shares]
    errors: list[Exception] = []

    def worker(i: int) -> None:
        try:
            results[i] = send_share(port, context, shares[i])
        except Exception as error:  # raised again in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [x for part in results for x in part]


def count(base: str, query: str) -> int:
    return json.loads(http("GET", f"{base}/fhir/{query}{'&' if '?' in query else '?'}_summary=count")[2])["total"]


def wait_for(base: str, query: str, expected: int, timeout: float) -> float:
    """Poll until ``query`` counts ``expected``; perf_counter() when it did."""
    deadline = time.monotonic() + timeout
    while (seen := count(base, query)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{query}: {seen} after {timeout:.0f}s, expected {expected}")
        time.sleep(POLL_S)
    return time.perf_counter()


def drain_receipts(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count(base, "Communication?receipt-owed=processed,error-mail"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"receipts still owed after {timeout:.0f}s")
        time.sleep(0.2)


@dataclasses.dataclass
class Row(Measured):
    delivered: list[float] = dataclasses.field(default_factory=list)  # messages/s end to end (bridge only)
    sizes: list[int] = dataclasses.field(default_factory=list)


def record(row: Row, spans: list[tuple[float, float]]) -> float:
    """Accept rate, p50 and p99 into ``row``; the first MAIL's perf_counter()."""
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    latencies = sorted(e - s for s, e in spans)
    row.rate.append(len(spans) / (last - first))
    row.p50.append(latencies[len(latencies) // 2] * 1000)
    row.p99.append(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000)
    return first


def to_bridge(base: str, port: int, context: ssl.SSLContext, items: list[Mail], connections: int,
              row: Row | None, workload: str) -> None:
    """Send to the bridge, wait for delivery (and for the DMP filings), then for the receipts."""
    communications = count(base, "Communication")
    documents = count(base, "DocumentReference")
    spans = spread(port, context, items, connections)
    timeout = 60 + len(items)
    seen = wait_for(base, "Communication", communications + len(items), timeout)
    if row is not None:
        first = record(row, spans)
        row.delivered.append(len(items) / (seen - first))
    if workload == "DMP" and (filed := count(base, "DocumentReference") - documents) != len(items):
        raise RuntimeError(f"{filed} documents filed in the DMP for {len(items)} mails")
    drain_receipts(base, timeout)


def benchmark(args: argparse.Namespace, world: World, ca: Ca, tmp: Path
              ) -> tuple[dict[tuple[str, str, int], Row], str]:
    """The rows, and what the final checks found."""
    rows = {(w, door, c): Row() for w in WORKLOADS for c in CONNECTIONS for door in ("bridge", "bare")}
    server, client = ca.issue("bridge.mes.test", server=True), ca.issue("cabinet-hoda")
    context = client_context(ca.cert, client.cert, client.key)
    port, smtp_port, bare_port, sink_port = free_port(), free_port(), free_port(), free_port()
    cmd, env = server_command(port, tmp / "data")
    env |= {"MES_SMTP_PORT": str(smtp_port), "MES_SMTP_TLS_CERT": str(server.cert),
            "MES_SMTP_TLS_KEY": str(server.key), "MES_SMTP_CLIENT_CA": str(ca.cert),
            "MES_SMTP_ALLOWED_DOMAINS": DOMAIN, "MES_SMTP_RELAY": f"{HOST}:{sink_port}"}
    with ExitStack() as stack:
        stack.enter_context(smtp_server("sink", sink_port, tmp / "sink.log"))
        stack.enter_context(smtp_server("bare", bare_port, tmp / "bare.log", server.cert, server.key, ca.cert))
        base = stack.enter_context(running(cmd, port, tmp / "server.log", env))
        create_patients(base, world.people)
        for part, workload in enumerate(WORKLOADS):  # warm-up
            warm = mails(world, workload, 20, 99, part)
            to_bridge(base, smtp_port, context, warm, 2, None, workload)
            spread(bare_port, context, warm, 2)
        for run in range(args.runs):
            for w, workload in enumerate(WORKLOADS):
                for c, connections in enumerate(CONNECTIONS):
                    items = mails(world, workload, args.messages, run, w * 10 + c)
                    doors = ["bridge", "bare"] if run % 2 == 0 else ["bare", "bridge"]
                    for door in doors:
                        row = rows[(workload, door, connections)]
                        row.sizes += [len(data) for _, data in items]
                        if door == "bridge":
                            to_bridge(base, smtp_port, context, items, connections, row, workload)
                        else:
                            record(row, spread(bare_port, context, items, connections))
                        delivered = f", {row.delivered[-1]:,.1f} delivered/s" if row.delivered else ""
                        print(f"run {run + 1}/{args.runs} {workload} {door} × {connections}: "
                              f"{row.rate[-1]:,.1f} accepted/s{delivered}", file=sys.stderr)
        sent = len(WORKLOADS) * (20 + args.runs * len(CONNECTIONS) * args.messages)
        relayed = (tmp / "sink.log").read_text().count("relayed")
        failed = list((tmp / "data" / "mssante" / "spool" / "failed").glob("*"))
        problems = [ln for ln in (tmp / "server.log").read_text(errors="replace").splitlines()
                    if "Traceback" in ln or " failed" in ln or "ERROR" in ln]
    checks = (f"{sent} mails sent to the bridge, warm-up included: each one delivered (one Communication), each"
              f" DMP document filed; {relayed} receipts relayed to the sink; {len(failed)} mails in spool/failed;"
              f" {len(problems)} error lines in the server log" + (f", e.g. {problems[0][:200]!r}" if problems else ""))
    print(checks, file=sys.stderr)
    return rows, checks


# --- in-process breakdown ------------------------------------------------------------------------------


def breakdown(world: World, tmp: Path, ca: Path, sample: int = 30) -> dict[str, dict[str, float]]:
    """Mean ms per mail, in-process: the DATA check, the spool write, the delivery."""
    from fhir_server.core.repository import Repository
    from fhir_server.inbox.deliver import deliver
    from fhir_server.inbox.door import xdm_packages
    from fhir_server.store.sqlite import SqliteStore
    from mssante_bridge.mail import MailLimits, Trust, parse_mail
    from mssante_bridge.spool import Envelope, Spool

    limits, trust = MailLimits(), Trust.from_file(ca)
    out = {}
    for w, workload in enumerate(WORKLOADS):
        store = SqliteStore(tmp / f"breakdown-{workload}.sqlite3")
        repository = Repository(store, "http://127.0.0.1/fhir")
        spool = Spool(tmp / f"spool-{workload}")
        stages = dict.fromkeys(("DATA check (parse_mail + read_xdm)", "spool write + fsync",
                                "delivery (parse again + deliver)"), 0.0)
        try:
            with repository.writer() as writer:
                for s in world.people:
                    writer.create("Patient", patient_of_cda(read_cda(cda_document(s)).header.patient))
            for recipient, data in mails(world, workload, sample, 77, w):
                envelope = Envelope(SENDER, (recipient,), HOST, "CN=cabinet-hoda", time.time())
                t0 = time.perf_counter()
                xdm_packages(parse_mail(data, limits, trust))
                t1 = time.perf_counter()
                spool.put(envelope, data)
                t2 = time.perf_counter()
                mail = parse_mail(data, limits, trust)
                deliver(repository, envelope, data, mail, xdm_packages(mail), "patient.mssante.fr")
                t3 = time.perf_counter()
                for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    stages[name] += seconds
            filed = repository.count("DocumentReference")
            if repository.count("Communication") != sample or filed != (sample if workload == "DMP" else 0):
                raise RuntimeError(f"in-process {workload} delivery: not one message (and document) per mail")
        finally:
            store.close()
        out[workload] = {name: total / sample * 1000 for name, total in stages.items()}
    return out


# --- the report ---------------------------------------------------------------------------------------------


def report(rows: dict[tuple[str, str, int], Row], checks: str, steps: dict[str, dict[str, float]],
           args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    facts = [f if not f.startswith("- load generator") else f"- load generator: {CLIENT}"
             for f in machine_facts(load_before)]
    receipts = "each asking for a read receipt (relayed to a sink)" if not args.no_receipts else "no read receipts"
    lines = [f"MSSanté bridge over SMTP (STARTTLS + client certificate), the same mails to a bare aiosmtpd server as"
             f" the baseline: {args.messages} mails per workload, door, connection count and run, {receipts},"
             f" {args.runs} runs, medians", "", *facts, "",
             "| workload | mean size | door | connections | accepted/s | accept p50 | accept p99 | delivered/s |"
             f" bridge / bare (accepted) | target ≥ {TARGET}/s |", "|---|--:|---|--:|--:|--:|--:|--:|--:|---|"]
    for (workload, door, connections), row in rows.items():
        bare = rows[(workload, "bare", connections)]
        ratio = median([a / b for a, b in zip(row.rate, bare.rate, strict=True)])
        if door == "bridge":
            end_to_end = median(row.delivered)
            verdict = "**met**" if min(median(row.rate), end_to_end) >= TARGET else "**NOT met**"
            delivered = f"{end_to_end:,.1f}"
        else:
            verdict, delivered = "(baseline)", "—"
        lines.append(f"| {workload} | {sum(row.sizes) / len(row.sizes) / 1000:,.1f} KB | {door} | {connections} |"
                     f" {median(row.rate):,.1f} | {median(row.p50):.1f} ms | {median(row.p99):.1f} ms | {delivered} |"
                     f" {ratio:.3f} | {verdict} |")
    lines += ["", "Per run, accepted/s (delivered/s): " + "; ".join(
        f"{w} {door} × {c}: " + ", ".join(f"{r:,.1f}" + (f" ({d:,.1f})" if row.delivered else "")
                                         for r, d in zip(row.rate, row.delivered or row.rate, strict=True))
        for (w, door, c), row in rows.items()), "", f"Checks: {checks}."]
    lines += ["", "In-process, per mail (ms):", "", "| workload | " + " | ".join(next(iter(steps.values()))) + " |",
              "|---|" + "--:|" * len(next(iter(steps.values())))]
    lines += [f"| {w} | " + " | ".join(f"{ms:.2f}" for ms in stages.values()) + " |" for w, stages in steps.items()]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300,
                        help="mails per workload, door, connection count and run (default 300)")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--no-receipts", action="store_true", help="mails without Disposition-Notification-To")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    for name in ("serve", "port", "cert", "key", "ca"):  # the baseline and the sink, as subprocesses
        parser.add_argument(f"--{name}", type=int if name == "port" else str, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="mes-smtp-bench-"))
    try:
        world = World(people(), b"%PDF-1.4\n" + random.Random(SEED).randbytes(PDF_BYTES) + b"\n%%EOF\n",
                      not args.no_receipts)
        ca = Ca(tmp / "pki")
        rows, checks = benchmark(args, world, ca, tmp)
        steps = breakdown(world, tmp, ca.cert)
    except KeyboardInterrupt:
        print("interrupted; subprocesses stopped and temporary files removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    publish(report(rows, checks, steps, args, load_before), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

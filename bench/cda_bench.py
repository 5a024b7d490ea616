"""CDA ingestion benchmark: documents filed per second through ``$import-cda``, and where the time goes.

    python -m bench.cda_bench [--documents N] [--clients K] [--runs R] [--out FILE]

One run starts a real server (``python -m fhir_server.cli serve``, 127.0.0.1, ``MES_AUTH=off``, a
temporary data directory) and POSTs N distinct documents of each kind to
``/fhir/DocumentReference/$import-cda`` from K client threads: a PDF-bodied document of about
450 KB (the CDA file, a base64 PDF inside) and a structured one. Documents go to 50 patients (the
first of each creates the patient, the others match it by INS); every answer must be 201. Each
run uses new document ids, so nothing is answered as a duplicate. The table gives medians.

The breakdown runs the same stages in-process on a sample of each kind: parsing (``cda.parse``),
validation (the XSD and the CI-SIS header rules), mapping (header and FHIR resources) and storage
(``file_cda`` as a whole, minus the three: the patient lookup, the writes and their indexing).

The server and the temporary directory are removed on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import dataclasses
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.http_bench import free_port, http, machine_facts, median, publish, running, server_command
from cda import schema
from cda.header import read_header
from cda.mapping import to_fhir
from cda.parse import load
from cda.rules import check
from fhir_server.core.repository import Repository
from fhir_server.dmp.ingest import file_cda
from fhir_server.store.sqlite import SqliteStore
from fhir_server.synthetic_cda import cda_document, spec

SEED = 2026
PATIENTS = 50
PDF_CDA_BYTES = 450_000  # the CDA file's size for the PDF kind
TARGET = 100  # documents/s (the target)
IMPORT = "/fhir/DocumentReference/$import-cda"
CDA = {"Content-Type": "application/hl7-cda+xml"}
KINDS = ("pdf 450 KB", "structured")
CLIENT = "Python threads (urllib) on the same machine, one request at a time each"


@dataclasses.dataclass
class Measured:
    rate: list[float] = dataclasses.field(default_factory=list)
    p50: list[float] = dataclasses.field(default_factory=list)
    p99: list[float] = dataclasses.field(default_factory=list)
    size: int = 0


def documents(kind: str, count: int, run: int) -> list[bytes]:
    """``count`` distinct documents of ``kind`` for 50 patients; ids unique to the run."""
    rng = random.Random(SEED + run)
    people = [spec(seed=SEED + p) for p in range(PATIENTS)]
    pdf = b"%PDF-1.4\n" + rng.randbytes(PDF_CDA_BYTES * 3 // 4 - 12) + b"\n%%EOF\n"
    out = []
    for n in range(count):
        person = people[n % PATIENTS]
        root = f"1.2.250.1.999.9.{run}.{0 if kind == KINDS[0] else 1}.{n}"
        body = {"body": "pdf", "body_bytes": pdf} if kind == KINDS[0] else {"body": "structured", "body_bytes": b""}
        out.append(cda_document(dataclasses.replace(person, doc_root=root, set_id_root=root + ".0", **body)))
    return out


def post_all(base: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Seconds to file every body from ``clients`` threads, and each request's latency."""
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            status, _, answer = http("POST", base + IMPORT, body, CDA)
            latencies.append(time.perf_counter() - started)
            if status != 201:
                failures.append(f"{status} {answer[:300]!r}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} documents not filed, e.g. {failures[0]}")
    return elapsed, latencies


def breakdown(kind: str, sample: list[bytes], tmp: Path) -> dict[str, float]:
    """Mean milliseconds per document in each stage, in-process."""
    store = SqliteStore(tmp / f"breakdown-{kind.split()[0]}.sqlite3")
    repository = Repository(store, "http://127.0.0.1/fhir")
    stages = dict.fromkeys(("parsing", "validation", "mapping", "storage"), 0.0)
    try:
        for data in sample:
            t0 = time.perf_counter()
            root = load(data)
            t1 = time.perf_counter()
            problems = [*schema.validate(root.getroottree()), *check(root)]
            t2 = time.perf_counter()
            to_fhir(read_header(root), data, "Patient/p", "Binary/b")
            t3 = time.perf_counter()
            file_cda(repository, data)
            t4 = time.perf_counter()
            assert not problems, problems[:3]
            stages["parsing"] += t1 - t0
            stages["validation"] += t2 - t1
            stages["mapping"] += t3 - t2
            stages["storage"] += max((t4 - t3) - (t3 - t0), 0.0)  # file_cda repeats the first three
    finally:
        store.close()
    return {name: total / len(sample) * 1000 for name, total in stages.items()}


def benchmark(args: argparse.Namespace) -> tuple[dict[str, Measured], dict[str, dict[str, float]]]:
    tmp = Path(tempfile.mkdtemp(prefix="mes-cda-bench-"))
    measured = {kind: Measured() for kind in KINDS}
    try:
        port = free_port()
        cmd, env = server_command(port, tmp / "data")
        with running(cmd, port, tmp / "server.log", env) as base:
            post_all(base, documents(KINDS[1], 20, run=99), args.clients)  # warm-up, patients created
            for run in range(args.runs):
                for kind in (KINDS if run % 2 == 0 else KINDS[::-1]):
                    bodies = documents(kind, args.documents, run)
                    measured[kind].size = len(bodies[0])
                    elapsed, latencies = post_all(base, bodies, args.clients)
                    latencies.sort()
                    m = measured[kind]
                    m.rate.append(len(bodies) / elapsed)
                    m.p50.append(latencies[len(latencies) // 2] * 1000)
                    m.p99.append(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000)
                    print(f"run {run + 1}/{args.runs} {kind}: {m.rate[-1]:,.1f} documents/s", file=sys.stderr)
        shares = {kind: breakdown(kind, documents(kind, 30, run=77), tmp) for kind in KINDS}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return measured, shares


def report(outcome: tuple[dict[str, Measured], dict[str, dict[str, float]]], args: argparse.Namespace,
           load_before: tuple[float, float, float]) -> str:
    measured, shares = outcome
    lines = [f"CDA ingestion through $import-cda: {args.documents} documents per kind and run, {args.clients}"
             f" client threads, {args.runs} runs, medians", "", *_facts(load_before), "",
             f"| document | size | documents/s | p50 | p99 | target ≥ {TARGET}/s |", "|---|--:|--:|--:|--:|---|"]
    for kind, m in measured.items():
        rate = median(m.rate)
        lines.append(f"| {kind} | {m.size / 1000:,.0f} KB | {rate:,.1f} | {median(m.p50):.1f} ms |"
                     f" {median(m.p99):.1f} ms | {'**met**' if rate >= TARGET else '**NOT met**'} |")
    lines += ["", "In-process, per document (ms, and share of the four stages):", "",
              "| document | parsing | validation (XSD + rules) | mapping | storage |", "|---|--:|--:|--:|--:|"]
    for kind, stages in shares.items():
        total = sum(stages.values()) or 1
        lines.append(f"| {kind} | " + " | ".join(f"{ms:.2f} ({ms / total:.0%})" for ms in stages.values()) + " |")
    lines += ["", "Per run: " + "; ".join(f"{kind}: {', '.join(f'{r:,.1f}' for r in m.rate)}"
                                          for kind, m in measured.items())]
    return "\n".join(lines)


def _facts(load_before: tuple[float, float, float]) -> list[str]:
    return [f if not f.startswith("- load generator") else f"- load generator: {CLIENT}"
            for f in machine_facts(load_before)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200, help="documents per kind and run (default 200)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = __import__("os").getloadavg()
    publish(report(benchmark(args), args, load_before), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

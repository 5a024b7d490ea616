"""Auth benchmark: what bearer-token access control and access traces cost a read-by-id.

    python -m bench.auth_bench [--duration S] [--connections N] [--runs K] [--out FILE]

One run starts two real servers (``python -m fhir_server.cli serve``), each on its own temporary
data directory: one with ``MES_AUTH=off``, one with ``MES_AUTH=on`` (bearer JWTs required, every
read of patient data traced as an AuditEvent committed before the answer). Both are seeded
through their own API with the same synthetic data: an Organization, a Practitioner and their
PractitionerRole, then Patients, each with one DocumentReference (subject: the patient, author:
the practitioner, data inline); the auth-on server is seeded with a ``system/*.cruds`` token
signed by its development key (``fhir_server.security.devkeys``).

wrk then reads the same DocumentReference (``bench/wrk/read.lua``) four ways: on the auth-off
server (the reference), and on the auth-on server as a system client (``system/*.rs``), as the
patient it belongs to (``patient/*.rs``) and as its author (``user/*.rs``, fhirUser the
Practitioner). Each run measures the four back to back, reversing the order on every other run;
the table shows medians, and ratios are medians of per-run ratios to the auth-off read. The
AuditEvents the auth-on server wrote during the measurements are counted, to show that every
read left its trace.

Only 127.0.0.1 is loaded, every wrk call is bounded by ``--duration``, and both servers and the
temporary directory are removed on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import orjson

from bench.http_bench import (
    WARMUP_S,
    WRK_THREADS,
    WrkResult,
    free_port,
    http,
    machine_facts,
    median,
    run_main,
    run_wrk,
    running,
    server_command,
)
from fhir_server.security.devkeys import issue_dev_token
from fhir_server.synthetic import (
    DEMO_ORGANIZATIONS,
    DEMO_PROFESSIONALS,
    document_reference,
    entry,
    finess,
    organization_resource,
    patients,
    practitioner_resource,
    practitioner_role_resource,
    rpps,
)

SEED = 2026
SEED_PATIENTS = 1_000  # each with one DocumentReference
PATIENTS_PER_BUNDLE = 50  # 50 Patients + their 50 documents: 100-entry transactions
TARGET = 0.70  # auth-on read req/s as a share of the auth-off read's: "the cost of auth + traces ≤ 30 %"
AUDIT_COUNT = "/fhir/AuditEvent?_summary=count"


# --- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """What one server holds that the workloads name: ids differ between servers, content does not."""

    patient_id: str
    document_id: str
    practitioner_id: str


def _transaction(entries: list[dict]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _ids(body: bytes) -> list[tuple[str, str]]:
    """(type, id) of each entry of a transaction response, from its ``Type/id/_history/n`` location."""
    out = []
    for item in orjson.loads(body)["entry"]:
        resource_type, resource_id = item["response"]["location"].split("/")[:2]
        out.append((resource_type, resource_id))
    return out


def _urn(n: int) -> str:
    return f"urn:uuid:00000000-0000-4000-8000-{n:012x}"


def directory_entries() -> list[dict]:
    """An Organization, a Practitioner (the documents' author) and the PractitionerRole linking them:
    a professional's access is resolved through their roles (remembered for 2 s by the server)."""
    rng = random.Random(SEED)
    pro = DEMO_PROFESSIONALS[0]
    name, commune, area = DEMO_ORGANIZATIONS[pro.org]
    org_url, pro_url = _urn(1), _urn(2)
    return [entry(org_url, organization_resource(name, finess(rng, commune.cog[:2]), commune, area, rng)),
            entry(pro_url, practitioner_resource(pro, rpps(rng))),
            entry(_urn(3), practitioner_role_resource(pro, pro_url, org_url))]


def seed(base: str, people: list[dict], headers: dict[str, str]) -> Seeded:
    """Load the directory, then Patients with one document each, in 100-entry transactions through
    the API; the workloads read the first patient's document."""
    stored = _ids(http("POST", f"{base}/fhir", _transaction(directory_entries()), headers)[2])
    practitioner_id = next(rid for rtype, rid in stored if rtype == "Practitioner")
    first: tuple[str, str] | None = None
    for start in range(0, len(people), PATIENTS_PER_BUNDLE):
        entries = []
        for n, patient in enumerate(people[start:start + PATIENTS_PER_BUNDLE], start):
            patient_url = _urn(10 + n)
            entries.append(entry(patient_url, patient))
            entries.append(entry(_urn(10 + len(people) + n),
                                 document_reference(patient_url, SEED + n, f"Practitioner/{practitioner_id}")))
        stored = _ids(http("POST", f"{base}/fhir", _transaction(entries), headers)[2])
        if first is None:
            assert stored[0][0] == "Patient" and stored[1][0] == "DocumentReference", stored[:2]
            first = (stored[0][1], stored[1][1])
    assert first is not None
    return Seeded(first[0], first[1], practitioner_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_events(base: str, headers: dict[str, str], entity: str | None = None) -> int:
    """How many AuditEvents the server holds (``_summary=count``), or how many name ``entity``.

    Counting the trail leaves no trace, so the count is exact.
    """
    query = AUDIT_COUNT + (f"&entity={quote(entity, safe='/')}" if entity else "")
    return orjson.loads(http("GET", base + query, headers=headers)[2])["total"]


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Workload:
    """One way of reading the document: which server, as whom, and its results over the runs."""

    label: str
    url: str
    headers: dict[str, str]
    results: list[WrkResult] = field(default_factory=list)
    warmup: WrkResult | None = None


@dataclass(frozen=True)
class Outcome:
    workloads: list[Workload]
    events_before: int  # AuditEvents naming the read document, before the warm-ups
    events_after: int  # … and after the last run
    events_off: int  # all AuditEvents on the auth-off server, which traces nothing
    body_bytes: dict[str, int]  # per workload: the size of the answer, the same document each time


def _show(label: str, result: WrkResult) -> None:
    errors = f", {result.errors} errors" if result.errors else ""
    print(f"  {label:<36} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
          f"{errors}", flush=True)


def token_lifetime(args: argparse.Namespace) -> int:
    """Long enough for every measurement and warm-up, with a wide margin: an expired token would 401."""
    measurements = (args.runs + 1) * 4
    return 3600 + 2 * measurements * (args.duration + WARMUP_S + 10)


def workloads(off: str, off_data: Seeded, on: str, data: Seeded, on_dir: Path, lifetime: int) -> list[Workload]:
    """The four reads of the first patient's document (its id differs between the servers)."""
    audience = f"{on}/fhir"

    def token(sub: str, scopes: str) -> dict[str, str]:
        return bearer(issue_dev_token(on_dir, sub, scopes, audience, lifetime_s=lifetime))

    path = f"/fhir/DocumentReference/{quote(data.document_id)}"
    return [
        Workload("auth off", f"{off}/fhir/DocumentReference/{quote(off_data.document_id)}", {}),
        Workload("auth on, system (system/*.rs)", on + path, token("bench-system-client", "system/*.rs")),
        Workload("auth on, patient (patient/*.rs)", on + path, token(f"Patient/{data.patient_id}", "patient/*.rs")),
        Workload("auth on, practitioner (user/*.rs)", on + path,
                 token(f"Practitioner/{data.practitioner_id}", "user/*.rs")),
    ]


def measure(loads: list[Workload], args: argparse.Namespace) -> None:
    """``--runs`` rounds of the four reads back to back, the order reversed on every other round."""
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", flush=True)
        for load in loads if run % 2 == 0 else loads[::-1]:
            result = run_wrk(load.url, "read.lua", [], args.threads, args.connections, args.duration, load.headers)
            load.results.append(result)
            _show(load.label, result)


def benchmark(args: argparse.Namespace) -> Outcome:
    tmp = Path(tempfile.mkdtemp(prefix="mes-auth-bench-"))
    try:
        people = list(patients(SEED_PATIENTS, SEED))
        off_port, on_port = free_port(), free_port()
        with ExitStack() as servers:
            cmd, env = server_command(off_port, tmp / "off", auth="off")
            off = servers.enter_context(running(cmd, off_port, tmp / "off.log", env))
            cmd, env = server_command(on_port, tmp / "on", auth="on")
            on = servers.enter_context(running(cmd, on_port, tmp / "on.log", env))
            print(f"auth off on {off}, auth on on {on}; seeding {SEED_PATIENTS} Patients + documents each...",
                  flush=True)
            lifetime = token_lifetime(args)
            admin = bearer(issue_dev_token(tmp / "on", "bench-seeder", "system/*.cruds", f"{on}/fhir",
                                           lifetime_s=lifetime))
            off_data = seed(off, people, {})
            data = seed(on, people, admin)
            loads = workloads(off, off_data, on, data, tmp / "on", lifetime)
            body_bytes = {w.label: len(http("GET", w.url, headers=w.headers)[2]) for w in loads}  # each must be 200
            document = f"DocumentReference/{data.document_id}"
            events_before = audit_events(on, admin, document)
            print(f"warm-up {WARMUP_S}s each", flush=True)
            for load in loads:
                load.warmup = run_wrk(load.url, "read.lua", [], args.threads, args.connections, WARMUP_S,
                                      load.headers)
            measure(loads, args)
            return Outcome(loads, events_before, audit_events(on, admin, document), audit_events(off, {}), body_bytes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- report ----------------------------------------------------------------------------------


def _ratios(load: Workload, reference: Workload) -> list[float]:
    return [a.rps / b.rps for a, b in zip(load.results, reference.results, strict=True)]


def table(loads: list[Workload]) -> list[str]:
    reference = loads[0]
    lines = ["| workload | req/s | p50 | p99 | ratio to auth off | target ≥ 0.70 |", "|---|--:|--:|--:|--:|---|"]
    for load in loads:
        rps = median([r.rps for r in load.results])
        p50, p99 = median([r.p50_ms for r in load.results]), median([r.p99_ms for r in load.results])
        if load is reference:
            ratio, verdict = "1 (reference)", "–"
        else:
            value = median(_ratios(load, reference))
            ratio, verdict = f"{value:.2f}", "**met**" if value >= TARGET else "**NOT met**"
        lines.append(f"| {load.label} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms | {ratio} | {verdict} |")
    return lines


def traces(outcome: Outcome, connections: int) -> list[str]:
    """AuditEvents written against the successful auth-on reads wrk counted (warm-ups included)."""
    on = outcome.workloads[1:]
    reads = sum(r.requests - r.status_errors for w in on for r in [w.warmup, *w.results] if r is not None)
    written = outcome.events_after - outcome.events_before
    measurements = sum(1 + len(w.results) for w in on)
    return [f"- AuditEvents naming the read document written during the auth-on warm-ups and runs: **{written:,}**"
            f" for {reads:,} successful reads counted by wrk ({written / reads:.4f} per read; wrk leaves out the"
            f" requests still in flight when each of its {measurements} measurements stops, at most"
            f" {measurements} × {connections} = {measurements * connections:,}, which the server still answers and"
            " traces)",
            f"- AuditEvents on the auth-off server: {outcome.events_off:,} (auth off: nobody to trace)",
            "- response size: " + ", ".join(f"{label} {size:,} B" for label, size in outcome.body_bytes.items())]


def per_run(loads: list[Workload]) -> list[str]:
    lines = [f"- {w.label}: " + ", ".join(f"{r.rps:,.0f}" for r in w.results) + " req/s" for w in loads]
    lines += [f"- ratio {w.label}: " + ", ".join(f"{x:.2f}" for x in _ratios(w, loads[0])) for w in loads[1:]]
    return lines


def warnings(loads: list[Workload]) -> list[str]:
    out = []
    for load in loads:
        errors = sum(r.errors for r in load.results)
        if errors:
            out.append(f"- {load.label}: {errors} errors (socket or HTTP ≥ 400) over {len(load.results)} runs")
    return out


def report(outcome: Outcome, args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    command = shlex.join(sys.orig_argv)
    settings = (f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, {args.runs} runs, "
                "order reversed every other run; medians, ratios = medians of per-run ratios")
    sections = [["## Auth and access traces benchmark", "", f"Command: `{command}`", "", settings, ""],
                machine_facts(load_before), [""], table(outcome.workloads),
                ["", "Traces:"], traces(outcome, args.connections), ["", "Per run:"], per_run(outcome.workloads)]
    problems = warnings(outcome.workloads)
    if problems:
        sections += [["", "Warnings:"], problems]
    return "\n".join(line for section in sections for line in section) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(prog="python -m bench.auth_bench", description=__doc__.splitlines()[0])
    cli.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement (default 10)")
    cli.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    cli.add_argument("--threads", type=int, default=WRK_THREADS,
                     help=f"wrk threads (default {WRK_THREADS}: wrk and the server share the machine's cores)")
    cli.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (default 3)")
    cli.add_argument("--out", type=Path, help="also write the report (Markdown) to this file")
    args = cli.parse_args(argv)
    if min(args.duration, args.runs, args.threads) < 1:
        cli.error("--duration, --runs and --threads must be at least 1")
    if args.connections < args.threads:
        cli.error("wrk needs at least one connection per thread")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), benchmark, report)


if __name__ == "__main__":
    sys.exit(main())

"""Search benchmark: a fixed query set at two database sizes, and how latency grows with size.

    python -m bench.search_bench [--sizes 10000,1000000] [--repeats N] [--out FILE] [--keep DIR]

For each size, a database is built by loading a synthetic French mix through the server's core
(``Repository`` + ``run_transaction``, 300-entry transactions): per patient one Patient with a
valid test INS, three DocumentReferences (metadata only, no inline data and no Binary), one
Appointment and one Communication, plus a pool of organisations, practitioners and roles.
The real server (``python -m fhir_server.cli serve``) is then started on each data directory,
all at once, and one keep-alive HTTP client runs each query of the fixed set ``--repeats``
times per size, asking the sizes in turn (so machine noise hits them alike), with values that
change on every repetition (another patient, INS, name prefix or LOINC code).
The report gives p50/p99 per query and size, the largest/smallest size ratio, and the targets.

``--keep DIR`` keeps each database in ``DIR/size-N`` and reuses it on the next run (the load
figures are then those recorded when it was built). Without it everything lives in a temporary
directory, removed on exit, error, Ctrl-C or SIGTERM, like the server subprocess.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path

import httpx
import orjson

from bench.http_bench import ROOT, code_state, free_port, publish, running, server_command
from fhir_server.core import bundle as processing
from fhir_server.core.repository import Repository
from fhir_server.french.ins import OID_INS_NIR_TEST
from fhir_server.store.sqlite import SqliteStore
from fhir_server.synthetic import (
    COMMUNES,
    DEMO_ORGANIZATIONS,
    DEMO_PROFESSIONALS,
    DOC_KINDS,
    FAMILY_NAMES,
    GIVEN_FEMALE,
    GIVEN_MALE,
    DocKind,
    Professional,
    appointment_resource,
    communication_resource,
    document_reference,
    entry,
    finess,
    ins_of,
    organization_resource,
    patients,
    practitioner_resource,
    practitioner_role_resource,
    rpps,
)

SEED = 2026
RESOURCES_PER_PATIENT = 6  # Patient, 3 DocumentReference, Appointment, Communication
DOCS_PER_PATIENT = 3
PATIENTS_PER_TX = 50  # 300 entries per transaction
ORGANIZATIONS = 10
PRACTITIONERS = 40  # each with a PractitionerRole
SAMPLES = 1_000  # patients whose ids and values the queries draw from
WARMUP = 20  # untimed requests per query, with values not used by the timed ones
QUERY_BUDGET_S = 240.0  # seconds of requests per query (all sizes); a slower query stops early, its n says so
BY_PATIENT_P99_MS = 20.0  # the issue's target at the largest size
MAX_RATIO = 2.0  # the issue's target: largest / smallest size latency
DB_FILE = "mes.sqlite3"
META_FILE = "load.json"
BY_LOINC = {kind.loinc: kind for kind in DOC_KINDS.values()}


# --- the synthetic mix ---------------------------------------------------------------------------


class Urls:
    """Distinct urn:uuid fullUrls from a counter (cheap, and deterministic)."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"urn:uuid:{uuid.UUID(int=self._next, version=4)}"


@dataclass(frozen=True)
class Staff:
    """A practitioner of the pool, once stored: who they are, their reference and their organisation's."""

    pro: Professional
    ref: str
    org_ref: str


def _professionals(rng: random.Random) -> list[Professional]:
    """PRACTITIONERS professionals cycling through the demo roles (gp, cardio, dentist, nurse)."""
    pros = []
    for i in range(PRACTITIONERS):
        base = DEMO_PROFESSIONALS[i % len(DEMO_PROFESSIONALS)]
        given = rng.choice(GIVEN_FEMALE if base.gender == "female" else GIVEN_MALE)
        pros.append(dataclasses.replace(base, given=given, family=rng.choice(FAMILY_NAMES), org=i % ORGANIZATIONS))
    return pros


def pool_entries(rng: random.Random, urls: Urls) -> tuple[list[dict], list[tuple[Professional, str, str]]]:
    """Transaction entries for the organisations, practitioners and roles; (pro, url, org url) per practitioner."""
    entries, org_urls = [], []
    for i in range(ORGANIZATIONS):
        name, _, area = DEMO_ORGANIZATIONS[i % len(DEMO_ORGANIZATIONS)]
        commune = COMMUNES[i % len(COMMUNES)]
        url = urls()
        org_urls.append(url)
        org = organization_resource(f"{name} ({commune.city})", finess(rng, commune.cog[:2]), commune, area, rng)
        entries.append(entry(url, org))
    staff = []
    for pro in _professionals(rng):
        url = urls()
        entries.append(entry(url, practitioner_resource(pro, rpps(rng))))
        entries.append(entry(urls(), practitioner_role_resource(pro, url, org_urls[pro.org])))
        staff.append((pro, url, org_urls[pro.org]))
    return entries, staff


def _document(patient_url: str, doc_seed: int, staff: list[Staff], rng: random.Random) -> dict:
    """A DocumentReference by a practitioner of the right kind; metadata only (no inline data)."""
    kind = rng.choice(list(DOC_KINDS))
    author = rng.choice([s for s in staff if s.pro.key == DOC_KINDS[kind].author])
    doc = document_reference(patient_url, doc_seed, author.ref, kind)
    doc["custodian"] = {"reference": author.org_ref}
    del doc["content"][0]["attachment"]["data"]  # keeps size and hash: the database stays a sane size
    return doc


def _letter(patient_url: str, patient: dict, doc: dict, staff: list[Staff], rng: random.Random) -> dict:
    """An inbox message about the patient's document."""
    kind: DocKind = BY_LOINC[doc["type"]["coding"][0]["code"]]
    sender = rng.choice([s for s in staff if s.pro.key == kind.author])
    day = date.fromisoformat(doc["date"][:10])
    return communication_resource(patient_url, patient, sender.ref, sender.pro, kind, day, f"{day}T19:00:00+01:00")


def patient_entries(patient: dict, number: int, staff: list[Staff], rng: random.Random, urls: Urls) -> list[dict]:
    """The six entries of one patient: Patient, 3 DocumentReferences, Appointment, Communication."""
    patient_url = urls()
    docs = [_document(patient_url, SEED * 10**8 + number * DOCS_PER_PATIENT + k, staff, rng)
            for k in range(DOCS_PER_PATIENT)]
    visit = rng.choice(staff)
    name = f"{patient['name'][0]['given'][0]} {patient['name'][0]['family']}"
    appointment = appointment_resource(patient_url, name, visit.ref, visit.pro, rng)
    letter = _letter(patient_url, patient, docs[-1], staff, rng)
    return [entry(patient_url, patient), *(entry(urls(), d) for d in docs), entry(urls(), appointment),
            entry(urls(), letter)]


# --- loading -------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A built database: what is in it, how fast it loaded, and the sample the queries use."""

    resources: int
    patients: int
    seconds: float
    samples: list[dict] = field(default_factory=list)
    code: str = ""  # the commit (and edited server files) the database was built with

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds else float("nan")


def _commit(repo: Repository, entries: list[dict]) -> list[processing.Entry]:
    """One transaction through the server's core; returns the entries with their assigned ids."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    parsed = processing.parse_entries(bundle, "transaction", "", len(entries))
    processing.run_transaction(repo, parsed)
    return parsed


def _load_pool(repo: Repository, rng: random.Random, urls: Urls) -> tuple[list[Staff], int]:
    """Store the organisations and practitioners; their stored references for the patients' resources."""
    entries, pool = pool_entries(rng, urls)
    stored = {e.full_url: f"{e.type}/{e.target_id}" for e in _commit(repo, entries)}
    return [Staff(pro, stored[url], stored[org]) for pro, url, org in pool], len(entries)


def _sample(entries: list[processing.Entry]) -> dict:
    """What the queries need to know about one loaded patient (its six entries, in order)."""
    patient, *docs = (e.resource for e in entries[:1 + DOCS_PER_PATIENT])
    appointment = entries[1 + DOCS_PER_PATIENT].resource
    return {"id": entries[0].target_id, "ins": ins_of(patient),
            "docs": [[d["type"]["coding"][0]["code"], d["date"]] for d in docs],
            "appointment": appointment["start"]}


def _progress(done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  {done:>9,} / {total:,} resources  {elapsed:7.1f} s  {done / elapsed:,.0f} resources/s", flush=True)


def _batches(count: int, staff: list[Staff], rng: random.Random, urls: Urls) -> Iterator[tuple[int, list[dict]]]:
    """(number of the first patient, entries) per transaction of PATIENTS_PER_TX patients."""
    source = patients(count, SEED)
    for first in range(0, count, PATIENTS_PER_TX):
        entries = []
        for number in range(first, min(first + PATIENTS_PER_TX, count)):
            entries += patient_entries(next(source), number, staff, rng, urls)
        yield first, entries


def _samples(parsed: list[processing.Entry], first: int, stride: int) -> list[dict]:
    """The samples among a transaction's patients: every ``stride``-th patient of the whole load."""
    groups = [parsed[i:i + RESOURCES_PER_PATIENT] for i in range(0, len(parsed), RESOURCES_PER_PATIENT)]
    return [_sample(group) for k, group in enumerate(groups) if (first + k) % stride == 0]


def load(path: Path, size: int) -> Loaded:
    """Build a database of about ``size`` resources in ``path`` through the server's core."""
    rng, urls = random.Random(SEED), Urls()
    count = max(1, (size - ORGANIZATIONS - 2 * PRACTITIONERS) // RESOURCES_PER_PATIENT)
    stride = max(1, count // SAMPLES)
    store = SqliteStore(path)
    repo = Repository(store)
    started = time.perf_counter()
    samples: list[dict] = []
    try:
        staff, done = _load_pool(repo, rng, urls)
        next_report = size // 10
        for first, entries in _batches(count, staff, rng, urls):
            samples += _samples(_commit(repo, entries), first, stride)
            done += len(entries)
            if done >= next_report:
                _progress(done, size, started)
                next_report += size // 10
    finally:
        store.close()
    return Loaded(done, count, time.perf_counter() - started, samples, code_state())


def checkpoint(path: Path) -> None:
    """Fold the WAL into the database file, so its size is the database's size."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def database(root: Path, size: int) -> tuple[Path, Loaded]:
    """The data directory for ``size``: reused when a complete one is there, else built."""
    data_dir = root / f"size-{size}"
    meta = data_dir / META_FILE
    if meta.exists():
        print(f"size {size:,}: reusing {data_dir}", flush=True)
        return data_dir, Loaded(**json.loads(meta.read_text()))
    shutil.rmtree(data_dir, ignore_errors=True)  # an interrupted build
    data_dir.mkdir(parents=True)
    print(f"size {size:,}: loading into {data_dir}", flush=True)
    try:
        loaded = load(data_dir / DB_FILE, size)
        checkpoint(data_dir / DB_FILE)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    meta.write_text(json.dumps(dataclasses.asdict(loaded)))
    _progress(loaded.resources, loaded.resources, time.perf_counter() - loaded.seconds)
    return data_dir, loaded


def open_schema(data_dir: Path) -> float:
    """Open the store once with the code on disk now, in a subprocess without a start-up timeout.

    The store brings an older database's indexes up to date when it opens; on a large database
    that takes a while, and the server's start must not pay it inside its readiness wait.
    """
    started = time.perf_counter()
    script = "import sys; from fhir_server.store.sqlite import SqliteStore; SqliteStore(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", script, str(data_dir / DB_FILE)], check=True, cwd=ROOT)
    return time.perf_counter() - started


def db_bytes(data_dir: Path) -> int:
    """The database file plus its WAL and shared-memory files."""
    return sum(p.stat().st_size for p in data_dir.glob(DB_FILE + "*"))


# --- the query set -------------------------------------------------------------------------------


Params = list[tuple[str, str]]


def _accented_prefixes() -> list[str]:
    """Upper-case prefixes ending on an accented letter (HÉL for Hélène): accents and case differ from most entries."""
    out = []
    for name in (*FAMILY_NAMES, *GIVEN_FEMALE, *GIVEN_MALE):
        upper = name.upper()
        cut = next((i for i, ch in enumerate(upper) if not ch.isascii()), None)
        if cut is not None and cut < 5:
            out.append(upper[:max(cut + 1, 3)])
    return sorted(set(out))


PREFIXES = _accented_prefixes()
LOINC_CODES = sorted(BY_LOINC)


def _ins(s: dict) -> str:
    return f"{OID_INS_NIR_TEST}|{s['ins']}"


def q_identifier(s: dict, i: int) -> tuple[str, Params]:
    return "Patient", [("identifier", _ins(s))]


def q_name(s: dict, i: int) -> tuple[str, Params]:
    return "Patient", [("name", PREFIXES[i % len(PREFIXES)]), ("_count", "20")]


def q_documents(s: dict, i: int) -> tuple[str, Params]:
    code, when = s["docs"][i % DOCS_PER_PATIENT]
    since = (date.fromisoformat(when[:10]) - timedelta(days=30)).isoformat()
    return "DocumentReference", [("patient", s["id"]), ("type", f"http://loinc.org|{code}"), ("date", f"ge{since}"),
                                 ("_sort", "-date")]


def q_appointments(s: dict, i: int) -> tuple[str, Params]:
    start = date.fromisoformat(s["appointment"][:10]) - timedelta(days=7)
    return "Appointment", [("patient", s["id"]), ("date", f"ge{start}"), ("date", f"lt{start + timedelta(days=30)}")]


def q_chain(s: dict, i: int) -> tuple[str, Params]:
    return "DocumentReference", [("patient.identifier", _ins(s))]


def q_include(s: dict, i: int) -> tuple[str, Params]:
    return "DocumentReference", [("patient", s["id"]), ("_include", "DocumentReference:subject")]


def q_revinclude(s: dict, i: int) -> tuple[str, Params]:
    return "Patient", [("_id", s["id"]), ("_revinclude", "DocumentReference:subject")]


def q_has(s: dict, i: int) -> tuple[str, Params]:
    code = LOINC_CODES[i % len(LOINC_CODES)]
    return "Patient", [("_has:DocumentReference:patient:type", f"http://loinc.org|{code}"), ("_count", "20")]


@dataclass(frozen=True)
class Query:
    name: str
    shape: str  # the URL pattern shown in the report
    build: Callable[[dict, int], tuple[str, Params]]
    by_patient: bool  # under the issue's p99 < 20 ms target at the largest size


QUERIES = (
    Query("identifier", "Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|INS", q_identifier, True),
    Query("name prefix", "Patient?name=HÉL&_count=20", q_name, False),
    Query("docs by patient", "DocumentReference?patient=ID&type=LOINC&date=geD&_sort=-date", q_documents, True),
    Query("appointments by patient", "Appointment?patient=ID&date=geD1&date=ltD2", q_appointments, True),
    Query("chain", "DocumentReference?patient.identifier=…|INS", q_chain, False),
    Query("_include", "DocumentReference?patient=ID&_include=DocumentReference:subject", q_include, False),
    Query("_revinclude", "Patient?_id=ID&_revinclude=DocumentReference:subject", q_revinclude, False),
    Query("_has", "Patient?_has:DocumentReference:patient:type=LOINC&_count=20", q_has, False),
)


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Timing:
    """One query at one size."""

    latencies_ms: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    included: list[int] = field(default_factory=list)
    unsupported: str | None = None  # the server's own words, when it ignored a parameter

    def pct(self, q: float) -> float:
        """Nearest-rank percentile."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def _unsupported(entries: list[dict]) -> str | None:
    """The diagnostics of an outcome entry reporting ignored (unsupported) parameters."""
    for item in entries:
        resource = item.get("resource", {})
        if resource.get("resourceType") == "OperationOutcome":
            for issue in resource.get("issue", []):
                if issue.get("code") == "not-supported":
                    return issue.get("diagnostics", "not supported")
    return None


def _get(client: httpx.Client, base: str, query: Query, sample: dict, i: int) -> tuple[float, dict]:
    """One timed request (sending, server work, reading the whole body); the parsed Bundle."""
    resource_type, params = query.build(sample, i)
    started = time.perf_counter()
    response = client.get(f"{base}/fhir/{resource_type}", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url} -> {response.status_code}: {response.text[:500]}")
    return elapsed, orjson.loads(response.content)


@dataclass(frozen=True)
class Server:
    """One running server and the patients its queries draw values from."""

    size: int
    base: str
    samples: list[dict]


def _record(timing: Timing, elapsed: float, found: dict) -> None:
    entries = found.get("entry", [])
    timing.latencies_ms.append(elapsed)
    timing.matches.append(sum(e.get("search", {}).get("mode") == "match" for e in entries))
    timing.included.append(sum(e.get("search", {}).get("mode") == "include" for e in entries))
    timing.unsupported = timing.unsupported or _unsupported(entries)


def measure(client: httpx.Client, servers: list[Server], query: Query, repeats: int) -> dict[int, Timing]:
    """WARMUP untimed requests per server, then ``repeats`` timed rounds, each with other values.

    A round asks every server once, the order alternating between rounds, so a noisy moment of
    the machine hits all sizes alike and the ratios compare like with like.
    """
    timings = {s.size: Timing() for s in servers}
    for i in range(WARMUP):
        for s in servers:
            _get(client, s.base, query, s.samples[-1 - i % len(s.samples)], i)
    spent = 0.0
    for i in range(repeats):
        for s in servers if i % 2 == 0 else servers[::-1]:
            elapsed, found = _get(client, s.base, query, s.samples[i % len(s.samples)], i)
            _record(timings[s.size], elapsed, found)
            spent += elapsed / 1000
        if spent > QUERY_BUDGET_S:
            break
    return timings


def _show(query: Query, timings: dict[int, Timing]) -> None:
    cells = [f"{_label(size)} {t.pct(0.5):8.2f} / {t.pct(0.99):8.2f} ms (n={len(t.latencies_ms)}, "
             f"{statistics.mean(t.matches):.1f} matches)" for size, t in timings.items()]
    note = next((f"  ({t.unsupported})" for t in timings.values() if t.unsupported), "")
    print(f"  {query.name:<24} " + "   ".join(cells) + note, flush=True)


def run_queries(data_dirs: dict[int, Path], samples: dict[int, list[dict]], repeats: int,
                log_dir: Path) -> dict[int, dict[str, Timing]]:
    """Start the real server on every data directory; time every query over one keep-alive client."""
    results: dict[int, dict[str, Timing]] = {size: {} for size in data_dirs}
    with ExitStack() as stack:
        servers = []
        for size, data_dir in data_dirs.items():
            port = free_port()
            cmd, env = server_command(port, data_dir)
            base = stack.enter_context(running(cmd, port, log_dir / f"server-{data_dir.name}.log", env))
            order = random.Random(SEED).sample(samples[size], len(samples[size]))  # spread over the whole load
            servers.append(Server(size, base, order))
        client = stack.enter_context(httpx.Client(trust_env=False, timeout=300))
        print(f"servers: {', '.join(f'{_label(s.size)} on {s.base}' for s in servers)}; "
              f"p50 / p99 per query", flush=True)
        for query in QUERIES:
            timings = measure(client, servers, query, repeats)
            _show(query, timings)
            for size, timing in timings.items():
                results[size][query.name] = timing
    return results


# --- report --------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    loaded: Loaded
    db_bytes: int
    timings: dict[str, Timing]
    served_code: str = ""


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1_000}k" if size % 1_000 == 0 else str(size)


def _cell(t: Timing) -> str:
    if t.unsupported:
        return "not supported yet"
    return f"{t.pct(0.5):.2f} / {t.pct(0.99):.2f}"


def _verdict(query: Query, small: Timing, large: Timing, two_sizes: bool) -> tuple[str, str]:
    """(ratio cell, target cell) for one query."""
    if small.unsupported or large.unsupported:
        return "–", "not supported yet"
    checks, parts = [], []
    ratio99, ratio50 = large.pct(0.99) / small.pct(0.99), large.pct(0.5) / small.pct(0.5)
    if query.by_patient:
        checks.append(large.pct(0.99) < BY_PATIENT_P99_MS)
        parts.append(f"p99 < {BY_PATIENT_P99_MS:.0f} ms")
    if two_sizes:
        checks.append(ratio99 <= MAX_RATIO and ratio50 <= MAX_RATIO)
        parts.append(f"ratio ≤ {MAX_RATIO:g}")
    ratio = f"{ratio99:.2f} ({ratio50:.2f})" if two_sizes else "–"
    if not checks:
        return ratio, "–"
    return ratio, f"{' and '.join(parts)}: **{'met' if all(checks) else 'NOT met'}**"


def table(results: list[SizeResult]) -> list[str]:
    small, large = results[0], results[-1]
    two = len(results) > 1
    heads = ["query", *(f"p50 / p99 at {_label(r.size)} (ms)" for r in results), "ratio p99 (p50)", "target"]
    lines = ["| " + " | ".join(heads) + " |", "|---|" + "--:|" * (len(results) + 1) + "---|"]
    for query in QUERIES:
        cells = [_cell(r.timings[query.name]) for r in results]
        ratio, target = _verdict(query, small.timings[query.name], large.timings[query.name], two)
        lines.append(f"| {query.name} | " + " | ".join(cells) + f" | {ratio} | {target} |")
    return lines


def details(results: list[SizeResult]) -> list[str]:
    """Per size: the load, the database, and what each query returned on average."""
    lines = []
    for r in results:
        lines.append(f"- {_label(r.size)}: {r.loaded.resources:,} resources ({r.loaded.patients:,} patients) loaded in "
                     f"{r.loaded.seconds:,.0f} s = **{r.loaded.rate:,.0f} resources/s**; database "
                     f"{r.db_bytes / 2**20:,.0f} MiB")
        counts = ", ".join(f"{name} {statistics.mean(t.matches):.1f}"
                           + (f"+{statistics.mean(t.included):.1f} incl." if any(t.included) else "")
                           + f" (n={len(t.latencies_ms)})" for name, t in r.timings.items())
        lines.append(f"  - mean matches per request: {counts}")
        lines.append(f"  - code: built with {r.loaded.code or 'unknown'}, served with {r.served_code}")
    return lines


def machine_facts(load_before: tuple[float, float, float]) -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {os.cpu_count()} logical cores (nproc {len(os.sched_getaffinity(0))}), {cpu}; RAM {memory:.0f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, uvicorn {metadata.version('uvicorn')}, httpx {httpx.__version__}, "
        f"SQLite {sqlite3.sqlite_version}",
        f"- code: {code_state()}",
        f"- load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def report(results: list[SizeResult], args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    how = (f"All sizes served at once (one server each); one keep-alive client, sequential requests. Per query "
           f"{WARMUP} warm-up requests per size, then {args.repeats} timed rounds that ask each size once (order "
           "alternating), each round with other values (another patient, INS, prefix or code). "
           "Latency = send to last body byte, in ms.")
    if len(results) > 1:
        how += f" Ratio = {_label(results[-1].size)} / {_label(results[0].size)}, of p99 (of p50)."
    shapes = [f"- {q.name}: `{q.shape}`" for q in QUERIES]
    sections = [["## Search benchmark", "", f"Command: `{shlex.join(sys.orig_argv)}`", "", how, ""],
                machine_facts(load_before), [""], table(results), ["", "Loads and results:"], details(results),
                ["", "Queries:"], shapes]
    return "\n".join(line for section in sections for line in section) + "\n"


# --- main ----------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 100:
        raise argparse.ArgumentTypeError("sizes are resource counts of at least 100, e.g. 10000,1000000")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(prog="python -m bench.search_bench", description=__doc__.splitlines()[0])
    cli.add_argument("--sizes", type=_sizes, default=[10_000, 1_000_000],
                     help="database sizes in resources, comma-separated (default 10000,1000000)")
    cli.add_argument("--repeats", type=int, default=200, help="timed requests per query and size (default 200)")
    cli.add_argument("--out", type=Path, help="also write the report (Markdown) to this file")
    cli.add_argument("--keep", type=Path, help="keep the databases in this directory and reuse them next time")
    args = cli.parse_args(argv)
    if args.repeats < 1:
        cli.error("--repeats must be at least 1")
    return args


def benchmark(args: argparse.Namespace, root: Path) -> list[SizeResult]:
    """Build (or reuse) every database, then query all sizes side by side."""
    data_dirs, loads = {}, {}
    for size in args.sizes:
        data_dirs[size], loads[size] = database(root, size)
        print(f"size {size:,}: schema opened in {open_schema(data_dirs[size]):.1f} s", flush=True)
    served = code_state()
    timings = run_queries(data_dirs, {size: loaded.samples for size, loaded in loads.items()}, args.repeats, root)
    return [SizeResult(size, loads[size], db_bytes(data_dirs[size]), timings[size], served) for size in args.sizes]


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    load_before = os.getloadavg()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mes-search-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        results = benchmark(args, root)
    except KeyboardInterrupt:
        print("interrupted; server stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    publish(report(results, args, load_before), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""HTTP benchmark: the FHIR server side by side with a bare ASGI app serving the same bytes.

    python -m bench.http_bench [--duration S] [--connections N] [--runs K] [--out FILE]

One run starts the real server (``python -m fhir_server.cli serve`` on a temporary data
directory), seeds it through its own API, then starts ``bench/bare_asgi.py`` (a framework-free
ASGI app under the same uvicorn settings) primed with the exact bytes the server returned.
wrk loads both with the same scripts (bench/wrk/*.lua): read-by-id, create, update, then
100-entry transaction bundles on the server alone. Each measurement is repeated ``--runs``
times, alternating which of server and baseline goes first; the table shows medians, and
ratios are medians of per-run ratios, so both sides of a ratio saw the same machine state.

Only 127.0.0.1 is loaded, every wrk call is bounded by ``--duration``, and both subprocesses
and the temporary directory are removed on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import orjson

from fhir_server.french.ins import nir_key, with_key
from fhir_server.synthetic import entry, ins_of, patients

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "bench" / "wrk"
HOST = "127.0.0.1"  # loopback only
FHIR_JSON = "application/fhir+json"
SEED = 2026
SEED_PATIENTS = 1_000
BUNDLE_ENTRIES = 100
POOL_SIZE = 200  # Patient templates per pool: 200 x 999 birth orders = ~200k distinct INS per measurement
WRK_THREADS = 1  # default of --threads: one wrk thread leaves the server (one event loop) the other core
WARMUP_S = 2
READY_TIMEOUT_S = 30
CANNED_HEADERS = ("content-type", "etag", "last-modified", "location")  # copied to the baseline's answers
READ_TARGET = 0.50  # read req/s as a share of the baseline's (the target)
BUNDLE_TARGET = 1_500  # resources/s through 100-entry transaction bundles (the target)

# Plain urllib without proxies: an http_proxy in the environment must not see loopback traffic.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk measurement, from the line bench/wrk/common.lua prints in done()."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors plus HTTP statuses >= 400
    status_errors: int
    overflow: int  # requests that reused an INS because the pool was too small

    @property
    def rps(self) -> float:
        """Successful requests per second: error answers are not throughput."""
        return (self.requests - self.status_errors) / self.duration_s


@dataclass
class Series:
    """The runs of one workload: server results and, where there is one, the baseline's."""

    label: str
    server: list[WrkResult] = field(default_factory=list)
    baseline: list[WrkResult] = field(default_factory=list)
    per_request: int = 1  # resources per request (100 for the bundles)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel says is free on the loopback address."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request (``headers``: extra ones, e.g. Authorization); an HTTP error status becomes an
    exception with the server's explanation."""
    sent = ({"Content-Type": FHIR_JSON} if body is not None else {}) | (headers or {})
    request = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with _HTTP.open(request, timeout=120) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {url} -> {error.code}: {error.read()[:500]!r}") from None


def _wait_ready(process: subprocess.Popen, url: str, log_path: Path) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log, if the process dies."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if http("GET", url)[0] == 200:
                return
        except (OSError, RuntimeError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {READY_TIMEOUT_S}s:\n{log_path.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (uvicorn shuts down cleanly), SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(cmd: list[str], port: int, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``cmd`` until the block ends; yields its base URL once ``/fhir/metadata`` answers."""
    with log_path.open("wb") as log:
        # Own session: a Ctrl-C in the terminal reaches only us, and we stop the child ourselves.
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            base = f"http://{HOST}:{port}"
            _wait_ready(process, f"{base}/fhir/metadata", log_path)
            yield base
        finally:
            _stop(process)


def server_command(port: int, data_dir: Path, auth: str = "off") -> tuple[list[str], dict[str, str]]:
    """The real server, configured only through its documented MES_* variables. Authentication is
    off unless asked for: these benchmarks measure the HTTP path and the engine, bench/auth_bench.py
    measures what auth and traces add."""
    env = os.environ | {"MES_HOST": HOST, "MES_PORT": str(port), "MES_DATA_DIR": str(data_dir), "MES_AUTH": auth,
                        "MES_MLLP_PORT": "0", "MES_SMTP_PORT": "0"}
    return [sys.executable, "-m", "fhir_server.cli", "serve"], env


def baseline_command(port: int, responses: Path) -> list[str]:
    return [sys.executable, "-m", "bench.bare_asgi", "--host", HOST, "--port", str(port), "--responses", str(responses)]


# --- data ------------------------------------------------------------------------------------


class UniquePatients:
    """Synthetic Patients whose INS never repeat: across the seed data and every wrk pool.

    Pools vary the 3-digit birth order of their templates (see bench/wrk/common.lua), so a pool
    template must not share its 10-character NIR prefix with any other Patient handed out.
    """

    def __init__(self, seed: int) -> None:
        self._stream = patients(10**7, seed)  # a lazy generator: only what is taken is built
        self._prefixes: set[str] = set()

    def take(self, count: int) -> list[dict]:
        """The next ``count`` Patients (distinct INS; prefixes may repeat among them)."""
        out = [next(self._stream) for _ in range(count)]
        self._prefixes.update(ins_of(p)[:10] for p in out)
        return out

    def templates(self, count: int) -> list[dict]:
        """``count`` Patients whose NIR prefixes nobody else has."""
        out: list[dict] = []
        while len(out) < count:
            patient = next(self._stream)
            prefix = ins_of(patient)[:10]
            if prefix not in self._prefixes:
                self._prefixes.add(prefix)
                out.append(patient)
        return out


def _pool_line(patient: dict) -> str:
    """``prefix TAB key_base TAB json-with-@INS@`` for bench/wrk/common.lua."""
    ins = ins_of(patient)
    prefix = ins[:10]
    key_base = (97 - int(nir_key(prefix + "000"))) % 97  # (prefix * 1000) mod 97, Corsica included
    assert with_key(prefix + "001")[-2:] == f"{97 - (key_base + 1) % 97:02d}", "Lua key formula drifted"
    text = orjson.dumps(patient).decode()
    assert "\t" not in text and "\n" not in text
    return f"{prefix}\t{key_base}\t{text.replace(ins, '@INS@')}"


def write_pool(source: UniquePatients, path: Path) -> Path:
    """A fresh pool of templates: every server-side create/bundle measurement gets its own INS."""
    path.write_text("".join(_pool_line(p) + "\n" for p in source.templates(POOL_SIZE)))
    return path


def transaction(resources: list[dict]) -> bytes:
    """A transaction Bundle POSTing each resource under its own urn:uuid."""
    entries = [entry(f"urn:uuid:00000000-0000-4000-8000-{i:012x}", r) for i, r in enumerate(resources)]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def seed(base: str, source: UniquePatients, count: int) -> list[str]:
    """Load ``count`` Patients through the real API in 100-entry transactions; returns their ids."""
    ids = []
    for _ in range(0, count, BUNDLE_ENTRIES):
        _, _, body = http("POST", f"{base}/fhir", transaction(source.take(BUNDLE_ENTRIES)))
        for item in orjson.loads(body)["entry"]:
            ids.append(item["response"]["location"].split("/")[1])  # Patient/<id>/_history/1
    return ids


def canned(response: tuple[int, dict[str, str], bytes]) -> dict:
    """A real response as the baseline replays it: status, the headers that matter, exact body."""
    status, headers, body = response
    kept = [[name, headers[name]] for name in CANNED_HEADERS if name in headers]
    return {"status": status, "headers": kept, "body_b64": base64.b64encode(body).decode()}


# --- wrk -------------------------------------------------------------------------------------


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on PATH. Install it (Debian/Ubuntu): apt-get install -y wrk")


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0]


def run_wrk(url: str, script: str, args: list[str], threads: int, connections: int, duration: int,
            headers: dict[str, str] | None = None) -> WrkResult:
    """One bounded wrk run; the numbers come from the WRK_RESULT line of common.lua's done().
    ``headers`` are added to every request (wrk's ``-H``), e.g. an Authorization bearer token."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "30s", *extra,
           "-s", str(WRK_DIR / script), url, "--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 90, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(requests=data["requests"], duration_s=data["duration_us"] / 1e6,
                     p50_ms=data["p50_us"] / 1e3, p99_ms=data["p99_us"] / 1e3,
                     errors=sum(data["errors"].values()), status_errors=data["errors"]["status"],
                     overflow=data["overflow"])


# --- the benchmark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Everything the workloads need once both processes run."""

    server: str
    baseline: str
    read_id: str
    update_id: str
    update_body: Path
    source: UniquePatients
    tmp: Path
    threads: int
    connections: int
    bundle_connections: int
    duration: int


def _show(label: str, who: str, result: WrkResult) -> None:
    errors = f", {result.errors} errors" if result.errors else ""
    print(f"  {label:<9} {who:<8} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:7.2f} ms"
          f"  p99 {result.p99_ms:7.2f} ms{errors}", flush=True)


def measure_pair(s: Setup, series: Series, run: int, path: str, script: str, args: list[str]) -> None:
    """Server and baseline back to back with the same wrk script, the first one alternating between runs."""
    order = ("server", "baseline") if run % 2 == 0 else ("baseline", "server")
    for who in order:
        base = s.server if who == "server" else s.baseline
        result = run_wrk(base + path, script, args, s.threads, s.connections, s.duration)
        getattr(series, who).append(result)
        _show(series.label, who, result)


def run_all(s: Setup, runs: int) -> list[Series]:
    read, create, update = Series("read"), Series("create"), Series("update")
    bundles = Series("bundle", per_request=BUNDLE_ENTRIES)
    for run in range(runs):
        print(f"run {run + 1}/{runs}", flush=True)
        measure_pair(s, read, run, f"/fhir/Patient/{s.read_id}", "read.lua", [])
        pool = [str(write_pool(s.source, s.tmp / f"create-{run}.tsv")), str(s.threads)]
        measure_pair(s, create, run, "/fhir/Patient", "create.lua", pool)  # the baseline stores nothing
        measure_pair(s, update, run, f"/fhir/Patient/{s.update_id}", "update.lua", [str(s.update_body)])
        pool = [str(write_pool(s.source, s.tmp / f"bundle-{run}.tsv")), str(s.threads), str(BUNDLE_ENTRIES)]
        result = run_wrk(s.server + "/fhir", "bundle.lua", pool, s.threads, s.bundle_connections, s.duration)
        bundles.server.append(result)
        _show("bundle", "server", result)
        print(f"  {'':<9} {'':<8} {result.rps * BUNDLE_ENTRIES:>9,.0f} resources/s", flush=True)
    return [read, create, update, bundles]


def prepare(tmp: Path, server: str, source: UniquePatients) -> tuple[str, str, Path, Path]:
    """Seed the server; write the baseline's canned responses and the update body."""
    ids = seed(server, source, SEED_PATIENTS)
    read_id, update_id = ids[0], ids[1]  # the read target is never written to, so its bytes stay put
    read = http("GET", f"{server}/fhir/Patient/{read_id}")
    created = http("POST", f"{server}/fhir/Patient", orjson.dumps(source.take(1)[0]))
    responses = tmp / "responses.json"
    responses.write_text(json.dumps({"read": canned(read), "write": canned(created)}))
    update_body = tmp / "update.json"
    update_body.write_bytes(http("GET", f"{server}/fhir/Patient/{update_id}")[2])
    return read_id, update_id, responses, update_body


def benchmark(args: argparse.Namespace) -> list[Series]:
    tmp = Path(tempfile.mkdtemp(prefix="mes-bench-"))
    try:
        source = UniquePatients(SEED)
        server_port, baseline_port = free_port(), free_port()
        cmd, env = server_command(server_port, tmp / "data")
        with running(cmd, server_port, tmp / "server.log", env) as server:
            print(f"server on {server}, seeding {SEED_PATIENTS} Patients...", flush=True)
            read_id, update_id, responses, update_body = prepare(tmp, server, source)
            with running(baseline_command(baseline_port, responses), baseline_port, tmp / "baseline.log") as baseline:
                print(f"baseline on {baseline}; warm-up {WARMUP_S}s each", flush=True)
                for base in (server, baseline):
                    run_wrk(f"{base}/fhir/Patient/{read_id}", "read.lua", [], args.threads, args.connections, WARMUP_S)
                setup = Setup(server, baseline, read_id, update_id, update_body, source, tmp, args.threads,
                              args.connections, args.bundle_connections, args.duration)
                return run_all(setup, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- report ----------------------------------------------------------------------------------


def code_state() -> str:
    """The commit measured, and which server files differed from it (read-only git calls)."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        return out.stdout.rstrip()

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown (no git)"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "fhir_server").splitlines()]
    return f"{head} + uncommitted changes to {', '.join(changed)}" if changed else head


def machine_facts(load_before: tuple[float, float, float]) -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or "?")
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {os.cpu_count()} logical cores (nproc {len(os.sched_getaffinity(0))}), {cpu}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, uvicorn {metadata.version('uvicorn')}, "
        f"starlette {metadata.version('starlette')}, SQLite {sqlite3.sqlite_version}",
        f"- load generator: {wrk_version()}",
        f"- code: {code_state()}",
        f"- load average (1/5/15 min) before the run: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def table(series: list[Series]) -> list[str]:
    columns = ("workload", "server req/s", "baseline req/s", "ratio", "server p50", "server p99", "baseline p50",
               "baseline p99")
    lines = ["| " + " | ".join(columns) + " |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for s in series:
        server_rps = median([r.rps for r in s.server])
        if s.baseline:
            ratios = [a.rps / b.rps for a, b in zip(s.server, s.baseline, strict=True)]
            base = [f"{median([r.rps for r in s.baseline]):,.0f}", f"{median(ratios):.2f}",
                    _ms(median([r.p50_ms for r in s.server])), _ms(median([r.p99_ms for r in s.server])),
                    _ms(median([r.p50_ms for r in s.baseline])), _ms(median([r.p99_ms for r in s.baseline]))]
            lines.append(f"| {s.label} | {server_rps:,.0f} | " + " | ".join(base) + " |")
        else:
            resources = median([r.rps * s.per_request for r in s.server])
            lines.append(f"| transaction bundle ({s.per_request} entries) | {server_rps:,.1f} bundles/s "
                         f"= **{resources:,.0f} resources/s** | – | – | {_ms(median([r.p50_ms for r in s.server]))}"
                         f" | {_ms(median([r.p99_ms for r in s.server]))} | – | – |")
    return lines


def verdicts(series: list[Series]) -> list[str]:
    """The issue's two targets, reported (not asserted: speed is measured, never a test)."""
    read, bundles = series[0], series[-1]
    ratio = median([a.rps / b.rps for a, b in zip(read.server, read.baseline, strict=True)])
    resources = median([r.rps * BUNDLE_ENTRIES for r in bundles.server])
    met = {True: "met", False: "NOT met"}
    return [f"- read ≥ {READ_TARGET:.0%} of the baseline's req/s: {ratio:.0%} → {met[ratio >= READ_TARGET]}",
            f"- ≥ {BUNDLE_TARGET:,} resources/s through {BUNDLE_ENTRIES}-entry transactions: {resources:,.0f} → "
            f"{met[resources >= BUNDLE_TARGET]}"]


def warnings(series: list[Series]) -> list[str]:
    out = []
    for s in series:
        for who, results in (("server", s.server), ("baseline", s.baseline)):
            errors, overflow = sum(r.errors for r in results), sum(r.overflow for r in results)
            if errors:
                out.append(f"- {s.label}/{who}: {errors} errors (socket or HTTP ≥ 400) over {len(results)} runs")
            if overflow and who == "server":  # the baseline stores nothing, so a reused INS is harmless there
                out.append(f"- {s.label}/{who}: {overflow} requests reused an INS (POOL_SIZE too small)")
    return out


def per_run(series: list[Series]) -> list[str]:
    lines = []
    for s in series:
        for who, results in (("server", s.server), ("baseline", s.baseline)):
            if results:
                values = ", ".join(f"{r.rps * s.per_request:,.0f}" for r in results)
                unit = "resources/s" if s.per_request > 1 else "req/s"
                lines.append(f"- {s.label} {who}: {values} {unit}")
    return lines


def report(series: list[Series], args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    command = shlex.join(sys.orig_argv)
    settings = (f"wrk -t{args.threads} -c{args.connections} (bundles: -c{args.bundle_connections}) -d{args.duration}s"
                f" --latency, {args.runs} runs, medians")
    sections = [["## HTTP benchmark", "", f"Command: `{command}`", "", settings, ""], machine_facts(load_before), [""],
                table(series), ["", "Targets:"], verdicts(series), ["", "Per run:"], per_run(series)]
    problems = warnings(series)
    if problems:
        sections += [["", "Warnings:"], problems]
    return "\n".join(line for section in sections for line in section) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(prog="python -m bench.http_bench", description=__doc__.splitlines()[0])
    cli.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement (default 10)")
    cli.add_argument("--connections", type=int, default=32, help="wrk connections for read/create/update (32)")
    cli.add_argument("--bundle-connections", type=int, default=4,
                     help="wrk connections for the transaction bundles (4: the writes serialise anyway)")
    cli.add_argument("--threads", type=int, default=WRK_THREADS,
                     help=f"wrk threads (default {WRK_THREADS}: wrk and the server share the machine's cores)")
    cli.add_argument("--runs", type=int, default=3, help="repetitions; the table shows medians (default 3)")
    cli.add_argument("--out", type=Path, help="also write the report (Markdown) to this file")
    args = cli.parse_args(argv)
    if min(args.duration, args.runs, args.threads) < 1:
        cli.error("--duration, --runs and --threads must be at least 1")
    if min(args.connections, args.bundle_connections) < args.threads:
        cli.error("wrk needs at least one connection per thread")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the subprocesses


def run_main(args: argparse.Namespace, benchmark: Callable, report: Callable) -> int:
    """A wrk benchmark's main: run it, stop cleanly on Ctrl-C or SIGTERM, print (and write) its report."""
    require_wrk()
    signal.signal(signal.SIGTERM, _terminate)
    load_before = os.getloadavg()
    try:
        outcome = benchmark(args)
    except KeyboardInterrupt:
        print("interrupted; subprocesses stopped and temporary files removed", file=sys.stderr)
        return 130
    publish(report(outcome, args, load_before), args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(parse_args(argv), benchmark, report)


def publish(text: str, out: Path | None) -> None:
    """Print a report, and write it to ``out`` when given (shared by the benchmarks)."""
    print("\n" + text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"written to {out}")


if __name__ == "__main__":
    sys.exit(main())

"""HL7 v2 gateway benchmark: ADT^A04 messages acknowledged per second over MLLP, over one
connection and over 8, side by side with the same registrations through the FHIR API.

    python -m bench.mllp_bench [--messages N] [--runs R] [--out FILE]

One run starts a real server (``python -m fhir_server.cli serve``, 127.0.0.1, a temporary data
directory, the MLLP listener on a free port) and sends N distinct A04 messages (a new patient
each: INS, IPP, names, address, phone, identity reliability) over one MLLP connection, one at a
time, each waiting for its AA; then N more spread over 8 connections. The baseline registers the
same patients through FHIR: a conditional update ``PUT /fhir/Patient?identifier=<INS>`` of the
Patient the gateway would write, over one and 8 keep-alive HTTP connections. Clients are Python
threads on the same machine. Runs alternate which door goes first; the table gives medians, and
ratios are medians of per-run ratios.

The parser table compares, in-process, what the gateway does per message with what hl7apy does
(the reason it is kept off the hot path).

The server and the temporary directory are removed on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from bench.cda_bench import Measured
from bench.http_bench import free_port, machine_facts, median, publish, running, server_command
from fhir_server.synthetic_cda import spec
from fhir_server.synthetic_v2 import adt, patient_of
from hl7v2 import ack
from hl7v2.client import MllpClient
from hl7v2.er7 import parse
from hl7v2.patient import read_pid
from hl7v2.validate import structure_problems

TARGET = 500  # messages/s (the target)
CONNECTIONS = (1, 8)
CLIENT = "Python threads on the same machine, one message at a time per connection"


def workload(count: int, run: int, part: int) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """``count`` new patients: their A04 messages, and the same Patients as FHIR conditional updates."""
    messages, updates = [], []
    for i in range(count):
        n = (run * 10 + part) * 1_000_000 + i
        p = patient_of(spec(seed=n), ipp=f"B{n}", email=f"p{n}@exemple.fr")
        message = adt("A04", p, f"R{run}P{part}N{i}")
        messages.append(message)
        resource = read_pid(parse(message).first("PID")).resource
        query = urlencode({"identifier": f"urn:oid:1.2.250.1.213.1.4.10|{p.ins}"})
        updates.append((f"/fhir/Patient?{query}", json.dumps(resource).encode()))
    return messages, updates


def spread(items: list, connections: int, send: Callable[[list], list[float]]) -> tuple[float, list[float]]:
    """Send ``items`` over ``connections`` threads; elapsed seconds and every latency."""
    shares = [items[i::connections] for i in range(connections)]
    latencies: list[list[float]] = [[] for _ in shares]
    threads = [threading.Thread(target=lambda i=i: latencies[i].extend(send(shares[i]))) for i in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, [x for part in latencies for x in part]


def mllp_sender(port: int) -> Callable[[list[bytes]], list[float]]:
    def send(messages: list[bytes]) -> list[float]:
        out = []
        with MllpClient("127.0.0.1", port) as client:
            for message in messages:
                start = time.perf_counter()
                answer = client.send(message)
                out.append(time.perf_counter() - start)
                if b"MSA|AA|" not in answer:
                    raise RuntimeError(f"not accepted: {answer[:300]!r}")
        return out
    return send


def http_sender(port: int) -> Callable[[list[tuple[str, bytes]]], list[float]]:
    def send(updates: list[tuple[str, bytes]]) -> list[float]:
        out = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for path, body in updates:
                start = time.perf_counter()
                connection.request("PUT", path, body, {"Content-Type": "application/fhir+json"})
                response = connection.getresponse()
                response.read()
                out.append(time.perf_counter() - start)
                if response.status not in (200, 201):
                    raise RuntimeError(f"HTTP {response.status}")
        finally:
            connection.close()
        return out
    return send


def record(m: Measured, count: int, elapsed: float, latencies: list[float]) -> None:
    latencies.sort()
    m.rate.append(count / elapsed)
    m.p50.append(latencies[len(latencies) // 2] * 1000)
    m.p99.append(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000)


def benchmark(args: argparse.Namespace) -> dict[tuple[str, int], Measured]:
    tmp = Path(tempfile.mkdtemp(prefix="mes-mllp-bench-"))
    measured = {(door, c): Measured() for door in ("MLLP", "FHIR") for c in CONNECTIONS}
    try:
        port, mllp_port = free_port(), free_port()
        cmd, env = server_command(port, tmp / "data")
        env["MES_MLLP_PORT"] = str(mllp_port)
        with running(cmd, port, tmp / "server.log", env):
            warm_messages, warm_updates = workload(50, 99, 0)
            mllp_sender(mllp_port)(warm_messages)
            http_sender(port)(warm_updates)
            for run in range(args.runs):
                for part, connections in enumerate(CONNECTIONS):
                    messages, updates = workload(args.messages, run, part)
                    doors = [("MLLP", messages, mllp_sender(mllp_port)), ("FHIR", updates, http_sender(port))]
                    for door, items, send in (doors if run % 2 == 0 else doors[::-1]):
                        elapsed, latencies = spread(items, connections, send)
                        record(measured[(door, connections)], len(items), elapsed, latencies)
                        print(f"run {run + 1}/{args.runs} {door} × {connections}: "
                              f"{measured[(door, connections)].rate[-1]:,.0f} messages/s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return measured


def parsers(rounds: int = 200) -> list[tuple[str, float, float]]:
    """(step, ours µs, hl7apy µs) per A04 message, in-process."""
    from hl7apy.core import Message as HMessage
    from hl7apy.parser import parse_message

    message = adt("A04", patient_of(spec()), "P1")
    text = message.decode().strip("\r")
    parsed = parse(message)

    def per_call(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        return (time.perf_counter() - start) / rounds * 1e6

    def hl7apy_ack() -> str:
        answer = HMessage("ACK", version="2.5")
        answer.msh.msh_9 = "ACK^A04^ACK"
        answer.msa.msa_1 = "AA"
        answer.msa.msa_2 = "P1"
        return answer.to_er7()

    return [("parse the message", per_call(lambda: parse(message)), per_call(lambda: parse_message(text))),
            ("read the PID (FR Core Patient)", per_call(lambda: read_pid(parsed.first("PID"))),
             per_call(lambda: parse_message(text).pid.pid_5.value)),
            ("build the ACK", per_call(lambda: ack.acknowledge(parsed, ack.ACCEPT)), per_call(hl7apy_ack)),
            ("strict validation (MES_MLLP_VALIDATION=strict: hl7apy)", float("nan"),
             per_call(lambda: structure_problems(parsed, message)))]


def report(measured: dict[tuple[str, int], Measured], steps: list[tuple[str, float, float]],
           args: argparse.Namespace, load_before: tuple[float, float, float]) -> str:
    facts = [f if not f.startswith("- load generator") else f"- load generator: {CLIENT}"
             for f in machine_facts(load_before)]
    lines = [f"ADT^A04 over MLLP, with the same registrations through FHIR as the baseline: {args.messages} new"
             f" patients per door, connection count and run, {args.runs} runs, medians", "", *facts, "",
             "| door | connections | messages/s | p50 | p99 | MLLP / FHIR | target ≥ 500/s |",
             "|---|--:|--:|--:|--:|--:|---|"]
    for (door, connections), m in measured.items():
        rate = median(m.rate)
        ratio = median([a / b for a, b in zip(m.rate, measured[("FHIR", connections)].rate, strict=True)])
        verdict = ("**met**" if rate >= TARGET else "**NOT met**") if door == "MLLP" else "(baseline)"
        lines.append(f"| {door} | {connections} | {rate:,.0f} | {median(m.p50):.2f} ms | {median(m.p99):.2f} ms |"
                     f" {ratio:.2f} | {verdict} |")
    lines += ["", "Per run: " + "; ".join(f"{door} × {c}: {', '.join(f'{r:,.0f}' for r in m.rate)}"
                                          for (door, c), m in measured.items()),
              "", "In-process, per A04 message (µs):", "", "| step | gateway | hl7apy 1.3.5 |", "|---|--:|--:|"]
    lines += [f"| {step} | {'—' if ours != ours else f'{ours:,.1f}'} | {theirs:,.1f} |" for step, ours, theirs in steps]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per door, connection count and run")
    parser.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    measured = benchmark(args)
    publish(report(measured, parsers(), args, load_before), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test servers: a real uvicorn on a loopback port over a real SQLite file, and a real client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from fhir_server.app import create_app
from fhir_server.config import load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
#: The access-control world (tests/access_world.py) and its module-scoped ``env`` fixture.
pytest_plugins = ["access_world"]
FHIR_JSON = "application/fhir+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn serving the app in a background thread of the test process."""

    def __init__(self, data_dir: Path, **overrides) -> None:
        self.port = free_port()
        overrides.setdefault("auth", "off")  # tests of access control turn it on
        overrides.setdefault("mllp_port", 0)  # tests of the HL7 v2 gateway give it a free port
        overrides.setdefault("smtp_port", 0)  # tests of the MSSanté bridge too
        settings = load_settings(host="127.0.0.1", port=self.port, data_dir=data_dir, **overrides)
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ProcessServer:
    """``mes serve`` in its own process, for crash (kill -9) tests."""

    def __init__(self, data_dir: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.args = args
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ProcessServer:
        env = {"MES_AUTH": "off", "MES_MLLP_PORT": "0", "MES_SMTP_PORT": "0", **os.environ,
               "MES_PORT": str(self.port), "MES_DATA_DIR": str(self.data_dir), "MES_HOST": "127.0.0.1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "fhir_server.cli", "serve", *self.args], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/metadata", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.proc.stderr.read(2000) if self.proc.poll() else ''}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[ThreadServer]:
    with ThreadServer(tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture()
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, headers={"Accept": FHIR_JSON}, timeout=30) as c:
        yield c


def unique() -> str:
    """A value no other test uses (the session server is shared)."""
    return uuid.uuid4().hex[:16]


def patient(ins: str | None = None, **extra) -> dict:
    """A small valid Patient with a test-INS identifier."""
    resource = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": ins or unique()}],
        "name": [{"family": "Dupont", "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1979-03-05",
    }
    resource.update(extra)
    return resource


class CountingListener:
    """A local TCP port that counts the connections made to it: a fetch a parser must never make
    (an external entity, DTD or schema) would show up here."""

    def __init__(self, path: str = "/") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

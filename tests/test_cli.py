"""``mes serve``: settings from flags and environment, the data directory, the demo dataset."""

from __future__ import annotations

import subprocess
import sys

import httpx
from conftest import ProcessServer, free_port

from fhir_server.config import load_settings


def test_settings_defaults_env_and_flags(monkeypatch, tmp_path):
    defaults = load_settings()
    assert (defaults.host, defaults.port, str(defaults.data_dir)) == ("127.0.0.1", 8080, "var")
    assert defaults.fhir_base == "http://127.0.0.1:8080/fhir"
    monkeypatch.setenv("MES_PORT", "9123")
    monkeypatch.setenv("MES_DATA_DIR", str(tmp_path))
    from_env = load_settings()
    assert from_env.port == 9123 and from_env.data_dir == tmp_path
    assert load_settings(port=9200).port == 9200  # a flag wins over the environment


def test_demo_dataset_is_loaded_once_and_has_french_records(tmp_path):
    data_dir = tmp_path / "created-by-serve"
    server = ProcessServer(data_dir, args=("--demo",)).start()
    try:
        patients = httpx.get(f"{server.base}/Patient", params={"_count": 100}).json()["entry"]
        assert len(patients) >= 5
        ins = [i["value"] for p in patients for i in p["resource"]["identifier"]
               if i["system"] == "urn:oid:1.2.250.1.213.1.4.10"]
        assert len(ins) == len(patients)
        for kind in ("DocumentReference", "Appointment", "Communication", "Practitioner", "Binary"):
            assert httpx.get(f"{server.base}/{kind}").json().get("entry"), kind
    finally:
        server.stop()
    assert (data_dir / "mes.sqlite3").exists()
    again = ProcessServer(data_dir, args=("--demo",)).start()
    try:
        assert len(httpx.get(f"{again.base}/Patient", params={"_count": 100}).json()["entry"]) == len(patients)
    finally:
        again.stop()


def test_flags_choose_port_and_data_dir(tmp_path):
    port = free_port()
    server = ProcessServer(tmp_path / "unused", args=("--port", str(port), "--data-dir", str(tmp_path / "flag")))
    server.base = f"http://127.0.0.1:{port}/fhir"  # the environment says server.port; the flag must win
    server.start()
    try:
        assert httpx.get(f"{server.base}/metadata").json()["implementation"]["url"] == server.base
    finally:
        server.stop()
    assert (tmp_path / "flag" / "mes.sqlite3").exists()
    assert not (tmp_path / "unused").exists()


def test_help_lists_the_settings():
    out = subprocess.run([sys.executable, "-m", "fhir_server.cli", "serve", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ("--host", "--port", "--data-dir", "--demo"):
        assert flag in out

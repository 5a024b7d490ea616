"""``mes import cda PATH…`` as a user runs it: a real process on a data directory, then the result
read back through a server on the same directory."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from conftest import ThreadServer

from fhir_server.synthetic_cda import cda_document, spec


def _mes(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "MES_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "fhir_server.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_files_and_folders_are_imported_with_a_summary_of_what_was_refused_and_why(tmp_path):
    inbox, data = tmp_path / "inbox", tmp_path / "data"
    (inbox / "nested").mkdir(parents=True)
    for n in range(3):
        (inbox / f"doc{n}.xml").write_bytes(cda_document(spec(seed=300 + n)))
    (inbox / "nested" / "again.xml").write_bytes(cda_document(spec(seed=300)))
    (inbox / "nested" / "no-ins.xml").write_bytes(cda_document(spec(seed=305, ins=None)))
    (inbox / "nested" / "notes.txt").write_text("not a document")
    single = tmp_path / "single.xml"
    single.write_bytes(cda_document(spec(seed=306)))
    run = _mes("import", "cda", str(inbox), str(single), data_dir=data)
    assert run.returncode == 1, run.stderr  # something was refused
    lines = run.stdout.splitlines()
    assert lines[0] == "imported 4, duplicates 1, refused 1"
    assert lines[1].startswith(f"refused {inbox / 'nested' / 'no-ins.xml'}: 422 [903]"
                               " /ClinicalDocument/recordTarget/patientRole/id")
    assert run.stderr.count("/6 ") == 6  # a progress line per file (not a terminal here)
    with ThreadServer(data) as server, httpx.Client(base_url=server.base) as c:
        assert c.get("/DocumentReference", params={"_summary": "count"}).json()["total"] == 4
        traces = c.get("/AuditEvent", params={"agent:identifier": "https://mes-interop.org/fhir/client-id|mes-import",
                                              "subtype": "create", "_summary": "count"}).json()["total"]
        assert traces >= 4 * 2  # each filing's DocumentReference and Binary (and new Patient) traced
    again = _mes("import", "cda", str(inbox / "doc0.xml"), data_dir=data)
    assert again.returncode == 0 and again.stdout.splitlines()[0] == "imported 0, duplicates 1, refused 0"

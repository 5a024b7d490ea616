"""``mes import cda PATH…``: file CDA documents from files and folders into the DMP of a data
directory, through the same core as every door — as the system client ``mes-import``, each filing
traced — with a progress bar and a summary: imported, duplicates, refused with their reasons."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from fhir_server.config import Settings
from fhir_server.core.errors import FhirError
from fhir_server.core.repository import Repository
from fhir_server.dmp.ingest import check_cda_settings, file_cda
from fhir_server.security.audit import AuditRecorder
from fhir_server.security.scopes import parse_scopes
from fhir_server.security.tokens import Principal
from fhir_server.store import open_store

CLIENT_ID = "mes-import"
PRINCIPAL = Principal("system", None, CLIENT_ID, CLIENT_ID, parse_scopes("system/*.cruds"))
BAR_WIDTH = 30


@dataclass
class Summary:
    imported: int = 0
    duplicates: int = 0
    refused: list[tuple[Path, str]] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"imported {self.imported}, duplicates {self.duplicates}, refused {len(self.refused)}"]
        lines += [f"refused {path}: {reason}" for path, reason in self.refused]
        return "\n".join(lines)


def cda_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the ``.xml`` files under the folders named, in path order."""
    found: list[Path] = []
    for path in paths:
        found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".xml") \
            if path.is_dir() else [path]
    return found


def import_cda(settings: Settings, paths: Iterable[Path], progress: TextIO = sys.stderr) -> Summary:
    check_cda_settings(settings)
    files = cda_files(paths)
    summary = Summary()
    store = open_store(settings)
    try:
        repository = Repository(store, settings.fhir_base)
        access = repository.resolve_access(PRINCIPAL)
        for done, path in enumerate(files, 1):
            recorder = AuditRecorder(access, "cli")
            try:
                filed = file_cda(repository.acting_as(access, recorder), path.read_bytes(),
                                 create_patients=settings.cda_unknown_patients == "create",
                                 xsd=Path(settings.cda_xsd) if settings.cda_xsd else None,
                                 sch=Path(settings.cda_schematron) if settings.cda_schematron else None)
            except FhirError as error:
                summary.refused.append((path, _reason(error)))
            except OSError as error:
                summary.refused.append((path, f"cannot read: {error.strerror}"))
            else:
                summary.imported += filed.created
                summary.duplicates += not filed.created
            finally:
                if recorder.traces:
                    store.append_traces(recorder.rows(time.time_ns()))
            _show(progress, done, len(files), path)
    finally:
        store.close()
    return summary


def _reason(error: FhirError) -> str:
    """Each issue of a refusal on one line: HTTP status, DMP code, XPath, message."""
    parts = []
    for issue in error.issues:
        where = f" {issue.location[0]}" if issue.location else ""
        code = f" [{issue.dmp_code}]" if issue.dmp_code else ""
        parts.append(f"{error.status}{code}{where}: {issue.diagnostics}")
    return "; ".join(parts)


def _show(out: TextIO, done: int, total: int, path: Path) -> None:
    """A progress bar redrawn in place on a terminal; a line per file otherwise (logs, CI)."""
    filled = BAR_WIDTH * done // max(total, 1)
    line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {path.name}"
    if out.isatty():
        out.write(f"\r{line[:120]:<120}" + ("\n" if done == total else ""))
    else:
        out.write(line + "\n")
    out.flush()

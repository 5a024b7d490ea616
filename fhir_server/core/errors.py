"""Errors that become an OperationOutcome with an HTTP status (or a protocol's own error)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Where the codes of ``Issue.details`` come from: the DMP's integration error codes (903 no INS…).
DMP_ERRORS = "https://mes-interop.org/fhir/CodeSystem/dmp-error"


@dataclass
class Issue:
    code: str  # IssueType: invalid, structure, required, value, not-found, conflict, ...
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    severity: str = "error"
    location: list[str] = field(default_factory=list)  # XPaths, for problems in an XML document (a CDA)
    dmp_code: str | None = None  # the DMP's error code, when one applies

    def to_json(self) -> dict:
        out: dict = {"severity": self.severity, "code": self.code}
        if self.dmp_code:
            out["details"] = {"coding": [{"system": DMP_ERRORS, "code": self.dmp_code}]}
        out["diagnostics"] = self.diagnostics
        if self.location:
            out["location"] = self.location
        if self.expression:
            out["expression"] = self.expression
        return out


class FhirError(Exception):
    """A request the server refuses; ``status`` is the HTTP status code to answer with."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: list[str] | None = None,
                 issues: list[Issue] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issues = issues or [Issue(code, diagnostics, expression or [])]
        self.headers = headers or {}

    def outcome(self) -> dict:
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def not_found(resource_type: str, resource_id: str) -> FhirError:
    return FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")

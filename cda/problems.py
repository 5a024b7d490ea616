"""What is wrong with a CDA document, said where (an XPath) and why.

Every check of ``cda/`` — parsing, the XSD, the CI-SIS header rules — reports ``Problem``s; a
document with any is refused with all of them at once (``CdaError``), so the sender fixes
everything in one round.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason a document is refused."""

    xpath: str  # where, e.g. /ClinicalDocument/recordTarget/patientRole/id[1]
    message: str  # why, in words a sender can act on
    code: str = "invalid"  # the FHIR OperationOutcome issue type
    dmp_code: str | None = None  # the DMP's error code where one applies: 903 no INS, 904 traits, 905 incomplete
    line: int | None = None  # the source line, when the parser knows it


class CdaError(ValueError):
    """A document refused, with every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.xpath}: {p.message}" for p in problems))

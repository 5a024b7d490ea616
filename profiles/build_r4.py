"""Regenerate the compact R4 tables in ``profiles/r4/`` from the official core package.

The server never reads the 4.5 MB package at run time: this script distils what the
validator and the XML codec need (element cardinality, types, required bindings) into
small JSON files that ship with the project: ``types.json`` and ``required-valuesets.json``
(read through ``profiles.definitions``) and ``constraints.json`` (the validator's extras:
mandatory elements and the code systems of each required value set). Run it only when the source changes::

    python -m profiles.build_r4 path/to/hl7.fhir.r4.core-4.0.1.tgz
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).parent / "r4"
#: The resource types the server serves (fhir_server.config.SUPPORTED_TYPES) and their bases.
SERVED = {"Patient", "DocumentReference", "Appointment", "Communication", "Binary", "Practitioner",
          "PractitionerRole", "Organization", "List", "AuditEvent", "Consent", "Provenance", "RelatedPerson",
          "Resource", "DomainResource"}
SEARCH_PARAMETER_FIELDS = ("url", "name", "code", "base", "type", "expression", "target", "multipleOr",
                           "multipleAnd", "comparator", "modifier", "chain", "component")
FHIRPATH_STRING = "http://hl7.org/fhirpath/System.String"


def _element_type(type_entry: dict) -> str:
    """The FHIR type code of a snapshot type entry (FHIRPath system types carry it in an extension)."""
    for ext in type_entry.get("extension", []):
        if ext["url"].endswith("structuredefinition-fhir-type"):
            return ext.get("valueUrl") or ext.get("valueUri")
    code = type_entry["code"]
    return "string" if code == FHIRPATH_STRING else code


def _elements(sd: dict) -> dict:
    """path → [is_list, [types], required_valueset_or_None, content_reference_or_None]."""
    out = {}
    for el in sd["snapshot"]["element"][1:]:
        path = el["path"]
        binding = el.get("binding", {})
        required = binding.get("valueSet", "").split("|")[0] if binding.get("strength") == "required" else None
        types = [_element_type(t) for t in el.get("type", [])]
        ref = el.get("contentReference", "").lstrip("#") or None
        out[path] = [el.get("max") != "1", types, required, ref]
    return out


def _mandatory(sd: dict) -> list[str]:
    """Element paths with min >= 1, in snapshot order (kept apart so types.json stays unchanged)."""
    return [el["path"] for el in sd["snapshot"]["element"][1:] if el.get("min", 0) >= 1]


def _systems(vs: dict) -> list[str]:
    """Code systems a value set draws from: a Coding whose system is elsewhere is not checked against it."""
    return sorted({inc["system"] for inc in vs.get("compose", {}).get("include", []) if inc.get("system")})


def _codes(vs: dict, codesystems: dict) -> list[str] | None:
    """All codes of a value set, or None when it cannot be expanded without a terminology server."""
    codes: set[str] = set()
    for inc in vs.get("compose", {}).get("include", []):
        if inc.get("filter") or inc.get("valueSet"):
            return None
        if "concept" in inc:
            codes.update(c["code"] for c in inc["concept"])
        elif inc.get("system") in codesystems:
            codes.update(codesystems[inc["system"]])
        else:
            return None
    return sorted(codes) if codes else None


def _flatten(concepts: list) -> list[str]:
    out = []
    for c in concepts:
        out.append(c["code"])
        out.extend(_flatten(c.get("concept", [])))
    return out


def _summary(sd: dict) -> list[str]:
    """Top-level element names marked isSummary (``_summary=true``), choices as ``name[x]``."""
    prefix = sd["type"] + "."
    return [el["path"][len(prefix):] for el in sd["snapshot"]["element"][1:]
            if el["path"].count(".") == 1 and el.get("isSummary")]


def build(package: Path) -> None:
    types: dict = {}
    summary: dict[str, list[str]] = {}
    mandatory: dict[str, list[str]] = {}
    valuesets: dict = {}
    codesystems: dict = {}
    search_parameters: list = []
    compartments: list = []
    with tarfile.open(package) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                continue
            if name.startswith("StructureDefinition-"):
                sd = json.load(tar.extractfile(member))
                kinds = ("resource", "complex-type", "primitive-type")
                if sd.get("derivation", "specialization") == "specialization" and sd["kind"] in kinds:
                    types[sd["type"]] = {"kind": sd["kind"], "abstract": sd.get("abstract", False),
                                         "base": sd.get("baseDefinition", "").rsplit("/", 1)[-1] or None,
                                         "elements": _elements(sd)}
                    if paths := _mandatory(sd):
                        mandatory[sd["type"]] = paths
                    if sd["kind"] == "resource" and SERVED & {sd["type"]}:
                        summary[sd["type"]] = _summary(sd)
            elif name.startswith("SearchParameter-"):
                sp = json.load(tar.extractfile(member))
                if SERVED & set(sp.get("base", [])):
                    search_parameters.append({k: sp[k] for k in SEARCH_PARAMETER_FIELDS if k in sp})
            elif name == "CompartmentDefinition-patient.json":
                compartments.append(json.load(tar.extractfile(member)))
            elif name.startswith("ValueSet-"):
                vs = json.load(tar.extractfile(member))
                valuesets[vs["url"]] = vs
            elif name.startswith("CodeSystem-"):
                cs = json.load(tar.extractfile(member))
                if cs.get("content") == "complete":
                    codesystems[cs["url"]] = _flatten(cs.get("concept", []))
    required = {e[2] for t in types.values() for e in t["elements"].values() if e[2]}
    expanded = {url: _codes(valuesets[url], codesystems) for url in sorted(required) if url in valuesets}
    HERE.mkdir(exist_ok=True)
    (HERE / "types.json").write_text(json.dumps(types, separators=(",", ":")))  # element order matters (XML)
    search_parameters.sort(key=lambda sp: sp["url"])
    (HERE / "search-parameters.json").write_text(json.dumps(search_parameters, indent=1))
    (HERE / "compartment-patient.json").write_text(json.dumps(compartments[0], indent=1))
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    (HERE / "required-valuesets.json").write_text(
        json.dumps({k: v for k, v in expanded.items() if v}, separators=(",", ":"), sort_keys=True))
    systems = {url: _systems(valuesets[url]) for url, codes in expanded.items() if codes}
    (HERE / "constraints.json").write_text(
        json.dumps({"mandatory": mandatory, "valuesetSystems": systems}, separators=(",", ":"), sort_keys=True))


if __name__ == "__main__":
    build(Path(sys.argv[1]))

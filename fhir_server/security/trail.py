"""Reading the access-trace log as AuditEvents: built from its compact rows, searched by the
columns the log keeps — whose record (``patient``), who (``agent``), what (``entity``), when
(``date``, ``_lastUpdated``), how (``subtype``, ``action``, ``outcome``) and ``_id``. Other
AuditEvent parameters are reported as not supported.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from fhir_server.core.errors import FhirError
from fhir_server.core.resources import counting_number
from fhir_server.search.conditions import All, Compare, Cond, any_of
from fhir_server.search.parse import Occurrence, parse, unescape
from fhir_server.search.plan import SearchPlan
from fhir_server.search.values import date, reference, token
from fhir_server.security.audit import CLIENT
from fhir_server.security.policy import Access
from fhir_server.store.base import BadPosition, Record, Store
from fhir_server.store.query import Clause, Match

EVENT_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
              "display": "RESTful Operation"}
INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
ACCESS_MODES = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
CLIENT_IDS = "https://mes-interop.org/fhir/client-id"
SOURCE = {"observer": {"display": "mes-interop"}, "type": [{
    "system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
    "display": "Application Server"}]}
PATIENT_ROLE = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
AGENT_TYPES = ("Patient", "RelatedPerson", "Practitioner", "PractitionerRole")
SORTS = {"date": False, "-date": True, "_lastUpdated": False, "-_lastUpdated": True, "_id": False, "-_id": True}


def audit_event(row: tuple) -> dict:
    """The AuditEvent of one trace-log row (BALP RESTful-operation shape)."""
    seq, recorded, _, patient, agent, subtype, action, outcome, entities, detail = row
    extra = orjson.loads(detail)
    if agent.startswith(CLIENT):
        client = agent.removeprefix(CLIENT)
        who: dict = {"identifier": {"system": CLIENT_IDS, "value": client}, "display": client}
    else:
        who = {"reference": agent}
    agent_entry: dict = {"who": who, "requestor": True}
    if extra.get("address"):
        agent_entry["network"] = {"address": extra["address"], "type": "2"}
    purpose: dict = {"coding": [{"system": ACCESS_MODES, "code": extra["purpose"]}]}
    if extra.get("reason"):
        purpose["text"] = extra["reason"]
    patient_ref = f"Patient/{patient}" if patient else None
    whats = [patient_ref] if patient_ref else []
    whats += [e for e in entities.split() if e != patient_ref]
    event = {
        "resourceType": "AuditEvent", "id": str(seq), "meta": {"versionId": "1", "lastUpdated": recorded},
        "type": EVENT_TYPE, "subtype": [{"system": INTERACTIONS, "code": subtype}], "action": action,
        "recorded": recorded, "outcome": outcome, "purposeOfEvent": [purpose], "agent": [agent_entry],
        "source": SOURCE,
        "entity": [{"what": {"reference": w}, **({"role": PATIENT_ROLE} if w == patient_ref else {})} for w in whats],
    }
    if extra.get("detail"):
        event["outcomeDesc"] = extra["detail"]
    return event


#: Whether the reader may see a resource ("Type/id"); None: everything (system clients).
Shown = Callable[[str], bool] | None


def as_record(row: tuple, shown: Shown = None) -> Record:
    """The AuditEvent of a row as a Record; what the reader may not see is left out of its entities
    (a patient learns that their record was accessed, not that a document hidden from them exists)."""
    event = audit_event(row)
    if shown is not None:
        event["entity"] = [e for e in event["entity"] if "role" in e or shown(e["what"]["reference"])]
    return Record("AuditEvent", str(row[0]), 1, row[1], False, orjson.dumps(event), "POST")


def visible_to(access: Access) -> list[Cond] | None:
    """Whose traces a principal reads: all (system), their own record's (patients and
    representatives), none (professionals: None)."""
    if access.unrestricted or access.kind == "system":
        return []
    if access.kind in ("patient", "related"):
        return [Compare("patient", "in", access.patients)]
    return None


def read_trace(store: Store, access: Access, trace_id: str, shown: Shown = None) -> Record | None:
    conds = visible_to(access)
    seq = counting_number(trace_id)
    if conds is None or seq is None:
        return None
    rows = store.traces([*conds, Compare("seq", "=", seq)], limit=1)
    return as_record(rows[0], shown) if rows else None


def plan_trail(params: list[tuple[str, str]], local_base: str | None, shown: Shown = None
               ) -> tuple[list[Cond], SearchPlan]:
    """The trace-log conditions of an AuditEvent search, and a plan saying what was not understood."""
    occurrences, result_params = parse(params)
    plan = SearchPlan("AuditEvent", result_params=result_params)
    conds: list[Cond] = []
    for occurrence in occurrences:
        cond = _condition(occurrence, local_base, shown) if isinstance(occurrence, Occurrence) else None
        if cond is None:
            plan.unsupported.append(occurrence.raw_name)
        else:
            conds.append(cond)
    for name in ("_include", "_revinclude", "_include:iterate", "_revinclude:iterate"):
        plan.unsupported += [f"{name}={v}" for v in result_params.get(name, [])]
    sorts = result_params.get("_sort", [])
    if any(s not in SORTS for s in sorts) or len(sorts) > 1:
        plan.unsupported.append(f"_sort={','.join(sorts)}")
    return conds, plan


def newest_first(plan: SearchPlan) -> bool:
    sorts = plan.result_params.get("_sort", [])
    return len(sorts) == 1 and SORTS.get(sorts[0], False)


def search_trail(store: Store, access: Access, params: list[tuple[str, str]], local_base: str | None, *,
                 count: int, after: tuple | None, before: tuple | None, shown: Shown = None,
                 within: tuple[Clause, ...] = ()) -> tuple[list[Record], list[tuple], SearchPlan]:
    conds, plan = plan_trail(params, local_base, shown)
    conds += [_compartment(clause) for clause in within]
    visible = visible_to(access)
    if visible is None:
        return [], [], plan
    positions = [_seq(p) for p in (after, before)]
    rows = store.traces([*visible, *conds], limit=count, newest_first=newest_first(plan), after=positions[0],
                        before=positions[1])
    return [as_record(r, shown) for r in rows], [(r[0],) for r in rows], plan


def count_trail(store: Store, access: Access, params: list[tuple[str, str]], local_base: str | None,
                shown: Shown = None, within: tuple[Clause, ...] = ()) -> int:
    conds, _ = plan_trail(params, local_base, shown)
    conds += [_compartment(clause) for clause in within]
    visible = visible_to(access)
    return 0 if visible is None else store.count_traces([*visible, *conds])


def _compartment(clause: Clause) -> Cond:
    """A Patient compartment (``Patient/123/AuditEvent``) as a condition on the log's patient column."""
    cond = clause.cond if isinstance(clause, Match) and clause.param == "patient" else None
    parts = cond.parts if isinstance(cond, All) else ()
    ids = [p.value for p in parts if isinstance(p, Compare) and p.column == "target_id"]
    if len(ids) != 1:
        raise FhirError(400, "not-supported", "AuditEvent is searched within a Patient compartment only")
    return Compare("patient", "in", ids[0] if isinstance(ids[0], tuple) else (ids[0],))


def _seq(position: tuple | None) -> int | None:
    if position is None:
        return None
    if len(position) != 1 or type(position[0]) is not int or not 0 <= position[0] < 2**63:
        raise BadPosition("The page position does not fit this search")
    return position[0]


def _condition(occurrence: Occurrence, local_base: str | None, shown: Shown) -> Cond | None:
    if len(occurrence.links) != 1:
        return None  # chains: the log keeps references, not the resources behind them
    name, modifier = occurrence.links[0].name, occurrence.links[0].modifier
    values = occurrence.values
    if name in ("date", "_lastUpdated") and modifier is None:
        return any_of(*(date.condition(date.parse_query(v)) for v in values))
    if name in ("subtype", "action", "outcome") and modifier is None:
        return Compare(name, "in", tuple(token.parse_token(v).code or "" for v in values))
    if name == "_id" and modifier is None:
        return Compare("seq", "in", tuple(n for n in map(counting_number, values) if n is not None))
    if name == "agent" and modifier == "identifier":
        codes = [token.parse_token(v) for v in values]
        return Compare("agent", "in", tuple(f"{CLIENT}{q.code}" for q in codes
                                            if q.any_system or q.system == CLIENT_IDS))
    if name in ("patient", "agent", "entity") and modifier is None:
        refs = [reference.parse_reference(v, None, local_base) for v in values]
        if name == "patient":
            return Compare("patient", "in", tuple(r.id for r in refs if r.type in (None, "Patient") and r.id))
        if name == "agent":
            return Compare("agent", "in", tuple(f"{t}/{r.id}" for r in refs if r.id
                                                for t in ((r.type,) if r.type else AGENT_TYPES)))
        refs = [r for r in refs if r.id and (shown is None or (r.type and shown(f"{r.type}/{r.id}")))]
        return any_of(*(Compare("entities", "contains", f" {r.type}/{r.id} " if r.type else f"/{unescape(r.id)} ")
                        for r in refs)) if refs else Compare("seq", "in", ())
    return None

"""Parameters for all resources agree with the reference evaluator: ``_tag``, ``_source``, ``_lastUpdated``, ``_id``.

The resources of ``test_search_oracle.py`` get tags (a code in two systems, one without system,
case variants, displays for ``:text``) and sources (URLs that are parents or children of each
other, with a fragment, a ``urn:uuid:``). ``meta.lastUpdated`` is the server's: each resource is
written in its own unit of work, read back as stored, and the oracle and the queries work from
what was stored (its instants, cut to a coarser precision, or next to their edges). ``_id`` takes
lists of ids (some never written), ``:not``, and repeats (AND). Derandomised and few examples.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_oracle import EPOCH, ZONE, date_range, engine_search, oracle_search, written
from test_search_oracle import (
    DATE_PREFIXES,
    ORACLE,
    RESOURCES,
    _or,
    _with_ids,
    date_values,
    token_values,
    uri_values,
)

Query = list[tuple[str, str]]
MES_TAGS = "https://mes-interop.org/fhir/CodeSystem/etiquettes"
TAGS = [(MES_TAGS, "import-dmp", "Import depuis le DMP"), (MES_TAGS, "Import-DMP", None),
        ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED", "données partielles"),
        ("urn:oid:1.2.250.1.213.1.1.4.2", "test", "Jeu d'essai"), (None, "test", "Essai"), (None, "Test", None)]
SOURCES = ["https://lgc.example.fr/sih", "https://lgc.example.fr/sih#a1b2", "https://lgc.example.fr/sih/v2",
           "https://lgc.example.fr", "urn:uuid:1f5a2c1e-7d1b-4a57-9b9e-2f0c1d7e8a90", "https://lgc.example.fr/sihx",
           "https://lgc.example.fr/sih?v=2/3"]


def _coding(tag: tuple[str | None, str, str | None]) -> dict:
    system, code, display = tag
    return {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v is not None}


metas = st.fixed_dictionaries({}, optional={
    "tag": st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True).map(
        lambda tags: [_coding(t) for t in tags]),
    "source": st.sampled_from(SOURCES)})


def _with_meta(resource: dict, meta: dict) -> dict:
    merged = {**resource.get("meta", {}), **meta}
    return {**resource, **({"meta": merged} if merged else {})}


def tagged(resource_type: str):
    """3 to 10 resources of one type, with tags and sources besides what ``test_search_oracle`` gives them."""
    one = st.tuples(RESOURCES[resource_type], metas).map(lambda parts: _with_meta(*parts))
    return st.lists(one, min_size=3, max_size=10).map(_with_ids)


types = st.sampled_from(list(RESOURCES))


def assert_agree(resources: list[dict], resource_type: str, searches: list[Query]) -> None:
    for query, (found, unsupported) in zip(searches, engine_search(resources, resource_type, searches), strict=True):
        expected = oracle_search(resources, resource_type, query)
        assert (found, unsupported) == (expected, []), _shown(resources, resource_type, query, found, expected)


def _shown(resources: list[dict], resource_type: str, query: Query, found: set[str], expected: set[str]) -> str:
    differing = [json.dumps(r, ensure_ascii=False) for r in resources if r["id"] in found ^ expected]
    return (f"{resource_type}?{'&'.join(f'{n}={v}' for n, v in query)}\nengine: {sorted(found)}  "
            f"oracle: {sorted(expected)}\nresources that differ:\n" + "\n".join(differing))


# --- _tag and _source -------------------------------------------------------------------------------

@pytest.mark.parametrize("modifier", [None, "not", "text", "missing"])
@settings(ORACLE, max_examples=12)
@given(data=st.data())
def test_tag(modifier: str | None, data: st.DataObject) -> None:
    """``_tag`` is a token on ``meta.tag`` (Codings): code, system|code, |code, system|, :not, :text."""
    resource_type = data.draw(types, label="type")
    resources = data.draw(tagged(resource_type), label="resources")
    name = f"_tag:{modifier}" if modifier else "_tag"
    if modifier == "missing":
        searches = [[(name, "true")], [(name, "false")]]
    else:
        values = token_values(resources, "_tag", modifier if modifier == "text" else None)
        searches = [[(name, _or(data.draw, values))] for _ in range(3)]
    assert_agree(resources, resource_type, searches)


@pytest.mark.parametrize("modifier", [None, "below", "above", "missing"])
@settings(ORACLE, max_examples=12)
@given(data=st.data())
def test_source(modifier: str | None, data: st.DataObject) -> None:
    """``_source`` is a uri on ``meta.source``: equal, :below and :above on whole path segments, :missing."""
    resource_type = data.draw(types, label="type")
    resources = data.draw(tagged(resource_type), label="resources")
    name = f"_source:{modifier}" if modifier else "_source"
    if modifier == "missing":
        searches = [[(name, "true")], [(name, "false")]]
    else:
        searches = [[(name, _or(data.draw, uri_values(resources, "_source")))] for _ in range(3)]
    assert_agree(resources, resource_type, searches)


# --- _lastUpdated -----------------------------------------------------------------------------------

@st.composite
def near_writes(draw, stored: list[dict]) -> str:
    """A prefix and an instant to the microsecond at, next to or between the stored ``lastUpdated``
    (writes are a fraction of a millisecond apart), in UTC, in +01:00 or without zone (Paris)."""
    stamps = sorted(date_range(r["meta"]["lastUpdated"])[0] for r in stored)
    at = draw(st.sampled_from(stamps)) + draw(st.sampled_from([-1, 0, 0, 1]))
    if draw(st.booleans()) and len(stamps) > 1:
        i = draw(st.integers(0, len(stamps) - 2))
        at = (stamps[i] + stamps[i + 1]) // 2
    moment = EPOCH + timedelta(microseconds=at)
    zone = draw(st.sampled_from([UTC, timezone(timedelta(hours=1)), None]))
    text = moment.astimezone(zone or ZONE).strftime("%Y-%m-%dT%H:%M:%S.%f")
    suffix = "" if zone is None else "Z" if zone is UTC else "+01:00"
    return draw(st.sampled_from(["", *DATE_PREFIXES])) + text + suffix


@settings(ORACLE, max_examples=15)
@given(data=st.data())
def test_last_updated(data: st.DataObject) -> None:
    """``_lastUpdated`` is a date on ``meta.lastUpdated``, which the server sets: queries are drawn from the
    stored instants (cut to year, month, day; at or next to their edges, in other zones), every prefix
    but ``ap`` (relative to now), and compared with the oracle on the resources read back."""
    resource_type = data.draw(types, label="type")
    resources = data.draw(tagged(resource_type), label="resources")
    with written(resources, one_by_one=True) as engine:
        stored = engine.stored()
        assert len({r["meta"]["lastUpdated"] for r in stored}) > 1
        for _ in range(4):
            values = st.one_of(date_values(stored, "_lastUpdated"), near_writes(stored))
            query = [("_lastUpdated", _or(data.draw, values))]
            found, unsupported = engine.search(resource_type, query)
            expected = oracle_search(stored, resource_type, query)
            assert (found, unsupported) == (expected, []), _shown(stored, resource_type, query, found, expected)


def test_last_updated_is_the_stored_instant() -> None:
    """Not generated: one unit of work stamps its resources alike; the next one is later."""
    first = [{"resourceType": "Patient", "id": "a"}, {"resourceType": "Patient", "id": "b"}]
    with written(first + [{"resourceType": "Patient", "id": "c"}], one_by_one=True) as engine:
        a, b, c = (r["meta"]["lastUpdated"] for r in engine.stored())
        assert a < b < c
        assert engine.search("Patient", [("_lastUpdated", f"gt{a}")])[0] == {"b", "c"}
        assert engine.search("Patient", [("_lastUpdated", f"le{b}")])[0] == {"a", "b"}
        assert engine.search("Patient", [("_lastUpdated", b)])[0] == {"b"}
        assert engine.search("Patient", [("_lastUpdated", f"sa{b[:4]}")])[0] == set()
        assert engine.search("Patient", [("_lastUpdated:missing", "false")])[0] == {"a", "b", "c"}


# --- _id ----------------------------------------------------------------------------------------------

@st.composite
def id_lists(draw, resources: list[dict]) -> str:
    """1 to 4 ids, some of the data, some never written, some repeated."""
    known = [r["id"] for r in resources]
    pool = known + [f"{known[0][:3]}99", "x"]
    return ",".join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4)))


@settings(ORACLE, max_examples=20)
@given(data=st.data())
def test_id_lists(data: st.DataObject) -> None:
    """``_id=a,b,c`` (any of them), ``_id:not=a,b`` (none), ``_id`` twice (both), with ``_tag`` (AND)."""
    resource_type = data.draw(types, label="type")
    resources = data.draw(tagged(resource_type), label="resources")
    ids = id_lists(resources)
    searches = [[("_id", data.draw(ids))], [("_id:not", data.draw(ids))], [("_id", data.draw(ids)),
                                                                          ("_id", data.draw(ids))],
                [("_id", data.draw(ids)), ("_tag", data.draw(token_values(resources, "_tag", None)))]]
    assert_agree(resources, resource_type, searches)

"""MDM T02 / T04 / T10 and ORU R01 → the DMP's CDA filing (``dmp/ingest.py``): the same checks
as every door (schema, CI-SIS rules, INS and traits, replacement), in the message's unit of work.

- T02 (new document), T04 (status change, with the document) and ORU R01: the document is filed;
  the same document sent again is not filed twice.
- T10 (replacement): the CDA must say what it replaces (``relatedDocument`` RPLC).
- ``MODIF_CONF_CODE`` = Y on a document already filed: its TRE_A07 visibility codes become those
  of the message (the flags set to Y), as a PDSm metadata update would.
- PID-3's INS, when present, must be the document's.
- ``DESTDMP`` = N: nothing here serves another destination, so the message is refused rather
  than dropped; ``DESTMSSANTEPS`` / ``DESTMSSANTEPAT`` = Y: filed in the DMP, with a warning
  (ERR, severity W) that the MSSanté copies are not sent by this gateway.
"""

from __future__ import annotations

from fhir_server.core.repository import Writer
from fhir_server.dmp.ingest import checked_cda, file_document
from fhir_server.formats import json as fjson
from fhir_server.french.visibility import TRE_A07_SYSTEMS, spelled_right
from fhir_server.v2gateway.options import Options
from hl7v2.ack import ERROR, Location, V2Error, V2Problem
from hl7v2.document import MAIL_DESTINATIONS, VISIBILITY, carried_document
from hl7v2.er7 import Message
from hl7v2.patient import identifiers_of

INCONSISTENT = "904"


def file_carried(message: Message, writer: Writer, options: Options) -> list[V2Problem]:
    carried = carried_document(message)
    if not carried.for_dmp:
        raise V2Error(ERROR, V2Problem("207", "DESTDMP is N and this gateway serves no other destination",
                                       "DESTDMP vaut N et cette passerelle ne sert aucune autre destination",
                                       Location("OBX", 5)))
    document = checked_cda(carried.data, options.cda_xsd, options.cda_schematron)
    _check_patient(message, document.header.patient.ins)
    if message.event[1] == "T10" and document.header.replaces is None:
        raise V2Error(ERROR, V2Problem("207", "A T10 replaces a document, but the CDA has no relatedDocument RPLC",
                                       "Un T10 remplace un document, mais le CDA n'a pas de relatedDocument RPLC",
                                       Location("OBX", 5)))
    filed = file_document(writer, document, create_patients=options.create_patients, labels=carried.labels)
    if not filed.created and carried.changes_visibility:
        _relabel(writer, filed.document.id, carried.labels)
    return [V2Problem("207", f"{flag} is Y but this gateway sends no MSSanté mail: only the DMP copy was filed",
                      f"{flag} vaut Y mais cette passerelle n'envoie pas de courriel MSSanté : seul le DMP est "
                      "alimenté", Location("OBX", 3), severity="W")
            for flag in MAIL_DESTINATIONS if carried.flags.get(flag)]


def _check_patient(message: Message, ins) -> None:
    pid = message.first("PID")
    stated, _ = identifiers_of(pid.repetitions(3)) if pid is not None else (None, [])
    if stated is not None and ins is not None and (stated.root, stated.extension) != (ins.root, ins.extension):
        raise V2Error(ERROR, V2Problem("207", f"PID-3's INS {stated.extension} is not the document's"
                                       f" ({ins.extension})", f"L'INS de PID-3 ({stated.extension}) n'est pas celui"
                                       f" du document ({ins.extension})", Location("PID", 3), INCONSISTENT))


def _relabel(writer: Writer, document_id: str, labels: frozenset[str]) -> None:
    """The document's TRE_A07 codes made exactly ``labels`` (its confidentiality kept)."""
    resource = spelled_right(fjson.loads(writer.read_current("DocumentReference", document_id).body))
    kept = [concept for concept in resource.get("securityLabel", [])
            if not any(c.get("system") in TRE_A07_SYSTEMS and c.get("code") in VISIBILITY.values()
                       for c in concept.get("coding", []))]
    resource["securityLabel"] = kept + [{"coding": [{"system": TRE_A07_SYSTEMS[0], "code": code}]}
                                        for code in sorted(labels)]
    writer.update("DocumentReference", document_id, resource)


HANDLERS = {("MDM", event): file_carried for event in ("T02", "T04", "T10")} | {("ORU", "R01"): file_carried}

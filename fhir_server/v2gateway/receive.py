"""One HL7 v2 message in, its ACK out — whatever the message, and whatever goes wrong.

The message is applied in one unit of work with its receipt: either everything it asks is
written and the sender's MSH-10 is remembered with the ACK, or nothing is. A message sent again
(same sending application and facility, same MSH-10) is answered with the ACK it got the first
time and applied no second time. A refusal (AE, AR) writes nothing and keeps no receipt: the
sender may correct the data and send the same message again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fhir_server.core.errors import FhirError, Issue
from fhir_server.core.repository import Repository, Writer
from fhir_server.french.dmp_errors import ERRORS
from fhir_server.v2gateway import appointments, documents, patients
from fhir_server.v2gateway.options import Options
from hl7v2 import ack
from hl7v2.ack import ACCEPT, ERROR, REJECT, V2Error, V2Problem
from hl7v2.er7 import Er7Error, Message, parse
from hl7v2.validate import structure_problems

log = logging.getLogger("mes")

DOOR = "mllp"
#: Applies a message in a unit of work; may return warnings for the AA (ERR segments, severity W).
Handler = Callable[[Message, Writer, Options], "list[V2Problem] | None"]
HANDLERS: dict[tuple[str, str], Handler] = {**patients.HANDLERS, **appointments.HANDLERS, **documents.HANDLERS}
VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2", "2.9")
#: FHIR issue codes → HL7 table 0357.
ISSUE_CODES = {"required": ack.REQUIRED_FIELD_MISSING, "structure": ack.DATA_TYPE_ERROR,
               "value": ack.DATA_TYPE_ERROR, "invalid": ack.DATA_TYPE_ERROR, "code-invalid": ack.TABLE_VALUE_NOT_FOUND,
               "not-found": ack.UNKNOWN_KEY, "duplicate": ack.DUPLICATE_KEY, "conflict": ack.DUPLICATE_KEY}


def receive(repository: Repository, data: bytes, options: Options) -> bytes:
    """The ACK of the message ``data`` (one MLLP frame's content), after applying it."""
    try:
        message = parse(data)
    except Er7Error as error:
        problem = V2Problem(ack.DATA_TYPE_ERROR, f"The message cannot be read: {error}",
                            f"Le message est illisible : {error}")
        return ack.acknowledge(None, REJECT, (problem,), echo=ack.readable_header(data))
    try:
        handler = _handler(message)
        if options.strict_structure and (problems := structure_problems(message, data)):
            raise V2Error(REJECT, *problems)
        with repository.writer() as writer:
            kept = writer.receipt(DOOR, message.sender, message.control_id)
            if kept is not None:
                return kept
            warnings = handler(message, writer, options) or []
            answer = ack.acknowledge(message, ACCEPT, tuple(warnings))
            writer.keep_receipt(DOOR, message.sender, message.control_id, answer)
        return answer
    except V2Error as error:
        return ack.acknowledge(message, error.ack_code, error.problems)
    except FhirError as error:
        return ack.acknowledge(message, ERROR, tuple(_problem(error, issue) for issue in error.issues))
    except Exception:  # a bug: the sender is told, the connection keeps serving
        log.exception("HL7 v2 message %s from %s could not be applied", message.control_id, message.sender)
        return ack.acknowledge(message, REJECT, (V2Problem(ack.INTERNAL_ERROR, "Internal error, nothing was applied",
                                                           "Erreur interne, rien n'a été enregistré"),))


def _handler(message: Message) -> Handler:
    """The handler of the message's type, once its header is checked (AR otherwise)."""
    code, event = message.event
    if not message.control_id:
        raise V2Error(REJECT, V2Problem(ack.REQUIRED_FIELD_MISSING, "MSH-10 (message control id) is empty",
                                        "MSH-10 (identifiant du message) est vide", ack.Location("MSH", 10)))
    if message.msh(12) not in VERSIONS:
        raise V2Error(REJECT, V2Problem(ack.UNSUPPORTED_VERSION, f"Unsupported HL7 version {message.msh(12)!r}",
                                        f"Version HL7 non prise en charge : {message.msh(12)!r}",
                                        ack.Location("MSH", 12)))
    handler = HANDLERS.get((code, event))
    if handler is not None:
        return handler
    if any(known == code for known, _ in HANDLERS):
        raise V2Error(REJECT, V2Problem(ack.UNSUPPORTED_EVENT, f"Unsupported event {code}^{event}; supported: "
                                        + _supported(code), f"Événement {code}^{event} non pris en charge ; pris en "
                                        f"charge : {_supported(code)}", ack.Location("MSH", 9, 2)))
    raise V2Error(REJECT, V2Problem(ack.UNSUPPORTED_MESSAGE_TYPE, f"Unsupported message type {code!r}; supported: "
                                    "ADT, SIU, MDM, ORU", f"Type de message {code!r} non pris en charge ; pris en "
                                    "charge : ADT, SIU, MDM, ORU", ack.Location("MSH", 9, 1)))


def _supported(code: str) -> str:
    return ", ".join(sorted(event for known, event in HANDLERS if known == code))


def _problem(error: FhirError, issue: Issue) -> V2Problem:
    """A core refusal (the same rules as every door) as an ERR segment."""
    where = f" at {issue.location[0]}" if issue.location else ""
    french = ERRORS.get(issue.dmp_code or "", "Refusé par le serveur (voir ERR-7)")
    return V2Problem(ISSUE_CODES.get(issue.code, ack.INTERNAL_ERROR), f"{error.status}: {issue.diagnostics}{where}",
                     french, dmp_code=issue.dmp_code)

"""What patients and their legal representatives may write in the secure inbox (docs/security.md,
"The inbox"): it holds the mail professionals sent through the MSSanté bridge, whose content and
receipts are the sender's and the bridge's, not the reader's.

- On any message of their inbox a patient may only mark it read or unread (the ``read``
  extension), or delete it.
- A patient writes only answers, as themselves: a Communication ``in-progress`` (the bridge
  relays it and completes it), ``inResponseTo`` one message of their inbox that was received by
  mail and still accepts answers (``X-MSS-MES: FIN`` closes a conversation), addressed to that
  message's sender, without the bridge's own extensions.
"""

from __future__ import annotations

from fhir_server.formats import json as fjson
from fhir_server.inbox.mailbox import MAIL_ENVELOPE, PATIENT_SETTABLE, REPLY_ALLOWED, SERVER_EXTENSIONS, extension_of
from fhir_server.search.compartment import compartment_params
from fhir_server.search.extract import references_of
from fhir_server.security.policy import Access, denied
from fhir_server.store.base import UnitOfWork


def check_patient_message(access: Access, unit: UnitOfWork, local_base: str | None, new: dict | None,
                          old: dict | None) -> None:
    """Raise 403 unless the patient (or representative) ``access`` may turn ``old`` into ``new``."""
    if new is None:
        return  # deleting a message from one's own inbox
    if old is None:
        _check_answer(access, unit, local_base, new)
    elif _without_settable(new) != _without_settable(old):
        raise denied("On a message of their inbox a patient may only mark it read or unread")


def _check_answer(access: Access, unit: UnitOfWork, local_base: str | None, new: dict) -> None:
    me = access.principal.reference
    if references_of(new, ("sender",), local_base) != {me}:
        raise denied(f"A patient's message is sent as themselves: its sender must be {me}")
    if new.get("status") != "in-progress":
        raise denied("An answer is created in-progress: the MSSanté bridge sends it, then marks it completed")
    if {e.get("url") for e in new.get("extension", ())} & SERVER_EXTENSIONS:
        raise denied("The MSSanté bridge's extensions (receipts, envelope, signature, relay) are the server's to write")
    answered = _answered(unit, local_base, new)
    if answered is None or not _patients(answered, local_base) <= set(access.patients):
        raise denied("A patient only answers a message of their inbox (inResponseTo one Communication of it)")
    if extension_of(answered, MAIL_ENVELOPE) is None:
        raise denied("Only messages received through MSSanté can be answered (a reply goes back by mail)")
    if not (extension_of(answered, REPLY_ALLOWED) or {}).get("valueBoolean", False):
        raise denied("The professional closed this conversation (X-MSS-MES: FIN): it accepts no answer")
    if references_of(new, ("recipient",), local_base) != references_of(answered, ("sender",), local_base):
        raise denied("An answer goes to the sender of the message it answers: recipient must be "
                     f"{answered.get('sender', {}).get('reference')}")


def _answered(unit: UnitOfWork, local_base: str | None, new: dict) -> dict | None:
    """The one message ``new`` answers, as stored, or None."""
    parents = new.get("inResponseTo", ())
    if len(parents) != 1:
        return None
    reference = parents[0].get("reference", "")
    target_type, _, target_id = reference.removeprefix(f"{local_base}/" if local_base else "").partition("/")
    record = unit.read("Communication", target_id) if target_type == "Communication" else None
    return None if record is None or record.deleted else fjson.loads(record.body)


def _patients(message: dict, local_base: str | None) -> set[str]:
    """The patients whose inbox holds ``message``."""
    linked = references_of(message, compartment_params("Communication"), local_base)
    return {ref.partition("/")[2] for ref in linked if ref.startswith("Patient/")}


def _without_settable(message: dict) -> dict:
    """The message minus what its reader may change, and the server's ``meta`` fields."""
    rest = {k: v for k, v in message.items() if k not in ("meta", "extension")}
    kept = [e for e in message.get("extension", ()) if e.get("url") not in PATIENT_SETTABLE]
    meta = {k: v for k, v in (message.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    return {**rest, "extension": kept, "meta": meta}

"""Filing a CDA document that came by mail into the patient's DMP — by the bridge when the IHE XDM
metadata asks for the DMP, or later by the patient (``POST Communication/{id}/$file-document``)
for an attachment that stayed in the inbox.

The same rules as every door (``dmp/ingest.py``: checks, INS, replacement, idempotency), plus one:
a message's document goes to the DMP of the patient the message was for — a document about
someone else is refused with the DMP's code 904. The DocumentReference names the message in
``context.related`` (search ``DocumentReference?related=Communication/…``).
"""

from __future__ import annotations

import base64

from cda.document import CdaDocument
from fhir_server.core.errors import FhirError, Issue
from fhir_server.core.repository import Repository, Writer
from fhir_server.dmp.ingest import Filed, checked_cda, file_document
from fhir_server.formats import json as fjson
from fhir_server.french.dmp_errors import ERRORS
from fhir_server.search.criteria import token_query
from mssante_bridge.xdm import XdmError, read_xdm

CDA_TYPES = frozenset({"application/hl7-cda+xml", "application/xml", "text/xml"})
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})


def file_for_patient(writer: Writer, document: CdaDocument, patient_id: str, message: str) -> Filed:
    """File the checked CDA ``document`` in ``patient_id``'s DMP, from the inbox message ``message``."""
    ins = document.header.patient.ins
    holders = writer.matching("Patient", token_query("identifier", f"urn:oid:{ins.root}", ins.extension), 10) \
        if ins is not None else []
    if patient_id not in holders:
        raise FhirError(422, "business-rule", f"The document is not about Patient/{patient_id}, whom the message was"
                        " for (its INS differs)", issues=[Issue(
                            "business-rule", f"{ERRORS['904']}: the document's INS is not the one of Patient/"
                            f"{patient_id}", location=["/ClinicalDocument/recordTarget/patientRole/id"],
                            dmp_code="904")])
    return file_document(writer, document, create_patients=False, related=message)


def file_attachment(repository: Repository, communication_id: str, attachment: str, entry: str | None) -> Filed:
    """``$file-document``: the attachment ``attachment`` (``Binary/…``, as the payload names it) of
    an inbox message — a CDA document, or one CDA document of an IHE XDM package (``entry``: its
    path in the ZIP, needed when it holds several) — filed in the DMP of the message's patient."""
    with repository.writer() as writer:
        message = fjson.loads(writer.read_current("Communication", communication_id, answered=True).body)
        urls = [p["contentAttachment"].get("url") for p in message.get("payload", ()) if "contentAttachment" in p]
        if attachment not in urls:
            raise FhirError(422, "value", f"{attachment} is not an attachment of Communication/{communication_id}"
                            f" (its attachments: {', '.join(u for u in urls if u) or 'none'})")
        patient = message.get("subject", {}).get("reference", "")
        if not patient.startswith("Patient/"):
            raise FhirError(422, "business-rule", f"Communication/{communication_id} is in no patient's inbox")
        binary = fjson.loads(writer.read_current(*attachment.split("/", 1), answered=True).body)
        data = _document(base64.b64decode(binary.get("data", "")), binary.get("contentType", ""), entry)
        return file_for_patient(writer, checked_cda(data), patient.removeprefix("Patient/"),
                                f"Communication/{communication_id}")


def _document(data: bytes, content_type: str, entry: str | None) -> bytes:
    """The CDA document an attachment is, or holds."""
    media = content_type.split(";")[0].strip().lower()
    if media in CDA_TYPES:
        return data
    if media not in ZIP_TYPES:
        raise FhirError(422, "not-supported", f"A {media or 'typeless'} attachment is neither a CDA document nor an"
                        " IHE XDM package")
    try:
        package = read_xdm(data)
    except XdmError as error:
        raise FhirError(422, "invalid", f"The IHE XDM package cannot be read: {error}") from None
    documents = [d for d in package.documents if d.is_cda and (entry is None or d.path == entry)]
    if len(documents) != 1:
        paths = ", ".join(d.path for d in package.documents if d.is_cda) or "none"
        raise FhirError(422, "value", f"Say which CDA document of the package to file (entry): {paths}" if documents
                        else f"The package holds no CDA document{f' at {entry}' if entry else ''} (CDA: {paths})")
    return documents[0].data

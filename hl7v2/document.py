"""MDM T02 / T04 / T10 and ORU R01 carrying a CDA document: the document and its routing.

The document is the first OBX whose value (OBX-2 ``ED``) is XML: OBX-5 is source application ^
type ^ subtype ^ encoding ^ data, the data base64-encoded (``Base64``) or, rarely, plain (``A``).
Routing comes from the OBX whose OBX-3 is coded in ``MetaDMPMSS`` (CI-SIS "Transmission au LPS
de documents CDA provenant d'un courriel MSSanté"), each with a Y/N value in OBX-5: ``DESTDMP``
(file in the DMP; the default when absent), the visibility codes ``MASQUE_PS``,
``INVISIBLE_PATIENT`` and ``INVISIBLE_REP_LEGAUX`` (HL7 v2's spelling of TRE_A07's
``INVISIBLE_REPRESENTANTS_LEGAUX``), and ``MODIF_CONF_CODE`` (the message changes the visibility
of a document already sent).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from hl7v2.ack import DATA_TYPE_ERROR, ERROR, REQUIRED_FIELD_MISSING, Location, V2Error, V2Problem
from hl7v2.er7 import Message

META = "MetaDMPMSS"
#: HL7 v2 visibility flags → TRE_A07 codes.
VISIBILITY = {"MASQUE_PS": "MASQUE_PS", "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
              "INVISIBLE_REP_LEGAUX": "INVISIBLE_REPRESENTANTS_LEGAUX"}
MAIL_DESTINATIONS = ("DESTMSSANTEPS", "DESTMSSANTEPAT")


@dataclass(frozen=True)
class CarriedDocument:
    data: bytes  # the CDA document, as sent
    labels: frozenset[str]  # TRE_A07 codes asked for
    flags: dict[str, bool]  # every MetaDMPMSS flag, by code

    @property
    def for_dmp(self) -> bool:
        return self.flags.get("DESTDMP", True)

    @property
    def changes_visibility(self) -> bool:
        return self.flags.get("MODIF_CONF_CODE", False)


def carried_document(message: Message) -> CarriedDocument:
    flags: dict[str, bool] = {}
    data = None
    for sequence, obx in enumerate(message.all("OBX"), 1):
        if obx(3, 3) == META:
            flags[obx(3, 1)] = obx(5, 1).upper() == "Y"
        elif data is None and obx(2) == "ED" and obx(5, 3).upper() == "XML":
            data = _decoded(obx(5, 4), obx(5, 5), sequence, message.codec)
    if data is None:
        raise V2Error(ERROR, V2Problem(REQUIRED_FIELD_MISSING, "No OBX carries a CDA document (OBX-2 ED, subtype XML)",
                                       "Aucun OBX ne porte de document CDA (OBX-2 ED, sous-type XML)",
                                       Location("OBX", 5)))
    labels = frozenset(code for flag, code in VISIBILITY.items() if flags.get(flag))
    return CarriedDocument(data, labels, flags)


def _decoded(encoding: str, text: str, sequence: int, codec: str) -> bytes:
    """The document's bytes; plain text (``A``) in the message's own character set, which is what
    its XML declaration says when the sender wrote it into the message as it was."""
    where = Location("OBX", 5, 5, sequence)
    if encoding.upper() == "A":
        return text.encode(codec)
    if encoding.upper() != "BASE64":
        raise V2Error(ERROR, V2Problem(DATA_TYPE_ERROR, f"Unsupported OBX-5 encoding {encoding!r} (Base64 or A)",
                                       f"Encodage OBX-5 non pris en charge : {encoding!r} (Base64 ou A)", where))
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise V2Error(ERROR, V2Problem(DATA_TYPE_ERROR, "OBX-5 is not valid base64",
                                       "OBX-5 n'est pas un base64 valide", where)) from None

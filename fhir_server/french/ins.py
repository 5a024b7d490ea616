"""INS/NIR arithmetic and the national identifier systems used by French FHIR profiles.

The INS (Identifiant National de Santé) matricule is the 13-character NIR followed by a
2-digit control key; the same arithmetic serves validation on input and synthetic generation.
"""

from __future__ import annotations

# Patient identity (INS) namespaces, as assigned by the CNAM / ANS.
OID_INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
OID_INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "urn:oid:1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "urn:oid:1.2.250.1.213.1.4.11"

# Health professionals: RPPS number, and the national id idNatPs = "8" + RPPS.
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
OID_IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"

# Organisations: FINESS number, and the national id idNatSt = "1" + FINESS.
SYSTEM_FINESS = "https://finess.esante.gouv.fr"
OID_IDNAT_ST = "urn:oid:1.2.250.1.71.4.2.2"

INS_SYSTEMS = (OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO)

# Corsican departments are alphanumeric; the key is computed on a numeric stand-in.
_CORSICA = {"2A": "19", "2B": "18"}


def _nir_number(nir13: str) -> int:
    """Numeric value of a NIR, substituting Corsica's 2A/2B (positions 6-7) as the key algorithm requires."""
    if len(nir13) != 13:
        raise ValueError(f"NIR must have 13 characters, got {len(nir13)}")
    dept = nir13[5:7].upper()
    digits = nir13[:5] + _CORSICA.get(dept, dept) + nir13[7:]
    if not digits.isdigit():
        raise ValueError(f"NIR has non-digit characters: {nir13!r}")
    return int(digits)


def nir_key(nir13: str) -> str:
    """Two-digit control key: 97 - (NIR mod 97), zero-padded."""
    return f"{97 - _nir_number(nir13) % 97:02d}"


def is_valid_ins(matricule15: str) -> bool:
    """True when the 15-character matricule (NIR + key) carries the right key."""
    if not isinstance(matricule15, str) or len(matricule15) != 15 or not matricule15[13:].isdigit():
        return False
    try:
        return nir_key(matricule15[:13]) == matricule15[13:]
    except ValueError:
        return False


def with_key(nir13: str) -> str:
    """The full 15-character matricule for a 13-character NIR."""
    return nir13 + nir_key(nir13)


def luhn_digit(payload: str) -> str:
    """Luhn check digit for a digit string (RPPS and FINESS numbers end with one)."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions, counted from the right of the payload
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def is_luhn_valid(number: str) -> bool:
    """True when the last digit of ``number`` is its Luhn check digit."""
    return number.isdigit() and len(number) > 1 and luhn_digit(number[:-1]) == number[-1]

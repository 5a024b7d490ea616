"""MSSanté addresses (FRENCH_STANDARDS.md §5.3): patients are ``<INS matricule>@patient.mssante.fr``,
professionals ``prenom.nom@<operator>.mssante.fr``; the sender's domain is what the MSSanté
allow-list ("liste blanche") names."""

from __future__ import annotations

import re
from email.utils import parseaddr

#: NIR / NIA: sex, year, month, department (Corsica: 2A / 2B), commune, order, then the 2-digit key.
MATRICULE = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")


def bare(address: str) -> str:
    """``"Dr X" <x@y.fr>`` or ``<x@y.fr>`` → ``x@y.fr``, lower-cased."""
    return parseaddr(address)[1].strip().lower()


def domain_of(address: str) -> str:
    return bare(address).rpartition("@")[2]


def patient_matricule(address: str, patient_domain: str) -> str | None:
    """The INS matricule a patient's address names, or None if it is not a patient address."""
    local, _, domain = bare(address).rpartition("@")
    if domain != patient_domain.lower() or not MATRICULE.fullmatch(local.upper()):
        return None
    return local.upper()


def allowed_domain(address: str, allowed: frozenset[str]) -> bool:
    """Whether the sender's domain is on the allow-list (an empty list allows every domain)."""
    domain = domain_of(address)
    return bool(domain) and (not allowed or domain in allowed)


def allow_list(spec: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in spec.split(",") if part.strip())

"""The CI-SIS DMP error codes (FRENCH_STANDARDS.md §4.4) with their French labels, verbatim from
the ANS volet's ``error-codes.md`` (table applicationErrorCondition): the text every door gives
the sender next to the code (HL7 v2 ERR-8, MSSanté receipts)."""

from __future__ import annotations

ERRORS: dict[str, str] = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu",
    "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet",
    "906": "Erreur 'Autre'",
}

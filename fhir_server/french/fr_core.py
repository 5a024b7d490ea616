"""FR Core (HL7 France) identifiers: profiles, extensions and code systems that French Patient,
Practitioner and Organization resources use (FRENCH_STANDARDS.md §1.1)."""

from __future__ import annotations

FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
CS_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
CS_V2_0445 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
EXT_IDENTITY_RELIABILITY = FR_CORE + "fr-core-identity-reliability"
EXT_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
EXT_INSEE_CODE = FR_CORE + "fr-core-address-insee-code"
EXT_BIRTH_GIVEN_NAMES = FR_CORE + "fr-core-patient-birth-list-given-name"
PROFILE_PATIENT_INS = FR_CORE + "fr-core-patient-ins"
PROFILE_PRACTITIONER = FR_CORE + "fr-core-practitioner"
PROFILE_ORGANIZATION = FR_CORE + "fr-core-organization"
PROFILE_APPOINTMENT = FR_CORE + "fr-core-appointment"
CS_COMMUNE = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"

"""HL7 v2 (PAM-FR ADT, SIU, MDM) → FHIR resources and ACKs, and the MLLP listener. Built with the HL7 v2 issue."""

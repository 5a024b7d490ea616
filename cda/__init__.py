"""CI-SIS CDA R2 documents → FHIR resources (pure: bytes in, resources out). Built with the CDA issue."""

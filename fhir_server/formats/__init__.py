"""Wire formats: FHIR JSON (with exact decimals) and FHIR XML, both to and from plain dicts."""

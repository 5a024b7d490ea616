"""MES interoperability server: FHIR R4 over an embedded or production store."""

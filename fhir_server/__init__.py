"""MES interoperability server: FHIR R4 over an embedded or production store."""

__version__ = "0.1.0"

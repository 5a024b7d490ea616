"""Black-box conformance suite runner (FHIR TestScript). Built with the conformance issue."""

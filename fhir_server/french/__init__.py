"""French health-system identifiers and code systems (INS, RPPS, FINESS) shared across the server."""

"""Search: parameter definitions, index extraction at write time, query parsing."""

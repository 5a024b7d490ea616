"""The HTTP door: protocol only. Each module is one interaction family; all go through the core."""

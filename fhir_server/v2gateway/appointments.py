"""SIU (scheduling) messages → Appointments: not written yet."""

HANDLERS: dict = {}

"""The HL7 v2 gateway's side of the core: a parsed v2 message applied through the Repository
(patients, appointments, documents), acknowledged, and applied once per sender and MSH-10."""

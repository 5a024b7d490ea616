"""The MSSanté bridge's side of the core: who may receive mail, and delivery into the patient's
inbox (Communications), the DMP filing of documents it carries, receipts and replies."""

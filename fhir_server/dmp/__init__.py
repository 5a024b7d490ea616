"""The DMP (shared medical record): filing documents, whatever door they come by."""

"""Access control: SMART scopes, bearer-token verification and the development signing key.

Pure building blocks with no HTTP in them, so the HTTP door (and later SMTP and MLLP) share one
notion of who is asking and what their token lets them do.
"""

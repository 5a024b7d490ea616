"""Access control (docs/security.md): who is asking (tokens, scopes, the development key, the
Access resolved from them), what they may see and write (policy, writes, the space lifecycle),
and the access traces (audit, trail). The core's Repository applies them, so every door — HTTP
today, SMTP and MLLP later — obeys the same rules.
"""

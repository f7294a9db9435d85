"""Account security: credential stuffing and takeover signals (the ordered takeover sequence), the
breached-password range API, and registered leaks of personal data (docs/account-security.md)."""

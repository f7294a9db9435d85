"""The analyst console: server-rendered pages under /console on the decision service (docs/console.md)."""

"""The decision tier scaled out: several worker processes (or hosts) over PostgreSQL and Redis.

- ``claims``: an event id is decided once across workers (a Redis claim taken before deciding; the
  second caller waits for the first's stored decision).
- ``notices``: strategy, list and published-feature changes announced to every worker at once
  (PostgreSQL LISTEN/NOTIFY or Redis pub/sub), with the existing poll as the fallback.
- ``serve``: ``riskguard serve --workers N``: the rules (shared back ends only), one-time preparation
  (migrations, starter strategy, first admin key) and the uvicorn worker processes.
"""

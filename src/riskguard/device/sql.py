"""Raw statements for the device package's steps in the group commit.

``store/writer.py`` runs a request's steps with the database driver's own cursor, in the writer's thread,
where SQLAlchemy's cost per statement (about 100 µs) would be paid once per signed decision. Steps are
therefore written for the driver: this is the dialect's parameter mark and the form in which a time is
stored (as the ``UTCDateTime`` column type stores it: UTC text on SQLite, an aware datetime on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime


class Sql:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def __call__(self, statement: str) -> str:
        """``statement`` written with ``?`` marks, in the driver's paramstyle."""
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def time(self, value: datetime | None) -> str | datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.dialect == "sqlite" else value

    def read_time(self, value: str | datetime | None) -> datetime | None:
        """A time the driver read back (SQLite: the stored text) as an aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

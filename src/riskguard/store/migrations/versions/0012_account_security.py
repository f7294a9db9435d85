"""account security: breached-password corpus, registered leaks (tokens only), leak watch flags and
alerts (riskguard.accountsec)

Revision ID: 0012
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "breach_hashes",
        sa.Column("prefix", sa.String(length=5), nullable=False),
        sa.Column("suffix", sa.String(length=35), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "suffix", name=op.f("pk_breach_hashes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "leaks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("discovered_at", UTC(timezone=True), nullable=False),
        sa.Column("imported_at", UTC(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=False),
        sa.Column("expires_at", UTC(timezone=True), nullable=False),
        sa.Column("identifiers", sa.Integer(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaks")),
        sa.UniqueConstraint("name", name=op.f("uq_leaks_name")),
    )
    op.create_table(
        "leak_identifiers",
        sa.Column("leak_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["leak_id"], ["leaks.id"], name=op.f("fk_leak_identifiers_leak_id_leaks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("leak_id", "kind", "token", name=op.f("pk_leak_identifiers")),
    )
    op.create_index("ix_leak_identifiers_token", "leak_identifiers", ["token"], unique=False)
    op.create_table(
        "leak_watch",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("leak_id", sa.Integer(), nullable=False),
        sa.Column("kinds", sa.String(length=64), nullable=False),
        sa.Column("discovered_at", UTC(timezone=True), nullable=False),
        sa.Column("expires_at", UTC(timezone=True), nullable=False),
        sa.Column("matched_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["leak_id"], ["leaks.id"], name=op.f("fk_leak_watch_leak_id_leaks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leak_watch")),
    )
    op.create_index("ux_leak_watch_account_leak", "leak_watch", ["account_id", "leak_id"], unique=True)
    op.create_index("ix_leak_watch_expires_at", "leak_watch", ["expires_at"], unique=False)
    op.create_table(
        "leak_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leak_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_leak_alerts_key")),
    )
    op.create_index("ix_leak_alerts_status", "leak_alerts", ["status", "last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leak_alerts_status", table_name="leak_alerts")
    op.drop_table("leak_alerts")
    op.drop_index("ix_leak_watch_expires_at", table_name="leak_watch")
    op.drop_index("ux_leak_watch_account_leak", table_name="leak_watch")
    op.drop_table("leak_watch")
    op.drop_index("ix_leak_identifiers_token", table_name="leak_identifiers")
    op.drop_table("leak_identifiers")
    op.drop_table("leaks")
    op.drop_table("breach_hashes")

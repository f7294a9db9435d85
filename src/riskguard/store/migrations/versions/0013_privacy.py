"""privacy: key ids in use, the token vault, reveal counts, throttles, canaries, access alerts

Revision ID: 0013
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0013"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "privacy_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("activated_at", UTC(timezone=True), nullable=True),
        sa.Column("retired_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_privacy_keys")),
    )
    op.create_table(
        "privacy_vault",
        sa.Column("token", sa.String(length=96), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_privacy_vault")),
    )
    op.create_table(
        "privacy_reveal_counts",
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("hour", UTC(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("actor", "hour", name=op.f("pk_privacy_reveal_counts")),
    )
    op.create_table(
        "privacy_throttles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("since", UTC(timezone=True), nullable=False),
        sa.Column("until", UTC(timezone=True), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("lifted_at", UTC(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_throttles")),
    )
    op.create_index("ix_privacy_throttles_actor", "privacy_throttles", ["actor", "until"], unique=False)
    op.create_table(
        "privacy_canaries",
        sa.Column("token", sa.String(length=96), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_privacy_canaries")),
    )
    op.create_index("ix_privacy_canaries_account_id", "privacy_canaries", ["account_id"], unique=False)
    op.create_table(
        "privacy_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_privacy_alerts_key")),
    )
    op.create_index("ix_privacy_alerts_status", "privacy_alerts", ["status", "last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_privacy_alerts_status", table_name="privacy_alerts")
    op.drop_table("privacy_alerts")
    op.drop_index("ix_privacy_canaries_account_id", table_name="privacy_canaries")
    op.drop_table("privacy_canaries")
    op.drop_index("ix_privacy_throttles_actor", table_name="privacy_throttles")
    op.drop_table("privacy_throttles")
    op.drop_table("privacy_reveal_counts")
    op.drop_table("privacy_vault")
    op.drop_table("privacy_keys")

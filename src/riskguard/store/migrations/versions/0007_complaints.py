"""complaints: analysed complaints and loan applications, suspected agent and intermediary rings

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "complaint_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", UTC(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("route", sa.String(length=48), nullable=True),
        sa.Column("signals", sa.Text(), nullable=False),
        sa.Column("analysed_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_records")),
        sa.UniqueConstraint("event_id", name=op.f("uq_complaint_records_event_id")),
    )
    op.create_index("ix_complaint_records_occurred_at", "complaint_records", ["occurred_at"], unique=False)
    op.create_table(
        "complaint_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_complaint_alerts_key")),
    )
    op.create_index("ix_complaint_alerts_status", "complaint_alerts", ["status", "last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_complaint_alerts_status", table_name="complaint_alerts")
    op.drop_table("complaint_alerts")
    op.drop_index("ix_complaint_records_occurred_at", table_name="complaint_records")
    op.drop_table("complaint_records")

"""event bus: the transactional outbox, consumers' processed events, per-account flows (riskguard.bus)

Revision ID: 0015
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0015"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "bus_outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bus_outbox")),
    )
    op.create_table(
        "bus_processed",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("processed_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_bus_processed")),
    )
    op.create_index("ix_bus_processed_processed_at", "bus_processed", ["processed_at"], unique=False)
    op.create_table(
        "bus_account_flows",
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("received_count", sa.Integer(), nullable=False),
        sa.Column("received_amount", sa.Text(), nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("sent_amount", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "currency", name=op.f("pk_bus_account_flows")),
    )


def downgrade() -> None:
    op.drop_table("bus_account_flows")
    op.drop_index("ix_bus_processed_processed_at", table_name="bus_processed")
    op.drop_table("bus_processed")
    op.drop_table("bus_outbox")

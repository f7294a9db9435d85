"""graph alerts: rings and dense blocks found by `riskguard graph refresh`

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "graph_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_graph_alerts_key")),
    )
    op.create_index("ix_graph_alerts_status", "graph_alerts", ["status", "last_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_graph_alerts_status", table_name="graph_alerts")
    op.drop_table("graph_alerts")

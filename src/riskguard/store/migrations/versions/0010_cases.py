"""cases: the unified alert inbox, cases, their activity, freeze requests and sync cursors (riskguard.cases)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "case_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("score_bp", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("priority_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTC(timezone=True), nullable=False),
        sa.Column("first_seen_at", UTC(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_alerts")),
        sa.UniqueConstraint("source", "source_key", name="uq_case_alerts_source_key"),
    )
    op.create_index("ix_case_alerts_status_priority", "case_alerts", ["status", "priority_minor"])
    op.create_index("ix_case_alerts_group_id", "case_alerts", ["group_id"])
    op.create_index("ix_case_alerts_case_id", "case_alerts", ["case_id"])
    op.create_table(
        "case_alert_entities",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "kind", "value", name=op.f("pk_case_alert_entities")),
    )
    op.create_index("ix_case_alert_entities_value", "case_alert_entities", ["kind", "value"])
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=24), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("priority_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_at", UTC(timezone=True), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("closed_at", UTC(timezone=True), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index("ix_cases_status_due", "cases", ["status", "due_at"])
    op.create_table(
        "case_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_activity")),
    )
    op.create_index("ix_case_activity_case_id", "case_activity", ["case_id", "at"])
    op.create_table(
        "case_freezes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("list_name", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTC(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", UTC(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_freezes")),
    )
    op.create_index("ix_case_freezes_case_id", "case_freezes", ["case_id"])
    op.create_table(
        "case_sync",
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=False),
        sa.Column("synced_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_case_sync")),
    )


def downgrade() -> None:
    op.drop_table("case_sync")
    op.drop_index("ix_case_freezes_case_id", table_name="case_freezes")
    op.drop_table("case_freezes")
    op.drop_index("ix_case_activity_case_id", table_name="case_activity")
    op.drop_table("case_activity")
    op.drop_index("ix_cases_status_due", table_name="cases")
    op.drop_table("cases")
    op.drop_index("ix_case_alert_entities_value", table_name="case_alert_entities")
    op.drop_table("case_alert_entities")
    op.drop_index("ix_case_alerts_case_id", table_name="case_alerts")
    op.drop_index("ix_case_alerts_group_id", table_name="case_alerts")
    op.drop_index("ix_case_alerts_status_priority", table_name="case_alerts")
    op.drop_table("case_alerts")

"""consortium ledger: the replicated log, checkpoints, witness state, forks, token audit, watch list, detail keys

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "consortium_leaves",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("member", sa.String(length=48), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_consortium_leaves")),
    )
    op.create_index("ix_consortium_leaves_leaf_hash", "consortium_leaves", ["leaf_hash"], unique=True)
    op.create_index("ix_consortium_leaves_entry_id", "consortium_leaves", ["entry_id"], unique=True)
    op.create_table(
        "consortium_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_consortium_checkpoints")),
    )
    op.create_table(
        "consortium_witness",
        sa.Column("origin", sa.String(length=120), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_consortium_witness")),
    )
    op.create_table(
        "consortium_forks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=120), nullable=False),
        sa.Column("detected_at", UTC(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consortium_forks")),
    )
    op.create_table(
        "consortium_token_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("member", sa.String(length=48), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consortium_token_audit")),
    )
    op.create_index("ix_consortium_token_audit_member_at", "consortium_token_audit", ["member", "at"])
    op.create_table(
        "consortium_watch",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("added_at", UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_consortium_watch")),
    )
    op.create_index("ix_consortium_watch_kind_value", "consortium_watch", ["subject_kind", "value"], unique=True)
    op.create_table(
        "consortium_detail_keys",
        sa.Column("entry_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("erased_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_consortium_detail_keys")),
    )


def downgrade() -> None:
    op.drop_table("consortium_detail_keys")
    op.drop_index("ix_consortium_watch_kind_value", table_name="consortium_watch")
    op.drop_table("consortium_watch")
    op.drop_index("ix_consortium_token_audit_member_at", table_name="consortium_token_audit")
    op.drop_table("consortium_token_audit")
    op.drop_table("consortium_forks")
    op.drop_table("consortium_witness")
    op.drop_table("consortium_checkpoints")
    op.drop_index("ix_consortium_leaves_entry_id", table_name="consortium_leaves")
    op.drop_index("ix_consortium_leaves_leaf_hash", table_name="consortium_leaves")
    op.drop_table("consortium_leaves")

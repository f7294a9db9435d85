"""published features: per-entity values computed by batch jobs (graph, mule scoring, consortium)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_features",
        sa.Column("source", sa.String(length=96), nullable=False),
        sa.Column("entity", sa.String(length=256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("published_at", riskguard.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity", name=op.f("pk_published_features")),
    )
    op.create_table(
        "published_sources",
        sa.Column("source", sa.String(length=96), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entities", sa.Integer(), nullable=False),
        sa.Column("published_at", riskguard.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_published_sources")),
    )


def downgrade() -> None:
    op.drop_table("published_sources")
    op.drop_table("published_features")

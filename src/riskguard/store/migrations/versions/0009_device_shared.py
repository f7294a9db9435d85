"""device keys shared by service workers: one active binding per key, change times, the last counter's
event; used nonces; the nonce key (riskguard.device)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime
ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    with op.batch_alter_table("device_keys") as batch:
        batch.add_column(sa.Column("last_event", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("changed_at", UTC(timezone=True), nullable=True))
    op.execute("UPDATE device_keys SET changed_at = COALESCE(ended_at, created_at)")
    op.create_index("ix_device_keys_changed_at", "device_keys", ["changed_at"], unique=False)
    op.create_index(
        "ux_device_keys_active_key",
        "device_keys",
        ["key_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "device_nonces",
        sa.Column("nonce_id", sa.String(length=32), nullable=False),
        sa.Column("consumed_by", sa.String(length=160), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce_id", name=op.f("pk_device_nonces")),
    )
    op.create_index("ix_device_nonces_expires_ms", "device_nonces", ["expires_ms"], unique=False)
    op.create_table(
        "device_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_device_secrets")),
    )


def downgrade() -> None:
    op.drop_table("device_secrets")
    op.drop_index("ix_device_nonces_expires_ms", table_name="device_nonces")
    op.drop_table("device_nonces")
    op.drop_index("ux_device_keys_active_key", table_name="device_keys")
    op.drop_index("ix_device_keys_changed_at", table_name="device_keys")
    with op.batch_alter_table("device_keys") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("last_event")

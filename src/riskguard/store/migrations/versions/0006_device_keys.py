"""device keys: registered device keys and their account bindings (riskguard.device)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import riskguard.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = riskguard.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "device_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("scheme", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("cose_key", sa.Text(), nullable=True),
        sa.Column("credential_id", sa.Text(), nullable=True),
        sa.Column("attested", sa.Boolean(), nullable=False),
        sa.Column("security_level", sa.String(length=16), nullable=False),
        sa.Column("boot_state", sa.String(length=16), nullable=False),
        sa.Column("patch_level", sa.Integer(), nullable=True),
        sa.Column("package", sa.String(length=256), nullable=True),
        sa.Column("signing_digest", sa.String(length=128), nullable=True),
        sa.Column("serials", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rebound_from", sa.String(length=128), nullable=True),
        sa.Column("registered_at", UTC(timezone=True), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("ended_at", UTC(timezone=True), nullable=True),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint_changes", sa.Integer(), nullable=False),
        sa.Column("last_used_at", UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_keys")),
    )
    op.create_index("ix_device_keys_key_id", "device_keys", ["key_id"], unique=False)
    op.create_index("ix_device_keys_device_id", "device_keys", ["device_id"], unique=False)
    op.create_index("ix_device_keys_account_id", "device_keys", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_device_keys_account_id", table_name="device_keys")
    op.drop_index("ix_device_keys_device_id", table_name="device_keys")
    op.drop_index("ix_device_keys_key_id", table_name="device_keys")
    op.drop_table("device_keys")

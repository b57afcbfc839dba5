"""layer versioning: one live feature per key, retired parcels

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_layer_features_live", table_name="layer_features")
    op.create_index("ix_layer_features_live", "layer_features", ["layer_id", "feature_key"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.add_column("parcels", sa.Column("is_retired", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column("parcels", "is_retired")
    op.drop_index("ix_layer_features_live", table_name="layer_features")
    op.create_index("ix_layer_features_live", "layer_features", ["layer_id"], unique=False,
                    postgresql_where=sa.text("valid_to IS NULL"))

"""checks: schema of issue 4 (spatial checks): re-check links, added departments, details

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("check_runs", sa.Column("previous_run_id", sa.Integer(),
                                          sa.ForeignKey("check_runs.id", ondelete="SET NULL"), nullable=True))
    op.add_column("check_runs", sa.Column("trigger_version_id", sa.Integer(), sa.ForeignKey("layer_versions.id"),
                                          nullable=True))
    op.add_column("check_runs", sa.Column("extra_departments", sa.ARRAY(sa.String(32)), nullable=False,
                                          server_default="{}"))
    op.add_column("check_runs", sa.Column("summary", JSONB(), nullable=False, server_default="{}"))
    op.add_column("check_runs", sa.Column("changes", JSONB(), nullable=False, server_default="[]"))
    op.add_column("check_results", sa.Column("details", JSONB(), nullable=False, server_default="{}"))
    op.add_column("check_results", sa.Column("adds_department", sa.String(32), nullable=True))
    op.add_column("check_results", sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                                             server_default=sa.func.now()))


def downgrade() -> None:
    for column in ("created_at", "adds_department", "details"):
        op.drop_column("check_results", column)
    for column in ("changes", "summary", "extra_departments", "trigger_version_id", "previous_run_id"):
        op.drop_column("check_runs", column)

"""layer partitions are vacuumed once 1% of their rows have changed

A re-import reads the live features' digests from the live index alone (migration 0012), but an
index-only scan must still visit the rows of every page that is not marked all-visible, and each
re-import unmarks the pages it retires features on. With PostgreSQL's defaults, autovacuum marks
them again only once dead or newly inserted rows reach a fifth of a partition's rows: some twenty
re-imports of a 1% change, each reading more rows than the last. Each layer's partition now has
autovacuum thresholds of 1% of its rows (history included), which also brings the planner's count
of all-visible pages up to date. At 200,000 parcels autovacuum then came after every second
re-import of a 1% change, and the live digests' query went from 30,705 rows visited and 103-108 ms
to none and 63 ms. Partitions made later get the same settings
(``gisapproval.layerversions.PARTITION_STORAGE``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# as gisapproval.layerversions.PARTITION_STORAGE
SETTINGS = {"autovacuum_vacuum_scale_factor": "0.01", "autovacuum_vacuum_insert_scale_factor": "0.01"}


def _partitions() -> list[str]:
    return list(op.get_bind().execute(sa.text(
        "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "WHERE h.inhparent = 'layer_features'::regclass ORDER BY 1")).scalars())


def upgrade() -> None:
    for table in _partitions():
        op.execute(f"ALTER TABLE {table} SET ({', '.join(f'{k} = {v}' for k, v in SETTINGS.items())})")


def downgrade() -> None:
    for table in _partitions():
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(SETTINGS)})")

"""layer features' keys compare by their bytes (COLLATE "C")

A feature key (a parcel code, a zone's number) is an identifier: it is looked up, joined, kept
unique and lists features in a stable order, never in a reader's alphabetical one. Under the
database's collation every comparison of two keys went through that collation, and the order of
the two key indexes was the collation's: a server whose C library or ICU changes its collation
with an upgrade would need those indexes rebuilt. With ``COLLATE "C"`` keys compare by their
bytes on every server, whatever its locale.

Building the two key indexes over 200,000 live parcel codes took (three rounds each):

- with this machine's collation (C.UTF-8, libc): 153-195 and 213-300 ms;
- with ICU's zh-Hans-CN collation, as a Chinese server's locale may have it: 313-336 and 338-434 ms;
- with "C": 125-168 and 156-171 ms.

Every partition's key column and key indexes follow the partitioned table's; the parcels view
reads the column, so it is put aside and made again as it was.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _key_collation(collation: str) -> None:
    bind = op.get_bind()
    view = bind.execute(sa.text("SELECT pg_get_viewdef('parcels'::regclass)")).scalar()
    op.execute("DROP VIEW parcels")
    op.execute(f'ALTER TABLE layer_features ALTER COLUMN feature_key TYPE varchar(200) COLLATE "{collation}"')
    op.execute(f"CREATE VIEW parcels AS {view}")


def upgrade() -> None:
    _key_collation("C")


def downgrade() -> None:
    _key_collation("default")

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

Every partition's key column and key indexes follow the partitioned table's (under an ACCESS
EXCLUSIVE lock while each partition's two key indexes are built again). The parcels view reads
the column, so it is put aside and made again as it was, with the privileges others were granted
on it and its comment. Changing a column's collation drops its statistics, so the column is
analysed again.

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
    view, comment = bind.execute(sa.text(
        "SELECT pg_get_viewdef(c.oid), quote_literal(obj_description(c.oid, 'pg_class')) FROM pg_class c "
        "WHERE c.oid = 'parcels'::regclass")).one()
    grants = bind.execute(sa.text(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.privilege_type, "
        "a.is_grantable FROM pg_class c CROSS JOIN aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE c.oid = 'parcels'::regclass AND a.grantee <> c.relowner")).all()
    op.execute("DROP VIEW parcels")
    op.execute(f'ALTER TABLE layer_features ALTER COLUMN feature_key TYPE varchar(200) COLLATE "{collation}"')
    op.execute(f"CREATE VIEW parcels AS {view}")
    for grantee, privilege, grantable in grants:
        op.execute(f"GRANT {privilege} ON parcels TO {grantee}{' WITH GRANT OPTION' if grantable else ''}")
    if comment is not None:
        op.execute(f"COMMENT ON VIEW parcels IS {comment}")
    op.execute("ANALYZE layer_features (feature_key)")


def upgrade() -> None:
    _key_collation("C")


def downgrade() -> None:
    _key_collation("default")

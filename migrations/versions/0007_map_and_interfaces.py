"""map and interfaces: schema of issue 6 (tiles, OGC API, exports)

Every geometry that the map serves as vector tiles (parcels, layer features, project
footprints) also keeps a stored web-mercator (EPSG:3857) copy, computed by PostgreSQL as a
generated column, so that a tile request never reprojects. The copy is kept as EWKB
(``bytea``) rather than a second ``geometry`` column: the schema's geometry columns all stay
in the jurisdiction's metric SRID (one CRS for every spatial predicate); tiles read the copy
with ``ST_GeomFromEWKB``, which parses without any coordinate arithmetic. Tile queries find
rows through the existing GiST index on ``geom`` with the tile's envelope transformed once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WEB_GEOMETRY = "ST_AsEWKB(ST_Transform(geom, 3857))"
# a parcel's centre in web mercator: the small-scale tiles count parcels per cell without
# reading their polygons
WEB_CENTRE = "ST_AsEWKB(ST_Transform(ST_Centroid(geom), 3857))"
TABLES = ("parcels", "layer_features", "buildings")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("geom_web", sa.LargeBinary(), sa.Computed(WEB_GEOMETRY, persisted=True),
                                       nullable=True))
    op.add_column("parcels", sa.Column("centre_web", sa.LargeBinary(), sa.Computed(WEB_CENTRE, persisted=True),
                                       nullable=True))


def downgrade() -> None:
    op.drop_column("parcels", "centre_web")
    for table in reversed(TABLES):
        op.drop_column(table, "geom_web")

"""feature digests, web-mercator centres and shapes, computed by the importer

- ``layer_features.content_digest`` (uuid, nullable): a 128-bit digest (XXH3-128) of the
  feature's content as the import wrote it (its attributes as JSON text and its geometry as
  EWKB), computed by the importing process, never by the database. A re-import compares each
  source feature's digest with the live feature's and sends the database only the features
  that differ; equal digests mean equal content. A NULL digest (the rows written before this
  migration) means "not known": such a feature is compared by its content, and the import
  records its digest when it finds it unchanged.
- ``layer_features.centre_web`` (point, EPSG:3857): the centre of the feature's bounding box
  in web mercator, also computed by the importer (this migration computes it for the rows already there). The
  small-scale map tiles count parcels by it; the parcels view computed it for every parcel of
  every such tile, which made those tiles three to ten times slower after migration 0009.
- ``layer_features.geom_web`` (the shape in web mercator, EWKB, for vector tiles) is no longer
  computed by the database as each row is written (it was a third of the database's work in a
  first import) but by the importer, which reprojects a whole batch at once; the rows already
  there keep theirs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PARCELS_VIEW = """
CREATE VIEW parcels AS
SELECT f.ident AS id, f.feature_key AS parcel_code, f.attrs->>'holder' AS holder,
       f.attrs->>'land_use' AS land_use, ST_Area(f.geom) AS area_m2, f.geom, false AS is_retired,
       f.geom_web, {centre} AS centre_web
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NULL
UNION ALL
SELECT f.ident, f.feature_key, f.attrs->>'holder', f.attrs->>'land_use', ST_Area(f.geom), f.geom, true,
       f.geom_web, {centre}
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {table} g
                  WHERE g.layer_id = f.layer_id AND g.ident = f.ident
                    AND (g.valid_to IS NULL OR g.valid_to > f.valid_to))
"""
CENTRE_0010 = "f.centre_web"
CENTRE_0009 = "ST_AsEWKB(ST_Transform(ST_Centroid(f.geom), 3857))"
CADASTRE_ID = "(SELECT l.id FROM layers l WHERE l.name = 'cadastre')"


def _parcels_view(centre: str) -> None:
    """Create the parcels view over the table it reads now: the cadastre's partition once it
    has one, else layer_features."""
    cadastre = op.get_bind().execute(sa.text(
        "SELECT l.id FROM layers l WHERE l.name = 'cadastre' "
        "AND to_regclass('layer_features_p' || l.id) IS NOT NULL")).scalar()
    if cadastre is None:
        op.execute(PARCELS_VIEW.format(table="layer_features", layer=CADASTRE_ID, centre=centre))
    else:
        op.execute(PARCELS_VIEW.format(table=f"layer_features_p{int(cadastre)}", layer=int(cadastre), centre=centre))


def upgrade() -> None:
    op.execute("DROP VIEW parcels")  # its centre column changes type
    op.execute("ALTER TABLE layer_features ADD COLUMN content_digest uuid, "
               "ADD COLUMN centre_web geometry(Point, 3857), ALTER COLUMN geom_web DROP EXPRESSION")
    op.execute("UPDATE layer_features SET centre_web = ST_Transform(ST_SetSRID(ST_MakePoint("
               "(ST_XMin(geom) + ST_XMax(geom)) / 2, (ST_YMin(geom) + ST_YMax(geom)) / 2), ST_SRID(geom)), 3857)")
    op.execute("ALTER TABLE layer_features ALTER COLUMN centre_web SET NOT NULL, "
               "ALTER COLUMN geom_web SET NOT NULL")
    _parcels_view(CENTRE_0010)


def downgrade() -> None:
    op.execute("DROP VIEW parcels")
    op.execute("ALTER TABLE layer_features DROP COLUMN centre_web, DROP COLUMN content_digest, "
               "DROP COLUMN geom_web")
    op.execute("ALTER TABLE layer_features ADD COLUMN geom_web bytea "
               "GENERATED ALWAYS AS (ST_AsEWKB(ST_Transform(geom, 3857))) STORED")
    _parcels_view(CENTRE_0009)

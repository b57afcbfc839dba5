"""parcels view: one scan of the cadastre, so a parcel is found through the ident index when joined

The view of migrations 0009/0010 was a UNION ALL of the live parcels and the retired ones (an
anti-join). PostgreSQL cannot push a join condition into such a branch, so every query that
joined parcels to another table (a project's parcels, a task's, a self-check's) read the whole
cadastre: 150-200 ms a query at 200,000 parcels, and minutes under load. The view is now one
scan of the cadastre's rows that are live or are the last row of a retired parcel (a NOT EXISTS
evaluated only for rows no longer valid), which the planner reaches through the ident index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

VIEW_0011 = """
CREATE OR REPLACE VIEW parcels AS
SELECT f.ident AS id, f.feature_key AS parcel_code, f.attrs->>'holder' AS holder,
       f.attrs->>'land_use' AS land_use, ST_Area(f.geom) AS area_m2, f.geom, f.valid_to IS NOT NULL AS is_retired,
       f.geom_web, f.centre_web
FROM {table} f
WHERE f.layer_id = {layer}
  AND (f.valid_to IS NULL
       OR NOT EXISTS (SELECT 1 FROM {table} g
                      WHERE g.layer_id = f.layer_id AND g.ident = f.ident
                        AND (g.valid_to IS NULL OR g.valid_to > f.valid_to)))
"""
VIEW_0010 = """
CREATE OR REPLACE VIEW parcels AS
SELECT f.ident AS id, f.feature_key AS parcel_code, f.attrs->>'holder' AS holder,
       f.attrs->>'land_use' AS land_use, ST_Area(f.geom) AS area_m2, f.geom, false AS is_retired,
       f.geom_web, f.centre_web
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NULL
UNION ALL
SELECT f.ident, f.feature_key, f.attrs->>'holder', f.attrs->>'land_use', ST_Area(f.geom), f.geom, true,
       f.geom_web, f.centre_web
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {table} g
                  WHERE g.layer_id = f.layer_id AND g.ident = f.ident
                    AND (g.valid_to IS NULL OR g.valid_to > f.valid_to))
"""
CADASTRE_ID = "(SELECT l.id FROM layers l WHERE l.name = 'cadastre')"


def _parcels_view(view: str) -> None:
    """The parcels view over the table it reads now: the cadastre's partition once it has one,
    else layer_features."""
    cadastre = op.get_bind().execute(sa.text(
        "SELECT l.id FROM layers l WHERE l.name = 'cadastre' "
        "AND to_regclass('layer_features_p' || l.id) IS NOT NULL")).scalar()
    if cadastre is None:
        op.execute(view.format(table="layer_features", layer=CADASTRE_ID))
    else:
        op.execute(view.format(table=f"layer_features_p{int(cadastre)}", layer=int(cadastre)))


def upgrade() -> None:
    _parcels_view(VIEW_0011)


def downgrade() -> None:
    _parcels_view(VIEW_0010)

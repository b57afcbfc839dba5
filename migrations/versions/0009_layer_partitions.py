"""layer partitions: one partition of layer_features per layer; parcels as a view of the cadastre

An import used to write a city's cadastre twice (into layer_features, and again into the
parcels table) through every index of both. Now:

- ``layer_features`` is partitioned by layer (LIST on ``layer_id``). A layer's first import
  loads its own table with no index, builds the indexes once, and attaches the table as the
  layer's partition (its CHECK constraint spares PostgreSQL the scan). Attaching takes a SHARE
  UPDATE EXCLUSIVE lock on the parent: readers and writers of other layers are not blocked. A
  layer's partition is created at its first import (there is no default partition).
- ``ident`` names a feature across versions: a changed or re-added feature keeps the ident of
  its key's earlier row; a new key takes a fresh number from the features' sequence.
- ``content_hash`` goes: a feature's content is compared, when an import or a diff needs it,
  by its attributes (jsonb equality) and its geometry's exact bytes (EWKB), rather than hashed
  for every feature written (the hash was a third of the database's work in a first import).
- ``parcels`` becomes a view of the cadastre layer: its live features, and each retired
  parcel as its last version had it. A parcel's id is its feature's ident; the rows of
  ``project_parcels`` keep their meaning (the migration gives every cadastre feature the id of
  its parcel). The foreign key to the parcels table is replaced by a constraint trigger.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('layer_features_id_seq'),
    layer_id integer NOT NULL,
    feature_key varchar(200) NOT NULL,
    valid_from integer NOT NULL,
    valid_to integer,
    attrs jsonb NOT NULL,
    geom geometry(Geometry, 4547) NOT NULL,
    geom_web bytea GENERATED ALWAYS AS (ST_AsEWKB(ST_Transform(geom, 3857))) STORED,
    ident bigint NOT NULL DEFAULT nextval('layer_features_id_seq')
"""

# The view reads the cadastre's partition itself (planned without the other layers'
# partitions); before the cadastre has one, it reads layer_features, and the cadastre's first
# import points it at the new partition (gisapproval.layerversions).
PARCELS_VIEW = """
CREATE OR REPLACE VIEW parcels AS
SELECT f.ident AS id, f.feature_key AS parcel_code, f.attrs->>'holder' AS holder,
       f.attrs->>'land_use' AS land_use, ST_Area(f.geom) AS area_m2, f.geom, false AS is_retired,
       f.geom_web, ST_AsEWKB(ST_Transform(ST_Centroid(f.geom), 3857)) AS centre_web
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NULL
UNION ALL
SELECT f.ident, f.feature_key, f.attrs->>'holder', f.attrs->>'land_use', ST_Area(f.geom), f.geom, true,
       f.geom_web, ST_AsEWKB(ST_Transform(ST_Centroid(f.geom), 3857))
FROM {table} f
WHERE f.layer_id = {layer} AND f.valid_to IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {table} g
                  WHERE g.layer_id = f.layer_id AND g.ident = f.ident
                    AND (g.valid_to IS NULL OR g.valid_to > f.valid_to))
"""
CADASTRE_ID = "(SELECT l.id FROM layers l WHERE l.name = 'cadastre')"

PARCEL_REF_TRIGGER = """
CREATE FUNCTION project_parcels_check_parcel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM parcels p WHERE p.id = NEW.parcel_id) THEN
        RAISE EXCEPTION 'project_parcels: no parcel with id % in the cadastre', NEW.parcel_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER project_parcels_parcel_exists AFTER INSERT OR UPDATE ON project_parcels
    DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION project_parcels_check_parcel();
"""


def upgrade() -> None:
    conn = op.get_bind()
    orphans = conn.execute(sa.text(
        """
        SELECT p.parcel_code FROM parcels p
        WHERE EXISTS (SELECT 1 FROM project_parcels pp WHERE pp.parcel_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM layer_features f JOIN layers l ON l.id = f.layer_id AND l.name = 'cadastre'
                          WHERE f.feature_key = p.parcel_code)
        ORDER BY 1 LIMIT 20
        """)).scalars().all()
    if orphans:
        raise RuntimeError("migration 0009 stops, nothing changed: these parcels of projects are not in the "
                           f"cadastre layer, so the parcels view would lose them: {', '.join(orphans)}")
    op.execute("ALTER SEQUENCE layer_features_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE layer_features RENAME TO layer_features_old")
    op.execute("ALTER TABLE layer_features_old RENAME CONSTRAINT layer_features_pkey TO layer_features_old_pkey")
    op.execute("DROP INDEX idx_layer_features_geom, ix_layer_features_key, ix_layer_features_live")
    op.execute(f"CREATE TABLE layer_features ({COLUMNS}, CONSTRAINT layer_features_pkey PRIMARY KEY (id, layer_id),"
               " CONSTRAINT layer_features_layer_id_fkey FOREIGN KEY (layer_id) REFERENCES layers (id))"
               " PARTITION BY LIST (layer_id)")
    op.execute("ALTER SEQUENCE layer_features_id_seq OWNED BY layer_features.id")
    op.execute("CREATE INDEX idx_layer_features_geom ON layer_features USING gist (geom)")
    # within a layer's partition, layer_id is one value: the indexes lead with what varies
    op.execute("CREATE INDEX ix_layer_features_key ON layer_features (feature_key, valid_from)")
    op.execute("CREATE UNIQUE INDEX ix_layer_features_live ON layer_features (layer_id, feature_key) "
               "WHERE valid_to IS NULL")
    op.execute("CREATE INDEX ix_layer_features_ident ON layer_features (ident)")
    for (layer_id,) in conn.execute(sa.text("SELECT DISTINCT layer_id FROM layer_features_old ORDER BY 1")):
        op.execute(f"CREATE TABLE layer_features_p{int(layer_id)} PARTITION OF layer_features "
                   f"FOR VALUES IN ({int(layer_id)})")
    # a cadastre feature's ident is its parcel's id (project_parcels keep pointing at the same
    # parcels); any other feature's is its key's first row id
    op.execute(
        """
        INSERT INTO layer_features (id, layer_id, feature_key, valid_from, valid_to, attrs, geom, ident)
        SELECT o.id, o.layer_id, o.feature_key, o.valid_from, o.valid_to, o.attrs, o.geom,
               coalesce(p.id, min(o.id) OVER (PARTITION BY o.layer_id, o.feature_key))
        FROM layer_features_old o
        LEFT JOIN layers l ON l.id = o.layer_id AND l.name = 'cadastre'
        LEFT JOIN parcels p ON l.id IS NOT NULL AND p.parcel_code = o.feature_key
        """)
    op.execute("SELECT setval('layer_features_id_seq', greatest((SELECT max(id) FROM parcels), "
               "(SELECT last_value FROM layer_features_id_seq), 1))")
    op.execute("DROP TABLE layer_features_old")
    op.execute("ALTER TABLE project_parcels DROP CONSTRAINT project_parcels_parcel_id_fkey")
    op.execute("ALTER TABLE project_parcels ALTER COLUMN parcel_id TYPE bigint")
    op.execute("DROP TABLE parcels")
    cadastre = conn.execute(sa.text(
        "SELECT l.id FROM layers l WHERE l.name = 'cadastre' AND EXISTS "
        "(SELECT 1 FROM layer_features f WHERE f.layer_id = l.id)")).scalar()
    if cadastre is None:
        op.execute(PARCELS_VIEW.format(table="layer_features", layer=CADASTRE_ID))
    else:
        op.execute(PARCELS_VIEW.format(table=f"layer_features_p{int(cadastre)}", layer=int(cadastre)))
    op.execute(PARCEL_REF_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER project_parcels_parcel_exists ON project_parcels")
    op.execute("DROP FUNCTION project_parcels_check_parcel()")
    op.execute("CREATE TABLE parcels_new AS SELECT id::integer AS id, parcel_code::varchar(64) AS parcel_code, "
               "holder::varchar(200) AS holder, land_use::varchar(16) AS land_use, area_m2, "
               "ST_Multi(geom)::geometry(MultiPolygon, 4547) AS geom, is_retired FROM parcels")
    op.execute("DROP VIEW parcels")
    op.execute("ALTER TABLE parcels_new RENAME TO parcels")
    op.execute("CREATE SEQUENCE parcels_id_seq OWNED BY parcels.id")
    op.execute("SELECT setval('parcels_id_seq', coalesce((SELECT max(id) FROM parcels), 0) + 1, false)")
    op.execute("ALTER TABLE parcels ALTER COLUMN id SET DEFAULT nextval('parcels_id_seq'), "
               "ALTER COLUMN id SET NOT NULL, ALTER COLUMN parcel_code SET NOT NULL, ALTER COLUMN holder SET NOT NULL, "
               "ALTER COLUMN land_use SET NOT NULL, ALTER COLUMN area_m2 SET NOT NULL, ALTER COLUMN geom SET NOT NULL, "
               "ALTER COLUMN is_retired SET NOT NULL, ALTER COLUMN is_retired SET DEFAULT false, "
               "ADD CONSTRAINT parcels_pkey PRIMARY KEY (id), "
               "ADD CONSTRAINT parcels_parcel_code_key UNIQUE (parcel_code)")
    op.execute("CREATE INDEX idx_parcels_geom ON parcels USING gist (geom)")
    op.execute("ALTER TABLE parcels ADD COLUMN geom_web bytea GENERATED ALWAYS AS "
               "(ST_AsEWKB(ST_Transform(geom, 3857))) STORED")
    op.execute("ALTER TABLE parcels ADD COLUMN centre_web bytea GENERATED ALWAYS AS "
               "(ST_AsEWKB(ST_Transform(ST_Centroid(geom), 3857))) STORED")
    op.execute("ALTER TABLE project_parcels ALTER COLUMN parcel_id TYPE integer")
    op.execute("ALTER TABLE project_parcels ADD CONSTRAINT project_parcels_parcel_id_fkey "
               "FOREIGN KEY (parcel_id) REFERENCES parcels (id)")
    op.execute("ALTER SEQUENCE layer_features_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE layer_features RENAME TO layer_features_parts")
    op.execute("ALTER INDEX idx_layer_features_geom RENAME TO idx_layer_features_parts_geom")
    op.execute("ALTER INDEX ix_layer_features_key RENAME TO ix_layer_features_parts_key")
    op.execute("ALTER INDEX ix_layer_features_live RENAME TO ix_layer_features_parts_live")
    op.execute("ALTER TABLE layer_features_parts RENAME CONSTRAINT layer_features_pkey TO layer_features_parts_pkey")
    op.execute(
        """
        CREATE TABLE layer_features (
            id bigint NOT NULL DEFAULT nextval('layer_features_id_seq') PRIMARY KEY,
            layer_id integer NOT NULL REFERENCES layers (id),
            feature_key varchar(200) NOT NULL,
            valid_from integer NOT NULL,
            valid_to integer,
            attrs jsonb NOT NULL,
            content_hash varchar(64) NOT NULL,
            geom geometry(Geometry, 4547) NOT NULL,
            geom_web bytea GENERATED ALWAYS AS (ST_AsEWKB(ST_Transform(geom, 3857))) STORED
        )
        """)
    op.execute("ALTER SEQUENCE layer_features_id_seq OWNED BY layer_features.id")
    op.execute("INSERT INTO layer_features (id, layer_id, feature_key, valid_from, valid_to, attrs, content_hash, geom) "
               "SELECT id, layer_id, feature_key, valid_from, valid_to, attrs, "
               "encode(sha256(ST_AsEWKB(geom) || convert_to(attrs::text, 'UTF8')), 'hex'), geom "
               "FROM layer_features_parts")
    op.execute("DROP TABLE layer_features_parts")
    op.execute("CREATE INDEX idx_layer_features_geom ON layer_features USING gist (geom)")
    # within a layer's partition, layer_id is one value: the indexes lead with what varies
    op.execute("CREATE INDEX ix_layer_features_key ON layer_features (feature_key, valid_from)")
    op.execute("CREATE UNIQUE INDEX ix_layer_features_live ON layer_features (layer_id, feature_key) "
               "WHERE valid_to IS NULL")

"""map revision: a counter that moves when a transaction that changed the map commits

Tiles and their ETags depend on the map's state. The largest audit-event id is not a faithful
fingerprint of it: ids are taken when an event is inserted, not when its transaction commits,
so a transaction that took id 100 and commits after another that took 101 leaves the largest
id unchanged while the map changes. A deferred constraint trigger on events bumps
``map_revision.revision`` at commit, once per transaction that wrote an event that can change
the map (not logins, tokens or downloads); readers see the new revision exactly when they see
the transaction's changes. The row is locked only while the committing transaction finishes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# the event types that change nothing on the map (as in gisapproval.tiles before this revision)
MAP_EVENT = "NEW.type NOT LIKE 'user.%' AND NEW.type NOT LIKE 'api_token.%' AND NEW.type NOT LIKE '%.exported'"


def upgrade() -> None:
    op.create_table(
        "map_revision",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_map_revision_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO map_revision (id, revision) VALUES (1, 0)")
    op.execute(
        f"""
        CREATE FUNCTION map_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- once per transaction: the setting is local to it
            IF coalesce(current_setting('gisapproval.map_revision_bumped', true), '') = '' THEN
                UPDATE map_revision SET revision = revision + 1 WHERE id = 1;
                PERFORM set_config('gisapproval.map_revision_bumped', 'yes', true);
            END IF;
            RETURN NULL;
        END;
        $$;
        CREATE CONSTRAINT TRIGGER events_bump_map_revision AFTER INSERT ON events
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN ({MAP_EVENT})
            EXECUTE FUNCTION map_revision_bump();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER events_bump_map_revision ON events")
    op.execute("DROP FUNCTION map_revision_bump()")
    op.drop_table("map_revision")

"""layer versions get a content token

Each layer version gets a random UUID when it is made, ``content_token``: the name under which
the import that made it keeps the version's content digests on its machine
(``gisapproval.digestcache``), so that the next re-import there need not ask the database for
them. A random name, unlike the version's id or number, cannot be taken by another version: not
one in another database, nor one made after a restored backup has handed out the same numbers
again. Existing versions get one each; no file is named by them, so their next re-import asks
the database as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("layer_versions", sa.Column("content_token", sa.Uuid(), nullable=False,
                                              server_default=sa.text("gen_random_uuid()")))


def downgrade() -> None:
    op.drop_column("layer_versions", "content_token")

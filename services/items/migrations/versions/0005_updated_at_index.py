"""An index on when each item last changed: followers of the catalog ask for the items changed since
a moment (ExportItems with updated_since) every few seconds.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_index("ix_items_catalog_updated_at", "items_catalog", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_items_catalog_updated_at", table_name="items_catalog")

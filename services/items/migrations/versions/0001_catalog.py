"""The catalog.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "items_catalog",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("category_path", sa.Text, nullable=False),
        sa.Column("brand", sa.String(256), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("items_catalog")

"""When each item was listed, and when its price and stock last changed (push occasions read them).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("items_catalog") as table:
        table.add_column(sa.Column("listed_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("previous_price", sa.Float, nullable=False, server_default="0"))
        table.add_column(sa.Column("price_changed_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("restocked_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE items_catalog SET listed_at = updated_at")
    with op.batch_alter_table("items_catalog") as table:
        table.alter_column("listed_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("items_catalog") as table:
        for column in ("restocked_at", "price_changed_at", "previous_price", "listed_at"):
            table.drop_column(column)

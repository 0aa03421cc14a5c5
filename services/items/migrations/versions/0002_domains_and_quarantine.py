"""Description, stock status, domain and kind of items; quarantine for rejected items.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("items_catalog") as table:
        table.add_column(sa.Column("description", sa.Text, nullable=False, server_default=""))
        table.add_column(sa.Column("stock_status", sa.SmallInteger, nullable=False, server_default="0"))
        table.add_column(sa.Column("domain", sa.SmallInteger, nullable=False, server_default="1"))
        table.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default=""))
    op.create_table(
        "items_quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("items_quarantine")
    with op.batch_alter_table("items_catalog") as table:
        for column in ("kind", "domain", "stock_status", "description"):
            table.drop_column(column)

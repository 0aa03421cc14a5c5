"""Items a merchant withdrew from recommendations.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("items_catalog") as table:
        table.add_column(sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("items_catalog") as table:
        table.drop_column("hidden")

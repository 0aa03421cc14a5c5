"""The shopper's segment (for example their country) on each event.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("profile_events") as table:
        table.add_column(sa.Column("segment", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("profile_events") as table:
        table.drop_column("segment")

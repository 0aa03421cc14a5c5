"""Request context of events: surface and session.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("profile_events") as table:
        table.add_column(sa.Column("surface", sa.String(32), nullable=False, server_default=""))
        table.add_column(sa.Column("session_id", sa.String(128), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("profile_events") as table:
        table.drop_column("session_id")
        table.drop_column("surface")

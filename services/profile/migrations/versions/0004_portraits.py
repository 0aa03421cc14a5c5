"""Real-time portraits: one bounded JSON state per shopper.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "profile_portraits",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("profile_portraits")

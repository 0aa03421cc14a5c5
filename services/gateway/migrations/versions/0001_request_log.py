"""The request log.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "gateway_requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("surface", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("item_ids", sa.Text, nullable=False),
        sa.Column("degraded_stages", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("gateway_requests_user", "gateway_requests", ["user_id"])


def downgrade() -> None:
    op.drop_table("gateway_requests")

"""Push settings, the push log with its feedback, and campaigns.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "gateway_push_settings",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("opted_out", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_pushes",
        sa.Column("push_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("item_ids", sa.Text, nullable=False),
        sa.Column("template", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("send_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_gateway_pushes_request_id", "gateway_pushes", ["request_id"])
    op.create_index("gateway_pushes_user_time", "gateway_pushes", ["user_id", "send_time"])
    op.create_table(
        "gateway_push_campaigns",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_push_campaign_users",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("push_id", sa.String(64), nullable=True),
        sa.Column("skip_reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "gateway_push_campaign_users",
        "gateway_push_campaigns",
        "gateway_pushes",
        "gateway_push_settings",
    ):
        op.drop_table(table)

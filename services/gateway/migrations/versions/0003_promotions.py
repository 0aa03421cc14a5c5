"""Promotion plans and their logged decisions.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "gateway_promotion_plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("arguments", sa.Text, nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("feature_names", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gateway_promotion_decisions",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("offer_id", sa.String(128), nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("sent", sa.Boolean, nullable=False),
        sa.Column("propensity", sa.Float, nullable=False),
        sa.Column("expected_margin", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("committed", sa.Float, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("basket_price", sa.Float, nullable=False),
        sa.Column("discount", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_promotion_decisions")
    op.drop_table("gateway_promotion_plans")

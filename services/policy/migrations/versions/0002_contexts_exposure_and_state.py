"""Decision contexts, exposure counts and the learning policies' state.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("policy_decisions") as batch:
        batch.add_column(sa.Column("candidate_ids", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("categories", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("features", sa.LargeBinary, nullable=True))
    op.create_table(
        "policy_item_exposure",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("shown", sa.Float, nullable=False),
        sa.Column("reward", sa.Float, nullable=False),
    )
    op.create_table(
        "policy_shopper_exposure",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("shown", sa.Float, nullable=False),
        sa.Column("reward", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "item_id"),
    )
    op.create_table(
        "policy_states",
        sa.Column("policy", sa.String(64), primary_key=True),
        sa.Column("a", sa.LargeBinary, nullable=False),
        sa.Column("b", sa.LargeBinary, nullable=False),
        sa.Column("updates", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_policy_decisions_policy", "policy_decisions", ["policy", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_policy_decisions_policy", "policy_decisions")
    op.drop_table("policy_states")
    op.drop_table("policy_shopper_exposure")
    op.drop_table("policy_item_exposure")
    with op.batch_alter_table("policy_decisions") as batch:
        batch.drop_column("features")
        batch.drop_column("categories")
        batch.drop_column("candidate_ids")

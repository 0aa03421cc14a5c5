"""Each replica's share of a learning policy's state, in a row of its own.

Expand only: a new table. Older pods keep writing policy_states, which newer ones read as one
more part (the whole state those pods learned, prior included) until every pod is new.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "policy_state_parts",
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("part", sa.String(128), nullable=False),
        sa.Column("a", sa.LargeBinary, nullable=False),
        sa.Column("b", sa.LargeBinary, nullable=False),
        sa.Column("updates", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("policy", "part"),
    )


def downgrade() -> None:
    op.drop_table("policy_state_parts")

"""The ranking model version behind each decision (rewards are counted per ranking version).

Expand only: a nullable column that older pods neither read nor write.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("policy_decisions") as batch:
        batch.add_column(sa.Column("ranking_version", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_decisions") as batch:
        batch.drop_column("ranking_version")

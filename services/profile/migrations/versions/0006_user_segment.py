"""Each shopper's segment (that of their latest event naming one), so that push campaigns can
list a segment's shoppers.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("profile_users") as table:
        table.add_column(sa.Column("segment", sa.String(64), nullable=False, server_default=""))
    op.execute(
        "UPDATE profile_users SET segment = COALESCE((SELECT e.segment FROM profile_events e "
        "WHERE e.user_id = profile_users.user_id AND e.segment != '' ORDER BY e.ts DESC LIMIT 1), '')"
    )
    op.create_index("profile_users_segment", "profile_users", ["segment", "user_id"])


def downgrade() -> None:
    op.drop_index("profile_users_segment", "profile_users")
    with op.batch_alter_table("profile_users") as table:
        table.drop_column("segment")

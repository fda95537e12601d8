"""Dead letters in the ledger, so that a broker restart loses none.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255)),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(128), index=True),
        sa.Column("task_id", sa.String(320)),
        sa.Column("attempts", sa.Integer),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("redriven_at", TS),
        sa.Column("sealed", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")

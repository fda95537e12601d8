"""A message read again (after a crash, or an outage) records nothing twice: a rejected
event is keyed by its digest and where its message was read, and a request remembers the
messages whose events it has taken.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rejected_events") as batch:
        batch.add_column(sa.Column("place", sa.String(300), nullable=True))
        batch.create_unique_constraint("uq_rejected_place", ["raw_sha256", "place"])
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("deliveries", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("deliveries")
    with op.batch_alter_table("rejected_events") as batch:
        batch.drop_constraint("uq_rejected_place", type_="unique")
        batch.drop_column("place")

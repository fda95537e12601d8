"""A rejected event is recorded once a delivery: keyed by its digest and when its message
was sent, so that a batch read again (after a crash, or an outage) records nothing twice.

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
        batch.add_column(sa.Column("sent_ms", sa.BigInteger, nullable=True))
        batch.create_unique_constraint("uq_rejected_delivery", ["raw_sha256", "sent_ms"])


def downgrade() -> None:
    with op.batch_alter_table("rejected_events") as batch:
        batch.drop_constraint("uq_rejected_delivery", type_="unique")
        batch.drop_column("sent_ms")

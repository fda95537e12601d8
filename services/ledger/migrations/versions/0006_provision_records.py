"""Third-party-provision records (APPI Arts. 29 and 30), their subjects' digests, and stops.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provision_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.String(128), nullable=False, unique=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("flow", sa.String(32), nullable=False),
        sa.Column("form", sa.String(32), nullable=False),
        sa.Column("counterparty", sa.String(512), nullable=False),
        sa.Column("counterparty_address", sa.Text),
        sa.Column("counterparty_representative", sa.Text),
        sa.Column("acquired_how", sa.Text),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("basis", sa.String(16)),
        sa.Column("consent", sa.Text),
        sa.Column("provided_on", sa.Date, nullable=False),
        sa.Column("last_provided_on", sa.Date),
        sa.Column("ppc_publication", sa.Text),
        sa.Column("cross_border", sa.JSON),
        sa.Column("note", sa.Text),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("retain_until", TS, nullable=False, index=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "provision_subjects",
        sa.Column(
            "record_pk",
            sa.Integer,
            sa.ForeignKey("provision_records.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.String(64), primary_key=True, index=True),
    )
    op.create_table(
        "provision_stops",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_digest", sa.String(64), nullable=False, index=True),
        sa.Column("counterparty", sa.String(512), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("stopped_at", TS, nullable=False),
        sa.UniqueConstraint("subject_digest", "counterparty"),
    )


def downgrade() -> None:
    for table in ("provision_stops", "provision_subjects", "provision_records"):
        op.drop_table(table)

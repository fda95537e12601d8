"""Initial ledger: requests, tasks, responses, rejected events, audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("regulation", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("hold_reason", sa.String(64)),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("deadline_at", TS, nullable=False),
        sa.Column("timeout_at", TS),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("completed_at", TS),
        sa.Column("latency_ms", sa.Integer),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(320), primary_key=True),
        sa.Column(
            "request_id", sa.String(128), sa.ForeignKey("requests.request_id"), nullable=False
        ),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_tasks_request_status", "tasks", ["request_id", "status"])
    op.create_table(
        "responses",
        sa.Column(
            "request_id", sa.String(128), sa.ForeignKey("requests.request_id"), primary_key=True
        ),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, index=True),
    )
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("errors", sa.JSON, nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("request_id", sa.String(128), index=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "rejected_events", "responses", "tasks", "requests"):
        op.drop_table(table)

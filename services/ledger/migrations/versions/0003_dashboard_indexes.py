"""Indexes for the dashboard's recent-activity reads.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_completed_at", "requests", ["completed_at"])
    op.create_index("ix_tasks_finished_at", "tasks", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_finished_at", "tasks")
    op.drop_index("ix_requests_completed_at", "requests")

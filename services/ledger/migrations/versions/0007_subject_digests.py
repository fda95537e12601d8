"""Digests of each request's identifiers, so that the event itself can be kept sealed.

Revision ID: 0007
Revises: 0006
"""

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _digest(kind: str, value: str) -> str:
    # services.crypto.digests.normalise as of this revision
    kind, value = kind.strip().lower(), str(value).strip()
    normal = f"{kind}:{value.lower() if kind == 'email' else value}"
    return hashlib.sha256(normal.encode()).hexdigest()


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("subject_digests", sa.JSON(), nullable=True))
    requests = sa.table(
        "requests",
        sa.column("request_id", sa.String),
        sa.column("event", sa.JSON),
        sa.column("discovered", sa.JSON),
        sa.column("subject_digests", sa.JSON),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(requests.c.request_id, requests.c.event, requests.c.discovered))
    for request_id, event, discovered in rows.fetchall():
        event, discovered = _load(event) or {}, _load(discovered) or {}
        given = (event.get("subject") or {}).get("identifiers") or {}  # plain until now
        found = [(k, v) for k, values in discovered.items() for v in values]
        digests = {_digest(k, v) for k, v in [*given.items(), *found] if v}
        conn.execute(
            requests.update()
            .where(requests.c.request_id == request_id)
            .values(subject_digests=sorted(digests))
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("subject_digests")

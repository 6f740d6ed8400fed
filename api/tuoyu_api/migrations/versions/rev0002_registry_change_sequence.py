"""Registry change sequence: registry_heads and registry_changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

Every write to an area's registry takes the next number of the area's sequence
(``registry_heads.seq``) and records it in ``registry_changes``; a service worker that
has seen an area up to some number applies the later changes to its live analysis before
answering, so several workers and several hosts on one database agree. Existing areas
start at 0: a worker builds its analysis from the rows, not from the changes.

Frozen copy of ``api/tuoyu_api/models.py`` at this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two sequence tables."""
    op.create_table(
        "registry_heads",
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("area", name=op.f("pk_registry_heads")),
    )
    op.create_table(
        "registry_changes",
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("area", "seq", name=op.f("pk_registry_changes")),
    )


def downgrade() -> None:
    """Drop the two sequence tables."""
    op.drop_table("registry_changes")
    op.drop_table("registry_heads")

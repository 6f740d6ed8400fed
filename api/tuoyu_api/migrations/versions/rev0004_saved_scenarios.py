"""Planner's workbench: saved_scenarios and scenario_audit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

What-if scenarios saved by name (additions, removals and the per-街道 results computed
when saved) and an audit row per save or deletion. The facility registry is untouched.

Frozen copy of ``SavedScenario`` and ``ScenarioAudit`` in ``api/tuoyu_api/models.py`` at
this revision (migrations never import the models, which change later).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the two workbench tables."""
    op.create_table(
        "saved_scenarios",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("additions", sa.JSON(), nullable=False),
        sa.Column("removals", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_scenarios")),
        sa.UniqueConstraint("area", "name", name=op.f("uq_saved_scenarios_area_name")),
    )
    op.create_index(
        op.f("ix_saved_scenarios_area_created_at"),
        "saved_scenarios",
        ["area", "created_at"],
        unique=False,
    )
    op.create_table(
        "scenario_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenario_audit")),
    )
    op.create_index(
        op.f("ix_scenario_audit_area_scenario_id"),
        "scenario_audit",
        ["area", "scenario_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the two workbench tables."""
    op.drop_index(op.f("ix_scenario_audit_area_scenario_id"), table_name="scenario_audit")
    op.drop_table("scenario_audit")
    op.drop_index(op.f("ix_saved_scenarios_area_created_at"), table_name="saved_scenarios")
    op.drop_table("saved_scenarios")

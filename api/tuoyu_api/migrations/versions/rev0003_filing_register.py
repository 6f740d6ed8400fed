"""备案 register: register_filings, register_audit, register_assessments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

The health committee's filing register (:mod:`tuoyu.register`): filings with their
life cycle as JSON, an audit row per write, and quality assessments.

Frozen copy of ``api/tuoyu_api/register_models.py`` at this revision (migrations never
import the models, which change later).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the three register tables."""
    op.create_table(
        "register_filings",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("filing_id", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("registered_on", sa.Date(), nullable=True),
        sa.Column("filing", sa.JSON(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_register_filings")),
        sa.UniqueConstraint(
            "area", "filing_id", name=op.f("uq_register_filings_area_filing_id")
        ),
    )
    op.create_index(
        op.f("ix_register_filings_area_state"),
        "register_filings",
        ["area", "state"],
        unique=False,
    )
    op.create_table(
        "register_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("filing_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_audit")),
    )
    op.create_index(
        op.f("ix_register_audit_area_filing_id"),
        "register_audit",
        ["area", "filing_id"],
        unique=False,
    )
    op.create_table(
        "register_assessments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.Column("assessor", sa.String(length=64), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("overall", sa.Float(), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_assessments")),
    )
    op.create_index(
        op.f("ix_register_assessments_area_facility_id"),
        "register_assessments",
        ["area", "facility_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the three register tables."""
    op.drop_index(
        op.f("ix_register_assessments_area_facility_id"), table_name="register_assessments"
    )
    op.drop_table("register_assessments")
    op.drop_index(op.f("ix_register_audit_area_filing_id"), table_name="register_audit")
    op.drop_table("register_audit")
    op.drop_index(op.f("ix_register_filings_area_state"), table_name="register_filings")
    op.drop_table("register_filings")

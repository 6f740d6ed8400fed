"""Initial registry schema: facilities, api_tokens, audit_log, area_seeds.

Revision ID: 0001
Revises:
Create Date: 2026-04-24

Frozen copy of ``api/tuoyu_api/models.py`` at this revision (migrations never import the models,
which change later). Timestamps are ``TIMESTAMP WITH TIME ZONE`` in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the four registry tables."""
    op.create_table(
        "api_tokens",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "area_seeds",
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("seeded_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("area", name=op.f("pk_area_seeds")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_area_facility_id"), "audit_log", ["area", "facility_id"], unique=False
    )
    op.create_table(
        "facilities",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("jiedao", sa.String(length=64), nullable=True),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("crs", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("puhui", sa.Boolean(), nullable=True),
        sa.Column("ownership", sa.String(length=8), nullable=True),
        sa.Column("slots_infant", sa.Integer(), nullable=True),
        sa.Column("slots_toddler", sa.Integer(), nullable=True),
        sa.Column("slots_preschool", sa.Integer(), nullable=True),
        sa.Column("slots", sa.Integer(), nullable=True),
        sa.Column("enrolled", sa.Integer(), nullable=True),
        sa.Column("service_modes", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("registered_on", sa.Date(), nullable=True),
        sa.Column("assumed_fields", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_facilities")),
        sa.UniqueConstraint("area", "id", name=op.f("uq_facilities_area_id")),
    )
    op.create_index(
        op.f("ix_facilities_area_kind"), "facilities", ["area", "kind"], unique=False
    )


def downgrade() -> None:
    """Drop the four registry tables."""
    op.drop_index(op.f("ix_facilities_area_kind"), table_name="facilities")
    op.drop_table("facilities")
    op.drop_index(op.f("ix_audit_log_area_facility_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("area_seeds")
    op.drop_table("api_tokens")

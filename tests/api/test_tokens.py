"""Bearer tokens: created, stored hashed, verified, revoked — on both engines."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError
from tuoyu_api.db import Database, open_database
from tuoyu_api.models import ApiToken
from tuoyu_api.settings import get_api_settings, resolve_database_url
from tuoyu_api.tokens import (
    InvalidTokenError,
    RevokedTokenError,
    create_token,
    create_token_cli,
    list_tokens,
    revoke_token,
    revoke_token_cli,
    verify_token,
)


def test_token_roundtrip_stores_only_the_hash(database: Database) -> None:
    with database.session() as session:
        token = create_token(session, "editor")
        assert token.startswith("tuoyu_") and len(token) > 40
        row = session.scalar(select(ApiToken).where(ApiToken.name == "editor"))
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in {row.name, row.token_hash}
        assert verify_token(session, token) == "editor"
        assert row.created_at.tzinfo is not None


def test_wrong_and_missing_tokens_are_refused(database: Database) -> None:
    with database.session() as session:
        token = create_token(session, "editor")
        with pytest.raises(InvalidTokenError, match="unknown"):
            verify_token(session, token + "x")
        with pytest.raises(InvalidTokenError, match="required"):
            verify_token(session, None)
        with pytest.raises(InvalidTokenError):
            verify_token(session, "")


def test_revoked_token_is_refused(database: Database) -> None:
    with database.session() as session:
        token = create_token(session, "editor")
        other = create_token(session, "other")
        revoke_token(session, "editor")
        revoke_token(session, "editor")  # idempotent
        with pytest.raises(RevokedTokenError, match="editor"):
            verify_token(session, token)
        assert verify_token(session, other) == "other"
        listed = {t.name: t.revoked for t in list_tokens(session)}
        assert listed == {"editor": True, "other": False}
        with pytest.raises(NotFoundError):
            revoke_token(session, "nobody")


def test_token_names_are_unique_and_checked(database: Database) -> None:
    with database.session() as session:
        first = create_token(session, "editor")
        with pytest.raises(ConflictError, match="already exists"):
            create_token(session, "editor")
        with pytest.raises(InputValidationError, match="token name"):
            create_token(session, "has space")
        assert verify_token(session, first) == "editor"
        assert len(list_tokens(session)) == 1


def test_create_token_cli_uses_the_configured_registry(tmp_path: Path) -> None:
    settings = get_api_settings(state_dir=tmp_path / "state", database_url=None)
    token = create_token_cli("cli-user", settings)
    db = open_database(resolve_database_url(settings), upgrade=False)
    try:
        with db.session() as session:
            assert verify_token(session, token) == "cli-user"
        revoke_token_cli("cli-user", settings)
        with db.session() as session, pytest.raises(RevokedTokenError):
            verify_token(session, token)
    finally:
        db.dispose()
    assert (tmp_path / "state" / "registry.sqlite").is_file()

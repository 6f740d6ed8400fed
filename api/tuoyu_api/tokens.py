"""Bearer tokens for registry writes.

A token is ``secrets.token_urlsafe(32)`` (256 random bits) shown once to its creator;
the database keeps only its sha256. Looking a token up by its hash is safe against timing
attacks because the hash of an unknown high-entropy token reveals nothing useful.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tuoyu.config.settings import Settings
from tuoyu.errors import ConflictError, InputValidationError, NotFoundError

from tuoyu_api.models import ApiToken, utc_now

TOKEN_PREFIX = "tuoyu_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")


class TokenError(Exception):
    """A bearer token was refused (mapped to 401/403 by ``tuoyu_api.errors``)."""


class InvalidTokenError(TokenError):
    """The token is missing or unknown (HTTP 401)."""


class RevokedTokenError(TokenError):
    """The token exists but was revoked (HTTP 403)."""


@dataclass(frozen=True)
class TokenInfo:
    """What the service knows about a token (never the token itself)."""

    name: str
    created_at: str
    revoked: bool


def hash_token(token: str) -> str:
    """Hex sha256 of a token (what the database stores)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputValidationError(
            "token name must be 1–64 characters: letters, digits, _ . @ - "
            f"(starting with a letter or digit), got {name!r}",
            field="name",
        )
    return name


def create_token(session: Session, name: str) -> str:
    """Create a token called ``name`` and return it (the only time it is visible).

    Parameters
    ----------
    session
        Open session; the new row is committed.
    name
        Who holds the token (recorded as the actor in the audit log).

    Returns
    -------
    str
        The token, ``tuoyu_`` followed by 43 URL-safe characters.

    Raises
    ------
    InputValidationError
        The name has characters other than letters, digits, ``_ . @ -``.
    ConflictError
        A token of that name exists (revoked ones included: names stay unique in the
        audit log).
    """
    _check_name(name)
    if session.scalar(select(ApiToken.pk).where(ApiToken.name == name)) is not None:
        raise ConflictError(f"a token named '{name}' already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), created_at=utc_now()))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"a token named '{name}' already exists") from exc
    return token


def verify_token(session: Session, token: str | None) -> str:
    """Return the name of a valid token.

    Raises
    ------
    InvalidTokenError
        ``token`` is empty or unknown.
    RevokedTokenError
        ``token`` was revoked.
    """
    if not token:
        raise InvalidTokenError("a bearer token is required for this request")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise InvalidTokenError("unknown bearer token")
    if row.revoked:
        raise RevokedTokenError(f"the token '{row.name}' was revoked")
    return row.name


def revoke_token(session: Session, name: str) -> None:
    """Revoke the token called ``name`` (committed; idempotent).

    Raises
    ------
    NotFoundError
        No token has that name.
    """
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise NotFoundError(f"no token named '{name}'")
    if not row.revoked:
        row.revoked = True
        row.revoked_at = utc_now()
        session.commit()


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token's name, creation time (ISO 8601 UTC) and revoked flag, by name."""
    rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
    return [TokenInfo(r.name, r.created_at.isoformat(), r.revoked) for r in rows]


def create_token_cli(name: str, settings: Settings | None = None) -> str:
    """Create a token in the configured registry (``tuoyu token create NAME``).

    Migrates the database first when needed.

    Parameters
    ----------
    name
        Token name (see :func:`create_token`).
    settings
        Settings naming the database (``database_url`` / ``state_dir``); from the
        environment when omitted.

    Returns
    -------
    str
        The new token; print it once, it cannot be recovered.
    """
    from tuoyu_api.db import open_database
    from tuoyu_api.settings import as_api_settings, resolve_database_url

    database = open_database(resolve_database_url(as_api_settings(settings)))
    try:
        with database.session() as session:
            return create_token(session, name)
    finally:
        database.dispose()


def revoke_token_cli(name: str, settings: Settings | None = None) -> None:
    """Revoke a token in the configured registry (``tuoyu token revoke NAME``)."""
    from tuoyu_api.db import open_database
    from tuoyu_api.settings import as_api_settings, resolve_database_url

    database = open_database(resolve_database_url(as_api_settings(settings)))
    try:
        with database.session() as session:
            revoke_token(session, name)
    finally:
        database.dispose()

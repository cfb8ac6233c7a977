"""API tokens: created with a random secret shown once, stored as SHA-256, verified, revoked.

A token belongs to a project; an admin token sees every project. Only the hash of the
secret is stored, with a short prefix that identifies the token in listings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from service.core.errors import BadRequest, NotFound
from service.store.db import read_scope, session_scope
from service.store.tables import Token, utcnow

SECRET_PREFIX = "ff_"
PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
LAST_USED_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Identity:
    """Who a request acts for: a project, or every project for an admin token."""

    token_id: int | None
    project: str
    is_admin: bool

    @property
    def scope(self) -> str | None:
        """The project the caller may see; None when it may see all (admin)."""
        return None if self.is_admin else self.project


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) a token's secret is stored as."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_project(name: object) -> str:
    """A project name usable in object-store keys; BadRequest otherwise."""
    if not isinstance(name, str) or not PROJECT_RE.fullmatch(name) or ".." in name:
        raise BadRequest(
            "a project name is 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            code="bad_project",
        )
    return name


class TokenStore:
    """The ``tokens`` table."""

    def __init__(self, database_url: str):
        self.url = database_url

    def create(self, project: str, *, name: str = "", admin: bool = False) -> tuple[dict, str]:
        """A new token; returns (its listing, the secret). The secret is never stored."""
        check_project(project)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        token = Token(
            project=project,
            name=name[:200],
            prefix=secret[:10],
            token_hash=hash_secret(secret),
            is_admin=admin,
            created_at=utcnow(),
        )
        with session_scope(self.url) as s:
            s.add(token)
            s.flush()
            return _view(token), secret

    def verify(self, secret: str) -> Identity | None:
        """The identity of a live token with this secret; None if unknown or revoked."""
        if not secret or len(secret) > 200:
            return None
        digest = hash_secret(secret)
        now = utcnow()
        with read_scope(self.url) as s:  # every request: no BEGIN/COMMIT round trips
            token = s.scalars(select(Token).where(Token.token_hash == digest)).first()
            if token is None or not hmac.compare_digest(token.token_hash, digest):
                return None
            if token.revoked_at is not None:
                return None
            if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
                s.execute(update(Token).where(Token.id == token.id).values(last_used_at=now))
            return Identity(token.id, token.project, token.is_admin)

    def list(self, project: str | None = None, include_revoked: bool = True) -> list[dict]:
        """Tokens oldest first, of one project or all; never their secrets."""
        with session_scope(self.url) as s:
            q = select(Token).order_by(Token.id)
            if project is not None:
                q = q.where(Token.project == project)
            if not include_revoked:
                q = q.where(Token.revoked_at.is_(None))
            return [_view(t) for t in s.scalars(q).all()]

    def revoke(self, token_id: int) -> dict:
        """Revoke a token (it stops working at once); revoking twice is harmless."""
        with session_scope(self.url) as s:
            token = s.get(Token, token_id)
            if token is None:
                raise NotFound(f"no token with id {token_id}")
            if token.revoked_at is None:
                token.revoked_at = utcnow()
            s.flush()
            return _view(token)


def _view(t: Token) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": t.id,
        "project": t.project,
        "name": t.name,
        "prefix": t.prefix,
        "admin": t.is_admin,
        "created_at": iso(t.created_at),
        "last_used_at": iso(t.last_used_at),
        "revoked_at": iso(t.revoked_at),
    }

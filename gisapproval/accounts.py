"""Users, roles and departments: creating them and logging in."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .audit import record_event
from .config import LAYERS_DIR, read_toml
from .db import sha256_prefix, sha256_prefix_sql
from .errors import AuthenticationError, ConfigurationError, InputError
from .models import ROLES, Department, User, UserRole

# A hash to compare against when the user does not exist, so that a wrong user name
# costs the same time as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password")


def sync_departments(session: Session, path=None) -> list[Department]:
    """Insert or update the departments declared in layers/departments.toml."""
    path = path or LAYERS_DIR / "departments.toml"
    data = read_toml(path, "department list")
    existing = {d.code: d for d in session.scalars(sa.select(Department))}
    out = []
    for i, entry in enumerate(data.get("department", [])):
        try:
            code, zh, en = entry["code"], entry["name_zh"], entry["name_en"]
        except KeyError as exc:
            raise ConfigurationError(f"department #{i + 1} lacks {exc.args[0]!r}", where=str(path)) from None
        dept = existing.get(code) or Department(code=code)
        dept.name_zh, dept.name_en, dept.is_reviewing = zh, en, bool(entry.get("reviews", False))
        session.add(dept)
        out.append(dept)
    session.flush()
    return out


def create_user(
    session: Session,
    actor: User | None,
    *,
    username: str,
    password: str,
    display_name: str,
    roles: list[str],
    department_code: str | None = None,
    organisation: str | None = None,
) -> User:
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise InputError("user name must be 1-64 letters, digits, '.', '-' or '_'", where="username")
    if len(password) < 8:
        raise InputError("password must have at least 8 characters", where="password")
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise InputError(f"unknown or missing roles {sorted(unknown)}; known: {', '.join(ROLES)}", where="roles")
    if session.scalar(sa.select(User.id).where(User.username == username)):
        raise InputError(f"user {username!r} already exists", where="username")
    dept = None
    if department_code:
        dept = session.scalar(sa.select(Department).where(Department.code == department_code))
        if dept is None:
            raise InputError(f"unknown department {department_code!r}", where="department")
    if {"reviewer", "leader", "layer_editor"} & set(roles) and dept is None:
        raise InputError("reviewers, leaders and layer editors belong to a department", where="department")
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        display_name=display_name,
        organisation=organisation,
        department=dept,
        roles=[UserRole(role=r) for r in roles],
    )
    session.add(user)
    session.flush()
    record_event(session, actor, "user.created", user, {"username": username, "roles": sorted(roles),
                                                         "department": department_code})
    return user


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this name and password, or AuthenticationError (and an audit event)."""
    user = session.scalar(sa.select(User).where(User.username == username.strip()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        ok = False
    else:
        ok = check_password_hash(user.password_hash, password) and user.is_active
    if not ok:
        record_event(session, None, "user.login_failed", ("users", user.id if user else None),
                     {"username": username[:64]})
        raise AuthenticationError("wrong user name or password")
    record_event(session, user, "user.logged_in", user)
    return user


FINGERPRINT_CHARS = 16


def password_fingerprint(password_hash: str) -> str:
    """A short digest of a password hash, kept in the session cookie so that changing the password
    ends every session made with the old one (``password_fingerprint_sql`` is the same in SQL)."""
    return sha256_prefix(password_hash, FINGERPRINT_CHARS)


def password_fingerprint_sql(password_hash: sa.ColumnElement) -> sa.ColumnElement:
    return sha256_prefix_sql(password_hash, FINGERPRINT_CHARS)


def get_user(session: Session, user_id: int) -> User | None:
    user = session.get(User, user_id)
    return user if user is not None and user.is_active else None


def create_api_token(session: Session, actor: User, user: User, name: str) -> str:
    """A new bearer token for ``user``; returns it (only its hash is kept). The caller commits."""
    import secrets

    from .models import ApiToken

    if actor.id != user.id and "admin" not in actor.role_codes:
        from .errors import PermissionDeniedError

        raise PermissionDeniedError("only an administrator may create a token for another user")
    name = name.strip()[:100]
    if not name:
        raise InputError("a token needs a name saying what uses it", where="name")
    token = "gat_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=_token_hash(token)))
    session.flush()
    record_event(session, actor, "api_token.created", ("users", user.id), {"name": name})
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None (unknown, revoked, user inactive)."""
    from .models import ApiToken, utcnow

    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                   ApiToken.revoked_at.is_(None)))
    if row is None or not row.user.is_active:
        return None
    row.last_used_at = utcnow()
    return row.user


def _token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()

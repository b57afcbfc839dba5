"""The header's navigation, registered by each area of the front (so no one edits base.html
to add a page). An entry shows to users holding one of its roles; ``roles=None`` means any
logged-in user, ``public=True`` also to visitors."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, request, url_for


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    message: str  # key in the i18n catalogue
    order: int
    roles: frozenset[str] | None = None
    public: bool = False


def add(app: Flask, endpoint: str, message: str, *, order: int, roles=None, public: bool = False) -> None:
    items = app.extensions.setdefault("nav", [])
    items.append(NavItem(endpoint, message, order, frozenset(roles) if roles else None, public))
    items.sort(key=lambda i: i.order)


def items_for(user) -> list[dict]:
    out = []
    for item in current_app.extensions.get("nav", []):
        if user is None and not item.public:
            continue
        if user is not None and item.roles is not None and not (item.roles & user.role_codes):
            continue
        out.append({"url": url_for(item.endpoint), "message": item.message,
                    "active": request.endpoint == item.endpoint})
    return out


def init_app(app: Flask) -> None:
    app.jinja_env.globals["nav_items"] = items_for

"""Fixtures for the web tests: an engine on the test database, and ``web`` — helpers to log in
and to read the map page — offered as a fixture so that no test imports this module.

The database, the app and the client come from tests/conftest.py (db_url, app, client).
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from gisapproval.db import make_engine

PASSWORD = "gisdemo2026"
SAMPLE_USERS = (
    "applicant1", "applicant2", "clerk", "land_reviewer", "planning_reviewer", "construction_reviewer",
    "fire_reviewer", "leader", "land_editor", "supervisor", "admin",
)

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="session")
def web_db(db_url):
    """An engine on the test database, for arranging and checking rows directly."""
    engine = make_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


class WebHelpers:
    password = PASSWORD
    sample_users = SAMPLE_USERS

    @staticmethod
    def csrf_token(html: str) -> str:
        return csrf_token(html)

    @staticmethod
    def login(client, username: str, password: str = PASSWORD, **extra):
        return login(client, username, password, **extra)

    @staticmethod
    def collections(html: str) -> dict[str, dict]:
        return embedded_collections(html)

    @staticmethod
    def legend(html: str) -> str:
        return legend_html(html)


@pytest.fixture(scope="session")
def web():
    return WebHelpers


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD, **extra):
    """Log in through the form (with its CSRF token), from a fresh session; returns the POST response."""
    with client.session_transaction() as session:
        session.clear()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token, **extra})


def embedded_collections(html: str) -> dict[str, dict]:
    """The GeoJSON FeatureCollections folium embedded in the page, by their ``layer`` member."""
    decoder = json.JSONDecoder()
    found = {}
    for match in re.finditer(r"_add\(", html):
        try:
            data, _end = decoder.raw_decode(html, match.end())
        except json.JSONDecodeError:
            continue  # the function definition `..._add (data) {`, not a call with data
        if isinstance(data, dict) and data.get("type") == "FeatureCollection":
            found[data.get("layer")] = data
    return found


def legend_html(html: str) -> str:
    start = html.index('id="map-legend"')
    return html[start:html.index("</section>", start)]

"""The JSON API: its OpenAPI description, bearer tokens, JSON errors and CSRF on cookie calls."""

import json
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gisapproval.accounts import create_api_token
from gisapproval.models import ApiToken, User


def _token(web_db, username="supervisor"):
    with Session(web_db) as s:
        user = s.scalar(sa.select(User).where(User.username == username))
        token = create_api_token(s, user, user, "test client")
        s.commit()
        return token


def test_openapi_is_served_and_self_contained(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    assert spec["openapi"].startswith("3.") and "/api/me" in spec["paths"]
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec))
    assert all(r.startswith("#/") for r in refs), [r for r in refs if not r.startswith("#/")]


def test_bearer_token_authenticates(client, web_db):
    token = _token(web_db)
    resp = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.get_json() == {"username": "supervisor", "display_name": "郑洁（电子监察）", "roles": ["supervisor"],
                               "department": "supervision"}
    with Session(web_db) as s:
        assert s.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.name == "test client")) is not None


def test_no_or_wrong_token_is_a_json_401(client):
    for headers in ({}, {"Authorization": "Bearer gat_wrong"}):
        resp = client.get("/api/me", headers=headers)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthenticated"


def test_only_its_hash_is_stored(web_db):
    token = _token(web_db, "clerk")
    with Session(web_db) as s:
        hashes = set(s.scalars(sa.select(ApiToken.token_hash)))
    assert token not in hashes and all(len(h) == 64 for h in hashes)


def test_cookie_authenticated_api_writes_need_the_csrf_header(client, web):
    web.login(client, "supervisor")
    assert client.get("/api/me").status_code == 200
    resp = client.post("/api/me")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "csrf"

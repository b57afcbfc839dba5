"""schemathesis against the served OpenAPI description: generated requests, authenticated by a
bearer token, never make the server fail (no 5xx). It runs on a database of its own, so
generated writes cannot disturb other tests. Bounded (few examples per operation, no
shrinking) so that CI stays fast."""

from __future__ import annotations


import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy.orm import Session

from gisapproval.accounts import create_api_token
from gisapproval.models import User

MAX_EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzz_app(own_sample_db):
    """An app on its own database (migrated, sample loaded): generated writes touch no other test's data."""
    from gisapproval.db import make_engine
    from web import create_app

    with own_sample_db("fuzz") as url:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        with Session(engine) as s:
            user = s.scalar(sa.select(User).where(User.username == "supervisor"))
            token = create_api_token(s, user, user, "schemathesis")
            s.commit()
        engine.dispose()
        app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "fuzz", "WTF_CSRF_ENABLED": True})
        yield app, token
        app.extensions["gisapproval"].engine.dispose()


def test_no_generated_request_makes_the_server_fail(fuzz_app):
    app, fuzz_token = fuzz_app
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    headers = {"Authorization": f"Bearer {fuzz_token}"}
    failures, tried = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}")

        run()
    assert len(tried) >= 8, tried  # the map, OGC API and account operations are all described
    assert failures == []


def test_the_description_is_self_contained(client):
    import json
    import re

    spec = client.get("/api/openapi.json").get_json()
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec))
    assert refs and all(r.startswith("#/") for r in refs)
    for path in ("/api/map/parcels/{parcel_id}", "/api/map/overlaps", "/ogcapi/collections/{collection_id}/items"):
        assert path in spec["paths"], path

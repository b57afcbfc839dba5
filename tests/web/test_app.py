"""The app factory: configuration, secret key, health check, headers, error pages, catalogue."""

from __future__ import annotations

import importlib
import stat

import pytest

import web
from web import create_app
from web.i18n import LANGUAGES, MESSAGES

UNREACHABLE_URL = "postgresql+psycopg://nobody:nothing@127.0.0.1:1/nowhere"


def _dispose(app):
    app.extensions["gisapproval"].engine.dispose()


def test_importing_the_package_builds_no_app():
    assert not hasattr(web, "app")


def test_wsgi_module_builds_the_app(monkeypatch, db_url):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SECRET_KEY", "wsgi-test")
    import web.wsgi

    module = importlib.reload(web.wsgi)
    try:
        assert module.app.config["SECRET_KEY"] == "wsgi-test"
        assert module.app.test_client().get("/healthz").status_code == 200
    finally:
        _dispose(module.app)


def test_factory_configuration(app):
    assert app.config["MAX_CONTENT_LENGTH"] > 0
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    state = app.extensions["gisapproval"]
    assert state.engine is not None and state.session_factory is not None
    assert str(state.engine.url.database) in app.config["DATABASE_URL"]


def test_two_apps_have_their_own_engines(app, db_url):
    other = create_app({"TESTING": True, "DATABASE_URL": db_url, "SECRET_KEY": "other"})
    try:
        assert other.extensions["gisapproval"].engine is not app.extensions["gisapproval"].engine
    finally:
        _dispose(other)


def test_secret_key_is_generated_once_and_kept_private(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("GISAPPROVAL_HOME", str(tmp_path))
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = create_app({"DATABASE_URL": db_url})
    second = create_app({"DATABASE_URL": db_url})
    try:
        key_file = tmp_path / "secret_key"
        assert key_file.exists()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text().strip()
        assert len(first.config["SECRET_KEY"]) >= 32
    finally:
        _dispose(first)
        _dispose(second)


def test_secret_key_from_the_environment_wins_over_the_file(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("GISAPPROVAL_HOME", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    app = create_app({"DATABASE_URL": db_url})
    try:
        assert app.config["SECRET_KEY"] == "from-the-environment"
        assert not (tmp_path / "secret_key").exists()
    finally:
        _dispose(app)


def test_healthz_reports_the_database_and_postgis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "reachable"
    assert body["postgis"][0].isdigit()


def test_healthz_is_503_with_a_clear_error_when_the_database_is_down():
    app = create_app({"TESTING": True, "DATABASE_URL": UNREACHABLE_URL, "SECRET_KEY": "test"})
    try:
        response = app.test_client().get("/healthz")
    finally:
        _dispose(app)
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["database"] == "unreachable"
    assert "127.0.0.1:1/nowhere" in body["error"]
    assert "nothing" not in body["error"]  # never the password


def test_pages_show_a_clear_error_when_the_database_is_down(web):
    app = create_app({"TESTING": False, "DATABASE_URL": UNREACHABLE_URL, "SECRET_KEY": "test",
                      "WTF_CSRF_ENABLED": False})
    try:
        response = app.test_client().post("/login", data={"username": "clerk", "password": web.password})
    finally:
        _dispose(app)
    assert response.status_code == 503
    assert "数据库暂时无法访问" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/login", "/healthz", "/no-such-page"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_landing_page_for_visitors(client):
    html = client.get("/").get_data(as_text=True)
    assert "工程建设项目联合审批平台" in html
    assert 'href="/login"' in html
    assert '<html lang="zh-CN">' in html
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Joint construction approval platform" in english
    assert '<html lang="en">' in english


def test_home_sends_a_logged_in_user_to_the_map(client, web):
    web.login(client, "clerk")
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/map")


def test_not_found_page_is_bilingual(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)
    assert "This page does not exist" in client.get("/no-such-page?lang=en").get_data(as_text=True)


def test_oversized_request_is_refused(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/login", data=b"x" * (limit + 1), content_type="application/octet-stream")
    assert response.status_code == 413


def test_language_switch_link_keeps_the_page_and_its_query(client):
    html = client.get("/login?next=%2Fmap").get_data(as_text=True)
    assert 'href="/login?next=%2Fmap&amp;lang=en"' in html


def test_catalogue_has_every_message_in_both_languages():
    for key, texts in MESSAGES.items():
        assert set(texts) == set(LANGUAGES), key
        assert all(texts[lang].strip() for lang in LANGUAGES), key

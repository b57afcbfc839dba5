"""Logging in and out, CSRF, and the login_required / roles_required guards."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from markupsafe import escape

from gisapproval.models import Event, User
from web import create_app
from web.auth import roles_required

SAMPLE_USERS = (
    "applicant1", "applicant2", "clerk", "land_reviewer", "planning_reviewer", "construction_reviewer",
    "fire_reviewer", "leader", "land_editor", "supervisor", "admin",
)
LOGIN_FAILED_ZH = "用户名或密码错误"


def _error_message(response) -> str:
    html = response.get_data(as_text=True)
    start = html.index('class="form-error"')
    return html[start:html.index("</p>", start)]


def _logged_in(client) -> bool:
    with client.session_transaction() as s:
        return "user_id" in s


@pytest.mark.parametrize("username", SAMPLE_USERS)
def test_each_sample_user_logs_in_lands_on_the_map_and_sees_their_name(client, web, web_db, username):
    with web_db.connect() as conn:
        display_name = conn.scalar(sa.select(User.display_name).where(User.username == username))
    assert display_name, f"sample user {username} is missing"

    response = web.login(client, username)

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/map")
    page = client.get("/map")
    assert page.status_code == 200
    assert str(escape(display_name)) in page.get_data(as_text=True)
    assert _logged_in(client)


def test_login_is_audited(client, web, web_db):
    with web_db.connect() as conn:
        before = conn.scalar(sa.select(sa.func.count()).select_from(Event).where(Event.type == "user.logged_in"))
    web.login(client, "clerk")
    with web_db.connect() as conn:
        after = conn.scalar(sa.select(sa.func.count()).select_from(Event).where(Event.type == "user.logged_in"))
    assert after == before + 1


def test_wrong_password_is_refused_with_a_message_and_no_session(client, web, web_db):
    with web_db.connect() as conn:
        failures_before = conn.scalar(
            sa.select(sa.func.count()).select_from(Event).where(Event.type == "user.login_failed"))

    response = web.login(client, "supervisor", "not-the-password")

    assert response.status_code == 401
    assert LOGIN_FAILED_ZH in response.get_data(as_text=True)
    assert not _logged_in(client)
    assert client.get("/map").status_code == 302
    with web_db.connect() as conn:  # the failed attempt is in the audit log
        failures_after = conn.scalar(
            sa.select(sa.func.count()).select_from(Event).where(Event.type == "user.login_failed"))
    assert failures_after == failures_before + 1


def test_unknown_user_gets_exactly_the_same_answer_as_a_wrong_password(client, web):
    wrong_password = web.login(client, "supervisor", "not-the-password")
    unknown_user = web.login(client, "nobody-by-this-name", "not-the-password")

    assert unknown_user.status_code == wrong_password.status_code == 401
    assert _error_message(unknown_user) == _error_message(wrong_password)
    assert LOGIN_FAILED_ZH in _error_message(unknown_user)
    assert not _logged_in(client)


def test_login_message_in_english(client, web):
    client.get("/login?lang=en")
    response = web.login(client, "supervisor", "not-the-password")
    assert "Wrong user name or password." in response.get_data(as_text=True)


def test_empty_login_form_is_refused(client, web):
    response = web.login(client, "", "")
    assert response.status_code == 400
    assert not _logged_in(client)


def test_login_without_csrf_token_is_refused(client, web):
    client.get("/login")
    response = client.post("/login", data={"username": "supervisor", "password": web.password})

    assert response.status_code == 400
    assert not _logged_in(client)


def test_login_with_a_forged_csrf_token_is_refused(client, web):
    client.get("/login")
    response = client.post("/login", data={"username": "supervisor", "password": web.password,
                                           "csrf_token": "forged"})
    assert response.status_code == 400
    assert not _logged_in(client)


def test_logout_requires_post_with_the_csrf_token(client, web):
    web.login(client, "supervisor")
    page = client.get("/map").get_data(as_text=True)

    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/map").status_code == 200  # still logged in

    response = client.post("/logout", data={"csrf_token": web.csrf_token(page)})

    assert response.status_code == 302
    assert not _logged_in(client)
    after = client.get("/map")
    assert after.status_code == 302
    assert "/login" in after.headers["Location"]


@pytest.mark.parametrize("path", ["/map"])
def test_pages_needing_login_redirect_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_login_returns_to_the_page_asked_for(client, web):
    response = web.login(client, "clerk", next="/map?lang=en")
    assert response.headers["Location"] == "/map?lang=en"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client, web, target):
    response = web.login(client, "clerk", next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/map"


def test_session_cookie_is_httponly_and_samesite_lax(client, web):
    response = web.login(client, "clerk")
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("gisapproval_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_login_page_redirects_a_logged_in_user(client, web):
    web.login(client, "clerk")
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/map")


def test_a_deactivated_user_loses_the_session(client, web, web_db):
    web.login(client, "land_editor")
    assert client.get("/map").status_code == 200
    with web_db.begin() as conn:
        conn.execute(sa.update(User).where(User.username == "land_editor").values(is_active=False))
    try:
        assert client.get("/map").status_code == 302
    finally:
        with web_db.begin() as conn:
            conn.execute(sa.update(User).where(User.username == "land_editor").values(is_active=True))


@pytest.fixture(scope="module")
def guarded_app(db_url):
    """A separate app with a view only admins may open (routes must exist before the first request)."""
    app = create_app({"TESTING": True, "DATABASE_URL": db_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True})

    @app.route("/admin-only")
    @roles_required("admin")
    def admin_only():
        return "admin area"

    yield app
    app.extensions["gisapproval"].engine.dispose()


@pytest.mark.parametrize(("username", "status"), [("admin", 200), ("supervisor", 403), ("applicant1", 403)])
def test_roles_required(guarded_app, web, username, status):
    client = guarded_app.test_client()
    assert client.get("/admin-only").status_code == 302  # not logged in: to the login page
    web.login(client, username)
    assert client.get("/admin-only").status_code == status

"""The header on common office screens: every area a role may open has its link in sight."""

from __future__ import annotations

import re

import pytest

from gisapproval.sample import SAMPLE_PASSWORD, SAMPLE_USERS

NAV_FITS = """() => {
  const nav = document.querySelector('.main-nav');
  const box = nav.getBoundingClientRect();
  const hidden = [...nav.querySelectorAll('a')].filter(a => {
    const r = a.getBoundingClientRect();
    return r.left < box.left - 0.5 || r.right > box.right + 0.5;
  }).map(a => a.textContent.trim());
  return {links: nav.querySelectorAll('a').length, hidden};
}"""


def _log_in(context, base: str, username: str) -> None:
    """Through the login form's POST (with its CSRF token), sharing the browser's cookies."""
    html = context.request.get(f"{base}/login").text()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = context.request.post(f"{base}/login", form={"username": username, "password": SAMPLE_PASSWORD,
                                                           "csrf_token": token}, max_redirects=0)
    assert response.status == 302, f"{username} could not log in ({response.status})"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_nav_link_is_in_sight_for_every_role(browser, live_server, lang):
    """At 1280 px, the narrowest common office screen (wider ones have more room)."""
    width = 1280
    context = browser.new_context(viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        for username in sorted(u[0] for u in SAMPLE_USERS):
            page.goto("about:blank")  # nothing of the last user's page may still set a cookie
            context.clear_cookies()
            _log_in(context, live_server.url, username)
            page.goto(f"{live_server.url}/?lang={lang}")
            found = page.evaluate(NAV_FITS)
            assert found["links"] >= 2, username
            assert found["hidden"] == [], f"{username} ({lang}, {width} px): links out of sight {found['hidden']}"
    finally:
        context.close()

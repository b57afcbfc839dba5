"""Secret key, CSRF protection, cookie settings and the security headers of every response."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

# folium's map is an inline <script> and inline <style>s, hence 'unsafe-inline' for those two
# only; everything else (and every script/style file) must come from this site.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}


def persistent_secret_key(home: Path) -> str:
    """The key in ``<home>/secret_key``, created (mode 0600) if missing.

    Created atomically (write a private temporary file, then hard-link it into place) so that
    several worker processes starting at once all end up with the same key.
    """
    path = home / "secret_key"
    try:
        key = path.read_text().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".secret_key.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_text().strip()  # another process won the race
    finally:
        os.unlink(tmp)
    return key


def set_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.after_request(set_security_headers)

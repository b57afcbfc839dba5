"""The WSGI entry point: ``gunicorn web.wsgi:app``. The only module that builds an app at import."""

from web import create_app

app = create_app()

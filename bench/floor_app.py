"""The smallest Flask app: one route answering 4 KB, the size of a street-level parcels tile.
``bench/tiles.py`` serves it with the same gunicorn settings as the platform to show what an
HTTP exchange costs on this machine before the platform does any work."""

from flask import Flask

app = Flask(__name__)
BODY = b"\0" * 4096


@app.route("/healthz")
@app.route("/tile")
def tile():
    return BODY

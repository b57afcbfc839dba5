"""One engine and session factory per app; one SQLAlchemy session per request, on ``g``.

The session is created on first use, rolled back and closed when the app context ends.
Views commit explicitly after a use case succeeds; anything not committed is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from gisapproval.db import make_engine, make_reader_engine, make_session_factory

EXTENSION_KEY = "gisapproval"


@dataclass
class AppState:
    """What the app keeps for its lifetime (``app.extensions["gisapproval"]``)."""

    engine: sa.Engine
    session_factory: sessionmaker[Session]
    settings: object  # gisapproval.config.Settings
    reader: sa.Engine  # single-statement reads (tiles): gisapproval.db.make_reader_engine; see read_once


def init_app(app: Flask, url: str, settings) -> AppState:
    engine = make_engine(url)
    reader = make_reader_engine(url)
    state = AppState(engine=engine, session_factory=make_session_factory(engine), settings=settings, reader=reader)
    app.extensions[EXTENSION_KEY] = state
    app.teardown_appcontext(close_db)
    return state


def app_state() -> AppState:
    return current_app.extensions[EXTENSION_KEY]


def get_db() -> Session:
    """The request's session, created on first use."""
    if "db" not in g:
        g.db = app_state().session_factory()
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db", None)
    if session is not None:
        try:
            session.rollback()
        finally:
            session.close()


def read_once(work):
    """``work(connection)`` on the reader engine: each statement its own snapshot, no BEGIN,
    ROLLBACK or ping around it (a tile is one statement, and these round trips would cost as much
    as a small tile). A connection the server dropped (restart, idle timeout) shows up as an
    error on use; then every pooled connection is let go (the others were most likely dropped
    too) and ``work`` tried once more on a new connection."""
    reader = app_state().reader
    for attempt in (1, 2):
        try:
            with reader.connect() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            reader.dispose()

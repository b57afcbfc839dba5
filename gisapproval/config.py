"""Configuration: environment variables, the jurisdiction, and where the app keeps its state.

Nothing here touches the database; ``load_settings()`` only reads files and the environment.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS_DIR = REPO_ROOT / "layers"
SAMPLE_DIR = Path(os.environ.get("GISAPPROVAL_SAMPLE_DIR") or REPO_ROOT / "sample_parcels" / "data")

DEFAULT_PG_PORT = 55432


@dataclass(frozen=True)
class Jurisdiction:
    name: str
    name_en: str
    srid: int
    extent: tuple[float, float, float, float]
    map_center: tuple[float, float]
    map_zoom: int


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    home: Path
    pg_port: int
    jurisdiction: Jurisdiction
    secret_key: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def cluster_file(self) -> Path:
        """Connection facts of the app-owned cluster (port, user, password), mode 0600."""
        return self.home / "cluster.json"


def default_home() -> Path:
    """Where the app-owned cluster and secrets live.

    As root the server must run as an unprivileged user, which must be able to reach the
    data directory, so root's default is under /var/lib rather than a possibly private
    checkout or home directory.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/gisapproval")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "gisapproval"


def read_toml(path: Path | str, what: str) -> dict:
    """A configuration file under layers/ as a dict; a missing file or bad TOML is one
    ConfigurationError naming the file (``what`` says what the file is for)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{what} not found", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"not valid TOML: {exc}", where=str(path)) from None


def load_jurisdiction(path: Path | None = None) -> Jurisdiction:
    path = Path(os.environ.get("GISAPPROVAL_JURISDICTION_FILE") or path or LAYERS_DIR / "jurisdiction.toml")
    data = read_toml(path, "jurisdiction file")
    try:
        srid = int(os.environ.get("GISAPPROVAL_SRID") or data["srid"])
        extent = tuple(float(v) for v in data["extent"])
        if len(extent) != 4 or extent[0] >= extent[2] or extent[1] >= extent[3]:
            raise ValueError("extent must be [minx, miny, maxx, maxy] with min < max")
        center = tuple(float(v) for v in data.get("map_center", [0.0, 0.0]))
        return Jurisdiction(
            name=str(data["name"]),
            name_en=str(data.get("name_en", data["name"])),
            srid=srid,
            extent=extent,  # type: ignore[arg-type]
            map_center=center,  # type: ignore[arg-type]
            map_zoom=int(data.get("map_zoom", 13)),
        )
    except KeyError as exc:
        raise ConfigurationError(f"missing key {exc.args[0]!r}", where=str(path)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc), where=str(path)) from None


def app_home() -> Path:
    """The app's home: ``GISAPPROVAL_HOME``, else ``default_home()``."""
    return Path(os.environ.get("GISAPPROVAL_HOME") or default_home()).expanduser().resolve()


def load_settings() -> Settings:
    home = app_home()
    port_text = os.environ.get("GISAPPROVAL_PGPORT") or str(DEFAULT_PG_PORT)
    try:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigurationError(f"GISAPPROVAL_PGPORT must be a TCP port number, got {port_text!r}") from None
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        home=home,
        pg_port=port,
        jurisdiction=load_jurisdiction(),
        secret_key=os.environ.get("SECRET_KEY") or None,
    )


def normalise_url(url: str) -> str:
    """Use psycopg 3 whatever PostgreSQL URL spelling was given."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def database_url(settings: Settings, dbname: str | None = None) -> str:
    """The URL the app connects to: DATABASE_URL, or the app-owned cluster's."""
    if settings.database_url:
        url = normalise_url(settings.database_url)
        if dbname:
            from sqlalchemy.engine import make_url

            url = make_url(url).set(database=dbname).render_as_string(hide_password=False)
        return url
    info = read_cluster_info(settings)
    return (
        f"postgresql+psycopg://{info['user']}:{info['password']}@127.0.0.1:{info['port']}/"
        f"{dbname or info['dbname']}"
    )


def read_cluster_info(settings: Settings) -> dict:
    try:
        return json.loads(settings.cluster_file.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            "DATABASE_URL is not set and the app's own PostgreSQL cluster has not been set up; "
            "run `./platform run` (or `gisapproval db up`) first, or set DATABASE_URL",
            where=str(settings.cluster_file),
        ) from None

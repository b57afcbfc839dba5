"""Layer versions: publish an import, roll back, diff, query as of a version, find the impact.

Use cases take a session and let the caller commit. A new version is written in one
transaction, and the source is checked while it streams, batch by batch, through one binary
COPY (key, attributes as JSON, EWKB, content digest, web-mercator copies) into the database;
a worker thread sends one batch while the next is read and checked:

- a layer's first import goes straight into a new table, the layer's partition-to-be of
  layer_features (migration 0009); its indexes are built once, after loading, and the table
  is attached as the layer's partition;
- a later import first gets the live features' keys and content digests (migration 0010)
  while the source is opened and its first batches read: from the file the import of the
  current version kept on this machine (``gisapproval.digestcache``), else from the database.
  The source's features whose digest is among them are the layer's already and go no further;
  the others go, a batch at a time while the next is read, into a temporary table, are
  compared with the live features by key and content (``same_content``), and only the
  differences are written (set-based). Keys the source no longer holds are retired at the end.

A refused import takes back what it wrote (a savepoint); until the caller commits, every other
session keeps seeing the previous version. ``VersionReport.timings`` tells where an import's
time went.
"""

from __future__ import annotations

import itertools
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import sqlalchemy as sa
from psycopg.copy import LibpqWriter
from sqlalchemy.orm import Session

from . import digestcache
from .audit import record_event
from .catalogue import LayerSpec, default_catalogue
from .config import Settings
from .crs import web_transformer
from .errors import GisApprovalError, InputError, NotFoundError, PermissionDeniedError
from .layerimport import (
    COPY_HEADER,
    COPY_TRAILER,
    STORED_COLUMNS,
    Batch,
    ImportOptions,
    LayerImportError,
    LiveDigests,
    Problem,
    SourceReport,
    VectorSource,
    check_file,
    extract_shapefile,
)
from .layerstore import file_sha256, store_raster
from .mapdata import visible_projects
from .models import IN_FLIGHT, SRID, Layer, LayerFeature, LayerVersion, Project, User


class LayerBusyError(GisApprovalError):
    """Another import or rollback of the same layer is under way."""


@dataclass
class VersionReport:
    layer: str
    number: int
    version_id: int
    added: int
    changed: int
    removed: int
    unchanged: int
    features: int
    seconds: float
    repairs: list[Problem] = field(default_factory=list)
    affected_project_ids: list[int] = field(default_factory=list)
    source_crs: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the import
    recheck_run_ids: list[int] = field(default_factory=list)  # the re-check runs of the affected projects

    def as_dict(self) -> dict:
        return {
            "layer": self.layer, "version": self.number, "version_id": self.version_id, "added": self.added,
            "changed": self.changed, "removed": self.removed, "unchanged": self.unchanged,
            "features": self.features, "seconds": round(self.seconds, 3),
            "repairs": [str(r) for r in self.repairs], "affected_project_ids": self.affected_project_ids,
            "source_crs": self.source_crs, "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "recheck_run_ids": self.recheck_run_ids,
        }


def get_layer(session: Session, name: str) -> Layer:
    layer = session.scalar(sa.select(Layer).where(Layer.name == name))
    if layer is None:
        known = ", ".join(session.scalars(sa.select(Layer.name).order_by(Layer.name)))
        raise NotFoundError(f"no layer named {name!r}; known layers: {known}")
    return layer


def may_edit(actor: User | None, layer: Layer) -> bool:
    """Whether ``actor`` may import into or roll back ``layer`` (a layer editor of its department)."""
    return actor is not None and "layer_editor" in actor.role_codes and actor.department_id == layer.department_id


def ensure_may_edit(actor: User | None, layer: Layer) -> None:
    if actor is None:
        raise PermissionDeniedError("an import needs a user")
    if not may_edit(actor, layer):
        raise PermissionDeniedError(
            f"only layer editors of the {layer.department.name_en} ({layer.department.code}) may change layer "
            f"{layer.name!r}; {actor.username} may not")


def _lock(session: Session, layer: Layer) -> None:
    got = session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(7301, layer.id)))
    if not got:
        raise LayerBusyError(f"another import or rollback of layer {layer.name!r} is under way; try again when it "
                             "has finished")


def features_as_of(layer_id: int, number: int):
    """A WHERE clause selecting a layer's features as they were in version ``number``."""
    return sa.and_(LayerFeature.layer_id == layer_id, LayerFeature.valid_from <= number,
                   sa.or_(LayerFeature.valid_to.is_(None), LayerFeature.valid_to > number))


COLUMNS = ", ".join(STORED_COLUMNS)  # what an import writes for each feature

# New or changed content of a layer, before it is compared with the live features.
STAGING_DDL = """
CREATE TEMP TABLE layer_staging (
    feature_key text COLLATE "C" NOT NULL,  -- as layer_features' (migration 0015), so its index serves the joins
    attrs jsonb NOT NULL,
    geom geometry NOT NULL,
    content_digest uuid,
    centre_web geometry NOT NULL,
    geom_web bytea NOT NULL
) ON COMMIT DROP
"""


def same_content(a: str, b: str) -> str:
    """SQL: features ``a`` and ``b`` (aliases) have the same content — equal digests, else equal
    attributes and the very same geometry (its EWKB bytes, vertex for vertex)."""
    return (f"(coalesce({a}.content_digest = {b}.content_digest, false)"
            f" OR ({a}.attrs = {b}.attrs AND ST_AsEWKB({a}.geom) = ST_AsEWKB({b}.geom)))")


def _new_staging(session: Session) -> None:
    session.execute(sa.text("DROP TABLE IF EXISTS layer_staging"))
    session.execute(sa.text(STAGING_DDL))


def _index_staging(session: Session) -> None:
    session.execute(sa.text("CREATE INDEX ON layer_staging (feature_key)"))
    session.execute(sa.text("ANALYZE layer_staging (feature_key)"))  # its size and keys: what the joins need


class _Worker:
    """Work handed over (``put``) and done in order by a worker thread while this one goes on.
    At most ``depth`` items wait, which keeps memory bounded. Once an item fails, or this
    thread gives up (``join`` with its exception), the rest are not done; a failure is raised
    here at the next ``put`` or at ``join``."""

    def __init__(self, work: Callable, name: str, depth: int = 2):
        self._do, self._queue = work, queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancelled = self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._cancelled:
                try:
                    self._do(item)
                except BaseException as exc:  # handed to the main thread
                    self._error = exc

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def join(self, exc: BaseException | None = None) -> None:
        """Wait until the worker has ended: after what was handed over, or, with ``exc`` on its
        way, after the item under way. Raise what failed (unless ``exc``). Interrupted while
        waiting (Ctrl-C), it still waits for the item under way, so that whatever the worker
        uses (a connection) is free again when the interrupt goes on."""
        self._cancelled = self._cancelled or exc is not None
        interrupted = None
        while self._thread.is_alive():
            try:
                if not self._ended:
                    self._queue.put(None)
                    self._ended = True
                self._thread.join()
            except BaseException as again:
                self._cancelled, interrupted = True, interrupted or again
        if interrupted is not None:
            raise interrupted
        if self._error is not None and exc is None:
            raise self._error


class _BackgroundWriter(LibpqWriter):
    """Sends COPY data from a worker thread, so that the next batch is read and checked while
    the server stores the last one."""

    def __init__(self, cursor):
        super().__init__(cursor)
        self._worker = _Worker(super().write, "gisapproval-copy")

    def write(self, data) -> None:
        self._worker.put(data)

    def finish(self, exc: BaseException | None = None) -> None:
        try:
            self._worker.join(exc)
        except BaseException as failed:
            super().finish(exc or failed)  # the COPY ends, failed, and the connection is usable again
            raise
        super().finish(exc)


def _copy_batches(session: Session, table_columns: str, batches, *leading_int4: int, freeze: bool = False) -> int:
    """COPY the source's rows into ``table_columns`` (binary format, one write per batch, the
    ``leading_int4`` values first in each row) in one COPY statement; a batch is sent while the
    next one is read. ``freeze``: write the rows frozen and all-visible (the table must be this
    transaction's own), so that no later reader or vacuum rewrites every page to mark them.
    Returns the rows copied."""
    with session.connection().connection.driver_connection.cursor() as cur:
        return _copy(cur, table_columns, (b.copy_data(*leading_int4) for b in batches if b.num_rows),
                     _BackgroundWriter(cur), freeze)


def _copy(cur, table_columns: str, rows, writer=None, freeze: bool = False) -> int:
    """One binary COPY into ``table_columns`` of ``rows`` (chunks of rows in COPY's binary
    format), framed by its header and trailer, through ``writer`` (psycopg's own by default).
    Returns the rows copied."""
    with cur.copy(f"COPY {table_columns} FROM STDIN WITH (FORMAT binary{', FREEZE' if freeze else ''})",
                  writer=writer) as copy:
        copy.write(COPY_HEADER)
        for chunk in rows:
            copy.write(chunk)
        copy.write(COPY_TRAILER)
    return cur.rowcount


# The live features' keys and digests, read from the live index alone (migration 0012: it
# carries the digests) and aggregated by the database into a few long values
# rather than sent as a row each: keys run together (UTF-8), each key's length in bytes, each
# digest's 16 bytes (zeros where not known). The three aggregates of a row are fed its rows in
# one pass, so in the same order; were they not, keys and digests would not match and the
# features would be compared in the database (LiveDigests.find checks the key of every match).
# One row, or, for a layer of more than a million live features, a row per group of at most a
# million ids: a value holds at most 1 GB, and a million keys of 200 characters can take 800 MB
# (grouping sorts the rows, a third of the query's time, and reads them from the table, as ids
# are not in the index: small layers are not grouped).
LIVE_DIGESTS = """
SELECT convert_to(string_agg(feature_key, ''), 'UTF8'), string_agg(int4send(octet_length(feature_key)), ''::bytea),
       string_agg(coalesce(uuid_send(content_digest), '\\x00000000000000000000000000000000'::bytea), ''::bytea)
FROM layer_features WHERE layer_id = %s AND valid_to IS NULL
"""
LIVE_DIGESTS_GROUPED = LIVE_DIGESTS + "GROUP BY id / 1000000\n"
ONE_ROW_OF_DIGESTS = 1_000_000  # live features up to which their digests come in one row
# the layer's current version: how many live features it has, and its content token
CURRENT_VERSION = """
SELECT v.count_added + v.count_changed + v.count_unchanged, v.content_token
FROM layers l JOIN layer_versions v ON v.id = l.current_version_id WHERE l.id = %s
"""


def _live_digests_sql(live: int | None) -> str:
    """The query of a layer's live digests, given how many live features its current version
    has (None: not known)."""
    return LIVE_DIGESTS if live is not None and live <= ONE_ROW_OF_DIGESTS else LIVE_DIGESTS_GROUPED


def _live_digests(conn, layer_id: int) -> LiveDigests:
    """The layer's live features' keys and content digests: from the file the import of its
    current version kept on this machine (``gisapproval.digestcache``), else from the
    database (``LIVE_DIGESTS``), through the session's own connection (psycopg)."""
    with conn.cursor(binary=True) as cur:
        live, token = cur.execute(CURRENT_VERSION, (layer_id,)).fetchone() or (None, None)
        kept = digestcache.load(token, live) if token is not None else None
        if kept is not None:
            return LiveDigests(*kept)
        cur.execute(_live_digests_sql(live), (layer_id,))
        return LiveDigests.from_aggregates(cur)


def _in_thread(work, *args) -> Future:
    """``work(*args)`` in a worker thread: for what waits on the database or on native code
    (hashing, PROJ, GDAL) while this thread goes on."""
    done = Future()

    def run() -> None:
        try:
            done.set_result(work(*args))
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name="gisapproval-import-helper", daemon=True).start()
    return done


def _publish_vector(session: Session, settings: Settings, actor: User | None, layer: Layer, spec: LayerSpec,
                    source: Path, name: str, fmt: str, options: ImportOptions, report: SourceReport,
                    stop: threading.Event, t0: float) -> VersionReport:
    """A vector import, the layer locked (``publish_layer_version``): read, checked and written
    (``_read_and_write_vector``), and the new version's content digests kept on this machine
    for its next re-import (``gisapproval.digestcache``)."""
    recorder = digestcache.DigestRecorder()
    report.content = recorder.add
    try:
        result = _read_and_write_vector(session, settings, actor, layer, spec, source, name, fmt, options, report,
                                        stop, t0)
        recorder.keep(session.get(LayerVersion, result.version_id).content_token)
    finally:
        recorder.discard()  # (nothing left once kept)
    return result


def _read_and_write_vector(session: Session, settings: Settings, actor: User | None, layer: Layer, spec: LayerSpec,
                           source: Path, name: str, fmt: str, options: ImportOptions, report: SourceReport,
                           stop: threading.Event, t0: float) -> VersionReport:
    """Read, check and write a vector source as described at the top of this module."""
    jur = settings.jurisdiction
    bulk = not has_partition(session, layer.id)
    with tempfile.TemporaryDirectory(prefix="gisapproval-import-") as tmp:
        path = source
        if fmt == "zipped Shapefile":
            path = extract_shapefile(source, name, Path(tmp), options.limits)
        # while the file is opened (its CRS resolved, its transformers made), another thread sums
        # it (a first import, while it is read too) or the database gathers the live features'
        # digests on the session's connection, which nothing else uses until they have come (a
        # re-import: the file is summed once they have, while the batches are read and written)
        summing = _in_thread(file_sha256, source, stop) if bulk else None
        fetch = None if bulk else _in_thread(_live_digests, session.connection().connection.driver_connection,
                                             layer.id)
        try:
            with VectorSource(path, name, spec, jur.srid, jur.extent, options, report) as vector:
                if bulk:  # the layer's first import: straight into its partition-to-be
                    timings = {"prepare": time.perf_counter() - t0}  # checks, lock, opening
                    version = _new_version(session, actor, layer, name, "", note=None)  # its checksum once summed
                    table = _new_partition_table(session, layer)
                    loaded = _copy_batches(session, f"{table} (layer_id, valid_from, {COLUMNS})", vector.batches(),
                                           layer.id, version.number, freeze=True)
                else:
                    batches = vector.batches(fetch)
                    first = next(batches, None)  # batches are read ahead while the live digests come
                    known, summing = fetch.result(), _in_thread(file_sha256, source, stop)
                    timings = {"prepare": time.perf_counter() - t0}  # ... the live digests, batches read meanwhile
                    version = _new_version(session, actor, layer, name, "", note=None)  # its checksum once summed
                    _new_staging(session)
                    writer = _DifferenceWriter(session, layer.id, version.number, report)
                    try:
                        for batch in batches if first is None else itertools.chain([first], batches):
                            writer.write(batch)
                        writer.finish()
                    except BaseException as exc:
                        writer.finish(exc)
                        raise
        except BaseException:
            if fetch is not None:
                fetch.exception()  # the session is free again once the digests are done
            raise
    timings["read_check_copy" if bulk else "read_check_write"] = time.perf_counter() - t0 - sum(timings.values())
    if report.features == 0 and not report.problems:
        raise LayerImportError(layer.name, name, [Problem(name, "the source holds no features")])
    if report.problems:
        raise LayerImportError(layer.name, name, report.problems, report.more_problems)
    if bulk:
        version.checksum = summing.result()  # summed while the file was read
        _index_and_attach(session, layer)
        timings["index_attach"] = time.perf_counter() - t0 - sum(timings.values())
        result = _finish_version(session, actor, layer, spec, version, staged=loaded, inserted=loaded, closed=0,
                                 changed=0, timings=timings)
    else:
        n_removed = _retire(session.connection(), layer.id, version.number, known.removed(report.other_keys()))
        version.checksum = summing.result()
        timings["write_removals"] = time.perf_counter() - t0 - sum(timings.values())
        result = _finish_version(session, actor, layer, spec, version, staged=report.valid, inserted=writer.inserted,
                                 closed=n_removed + writer.changed, changed=writer.changed, timings=timings)
    return result


def publish_layer_version(
    session: Session, settings: Settings, actor: User | None, layer_name: str, source: Path,
    source_name: str | None = None, options: ImportOptions | None = None, *, check_permission: bool = True,
) -> VersionReport:
    """Import ``source`` as the next version of a layer (all-or-nothing; the caller commits).

    Raises LayerImportError listing every problem, LayerBusyError, PermissionDeniedError or
    InputError; in each case nothing has been written.
    """
    options = options or ImportOptions()
    source = Path(source)
    name = source_name or source.name
    t0 = time.perf_counter()
    listed = default_catalogue().get(layer_name)  # (an unknown layer is refused below)
    if listed is not None and listed.kind == "vector":
        # made by PROJ (about 0.1 s in a new process) while the layer is looked up and locked
        _in_thread(web_transformer, settings.jurisdiction.srid)
    layer = get_layer(session, layer_name)
    if check_permission:
        ensure_may_edit(actor, layer)
    spec = default_catalogue()[layer.name]
    fmt = check_file(source, name, spec.kind, options.limits)
    _lock(session, layer)
    if spec.kind == "raster":
        return _publish_raster(session, settings, actor, layer, source, name, file_sha256(source), options, t0)
    report = SourceReport()
    stop = threading.Event()  # the file's checksum is given up with the import
    written = session.begin_nested()  # a refused import takes back what it wrote
    try:
        result = _publish_vector(session, settings, actor, layer, spec, source, name, fmt, options, report, stop, t0)
    except BaseException:
        stop.set()
        written.rollback()
        raise
    written.commit()
    result.repairs, result.source_crs, result.features = report.repairs, report.source_crs, report.features
    result.seconds = time.perf_counter() - t0
    if report.repairs:
        version = session.get(LayerVersion, result.version_id)
        version.note = "\n".join(str(r) for r in report.repairs[:1000])
    return result


def partition_name(layer_id: int) -> str:
    """The name of a layer's partition of layer_features (migration 0009)."""
    return f"layer_features_p{int(layer_id)}"


# Each re-import unmarks the pages it retires features on as all-visible, whose rows the index-only
# scan of the live digests then visits too; with PostgreSQL's defaults autovacuum marks them again
# only once a fifth of the rows have changed. A partition's thresholds are 1% (migration 0013).
PARTITION_STORAGE = "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01"


def has_partition(session: Session, layer_id: int) -> bool:
    return session.scalar(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": partition_name(layer_id)})


def ensure_partition(session: Session, layer: Layer) -> None:
    """Create a layer's (empty) partition if it has none; a first import makes its own instead."""
    if not has_partition(session, layer.id):
        session.execute(sa.text(f"CREATE TABLE {partition_name(layer.id)} PARTITION OF layer_features "
                                f"FOR VALUES IN ({int(layer.id)}) WITH ({PARTITION_STORAGE})"))
        _point_parcels_view(session, layer)


# The parcels view (migrations 0009-0011) over the cadastre's partition: planned without the
# other layers' partitions. Columns and their types as the migrations made them; one scan, so
# that a join on a parcel's id goes through the ident index.
PARCELS_VIEW = """
CREATE OR REPLACE VIEW parcels AS
SELECT f.ident AS id, f.feature_key AS parcel_code, f.attrs->>'holder' AS holder,
       f.attrs->>'land_use' AS land_use, ST_Area(f.geom) AS area_m2, f.geom, f.valid_to IS NOT NULL AS is_retired,
       f.geom_web, f.centre_web
FROM {table} f
WHERE f.layer_id = {layer}
  AND (f.valid_to IS NULL
       OR NOT EXISTS (SELECT 1 FROM {table} g
                      WHERE g.layer_id = f.layer_id AND g.ident = f.ident
                        AND (g.valid_to IS NULL OR g.valid_to > f.valid_to)))
"""


def _point_parcels_view(session: Session, layer: Layer) -> None:
    """When the cadastre gets its partition, the parcels view reads that partition."""
    if layer.name == "cadastre":
        session.execute(sa.text(PARCELS_VIEW.format(table=partition_name(layer.id), layer=int(layer.id))))


# The indexes of a layer's partition, as the partitioned indexes of layer_features define them
# (migration 0009): ATTACH PARTITION adopts them instead of building its own.
PARTITION_INDEXES = (
    "ALTER TABLE {t} ADD CONSTRAINT {t}_pkey PRIMARY KEY (id, layer_id)",
    "CREATE INDEX {t}_geom_idx ON {t} USING gist (geom)",
    "CREATE INDEX {t}_feature_key_valid_from_idx ON {t} (feature_key, valid_from)",
    "CREATE INDEX {t}_ident_idx ON {t} (ident)",
    ("CREATE UNIQUE INDEX {t}_layer_id_feature_key_content_digest_idx ON {t} (layer_id, feature_key) "
     "INCLUDE (content_digest) WHERE valid_to IS NULL"),  # the live digests are read from it alone
)  # named as CREATE TABLE ... PARTITION OF names them


def _new_partition_table(session: Session, layer: Layer) -> str:
    """A layer's first import writes its features into a new table with no index yet, the
    layer's partition-to-be (``_index_and_attach`` makes it one)."""
    table = partition_name(layer.id)
    session.execute(sa.text(f"CREATE TABLE {table} (LIKE layer_features INCLUDING DEFAULTS, "
                            f"CONSTRAINT {table}_layer CHECK (layer_id = {int(layer.id)})) WITH ({PARTITION_STORAGE})"))
    return table


# what the planner needs at once to join and look up a layer's features (from a small sample);
# full statistics, the geometries' too, follow at autovacuum's next pass
ANALYZED_COLUMNS = "id, layer_id, feature_key, valid_from, valid_to, ident"


def _index_and_attach(session: Session, layer: Layer) -> None:
    """Build the indexes of a bulk-loaded layer table (its keys were found unique while it was
    read), gather its statistics (the next import's plans need them), and attach it as the
    layer's partition."""
    table = partition_name(layer.id)
    for ddl in PARTITION_INDEXES:
        session.execute(sa.text(ddl.format(t=table)))
    session.execute(sa.text("SET LOCAL default_statistics_target = 10"))  # a 3,000-row sample is enough here
    session.execute(sa.text(f"ANALYZE {table} ({ANALYZED_COLUMNS})"))
    session.execute(sa.text("SET LOCAL default_statistics_target TO DEFAULT"))
    session.execute(sa.text(f"ALTER TABLE layer_features ATTACH PARTITION {table} FOR VALUES IN ({int(layer.id)})"))
    _point_parcels_view(session, layer)


def _new_version(session: Session, actor, layer: Layer, source_name: str, checksum: str, note: str | None
                 ) -> LayerVersion:
    number = (session.scalar(sa.select(sa.func.max(LayerVersion.number)).where(LayerVersion.layer_id == layer.id))
              or 0) + 1
    version = LayerVersion(layer_id=layer.id, number=number, state="live", created_by_id=actor.id if actor else None,
                           source_name=source_name, checksum=checksum, note=note)
    session.add(version)
    session.flush()
    return version


# A new row's ident: its key's earlier row's (a changed or re-added feature), else a new one.
IDENT_SQL = ("coalesce((SELECT g.ident FROM layer_features g WHERE g.layer_id = :layer AND g.feature_key = s.feature_key"
             " ORDER BY g.valid_from DESC LIMIT 1), nextval('layer_features_id_seq'))")


def _retire(conn: sa.Connection, layer_id: int, number: int, keys: list[str] | None) -> int:
    """Retire (as of version ``number``) the live features with these keys (None: those that
    ``layer_staging``, holding the version's whole content, lacks). Returns how many."""
    if keys is not None and not keys:
        return 0
    gone = ("f.feature_key = ANY(:keys)" if keys is not None else
            "NOT EXISTS (SELECT 1 FROM layer_staging s WHERE s.feature_key = f.feature_key)")
    return conn.execute(sa.text(f"UPDATE layer_features f SET valid_to = :v "
                                f"WHERE f.layer_id = :layer AND f.valid_to IS NULL AND {gone}"),
                        {"layer": layer_id, "v": number, "keys": keys or []}).rowcount


def _write_differences(conn: sa.Connection, layer_id: int, number: int) -> tuple[int, int]:
    """Write version ``number``'s differences from the features in ``layer_staging``: retire
    the live features it holds changed, give those it holds unchanged the digest just computed
    (a feature written before migration 0010 has none), and insert the new and changed.
    Returns how many were changed and inserted."""
    p = {"layer": layer_id, "v": number}
    live = "f.layer_id = :layer AND f.valid_to IS NULL"
    n_changed = conn.execute(sa.text(
        f"UPDATE layer_features f SET valid_to = :v FROM layer_staging s "
        f"WHERE {live} AND f.feature_key = s.feature_key AND NOT {same_content('s', 'f')}"), p).rowcount
    conn.execute(sa.text(
        f"UPDATE layer_features f SET content_digest = s.content_digest FROM layer_staging s "
        f"WHERE {live} AND f.feature_key = s.feature_key AND s.content_digest IS NOT NULL "
        f"AND f.content_digest IS DISTINCT FROM s.content_digest"), p)
    inserted = conn.execute(sa.text(
        f"INSERT INTO layer_features (layer_id, valid_from, {COLUMNS}, ident) "
        f"SELECT :layer, :v, {', '.join('s.' + c for c in STORED_COLUMNS)}, {IDENT_SQL} FROM layer_staging s "
        f"WHERE NOT EXISTS (SELECT 1 FROM layer_features f WHERE {live} AND f.feature_key = s.feature_key)"),
        p).rowcount
    return n_changed, inserted


def _apply_staging(session: Session, actor, layer: Layer, spec: LayerSpec, source_name: str, checksum: str,
                   note: str | None, event_type: str = "layer_version.published", extra: dict | None = None
                   ) -> VersionReport:
    """Make the layer's next version from ``layer_staging``, which holds its whole content
    (a rollback), writing only the differences."""
    timings: dict = {}
    t = time.perf_counter()
    version = _new_version(session, actor, layer, source_name, checksum, note)
    ensure_partition(session, layer)
    n_removed = _retire(session.connection(), layer.id, version.number, None)
    n_changed, inserted = _write_differences(session.connection(), layer.id, version.number)
    staged = session.scalar(sa.text("SELECT count(*) FROM layer_staging"))
    timings["write_differences"] = time.perf_counter() - t
    return _finish_version(session, actor, layer, spec, version, staged=staged, inserted=inserted,
                           closed=n_removed + n_changed, changed=n_changed, timings=timings, event_type=event_type,
                           extra=extra)


# A batch's differences are found by looking each of its features up in the live layer's
# indexes. Left to itself, the planner joins a batch of thousands of rows by hashing the layer's
# whole partition, for each statement of each batch: at 200,000 parcels and a batch of 20,000
# changed ones, 1.28 s for the three statements against 0.98 s through the indexes. Set while
# the batches are written only.
BATCH_PLAN = {"enable_hashjoin": "off", "enable_mergejoin": "off"}


def _plan_locally(conn: sa.Connection, settings: dict[str, str]) -> dict[str, str]:
    """Set these planner settings for the rest of the transaction (undone with a savepoint
    rolled back); returns their values before."""
    before = {name: conn.execute(sa.text("SELECT current_setting(:name)"), {"name": name}).scalar()
              for name in settings}
    for name, value in settings.items():
        conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value})
    return before


class _DifferenceWriter:
    """A re-import's differences, written batch by batch in a worker thread on the session's
    connection while this thread reads and checks the next batch: a batch's features that are
    not live as they are go into ``layer_staging`` (binary COPY), are compared with the live
    features and written (``_write_differences``), and the staging table is emptied again. A
    batch holding a key twice is not written: the import will be refused for it (duplicate keys
    are reported once the whole source is read), as it will be for any problem found, after
    which no batch is written either."""

    def __init__(self, session: Session, layer_id: int, number: int, report: SourceReport):
        self.conn, self.layer_id, self.number, self.report = session.connection(), layer_id, number, report
        self.changed = self.inserted = 0
        self._plan_before = _plan_locally(self.conn, BATCH_PLAN)
        self._worker = _Worker(self._write, "gisapproval-differences")

    def _write(self, batch: Batch) -> None:
        if self.report.problems or pc.count_distinct(batch.table.column("feature_key")).as_py() < batch.num_rows:
            return
        with self.conn.connection.driver_connection.cursor() as cur:
            _copy(cur, f"layer_staging ({COLUMNS})", [batch.copy_data()])
        changed, inserted = _write_differences(self.conn, self.layer_id, self.number)
        self.conn.execute(sa.text("TRUNCATE layer_staging"))
        self.changed, self.inserted = self.changed + changed, self.inserted + inserted

    def write(self, batch: Batch) -> None:
        if batch.num_rows:
            self._worker.put(batch)

    def finish(self, exc: BaseException | None = None) -> None:
        """Wait for the batches handed over; raise what went wrong writing them (unless ``exc``
        is already on its way)."""
        self._worker.join(exc)
        if exc is None:  # (else the savepoint rolled back undoes the plan settings)
            _plan_locally(self.conn, self._plan_before)


def _finish_version(session: Session, actor, layer: Layer, spec: LayerSpec, version: LayerVersion, *, staged: int,
                    inserted: int, closed: int, changed: int, timings: dict, event_type: str = "layer_version.published",
                    extra: dict | None = None) -> VersionReport:
    """Record a written version's counts and impact, make it current, audit it and re-check the
    projects it touches."""
    version.count_changed = changed
    version.count_removed = closed - changed
    version.count_added = inserted - changed
    version.count_unchanged = staged - inserted
    t = time.perf_counter()
    version.affected_project_ids = affected_projects(session, layer, spec, version.number)
    timings["impact"] = time.perf_counter() - t
    layer.current_version_id = version.id
    payload = {"layer": layer.name, "number": version.number, "source": version.source_name,
               "added": version.count_added, "changed": version.count_changed, "removed": version.count_removed,
               "unchanged": version.count_unchanged, "affected_projects": version.affected_project_ids}
    record_event(session, actor, event_type, version, {**payload, **(extra or {})})
    recheck_run_ids: list[int] = []
    if version.affected_project_ids:
        # the projects in flight that this version touches are re-checked in the same transaction,
        # so their reviewers never see a live version whose effect on them is not yet recorded
        from .checks.engine import recheck_affected

        t = time.perf_counter()
        session.flush()
        recheck_run_ids = recheck_affected(session, version.id)
        timings["recheck"] = time.perf_counter() - t
    return VersionReport(layer.name, version.number, version.id, version.count_added, version.count_changed,
                         version.count_removed, version.count_unchanged, staged, 0.0,
                         affected_project_ids=list(version.affected_project_ids), timings=timings,
                         recheck_run_ids=recheck_run_ids)


def affected_projects(session: Session, layer: Layer, spec: LayerSpec, number: int) -> list[int]:
    """Projects in flight whose footprints touch a feature that version ``number`` added, changed
    or removed (old and new shapes both count), found through the spatial index in one query."""
    rows = session.execute(sa.text(
        """
        SELECT DISTINCT b.project_id
        FROM layer_features f
        JOIN buildings b ON ST_DWithin(b.geom, f.geom, :d)
        JOIN projects p ON p.id = b.project_id
        WHERE f.layer_id = :layer AND (f.valid_from = :v OR f.valid_to = :v) AND p.status = ANY(:states)
        ORDER BY b.project_id
        """), {"layer": layer.id, "v": number, "d": spec.impact_distance_m, "states": list(IN_FLIGHT)}).scalars()
    return list(rows)


def _publish_raster(session, settings, actor, layer, source, name, checksum, options, t0) -> VersionReport:
    from .rasters import normalise_raster

    with tempfile.TemporaryDirectory(prefix="gisapproval-raster-") as tmp:
        normalised, source_crs = normalise_raster(source, name, Path(tmp), settings.jurisdiction, options.crs)
        stored, digest = store_raster(settings.home / "rasters", normalised)
    number = (session.scalar(sa.select(sa.func.max(LayerVersion.number)).where(LayerVersion.layer_id == layer.id))
              or 0) + 1
    version = LayerVersion(layer_id=layer.id, number=number, state="live", created_by_id=actor.id if actor else None,
                           source_name=name, checksum=checksum, raster_path=str(stored), count_added=1)
    session.add(version)
    session.flush()
    layer.current_version_id = version.id
    record_event(session, actor, "layer_version.published", version,
                 {"layer": layer.name, "number": number, "source": name, "stored_sha256": digest})
    return VersionReport(layer.name, number, version.id, 1, 0, 0, 0, 1, time.perf_counter() - t0,
                         source_crs=source_crs)


def record_refused_import(session: Session, actor: User | None, layer_name: str, source_name: str,
                          error: GisApprovalError) -> None:
    """Audit a refused import (in its own transaction: the import's was rolled back)."""
    problems = [str(p) for p in getattr(error, "problems", [])][:50] or [str(error)]
    layer = session.scalar(sa.select(Layer).where(Layer.name == layer_name))
    record_event(session, actor, "layer_import.refused", ("layers", layer.id if layer else layer_name),
                 {"layer": layer_name, "source": source_name, "problems": problems,
                  "more": getattr(error, "more", 0)})


ROLLED_BACK_TO = "rollback to version "  # a roll-back's source name, the version's number after it


def rollback_layer(session: Session, actor: User | None, layer_name: str, to_number: int, *,
                   check_permission: bool = True) -> VersionReport:
    """Publish version ``to_number``'s content as a new version (history is kept)."""
    t0 = time.perf_counter()
    layer = get_layer(session, layer_name)
    if check_permission:
        ensure_may_edit(actor, layer)
    spec = default_catalogue()[layer.name]
    if spec.kind != "vector":
        raise InputError("rolling back a raster layer is publishing its earlier file again; import it", where=layer_name)
    target = session.scalar(sa.select(LayerVersion).where(LayerVersion.layer_id == layer.id,
                                                          LayerVersion.number == to_number))
    if target is None:
        raise NotFoundError(f"layer {layer_name!r} has no version {to_number}")
    _lock(session, layer)
    _new_staging(session)
    session.execute(sa.text(
        f"INSERT INTO layer_staging ({COLUMNS}) SELECT {COLUMNS} FROM layer_features "
        "WHERE layer_id = :layer AND valid_from <= :n AND (valid_to IS NULL OR valid_to > :n)"),
        {"layer": layer.id, "n": to_number})
    _index_staging(session)
    result = _apply_staging(session, actor, layer, spec, f"{ROLLED_BACK_TO}{int(to_number)}", target.checksum,
                            note=f"content of version {to_number}", event_type="layer_version.rolled_back",
                            extra={"to_version": to_number})
    result.seconds = time.perf_counter() - t0
    return result


def list_versions(session: Session, layer_name: str) -> list[LayerVersion]:
    layer = get_layer(session, layer_name)
    return list(session.scalars(sa.select(LayerVersion).where(LayerVersion.layer_id == layer.id)
                                .order_by(LayerVersion.number.desc())))


@dataclass
class Diff:
    layer: str
    from_number: int
    to_number: int
    added: list[str]
    removed: list[str]
    changed: list[str]

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}


# A feature in both versions is one row unless it changed, or changed and changed back (a
# rollback writes the earlier content again): only rows that differ are compared. A key whose
# rows neither begin nor end between the two versions has the same row in both, so only the keys
# of rows that do are looked at: a diff reads what changed, not the whole layer twice.
DIFF_SQL = """
WITH touched AS (SELECT DISTINCT feature_key FROM layer_features
                 WHERE layer_id = :layer AND (valid_from > least(:a, :b) AND valid_from <= greatest(:a, :b)
                                              OR valid_to > least(:a, :b) AND valid_to <= greatest(:a, :b))),
     a AS (SELECT id, feature_key, attrs, geom, content_digest FROM layer_features
           WHERE layer_id = :layer AND valid_from <= :a AND (valid_to IS NULL OR valid_to > :a)
             AND feature_key IN (SELECT feature_key FROM touched)),
     b AS (SELECT id, feature_key, attrs, geom, content_digest FROM layer_features
           WHERE layer_id = :layer AND valid_from <= :b AND (valid_to IS NULL OR valid_to > :b)
             AND feature_key IN (SELECT feature_key FROM touched))
SELECT coalesce(a.feature_key, b.feature_key) AS key,
       CASE WHEN a.id IS NULL THEN 'added' WHEN b.id IS NULL THEN 'removed' ELSE 'changed' END AS kind
       {columns}
FROM a FULL JOIN b ON a.feature_key = b.feature_key
WHERE a.id IS NULL OR b.id IS NULL OR (a.id <> b.id AND NOT """ + same_content("a", "b") + """)
ORDER BY key
"""


def _diff_rows(session: Session, layer_name: str, a: int, b: int, columns: str = "", limit: int | None = None
               ) -> list[sa.Row]:
    """``DIFF_SQL``'s rows for versions ``a`` and ``b`` of a layer: key, kind, then ``columns``
    (SQL over the two versions' rows ``a`` and ``b``, each led by a comma); the first ``limit``."""
    layer = get_layer(session, layer_name)
    numbers = set(session.scalars(sa.select(LayerVersion.number).where(LayerVersion.layer_id == layer.id)))
    for n in (a, b):
        if n not in numbers:
            raise NotFoundError(f"layer {layer_name!r} has no version {n}")
    sql = DIFF_SQL.format(columns=columns) + ("" if limit is None else " LIMIT :limit")
    return session.execute(sa.text(sql), {"layer": layer.id, "a": a, "b": b, "limit": limit}).all()


def diff_versions(session: Session, layer_name: str, a: int, b: int) -> Diff:
    rows = _diff_rows(session, layer_name, a, b)
    out: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    for key, kind in rows:
        out[kind].append(key)
    return Diff(layer_name, a, b, out["added"], out["removed"], out["changed"])


def diff_geojson(session: Session, layer_name: str, a: int, b: int, limit: int = 20000) -> dict:
    """The changed features between two versions as GeoJSON (EPSG:4326), kind in properties."""
    columns = (", ST_AsGeoJSON(ST_Transform(coalesce(b.geom, a.geom), 4326), 7)::json AS g,"
               " CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL"
               " THEN ST_AsGeoJSON(ST_Transform(a.geom, 4326), 7)::json"
               " END AS old_g, coalesce(b.attrs, a.attrs) AS attrs, a.attrs AS old_attrs")
    rows = _diff_rows(session, layer_name, a, b, columns, limit)
    features = []
    for key, kind, g, old, attrs, old_attrs in rows:
        features.append({"type": "Feature", "geometry": g,
                         "properties": {"key": key, "kind": kind, "attrs": attrs,
                                        **({"old_attrs": old_attrs} if kind == "changed" else {})}})
        if old is not None:
            features.append({"type": "Feature", "geometry": old,
                             "properties": {"key": key, "kind": "changed_before", "attrs": old_attrs}})
    return {"type": "FeatureCollection", "features": features}


@dataclass
class Change:
    """One feature that differs between two versions: ``fields`` are the attributes that differ
    (name, before, after; an added feature's all have before None, a removed one's after None),
    ``reshaped`` whether a changed feature's shape differs (None: added or removed), and
    ``before``/``after`` its area (square metres) or length (metres) in each version (None: absent, or a point)."""

    key: str
    kind: str
    fields: list[tuple[str, object, object]]
    reshaped: bool | None
    before: float | None
    after: float | None

    def as_dict(self) -> dict:
        return {"key": self.key, "kind": self.kind, "reshaped": self.reshaped, "before": self.before,
                "after": self.after, "fields": [{"name": n, "before": x, "after": y} for n, x, y in self.fields]}


MEASURES = {"area": "ST_Area({g})", "length": "ST_Length({g})"}


def measure_of(geometry_type: str | None) -> str | None:
    """What a feature of this geometry type measures: 'area', 'length', or None (points)."""
    return {"Polygon": "area", "MultiPolygon": "area", "LineString": "length",
            "MultiLineString": "length"}.get(geometry_type or "")


def diff_changes(session: Session, layer_name: str, a: int, b: int, limit: int = 1000) -> list[Change]:
    """The first ``limit`` features (by key) that differ between versions ``a`` and ``b``, each
    with what differs."""
    spec = default_catalogue().get(layer_name)  # (an unknown layer is refused by _diff_rows)
    measure = MEASURES.get(measure_of(spec and spec.geometry_type), "NULL::float8")
    columns = (", a.attrs, b.attrs, CASE WHEN a.id IS NOT NULL AND b.id IS NOT NULL"
               " THEN ST_AsEWKB(a.geom) <> ST_AsEWKB(b.geom) END, "
               f"{measure.format(g='a.geom')}, {measure.format(g='b.geom')}")
    out = []
    for key, kind, old, new, reshaped, before, after in _diff_rows(session, layer_name, a, b, columns, limit):
        old, new = old or {}, new or {}
        # (an attribute set to null differs from one that is absent, as the digests and jsonb have it)
        fields = [(n, old.get(n), new.get(n)) for n in sorted(old.keys() | new.keys())
                  if (n in old, old.get(n)) != (n in new, new.get(n))]
        out.append(Change(key, kind, fields, reshaped, before, after))
    return out


def save_upload(stream, filename: str, limit_bytes: int) -> Path:
    """Write an uploaded stream to a temporary file, refusing one larger than ``limit_bytes``."""
    safe = Path(filename or "upload").name
    tmpdir = Path(tempfile.mkdtemp(prefix="gisapproval-upload-"))
    target = tmpdir / safe
    written = 0
    try:
        with open(target, "wb") as out:
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if written > limit_bytes:
                    raise InputError(f"the upload is larger than the {limit_bytes / 1e6:.0f} MB allowed", where=safe)
                out.write(chunk)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return target


def get_version(session: Session, layer: Layer, number: int | None = None) -> LayerVersion:
    """A layer's version ``number`` (its current version when None)."""
    if number is None:
        version = session.get(LayerVersion, layer.current_version_id) if layer.current_version_id else None
        if version is None:
            raise NotFoundError(f"layer {layer.name!r} has no version yet")
        return version
    version = session.scalar(sa.select(LayerVersion).where(LayerVersion.layer_id == layer.id,
                                                           LayerVersion.number == number))
    if version is None:
        raise NotFoundError(f"layer {layer.name!r} has no version {number}")
    return version


def features_geojson(session: Session, layer_name: str, number: int | None = None,
                     bbox: tuple[float, float, float, float] | None = None, limit: int = 1000) -> dict:
    """A layer's features as of version ``number`` (the current one when None) as GeoJSON in
    EPSG:4326; ``bbox`` (lon/lat: west, south, east, north) keeps those it intersects."""
    layer = get_layer(session, layer_name)
    version = get_version(session, layer, number)
    where = [features_as_of(layer.id, version.number)]
    if bbox is not None:
        west, south, east, north = bbox
        if not (west < east and south < north):
            raise InputError("bbox must be west,south,east,north with west < east and south < north", where="bbox")
        env = sa.func.ST_Transform(sa.func.ST_MakeEnvelope(west, south, east, north, 4326), SRID)
        where.append(sa.func.ST_Intersects(LayerFeature.geom, env))
    query = (sa.select(LayerFeature.feature_key, LayerFeature.attrs,
                       sa.cast(sa.func.ST_AsGeoJSON(sa.func.ST_Transform(LayerFeature.geom, 4326), 7), sa.JSON))
             .where(*where).order_by(LayerFeature.feature_key).limit(limit + 1))
    rows = session.execute(query).all()
    features = [{"type": "Feature", "id": key, "geometry": geom, "properties": {**attrs, "_key": key}}
                for key, attrs, geom in rows[:limit]]
    return {"type": "FeatureCollection", "layer": layer.name, "version": version.number,
            "truncated": len(rows) > limit, "features": features}


@dataclass
class LayerOverview:
    layer: Layer
    spec: LayerSpec
    current: LayerVersion | None
    feature_count: int | None  # live features (None for a raster layer)
    coverage_km2: float | None
    version_count: int


def layer_overview(session: Session, layer_name: str | None = None) -> list[LayerOverview]:
    """Every catalogued layer (or one) with its current version, live feature count and coverage
    area, in catalogue order, from three grouped queries."""
    catalogue = default_catalogue()
    query = sa.select(Layer, sa.func.ST_Area(Layer.coverage) / 1e6).order_by(Layer.name)
    if layer_name is not None:
        get_layer(session, layer_name)
        query = query.where(Layer.name == layer_name)
    layers = session.execute(query).all()
    ids = [layer.id for layer, _ in layers]
    current_ids = [layer.current_version_id for layer, _ in layers if layer.current_version_id]
    currents = {v.id: v for v in session.scalars(sa.select(LayerVersion).where(LayerVersion.id.in_(current_ids)))}
    version_counts = dict(session.execute(sa.select(LayerVersion.layer_id, sa.func.count())
                                          .where(LayerVersion.layer_id.in_(ids))
                                          .group_by(LayerVersion.layer_id)).all())
    counts = dict(session.execute(sa.select(LayerFeature.layer_id, sa.func.count())
                                  .where(LayerFeature.layer_id.in_(ids), LayerFeature.valid_to.is_(None))
                                  .group_by(LayerFeature.layer_id)).all())
    order = {name: i for i, name in enumerate(catalogue)}
    out = []
    for layer, km2 in sorted(layers, key=lambda row: order.get(row[0].name, len(order))):
        spec = catalogue.get(layer.name)
        if spec is None:
            continue  # a layer dropped from the catalogue keeps its history but is no longer offered
        out.append(LayerOverview(layer, spec, currents.get(layer.current_version_id),
                                 counts.get(layer.id, 0) if spec.kind == "vector" else None,
                                 None if km2 is None else float(km2), version_counts.get(layer.id, 0)))
    return out


def version_authors(session: Session, versions: list[LayerVersion]) -> dict[int, User]:
    ids = {v.created_by_id for v in versions if v.created_by_id}
    return {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(ids)))} if ids else {}


def impact_projects(session: Session, ids, viewer: User | None) -> dict[int, Project]:
    """Those of the projects ``ids`` (an impact list's) that ``viewer`` may see on the map, by id:
    another applicant's draft stays unnamed."""
    ids = set(ids)
    return {p.id: p for p in session.scalars(visible_projects(viewer).where(Project.id.in_(ids)))} if ids else {}


def rolled_back_to(version: LayerVersion) -> int | None:
    """The version whose content this one published again, if it was made by a roll-back."""
    name = version.source_name or ""
    number = name.removeprefix(ROLLED_BACK_TO)
    return int(number) if name.startswith(ROLLED_BACK_TO) and number.isascii() and number.isdigit() else None

"""Each layer version's content digests, kept on the machine whose import made the version.

A re-import finds the source features a layer already holds by their content digests
(``gisapproval.layerimport.LiveDigests``). The database gives the live features' keys and
digests in one query: for 200,000 features about 7.8 MB, which took 60-180 ms from a server on
the same machine (the more, the more pages wait for autovacuum), and longer across a network.
But the import that made the current version had them all already, as the digests of the
features it read: it streams them to a file in the app's home
(``cache/live-digests/<token>.arrow``), and the next re-import of the layer on this machine
reads them from there instead (9-27 ms, their hash index built).

The file is named by the version's content token, a random UUID every version gets when it
is made (migration 0014), so no other version can take the file for its own: not one in
another database, nor one made after a restored backup handed out the same numbers again. It
gets that name only once the import has read its whole source without a problem; an import
that is then not committed leaves a file no version names, which is evicted in time. It holds
the version's live features exactly: every feature of the source with its digest, which the
database holds for it too (a feature found unchanged has that very digest, and one written or
compared in the database is given it). A version without a file here (imported on another
machine, made by a rollback, or its file evicted, damaged or of another format) is asked of the
database as before.

A file is written under a temporary name and renamed once complete; its last batch carries a
checksum of its keys and digests, so a file damaged in any way (cut short, a byte changed, pages
lost in a power failure) is not used, and is removed. Files are readable by every user of the
home (the command line's, the web server's: a user who cannot write the directory keeps no
file, which only costs the query), and the most recently used are kept up to ``KEPT_BYTES`` in
all. A home that cannot be written to is not written to. They are trusted as the rest of the
home is (``gisapproval.crs``): whoever may write there may change them.

The files know only what imports wrote. Whoever changes a version's live features in the
database in any other way (by hand in SQL, or in a migration) must give the version a new token
(``UPDATE layer_versions SET content_token = gen_random_uuid() WHERE id = ...``) or empty the
directory, or a re-import on this machine would still take the features for what they were.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

from .config import app_home
from .layerimport import array_digests, digest_array, utf8_bytes, value_offsets

DIRECTORY = Path("cache") / "live-digests"  # under the app's home
KEPT_BYTES = 512 * 1024**2  # the files kept, the most recently used first
ABANDONED_AFTER_S = 24 * 3600  # a temporary file this old belongs to no running import
_TEMPORARY = ".importing-"
# a feature's key, and its digest (16 bytes, zeros where not known), as LiveDigests holds them
SCHEMA = pa.schema([("feature_key", pa.string()), ("content_digest", pa.binary(16))],
                   metadata={"gisapproval": "live digests 1"})


def directory() -> Path:
    return app_home() / DIRECTORY


def path_for(token: uuid.UUID) -> Path:
    return directory() / f"{token}.arrow"


class _Checksum:
    """XXH3-128 of the keys' lengths, the keys' text and the digests, each run together in the
    order recorded, whatever the batches: so the same for the batches written and for the
    whole columns read back."""

    def __init__(self):
        self._parts = [xxhash.xxh3_128() for _ in range(3)]

    def update(self, keys: pa.Array, digests: np.ndarray) -> None:
        if not len(keys):
            return
        for part, data in zip(self._parts, (np.diff(value_offsets(keys)).astype("<i4"), utf8_bytes(keys),
                                            np.ascontiguousarray(digests, dtype="<u8")), strict=True):
            part.update(data)

    def hexdigest(self) -> str:
        return xxhash.xxh3_128_hexdigest(b"".join(part.digest() for part in self._parts))


class DigestRecorder:
    """The keys and digests of an import's features, streamed batch by batch (``add``) into a
    temporary file, which ``keep`` names for the version made and ``discard`` removes. Once
    anything goes wrong with the file it records nothing more and keeps nothing."""

    def __init__(self):
        self._tmp: Path | None = None
        self._file = self._writer = None
        self._checksum = _Checksum()
        try:
            directory().mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory(), prefix=_TEMPORARY, suffix=".arrow")
            self._tmp, self._file = Path(tmp), os.fdopen(fd, "wb")
            self._writer = pa.ipc.new_file(self._file, SCHEMA)
        except OSError:  # a home we may not write to
            self.discard()

    def add(self, keys: pa.Array, digests: np.ndarray) -> None:
        """Record features: their keys, and their digests as an (n, 2) uint64 array."""
        if self._writer is None:
            return
        batch = _batch(keys.cast(pa.string()), digests)
        try:
            self._writer.write_batch(batch)
        except OSError:
            self.discard()
            return
        self._checksum.update(batch.column(0), digests)

    def keep(self, token: uuid.UUID) -> None:
        """The features recorded are the whole content of the version named by ``token``."""
        if self._writer is None:
            return
        try:
            self._writer.write_batch(_batch(pa.array([], type=pa.string()), np.empty((0, 2), dtype="<u8")),
                                     custom_metadata={"checksum": self._checksum.hexdigest()})
            self._writer.close()
            self._file.close()
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, path_for(token))
        except OSError:
            self.discard()
            return
        self._tmp = self._file = self._writer = None
        evict()

    def discard(self) -> None:
        for close in (getattr(self._writer, "close", None), getattr(self._file, "close", None)):
            try:
                if close is not None:
                    close()
            except (OSError, ValueError):
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._tmp = self._file = self._writer = None


def _batch(keys: pa.Array, digests: np.ndarray) -> pa.RecordBatch:
    return pa.record_batch([keys, digest_array(digests)], schema=SCHEMA)


def load(token: uuid.UUID, count: int) -> tuple[pa.Array, np.ndarray] | None:
    """The keys and digests (an (n, 2) uint64 array) of the version named by ``token``, which
    has ``count`` live features; None when no usable file of them is here (one that is there
    but damaged, or of another format, is removed)."""
    path = path_for(token)
    try:
        source = pa.OSFile(str(path))
    except OSError:
        return None
    try:
        with source:
            found = _read(source, count)
    except (OSError, ValueError, TypeError, IndexError, pa.ArrowException):
        found = None
    if found is None:
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)  # recently used: evicted last
    except OSError:
        pass
    return found


def _read(source, count: int) -> tuple[pa.Array, np.ndarray] | None:
    """A file's keys and digests if it is of this format, complete, undamaged and of ``count``
    features, else None."""
    reader = pa.ipc.open_file(source)
    if not reader.schema.equals(SCHEMA, check_metadata=True) or not reader.num_record_batches:
        return None
    last = reader.get_batch_with_custom_metadata(reader.num_record_batches - 1)
    kept = (last.custom_metadata or {}).get(b"checksum")
    table = reader.read_all()
    if kept is None or table.num_rows != count:
        return None
    table.validate(full=True)
    keys, column = (table.column(name).combine_chunks() for name in SCHEMA.names)
    if keys.null_count or column.null_count:
        return None
    digests = array_digests(column)
    checksum = _Checksum()
    checksum.update(keys, digests)
    return (keys, digests) if checksum.hexdigest().encode() == kept else None


def evict(kept_bytes: int = KEPT_BYTES) -> None:
    """Remove the files least recently used beyond ``kept_bytes`` in all (always keeping the
    latest), and temporary files that no import can still be writing."""
    files, now = [], time.time()
    try:
        with os.scandir(directory()) as found:
            for entry in found:
                try:
                    info = entry.stat()
                    if entry.name.startswith(_TEMPORARY):
                        if now - info.st_mtime > ABANDONED_AFTER_S:
                            os.unlink(entry.path)
                    elif entry.name.endswith(".arrow"):
                        files.append((info.st_mtime, info.st_size, entry.path))
                except OSError:
                    pass
    except OSError:
        return
    total = 0
    for i, (_, size, path) in enumerate(sorted(files, reverse=True)):
        total += size
        if i and total > kept_bytes:
            try:
                os.unlink(path)
            except OSError:
                pass

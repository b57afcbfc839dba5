"""The content digests a layer version's import keeps on its machine (gisapproval.digestcache)."""

from __future__ import annotations

import os
import stat
import time
import uuid

import numpy as np
import pyarrow as pa

from gisapproval import digestcache


def _digests(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64 - 1, size=(n, 2), dtype=np.uint64, endpoint=True)


def test_what_is_recorded_is_loaded_by_the_versions_token_and_count(digest_files):
    token = uuid.uuid4()
    recorder = digestcache.DigestRecorder()
    keys = [pa.array(["a", "b", "c"]), pa.array(["dé", "e"], type=pa.large_string())]
    digests = [_digests(3, 1), np.array([[0, 0], [2**64 - 1, 1]], dtype=np.uint64)]  # zeros: not known
    for k, d in zip(keys, digests, strict=True):
        recorder.add(k, d)
    recorder.add(pa.array([], type=pa.string()), np.empty((0, 2), dtype=np.uint64))
    assert digestcache.load(token, 5) is None  # not kept yet
    recorder.keep(token)
    loaded_keys, loaded = digestcache.load(token, 5)
    assert loaded_keys.to_pylist() == ["a", "b", "c", "dé", "e"] and loaded_keys.type == pa.string()
    assert np.array_equal(loaded, np.concatenate(digests)) and loaded.dtype == np.dtype("<u8")
    (kept,) = digest_files.iterdir()
    assert kept.name == f"{token}.arrow" and stat.S_IMODE(kept.stat().st_mode) == 0o644
    assert digestcache.load(uuid.uuid4(), 5) is None and kept.exists()  # another version's: none
    assert digestcache.load(token, 4) is None and not kept.exists()  # not the version's content: removed


def _kept_file(keys: list[str]) -> tuple[uuid.UUID, bytes]:
    token = uuid.uuid4()
    recorder = digestcache.DigestRecorder()
    recorder.add(pa.array(keys), _digests(len(keys), 3))
    recorder.keep(token)
    return token, digestcache.path_for(token).read_bytes()


def test_a_file_changed_after_it_was_written_is_not_used_and_removed(digest_files):
    """A byte of a key or of a digest, a key's offset, the checksum itself, or the end of the
    file: each change is found, and the file removed."""
    token, good = _kept_file(["K1", "K2", "K3"])
    path = digestcache.path_for(token)
    digest = _digests(3, 3)[2].tobytes()
    spoiled = [good.replace(b"K1K2K3", b"K1K2K8"), good.replace(digest, digest[:-1] + bytes([digest[-1] ^ 1])),
               good.replace(np.array([0, 2, 4, 6], dtype="<i4").tobytes(),
                            np.array([0, 2, 4, 9999], dtype="<i4").tobytes()),
               good[:-40]]
    checksum = digestcache._Checksum()
    checksum.update(pa.array(["K1", "K2", "K3"]), _digests(3, 3))
    spoiled.append(good.replace(checksum.hexdigest().encode(), b"0" * 32))
    for data in spoiled:
        assert data != good
        path.write_bytes(data)
        assert digestcache.load(token, 3) is None and not path.exists()
    path.write_bytes(good)
    assert digestcache.load(token, 3)[0].to_pylist() == ["K1", "K2", "K3"]


def test_a_discarded_recording_leaves_nothing(digest_files):
    recorder = digestcache.DigestRecorder()
    recorder.add(pa.array(["a"]), _digests(1, 2))
    assert len(list(digest_files.iterdir())) == 1  # the temporary file
    recorder.discard()
    recorder.keep(uuid.uuid4())  # (nothing left to keep)
    assert list(digest_files.iterdir()) == []


def test_the_most_recently_used_files_are_kept_up_to_the_limit(digest_files):
    now = time.time()
    ages = {"old": 300, "older": 400, "used": 500, "latest": 100}
    for name, age in ages.items():
        path = digest_files / f"{name}.arrow"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age, now - age))
    for name, age in {".importing-abandoned": 2 * digestcache.ABANDONED_AFTER_S, ".importing-running": 10}.items():
        path = digest_files / name
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    os.utime(digest_files / "used.arrow")  # as load does: used just now
    digestcache.evict(kept_bytes=2500)
    assert sorted(p.name for p in digest_files.iterdir()) == [".importing-running", "latest.arrow", "used.arrow"]
    digestcache.evict(kept_bytes=10)
    assert sorted(p.name for p in digest_files.iterdir()) == [".importing-running", "used.arrow"]  # the latest stays

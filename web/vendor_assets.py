"""Copy the front-end libraries the pages use from ``node_modules/`` into ``web/static/vendor/``.

Run after ``npm ci --no-audit --no-fund``::

    python -m web.vendor_assets            # copy if package-lock.json changed since the last copy
    python -m web.vendor_assets --force    # copy anyway

Idempotent: a stamp file records the sha256 of package-lock.json; when it matches and every
file is in place, nothing is done. Nothing is downloaded here and nothing at run time comes
from a CDN.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
LOCK_FILE = REPO_ROOT / "package-lock.json"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
STAMP_FILE = VENDOR_DIR / ".stamp"


@dataclass(frozen=True)
class Asset:
    package: str
    source: str  # path inside node_modules/<package>/, a file or a directory
    target: str  # path inside web/static/vendor/<package>/


ASSETS = (
    Asset("leaflet", "dist/leaflet.js", "leaflet.js"),
    Asset("leaflet", "dist/leaflet.css", "leaflet.css"),
    Asset("leaflet", "dist/images", "images"),
    Asset("leaflet", "LICENSE", "LICENSE"),
    Asset("leaflet-draw", "dist/leaflet.draw.js", "leaflet.draw.js"),
    Asset("leaflet-draw", "dist/leaflet.draw.css", "leaflet.draw.css"),
    Asset("leaflet-draw", "dist/images", "images"),
    Asset("echarts", "dist/echarts.min.js", "echarts.min.js"),
    Asset("echarts", "LICENSE", "LICENSE"),
    # VectorGrid 1.3.0 calls L.DomEvent.fakeStop, gone since Leaflet 1.8: web/static/js/map.js defines it.
    Asset("leaflet.vectorgrid", "dist/Leaflet.VectorGrid.bundled.min.js", "Leaflet.VectorGrid.bundled.min.js"),
    Asset("leaflet.vectorgrid", "README.md", "README.md"),  # carries the licence (Beerware); no LICENSE file
)


class VendorAssetsError(Exception):
    """The npm packages are missing or incomplete."""


def lock_digest(lock_file: Path = LOCK_FILE) -> str:
    try:
        return hashlib.sha256(lock_file.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise VendorAssetsError(f"{lock_file} not found; it is part of the repository") from None


def is_current(vendor_dir: Path = VENDOR_DIR, lock_file: Path = LOCK_FILE) -> bool:
    stamp = vendor_dir / STAMP_FILE.name
    if not stamp.exists() or stamp.read_text().strip() != lock_digest(lock_file):
        return False
    return all((vendor_dir / a.package / a.target).exists() for a in ASSETS)


def vendor(*, force: bool = False, node_modules: Path = NODE_MODULES, vendor_dir: Path = VENDOR_DIR,
           lock_file: Path = LOCK_FILE) -> bool:
    """Copy the assets; return True if anything was copied, False if already current."""
    if not force and is_current(vendor_dir, lock_file):
        return False
    missing = [f"{a.package}/{a.source}" for a in ASSETS if not (node_modules / a.package / a.source).exists()]
    if missing:
        raise VendorAssetsError(
            f"not in {node_modules}: {', '.join(missing)}; run `npm ci --no-audit --no-fund` in {REPO_ROOT} first"
        )
    staging = vendor_dir.with_name(vendor_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for asset in ASSETS:
        src = node_modules / asset.package / asset.source
        dst = staging / asset.package / asset.target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    (staging / STAMP_FILE.name).write_text(lock_digest(lock_file) + "\n")
    shutil.rmtree(vendor_dir, ignore_errors=True)
    staging.rename(vendor_dir)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.vendor_assets", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="copy even if the stamp matches")
    args = parser.parse_args(argv)
    try:
        copied = vendor(force=args.force)
    except VendorAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"copied front-end assets into {VENDOR_DIR}" if copied else f"{VENDOR_DIR} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

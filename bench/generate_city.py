"""Time the sample generator at city scale: `python bench/generate_city.py [--parcels N]`.

Prints wall time and peak memory; the last line is machine-readable.
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sample_parcels.generate import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--parcels", type=int, default=200_000)
    ap.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        summary = generate(out, parcels=args.parcels, projects=False)
        seconds = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = summary.get("counts", summary)
    print(f"parcels requested: {args.parcels}")
    print(f"layers: {counts}")
    print(f"wall time: {seconds:.1f} s, output {size_mb:.1f} MB, peak RSS {peak_mb:.0f} MB")
    print(f"RESULT generate parcels={args.parcels} seconds={seconds:.1f} peak_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()

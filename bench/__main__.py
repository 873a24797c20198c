"""`make bench`: every benchmark in turn, then docs/BENCHMARKS.md generated from bench/results/*.json.

python -m bench            # full run (~10 min on 2 cores)
python -m bench --smoke    # seconds per bench, for CI: proves the scripts run, figures mean little
python -m bench --only peak inference
python -m bench --report   # only re-render docs/BENCHMARKS.md from bench/results/*.json
"""

from __future__ import annotations

import argparse
import importlib
import time

from .report import write_benchmarks_md

BENCHES = ("peak", "inference", "data_path", "training", "hashing")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a quick proof the benches run")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument(
        "--report", action="store_true", help="only render docs/BENCHMARKS.md from the results"
    )
    args = parser.parse_args()
    if args.report:
        print(f"wrote {write_benchmarks_md()}")
        return
    for name in args.only:
        start = time.perf_counter()
        print(f"\n######## bench.{name}" + (" (smoke)" if args.smoke else ""), flush=True)
        importlib.import_module(f"bench.{name}").run(smoke=args.smoke)
        print(f"(bench.{name} took {time.perf_counter() - start:.0f} s)", flush=True)
    if not args.smoke:
        print(f"\nwrote {write_benchmarks_md()}")


if __name__ == "__main__":
    main()

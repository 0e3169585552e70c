"""``make bench``: run every benchmark and write bench/RESULTS.md.

python -m bench [--only run_overhead] [--repeats N]
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.common import write_results

BENCHMARKS = ("run_overhead",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    comparisons, figures = [], []
    for name in args.only or BENCHMARKS:
        print(f"[bench] {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        c, f = module.run(repeats=args.repeats)
        comparisons += c
        figures += f
    path = write_results(comparisons, figures)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

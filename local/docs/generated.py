"""The command line every documentation generator shares: write the page, or check it.

``python -m local.docs.<generator> [--output PATH] [--check]``: without ``--check`` the page is
(re)written; with it, nothing is written and the exit code says whether the committed page is
what the current code generates (``make docs`` regenerates every page).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str | None,
    default: Path,
    generate: Callable[[], str],
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--output", type=Path, default=default)
    parser.add_argument("--check", action="store_true", help="fail if --output is not current")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output.name} is out of date: run `make docs`", file=sys.stderr)
            return 1
        print(f"{args.output.name} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"wrote {shown}")
    return 0

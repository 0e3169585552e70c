"""Smoke job: fail with ``ValueError(--message)``, as a job rejecting bad input does."""

from __future__ import annotations

import argparse

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--message", default="this job always fails")
    args = parser.parse_args()
    print("about to fail")
    raise ValueError(args.message)

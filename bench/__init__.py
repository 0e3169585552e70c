"""Benchmarks: figures measured side by side on this machine, written to bench/RESULTS.md."""

"""Simulations and references run locally: the drift year, the DuckDB feature reference."""

"""Simulations and references run locally: the drift year (``drift_year``, its document by
``drift_year_doc``), the drift-threshold calibration (``drift_calibration``), the DuckDB feature
reference (``duckdb_features``) and the synthetic days it and the benchmarks land
(``landing``)."""

"""The library of the job scripts in spark_jobs/, one sub-package per lifecycle stage.

* ``core``: the event schema, table contracts, Volume paths and what every job shares.
* ``sources``: where raw click-stream comes from (the synthetic REES46 generator).
* ``pipeline``: bronze ingest, silver, the offline and online feature tables.
* ``quality``: the Great Expectations suites, their results and the HTML report.
* ``models``: the MLflow registry, the propensity model and the ALS recommender.
* ``monitoring``: feature and prediction drift with Evidently.
* ``maintenance``: compaction, clustering and vacuum of the tables, keeping the pinned versions.
"""

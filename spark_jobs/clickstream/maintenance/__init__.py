"""Table maintenance: compaction and clustering (``OPTIMIZE``) and file retention (``VACUUM``).

* ``keys``: every table the pipelines write, with the key it is Z-ordered by and why.
* ``pins``: the Delta versions that must stay readable, as recorded by the registered models
  (their trainings' lineage tags) and by the pipelines (the daily activity's last refresh).
* ``tables``: the weekly run over every table (``spark_jobs/maintain_tables.py``).
"""

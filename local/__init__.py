"""Everything that exists only to run the system on one machine, one sub-package per role.

* ``workspace``: the local Databricks workspace (Jobs and Files REST API) on local Spark.
* ``spark``: the local Spark runtime (the session a Databricks cluster would hand a job) and the
  class-data-sharing archive of its JVMs.
* ``jobs``: local-only job scripts (smoke and fault jobs, the table summary of ``make run``).
* ``stack``: start and stop of the local services, and a client of Airflow's REST API.
* ``story``: ``make run``, the end-to-end run of the whole system.
* ``simulations``: long simulations (the drift year) and single-node reference computations.
* ``docs``: documentation generated from the code.

Nothing here is shipped to Databricks, and ``spark_jobs/`` never imports it.
"""

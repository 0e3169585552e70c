"""Shared test machinery, one module per role.

- ``env``: ``environment()``, the one way to set environment variables for a block.
- ``waiting``: ``wait_for()``, the one polling helper.
- ``processes``: the environment of, and killing, processes the tests start themselves.
- ``services``: session fixtures of the local services (Airflow database, workspace, Azurite,
  MLflow), started by the product's own code; ``spark``: Spark fixtures besides the session.
- ``landing``, ``rows``, ``training_data``: test data; ``tables``: whole-table comparisons.
- ``airflow``, ``airflow_runs``, ``log_masking_dag``: DAGs the tests define and run.
- ``e2e``: the end-to-end tests' backfill; ``secret_scan``: the secret scanner.
- Pytest plugins: ``ordering`` (files shared out to xdist workers), ``timing`` (session times).

The one free-port helper is the product's own, ``local.workspace.process.free_port``.
"""

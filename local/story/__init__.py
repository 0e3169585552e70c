"""``make run``: the local end-to-end run of the whole system, on embedded defaults.

The story, through the real Airflow scheduler, the local workspace, MLflow and Azurite:

1. starts the local stack (``local.stack up``; reused when already running);
2. generates synthetic REES46 click-stream for a drift month (default: the last full calendar
   month) plus ``--warmup-days`` before it (default: the fewest that give the first champion
   mature 30-day windows before the drift), with a drift scenario (default
   ``behaviour_change``: shoppers put fewer products in the cart and buy less) starting on a
   known day of the month;
3. loads the history before the month's last ``--airflow-days`` days in one job
   (``spark_jobs/load_history.py``: the same ingest, silver and feature code the daily jobs
   run), as a first load on Databricks would;
4. backfills the daily chain (data quality with Great Expectations, offline features, online
   features) for the seed date, as from the UI, and trains the first champion as of that date,
   *before* the drift (``model_training``);
5. backfills the daily chain for the month's last ``--airflow-days`` days, with the quality
   reports uploaded to Blob, and scores the month's last day with the champion
   (``model_serving``);
6. runs the monthly ``drift_detection`` for the month: Evidently compares the month with the
   champion's training window, the branching sensor finds the drift and triggers
   ``model_training`` with ``reason=drift``, which trains on drifted data and applies the
   promotion rule;
7. prints a summary: runs per DAG, tables, data quality, drift, both trainings and their
   decisions, the links to the reports in Azurite, and the time of each stage.

Unpausing a DAG makes Airflow schedule its latest interval too (yesterday, or last month);
those runs have no generated data, so they are stopped as they appear (and said so). The
stack stays up afterwards so the results can be explored; ``make down`` stops it.
"""

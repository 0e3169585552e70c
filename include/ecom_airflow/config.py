"""One small config per environment: where the jobs run and what they read and write.

The DAGs are identical in every environment; only this config (selected by ``ECOM_ENV``,
default ``local``) and the Airflow connections differ.

* ``local``: the local workspace server (``python -m local.workspace serve``) runs the scripts
  on local Spark; tables live in the session catalog ``spark_catalog``; Volumes are folders.
* ``dev`` / ``prod``: Databricks job clusters with autoscaling on the environment's runtime
  (``DEV_RUNTIME_VERSION`` / ``PROD_RUNTIME_VERSION``), spot workers with on-demand fallback or
  an instance pool, an optional cluster policy, cost tags (project, env, and per task the
  pipeline = DAG id and the task id), scripts from a git source pinned to a tag or a commit,
  Unity Catalog names ``<catalog>.<schema>.<table>``, job libraries installed from PyPI at the
  pins of ``spark_jobs/requirements.txt`` (a test keeps the two in sync), each run those its
  script imports (:data:`SCRIPT_LIBRARIES`).

``python -m deploy.payloads render --env dev|prod`` (``make payloads ENV=...``) renders every
``runs/submit`` body an environment sends and validates it against the Jobs API.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import timedelta

# The longest feature window (days): a feature date is mature once this many days of data
# lie behind it (``clickstream.core.maturity.MATURITY_DAYS``; a test keeps the two equal).
MATURITY_DAYS = 30

# Job-side libraries the Databricks Runtime does not ship at these versions. pyspark and
# delta-spark are part of the runtime and must not be installed over it.
JOB_LIBRARIES: tuple[str, ...] = (
    "mlflow==3.17.2",
    "scikit-learn==1.9.1",
    "great-expectations==1.24.1",
    "evidently==0.7.23",
    "pandas==2.3.3",
)

# The job libraries each script of spark_jobs/ installs on its cluster (or lists in its
# serverless environment): those it imports, itself or through the clickstream modules it
# imports. tests/include/test_job_libraries.py derives them from the code and holds this map
# exact (no library missing, none unneeded); a script missing here cannot be submitted.
SCRIPT_LIBRARIES: dict[str, tuple[str, ...]] = {
    "build_silver_events.py": (),
    "build_user_features.py": (),
    "collect_job_runs.py": (),
    "detect_drift.py": ("mlflow", "evidently", "pandas"),
    "generate_events.py": (),
    "ingest_events.py": (),
    "load_history.py": (),
    "maintain_tables.py": ("mlflow",),
    "monitor_performance.py": ("mlflow", "scikit-learn", "pandas"),
    "publish_online_features.py": (),
    "recommend_products.py": ("mlflow", "pandas"),
    "report_operations.py": (),
    "rollback_champion.py": ("mlflow",),
    "score_users.py": ("mlflow", "scikit-learn"),  # mlflow.sklearn loads the champion
    "setup_catalog.py": ("mlflow", "scikit-learn", "pandas"),
    "split_monthly_file.py": (),
    "train_models.py": ("mlflow", "scikit-learn", "pandas"),
    "train_recommender.py": ("mlflow", "scikit-learn", "pandas"),
    "validate_data.py": ("great-expectations",),
}


def script_libraries(script: str, pins: tuple[str, ...] = JOB_LIBRARIES) -> tuple[str, ...]:
    """The pins of ``pins`` that ``spark_jobs/<script>`` installs, in the order of ``pins``."""
    if script not in SCRIPT_LIBRARIES:
        raise ValueError(
            f"spark_jobs/{script} has no entry in SCRIPT_LIBRARIES (ecom_airflow/config.py): "
            "add the job libraries it imports (tests/include/test_job_libraries.py lists them)"
        )
    wanted = SCRIPT_LIBRARIES[script]
    return tuple(pin for pin in pins if pin.split("==")[0] in wanted)


# Serverless jobs compute: the environment version of the run's environment (version 4: Python
# 3.12 and Databricks Connect 17, the Spark 4.0 API of 17.3 LTS; docs/deployment.md).
SERVERLESS_ENVIRONMENT_VERSION = "4"
COMPUTE_KINDS = ("cluster", "serverless")


@dataclass(frozen=True)
class NodePrice:
    """List prices of one node type: the DBUs it consumes per hour on jobs compute, and the
    hourly price of its VM (billed by the cloud apart from the DBUs)."""

    dbu_per_hour: float
    vm_usd_per_hour: float


@dataclass(frozen=True)
class PriceTable:
    """The prices ``monitoring.job_runs`` estimates each run's cost with
    (``docs/pipeline_monitoring.md``).

    A run on a job cluster is billed for every node (driver and workers) over the cluster's
    life, its setup, execution and cleanup (not the time queued): the node type's DBUs per hour
    at ``jobs_usd_per_dbu``, plus the VM's price. A serverless run is billed DBUs only (the
    machines are in ``serverless_usd_per_dbu``); the Jobs API does not report how many, so they
    are estimated at ``serverless_dbu_per_hour`` of setup and execution, an assumption to check
    against ``system.billing.usage``. ``priced_as`` (a ``new_cluster`` spec) prices every run as
    if it had run on that cluster: the local workspace has none, so ``make run`` estimates what
    its runs would cost on the dev cluster spec. A node type missing from ``nodes`` (or hidden by
    an instance pool) leaves the estimate empty, never guessed.
    """

    name: str
    source: str
    jobs_usd_per_dbu: float
    serverless_usd_per_dbu: float
    serverless_dbu_per_hour: float
    nodes: dict[str, NodePrice]
    priced_as: dict | None = None

    def as_parameter(self) -> str:
        """The table as the JSON the collection job reads (``--prices``)."""
        return json.dumps(asdict(self), sort_keys=True)


# Azure Databricks list prices: pay-as-you-go, US East, Premium tier, in USD, as published in
# 2025 on azure.microsoft.com/pricing/details/databricks/ (jobs compute $0.30/DBU, serverless
# jobs $0.45/DBU including the machines; Standard_D4ds_v5: 1 DBU per hour) and, for the VM,
# azure.microsoft.com/pricing/details/virtual-machines/linux/ (Standard_D4ds_v5, 4 vCPU
# 16 GiB: $0.226 per hour on demand; the dev and prod workers are spot, so the VM part is an
# upper bound). List prices, not a quote: negotiated discounts and commit units lower them;
# re-check them there before budgeting. serverless_dbu_per_hour is an assumption, not a price:
# the dev cluster's DBU rate at its minimum size (driver + 1 worker).
AZURE_LIST_PRICES = PriceTable(
    name="azure-list-2025-premium-eastus",
    source="Azure Databricks and Azure VM list prices (pay-as-you-go, US East, Premium "
    "tier), 2025; see include/ecom_airflow/config.py",
    jobs_usd_per_dbu=0.30,
    serverless_usd_per_dbu=0.45,
    serverless_dbu_per_hour=2.0,
    nodes={"Standard_D4ds_v5": NodePrice(dbu_per_hour=1.0, vm_usd_per_hour=0.226)},
)


@dataclass(frozen=True)
class Environment:
    """Everything a DAG needs to know about where it runs.

    :param name: environment name (``local``, ``dev``, ``prod``).
    :param catalog: catalog of every table (``spark_catalog`` locally, a UC catalog on Databricks).
    :param volume_root: root of the project's Unity Catalog Volumes (``/Volumes/<cat>/<schema>``).
    :param new_cluster: job cluster spec of every run (ignored by the local workspace).
    :param compute: ``cluster`` (a new job cluster per task, ``new_cluster`` plus the job
        libraries) or ``serverless`` (serverless jobs compute: the run's environment, of
        ``serverless_environment_version``, lists the job libraries as its dependencies).
        Databricks environments read it from ``ECOM_COMPUTE`` (default ``cluster``).
    :param libraries: the pinned job libraries a run may install; each run installs only those
        its script imports (:data:`SCRIPT_LIBRARIES`).
    :param policy_libraries: the cluster policy (``ECOM_CLUSTER_POLICY_ID``) installs the job
        libraries, so job-cluster runs list none (``ECOM_POLICY_LIBRARIES=true``; the policy is
        made by ``python -m deploy.cluster_policy``). Serverless runs still list theirs.
    :param vacuum_retention: how long the weekly table maintenance keeps the files a later
        version removed (time travel); raised per table to keep every version a registered
        model or the pipelines pin (``spark_jobs/clickstream/maintenance``, ``docs/cost.md``).
    :param git_source: pinned git source of ``spark_jobs/`` (None: paths relative to the
        workspace's project root, as the local workspace resolves them).
    :param databricks_pool: Airflow pool every Databricks job task runs in; its
        ``databricks_pool_slots`` bound the runs in flight (``make up``, ``airflow_settings.yaml``
        and the compose init create it).
    :param polling_period_seconds: how often the operator polls a run's state.
    :param default_timeout: execution timeout of a job task, passed on as ``timeout_seconds``.
    :param sensor_poke_seconds: how often a cross-DAG sensor checks its upstream DAG run.
    :param sensor_timeout: how long a DAG waits for its upstream DAG's run of the same date.
    :param landing_poke_seconds: how often the data-quality DAG lists the date's landing folder.
    :param landing_timeout: how long it waits for the date's complete delivery before failing
        (a late, missing or partial delivery).
    :param landing_completeness: when a date's delivery is complete, the rule of the landing
        sensor (``any``, ``marker <name>``, ``files <n>``, ``settle <n>s|m|h``; see
        ``plugins/ecom_plugins/landing_sensor.py``). Databricks environments read it from
        ``ECOM_LANDING_COMPLETENESS`` (default ``marker _SUCCESS``, the exporter's marker).
    :param landing_source: how the streaming ingest lists the landing folder: ``files`` (the
        Spark file source) or ``autoloader`` (Databricks Auto Loader, ``cloudFiles``).
    :param landing_continuous: a continuous ingest job of its own owns the landing stream
        (``docs/streaming.md``, Continuous mode): the daily ``ingest_events`` then runs no
        stream and only checks that the date's files are all in bronze. Databricks
        environments: ``ECOM_LANDING_CONTINUOUS=true``.
    :param daily_deadline: a run of a daily DAG not finished this long after it was queued
        sends a "deadline missed" alert (the DAG's ``deadline``, ``DAGRUN_QUEUED_AT`` plus this;
        ``ecom_airflow.alerts.notify_deadline_missed``); :param monthly_deadline: the same for the
        monthly DAGs. Each is shorter than every sensor timeout of its DAGs (``landing_timeout``,
        ``sensor_timeout``; a test checks every DAG in every environment), so on-call hears of a
        late date while its sensors still wait.
    :param label_horizon_days: a feature row's label is "purchased within this many days".
    :param model_name: registered model of the propensity model (a UC name on Databricks).
    :param recommender_name: registered model of the ALS recommender.
    :param train_days: feature dates in the training window; :param validation_days: in the
        later validation window (see ``spark_jobs/clickstream/models/propensity/data.py``).
    :param max_train_rows: bound of each window's sample on the driver.
    :param promotion_margin: ROC AUC a challenger must gain over the champion to replace it, at
        the low end of the paired per-user bootstrap interval of the gain (95%, on the later
        evaluation split; ``docs/models.md``).
    :param promotion_calibration_tolerance: how much higher the challenger's expected
        calibration error may be than the champion's (or the baseline's) for it to replace it.
    :param recommender_promotion_margin: precision@10 an ALS challenger must gain over the
        champion (or, for the first model, over the popularity baseline) to replace it. The
        rule needs a strict gain whatever the margin, so a tie keeps the champion even at 0.
    :param ground_truth_path: the synthetic generator's true propensities (local only), for the
        oracle figures of a training.
    :param reports_container: Blob container of the HTML reports (private; links are SAS URLs).
    :param drift_share: share of drifted feature columns at or above which a month has drifted
        (a column drifts at a normed Wasserstein distance >= 0.075, ``STATTEST_THRESHOLD`` of
        ``clickstream/monitoring/drift_report.py``). 0.046: at least 2 of the 43 columns, chosen
        on selection seeds and checked on held-out ones by the calibration study
        (``docs/drift_calibration.md``, mature windows, graded drift from mid-month); the
        simulated year at it: ``docs/drift_year.md``. ``drift_cooldown`` bounds how often drift
        retrains; re-check it on real traffic and set it per environment.
    :param drift_min_rows: rows each side needs for a drift test; fewer is "insufficient data".
    :param drift_max_rows: bound of each side's sample on the driver (Evidently runs on pandas).
    :param drift_cooldown: no drift retraining within this long after the last one.
    :param performance_max_ece: a served score date whose realised expected calibration error
        is above this has decayed (the second reason to retrain, ``reason=performance``).
    :param performance_max_auc_drop: ... or whose realised ROC AUC is below the serving
        version's validation ROC AUC by more than this.
    :param performance_min_rows: labelled rows a score date needs to be judged at all.
    :param performance_cooldown: no performance retraining within this long after the last one.
    :param prices: the price table of the runs' cost estimates (:class:`PriceTable`).
    :param job_runs_lookback: the daily ``pipeline_monitoring`` run collects the Databricks runs
        that started within this long before its data interval's end: yesterday's, and the day
        before's again so that a run still in flight at the last collection gets its final state.
    :param operations_report_days: days of runs the operations report covers.
    :param duration_trend_runs: a job's duration trend compares the median execution time of
        its last this many successful runs with that of the same number before them ...
    :param duration_trend_ratio: ... and flags the job when the ratio is at least this ...
    :param duration_trend_min_seconds: ... and the median grew by at least this many seconds
        (a job of seconds that takes a few more is not worth anyone's time).
    :param online_sync_pipeline_id: the Databricks pipeline of the synced online table that
        serves ``gold.user_features_online`` with low latency (Databricks online table /
        Lakebase synced table, TRIGGERED mode). Set: the online DAG triggers it after each
        publish. None (local, or no online store): the Delta table is the online table.
    """

    name: str
    catalog: str
    volume_root: str
    new_cluster: dict
    git_source: dict | None = None
    libraries: tuple[str, ...] = ()
    policy_libraries: bool = False
    compute: str = "cluster"
    serverless_environment_version: str = SERVERLESS_ENVIRONMENT_VERSION
    databricks_conn_id: str = "databricks_default"
    wasb_conn_id: str = "wasb_default"
    databricks_pool: str = "databricks_jobs"
    databricks_pool_slots: int = 16
    polling_period_seconds: int = 30
    default_timeout: timedelta = timedelta(hours=1)
    sensor_poke_seconds: int = 120
    sensor_timeout: timedelta = timedelta(hours=12)
    landing_poke_seconds: int = 300
    landing_timeout: timedelta = timedelta(hours=6)
    landing_completeness: str = "marker _SUCCESS"
    landing_source: str = "files"
    landing_continuous: bool = False
    # A scheduled run is queued when its day has ended (00:00 UTC): the chain is due by 04:00,
    # two hours before the landing sensor gives up on a missing export; the drift check, which
    # first waits for the month's last day to pass the chain, by 08:00, four hours before its
    # sensors would time out.
    daily_deadline: timedelta = timedelta(hours=4)
    monthly_deadline: timedelta = timedelta(hours=8)
    label_horizon_days: int = 7
    online_sync_pipeline_id: str | None = None
    model_name: str = "ecom_propensity"
    recommender_name: str = "ecom_recommender"
    mlflow_experiment: str = "/Shared/ecom/propensity"
    recommender_experiment: str = "/Shared/ecom/recommender"
    recommender_train_days: int = 28
    recommender_eval_days: int = 7
    exclude_purchased_days: int = 30
    train_days: int = 14
    validation_days: int = 7
    max_train_rows: int = 200_000
    # The margin is the smallest ROC AUC gain worth a model swap; noise is the interval's job:
    # the *low end* of the 95% paired per-user bootstrap interval of the gain must clear it.
    # On ~9k evaluation rows the paired difference has a standard error of about 0.0012 (one
    # model's AUC: 0.009), so a swap needs a point gain of about 0.002 + 2 x 0.0012 = 0.0045:
    # an A/A retrain (gain ~0) promotes in well under 5% of days, a retrain after a behaviour
    # change (0.821 -> 0.833) is promoted.
    promotion_margin: float = 0.002
    # Expected calibration error (10 bins) the challenger may lose against the reference. One
    # model's ECE moves by about 0.01 between bootstrap resamples of ~5k rows, and a model
    # trained before a behaviour change shows 0.16 against 0.02 after retraining: 0.02 refuses
    # such a loss yet does not turn sampling noise into a veto.
    promotion_calibration_tolerance: float = 0.02
    # 0.001 precision@10 on Databricks: with 100k evaluated users a precision@10 near 0.05 has a
    # standard error of about 0.0002, so the margin is several of them (a retrain does not swap
    # the champion for noise) yet small next to a real gain. Revisit with the real user count.
    recommender_promotion_margin: float = 0.001
    ground_truth_path: str | None = None
    reports_container: str = "reports"
    # Calibrated in docs/drift_calibration.md (python -m local.simulations.drift_calibration,
    # make run's volume): at a column threshold of 0.075 the noisiest stable month of the
    # selection seeds drifted 0 columns, a price shift checked in the month it starts drifted
    # 2..4, so 2 of 43 columns (0.0465 >= 0.046 > 1/43) with a margin of one column.
    drift_share: float = 0.046
    drift_min_rows: int = 5_000
    drift_max_rows: int = 100_000
    drift_cooldown: timedelta = timedelta(days=14)
    # Realised performance (docs/performance_monitoring.md). A model trained before a behaviour
    # change, scored on the drifted rows, kept its ranking (ROC AUC 0.821) but lost its
    # calibration (ECE 0.164); retrained on them: 0.833 and 0.017. So calibration is the signal.
    # Its bound, 0.05, is above what a calibrated model shows on one day's labelled rows from
    # sampling alone (10 bins, scores ~ Beta(1, 2.5), 2,000 simulated days per size: mean /
    # 99th percentile 0.029 / 0.048 on 1,000 rows, 0.020 / 0.035 on 2,000, 0.013 / 0.022 on
    # 5,000; above 0.05 on 0.6% of days at 1,000 rows, never from 2,000 on) and low enough to
    # catch the lasting under-prediction of a model retrained in the middle of a change (ECE
    # 0.05..0.06 for weeks in docs/behaviour_recovery.md; at the earlier bound, 0.08, the rule
    # never fired on it again and the served ECE stayed at 0.055). The AUC rule catches a model that
    # stopped ranking: one day's ROC AUC varies by 0.016 (sd) on 1,000 rows, so a drop of 0.05
    # below the version's validation ROC AUC is a real loss, not noise.
    performance_max_ece: float = 0.05
    performance_max_auc_drop: float = 0.05
    performance_min_rows: int = 5_000
    # A retraining shows in the figures only once the new champion's first scores have their
    # labels (label_horizon_days later): two weeks leave a week of its own figures before the
    # rule may retrain again. A newer champion is never judged on its predecessor's dates.
    performance_cooldown: timedelta = timedelta(days=14)
    # Four weekly maintenance runs of time travel: a month to investigate or restore a bad
    # write. Versions a registered model pins are kept however old (docs/cost.md).
    vacuum_retention: timedelta = timedelta(days=30)
    prices: PriceTable = AZURE_LIST_PRICES
    # Pipeline monitoring (docs/pipeline_monitoring.md). Two medians of 7 runs 1.3 apart: in
    # 10,000 simulated series a flat job with +-20% run-to-run noise was flagged in 0.2%, one
    # growing 5% a run in 82% (+-10% noise: 0% and 93%). The minimum growth keeps jobs of
    # seconds out of the list.
    job_runs_lookback: timedelta = timedelta(days=2)
    operations_report_days: int = 30
    duration_trend_runs: int = 7
    duration_trend_ratio: float = 1.3
    duration_trend_min_seconds: float = 60.0

    @property
    def first_training_days(self) -> int:
        """Days of data a first training needs before its as-of date.

        The training's earliest feature date must be mature (its 30-day window inside the data:
        29 days after the first day, ``clickstream.core.maturity``), and the training reaches
        back over its windows: the validation window ends a label horizon before the as-of
        date, the training window ends a horizon before the validation window starts
        (``Windows.history_needed`` of ``train_models``; a test keeps the two equal).
        """
        maturity = MATURITY_DAYS - 1
        return maturity + 2 * self.label_horizon_days + self.validation_days + self.train_days - 1

    @property
    def landing_dir(self) -> str:
        """Where the raw daily CSV files land: ``<landing_dir>/<YYYY-MM-DD>/*.csv[.gz]``."""
        return f"{self.volume_root}/landing/events"

    @property
    def checkpoints_dir(self) -> str:
        """Where streaming queries keep their checkpoints (a Volume of its own)."""
        return f"{self.volume_root}/checkpoints"

    @property
    def reports_dir(self) -> str:
        """Where jobs write HTML reports and JSON summaries."""
        return f"{self.volume_root}/reports"


# The Databricks Runtime of each environment's job clusters, one name per environment so an
# upgrade is a one-line change that dev takes first (render both with ``make payloads``).
# 17.3 LTS ships Apache Spark 4.0 (Scala 2.13 only), the Spark major the jobs are developed and
# tested on locally (pyspark 4.x); 16.4 LTS would run them on Spark 3.5.
DEV_RUNTIME_VERSION = "17.3.x-scala2.13"
PROD_RUNTIME_VERSION = "17.3.x-scala2.13"

# Branch names that are never a pinned release, whatever the repository's tags are.
MOVING_BRANCHES = frozenset({"main", "master", "develop", "development", "trunk", "head"})


def _databricks_cluster(*, spark_version: str, min_workers: int, max_workers: int) -> dict:
    return {
        "spark_version": spark_version,
        "node_type_id": "Standard_D4ds_v5",
        "autoscale": {"min_workers": min_workers, "max_workers": max_workers},
        "azure_attributes": {"availability": "SPOT_WITH_FALLBACK_AZURE", "first_on_demand": 1},
        "data_security_mode": "SINGLE_USER",
    }


def pinned_git_ref(name: str, ref: str) -> dict[str, str]:
    """The ``git_source`` key of ``ECOM_GIT_REF``: ``git_commit`` for a full commit id, else
    ``git_tag``; never ``git_branch``, so the job code of a run is the code that was reviewed.

    A name alone cannot tell a tag from a branch; a branch name sent as a tag fails the run on
    Databricks. The mistakes that can be seen here are refused at once, before any run: a
    ``refs/heads/...`` ref, a usual branch name (``main``, ``master``, ...) and an abbreviated
    commit (Databricks needs the full 40 characters). ``refs/tags/<tag>`` is the tag ``<tag>``.
    """
    fail = f"ECOM_ENV={name}: ECOM_GIT_REF={ref!r} is not a pinned tag or commit"
    if ref.startswith("refs/heads/") or ref.lower() in MOVING_BRANCHES:
        raise ValueError(f"{fail}: it names a moving branch; use a release tag or a commit id")
    if re.fullmatch(r"[0-9a-fA-F]{40}", ref):
        return {"git_commit": ref.lower()}
    if re.fullmatch(r"[0-9a-f]{7,39}", ref) and re.search(r"[a-f]", ref) and re.search(r"\d", ref):
        raise ValueError(f"{fail}: an abbreviated commit; use the full 40-character commit id")
    tag = ref.removeprefix("refs/tags/")
    if not tag or tag.startswith("refs/"):
        raise ValueError(f"{fail}: use a release tag (v1.4.0) or a full commit id")
    return {"git_tag": tag}


def _databricks_environment(name: str, catalog: str, cluster: dict) -> Environment:
    """A Databricks environment; deployment-specific values come from the environment.

    ``ECOM_GIT_URL`` and ``ECOM_GIT_REF`` (a tag or a full commit id, never a moving branch; see
    :func:`pinned_git_ref`) pin the job code; ``ECOM_GIT_PROVIDER`` (default ``gitHub``; e.g.
    ``azureDevOpsServices``, ``gitLab``) names its host. Optional: ``ECOM_CLUSTER_POLICY_ID``;
    ``ECOM_INSTANCE_POOL_ID`` (job clusters take their nodes from this pool, which then defines
    the node type and spot/on-demand availability) with ``ECOM_DRIVER_INSTANCE_POOL_ID`` (the
    driver's pool, default the same); ``ECOM_ONLINE_SYNC_PIPELINE_ID``; ``ECOM_COMPUTE``
    (``cluster``, the default, or ``serverless``: see ``Environment.compute``);
    ``ECOM_POLICY_LIBRARIES`` (``true``: the policy installs the job libraries, see
    ``Environment.policy_libraries``; needs ``ECOM_CLUSTER_POLICY_ID``).
    """
    missing = [v for v in ("ECOM_GIT_URL", "ECOM_GIT_REF") if not os.environ.get(v)]
    if missing:
        raise ValueError(f"ECOM_ENV={name} needs {' and '.join(missing)} set (the pinned job code)")
    git_ref = pinned_git_ref(name, os.environ["ECOM_GIT_REF"])
    git_provider = os.environ.get("ECOM_GIT_PROVIDER") or "gitHub"
    compute = os.environ.get("ECOM_COMPUTE") or "cluster"
    if compute not in COMPUTE_KINDS:
        raise ValueError(
            f"ECOM_ENV={name}: ECOM_COMPUTE={compute!r} is unknown; use one of {COMPUTE_KINDS}"
        )
    cluster = dict(cluster, custom_tags={"project": "ecom-ml", "env": name})
    policy_libraries = (os.environ.get("ECOM_POLICY_LIBRARIES") or "false").lower()
    if policy_libraries not in ("true", "false"):
        raise ValueError(
            f"ECOM_ENV={name}: ECOM_POLICY_LIBRARIES={policy_libraries!r}: use true or false"
        )
    if policy_libraries == "true" and not os.environ.get("ECOM_CLUSTER_POLICY_ID"):
        raise ValueError(
            f"ECOM_ENV={name}: ECOM_POLICY_LIBRARIES=true needs ECOM_CLUSTER_POLICY_ID, the "
            "policy that installs the job libraries (python -m deploy.cluster_policy)"
        )
    if os.environ.get("ECOM_CLUSTER_POLICY_ID"):
        cluster["policy_id"] = os.environ["ECOM_CLUSTER_POLICY_ID"]
    pool = os.environ.get("ECOM_INSTANCE_POOL_ID")
    driver_pool = os.environ.get("ECOM_DRIVER_INSTANCE_POOL_ID")
    if driver_pool and not pool:
        raise ValueError(
            f"ECOM_ENV={name}: ECOM_DRIVER_INSTANCE_POOL_ID needs ECOM_INSTANCE_POOL_ID too"
        )
    if pool:
        # The pool defines the node type and the availability (spot or on-demand): the API
        # refuses node_type_id next to instance_pool_id, and the Azure attributes are the pool's.
        for key in ("node_type_id", "driver_node_type_id", "azure_attributes"):
            cluster.pop(key, None)
        cluster["instance_pool_id"] = pool
        cluster["driver_instance_pool_id"] = driver_pool or pool
    return Environment(
        name=name,
        catalog=catalog,
        volume_root=f"/Volumes/{catalog}/raw",
        new_cluster=cluster,
        git_source={"git_url": os.environ["ECOM_GIT_URL"], "git_provider": git_provider, **git_ref},
        libraries=JOB_LIBRARIES,
        policy_libraries=policy_libraries == "true",
        compute=compute,
        online_sync_pipeline_id=os.environ.get("ECOM_ONLINE_SYNC_PIPELINE_ID") or None,
        landing_completeness=os.environ.get("ECOM_LANDING_COMPLETENESS") or "marker _SUCCESS",
        landing_source="autoloader",
        landing_continuous=os.environ.get("ECOM_LANDING_CONTINUOUS", "").lower() == "true",
        model_name=f"{catalog}.ml.propensity",
        recommender_name=f"{catalog}.ml.recommender",
    )


# The dev job cluster: what a local run is priced as (LOCAL.prices) and what dev runs on.
DEV_CLUSTER = _databricks_cluster(spark_version=DEV_RUNTIME_VERSION, min_workers=1, max_workers=2)

LOCAL = Environment(
    name="local",
    catalog="spark_catalog",
    volume_root="/Volumes/ecom/raw",
    new_cluster={"spark_version": "local-spark-4.2", "node_type_id": "local", "num_workers": 0},
    polling_period_seconds=3,
    # The local workspace runs a few jobs at a time and queues the rest: four in flight
    # keeps its queue short while every DAG still makes progress.
    databricks_pool_slots=4,
    sensor_poke_seconds=5,
    sensor_timeout=timedelta(hours=2),
    landing_poke_seconds=5,
    landing_timeout=timedelta(minutes=15),
    # Short enough for maintenance to vacuum something on a one-day local run; pinned
    # versions are kept whatever it is.
    vacuum_retention=timedelta(hours=1),
    # The generator writes a date's file whole, then nothing: ten quiet seconds close the date.
    landing_completeness="settle 10s",
    # make run's chain of a date takes 2 to 4 minutes, its drift check about 2; below the local
    # landing timeout, as in production.
    daily_deadline=timedelta(minutes=10),
    monthly_deadline=timedelta(minutes=30),
    # Shorter windows than production, so a few weeks of generated days can train a model.
    train_days=7,
    validation_days=3,
    recommender_train_days=14,
    recommender_eval_days=5,
    # Any strict gain promotes (a tie still keeps the champion), as the job's own default:
    # the small generated data evaluates few users, whose precision@10 moves in coarse steps.
    recommender_promotion_margin=0.0,
    ground_truth_path="/Volumes/ecom/raw/landing/ground_truth/users.csv",
    drift_min_rows=1_000,
    # A day of the generated data scores ~3,000 users; from 2,000 rows on a calibrated model's
    # daily ECE stays below performance_max_ece (99th percentile 0.035).
    performance_min_rows=2_000,
    drift_max_rows=50_000,
    prices=replace(
        AZURE_LIST_PRICES,
        priced_as={k: DEV_CLUSTER[k] for k in ("node_type_id", "autoscale")},
    ),
)

DATABRICKS_CLUSTERS = {
    "dev": ("ecom_dev", DEV_CLUSTER),
    "prod": (
        "ecom_prod",
        _databricks_cluster(spark_version=PROD_RUNTIME_VERSION, min_workers=2, max_workers=8),
    ),
}
ENVIRONMENT_NAMES = ("local", *DATABRICKS_CLUSTERS)


def current_environment() -> Environment:
    """The environment named by ``ECOM_ENV`` (default ``local``); unknown names fail loudly."""
    name = os.environ.get("ECOM_ENV", "local")
    if name == "local":
        return LOCAL
    if name in DATABRICKS_CLUSTERS:
        catalog, cluster = DATABRICKS_CLUSTERS[name]
        return _databricks_environment(name, catalog, cluster)
    raise ValueError(f"ECOM_ENV={name!r} is unknown; use one of {ENVIRONMENT_NAMES}")

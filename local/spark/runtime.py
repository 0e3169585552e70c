"""The local "Databricks Runtime": how a job script gets its SparkSession on this machine.

On Databricks the cluster hands every script a preconfigured session (Delta enabled, Unity
Catalog tables by name, Volumes mounted under ``/Volumes``). Locally this module plays that
part, for the warm driver, for cold one-process-per-run jobs and for the test suite alike:

* :func:`spark_conf` is the cluster's Spark configuration (Delta jars fetched at set-up time,
  never resolved over the network when a session starts);
* :func:`register_tables` makes Delta tables written by earlier sessions addressable by name
  again (the local catalog lives in memory, the data lives in the warehouse folder), and
  :func:`share_catalog` those other processes create while a job runs;
* :func:`job_environment` is the environment a job process sees, including
  ``LOCAL_VOLUMES_ROOT`` that maps ``/Volumes/...`` paths to a local folder.

Job scripts never import this module: they call ``SparkSession.builder.getOrCreate()`` exactly
as on Databricks, and get the session built here.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from local.spark.jvm_options import class_archive_options

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VOLUMES_ENV = "LOCAL_VOLUMES_ROOT"


@dataclass(frozen=True)
class LocalLayout:
    """Where the local platform keeps its state. ``state`` defaults to ``<project>/.local``."""

    root: Path = PROJECT_ROOT
    state: Path = PROJECT_ROOT / ".local"

    @classmethod
    def from_env(cls) -> LocalLayout:
        state = os.environ.get("ECOM_LOCAL_DIR")
        return cls(state=Path(state).resolve()) if state else cls()

    @property
    def jars_dir(self) -> Path:
        # Jars are installed once per checkout by `make setup`, whatever state folder is used.
        return Path(os.environ.get("ECOM_JARS_DIR", self.root / ".local" / "jars"))

    @property
    def warehouse_dir(self) -> Path:
        return self.state / "warehouse"

    @property
    def volumes_root(self) -> Path:
        return self.state / "volumes"

    @property
    def workspace_dir(self) -> Path:
        return self.state / "workspace"

    @property
    def spark_jobs_dir(self) -> Path:
        return self.root / "spark_jobs"

    @property
    def job_dirs(self) -> tuple[Path, ...]:
        """The folders whose scripts a run may start: what is shipped to Databricks, and the
        local-only jobs (smoke and fault jobs, the summary of ``make run``)."""
        return (self.spark_jobs_dir, self.root / "local" / "jobs")


def delta_jars(layout: LocalLayout) -> list[str]:
    jars = sorted(str(p) for p in layout.jars_dir.glob("*.jar"))
    if not any("delta-spark" in Path(j).name for j in jars):
        raise RuntimeError(
            f"Delta Lake jars not found in {layout.jars_dir}; run `make setup` to fetch them"
        )
    return jars


def _extra_conf(text: str) -> dict[str, str]:
    """``LOCAL_SPARK_CONF``: extra ``key=value`` Spark settings, separated by spaces."""
    extra = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark.") or not value:
            raise ValueError(
                f"LOCAL_SPARK_CONF: {item!r} is not a spark.<key>=<value> setting "
                "(settings are separated by spaces)"
            )
        extra[key] = value
    return extra


def spark_conf(layout: LocalLayout) -> dict[str, str]:
    """Spark configuration of the local single-node "cluster"."""
    conf = {
        "spark.master": os.environ.get("LOCAL_SPARK_MASTER", "local[2]"),
        "spark.app.name": "ecom-local-cluster",
        "spark.jars": ",".join(delta_jars(layout)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.warehouse.dir": str(layout.warehouse_dir),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": os.environ.get("LOCAL_SPARK_DRIVER_MEMORY", "3g"),
        "spark.driver.maxResultSize": os.environ.get("LOCAL_SPARK_MAX_RESULT_SIZE", "1g"),
        # Sized for days of click-stream on two cores; Databricks' AQE sizes them on clusters.
        "spark.sql.shuffle.partitions": os.environ.get("LOCAL_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.sql.adaptive.enabled": "true",
        # VACUUM lists a table's folders in this many tasks (default 10,000: a minute of empty
        # tasks per table on two cores, where a cluster spreads them over its executors).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.ui.enabled": os.environ.get("LOCAL_SPARK_UI", "false"),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": " ".join(
            [
                f"-Dderby.system.home={layout.state / 'derby'}",
                class_archive_options(),
                os.environ.get("LOCAL_SPARK_JAVA_OPTIONS", ""),
            ]  # extra JVM options for the local driver
        ).strip(),
    }
    conf.update(_extra_conf(os.environ.get("LOCAL_SPARK_CONF", "")))
    if conf["spark.master"].startswith("local-cluster"):
        # Separate executor JVMs (Spark's own test mode), e.g. to measure the driver alone.
        conf["spark.executor.memory"] = os.environ.get("LOCAL_SPARK_EXECUTOR_MEMORY", "2g")
    event_log_dir = os.environ.get("LOCAL_SPARK_EVENT_LOG_DIR")
    if event_log_dir:
        Path(event_log_dir).mkdir(parents=True, exist_ok=True)
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = event_log_dir
    return conf


def build_session(layout: LocalLayout):
    """Start (or return) the process's SparkSession with the local cluster configuration."""
    from pyspark.sql import SparkSession

    layout.warehouse_dir.mkdir(parents=True, exist_ok=True)
    # Python workers (UDFs, MLflow's spark_udf) must use this interpreter and its packages,
    # whatever `python3` comes first on PATH; SparkContext reads it from the environment.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in spark_conf(layout).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    share_catalog()
    register_tables(spark, layout.warehouse_dir)
    return spark


def _committed(table_dir: Path) -> bool:
    """A Delta table with at least one commit (not one another process is still creating)."""
    log = table_dir / "_delta_log"
    return any(log.glob("*.json")) or any(log.glob("*.checkpoint*.parquet"))


def _register(spark, table_dir: Path) -> str:
    schema = table_dir.parent.name.removesuffix(".db")
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{schema}`")
    if not _original_table_exists(spark.catalog, f"{schema}.{table_dir.name}"):
        location = str(table_dir).replace("'", "\\'")
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS `{schema}`.`{table_dir.name}` USING DELTA "
            f"LOCATION '{location}'"
        )
    return f"{schema}.{table_dir.name}"


def register_tables(spark, warehouse_dir: Path) -> list[str]:
    """Register every Delta table under ``<warehouse>/<schema>.db/<table>`` in the catalog.

    Idempotent and cheap (a directory listing); run before every job so a table created by
    another process is visible by name, as it would be in Unity Catalog. A table another
    process is creating at this moment (no commit yet) is left for :func:`share_catalog` to
    find once it exists. Returns the names.
    """
    return [
        _register(spark, log_dir.parent)
        for log_dir in sorted(Path(warehouse_dir).glob("*.db/*/_delta_log"))
        if _committed(log_dir.parent)
    ]


def _original_table_exists(catalog, name: str, db_name: str | None = None) -> bool:
    from pyspark.sql.catalog import Catalog

    method = Catalog.tableExists
    return getattr(method, "__wrapped__", method)(catalog, name, db_name)


def _warehouse_table_dir(spark, name: str, db_name: str | None) -> Path | None:
    """Where the managed table ``name`` of ``spark_catalog`` lives in the warehouse, if any."""
    parts = [p.strip("`") for p in name.split(".")]
    if db_name is not None:
        parts = [db_name, *parts]
    if len(parts) == 3 and parts[0] == "spark_catalog":
        parts = parts[1:]
    if len(parts) != 2 or not all(parts):
        return None
    warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
    return Path(warehouse) / f"{parts[0]}.db" / parts[1]


def share_catalog() -> None:
    """Let ``spark.catalog.tableExists`` find a table another process created after this
    session registered the warehouse, as every cluster sees every table in Unity Catalog.

    The local catalog lives in each driver's memory and :func:`register_tables` fills it
    before a run; a table another driver creates *during* the run (two dates of a new table
    backfilled at once) would otherwise stay invisible by name to this one, and its job,
    having lost the race to create the table, could never write to it.
    """
    from pyspark.sql.catalog import Catalog

    if hasattr(Catalog.tableExists, "__wrapped__"):
        return
    original = Catalog.tableExists

    @functools.wraps(original)
    def table_exists(self, tableName: str, dbName: str | None = None) -> bool:
        if original(self, tableName, dbName):
            return True
        table_dir = _warehouse_table_dir(self._sparkSession, tableName, dbName)
        if table_dir is None or not _committed(table_dir):
            return False
        _register(self._sparkSession, table_dir)
        return original(self, tableName, dbName)

    Catalog.tableExists = table_exists


def job_environment(layout: LocalLayout, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a job process: the volumes mapping and a quiet, reproducible Python."""
    env = dict(os.environ if base is None else base)
    layout.volumes_root.mkdir(parents=True, exist_ok=True)
    env[VOLUMES_ENV] = str(layout.volumes_root)
    env["ECOM_LOCAL_DIR"] = str(layout.state)
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env

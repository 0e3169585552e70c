"""Benchmark 4: distributed scoring versus driver-side scoring.

The same logistic-regression pipeline, registered in a throw-away MLflow (SQLite), scores N
users of random features, N = 0.1M, 1M and 4M (``--scoring-users`` to change):

* **distributed**: ``clickstream.models.propensity.serving.score`` (the serving job's code path:
  broadcast model, ``mapInPandas``), forced to run by a ``noop`` write, so nothing reaches the
  driver;
* **spark_udf** (before): the same, through ``mlflow.pyfunc.spark_udf``, which the serving job
  used first; kept side by side as the before/after of that change;
* **driver**: ``toPandas()`` of the same DataFrame, then ``predict_proba`` on the driver, the
  way a naive batch job scores.

Reported side by side: rows per second, and the peak growth of the driver's memory (Python
process RSS plus the driver JVM's, sampled every 50 ms) during each. The executors run in a JVM
of their own (Spark's ``local-cluster`` mode), as on a cluster; in ``local[*]`` mode they would
share the driver's JVM and their work would count as driver memory. Target: distributed faster at 1M
users, and its driver memory flat as users grow.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Comparison, Figure, local_session

SIZES = (100_000, 1_000_000, 4_000_000)
# "Flat" driver memory: the distributed path's peak growth stays under this at every size (the
# driver only plans the job and receives no rows; toPandas grows by about 3 GB per 1M users).
FLAT_MB = 256
FLAT = f"driver memory flat (<= +{FLAT_MB} MB at every size)"
TARGETS = {1_000_000: "> 1x at 1M"}
MASTER = "local-cluster[1,2,6144]"  # one worker, 2 cores, executor JVM apart from the driver


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class PeakMemory:
    """Peak RSS growth (MB) of the given processes while the ``with`` block runs."""

    def __init__(self, pids: list[int]):
        self.pids, self.peak, self._stop = pids, 0.0, threading.Event()

    def __enter__(self):
        self.base = _rss_mb(self.pids)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb(self.pids) - self.base)
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb(self.pids) - self.base)


def _model_uri(root: Path) -> str:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd

    from clickstream.core.contracts import FEATURE_COLUMNS
    from clickstream.models.propensity.candidates import SKOPS_TRUSTED_TYPES, candidates

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.create_experiment("bench", artifact_location=str(root / "artifacts"))
    mlflow.set_experiment("bench")
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((2000, len(FEATURE_COLUMNS))), columns=list(FEATURE_COLUMNS))
    y = (rng.random(2000) < x["views_30d"]).astype(int)
    pipeline = candidates()["logistic_regression"].fit(x, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    return info.model_uri


def _spark_udf_score(spark, users, model_uri: str):
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from clickstream.core.contracts import FEATURE_COLUMNS

    predict = mlflow.pyfunc.spark_udf(
        spark, model_uri, result_type="array<double>", env_manager="local"
    )
    inputs = [F.col(c).cast("double").alias(c) for c in FEATURE_COLUMNS]
    return users.withColumn("score", predict(F.struct(*inputs))[1])


def _score_users(
    spark, n: int, repeats: int, uri: str, model, driver: list[int]
) -> tuple[Figure, Figure, Figure, dict[str, float]]:
    """``repeats`` rounds of the three ways of scoring ``n`` random users: their rows per second,
    and the peak growth of the driver's memory while scoring distributed and on the driver."""
    from pyspark.sql import functions as F

    from clickstream.core.contracts import FEATURE_COLUMNS
    from clickstream.models.propensity.data import features_frame
    from clickstream.models.propensity.serving import score

    # Partitions of at most 250k users, as a table's files would split them: each
    # task's result stays small enough for an executor to hand to toPandas.
    users = spark.range(0, n, 1, max(2, n // 250_000)).select(
        F.col("id").alias("user_id"),
        *(F.rand(seed=i).alias(c) for i, c in enumerate(FEATURE_COLUMNS)),
    )
    distributed = Figure(f"distributed scoring, {n:,} users", "rows/s")
    udf = Figure(f"spark_udf scoring (before), {n:,} users", "rows/s")
    on_driver = Figure(f"driver toPandas scoring, {n:,} users", "rows/s")
    memory = {"distributed": 0.0, "driver": 0.0}
    for _ in range(repeats):
        with PeakMemory(driver) as peak:
            started = time.perf_counter()
            score(spark, users, uri).write.format("noop").mode("overwrite").save()
            distributed.samples.append(n / (time.perf_counter() - started))
        memory["distributed"] = max(memory["distributed"], peak.peak)
        started = time.perf_counter()
        _spark_udf_score(spark, users, uri).write.format("noop").mode("overwrite").save()
        udf.samples.append(n / (time.perf_counter() - started))
        with PeakMemory(driver) as peak:
            started = time.perf_counter()
            frame = users.toPandas()
            model.predict_proba(features_frame(frame))
            on_driver.samples.append(n / (time.perf_counter() - started))
            del frame
        memory["driver"] = max(memory["driver"], peak.peak)
    return distributed, udf, on_driver, memory


def _comparisons(
    n: int,
    largest: bool,
    peaks: list[float],
    figures: tuple[Figure, Figure, Figure],
    memory: dict[str, float],
) -> list[Comparison]:
    """Distributed / driver-side at ``n`` users against its target (at the ``largest`` size:
    the driver memory flat over every size's ``peaks``), and mapInPandas / spark_udf."""
    distributed, udf, on_driver = figures
    comparison = Comparison(
        benchmark="4. scoring",
        description=f"distributed / driver-side rows per second, {n:,} users",
        numerator=distributed,
        denominator=on_driver,
        target=TARGETS.get(n, FLAT if largest else "-"),
        notes=f"driver memory peak: distributed +{memory['distributed']:.0f} MB, "
        f"toPandas +{memory['driver']:.0f} MB",
    )
    comparison.meets_target = (
        comparison.ratio > 1 if n == 1_000_000 else (max(peaks) <= FLAT_MB if largest else None)
    )
    before_after = Comparison(
        benchmark="4. scoring (before/after)",
        description=f"mapInPandas / spark_udf rows per second, {n:,} users",
        numerator=distributed,
        denominator=udf,
        target="-",
    )
    return [comparison, before_after]


def run(repeats: int = 1, sizes: tuple[int, ...] = SIZES) -> tuple[list, list]:
    # The executors in JVMs of their own (Spark's local-cluster mode), as on a real cluster: in
    # local[*] mode they share the driver's JVM, whose memory would then count their work too.
    os.environ.setdefault("LOCAL_SPARK_MASTER", MASTER)
    os.environ.setdefault("LOCAL_SPARK_EXECUTOR_MEMORY", "4g")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        root = Path(tmp)
        spark = local_session(root / "state")
        jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
        driver = [os.getpid(), jvm_pid]
        uri = _model_uri(root)
        import mlflow.sklearn

        model = mlflow.sklearn.load_model(uri)
        comparisons, figures, peaks = [], [], []
        try:
            for n in sizes:
                distributed, udf, on_driver, memory = _score_users(
                    spark, n, repeats, uri, model, driver
                )
                print(
                    f"  {n:,} users: distributed {distributed.cell()}, peak +"
                    f"{memory['distributed']:.0f} MB; driver {on_driver.cell()}, peak +"
                    f"{memory['driver']:.0f} MB",
                    flush=True,
                )
                peaks.append(memory["distributed"])
                figures_n = (distributed, udf, on_driver)
                comparisons += _comparisons(n, n == max(sizes), peaks, figures_n, memory)
                figures += figures_n
        finally:
            spark.stop()
    return comparisons, figures

"""The landing folder as a stream: every landing file lands in bronze exactly once.

``ingest_events.py`` (with ``--checkpoint``) reads ``<landing>/<YYYY-MM-DD>/*.csv[.gz]`` with
Structured Streaming: the Spark file source locally (``--source files``), Auto Loader on
Databricks (``--source autoloader``: ``cloudFiles`` with the ``text`` format, whose schema,
one ``value`` string, is given, never inferred). The checkpoint (a Volume folder) remembers the
files already read; a trigger reads the files that arrived since, of any date: a date's late
parts land with that date, once.

Each micro-batch keeps the contracts of the batch ingest (:mod:`clickstream.pipeline.ingest`):
the same parsing and quarantine reasons (:mod:`clickstream.pipeline.landing`), typed rows to
``bronze.events``, bad lines to ``bronze.events_quarantine``; then the rows of each file are
counted back from the tables (rows in = bronze + quarantined, per file and reason); only then
is each file recorded in ``bronze.events_ingest_files`` and the ingest log of its date
refreshed. A batch

* skips the files that ``bronze.events_ingest_files`` already records at the same size and
  modification time (ingested by the batch path: the history load, or a date re-ingested);
* appends with Delta's idempotent writes (``txnAppId`` = the checkpoint's query id,
  ``txnVersion`` = the batch id): a batch replayed after a crash, which Spark replays with the
  same files, skips the appends that were committed before the crash and does the rest.

``--trigger available-now`` (the daily DAG) reads what is there and stops;
``--trigger "every 1 minute"`` runs until stopped, for fresher bronze (docs/streaming.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core.contracts import BRONZE_EVENTS, BRONZE_QUARANTINE
from clickstream.core.volumes import local_path
from clickstream.pipeline.ingest import (
    BRONZE_INGEST_FILES,
    append_idempotent,
    bronze_rows,
    count_by_file,
    dates_predicate,
    file_log_frame,
    file_records,
    landed_by_file,
    quarantine_rows,
    reconcile,
    recorded_files,
    refresh_ingest_log,
    unrecorded_dates,
)
from clickstream.pipeline.landing import (
    IngestError,
    Log,
    dated_lines,
    log_mismatched_headers,
    parse_lines,
)

SOURCES = ("files", "autoloader")
DATE_FOLDERS = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
FILES = "*.{csv,csv.gz}"
APP_PREFIX = "ingest_events"
_EVERY = re.compile(r"^every (\d+) (second|minute|hour)s?$")


@dataclass(frozen=True)
class StreamResult:
    """What a stream run did: its micro-batches, the files it landed, per date touched."""

    batches: int
    files: dict[str, list[str]]  # ds -> source files landed by this run


def trigger_options(trigger: str) -> dict[str, Any]:
    """``available-now`` or ``every <n> second(s)|minute(s)|hour(s)`` -> ``trigger(**options)``."""
    if trigger == "available-now":
        return {"availableNow": True}
    match = _EVERY.match(trigger)
    if not match:
        raise ValueError(
            f"--trigger {trigger!r}: use 'available-now' or 'every <n> seconds|minutes|hours'"
        )
    return {"processingTime": f"{match[1]} {match[2]}s"}


def landing_stream(spark: SparkSession, landing_dir: str, source: str) -> DataFrame:
    """The lines of the landing files as a stream: ``value``, ``file_path``, ``file_size``,
    ``modified_ms``."""
    if source not in SOURCES:
        raise ValueError(f"--source {source!r} is unknown; use one of {SOURCES}")
    root = local_path(landing_dir.rstrip("/"))
    if source == "autoloader":
        reader = (
            spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", "text")
            .option("cloudFiles.includeExistingFiles", "true")
            .schema("value STRING")
        )
    else:
        # The file source forgets a file older than maxFileAge relative to the newest one it
        # saw (7 days by default): a late part of an old date would then never be read.
        reader = spark.readStream.format("text").option("maxFileAge", "3650d")
    return (
        reader.option("pathGlobFilter", FILES)
        .load(f"{root}/{DATE_FOLDERS}")
        .select(
            "value",
            F.col("_metadata.file_path").alias("file_path"),
            F.col("_metadata.file_size").alias("file_size"),
            F.unix_millis("_metadata.file_modification_time").alias("modified_ms"),
        )
    )


def _local(file_path: str) -> str:
    """A path of the stream (``file:/...``, ``dbfs:/Volumes/...``) as this driver opens it."""
    return urlparse(file_path).path if "://" in file_path or ":/" in file_path else file_path


def _query_id(checkpoint: str) -> str:
    """The id Spark keeps in the checkpoint (``metadata``): the same for every restart of the
    query, new for a new checkpoint (whose batch ids start again at 0)."""
    with open(os.path.join(local_path(checkpoint), "metadata")) as handle:
        return json.load(handle)["id"]


class _Batches:
    """The ``foreachBatch`` function of one stream run."""

    def __init__(self, spark, *, catalog, landing_dir, checkpoint, schema, log: Log):
        self.spark, self.catalog, self.schema, self.log = spark, catalog, schema, log
        self.folder = landing_dir.rstrip("/")
        self.checkpoint = checkpoint
        self.batches = 0
        self.landed: dict[str, list[str]] = {}
        self.error: BaseException | None = None

    def logical(self, file_path: str) -> tuple[str, str]:
        """(ds, ``<landing>/<ds>/<name>``) of a file of the stream."""
        ds, name = file_path.rstrip("/").split("/")[-2:]
        return ds, f"{self.folder}/{ds}/{name}"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self.process(batch, batch_id)
        except BaseException as error:  # kept: the stream reports it wrapped in a Java trace
            self.error = error
            raise

    def process(self, batch: DataFrame, batch_id: int) -> None:
        self.batches += 1
        metadata = batch.select("file_path", "file_size", "modified_ms").distinct().collect()
        if not metadata:
            return
        # Only the records of the batch's dates: the file log grows by every file ever landed.
        seen_days = sorted({self.logical(row["file_path"])[0] for row in metadata})
        predicate = dates_predicate(seen_days)
        known = recorded_files(self.spark, self.catalog, self.schema, predicate)
        legacy = unrecorded_dates(self.spark, self.catalog, self.schema, seen_days)
        new: dict[str, tuple[str, int, int]] = {}
        paths: dict[str, str] = {}
        for row in metadata:
            ds, name = self.logical(row["file_path"])
            stats = (int(row["file_size"]), int(row["modified_ms"]))
            if known.get(name) == stats:
                self.log(f"batch {batch_id}: {name} is already in bronze; skipped")
                continue
            if ds in legacy:
                self.log(
                    f"batch {batch_id}: {name}: {ds} was ingested before files were recorded; "
                    "skipped (clear ingest_events of the date to re-ingest it)"
                )
                continue
            new[name] = (ds, *stats)
            paths[name] = row["file_path"]
        if not new:
            return
        days = sorted({ds for ds, _, _ in new.values()})
        self.log(f"batch {batch_id}: {len(new)} new file(s) of {', '.join(days)}")
        mismatched = [
            f"{ds}/{name}"
            for ds in days
            for name in log_mismatched_headers(
                [_local(paths[n]) for n, (d, _, _) in new.items() if d == ds],
                f"{self.folder}/{ds}",
                self.log,
            )
        ]
        lines = dated_lines(
            batch.where(F.col("file_path").isin(*paths.values())), self.folder, mismatched
        )
        parsed = parse_lines(lines).persist()
        app_id = f"{APP_PREFIX}/{_query_id(self.checkpoint)}"
        write = {"app_id": app_id, "version": batch_id}
        try:
            expected = count_by_file(parsed)
            bronze = append_idempotent(
                self.spark, bronze_rows(parsed), BRONZE_EVENTS, self.catalog, self.schema, **write
            )
            quarantine = append_idempotent(
                self.spark,
                quarantine_rows(parsed),
                BRONZE_QUARANTINE,
                self.catalog,
                self.schema,
                **write,
            )
        finally:
            parsed.unpersist()
        predicate = dates_predicate(days)
        reconcile(expected, landed_by_file(self.spark, bronze, quarantine, predicate, list(new)))
        records = file_records(expected, new)
        append_idempotent(
            self.spark,
            file_log_frame(self.spark, records, f"stream {app_id} batch {batch_id}"),
            BRONZE_INGEST_FILES,
            self.catalog,
            self.schema,
            **write,
        )
        refresh_ingest_log(self.spark, self.catalog, self.schema, days)
        for record in records:
            self.landed.setdefault(record["ingest_date"], []).append(record["source_file"])
            self.log(
                f"batch {batch_id}: {record['source_file']}: {record['rows_in']} rows in, "
                f"{record['bronze']} bronze, {record['quarantined']} quarantined"
            )


def run_stream(
    spark: SparkSession,
    *,
    catalog: str,
    landing_dir: str,
    checkpoint: str,
    schema: str = "bronze",
    source: str = "files",
    trigger: str = "available-now",
    log: Log = print,
) -> StreamResult:
    """Ingest the landing files the checkpoint has not seen; with ``available-now``, return
    once they are in bronze (a processing-time trigger returns only when the query stops)."""
    options = trigger_options(trigger)
    batches = _Batches(
        spark,
        catalog=catalog,
        landing_dir=landing_dir,
        checkpoint=checkpoint,
        schema=schema,
        log=log,
    )
    query = (
        landing_stream(spark, landing_dir, source)
        .writeStream.queryName(f"{APP_PREFIX}_{schema}")
        .foreachBatch(batches)
        .option("checkpointLocation", local_path(checkpoint))
        .trigger(**options)
        .start()
    )
    try:
        query.awaitTermination()
    except Exception as error:
        if isinstance(batches.error, (IngestError, ValueError)):
            raise batches.error from None
        if "Multiple streaming queries are concurrently using" in str(error) or (
            "Concurrent update to the log" in str(error)
        ):
            raise IngestError(
                f"another ingest is running on the checkpoint {checkpoint}; one at a time "
                "(the DAG runs ingest_events one date at a time): retry once it has finished"
            ) from None
        raise
    return StreamResult(batches=batches.batches, files=batches.landed)

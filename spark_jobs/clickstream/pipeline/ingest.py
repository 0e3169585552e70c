"""Raw CSV of one logical date -> ``<catalog>.bronze.events`` + ``bronze.events_quarantine``.

The day's files are read and each line is checked by :mod:`clickstream.pipeline.landing`
(which files are read, header lines, the quarantine reasons and their order): a good line lands
in bronze (typed columns plus the raw line), any other line in the quarantine with the first
reason it fails.

Bronze is source-aligned: duplicated events are kept here (a file delivered twice, or an event
repeated by the tracker) and removed in silver, where the dedup rule lives.

Every run replaces the ``ingest_date = ds`` partition of both tables (Delta ``replaceWhere``), so
a rerun leaves them exactly as one run would; ``ingested_at`` comes from the logical date (or the
run's ``--ingest-ts``), never from the wall clock, for the same reason.

Once rows in = bronze + quarantined is verified, the run replaces the row of ``ds`` in
``bronze.events_ingest_log`` (files read, rows in, bronze, quarantined, lines per reason): the
record that the date *was* ingested. It tells an empty day (header-only or 0-byte files: 0 rows,
which the data-quality job reports as a failed blocking row-count expectation) from a date that
was never ingested (which the data-quality job refuses to validate).

Per file, ``bronze.events_ingest_files`` records what each landing file delivered (its size and
modification time, rows in, bronze, quarantined by reason): the commit record of a file. The
ingest log of a date is the sum of its files' rows, so the batch path here and the stream
(:mod:`clickstream.pipeline.stream`, which adds a date's late files once each) keep one account.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time, timedelta
from typing import TypedDict

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.core import contracts
from clickstream.core.contracts import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    Contract,
    check_frame,
    ensure_table,
    retry_on_conflict,
    table_version,
    write_partition,
)
from clickstream.core.schema import date_range, parse_ds
from clickstream.pipeline.landing import (
    IngestError,
    Log,
    landing_files,
    parse_lines,
    read_landing,
    utc_text,
)

BRONZE_INGEST_LOG = Contract(
    schema="bronze",
    table="events_ingest_log",
    comment="one row per ingest_date: what its last successful ingest read and landed",
    columns=(
        contracts.Column("ingest_date", "date", False, "logical date ingested"),
        contracts.Column("files", "int", False, "CSV files read"),
        contracts.Column("rows_in", "bigint", False, "lines read, recognised headers excluded"),
        contracts.Column("bronze", "bigint", False, "rows landed in bronze.events"),
        contracts.Column("quarantined", "bigint", False, "lines in bronze.events_quarantine"),
        contracts.Column("reasons", "string", False, "JSON object: quarantine reason -> lines"),
        contracts.Column("ingested_at", "timestamp", False),
        contracts.Column(
            "bronze_fingerprint",
            "string",
            True,
            "sum of xxhash64(raw_record, source_file) over the date's bronze rows as committed",
            additive=True,
        ),
    ),
)

# What the fingerprint of a date's bronze rows covers: the line as delivered and its file, from
# which every typed column is parsed. A sum, so duplicated lines count (bronze keeps them), and
# independent of file layout (OPTIMIZE, Z-order leave it unchanged).
FINGERPRINT_COLUMNS = ("raw_record", "source_file")
EMPTY_FINGERPRINT = "0"


BRONZE_INGEST_FILES = Contract(
    schema="bronze",
    table="events_ingest_files",
    comment="one row per landing file in bronze: what it delivered, reconciled when it landed",
    columns=(
        contracts.Column("ingest_date", "date", False, "logical date (the file's date folder)"),
        contracts.Column("source_file", "string", False, "<landing>/<ds>/<name>, as in bronze"),
        contracts.Column("file_size", "bigint", False, "bytes, when it was ingested"),
        contracts.Column("modified_at", "timestamp", False, "its modification time then"),
        contracts.Column("rows_in", "bigint", False, "lines read, recognised headers excluded"),
        contracts.Column("bronze", "bigint", False, "its rows in bronze.events"),
        contracts.Column("quarantined", "bigint", False, "its lines in the quarantine"),
        contracts.Column("reasons", "string", False, "JSON object: quarantine reason -> lines"),
        contracts.Column("batch", "string", False, "stream micro-batch or 'date <ds>' (batch)"),
        contracts.Column("ingested_at", "timestamp", False),
    ),
    partitioned_by=("ingest_date",),
)


class FileRecord(TypedDict):
    """What one landing file delivered: its row of ``bronze.events_ingest_files``."""

    ingest_date: str
    source_file: str
    file_size: int
    modified_ms: int
    rows_in: int
    bronze: int
    quarantined: int
    reasons: dict[str, int]


class IngestCounts(TypedDict):
    files: int
    rows_in: int
    bronze: int
    quarantined: int
    reasons: dict[str, int]


def default_ingested_at(ds: str) -> datetime:
    """End of the logical day (UTC): when its data is complete, the same on every rerun."""
    day = date.fromisoformat(parse_ds(ds)) + timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=UTC)


def bronze_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reason").isNull()).select(*BRONZE_EVENTS.names)


def quarantine_rows(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reason").isNotNull()).select(
        F.make_valid_utf8("raw_record").alias("raw_record"),
        F.col("raw_record").cast("binary").alias("raw_bytes"),
        "source_file",
        "reason",
        "ingested_at",
        "ingest_date",
    )


def file_stats(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ms) of a landing file readable here."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns // 1_000_000


def count_by_file(parsed: DataFrame) -> dict[str, dict[str | None, int]]:
    """source_file -> {reason (None: landed in bronze) -> lines} of parsed lines."""
    found: dict[str, dict[str | None, int]] = {}
    for row in parsed.groupBy("source_file", "reason").count().collect():
        found.setdefault(row["source_file"], {})[row["reason"]] = int(row["count"])
    return found


def landed_by_file(
    spark: SparkSession, bronze: str, quarantine: str, predicate: str, files: list[str]
) -> dict[str, dict[str | None, int]]:
    """:func:`count_by_file` of the rows of ``files`` as the tables hold them (``predicate``
    limits the scan to their dates)."""
    found: dict[str, dict[str | None, int]] = {}
    in_files = F.col("source_file").isin(*files)
    for row in (
        spark.table(bronze)
        .where(predicate)
        .where(in_files)
        .groupBy("source_file")
        .count()
        .collect()
    ):
        found.setdefault(row["source_file"], {})[None] = int(row["count"])
    for row in (
        spark.table(quarantine)
        .where(predicate)
        .where(in_files)
        .groupBy("source_file", "reason")
        .count()
        .collect()
    ):
        found.setdefault(row["source_file"], {})[row["reason"]] = int(row["count"])
    return found


def _nonzero(counts: dict[str | None, int]) -> dict[str | None, int]:
    return {k: v for k, v in counts.items() if v}


def reconcile(
    expected: dict[str, dict[str | None, int]], landed: dict[str, dict[str | None, int]]
) -> None:
    """Fail unless every file's lines are in the tables exactly as parsed (nothing lost, none
    twice): per file, rows in = bronze + quarantined, and each reason's count."""
    wrong = [
        f"{name}: {sum(want.values())} rows in, "
        f"{landed.get(name, {}).get(None, 0)} bronze + "
        f"{sum(n for r, n in landed.get(name, {}).items() if r is not None)} quarantined"
        for name, want in sorted(expected.items())
        if _nonzero(landed.get(name, {})) != _nonzero(want)
    ]
    if wrong:
        raise IngestError(f"rows lost or landed twice for {'; '.join(wrong[:5])}")


def file_records(
    counts: dict[str, dict[str | None, int]], files: dict[str, tuple[str, int, int]]
) -> list[FileRecord]:
    """The records of ``files`` (source_file -> (ds, size, modified ms)); a file without lines
    (0 bytes, or a header only) delivered 0 rows."""
    records = []
    for name, (ds, size, modified_ms) in sorted(files.items()):
        by_reason = counts.get(name, {})
        reasons = dict(sorted((r, n) for r, n in by_reason.items() if r is not None))
        records.append(
            FileRecord(
                ingest_date=ds,
                source_file=name,
                file_size=size,
                modified_ms=modified_ms,
                rows_in=sum(by_reason.values()),
                bronze=by_reason.get(None, 0),
                quarantined=sum(reasons.values()),
                reasons=reasons,
            )
        )
    return records


def file_log_frame(
    spark: SparkSession,
    records: list[FileRecord],
    batch: str,
    stamps: dict[str, datetime] | None = None,
) -> DataFrame:
    """The ``bronze.events_ingest_files`` rows of ``records``, ingested at ``stamps`` of their
    date (default: the end of it)."""
    stamps = stamps or {}
    rows = [
        (
            date.fromisoformat(r["ingest_date"]),
            r["source_file"],
            r["file_size"],
            r["modified_ms"],
            r["rows_in"],
            r["bronze"],
            r["quarantined"],
            json.dumps(r["reasons"], sort_keys=True),
            batch,
            utc_text(stamps.get(r["ingest_date"]) or default_ingested_at(r["ingest_date"])),
        )
        for r in records
    ]
    frame = spark.createDataFrame(
        rows,
        "ingest_date date, source_file string, file_size bigint, modified_ms bigint, "
        "rows_in bigint, bronze bigint, quarantined bigint, reasons string, batch string, "
        "ingested_at string",
    )
    return frame.select(
        "ingest_date",
        "source_file",
        "file_size",
        F.timestamp_millis("modified_ms").alias("modified_at"),
        "rows_in",
        "bronze",
        "quarantined",
        "reasons",
        "batch",
        F.col("ingested_at").cast("timestamp").alias("ingested_at"),
    )


def recorded_files(
    spark: SparkSession, catalog: str, schema: str, predicate: str | None = None
) -> dict[str, tuple[int, int]]:
    """source_file -> (size, modified ms) of the files ``bronze.events_ingest_files`` records."""
    name = ensure_table(spark, BRONZE_INGEST_FILES, catalog, schema)
    table = spark.table(name)
    if predicate:
        table = table.where(predicate)
    return {
        r["source_file"]: (int(r["file_size"]), int(r["modified_ms"]))
        for r in table.select(
            "source_file", "file_size", F.unix_millis("modified_at").alias("modified_ms")
        ).collect()
    }


def append_idempotent(
    spark: SparkSession,
    df: DataFrame,
    contract: Contract,
    catalog: str,
    schema: str,
    *,
    app_id: str,
    version: int,
) -> str:
    """Append ``df`` once per (``app_id``, ``version``): Delta skips a write whose transaction
    version it already committed for the app (``txnAppId``/``txnVersion``), so a micro-batch
    replayed after a crash does not land twice."""
    checked = check_frame(df, contract)
    name = ensure_table(spark, contract, catalog, schema)
    retry_on_conflict(
        lambda: (
            checked.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", version)
            .saveAsTable(name)
        )
    )
    return name


def refresh_ingest_log(
    spark: SparkSession,
    catalog: str,
    schema: str,
    days: list[str],
    stamps: dict[str, datetime] | None = None,
) -> dict[str, IngestCounts]:
    """Rewrite the ``bronze.events_ingest_log`` rows of ``days`` as the sum of their files'
    records (ingested at ``stamps`` of the date, default its end); the counts of each date."""
    stamps = stamps or {}
    days = sorted({parse_ds(d) for d in days})
    predicate = dates_predicate(days)
    files = spark.table(ensure_table(spark, BRONZE_INGEST_FILES, catalog, schema)).where(predicate)
    counts: dict[str, IngestCounts] = {
        ds: IngestCounts(files=0, rows_in=0, bronze=0, quarantined=0, reasons={}) for ds in days
    }
    for row in files.collect():
        c = counts[row["ingest_date"].isoformat()]
        c["files"] += 1
        c["rows_in"] += int(row["rows_in"])
        c["bronze"] += int(row["bronze"])
        c["quarantined"] += int(row["quarantined"])
        for reason, n in json.loads(row["reasons"]).items():
            c["reasons"][reason] = c["reasons"].get(reason, 0) + n
    for c in counts.values():
        c["reasons"] = dict(sorted(c["reasons"].items()))
    recorded = {ds: c for ds, c in counts.items() if c["files"]}
    # The log row is the date's commit record: written only once bronze holds exactly the rows
    # its files' records account for, with the fingerprint downstream jobs check.
    bronze = BRONZE_EVENTS.name(catalog, schema)
    found = bronze_fingerprints(spark, bronze, list(recorded)) if recorded else {}
    wrong = [
        f"{ds}: {found.get(ds, (0, ''))[0]} rows in {bronze}, {c['bronze']} in its files' records"
        for ds, c in sorted(recorded.items())
        if found.get(ds, (0, ""))[0] != c["bronze"]
    ]
    if wrong:
        raise IngestError(f"bronze does not match its file records: {'; '.join(wrong)}")
    frame = ingest_log_frame(
        spark,
        recorded,
        {ds: stamps.get(ds) or default_ingested_at(ds) for ds in recorded},
        {ds: found.get(ds, (0, EMPTY_FINGERPRINT))[1] for ds in recorded},
    )
    write_partition(spark, frame, BRONZE_INGEST_LOG, catalog, predicate, schema)
    return counts


def bronze_fingerprints(
    spark: SparkSession, bronze: str, days: list[str], version: int | None = None
) -> dict[str, tuple[int, str]]:
    """ingest_date -> (rows, fingerprint) of ``days`` in the bronze table ``bronze`` (at
    ``version``, default the current one); a date without rows is absent."""
    reader = spark.read if version is None else spark.read.option("versionAsOf", version)
    fingerprint = F.sum(F.xxhash64(*FINGERPRINT_COLUMNS).cast("decimal(38,0)"))
    return {
        r["ingest_date"].isoformat(): (int(r["rows"]), str(r["fingerprint"]))
        for r in reader.table(bronze)
        .where(dates_predicate(days))
        .groupBy("ingest_date")
        .agg(F.count(F.lit(1)).alias("rows"), fingerprint.cast("string").alias("fingerprint"))
        .collect()
    }


def committed_bronze(
    spark: SparkSession, *, days: list[str], catalog: str, schema: str = "bronze"
) -> DataFrame:
    """The bronze rows of ``days`` as their ingest committed them, for the jobs downstream.

    ``bronze.events_ingest_log`` is the commit record of a date: the ingest writes it last, once
    bronze and the quarantine hold every line of the date's files (reconciled per file). A date
    without a log row was never ingested or its ingest did not finish; a date whose bronze rows
    differ from the log's count and fingerprint was being re-ingested when that ingest stopped
    (killed between its commits, or refused by the reconciliation). Either refuses, naming the
    date and the job to rerun, so a partial ingest is never built on. The rows are read at the
    table version that was checked.
    """
    days = sorted({parse_ds(d) for d in days})
    bronze, log_name = BRONZE_EVENTS.name(catalog, schema), BRONZE_INGEST_LOG.name(catalog, schema)
    if not spark.catalog.tableExists(bronze):
        raise IngestError(f"{bronze} does not exist: run ingest_events for {days[0]} first")
    logged = {}
    if spark.catalog.tableExists(log_name):
        logged = {
            r["ingest_date"].isoformat(): r.asDict()
            for r in spark.table(log_name).where(dates_predicate(days)).collect()
        }
    missing = [ds for ds in days if ds not in logged]
    if missing:
        raise IngestError(
            f"{', '.join(missing[:5])}: no row in {log_name}, so no finished ingest of the date "
            f"(never run, or stopped before its commit); run ingest_events for it first"
        )
    version = table_version(spark, bronze)
    found = bronze_fingerprints(spark, bronze, days, version)
    wrong = []
    for ds in days:
        rows, fingerprint = found.get(ds, (0, EMPTY_FINGERPRINT))
        log = logged[ds]
        recorded = log.get("bronze_fingerprint")  # None: logged before fingerprints
        if rows != log["bronze"] or (recorded is not None and fingerprint != recorded):
            wrong.append(f"{ds} ({rows} rows in bronze, {log['bronze']} committed)")
    if wrong:
        raise IngestError(
            f"{bronze} of {'; '.join(wrong[:5])} is not what the date's ingest committed to "
            f"{log_name}: an ingest of the date stopped before its commit; rerun ingest_events "
            "for the date"
        )
    return spark.read.option("versionAsOf", version).table(bronze).where(dates_predicate(days))


def ingest_log_frame(
    spark: SparkSession,
    counts: dict[str, IngestCounts],
    stamps: dict[str, datetime],
    fingerprints: dict[str, str],
) -> DataFrame:
    """The ``bronze.events_ingest_log`` rows of verified ingests, one per date of ``counts``."""
    rows = [
        (
            date.fromisoformat(parse_ds(ds)),
            c["files"],
            c["rows_in"],
            c["bronze"],
            c["quarantined"],
            json.dumps(c["reasons"], sort_keys=True),
            utc_text(stamps[ds]),
            fingerprints[ds],
        )
        for ds, c in counts.items()
    ]
    frame = spark.createDataFrame(
        rows,
        "ingest_date date, files int, rows_in bigint, bronze bigint, quarantined bigint, "
        "reasons string, ingested_at string, bronze_fingerprint string",
    )
    return frame.withColumn("ingested_at", F.col("ingested_at").cast("timestamp"))


def ingest(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    ingested_at: datetime | None = None,
    log: Log = print,
) -> IngestCounts:
    """Land the files of ``ds`` into bronze and quarantine; fail unless no row was lost.

    ``log`` receives the notes of the run (a file whose header is not the REES46 header).
    """
    ds = parse_ds(ds)
    return ingest_range(
        spark,
        start=ds,
        end=ds,
        catalog=catalog,
        landing_dir=landing_dir,
        schema=schema,
        ingested_at=ingested_at,
        log=log,
    )[ds]


def _range_predicate(days: list[str]) -> str:
    return f"ingest_date >= DATE'{days[0]}' AND ingest_date <= DATE'{days[-1]}'"


def dates_predicate(days: list[str]) -> str:
    """``ingest_date`` in ``days``, each checked by :func:`parse_ds` (a predicate's SQL text)."""
    dates = ", ".join(f"DATE'{parse_ds(d)}'" for d in days)
    return f"ingest_date IN ({dates})"


def ingest_range(
    spark: SparkSession,
    *,
    start: str,
    end: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    ingested_at: datetime | None = None,
    log: Log = print,
) -> dict[str, IngestCounts]:
    """Land every date of [start, end] in one write per table; the counts of each date.

    The daily job is the range of one date; the first load of history (``load_history.py``)
    passes many. Each date keeps its own ``ingest_date`` and ``ingested_at`` (the end of the
    date unless ``ingested_at`` is given, for a single date only). Fails before writing when a
    date has no landing file; after writing when any file lost a row or has one twice (counted
    from the tables as written, per file), before its record; then records each file in
    ``bronze.events_ingest_files`` and each date in ``bronze.events_ingest_log``.
    """
    days = date_range(start, end)
    if ingested_at is not None and len(days) > 1:
        raise ValueError("--ingest-ts applies to one date; a range records the end of each date")
    stamps = {ds: ingested_at or default_ingested_at(ds) for ds in days}
    files = {ds: landing_files(landing_dir, ds) for ds in days}
    folder = landing_dir.rstrip("/")
    # Stat before reading: a file replaced while it is read is then seen as changed next time.
    stats = {
        f"{folder}/{ds}/{os.path.basename(path)}": (ds, *file_stats(path))
        for ds in days
        for path in files[ds]
    }
    parsed = parse_lines(read_landing(spark, files, landing_dir, stamps, log=log)).persist()
    predicate = _range_predicate(days)
    try:
        expected = count_by_file(parsed)
        bronze = write_partition(
            spark, bronze_rows(parsed), BRONZE_EVENTS, catalog, predicate, schema
        )
        quarantine = write_partition(
            spark, quarantine_rows(parsed), BRONZE_QUARANTINE, catalog, predicate, schema
        )
    finally:
        parsed.unpersist()
    # Counted from the tables as written, not from the DataFrames that were meant to be written.
    reconcile(expected, landed_by_file(spark, bronze, quarantine, predicate, list(stats)))
    records = file_records(expected, stats)
    write_partition(
        spark,
        file_log_frame(
            spark, records, f"date {days[0]}" + (f"..{days[-1]}" if days[1:] else ""), stamps
        ),
        BRONZE_INGEST_FILES,
        catalog,
        predicate,
        schema,
    )
    return refresh_ingest_log(spark, catalog, schema, days, stamps)


def unrecorded_dates(spark: SparkSession, catalog: str, schema: str, days: list[str]) -> set[str]:
    """The dates of ``days`` in the ingest log without any file in
    ``bronze.events_ingest_files``: ingested before files were recorded. The stream leaves
    their files alone (they are in bronze). Reads only the partitions of ``days``."""
    predicate = dates_predicate(days)
    logged = spark.table(ensure_table(spark, BRONZE_INGEST_LOG, catalog, schema)).where(predicate)
    files = spark.table(ensure_table(spark, BRONZE_INGEST_FILES, catalog, schema)).where(predicate)
    return {
        row["ingest_date"].isoformat()
        for row in logged.select("ingest_date")
        .join(files.select("ingest_date").distinct(), "ingest_date", "left_anti")
        .collect()
    }


def logged_counts(spark: SparkSession, catalog: str, schema: str, ds: str) -> IngestCounts | None:
    """The ``bronze.events_ingest_log`` row of ``ds`` as counts; None when there is none."""
    name = ensure_table(spark, BRONZE_INGEST_LOG, catalog, schema)
    row = spark.table(name).where(dates_predicate([ds])).first()
    if row is None:
        return None
    return IngestCounts(
        files=int(row["files"]),
        rows_in=int(row["rows_in"]),
        bronze=int(row["bronze"]),
        quarantined=int(row["quarantined"]),
        reasons=json.loads(row["reasons"]),
    )


def settle_date(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    landing_dir: str,
    schema: str = "bronze",
    reingest: bool = True,
    force: bool = False,
    log: Log = print,
) -> IngestCounts:
    """Make bronze hold the files of ``ds`` as they are now, and return the date's counts.

    After the stream, every file of the date is normally recorded at its current size and
    modification time: then nothing is written. A file delivered again with other content (a
    corrected re-delivery under the same name, which a stream never reads twice), a file
    removed, or one that arrived after the stream's last batch makes the date re-ingested
    whole from its files (:func:`ingest_range`, replacing the date), as a clear of the date's
    ingest on call expects. ``force`` re-ingests the date even when nothing changed (a rerun
    of the date: a retried or cleared task). With ``reingest=False`` (a continuous stream owns
    the landing: a replace here would race it) a difference fails the run instead, naming the
    files.
    """
    ds = parse_ds(ds)
    folder = landing_dir.rstrip("/")
    current = {
        f"{folder}/{ds}/{os.path.basename(path)}": file_stats(path)
        for path in landing_files(landing_dir, ds)
    }
    recorded = recorded_files(spark, catalog, schema, dates_predicate([ds]))
    if current == recorded and not force:
        return (
            logged_counts(spark, catalog, schema, ds)
            or refresh_ingest_log(spark, catalog, schema, [ds])[ds]
        )
    for name in sorted(set(current) | set(recorded)):
        if name not in recorded:
            log(f"{ds}: {name} is not in bronze yet")
        elif name not in current:
            log(f"{ds}: {name} is in bronze but no longer delivered")
        elif current[name] != recorded[name]:
            (size, _), (was, _) = current[name], recorded[name]
            log(f"{ds}: {name} changed since it was ingested ({was} -> {size} bytes)")
    if current == recorded:
        log(f"{ds}: a rerun of the date: re-ingesting it from its {len(current)} file(s)")
    elif not reingest:
        raise IngestError(
            f"{ds}: the date's files are not all in bronze as delivered (see the log); the "
            "continuous stream lands new files within its trigger interval (a retry waits for "
            "it); a changed file needs the stream stopped and the date re-ingested"
        )
    else:
        log(f"{ds}: re-ingesting the date from its {len(current)} file(s)")
    return ingest_range(
        spark, start=ds, end=ds, catalog=catalog, landing_dir=landing_dir, schema=schema, log=log
    )[ds]

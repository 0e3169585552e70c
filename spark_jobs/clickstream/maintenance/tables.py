"""The weekly maintenance of every table: ``OPTIMIZE``, then ``VACUUM`` with a retention that
keeps every pinned version readable.

**Compaction.** Each table is compacted, and Z-ordered by its key (:mod:`.keys`). Z-ordering
rewrites every file of the partitions it covers, each time, so with ``zorder_since`` only the
date partitions from that date on are Z-ordered (the ones written or touched by late data since
the last run); the older ones are only compacted, which rewrites a partition only when it has
more than one small file. The liquid-clustered online table is clustered by ``OPTIMIZE``.

**Retention.** What ``VACUUM`` keeps is each table's ``delta.deletedFileRetentionDuration``,
which this job sets (and ``delta.logRetentionDuration`` raised to at least as much): Delta
refuses time travel beyond that property (and Delta 4 ignores a ``RETAIN n HOURS`` other than
0 in favour of it), and any other ``VACUUM`` of the table (by hand, or Databricks' predictive
optimization) follows it too. For each table it is the environment's retention, raised to the
age of the oldest pinned version's commit plus ``margin`` (:mod:`.pins`): the files of a pinned
version were removed by later commits, so they are younger than that age and survive. The
margin covers what passes after the job reads the clock: the seconds until ``VACUUM`` reads it
again, and the days until the next run sets the property again (a version older than the
property cannot be read, even with its files there). Versions older than the retention and
pinned by no one are vacuumed.

Reads the wall clock: retention is an age, and ``VACUUM`` measures it against the clock too.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from pyspark.sql import functions as F

from clickstream.core.contracts import retry_on_conflict
from clickstream.core.jobs import JobError
from clickstream.core.schema import identifier, parse_ds, table_name
from clickstream.maintenance.keys import TABLES, TableKeys
from clickstream.maintenance.pins import Pin

DELETED_FILE_RETENTION = "delta.deletedFileRetentionDuration"
LOG_RETENTION = "delta.logRetentionDuration"
DEFAULT_LOG_RETENTION = timedelta(days=30)  # Delta's, when the table does not set it
# Delta's default file retention: its retentionDurationCheck refuses a shorter VACUUM RETAIN,
# so that files a write in flight has not committed yet are never taken for garbage.
DELTA_SAFE_RETENTION = timedelta(hours=168)
SECOND, HOUR, DAY = timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)
_INTERVAL = re.compile(r"\s*interval\s+(\d+)\s+(second|minute|hour|day|week)s?\s*", re.I)


def parse_interval(text: str) -> timedelta | None:
    """A Delta duration property (``interval 30 days``) as a timedelta; None if unreadable."""
    match = _INTERVAL.fullmatch(text or "")
    if not match:
        return None
    return timedelta(**{f"{match.group(2).lower()}s": int(match.group(1))})


def shown(duration: timedelta) -> str:
    """``3 d 4 h``, ``5 h``, ``12 min``, ``40 s``: an age or a retention, to the unit that
    matters."""
    seconds = int(duration.total_seconds())
    days, hours = divmod(seconds // 3600, 24)
    minutes = seconds % 3600 // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


@dataclass(frozen=True)
class Retention:
    """What ``VACUUM`` keeps of one table, and why."""

    duration: timedelta
    configured: timedelta
    kept: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()

    @property
    def kept_for(self) -> timedelta:
        """``duration`` rounded up (never less than the rule asks): to the hour from a day on,
        else to the second."""
        unit = HOUR if self.duration >= DAY else SECOND
        return math.ceil(self.duration / unit) * unit

    @property
    def interval(self) -> str:
        """:attr:`kept_for` as a Delta duration property, in the largest unit that is exact."""
        seconds = int(self.kept_for.total_seconds())
        for unit, size in (("days", 86400), ("hours", 3600)):
            if seconds and seconds % size == 0:
                return f"interval {seconds // size} {unit}"
        return f"interval {seconds} seconds"


def retention_for(
    configured: timedelta,
    pins: Iterable[Pin],
    commits: Mapping[int, int],
    *,
    now_ms: int,
    margin: timedelta,
) -> Retention:
    """The retention of a table with the commits ``{version: epoch millis}`` (its history) and
    the ``pins`` on it: ``configured``, raised to each pinned commit's age plus ``margin``.

    A pinned version the table no longer has (beyond its log, or a table created again since)
    cannot be kept by any retention: it is reported in ``lost``, never silently dropped.
    """
    needed, kept, lost = configured, [], []
    current = max(commits) if commits else None
    for pin in sorted(pins, key=lambda p: (p.version, p.holder)):
        millis = commits.get(pin.version)
        if current is not None and pin.version > current:
            lost.append(
                f"v{pin.version} for {pin.holder}: the table is at v{current}, so it was "
                "created again since and that version is gone"
            )
        elif millis is None:
            lost.append(
                f"v{pin.version} for {pin.holder}: no longer in the table's log (cleaned up "
                "after its log retention), so no file retention can bring it back"
            )
        else:
            age = timedelta(milliseconds=max(0, now_ms - millis))
            needed = max(needed, age + margin)
            kept.append(f"v{pin.version} for {pin.holder}, committed {shown(age)} ago")
    return Retention(needed, configured, tuple(kept), tuple(lost))


@dataclass
class TableReport:
    """What maintenance did to one table (``skipped``: why it did nothing)."""

    name: str
    skipped: str | None = None
    optimized: list[str] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    retention: Retention | None = None
    properties_set: dict[str, str] = field(default_factory=dict)
    vacuumed_files: int | None = None
    vacuumed_bytes: int | None = None
    seconds: float = 0.0


def _detail(spark, name: str) -> dict:
    """``DESCRIBE DETAIL``: files, bytes, partition and clustering columns, properties."""
    return spark.sql(f"DESCRIBE DETAIL {name}").first().asDict()


def _commits(spark, name: str) -> dict[int, int]:
    """``{version: commit time in epoch millis}`` of every commit in the table's history."""
    rows = (
        spark.sql(f"DESCRIBE HISTORY {name}")
        .select("version", F.unix_millis("timestamp").alias("millis"))
        .collect()
    )
    return {int(r["version"]): int(r["millis"]) for r in rows}


def optimize_statements(
    name: str,
    keys: TableKeys,
    detail: Mapping,
    column_types: Mapping[str, str],
    since: str | None,
) -> list[str]:
    """The ``OPTIMIZE`` statements of one table (see the module's docstring)."""
    if detail.get("clusteringColumns") or not keys.zorder_by:
        return [f"OPTIMIZE {name}"]
    zorder = ", ".join(identifier(c) for c in keys.zorder_by)
    partitions = list(detail.get("partitionColumns") or [])
    if since is None or not partitions or column_types.get(partitions[0]) != "date":
        return [f"OPTIMIZE {name} ZORDER BY ({zorder})"]
    return [
        f"OPTIMIZE {name} WHERE {identifier(partitions[0])} >= DATE'{parse_ds(since)}' "
        f"ZORDER BY ({zorder})",
        f"OPTIMIZE {name} WHERE {identifier(partitions[0])} < DATE'{parse_ds(since)}'",
    ]


def _retention_properties(name: str, retention: Retention, properties: Mapping[str, str]):
    """The table properties to change so that VACUUM and time travel keep ``retention``."""
    wanted = {DELETED_FILE_RETENTION: retention.interval}
    logged = properties.get(LOG_RETENTION)
    log_retention = parse_interval(logged) if logged else DEFAULT_LOG_RETENTION
    if log_retention is None:
        raise JobError(
            f"{name}: cannot read {LOG_RETENTION}={logged!r}; set it as 'interval <n> days'"
        )
    # Delta refuses a file retention longer than the log's, and time travel needs the log too.
    if log_retention < retention.kept_for:
        wanted[LOG_RETENTION] = retention.interval
    return {k: v for k, v in wanted.items() if properties.get(k) != v}


def _vacuum_metrics(spark, name: str) -> tuple[int | None, int | None]:
    """(files deleted, bytes deleted) of the VACUUM just run, from its history entries."""
    rows = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 2").collect()
    metrics = {r["operation"]: r["operationMetrics"] or {} for r in rows}
    start, end = metrics.get("VACUUM START", {}), metrics.get("VACUUM END", {})
    files = end.get("numDeletedFiles", start.get("numFilesToDelete"))
    size = start.get("sizeOfDataToDelete")
    return (int(files) if files is not None else None, int(size) if size is not None else None)


def maintain_table(
    spark,
    name: str,
    keys: TableKeys,
    *,
    retention: timedelta,
    pins: Sequence[Pin],
    margin: timedelta,
    zorder_since: str | None,
    now_ms: int | None,
    log: Callable[[str], None],
) -> TableReport:
    """OPTIMIZE and VACUUM one existing table; what was done. Ages are measured at ``now_ms``,
    by default the wall clock just before the retention is set, seconds before VACUUM reads
    the clock itself."""
    report = TableReport(name)
    started = time.monotonic()
    before = _detail(spark, name)
    report.files_before, report.bytes_before = int(before["numFiles"]), int(before["sizeInBytes"])
    types = {f.name: f.dataType.simpleString() for f in spark.table(name).schema.fields}
    for statement in optimize_statements(name, keys, before, types, zorder_since):
        retry_on_conflict(lambda statement=statement: spark.sql(statement).collect())
        report.optimized.append(statement.removeprefix(f"OPTIMIZE {name}").strip() or "all")
    after = _detail(spark, name)
    report.files_after, report.bytes_after = int(after["numFiles"]), int(after["sizeInBytes"])
    compacted = "; ".join(report.optimized)
    log(
        f"[maintain] {name}: compacted ({compacted}): files {report.files_before} -> "
        f"{report.files_after}, {_size(report.bytes_before)} -> {_size(report.bytes_after)}"
    )
    mine = [p for p in pins if p.table == name]
    commits = _commits(spark, name)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    report.retention = kept = retention_for(retention, mine, commits, now_ms=now_ms, margin=margin)
    reason = "the configured retention"
    if kept.duration > retention:
        reason = "raised from the configured " + shown(retention) + " to keep " + kept.kept[0]
    log(f"[maintain] {name}: retention {shown(kept.kept_for)} ({reason})")
    for line in kept.kept[1:]:
        log(f"[maintain] {name}:   also keeps {line}")
    for line in kept.lost:
        log(f"[maintain] {name}: WARNING cannot keep {line}")
    report.properties_set = _retention_properties(name, kept, after["properties"] or {})
    if report.properties_set:
        props = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(report.properties_set.items()))
        retry_on_conflict(lambda: spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({props})"))
        log(f"[maintain] {name}: set {props}")
    vacuum_started = time.monotonic()
    spark.sql(f"VACUUM {name}").collect()
    report.vacuumed_files, report.vacuumed_bytes = _vacuum_metrics(spark, name)
    report.seconds = time.monotonic() - started
    deleted = "?" if report.vacuumed_files is None else report.vacuumed_files
    log(
        f"[maintain] {name}: VACUUM deleted {deleted} files "
        f"({_size(report.vacuumed_bytes)}) in {time.monotonic() - vacuum_started:.1f} s; "
        f"table done in {report.seconds:.1f} s"
    )
    return report


def maintain_tables(
    spark,
    *,
    catalog: str,
    retention: timedelta,
    pins: Sequence[Pin],
    margin: timedelta,
    zorder_since: str | None = None,
    schemas: Mapping[str, str] | None = None,
    tables: Sequence[TableKeys] = TABLES,
    now_ms: int | None = None,
    log: Callable[[str], None] = print,
) -> list[TableReport]:
    """OPTIMIZE and VACUUM every table of ``tables`` that exists (``schemas`` maps a table's
    schema to the one it lives in, e.g. for tests); a missing table is skipped and said so."""
    if retention < timedelta(0) or margin < timedelta(0):
        raise ValueError(f"retention ({retention}) and margin ({margin}) must not be negative")
    schemas = dict(schemas or {})
    if zorder_since is not None:
        zorder_since = parse_ds(zorder_since)
    log(
        f"[maintain] {len(tables)} tables of {identifier(catalog)}: retention "
        f"{shown(retention)} unless a pinned version needs more (margin {shown(margin)}); "
        + (f"Z-order from {zorder_since} on" if zorder_since else "Z-order of every partition")
    )
    if retention < DELTA_SAFE_RETENTION:
        log(
            f"[maintain] note: a retention of {shown(retention)} is below Delta's 7-day "
            "default, the window its retentionDurationCheck keeps for writes in flight. VACUUM "
            f"follows each table's {DELETED_FILE_RETENTION}, which this job sets, so that "
            "check (which refuses only a shorter RETAIN) does not apply; a write still "
            f"uncommitted after {shown(retention)} could lose its files, so run maintenance "
            "while the pipelines do not write"
        )
    for pin in pins:
        log(f"[maintain] pinned: {pin.table} v{pin.version} by {pin.holder}")
    if not pins:
        log("[maintain] pinned: no version (no registered model records a Delta version)")
    reports = []
    for keys in tables:
        name = table_name(catalog, schemas.get(keys.schema, keys.schema), keys.table)
        if not spark.catalog.tableExists(name):
            log(f"[maintain] {name}: skipped, the table does not exist")
            reports.append(TableReport(name, skipped="does not exist"))
            continue
        reports.append(
            maintain_table(
                spark,
                name,
                keys,
                retention=retention,
                pins=pins,
                margin=margin,
                zorder_since=zorder_since,
                now_ms=now_ms,
                log=log,
            )
        )
    done = [r for r in reports if r.skipped is None]
    log(
        f"[maintain] done: {len(done)} tables maintained, {len(reports) - len(done)} skipped; "
        f"files {sum(r.files_before for r in done)} -> {sum(r.files_after for r in done)}, "
        f"{_size(sum(r.bytes_before for r in done))} -> "
        f"{_size(sum(r.bytes_after for r in done))}; VACUUM deleted "
        f"{sum(r.vacuumed_files or 0 for r in done)} files "
        f"({_size(sum(r.vacuumed_bytes or 0 for r in done))}) in "
        f"{sum(r.seconds for r in done):.1f} s"
    )
    return reports

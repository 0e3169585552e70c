"""Run a job script stalled in the middle of one Delta write, for a test to SIGKILL it there.

    python -m tests.reliability.stall --state DIR --marker FILE \
        (--table NAME | --merge | --before-table NAME) SCRIPT [ARGS...]

The fault injection of ``test_killed_write.py``, kept out of the production code: the session
is built as the local workspace builds it (``--state`` shares the test session's warehouse),
then the DataFrame that one write consumes is wrapped so that the write's Spark job pauses in
its partition 0 after the first row, while the other partitions go on and write their data
files. The job is then between writing data files and committing them to the Delta log; the
pause creates ``--marker`` and the test kills the process group.

* ``--table NAME``: the ``DataFrameWriter`` call that saves the table ``NAME`` (ingest's
  ``replaceWhere`` overwrite);
* ``--before-table NAME``: just before that call starts (the job's earlier writes are
  committed, this one and the later ones not: a kill between two table commits);
* ``--merge``: the MERGE's write phase (Delta's source materialization and repartitioning before
  the write are off, so that the writing tasks read the wrapped source's partitions).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PARTITIONS = 3  # partition 0 pauses, 1 and 2 write their files meanwhile
PAUSE_SECONDS = 3600


def _pausing(marker: str, job_description: str | None):
    def run(index, rows):
        from pyspark import TaskContext

        description = TaskContext.get().getLocalProperty("spark.job.description") or ""
        armed = index == 0 and (
            job_description is None or job_description.lower() in description.lower()
        )
        for n, row in enumerate(rows):
            yield row
            if armed and n == 0:
                Path(marker).write_text(f"paused in partition 0 of '{description}'\n")
                time.sleep(PAUSE_SECONDS)

    return run


def paused(df, marker: str, job_description: str | None = None):
    """``df`` (same schema), whose partition 0 pauses after one row in the matching Spark job."""
    rdd = df.repartition(PARTITIONS).rdd.mapPartitionsWithIndex(_pausing(marker, job_description))
    return df.sparkSession.createDataFrame(rdd, df.schema)


class _RecordingWriter:
    """Stands for ``df.write``: replays the builder calls on the paused DataFrame's writer when
    the table it saves is the target, else on the plain one."""

    TERMINAL = frozenset({"saveAsTable", "insertInto", "save"})

    def __init__(self, df, writer_property, target: str, marker: str, before: bool = False):
        self._df, self._writer, self._target, self._marker = df, writer_property, target, marker
        self._before = before
        self._calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name not in self.TERMINAL:
                self._calls.append((name, args, kwargs))
                return self
            table = args[0] if args else kwargs.get("name")
            if table == self._target and self._before:
                Path(self._marker).write_text(f"paused before the write of {table}\n")
                time.sleep(PAUSE_SECONDS)
            df = paused(self._df, self._marker) if table == self._target else self._df
            writer = self._writer(df)
            for method, a, k in self._calls:
                writer = getattr(writer, method)(*a, **k)
            return getattr(writer, name)(*args, **kwargs)

        return call


def install(
    spark, *, marker: str, table: str | None, merge: bool, before_table: str | None = None
) -> None:
    if table or before_table:
        frame_class = type(spark.range(0))  # the session's DataFrame class (classic Spark)
        plain = frame_class.write
        target, before = (before_table, True) if before_table else (table, False)
        frame_class.write = property(
            lambda df: _RecordingWriter(df, plain.fget, target, marker, before)
        )
    if merge:
        from delta.tables import DeltaTable

        # The write phase reads the source itself (not a materialized copy), and writes the
        # source's partitions as they are (no shuffle first), so partitions 1 and 2 write their
        # files while partition 0 pauses.
        spark.conf.set("spark.databricks.delta.merge.materializeSource", "none")
        spark.conf.set("spark.databricks.delta.merge.repartitionBeforeWrite.enabled", "false")
        original = DeltaTable.merge

        def merge_paused(self, source, condition):
            wrapped = paused(source, marker, "writ")  # "Writing modified data", "writing new files"
            plan = source._jdf.queryExecution().logical()  # keep the source's alias ("s")
            if plan.nodeName() == "SubqueryAlias":
                wrapped = wrapped.alias(plan.alias())
            return original(self, wrapped, condition)

        DeltaTable.merge = merge_paused


def main(argv: list[str]) -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--state", required=True, type=Path)
    cli.add_argument("--marker", required=True)
    target = cli.add_mutually_exclusive_group(required=True)
    target.add_argument("--table")
    target.add_argument("--merge", action="store_true")
    target.add_argument("--before-table")
    cli.add_argument("script", type=Path)
    cli.add_argument("args", nargs=argparse.REMAINDER)
    args = cli.parse_args(argv)

    from local.spark.runtime import LocalLayout, build_session
    from local.workspace.runner import run_script

    layout = LocalLayout(state=args.state.resolve())
    spark = build_session(layout)
    install(
        spark,
        marker=args.marker,
        table=args.table,
        merge=args.merge,
        before_table=args.before_table,
    )
    log = Path(args.marker).with_suffix(".log")
    result = run_script(args.script.resolve(), args.args, log, layout.job_dirs)
    print(result, flush=True)  # reached only when nothing paused: the test fails on it
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The results of the checks: the ``dq_results`` table, the gate's JSON summary, the HTML page.

Failed expectations never raise: the job reports them (``dq_results`` rows, the JSON summary,
the HTML page) and the Airflow gate task decides from the summary's ``success``, false iff a
blocking check failed. The summary (``<output>.json``) also lists the failed checks
(``blocking_failures``, ``warnings``), counts the outcomes (``counts``) and names the page
(``report``) and the table (``table``).

``<catalog>.<monitoring>.dq_results`` holds one row per expectation and (ds, suite); each run
replaces the rows of its ds and suites (Delta ``replaceWhere``), and no column depends on the
wall clock, so a rerun of a date leaves the same rows (there is no ``validated_at`` column: the
Delta history has the write time, the run id is ``airflow_run_id``). The few example values
in ``observed_value``/``details`` are GE's sample of the first unexpected rows Spark returns
(``partial_unexpected_count`` = ``clickstream.quality.validation.EXAMPLES``): the same for the
same files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from clickstream.core.contracts import Column, Contract, write_partition
from clickstream.core.schema import parse_ds
from clickstream.core.volumes import local_path
from clickstream.quality.checks import BLOCKING, SUITES, WARNING
from clickstream.quality.report import render

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

DQ_RESULTS = Contract(
    schema="monitoring",
    table="dq_results",
    comment="Great Expectations results: one row per expectation, suite and logical date",
    columns=(
        Column("ds", "date", False, "logical date validated"),
        Column("suite", "string", False, "bronze_events | silver_events | user_features"),
        Column("expectation", "string", False, "Great Expectations expectation type"),
        Column("column", "string", True, "column(s) checked; null for table-level ones"),
        Column("severity", "string", False, "blocking | warning"),
        Column("status", "string", False, "passed | failed | skipped"),
        Column("success", "boolean", True, "null when skipped (not evaluated)"),
        Column("observed_value", "string", True, "short human-readable observation"),
        Column("expected", "string", False, "short human-readable expectation"),
        Column("details", "string", False, "JSON: expectation kwargs and GE result"),
        Column("airflow_run_id", "string", False),
    ),
    partitioned_by=("ds",),
)


@dataclass(frozen=True)
class Outcome:
    """The result of one check, as reported everywhere (table row, summary, HTML)."""

    suite: str
    expectation: str  # GE type, e.g. expect_column_values_to_not_be_null
    column: str | None
    severity: str
    status: str
    observed: str
    expected: str
    details: dict

    @property
    def success(self) -> bool | None:
        return None if self.status == SKIPPED else self.status == PASSED

    def entry(self) -> dict:
        """The summary's shape of a failed check."""
        return {
            "suite": self.suite,
            "expectation": self.expectation,
            "column": self.column,
            "observed": self.observed,
            "expected": self.expected,
        }


def summarise(ds: str, suites: list[str], outcomes: list[Outcome], report: str, table: str) -> dict:
    """The JSON summary the Airflow gate reads (keys fixed: see the module docstring)."""
    failed = [o for o in outcomes if o.status == FAILED]
    blocking = [o.entry() for o in failed if o.severity == BLOCKING]
    warnings = [o.entry() for o in failed if o.severity == WARNING]
    return {
        "ds": ds,
        "suites": list(suites),
        "success": not blocking,
        "blocking_failures": blocking,
        "warnings": warnings,
        "counts": {
            "evaluated": sum(o.status != SKIPPED for o in outcomes),
            "passed": sum(o.status == PASSED for o in outcomes),
            "blocking_failed": len(blocking),
            "warning_failed": len(warnings),
            "skipped": sum(o.status == SKIPPED for o in outcomes),
        },
        "report": report,
        "table": table,
    }


def status_text(summary: Mapping[str, Any]) -> str:
    if not summary["success"]:
        return "FAILED (blocking)"
    return "PASSED with warnings" if summary["warnings"] else "PASSED"


def results_frame(
    spark: SparkSession, ds: str, outcomes: list[Outcome], airflow_run_id: str
) -> DataFrame:
    day = date.fromisoformat(parse_ds(ds))
    rows = [
        (
            day,
            o.suite,
            o.expectation,
            o.column,
            o.severity,
            o.status,
            o.success,
            o.observed,
            o.expected,
            json.dumps(o.details, sort_keys=True),
            airflow_run_id,
        )
        for o in outcomes
    ]
    schema = ", ".join(f"`{c.name}` {c.type}" for c in DQ_RESULTS.columns)
    return spark.createDataFrame(rows, schema)


def write_results(
    spark: SparkSession,
    ds: str,
    suites: list[str],
    outcomes: list[Outcome],
    *,
    catalog: str,
    airflow_run_id: str,
    monitoring_schema: str = "monitoring",
) -> str:
    """Replace the rows of (ds, suites) in ``dq_results``: a rerun leaves the same rows."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:  # suite names end up in the replaceWhere predicate
        raise ValueError(f"unknown suite(s): {', '.join(unknown)}")
    predicate = f"ds = DATE'{parse_ds(ds)}' AND suite IN ({', '.join(repr(s) for s in suites)})"
    frame = results_frame(spark, ds, outcomes, airflow_run_id)
    return write_partition(spark, frame, DQ_RESULTS, catalog, predicate, monitoring_schema)


def report_rows(outcomes: list[Outcome]) -> list[dict]:
    return [
        {
            "suite": o.suite,
            "expectation": o.expectation,
            "column": o.column,
            "severity": o.severity,
            "status": o.status,
            "observed": o.observed,
            "expected": o.expected,
        }
        for o in outcomes
    ]


def publish(output: str, summary: Mapping[str, Any], outcomes: list[Outcome]) -> tuple[str, str]:
    """Write ``<output>.html`` then ``<output>.json`` (Volume paths mapped locally)."""
    html_path, json_path = local_path(f"{output}.html"), local_path(f"{output}.json")
    os.makedirs(os.path.dirname(html_path) or ".", exist_ok=True)
    page = render(
        ds=summary["ds"],
        suites=summary["suites"],
        status=status_text(summary),
        counts=summary["counts"],
        rows=report_rows(outcomes),
        table=summary["table"],
    )
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(page)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=False)
        handle.write("\n")
    return f"{output}.html", f"{output}.json"

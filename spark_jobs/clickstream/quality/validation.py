"""Run the checks of a date through Great Expectations, then record and publish the results.

Each suite's :class:`~clickstream.quality.checks.Check` list is turned into Great Expectations
1.x expectations and run through a GE Spark datasource on the Spark DataFrame of the day (an
ephemeral context, a dataframe asset, a whole-dataframe batch definition and
``batch_parameters={"dataframe": df}``): the metrics are Spark aggregations over the day, nothing
is collected to the driver but GE's few example values. Metrics that are not a property of a
row (the day's volume against recent days, the share of quarantined lines) are validated the
same way on a one-row *day profile* DataFrame with ``ExpectColumnMaxToBeBetween``: on one row
the column's max is the value itself, so GE reports it as ``observed_value`` whether the check
passes or fails.

Severity uses GE's own field (``severity="critical"`` for blocking, ``"warning"``) and is read
back from each result's expectation configuration.

:func:`run` is the ``validate_data.py`` job: load every suite, validate, replace the (ds,
suites) rows of ``dq_results``, write the HTML page and the JSON summary
(``clickstream.quality.results``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from clickstream.core.schema import parse_ds
from clickstream.quality.checks import (
    BLOCKING,
    LATE_TOLERANCE_HOURS,
    SUITES,
    VOLUME_LOOKBACK_DAYS,
    WARNING,
    Check,
)
from clickstream.quality.inputs import SuiteInput, load_suite
from clickstream.quality.results import (
    FAILED,
    PASSED,
    SKIPPED,
    Outcome,
    publish,
    summarise,
    write_results,
)

EXAMPLES = 5  # unexpected values GE samples per expectation (BASIC result format)

# GE's FailureSeverity values for ours; "info" is not used.
_GX_SEVERITY = {BLOCKING: "critical", WARNING: "warning"}
_OUR_SEVERITY = {v: k for k, v in _GX_SEVERITY.items()}


# --------------------------------------------------------------------------- running GE


def _context():
    """An in-memory GE context and its Spark datasource (progress bars off: job logs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # persist=False: the caller persists the day's rows once and unpersists them afterwards;
    # GE's own persist() would leave them cached for the rest of a warm driver's life.
    return context, context.data_sources.add_spark(name="spark", persist=False)


def _expectation(check: Check, index: int):
    import great_expectations.expectations as gxe

    cls = getattr(gxe, check.expectation)
    return cls(**check.kwargs, severity=_GX_SEVERITY[check.severity], meta={"check": index})


def _examples(result: Mapping[str, Any]) -> str:
    values = list(dict.fromkeys(map(_hashable, result.get("partial_unexpected_list") or [])))
    shown = []
    for value in values[:3]:
        text = repr(value) if isinstance(value, str) else str(value)
        shown.append(text if len(text) <= 40 else text[:37] + "...")
    return ", e.g. " + ", ".join(shown) if shown else ""


def _hashable(value: Any) -> Any:
    """A sampled value as a dict key (compound checks sample rows as dicts)."""
    if isinstance(value, Mapping):
        return tuple(value.values())
    return tuple(value) if isinstance(value, list) else value


_NOUNS = {
    "expect_column_values_to_not_be_null": "null",
    "expect_column_values_to_be_in_set": "not in the set",
    "expect_column_values_to_be_between": "out of range",
    "expect_column_values_to_be_unique": "duplicated",
    "expect_compound_columns_to_be_unique": "duplicated",
}


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _observed(check: Check, kind: str, result: Mapping[str, Any], error: str) -> str:
    if error:
        return f"error: {error}"
    if kind == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in sorted(mismatched.items()) if v]
        return "; ".join(parts) if parts else f"{len(result.get('observed_value') or [])} columns"
    if "unexpected_count" in result:
        n, bad = result.get("element_count") or 0, result.get("unexpected_count") or 0
        noun = "null" if kind.endswith("not_be_null") else _NOUNS.get(kind, "unexpected")
        share = f" ({bad / n:.2%})" if n else ""
        examples = _examples(result) if bad and noun != "null" else ""
        return f"{bad} of {n} rows {noun}{share}{examples}"
    value = result.get("observed_value")
    if check.label == "rows":
        why = check.context.get("why")
        return f"{value} rows ({why})" if why and not value else f"{value} rows"
    text = f"{check.label or 'observed'} {_number(value)}"
    if check.label == "volume ratio":
        ctx = check.context
        text += f" ({ctx['rows']} rows / median {_number(ctx['history_median'])} of "
        text += f"{ctx['history_days']} days)"
    elif check.label == "quarantine share":
        ctx = check.context
        text += f" ({ctx['quarantined']} of {ctx['rows'] + ctx['quarantined']} lines)"
    return text


def _error(exception_info: Any) -> str:
    """GE's exception message, from the flat or the per-metric form of ``exception_info``."""
    if not isinstance(exception_info, Mapping):
        return ""
    infos = (
        [exception_info]
        if "raised_exception" in exception_info
        else [v for v in exception_info.values() if isinstance(v, Mapping)]
    )
    for info in infos:
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "exception").splitlines()[0][:300]
    return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _details(check: Check, result: Mapping[str, Any], error: str) -> dict:
    kept = (
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "missing_count",
        "observed_value",
        "details",
        "partial_unexpected_list",
    )
    details = {
        "kwargs": dict(check.kwargs),
        "result": {k: result[k] for k in kept if k in result},
    }
    if check.context:
        details["context"] = dict(check.context)
    if check.skipped:
        details["skipped"] = check.skipped
    if error:
        details["error"] = error
    return _jsonable(details)


def evaluate(suite: str, checks: list[Check], frames: Mapping[str, DataFrame]) -> list[Outcome]:
    """Run ``checks`` through GE on ``frames`` (by target); one Outcome per check, in order."""
    import great_expectations as gx

    context, datasource = _context()
    expectations = {i: _expectation(check, i) for i, check in enumerate(checks)}
    results: dict[int, Any] = {}
    for target in sorted({c.target for c in checks if not c.skipped}):
        name = f"{suite}.{target}"
        asset = datasource.add_dataframe_asset(name=name)
        batch = asset.add_batch_definition_whole_dataframe(name)
        chosen = [
            expectations[i] for i, c in enumerate(checks) if c.target == target and not c.skipped
        ]
        gx_suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=chosen))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
        validation = definition.run(
            batch_parameters={"dataframe": frames[target]},
            # BASIC: counts and a few sampled unexpected values; SUMMARY would add a group-by
            # job per expectation for partial_unexpected_counts, which is not reported.
            result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
        )
        for result in validation.results:
            results[int(result.expectation_config.meta["check"])] = result
    outcomes = []
    for i, check in enumerate(checks):
        kind = expectations[i].expectation_type
        if check.skipped:
            outcomes.append(
                Outcome(
                    suite,
                    kind,
                    check.column,
                    check.severity,
                    SKIPPED,
                    check.skipped,
                    check.expected,
                    _details(check, {}, ""),
                )
            )
            continue
        result = results[i]
        config = result.expectation_config
        severity = _OUR_SEVERITY[getattr(config.severity, "value", config.severity)]
        error = _error(result.exception_info)
        body = result.result or {}
        outcomes.append(
            Outcome(
                suite,
                config.type,
                check.column,
                severity,
                PASSED if result.success and not error else FAILED,
                _observed(check, config.type, body, error),
                check.expected,
                _details(check, body, error),
            )
        )
    return outcomes


# --------------------------------------------------------------------------- the job


def validate(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    suites: list[str],
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
    log=print,
) -> list[Outcome]:
    """Load every suite first (so a missing input fails before anything runs), then run them."""
    ds = parse_ds(ds)
    if not suites:
        raise ValueError("give at least one --suite")
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}: expected {', '.join(SUITES)}")
    if late_tolerance_hours < 0:
        raise ValueError(f"--late-tolerance-hours must be >= 0, got {late_tolerance_hours}")
    if volume_lookback_days < 1:
        raise ValueError(f"--volume-lookback-days must be at least 1, got {volume_lookback_days}")
    inputs: list[SuiteInput] = []
    try:
        for suite in dict.fromkeys(suites):
            inputs.append(
                load_suite(
                    spark,
                    suite,
                    ds=ds,
                    catalog=catalog,
                    bronze_schema=bronze_schema,
                    silver_schema=silver_schema,
                    late_tolerance_hours=late_tolerance_hours,
                    volume_lookback_days=volume_lookback_days,
                )
            )
        outcomes: list[Outcome] = []
        for item in inputs:
            log(f"{ds}: {item.suite}: {len(item.checks)} expectations on {item.description}")
            outcomes += evaluate(item.suite, item.checks, item.frames)
        return outcomes
    finally:
        for item in inputs:
            item.frames["rows"].unpersist()


def run(
    spark: SparkSession,
    *,
    ds: str,
    catalog: str,
    suites: list[str],
    output: str,
    bronze_schema: str = "bronze",
    silver_schema: str = "silver",
    monitoring_schema: str = "monitoring",
    airflow_run_id: str = "manual",
    late_tolerance_hours: float = LATE_TOLERANCE_HOURS,
    volume_lookback_days: int = VOLUME_LOOKBACK_DAYS,
    log=print,
) -> tuple[dict, list[Outcome]]:
    """Validate, replace the (ds, suites) rows of ``dq_results``, write the report and summary.

    Returns the summary and the outcomes; never raises for a failed expectation.
    """
    ds = parse_ds(ds)
    if not output or output.endswith("/"):
        raise ValueError(f"--output must be a path prefix (no trailing /), got {output!r}")
    suites = list(dict.fromkeys(suites))
    outcomes = validate(
        spark,
        ds=ds,
        catalog=catalog,
        suites=suites,
        bronze_schema=bronze_schema,
        silver_schema=silver_schema,
        late_tolerance_hours=late_tolerance_hours,
        volume_lookback_days=volume_lookback_days,
        log=log,
    )
    table = write_results(
        spark,
        ds,
        suites,
        outcomes,
        catalog=catalog,
        airflow_run_id=airflow_run_id,
        monitoring_schema=monitoring_schema,
    )
    summary = summarise(ds, suites, outcomes, f"{output}.html", table)
    publish(output, summary, outcomes)
    return summary, outcomes

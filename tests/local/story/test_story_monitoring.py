"""``make run``'s pipeline monitoring: its check of monitoring.job_runs against runs/get, its
summary, and ``python -m local.story.cost`` on a state's table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clickstream.monitoring.job_runs import run_row
from ecom_airflow.config import AZURE_LIST_PRICES, LOCAL
from local.story import cost
from local.story.story import job_run_mismatches
from local.story.summary import monitoring_checks, print_operations_summary

ROOT = Path(__file__).resolve().parents[3]


def _answer(run_id: int, name: str, *, execution: int = 90_000, result: str = "SUCCESS") -> dict:
    """runs/get of a one-task run of the local workspace (phases on the task)."""
    return {
        "run_id": run_id,
        "run_name": name,
        "state": {"life_cycle_state": "TERMINATED", "result_state": result},
        "start_time": 1_790_000_000_000 + run_id * 1000,
        "end_time": 1_790_000_000_000 + run_id * 1000 + 2000 + execution,
        "queue_duration": 500,
        "run_duration": 2000 + execution,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "tasks": [
            {
                "run_id": run_id + 1_000_000,
                "setup_duration": 2000,
                "execution_duration": execution,
                "cleanup_duration": 0,
                "new_cluster": LOCAL.new_cluster,
            }
        ],
    }


def _row(answer: dict) -> dict:
    prices = json.loads(LOCAL.prices.as_parameter())
    return run_row(answer, prices, collection_date="2026-10-31", airflow_run_id="r")


def test_rows_that_say_what_runs_get_says_have_no_mismatch_and_a_changed_one_is_named():
    answers = {
        1: _answer(1, "d.t [2026-10-31]"),
        2: _answer(2, "d.u [2026-10-31]", result="FAILED"),
    }
    rows = [_row(a) for a in answers.values()]
    assert job_run_mismatches(rows, answers) == []
    rows[0]["execution_seconds"] += 1.0
    rows[1]["result_state"] = "SUCCESS"
    assert job_run_mismatches(rows, answers) == [
        "run 1: execution_seconds 91.0 != runs/get 90.0",
        "run 2: result_state SUCCESS != runs/get FAILED",
    ]
    # A run in flight when collected has moved on since: not compared.
    rows[0]["life_cycle_state"] = "RUNNING"
    assert len(job_run_mismatches(rows, answers)) == 1


def test_the_check_fails_on_a_mismatch_or_an_empty_table_and_says_so():
    operations = {"runs": 2}
    [ok] = monitoring_checks(operations, {"rows": 2, "mismatches": []})
    assert ok.ok and ok.required and ok.detail == "2 rows compared with runs/get, 0 differ"
    [bad] = monitoring_checks(operations, {"rows": 2, "mismatches": ["run 1: x 1 != runs/get 2"]})
    assert not bad.ok and "run 1: x 1 != runs/get 2" in bad.detail
    [empty] = monitoring_checks({"runs": 0}, {"rows": 0, "mismatches": []})
    assert not empty.ok
    assert monitoring_checks({}, {}) == []  # a story told before pipeline monitoring existed


def test_the_summary_shows_runs_execution_cost_and_the_chains_day(capsys):
    operations = {
        "runs": 3,
        "failed": 1,
        "retries": 1,
        "execution_seconds": 600.0,
        "estimated_cost_usd": 0.5,
        "estimated_cost_max_usd": 0.75,
        "price_tables": ["azure-list"],
        "price_basis": ["as if on Standard_D4ds_v5, driver + 1..2 workers"],
        "jobs": [
            {"dag_id": "b", "runs": 2, "execution_seconds": 480.0, "estimated_cost_usd": 0.4},
            {"dag_id": "a", "runs": 1, "execution_seconds": 120.0, "estimated_cost_usd": 0.1},
        ],
        "daily_chain": {
            "logical_date": "2026-10-31",
            "tasks": 2,
            "at": {"1": {"cost_usd": 0.3}, "16": {"cost_usd": 4.1}},
        },
        "growing": [],
    }
    print_operations_summary(operations)
    out = capsys.readouterr().out
    assert "3 Databricks runs of the DAGs (1 failed, 1 retries), 10.0 min of execution, " in out
    assert "estimated $0.50 ($0.75 at the clusters' maximum size)" in out
    assert out.index("  a ") < out.index("  b ")
    assert re.search(r"^  b +2 +8\.0 +\$0\.40$", out, re.M)
    assert "(2026-10-31, 2 tasks): $0.30 at 1x, $4.10 at 16x the volume" in out
    assert "growing jobs: none" in out


def _chain_rows() -> list[dict]:
    return [
        _row(_answer(1, "data_quality_validation.ingest_events [2026-10-31]", execution=3_598_000)),
        _row(
            _answer(
                2, "offline_feature_table.build_silver_events [2026-10-31]", execution=1_798_000
            )
        ),
        _row(_answer(3, "offline_feature_table.build_silver_events [2026-10-30]")),
    ]


def _write_table(spark, rows: list[dict], **target) -> None:
    from clickstream.core.contracts import JOB_RUNS

    frame = spark.createDataFrame(
        [tuple(r[c] for c in JOB_RUNS.names) for r in rows],
        ", ".join(f"{c.name} {c.type}" for c in JOB_RUNS.columns),
    )
    if "path" in target:
        frame.write.format("delta").save(target["path"])
    else:
        frame.write.format("delta").saveAsTable(target["table"])


NODE = AZURE_LIST_PRICES.nodes["Standard_D4ds_v5"]
HOURLY = 2 * NODE.dbu_per_hour * AZURE_LIST_PRICES.jobs_usd_per_dbu + 2 * NODE.vm_usd_per_hour


@pytest.mark.spark
def test_the_cost_of_a_day_is_read_from_the_table_and_a_missing_day_is_said(spark, tmp_path):
    schema = f"t_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    _write_table(spark, _chain_rows(), table=f"{schema}.job_runs")
    args = cost.parse_args(["--monitoring-schema", schema, "--scale", "1", "--setup-minutes", "5"])
    day = cost.day_cost(spark, args)
    assert day["logical_date"] == "2026-10-31" and day["tasks"] == 2
    assert day["at"]["1"]["cost_usd"] == pytest.approx(HOURLY * (2 * 300 + 5396) / 3600)
    text = cost.render(day)
    assert "cluster start 5 min per task (assumed)" in text
    assert "no run on that date: online_feature_table, model_serving" in text
    assert (
        cost.day_cost(spark, cost.parse_args(["--monitoring-schema", schema, "--ds", "2026-01-01"]))
        is None
    )
    with pytest.raises(SystemExit, match=r"cost: spark_catalog\.nope\.job_runs does not exist"):
        cost.day_cost(spark, cost.parse_args(["--monitoring-schema", "nope"]))


@pytest.mark.spark
def test_the_cost_command_prices_a_day_of_the_chain_from_a_states_table(spark, tmp_path):
    """The command on its own Spark session over a state folder, as after `make run`."""
    _write_table(
        spark, _chain_rows(), path=str(tmp_path / "warehouse" / "monitoring.db" / "job_runs")
    )
    env = {**os.environ, "ECOM_LOCAL_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "local.story.cost", "--scale", "1", "--scale", "10"]
    done = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    day = json.loads(done.stdout)
    assert day["logical_date"] == "2026-10-31" and day["tasks"] == 2
    assert day["at"]["1"]["cost_usd"] == pytest.approx(HOURLY * 1.5)  # 1 h + 0.5 h billed
    assert day["at"]["10"]["cost_usd"] == pytest.approx(HOURLY * (4 + 10 * 5396) / 3600)
    # A state without a table: one line, exit 1.
    empty = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "ECOM_LOCAL_DIR": str(tmp_path / "none")},
    )
    assert empty.returncode == 1 and "run `make run` first" in empty.stderr
    assert "Traceback" not in empty.stderr

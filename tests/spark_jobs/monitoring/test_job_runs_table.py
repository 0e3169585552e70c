"""``monitoring.job_runs`` and the operations report: the parsing of runs/get answers, the
price of a run, the trend rule in both directions, and the collection and report jobs on real
Spark and Delta (runs given as Databricks answers them; the collection from a live workspace is
tests/plugins/test_job_runs.py)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import jinja2
import pytest
from collect_job_runs import main as collect_main
from report_operations import main as report_main

from clickstream.core.catalog import CONTRACTS
from clickstream.core.contracts import JOB_RUNS
from clickstream.monitoring import job_runs, operations
from clickstream.monitoring.job_runs import (
    Compute,
    compute_of,
    phases,
    pricing,
    run_name_parts,
    run_row,
)
from clickstream.monitoring.operations import (
    GROWING,
    INSUFFICIENT,
    STEADY,
    TrendRule,
    chain_day_cost,
    duration_trend,
)
from ecom_airflow.config import AZURE_LIST_PRICES, DEV_CLUSTER, LOCAL
from ecom_airflow.tasks import RUN_NAME_PATTERN, databricks_job

PRICES = json.loads(AZURE_LIST_PRICES.as_parameter())
LOCAL_PRICES = json.loads(LOCAL.prices.as_parameter())
D4 = AZURE_LIST_PRICES.nodes["Standard_D4ds_v5"]
T0 = 1_570_000_000_000  # 2019-10-02 07:06:40 UTC, in ms


def _run(run_id: int, name: str, *, setup=60_000, execution=240_000, queue=5_000, **extra) -> dict:
    """A runs/get answer of a multi-task run on a job cluster of the dev spec, ended."""
    start = T0 + run_id * 1_000_000
    task = {
        "run_id": run_id + 1_000_000,
        "task_key": "main",
        "setup_duration": setup,
        "execution_duration": execution,
        "cleanup_duration": 0,
        "new_cluster": DEV_CLUSTER,
    }
    return {
        "run_id": run_id,
        "run_name": name,
        "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
        "start_time": start,
        "end_time": start + setup + execution,
        "queue_duration": queue,
        "run_duration": setup + execution,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "tasks": [task],
        "run_page_url": f"https://adb.example/jobs/runs/{run_id}",
        **extra,
    }


# -- run names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        (
            "data_quality_validation.ingest_events [2019-10-01]",
            ("data_quality_validation", "ingest_events", "2019-10-01"),
        ),
        ("d.group.task [2019-10-01]", ("d", "group.task", "2019-10-01")),
        ("generate_events", None),
        ("d.t [2019-13-01]", None),  # not a date
        ("d.t [2019-10-01] retry", None),
        ("d [2019-10-01]", None),
        (None, None),
    ],
)
def test_run_names_of_the_dags_are_recognised_and_others_are_not(name, parts):
    assert run_name_parts(name) == parts


def test_the_run_name_the_job_tasks_set_is_the_one_both_sides_parse():
    """databricks_job's run_name template, rendered, is recognised by the collection job and
    by the Airflow side's pattern; the two patterns are one."""
    assert job_runs.RUN_NAME_PATTERN == RUN_NAME_PATTERN
    task = databricks_job(task_id="ingest_events", script="ingest_events.py", parameters={})
    name = jinja2.Template(task.run_name).render(
        dag=SimpleNamespace(dag_id="data_quality_validation"), ds="2019-10-01"
    )
    assert run_name_parts(name) == ("data_quality_validation", "ingest_events", "2019-10-01")
    assert re.fullmatch(RUN_NAME_PATTERN, name)


def test_the_table_is_a_contract_the_setup_job_creates():
    assert JOB_RUNS in CONTRACTS
    assert JOB_RUNS.primary_key == ("run_id",)


# -- phases, compute, price --------------------------------------------------------------------


def test_phases_of_a_multi_task_run_are_its_tasks_and_of_a_single_task_run_its_own():
    multi = _run(1, "d.t [2019-10-01]", setup=60_000, execution=240_000, queue=5_000)
    multi["tasks"].append(
        {**multi["tasks"][0], "setup_duration": 30_000, "execution_duration": 1_000}
    )
    multi["run_duration"] = 400_000
    assert phases(multi) == {
        "queue_seconds": 5.0,
        "setup_seconds": 90.0,
        "execution_seconds": 241.0,
        "cleanup_seconds": 0.0,
        "total_seconds": 400.0,
    }
    single = {
        "run_id": 2,
        "setup_duration": 10_000,
        "execution_duration": 20_000,
        "cleanup_duration": 3_000,
        "tasks": [{"run_id": 3, "setup_duration": 0, "execution_duration": 0}],
    }
    assert phases(single) == {
        "queue_seconds": 0.0,
        "setup_seconds": 10.0,
        "execution_seconds": 20.0,
        "cleanup_seconds": 3.0,
        "total_seconds": 33.0,  # no run_duration: the task's life
    }


def test_a_dev_cluster_run_is_priced_at_its_minimum_and_maximum_size():
    row = run_row(
        _run(7, "d.t [2019-10-01]", setup=600_000, execution=3_000_000),  # 1 h billed
        PRICES,
        collection_date="2019-10-02",
        airflow_run_id="scheduled__2019-10-02",
    )
    assert (row["compute_kind"], row["node_type_id"], row["workers"], row["max_workers"]) == (
        "job_cluster",
        "Standard_D4ds_v5",
        1,
        2,
    )
    assert row["billable_seconds"] == 3600.0
    # Driver + 1 worker: 2 DBU/h at $0.30 and two VMs; at the maximum, driver + 2 workers.
    expected = 2 * D4.dbu_per_hour * 0.30 + 2 * D4.vm_usd_per_hour
    assert row["estimated_cost_usd"] == pytest.approx(expected)
    assert row["estimated_cost_max_usd"] == pytest.approx(1.5 * expected)
    assert row["dbu_per_hour"] == 2.0
    assert row["price_basis"] == "Standard_D4ds_v5, driver + 1..2 workers"
    assert (row["dag_id"], row["task_id"], row["logical_date"]) == ("d", "t", date(2019, 10, 1))
    assert row["start_time"] == datetime.fromtimestamp((T0 + 7_000_000) / 1000, tz=UTC)


def test_local_runs_are_priced_as_if_on_the_dev_cluster():
    run = _run(8, "d.t [2019-10-01]", setup=0, execution=3_600_000)
    run["tasks"][0]["new_cluster"] = LOCAL.new_cluster
    row = run_row(run, LOCAL_PRICES, collection_date="2019-10-02", airflow_run_id="r")
    assert row["node_type_id"] == "local" and row["workers"] == 0  # what it ran on
    assert row["price_basis"] == "as if on Standard_D4ds_v5, driver + 1..2 workers"
    assert row["estimated_cost_usd"] == pytest.approx(
        2 * D4.dbu_per_hour * 0.30 + 2 * D4.vm_usd_per_hour
    )
    # Without priced_as, the local node type has no price: no estimate, and the reason why.
    bare = run_row(run, PRICES, collection_date="2019-10-02", airflow_run_id="r")
    assert bare["estimated_cost_usd"] is None
    assert bare["price_basis"] == "no price for node type local"


def test_serverless_and_existing_clusters():
    serverless = _run(9, "d.t [2019-10-01]", setup=0, execution=1_800_000)
    serverless["tasks"][0].pop("new_cluster")
    serverless["tasks"][0]["environment_key"] = "job_libraries"
    row = run_row(serverless, PRICES, collection_date="2019-10-02", airflow_run_id="r")
    assert row["compute_kind"] == "serverless" and row["workers"] is None
    assert row["estimated_cost_usd"] == pytest.approx(0.5 * 2.0 * 0.45)  # half an hour, 2 DBU/h
    existing = {"tasks": [{"existing_cluster_id": "0101-abc"}]}
    assert compute_of(existing) == Compute("existing_cluster")
    assert pricing(compute_of(existing), PRICES).usd_per_hour is None
    pool = {"tasks": [{"new_cluster": {"instance_pool_id": "p", "num_workers": 3}}]}
    assert compute_of(pool) == Compute("job_cluster", None, None, 3, 3)
    assert pricing(compute_of(pool), PRICES).basis == "no price for node type (none: a pool?)"


def test_runs_not_started_by_the_dags_have_no_row():
    assert (
        run_row(_run(10, "adhoc"), PRICES, collection_date="2019-10-02", airflow_run_id="r") is None
    )


# -- the trend rule, both ways -----------------------------------------------------------------

RULE = TrendRule(runs=7, ratio=1.3, min_seconds=60.0)


def test_a_job_made_steadily_slower_is_flagged():
    rng = random.Random(7)
    durations = [300 * 1.05**i * (1 + rng.uniform(-0.05, 0.05)) for i in range(20)]
    trend = duration_trend(durations, RULE)
    assert trend["status"] == GROWING
    assert trend["ratio"] > 1.3 and trend["slope_seconds_per_run"] > 0


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_job_is_not_flagged_even_with_a_slow_outlier(seed):
    rng = random.Random(seed)
    durations = [300 * (1 + rng.uniform(-0.2, 0.2)) for _ in range(20)]
    durations[-2] = 1200  # one run four times as slow: a cold cache, a noisy neighbour
    assert duration_trend(durations, RULE)["status"] == STEADY


def test_a_short_job_that_doubles_is_not_worth_a_flag_and_few_runs_are_not_judged():
    assert duration_trend([10.0] * 7 + [20.0] * 7, RULE)["status"] == STEADY  # +10 s only
    assert duration_trend([300.0] * 7 + [600.0] * 7, RULE)["status"] == GROWING
    few = duration_trend([300.0] * 13, RULE)
    assert (few["status"], few["runs"], few["needed"]) == (INSUFFICIENT, 13, 14)


# -- a day of the chain ------------------------------------------------------------------------


def _rows(runs: list[dict], prices: dict = PRICES) -> list[dict]:
    return [run_row(r, prices, collection_date="2019-10-09", airflow_run_id="r") for r in runs]


def test_a_day_of_the_chain_prices_each_task_once_and_scales_its_execution():
    failed = _run(
        1, "data_quality_validation.ingest_events [2019-10-01]", setup=600_000, execution=100_000
    )
    failed["state"] = {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}
    rows = _rows(
        [
            failed,  # then its retry:
            _run(
                2,
                "data_quality_validation.ingest_events [2019-10-01]",
                setup=600_000,
                execution=3_000_000,
            ),
            _run(
                3,
                "offline_feature_table.build_user_features [2019-10-01]",
                setup=0,
                execution=3_600_000,
            ),
            _run(4, "model_training.train_models [2019-10-01]", setup=0, execution=3_600_000),
            _run(
                5,
                "offline_feature_table.build_user_features [2019-09-30]",
                setup=0,
                execution=60_000,
            ),
        ]
    )
    hourly = 2 * D4.dbu_per_hour * 0.30 + 2 * D4.vm_usd_per_hour
    day = chain_day_cost(rows, scales=(1.0, 16.0))
    assert day["logical_date"] == "2019-10-01"  # the day with the most chain DAGs done
    assert day["dags"] == ["data_quality_validation", "offline_feature_table"]
    assert day["tasks"] == 2 and day["retries"] == 1
    assert day["retries_cost_usd"] == pytest.approx(hourly * 700 / 3600)
    assert day["at"]["1"]["cost_usd"] == pytest.approx(hourly * 2)  # 1 h each
    assert day["at"]["1"]["execution_seconds"] == 6600
    # 16x the volume: execution x16, the ingest's 10 min of setup once.
    assert day["at"]["16"]["cost_usd"] == pytest.approx(hourly * (600 + 16 * 6600) / 3600)
    assert day["at"]["16"]["cost_max_usd"] == pytest.approx(1.5 * day["at"]["16"]["cost_usd"])
    # A cluster start assumed instead of the measured one (a local warm driver starts in s).
    assumed = chain_day_cost(rows, scales=(1.0,), setup_seconds=300)
    assert assumed["at"]["1"]["cost_usd"] == pytest.approx(hourly * (2 * 300 + 6600) / 3600)
    assert chain_day_cost([], scales=(1.0,)) is None


# -- the jobs, on Spark and Delta --------------------------------------------------------------


def _write_runs(path, runs: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in runs))
    return str(path)


def _table(spark, schema_name) -> list[dict]:
    return [r.asDict() for r in spark.table(JOB_RUNS.name("spark_catalog", schema_name)).collect()]


def test_collecting_twice_merges_by_run_id_and_skips_foreign_runs(
    spark, schema_name, tmp_path, capsys
):
    running = _run(2, "d.t [2019-10-01]")
    running["state"] = {"life_cycle_state": "RUNNING"}
    running["end_time"] = 0
    running["tasks"][0]["execution_duration"] = 0
    runs = [_run(1, "d.t [2019-10-01]"), running, _run(3, "someone's notebook")]
    args = ["--ds", "2019-10-02", "--catalog", "spark_catalog", "--monitoring-schema", schema_name]
    args += ["--prices", AZURE_LIST_PRICES.as_parameter(), "--airflow-run-id", "first"]
    assert collect_main([*args, "--input", _write_runs(tmp_path / "a.jsonl", runs)]) == 0
    out = capsys.readouterr().out
    assert (
        "merged 2 runs" in out
        and "skipped 1 not started by the DAGs (e.g. someone's notebook)" in out
    )
    first = {r["run_id"]: r for r in _table(spark, schema_name)}
    assert set(first) == {1, 2}
    assert first[2]["result_state"] is None and first[2]["end_time"] is None
    # The next day's collection sees the run finished: its row is updated, none added.
    args[-1] = "second"
    runs[1] = _run(2, "d.t [2019-10-01]", execution=120_000)
    assert collect_main([*args, "--input", _write_runs(tmp_path / "b.jsonl", runs)]) == 0
    second = {r["run_id"]: r for r in _table(spark, schema_name)}
    assert len(_table(spark, schema_name)) == 2
    assert second[2]["result_state"] == "SUCCESS" and second[2]["execution_seconds"] == 120.0
    assert second[2]["airflow_run_id"] == "second"
    assert second[1] == {**first[1], "airflow_run_id": "second"}


def test_a_missing_runs_file_or_bad_prices_fail_in_one_line(spark, schema_name, tmp_path):
    args = ["--ds", "2019-10-02", "--catalog", "spark_catalog", "--monitoring-schema", schema_name]
    missing = str(tmp_path / "none.jsonl")
    with pytest.raises(
        SystemExit, match=r"collect_job_runs failed: .*none.jsonl does not exist: .*list_job_runs"
    ):
        collect_main([*args, "--input", missing, "--prices", AZURE_LIST_PRICES.as_parameter()])
    with pytest.raises(
        SystemExit, match="collect_job_runs failed: --prices lacks jobs_usd_per_dbu"
    ):
        collect_main([*args, "--input", missing, "--prices", '{"name": "x", "nodes": {}}'])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"run_id": 1}\nnot json\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl, line 2: not JSON"):
        collect_main([*args, "--input", str(bad), "--prices", AZURE_LIST_PRICES.as_parameter()])


def test_the_report_shows_failures_retries_the_growing_job_and_the_cost(
    spark, schema_name, tmp_path, capsys
):
    rng = random.Random(3)
    runs, run_id = [], 100
    for i in range(16):  # 16 daily dates of two jobs: one grows 6% a run, one is flat
        ds = (date(2019, 10, 1) + timedelta(days=i)).isoformat()
        for name, seconds in (
            (f"offline_feature_table.build_user_features [{ds}]", 300 * 1.06**i),
            (
                f"online_feature_table.publish_online_features [{ds}]",
                300 * (1 + rng.uniform(-0.2, 0.2)),
            ),
        ):
            run_id += 1
            runs.append(_run(run_id, name, execution=int(seconds * 1000)))
    failed = _run(run_id + 1, "online_feature_table.publish_online_features [2019-10-16]")
    failed["state"] = {
        "life_cycle_state": "TERMINATED",
        "result_state": "FAILED",
        "state_message": "Task failed with error: boom",
    }
    runs.append(failed)
    collect = [
        "--ds",
        "2019-10-17",
        "--catalog",
        "spark_catalog",
        "--monitoring-schema",
        schema_name,
    ]
    collect += ["--prices", AZURE_LIST_PRICES.as_parameter()]
    assert collect_main([*collect, "--input", _write_runs(tmp_path / "runs.jsonl", runs)]) == 0
    end = datetime.fromtimestamp((T0 + (run_id + 2) * 1_000_000) / 1000, tz=UTC).isoformat()
    output = str(tmp_path / "report" / "operations")
    report = [
        "--ds",
        "2019-10-17",
        "--catalog",
        "spark_catalog",
        "--monitoring-schema",
        schema_name,
    ]
    assert report_main([*report, "--end-time", end, "--days", "60", "--output", output]) == 0
    out = capsys.readouterr().out
    assert "GROWING offline_feature_table.build_user_features" in out
    summary = json.loads((tmp_path / "report" / "operations.json").read_text())
    assert (summary["runs"], summary["failed"], summary["retries"]) == (33, 1, 1)
    assert summary["growing"] == ["offline_feature_table.build_user_features"]
    jobs = {f"{j['dag_id']}.{j['task_id']}": j for j in summary["jobs"]}
    assert jobs["online_feature_table.publish_online_features"]["trend"]["status"] == STEADY
    assert jobs["online_feature_table.publish_online_features"]["failed"] == 1
    [failure] = summary["failures"]
    assert (
        failure["logical_date"] == "2019-10-16"
        and failure["message"] == "Task failed with error: boom"
    )
    hourly = 2 * D4.dbu_per_hour * 0.30 + 2 * D4.vm_usd_per_hour
    expected = sum(hourly * (60 + r["tasks"][0]["execution_duration"] / 1000) / 3600 for r in runs)
    assert summary["estimated_cost_usd"] == pytest.approx(expected)
    by_day = summary["cost_by_day"]
    assert sum(sum(d.values()) for d in by_day.values()) == pytest.approx(expected)
    assert set(by_day["2019-10-01"]) == {"offline_feature_table", "online_feature_table"}
    assert summary["daily_chain"]["logical_date"] == "2019-10-16"
    page = (tmp_path / "report" / "operations.html").read_text()
    assert '<td class="growing">growing</td>' in page and "Task failed with error: boom" in page
    assert "<script" not in page and "<link" not in page and "<img" not in page  # self-contained
    # A window that holds none of the runs reports zero runs.
    early = datetime(2019, 1, 1, tzinfo=UTC).isoformat()
    assert report_main([*report, "--end-time", early, "--days", "1", "--output", output]) == 0
    assert json.loads((tmp_path / "report" / "operations.json").read_text())["runs"] == 0


def test_the_report_refuses_a_catalog_without_the_table(spark, schema_name, tmp_path):
    with pytest.raises(
        SystemExit,
        match=r"report_operations failed: .*job_runs does not exist: run collect_job_runs",
    ):
        report_main(
            [
                "--ds",
                "2019-10-17",
                "--catalog",
                "spark_catalog",
                "--monitoring-schema",
                schema_name,
                "--end-time",
                "2019-10-18T00:00:00",
                "--output",
                str(tmp_path / "x"),
            ]
        )


def test_operations_module_names_the_failed_states_of_the_collection():
    assert operations.failed({"result_state": "TIMEDOUT", "life_cycle_state": "TERMINATED"})
    assert operations.failed({"result_state": None, "life_cycle_state": "INTERNAL_ERROR"})
    assert not operations.failed({"result_state": "SUCCESS", "life_cycle_state": "TERMINATED"})

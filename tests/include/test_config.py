"""Environment config and the runs/submit payload built from it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.providers.databricks.utils.databricks import normalise_json_content

from ecom_airflow.config import JOB_LIBRARIES, LOCAL, current_environment
from ecom_airflow.tasks import databricks_job, job_parameters, submit_run_payload

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PROVIDED = {"pyspark", "delta-spark"}  # part of the Databricks Runtime


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_job_libraries_match_the_job_requirements():
    required = {n: v for n, v in _pins(ROOT / "spark_jobs/requirements.txt").items()}
    configured = dict(pin.split("==") for pin in JOB_LIBRARIES)
    assert configured == {n: v for n, v in required.items() if n not in RUNTIME_PROVIDED}


def test_local_is_the_default_environment(monkeypatch):
    monkeypatch.delenv("ECOM_ENV", raising=False)
    assert current_environment() is LOCAL


def test_unknown_environment_fails_loudly(monkeypatch):
    monkeypatch.setenv("ECOM_ENV", "staging")
    with pytest.raises(ValueError, match="staging"):
        current_environment()


def test_databricks_environment_requires_pinned_code(monkeypatch):
    monkeypatch.setenv("ECOM_ENV", "prod")
    monkeypatch.delenv("ECOM_GIT_URL", raising=False)
    monkeypatch.delenv("ECOM_GIT_REF", raising=False)
    with pytest.raises(ValueError, match="ECOM_GIT_URL and ECOM_GIT_REF"):
        current_environment()


def test_local_payload_runs_the_script_from_the_project_root():
    payload = submit_run_payload(
        LOCAL,
        "ingest_events.py",
        {"--ds": "{{ ds }}"},
        timeout=timedelta(minutes=20),
        task_key="ingest_events",
    )
    assert payload == {
        "tasks": [
            {
                "task_key": "ingest_events",
                "new_cluster": LOCAL.new_cluster,
                "spark_python_task": {
                    "python_file": "spark_jobs/ingest_events.py",
                    "parameters": ["--ds", "{{ ds }}"],
                },
            }
        ],
        "timeout_seconds": 1200,
    }


def test_prod_payload_pins_git_source_libraries_and_cost_tags(monkeypatch):
    monkeypatch.setenv("ECOM_ENV", "prod")
    monkeypatch.setenv("ECOM_GIT_URL", "https://git.example.com/ecom.git")
    monkeypatch.setenv("ECOM_GIT_REF", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("ECOM_CLUSTER_POLICY_ID", "ABC123")
    env = current_environment()
    payload = submit_run_payload(env, "ingest_events.py", {}, timeout=timedelta(hours=1))
    assert payload["git_source"] == {
        "git_url": "https://git.example.com/ecom.git",
        "git_provider": "gitHub",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
    }
    [task] = payload["tasks"]
    assert task["spark_python_task"]["source"] == "GIT"
    assert task["new_cluster"]["policy_id"] == "ABC123"
    assert task["new_cluster"]["custom_tags"] == {
        "project": "ecom-ml",
        "env": "prod",
        "pipeline": "{{ dag.dag_id }}",  # rendered by Airflow: tests/deploy/test_payloads.py
        "task": "{{ task.task_id }}",
    }
    assert "autoscale" in task["new_cluster"]
    assert "libraries" not in task  # the ingest imports no job library (SCRIPT_LIBRARIES)
    [training] = submit_run_payload(env, "train_models.py", {}, timeout=timedelta(hours=1))["tasks"]
    wanted = ("mlflow", "scikit-learn", "pandas")
    pins = [pin for pin in JOB_LIBRARIES if pin.split("==")[0] in wanted]
    assert training["libraries"] == [{"pypi": {"package": pin}} for pin in pins]
    assert env.catalog == "ecom_prod"
    # The provider normalises the payload before sending it: it must hold no None anywhere.
    normalise_json_content(payload)


def test_git_tag_is_used_for_a_release_ref(monkeypatch):
    monkeypatch.setenv("ECOM_ENV", "dev")
    monkeypatch.setenv("ECOM_GIT_URL", "https://git.example.com/ecom.git")
    monkeypatch.setenv("ECOM_GIT_REF", "v1.4.0")
    assert current_environment().git_source["git_tag"] == "v1.4.0"


@pytest.mark.parametrize("script", ["../etc/passwd.py", "jobs/x.py", "ingest_events"])
def test_script_must_be_a_python_file_in_spark_jobs(script):
    with pytest.raises(ValueError, match="spark_jobs"):
        submit_run_payload(LOCAL, script, {}, timeout=timedelta(minutes=1))


def test_parameters_are_long_options_in_order():
    assert job_parameters({"--ds": "2019-10-01", "--catalog": "c"}) == [
        "--ds",
        "2019-10-01",
        "--catalog",
        "c",
    ]
    with pytest.raises(ValueError, match="long option"):
        job_parameters({"ds": "x"})


def test_a_true_parameter_is_a_bare_flag_and_false_leaves_it_out():
    assert job_parameters({"--check-skew": True, "--dry-run": False, "--ds": "d"}) == [
        "--check-skew",
        "--ds",
        "d",
    ]


def test_operator_timeout_is_passed_on_to_databricks():
    op = databricks_job(
        task_id="t", script="ingest_events.py", parameters={}, timeout=timedelta(minutes=7)
    )
    assert op.execution_timeout == timedelta(minutes=7)
    assert op.json["timeout_seconds"] == 420
    assert op.idempotency_token == "{{ ti.id }}"


def test_databricks_streams_with_auto_loader_and_waits_for_the_exporter_marker(monkeypatch):
    monkeypatch.setenv("ECOM_ENV", "prod")
    monkeypatch.setenv("ECOM_GIT_URL", "https://github.com/acme/ecom-ml-platform")
    monkeypatch.setenv("ECOM_GIT_REF", "v1.4.0")
    env = current_environment()
    assert (env.landing_source, env.landing_completeness) == ("autoloader", "marker _SUCCESS")
    assert env.landing_continuous is False
    assert env.checkpoints_dir == "/Volumes/ecom_prod/raw/checkpoints"
    monkeypatch.setenv("ECOM_LANDING_COMPLETENESS", "files 4")
    monkeypatch.setenv("ECOM_LANDING_CONTINUOUS", "true")
    env = current_environment()
    assert (env.landing_completeness, env.landing_continuous) == ("files 4", True)
    assert (LOCAL.landing_source, LOCAL.landing_completeness) == ("files", "settle 10s")

"""The runs/submit payloads of dev and prod: rendered as Airflow renders them, validated against
the Jobs API types of databricks-sdk (``deploy/payloads.py``, ``deploy/jobs_api_schema.py``).

No Spark, no Airflow database: each render parses ``dags/`` once (a few seconds).
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from deploy import payloads as cli
from deploy.jobs_api_schema import Problem, sdk_round_trip, validate_submit_payload
from ecom_airflow.config import (
    DEV_RUNTIME_VERSION,
    PROD_RUNTIME_VERSION,
    SERVERLESS_ENVIRONMENT_VERSION,
    Environment,
    current_environment,
    script_libraries,
)
from ecom_airflow.tasks import SERVERLESS_ENVIRONMENT_KEY, job_task, submit_run_payload

GIT_URL = "https://git.example.com/acme/ecom-ml-platform.git"
GIT_REFS = {"dev": "v1.4.0-rc.1", "prod": "0123456789abcdef0123456789abcdef01234567"}
RUNTIMES = {"dev": DEV_RUNTIME_VERSION, "prod": PROD_RUNTIME_VERSION}
OPTIONAL_VARIABLES = (
    "ECOM_CLUSTER_POLICY_ID",
    "ECOM_INSTANCE_POOL_ID",
    "ECOM_DRIVER_INSTANCE_POOL_ID",
    "ECOM_GIT_PROVIDER",
    "ECOM_ONLINE_SYNC_PIPELINE_ID",
    "ECOM_COMPUTE",
    "ECOM_POLICY_LIBRARIES",
)


def _script(task: dict) -> str:
    return task["spark_python_task"]["python_file"].removeprefix("spark_jobs/")


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*OPTIONAL_VARIABLES, "ECOM_ENV", "ECOM_GIT_URL", "ECOM_GIT_REF"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request) -> tuple[str, list[cli.Payload]]:
    env = request.param
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clean_environment(monkeypatch)
        return env, cli.render_payloads(env, git_url=GIT_URL, git_ref=GIT_REFS[env])


@pytest.fixture(scope="module")
def serverless() -> list[cli.Payload]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clean_environment(monkeypatch)
        return cli.render_payloads(
            "prod", git_url=GIT_URL, git_ref=GIT_REFS["prod"], compute="serverless"
        )


@pytest.fixture
def databricks_env(monkeypatch):
    _clean_environment(monkeypatch)
    monkeypatch.setenv("ECOM_ENV", "prod")
    monkeypatch.setenv("ECOM_GIT_URL", GIT_URL)
    monkeypatch.setenv("ECOM_GIT_REF", "v1.4.0")
    return monkeypatch


def _valid_task() -> dict:
    return {
        "task_key": "train_propensity_model",
        "new_cluster": {
            "spark_version": "17.3.x-scala2.13",
            "node_type_id": "Standard_D4ds_v5",
            "autoscale": {"min_workers": "2", "max_workers": "8"},
            "azure_attributes": {
                "availability": "SPOT_WITH_FALLBACK_AZURE",
                "first_on_demand": "1",
            },
            "custom_tags": {"project": "ecom-ml", "pipeline": "model_training"},
            "data_security_mode": "SINGLE_USER",
        },
        "spark_python_task": {
            "python_file": "spark_jobs/train_models.py",
            "parameters": ["--ds", "2019-11-01"],
            "source": "GIT",
        },
        "libraries": [{"pypi": {"package": "mlflow==3.17.2"}}],
    }


def _valid_body() -> dict:
    """A valid body as the provider sends it (numbers as strings): the multi-task form."""
    return {
        "tasks": [_valid_task()],
        "git_source": {"git_url": GIT_URL, "git_provider": "gitHub", "git_tag": "v1.4.0"},
        "timeout_seconds": "3600",
        "run_name": "model_training.train_propensity_model [2019-11-01]",
        "idempotency_token": "00000000-0000-0000-0000-000000000000",
    }


# -- every payload of dev and prod ---------------------------------------------------------------


def test_every_payload_renders_and_validates(rendered):
    _, payloads = rendered
    assert len(payloads) >= 12
    assert {"ingest_events", "build_user_features", "train_propensity_model", "score_users"} <= {
        p.task_id for p in payloads
    }
    problems = [f"{p.file} {problem}" for p in payloads for problem in p.problems]
    assert problems == []


def test_every_payload_is_one_task_in_the_multi_task_form_and_round_trips_the_sdk(rendered):
    _, payloads = rendered
    for payload in payloads:
        [task] = payload.body["tasks"]
        assert task["task_key"] == payload.task_id
        assert not {"new_cluster", "spark_python_task", "libraries"} & payload.body.keys()
        assert sdk_round_trip(payload.body) == payload.body, payload.file


def test_job_clusters_carry_the_environment_and_per_pipeline_cost_tags(rendered):
    env, payloads = rendered
    for payload in payloads:
        cluster = job_task(payload.body)["new_cluster"]
        assert cluster["custom_tags"] == {
            "project": "ecom-ml",
            "env": env,
            "pipeline": payload.dag_id,
            "task": payload.task_id,
        }
        assert cluster["spark_version"] == RUNTIMES[env]
        assert set(cluster["autoscale"]) == {"min_workers", "max_workers"}
        assert cluster["azure_attributes"]["availability"] == "SPOT_WITH_FALLBACK_AZURE"


def test_code_and_libraries_are_pinned_and_templates_rendered(rendered):
    env, payloads = rendered
    ref_key = "git_commit" if env == "prod" else "git_tag"
    for payload in payloads:
        body = payload.body
        assert body["git_source"] == {
            "git_url": GIT_URL,
            "git_provider": "gitHub",
            ref_key: GIT_REFS[env],
        }
        task = job_task(body)
        assert task["spark_python_task"]["source"] == "GIT"
        # Each run installs the job libraries its script imports (SCRIPT_LIBRARIES), pinned.
        pins = script_libraries(_script(task))
        assert task.get("libraries", []) == [{"pypi": {"package": pin}} for pin in pins]
        assert body["run_name"] == f"{payload.dag_id}.{payload.task_id} [{payload.logical_date}]"
        assert body["idempotency_token"] == str(cli.NIL_TI_ID)
    ingest = next(p for p in payloads if p.task_id == "ingest_events")
    parameters = ingest.body["tasks"][0]["spark_python_task"]["parameters"]
    assert parameters[parameters.index("--ds") + 1] == "2019-11-01"
    training = next(p for p in payloads if p.task_id == "train_propensity_model")
    parameters = training.body["tasks"][0]["spark_python_task"]["parameters"]
    assert parameters[parameters.index("--reason") + 1] == "schedule"  # the param's default
    assert parameters[parameters.index("--catalog") + 1] == f"ecom_{env}"
    # Each training passes its environment's promotion margin (ROC AUC; precision@10).
    margins = {
        "train_propensity_model": Environment.promotion_margin,
        "train_recommender": Environment.recommender_promotion_margin,
    }
    for task_id, margin in margins.items():
        task = next(p for p in payloads if p.task_id == task_id)
        parameters = task.body["tasks"][0]["spark_python_task"]["parameters"]
        assert parameters[parameters.index("--margin") + 1] == str(margin), task_id


def test_performance_monitoring_passes_the_environments_decay_rule(rendered):
    """The run of 2019-11-01 measures the score date a label horizon earlier, judged by the
    environment's thresholds (the summary carries them on to the branching sensor)."""
    _, payloads = rendered
    monitor = next(p for p in payloads if p.task_id == "monitor_performance")
    parameters = monitor.body["tasks"][0]["spark_python_task"]["parameters"]
    flags = dict(zip(parameters[::2], parameters[1::2], strict=True))
    assert (
        monitor.body["tasks"][0]["spark_python_task"]["python_file"]
        == "spark_jobs/monitor_performance.py"
    )
    assert (flags["--ds"], flags["--start-ds"], flags["--end-ds"]) == (
        "2019-11-01",
        "2019-10-25",
        "2019-10-25",
    )
    assert flags["--max-ece"] == str(Environment.performance_max_ece)
    assert flags["--max-auc-drop"] == str(Environment.performance_max_auc_drop)
    assert flags["--min-rows"] == str(Environment.performance_min_rows)


# -- the command -----------------------------------------------------------------------------------


def test_rendering_twice_writes_identical_bytes(tmp_path, monkeypatch, capsys):
    _clean_environment(monkeypatch)
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["render", "--env", "prod", "--git-url", GIT_URL, "--git-ref", "v1.4.0"]
        assert cli.main([*args, "--out", str(out)]) == 0
        outputs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")})
    assert outputs[0] == outputs[1]
    index = json.loads(outputs[0]["index.json"])
    assert sorted(outputs[0]) == sorted([*index["files"], "index.json"])
    assert index["git_source_is_placeholder"] is False
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == 2 * len(index["files"])
    body = json.loads(outputs[0]["model_training/train_propensity_model.json"])
    assert job_task(body)["new_cluster"]["custom_tags"]["pipeline"] == "model_training"


def test_the_command_exits_non_zero_listing_every_problem(monkeypatch, tmp_path, capsys):
    broken = cli.Payload(
        dag_id="d",
        task_id="t",
        logical_date="2019-11-01",
        body={},
        problems=(Problem("$.new_cluster.nodetype_id", "unknown key"), Problem("$.x", "y")),
    )
    monkeypatch.setattr(cli, "render_payloads", lambda *a, **k: [broken])
    assert cli.main(["render", "--env", "dev", "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("INVALID (2) d.t [2019-11-01]")
    assert "d/t.json $.new_cluster.nodetype_id: unknown key" in captured.err
    assert "d/t.json $.x: y" in captured.err
    assert "placeholder" in captured.out  # no git source was given


def test_a_moving_branch_is_refused_before_anything_is_rendered(monkeypatch, tmp_path, capsys):
    _clean_environment(monkeypatch)
    out = tmp_path / "out"
    assert cli.main(["render", "--env", "prod", "--git-ref", "main", "--out", str(out)]) == 2
    assert "moving branch" in capsys.readouterr().err
    assert not out.exists()


def test_validate_checks_hand_made_bodies(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_valid_body()))
    body = _valid_body()
    job_task(body)["spark_python_task"]["parameters"] = ["--ds", "{{ ds }}"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body))
    assert cli.main(["validate", str(good)]) == 0
    assert cli.main(["validate", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{bad} $.tasks[0].spark_python_task.parameters[1]: Jinja left unrendered: '{{{{ ds }}}}'"
        in err
    )


def test_stale_files_are_removed_and_a_foreign_folder_is_refused(tmp_path):
    def payload(task_id: str) -> cli.Payload:
        return cli.Payload("dag", task_id, "2019-11-01", {"run_name": task_id}, ())

    out = tmp_path / "out"
    cli.write_payloads([payload("a"), payload("b")], out, {"env": "dev"})
    cli.write_payloads([payload("a")], out, {"env": "dev"})
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "dag/a.json",
        "index.json",
    ]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(cli.RenderError, match="not empty"):
        cli.write_payloads([payload("a")], foreign, {"env": "dev"})


# -- config: git ref and instance pool ------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["main", "master", "HEAD", "develop", "refs/heads/release-1.4", "0123abc", "refs/x"]
)
def test_a_ref_that_is_not_a_pinned_tag_or_commit_is_refused(databricks_env, ref):
    databricks_env.setenv("ECOM_GIT_REF", ref)
    with pytest.raises(ValueError, match="not a pinned tag or commit"):
        current_environment()


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("v1.4.0", {"git_tag": "v1.4.0"}),
        ("refs/tags/v1.4.0", {"git_tag": "v1.4.0"}),
        ("20240101", {"git_tag": "20240101"}),
        (
            "0123456789ABCDEF0123456789abcdef01234567",
            {"git_commit": "0123456789abcdef" * 2 + "01234567"},
        ),
    ],
)
def test_tags_and_full_commits_are_pinned(databricks_env, ref, expected):
    databricks_env.setenv("ECOM_GIT_REF", ref)
    git_source = current_environment().git_source
    refs = {k: v for k, v in git_source.items() if k in ("git_branch", "git_tag", "git_commit")}
    assert refs == expected


def test_an_instance_pool_replaces_node_type_and_spot_attributes(databricks_env):
    databricks_env.setenv("ECOM_INSTANCE_POOL_ID", "0101-pool-workers")
    databricks_env.setenv("ECOM_CLUSTER_POLICY_ID", "POLICY1")
    databricks_env.setenv("ECOM_GIT_PROVIDER", "azureDevOpsServices")
    body = submit_run_payload(
        current_environment(), "ingest_events.py", {"--ds": "{{ ds }}"}, timeout=timedelta(hours=1)
    )
    cluster = job_task(body)["new_cluster"]
    assert cluster["instance_pool_id"] == cluster["driver_instance_pool_id"] == "0101-pool-workers"
    assert not {"node_type_id", "driver_node_type_id", "azure_attributes"} & cluster.keys()
    assert cluster["policy_id"] == "POLICY1"
    assert body["git_source"]["git_provider"] == "azureDevOpsServices"
    assert validate_submit_payload(body) == []

    databricks_env.setenv("ECOM_DRIVER_INSTANCE_POOL_ID", "0101-pool-driver")
    cluster = job_task(
        submit_run_payload(
            current_environment(), "ingest_events.py", {}, timeout=timedelta(hours=1)
        )
    )["new_cluster"]
    assert cluster["driver_instance_pool_id"] == "0101-pool-driver"

    databricks_env.delenv("ECOM_INSTANCE_POOL_ID")
    with pytest.raises(ValueError, match="ECOM_INSTANCE_POOL_ID"):
        current_environment()


# -- the schema validation -------------------------------------------------------------------------


def test_the_valid_body_has_no_problem():
    assert validate_submit_payload(_valid_body()) == []


def _problems(mutate) -> list[str]:
    body = copy.deepcopy(_valid_body())
    mutate(body)
    return [str(p) for p in validate_submit_payload(body)]


def test_an_unknown_key_is_reported_with_its_path_and_the_closest_key():
    def typo(body):
        cluster = job_task(body)["new_cluster"]
        cluster["nodetype_id"] = cluster.pop("node_type_id")
        job_task(body)["new_clustr"] = {}
        body["git_sourc"] = {}

    assert _problems(typo) == [
        "$.git_sourc: unknown key of runs/submit; did you mean 'git_source'?",
        "$.tasks[0].new_cluster.nodetype_id: unknown key of compute.ClusterSpec; did you mean "
        "'node_type_id'?",
        "$.tasks[0].new_clustr: unknown key of jobs.SubmitTask; did you mean 'new_cluster'?",
    ]


def test_wrong_types_are_reported_with_their_path():
    def wrong(body):
        task = job_task(body)
        task["new_cluster"]["autoscale"]["max_workers"] = "eight"
        task["new_cluster"]["custom_tags"]["pipeline"] = 3
        task["spark_python_task"]["parameters"] = "--ds 2019-11-01"
        task["libraries"][0]["pypi"] = "mlflow"
        body["timeout_seconds"] = True
        body["git_source"]["git_provider"] = "github.com"

    assert _problems(wrong) == [
        "$.git_source.git_provider: 'github.com' is not one of jobs.GitProvider: "
        "awsCodeCommit, azureDevOpsServices, bitbucketCloud, bitbucketServer, gitHub, "
        "gitHubEnterprise, gitLab, gitLabEnterpriseEdition",
        "$.tasks[0].libraries[0].pypi: expected an object (compute.PythonPyPiLibrary), got string",
        "$.tasks[0].new_cluster.autoscale.max_workers: expected an integer, got string 'eight'",
        "$.tasks[0].new_cluster.custom_tags.pipeline: expected a string, got number 3",
        "$.tasks[0].spark_python_task.parameters: expected an array, got string",
        "$.timeout_seconds: expected an integer, got boolean True",
    ]


def test_missing_required_fields_are_reported_with_their_path():
    def missing(body):
        task = job_task(body)
        del task["spark_python_task"]["python_file"]
        del task["task_key"]
        del body["git_source"]["git_provider"]
        task["libraries"].append({"pypi": {}})

    assert _problems(missing) == [
        "$.git_source.git_provider: missing (required by jobs.GitSource)",
        "$.tasks[0].libraries[1].pypi.package: missing (required by compute.PythonPyPiLibrary)",
        "$.tasks[0].spark_python_task.python_file: missing (required by jobs.SparkPythonTask)",
        "$.tasks[0].task_key: missing (required by jobs.SubmitTask)",
    ]


def test_api_rules_beyond_types():
    def pool_with_node_type_and_two_refs(body):
        task = job_task(body)
        task["new_cluster"]["instance_pool_id"] = "pool"
        body["git_source"]["git_branch"] = "main"
        task["notebook_task"] = {"notebook_path": "x"}

    assert _problems(pool_with_node_type_and_two_refs) == [
        "$.git_source: sets git_branch and git_tag; the API allows one",
        "$.tasks[0]: needs exactly one task type (found: notebook_task, spark_python_task)",
        "$.tasks[0].new_cluster.azure_attributes: not allowed with instance_pool_id (the pool "
        "defines it)",
        "$.tasks[0].new_cluster.node_type_id: not allowed with instance_pool_id (the pool "
        "defines it)",
    ]


def test_compute_task_keys_and_environments_are_checked():
    def two_computes_and_a_duplicate(body):
        job_task(body)["existing_cluster_id"] = "0101-abc"
        body["tasks"].append({**_valid_task(), "new_cluster": {"spark_version": "17.3.x"}})

    assert _problems(two_computes_and_a_duplicate) == [
        "$.tasks: task_key 'train_propensity_model' is used by more than one task",
        "$.tasks[0]: names more than one compute (new_cluster, existing_cluster_id)",
    ]

    def serverless_with_libraries_and_an_unknown_environment(body):
        task = job_task(body)
        del task["new_cluster"]
        task["environment_key"] = "libs"
        body["environments"] = [{"environment_key": "other", "spec": {"dependencies": ["x"]}}]

    assert _problems(serverless_with_libraries_and_an_unknown_environment) == [
        "$.tasks[0].environment_key: 'libs' is not one of the run's environments",
        "$.tasks[0].libraries: not allowed on serverless compute (an environment_key, or no "
        "compute): list the libraries as the dependencies of the task's environment",
    ]
    # No compute at all is serverless with the default environment; a pipeline task has none.
    assert _problems(lambda body: job_task(body).pop("new_cluster")) == [
        "$.tasks[0].libraries: not allowed on serverless compute (an environment_key, or no "
        "compute): list the libraries as the dependencies of the task's environment"
    ]
    pipeline = {"tasks": [{"task_key": "sync", "pipeline_task": {"pipeline_id": "p"}}]}
    assert validate_submit_payload(pipeline) == []


def test_the_single_task_form_is_refused_except_on_jobs_api_2_0():
    task = _valid_task()
    del task["task_key"]
    flat = {**{k: v for k, v in _valid_body().items() if k != "tasks"}, **task}
    assert [str(p) for p in validate_submit_payload(flat)] == [
        "$.libraries: a task field at the top level; move it into a task",
        "$.new_cluster: a task field at the top level; move it into a task",
        "$.spark_python_task: a task field at the top level; move it into a task",
        "$.tasks: missing: Jobs API 2.2 runs/submit takes its tasks in 'tasks' ([{task_key, "
        "spark_python_task, ...}]); the single-task form with the task's fields at the top "
        "level is Jobs API 2.0's",
    ]
    assert validate_submit_payload(flat, api_version="2.0") == []


def test_task_fields_next_to_tasks_and_nulls():
    body = {
        "tasks": [{"pipeline_task": {"pipeline_id": "p"}}],
        "timeout_seconds": 3600,
        "spark_python_task": {"python_file": "x.py"},
        "run_name": None,
    }
    assert [str(p) for p in validate_submit_payload(body)] == [
        "$.run_name: is null; leave the key out instead",
        "$.spark_python_task: a task field at the top level; move it into a task",
        "$.tasks[0].task_key: missing (required by jobs.SubmitTask)",
    ]


# -- serverless jobs compute ----------------------------------------------------------------------


def test_serverless_payloads_name_an_environment_with_the_job_libraries(serverless):
    assert serverless and all(not p.problems for p in serverless), [
        f"{p.file} {problem}" for p in serverless for problem in p.problems
    ]
    for payload in serverless:
        task = job_task(payload.body)
        assert task["environment_key"] == SERVERLESS_ENVIRONMENT_KEY
        assert not {"new_cluster", "libraries", "existing_cluster_id"} & task.keys()
        pins = list(script_libraries(_script(task)))
        spec = {"environment_version": SERVERLESS_ENVIRONMENT_VERSION}
        assert payload.body["environments"] == [
            {
                "environment_key": SERVERLESS_ENVIRONMENT_KEY,
                "spec": {**spec, "dependencies": pins} if pins else spec,
            }
        ]
        assert sdk_round_trip(payload.body) == payload.body, payload.file


def test_the_command_renders_serverless_next_to_the_cluster_form(tmp_path, monkeypatch, capsys):
    _clean_environment(monkeypatch)
    args = ["render", "--env", "dev", "--git-url", GIT_URL, "--git-ref", "v1.4.0"]
    assert cli.main([*args, "--compute", "serverless", "--out", str(tmp_path / "s")]) == 0
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["compute"] == "serverless"
    assert "serverless, environment version 4" in capsys.readouterr().out
    assert cli.main(["render", "--env", "local", "--compute", "serverless"]) == 2
    assert "no serverless compute" in capsys.readouterr().err


def test_a_policy_that_installs_the_libraries_leaves_them_out_of_every_run(monkeypatch):
    _clean_environment(monkeypatch)
    monkeypatch.setenv("ECOM_CLUSTER_POLICY_ID", "POLICY1")
    monkeypatch.setenv("ECOM_POLICY_LIBRARIES", "true")
    rendered = cli.render_payloads("prod", git_url=GIT_URL, git_ref=GIT_REFS["prod"])
    jobs = [job_task(p.body) for p in rendered if "spark_python_task" in job_task(p.body)]
    assert jobs and all(not p.problems for p in rendered)
    assert all(task["new_cluster"]["policy_id"] == "POLICY1" for task in jobs)
    assert [task for task in jobs if "libraries" in task] == []


@pytest.mark.parametrize(
    ("variables", "refusal"),
    [
        (
            {"ECOM_POLICY_LIBRARIES": "true"},
            "ECOM_POLICY_LIBRARIES=true needs ECOM_CLUSTER_POLICY_ID",
        ),
        ({"ECOM_POLICY_LIBRARIES": "yes", "ECOM_CLUSTER_POLICY_ID": "P"}, "use true or false"),
    ],
)
def test_policy_libraries_without_a_policy_or_a_boolean_are_refused(
    databricks_env, variables, refusal
):
    for name, value in variables.items():
        databricks_env.setenv(name, value)
    with pytest.raises(ValueError, match=refusal):
        current_environment()


def test_an_unknown_compute_is_refused(databricks_env):
    databricks_env.setenv("ECOM_COMPUTE", "gpu")
    with pytest.raises(ValueError, match="ECOM_COMPUTE='gpu' is unknown"):
        current_environment()

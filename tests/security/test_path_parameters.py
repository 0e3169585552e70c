"""Job parameters that name files or folders stay inside the Volumes on the local workspace.

The local workspace runs a job with this user's rights and serves its Volumes through the Files
API, so an output in /tmp, a relative path (the project folder), a ``..`` or a symlink out of
the root would let a run write anywhere, or copy any file of the machine where it can be
downloaded. Every job entry point is called here, in process, with ``LOCAL_VOLUMES_ROOT`` set
(as the workspace sets it) and each path argument replaced by such a value, while Spark and
MLflow are trip wires (tests/support/tripwires.py): the job must end with one line naming the
argument and the value, before a Spark session is even used. A scan of the job folders makes
sure a new path argument is checked, and the workspace refuses the same values at runs/submit.
"""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clickstream.core import jobs
from clickstream.core.volumes import local_path
from ecom_airflow.config import AZURE_LIST_PRICES
from local.spark.runtime import LocalLayout
from local.workspace.server import create_app
from tests.support.tripwires import TRIPPED, Tripwire, set_tripwires

ROOT = Path(__file__).resolve().parents[2]
JOB_DIRS = (ROOT / "spark_jobs", ROOT / "local" / "jobs")

D1, D2 = "2019-10-01", "2019-10-02"
VOLUME = "/Volumes/ecom/raw"
LANDING = f"{VOLUME}/landing/events"
RUNS = f"{VOLUME}/reports/pipeline_monitoring/job_runs.jsonl"
MONTHLY = f"{VOLUME}/incoming/2019-Oct.csv"
USERS = f"{VOLUME}/landing/ground_truth/users.csv"
CATALOG = ("--catalog", "spark_catalog")
MODEL = ("--model-name", "ecom_propensity")
EXPERIMENT = ("--experiment", "/Shared/ecom/propensity")

# entry point -> (valid arguments, every path argument it takes)
JOBS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "spark_jobs/ingest_events.py": (
        ("--ds", D1, *CATALOG, "--landing-dir", LANDING),
        ("--landing-dir",),
    ),
    "spark_jobs/ingest_events.py stream": (
        ("--ds", D1, *CATALOG, "--landing-dir", LANDING, "--checkpoint", f"{VOLUME}/checkpoints/i"),
        ("--landing-dir", "--checkpoint"),
    ),
    "spark_jobs/load_history.py": (
        ("--start-ds", D1, "--end-ds", D2, *CATALOG, "--landing-dir", LANDING),
        ("--landing-dir",),
    ),
    "spark_jobs/generate_events.py": (
        ("--start-date", D1, "--days", "1", "--landing-dir", LANDING),
        ("--landing-dir",),
    ),
    "spark_jobs/split_monthly_file.py": (
        ("--input", MONTHLY, "--landing-dir", LANDING),
        ("--input", "--landing-dir"),
    ),
    "spark_jobs/validate_data.py": (
        ("--ds", D1, *CATALOG, "--suite", "bronze_events", "--output", f"{VOLUME}/reports/q"),
        ("--output",),
    ),
    "spark_jobs/setup_catalog.py": (
        ("--volume-root", VOLUME, "--model-name", "ecom.ml.propensity", *CATALOG),
        ("--volume-root",),
    ),
    "spark_jobs/train_models.py": (
        ("--ds", D1, *CATALOG, *MODEL, *EXPERIMENT, "--ground-truth", USERS),
        ("--ground-truth",),
    ),
    "spark_jobs/train_recommender.py": (
        ("--ds", D1, *CATALOG, *MODEL, *EXPERIMENT, "--ground-truth", USERS),
        ("--ground-truth",),
    ),
    "spark_jobs/detect_drift.py": (
        ("--start-ds", D1, "--end-ds", D2, *CATALOG, *MODEL, *EXPERIMENT),
        ("--output",),
    ),
    "spark_jobs/monitor_performance.py": (
        ("--ds", "2019-10-09", *CATALOG, *MODEL, *EXPERIMENT),
        ("--output",),
    ),
    "spark_jobs/collect_job_runs.py": (
        ("--ds", D1, *CATALOG, "--input", RUNS, "--prices", AZURE_LIST_PRICES.as_parameter()),
        ("--input",),
    ),
    "spark_jobs/report_operations.py": (
        ("--ds", D1, *CATALOG, "--end-time", "2019-10-02T00:00:00+00:00"),
        ("--output",),
    ),
    "local/jobs/table_summary.py": ((*CATALOG,), ("--output",)),
    "local/jobs/export_job_runs.py": ((*CATALOG,), ("--output",)),
}
# A valid value of each path argument a job's valid arguments above leave out.
VALID = {"--output": f"{VOLUME}/reports/x/summary"}

# A job that does not start Spark (it writes plain files): its first real work is the wire.
FIRST_WORK = {"spark_jobs/generate_events.py": "build_world"}

# The refused values, by kind (the values hold the test's temporary folder, the ids do not).
KINDS = ("absolute", "relative", "dotdot", "symlink", "uri")


def _bad_value(kind: str, outside: Path) -> str:
    return {
        "absolute": f"{outside}/x",  # /tmp/.../outside/x
        "relative": "reports/x",  # resolved from the working folder
        "dotdot": "/Volumes/../../etc/passwd",
        "symlink": f"{VOLUME}/escape/x",  # escape -> outside
        "uri": f"file:{outside}/x",
    }[kind]


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the Volumes root, holding one file that must stay the only one."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for the jobs")
    return folder


@pytest.fixture
def volumes(tmp_path, outside, monkeypatch) -> Path:
    """The local workspace's Volumes root, as LOCAL_VOLUMES_ROOT, with every input the jobs
    read before Spark and a symlink pointing out of it; the working folder is a scratch one."""
    root = tmp_path / "volumes"
    base = root / VOLUME.removeprefix("/Volumes/")
    for day in (D1, D2):
        (base / "landing" / "events" / day).mkdir(parents=True)
        (base / "landing" / "events" / day / "events.csv").write_text("event_time\n")
    for path in (RUNS, MONTHLY, USERS):
        local = root / path.removeprefix("/Volumes/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("")
    (base / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("LOCAL_VOLUMES_ROOT", str(root))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # where a relative path would land
    return root


@pytest.fixture
def tripwires(monkeypatch):
    set_tripwires(monkeypatch)


def _run(entry: str, argv: list[str]) -> None:
    script = entry.split()[0]
    namespace = runpy.run_path(str(ROOT / script), run_name=f"job_{Path(script).stem}")
    main = namespace["main"]
    if script in FIRST_WORK:  # run_path returns a copy: patch the globals main runs with
        main.__globals__[FIRST_WORK[script]] = Tripwire(f"{Path(script).stem}'s work")
    main(argv)


def _argv(entry: str, flag: str | None = None, value: str = "") -> list[str]:
    args = list(JOBS[entry][0])
    replacements = {**VALID, **({flag: value} if flag else {})}
    for name, new in replacements.items():
        if name in args:
            args[args.index(name) + 1] = new
        elif name in JOBS[entry][1]:
            args += [name, new]
    return args


CASES = [
    pytest.param(entry, flag, kind, id=f"{entry.replace(' ', '-')}:{flag}:{kind}")
    for entry, (_, flags) in JOBS.items()
    for flag in flags
    for kind in KINDS
]


@pytest.mark.parametrize(("entry", "flag", "kind"), CASES)
def test_a_path_out_of_the_volumes_is_refused_in_one_line_before_spark(
    tripwires, volumes, outside, entry, flag, kind
):
    value = _bad_value(kind, outside)
    with pytest.raises(SystemExit) as refused:
        _run(entry, _argv(entry, flag, value))
    message = refused.value.code
    job = Path(entry.split()[0]).stem
    assert isinstance(message, str), f"exit code {message!r} instead of a message"
    assert message.startswith(f"{job} failed: {flag} {value!r} "), message
    assert "\n" not in message, message
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert list(Path.cwd().iterdir()) == []


@pytest.mark.parametrize("entry", list(JOBS))
def test_volume_paths_pass_the_check_and_reach_spark_or_mlflow(tripwires, volumes, entry):
    """The control: valid /Volumes values get past the path check and trip a wire (so the
    refusals above really happen before Spark and MLflow, and not for another reason)."""
    with pytest.raises(AssertionError, match=TRIPPED):
        _run(entry, _argv(entry))


def test_a_refusal_names_why(volumes, outside):
    def refusal(value: str) -> str:
        with pytest.raises(SystemExit) as refused:
            jobs.parse_arguments(_output_parser(), ["--output", value], "job")
        return str(refused.value.code)

    assert refusal("/tmp/x") == (
        "job failed: --output '/tmp/x' is not under /Volumes/ (the local workspace serves "
        "only its Volumes)"
    )
    assert refusal("/Volumes/../../etc/passwd").endswith(
        "has a '..' part (a path must stay inside the Volumes root)"
    )
    assert refusal(f"{VOLUME}/escape/x").endswith(
        "resolves outside the Volumes root (through a symlink)"
    )


def _output_parser():
    cli = jobs.parser(None)
    cli.add_argument("--output")
    return cli


def test_without_the_local_workspace_paths_are_left_alone(monkeypatch, tmp_path):
    """On Databricks (no LOCAL_VOLUMES_ROOT) Unity Catalog governs: nothing is mapped or
    refused, and tests may call the jobs with plain folders."""
    monkeypatch.delenv("LOCAL_VOLUMES_ROOT", raising=False)
    args = jobs.parse_arguments(_output_parser(), ["--output", str(tmp_path)], "job")
    assert args.output == str(tmp_path)
    assert local_path("reports/x") == "reports/x"


@pytest.mark.parametrize("kind", KINDS)
def test_local_path_refuses_what_is_not_a_volume_path_under_the_local_workspace(
    volumes, outside, kind
):
    """Defence in depth for library calls (an output derived from a parameter, a file name a
    job builds): the mapping itself refuses, whoever calls it."""
    value = _bad_value(kind, outside)
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        local_path(value)


def test_local_path_maps_a_volume_path_under_the_root(volumes):
    assert local_path(f"{VOLUME}/reports/x") == str(volumes.resolve() / "ecom/raw/reports/x")


# --- every path argument is checked ----------------------------------------------------------

# A flag whose name or help says it names a file or a folder...
PATH_NAME = re.compile(r"output|input|dir\b|folder|checkpoint|truth|root|path|file|summary|report")
PATH_HELP = re.compile(r"\b(path|folder|directory|file)\b|/Volumes|\bVolume\b|\.csv\b|\.jsonl?\b")
# ...is a checked path argument, or is listed here with the reason it is not one.
NOT_PATHS = {
    ("spark_jobs/train_models.py", "--drift-summary"): (
        "the summary's path is recorded as an MLflow run tag, never opened"
    ),
}


def _path_like_arguments() -> set[tuple[str, str, str]]:
    """(script, flag, dest) of every add_argument of the job scripts that looks like a path; a
    switch (store_true...) or a choice among fixed values cannot be one."""
    found = set()
    for path in sorted(p for folder in JOB_DIRS for p in folder.glob("*.py")):
        script = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
            ):
                continue
            flags = [a.value for a in node.args if isinstance(a, ast.Constant)]
            keywords = {k.arg: k.value for k in node.keywords}
            if not flags or "choices" in keywords:
                continue
            action = keywords.get("action")
            if isinstance(action, ast.Constant) and action.value in ("store_true", "store_false"):
                continue
            flag = next((f for f in flags if f.startswith("--")), flags[0])
            help_text = ast.unparse(keywords["help"]) if "help" in keywords else ""
            if PATH_NAME.search(flag) or PATH_HELP.search(help_text):
                dest = keywords["dest"].value if "dest" in keywords else flag.lstrip("-")
                found.add((script, flag, dest.replace("-", "_")))
    return found


def test_every_argument_that_names_a_file_is_checked():
    """A new --*-dir, --output-like or "a Volume path" argument is checked (jobs.PATH_ARGUMENTS
    or a PATH_SUFFIXES name) and tried by the tests above (JOBS), or is reviewed in NOT_PATHS."""
    found = _path_like_arguments()
    assert {("spark_jobs/detect_drift.py", "--output", "output")} <= found, "is the scan broken?"
    tried = {(entry.split()[0], flag) for entry, (_, flags) in JOBS.items() for flag in flags}
    problems = [
        f"{script} {flag}: "
        + ("not a checked path argument" if not jobs.is_path_argument(dest) else "not in JOBS")
        for script, flag, dest in sorted(found)
        if (script, flag) not in NOT_PATHS
        and not (jobs.is_path_argument(dest) and (script, flag) in tried)
    ]
    assert problems == [], problems


def test_the_not_paths_list_has_no_stale_entry():
    found = {(script, flag) for script, flag, _ in _path_like_arguments()}
    assert sorted(set(NOT_PATHS) - found) == []


# --- the workspace refuses them at runs/submit -----------------------------------------------


@pytest.fixture
def workspace_api(tmp_path, outside):
    """The local workspace's HTTP API in process (no cluster is started: a run stays queued)."""
    layout = LocalLayout(state=tmp_path / "state")
    layout.workspace_dir.mkdir(parents=True)
    (layout.volumes_root / "ecom" / "raw").mkdir(parents=True)
    (layout.volumes_root / "ecom" / "raw" / "escape").symlink_to(outside, target_is_directory=True)
    app = create_app(layout, token="t", mode="cold", slots=1, port=0)
    return TestClient(app, headers={"Authorization": "Bearer t"})


def _submit(client: TestClient, parameters: list[str], python_file="local/jobs/table_summary.py"):
    task = {"python_file": python_file, "parameters": parameters}
    body = {"run_name": "paths", "tasks": [{"task_key": "main", "spark_python_task": task}]}
    return client.post("/api/2.1/jobs/runs/submit", json=body)


@pytest.mark.parametrize(
    ("parameters", "index"),
    [
        (["--catalog", "spark_catalog", "--output", "/tmp/x"], 3),
        (["--catalog", "spark_catalog", "--output=/tmp/x"], 2),
        (["--catalog", "spark_catalog", "--output", "file:/etc/passwd"], 3),
        (["--catalog", "spark_catalog", "--output", "dbfs:/Volumes/ecom/raw/x"], 3),
        (["--catalog", "spark_catalog", "--output", "/Volumes/../../etc/passwd"], 3),
        (["--catalog", "spark_catalog", "--output", f"{VOLUME}/escape/x"], 3),
        (["--input", "/etc/passwd", "--ds", D1], 1),
    ],
    ids=["absolute", "flag=value", "file-uri", "dbfs-uri", "dotdot", "symlink", "input"],
)
def test_the_workspace_refuses_a_path_out_of_the_volumes_and_creates_no_run(
    workspace_api, parameters, index
):
    response = _submit(workspace_api, parameters)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error["message"].startswith(f"parameters[{index}] {parameters[index]!r}: "), error
    assert workspace_api.get("/api/2.1/jobs/runs/list").json()["runs"] == []


@pytest.mark.parametrize(
    "parameters",
    [
        ["--catalog", "spark_catalog", "--output", f"{VOLUME}/system/summary.json"],
        ["--catalog", "spark_catalog", f"--output={VOLUME}/system/summary.json"],
        ["--ds", D1, *MODEL, *EXPERIMENT],  # an MLflow experiment is a workspace path
    ],
    ids=["volume", "flag=volume", "experiment"],
)
def test_the_workspace_accepts_volume_paths(workspace_api, parameters):
    response = _submit(workspace_api, parameters)
    assert response.status_code == 200, response.text
    runs = workspace_api.get("/api/2.1/jobs/runs/list").json()["runs"]
    assert [r["run_id"] for r in runs] == [response.json()["run_id"]]

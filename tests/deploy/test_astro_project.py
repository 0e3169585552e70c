"""The repository as the Astro CLI 1.x sees it (`astro dev start`, `astro dev parse`,
`astro deploy`), checked statically: no Docker engine or Astro CLI runs here (docs/astro.md).

Each check reproduces what a part of the CLI's source (astronomer/astro-cli) does with the
project, or what the Astro Runtime image's build steps do with its files:

- config/config.go ``IsProjectDir``: a project is a folder with ``.astro/config.yaml``; the CLI
  asks to run ``astro dev init`` anywhere else. ``astro dev init`` (cmd/airflow.go) writes
  ``project.name`` into it, and ``airflow/airflow.go`` the rest of ``.astro/``;
- docker/parse.go and airflow_versions/runtime_versions.go: the Dockerfile's first FROM names the
  runtime image, ``<Airflow major>.<Airflow minor>-<build>[-<flavor>]`` for Airflow 3;
- airflow/docker.go: the compose project needs the image's runtime label (a runtime image), and
  ``astro dev parse`` runs ``pytest .astro/test_dag_integrity_default.py`` in the image;
- settings/types.go and settings/settings.go: the schema of ``airflow_settings.yaml`` and how each
  object is created (values copied verbatim, no environment lookup);
- the runtime image's build steps copy ``packages.txt`` (apt) and ``requirements.txt`` (pip) and
  pin Airflow and the Task SDK with the runtime's own constraints
  (pkg/runtimeversions/astrobuild.go).

No Spark. Two tests run the DAG integrity hook in a subprocess (a few seconds each).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.secret_scan import AZURITE_PUBLIC_KEY, scan_text

ROOT = Path(__file__).resolve().parents[2]
IMAGE_HOME = "/usr/local/airflow"  # where the runtime image keeps the project (AIRFLOW_HOME)

# Astro Runtime builds of the Airflow 3.3 series and the Airflow each ships. Source: the runtime
# catalog the Astro CLI reads, as cut on 2026-09-25 into the CLI's test fixture
# pkg/runtimeversions/testdata/catalog.json (3.3-1 and 3.3-2: Airflow 3.3.0; 3.3-8: Airflow
# 3.3.2, released 2026-09-23) and pkg/manifest/runtime.go ("3.3-3 to 3.3-7 all carry Airflow
# 3.3.1"). The build number is Astronomer's own: 3.3-2 is not Airflow 3.3.2. To bump, add the new
# build and its Airflow here, then change the Dockerfile and requirements-local.txt together.
RUNTIME_AIRFLOW = {
    "3.3-1": "3.3.0",
    "3.3-2": "3.3.0",
    **{f"3.3-{build}": "3.3.1" for build in range(3, 8)},
    "3.3-8": "3.3.2",
}
# The Python distributions of each series (same catalog: pythonVersions; no 3.11 for 3.3).
RUNTIME_PYTHONS = {"3.3": {"3.12", "3.13", "3.14"}}
RUNTIME_IMAGE = "astrocrpublic.azurecr.io/runtime"  # airflow/constants.go, Airflow 3 runtimes
RUNTIME_TAG = re.compile(r"^(\d+)\.(\d+)-(\d+)(?:[.-](.+))?$")  # runtime_versions.go
# cmd/airflow.go airflowInit: `^(?i)[a-z0-9]([a-z0-9_-]*[a-z0-9])$` (Go syntax).
PROJECT_NAME = re.compile(r"(?i)^[a-z0-9]([a-z0-9_-]*[a-z0-9])$")

# What the runtime installs itself, so requirements.txt must not: Airflow and the Task SDK (held
# by the runtime's constraints) and the providers the runtime bundles (Astronomer's "Astro
# Runtime provider package reference" as far as it lists the 3.3 series: 3.3-1 and 3.3-2).
RUNTIME_AIRFLOW_DISTS = {"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk"}
RUNTIME_BUNDLED = {
    "apache-airflow-providers-celery",
    "apache-airflow-providers-common-compat",
    "apache-airflow-providers-common-io",
    "apache-airflow-providers-common-sql",
    "apache-airflow-providers-elasticsearch",
    "apache-airflow-providers-openlineage",
    "apache-airflow-providers-smtp",
    "apache-airflow-providers-standard",
    "astronomer-providers-logging",
}

# settings/types.go: the keys the CLI decodes (mapstructure drops any other key silently).
SETTINGS_SCHEMA = {
    "connections": {
        "conn_id": str,
        "conn_type": str,
        "conn_host": str,
        "conn_schema": str,
        "conn_login": str,
        "conn_password": str,
        "conn_port": int,
        "conn_uri": str,
        "conn_extra": (dict, str),
    },
    "pools": {
        "pool_name": str,
        "pool_slot": int,
        "pool_description": str,
        "pool_include_deferred": bool,
    },
    "variables": {"variable_name": str, "variable_value": str},
}
CREDENTIAL_KEY = re.compile(r"(?i)passw|secret|token|api_?key|account_?key|sas|credential")


# --- small readers ---------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def _from_image(dockerfile: str) -> tuple[str, str]:
    """The first FROM's image and tag, as docker/parse.go GetImageTagFromParsedFile reads them."""
    image = next(args for ins, args in _instructions(dockerfile) if ins == "FROM").split()[0]
    name, _, tag = image.rpartition(":")
    return name, tag


def _env(dockerfile: str) -> dict[str, str]:
    env = {}
    for instruction, args in _instructions(dockerfile):
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def _requirements(path: Path) -> dict[str, str]:
    """{canonical name: version} of a pip requirements file; every line must be an exact pin."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{path.name}: {line} is not pinned"
        pins[canonicalize_name(req.name)] = spec[0].version
    return pins


def _lock() -> dict[str, str]:
    return _requirements(ROOT / "constraints.txt")


def _runtime() -> tuple[str, str, str]:
    """(build, Airflow it ships, Python flavor) of the Dockerfile's runtime image."""
    _, tag = _from_image((ROOT / "Dockerfile").read_text())
    major, minor, build, flavor = RUNTIME_TAG.match(tag).groups()
    runtime = f"{major}.{minor}-{build}"
    assert runtime in RUNTIME_AIRFLOW, (
        f"runtime {runtime}: add it and its Airflow to RUNTIME_AIRFLOW"
    )
    return runtime, RUNTIME_AIRFLOW[runtime], (flavor or "").removeprefix("python-")


# --- the project folder ----------------------------------------------------------------------


def test_the_cli_sees_an_astro_project():
    config_file = ROOT / ".astro" / "config.yaml"
    assert config_file.is_file(), "config.IsProjectDir: no .astro/config.yaml"
    config = yaml.safe_load(config_file.read_text())
    # A project's config (project.name, as `astro dev init` writes it), not the CLI's own
    # settings file (context, contexts): what newer CLIs tell a 1.x project by.
    assert PROJECT_NAME.match(config["project"]["name"]), config["project"]
    assert not {"context", "contexts", "telemetry"} & config.keys()
    assert config["project"]["name"] == tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"
    ]["name"].replace("_", "-")
    # `astro dev start` otherwise appends an unpinned package to requirements.txt for the build.
    assert str(config["disable_astro_run"]).lower() == "true"
    assert (ROOT / "Dockerfile").is_file()
    for folder in ("dags", "include", "plugins"):  # mounted into every Airflow container
        assert (ROOT / folder).is_dir(), folder


def test_the_astro_files_are_committed():
    """Git must not ignore them, or a fresh clone is not an Astro project."""
    files = [
        ".astro/config.yaml",
        ".astro/test_dag_integrity_default.py",
        ".astro/dag_integrity_exceptions.txt",
        ".astro/pytest.ini",
        "Dockerfile",
        "packages.txt",
        "requirements.txt",
        "airflow_settings.yaml",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert ignored.stdout == "", f"git ignores: {ignored.stdout}"


def test_pyproject_keeps_the_dockerfile_layout():
    """A [tool.astro] table makes newer CLIs read pyproject.toml as the project definition, and
    their revisions disagree on its keys (airflow-version/runtime-version in the first, airflow,
    runtime, packages, dockerfile later, any other key refused): the Dockerfile layout is the one
    every 1.x CLI runs (docs/astro.md)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "astro" not in pyproject.get("tool", {})


# --- the image -------------------------------------------------------------------------------


def test_the_dockerfile_builds_from_an_astro_runtime_image():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = _instructions(dockerfile)
    assert [ins for ins, _ in instructions if ins == "FROM"] == ["FROM"], "one stage"
    assert instructions[0][0] == "FROM", "the runtime's build steps run first"
    image, tag = _from_image(dockerfile)
    assert image == RUNTIME_IMAGE
    match = RUNTIME_TAG.match(tag)
    assert match, f"{tag} is not an Airflow 3 runtime build (X.Y-N)"
    assert match[1] == "3", "Airflow 3 runtime"
    assert not tag.endswith(("latest", f"{match[1]}.{match[2]}")), "a build, not a floating tag"


def test_the_runtime_ships_the_airflow_the_local_environment_pins():
    runtime, airflow, python = _runtime()
    local = _requirements(ROOT / "requirements-local.txt")["apache-airflow"]
    lock = _lock()
    assert (runtime, airflow) == ("3.3-8", "3.3.2")
    assert airflow == local == lock["apache-airflow"] == lock["apache-airflow-core"]
    # Airflow releases the Task SDK in step: 3.3.2 with 1.3.2 (astrobuild.go).
    release = Version(airflow).release
    assert lock["apache-airflow-task-sdk"] == f"1.{release[1]}.{release[2]}"
    # The runtime series is the Airflow series (the CLI's own comparison, pkg/manifest).
    assert runtime.split("-")[0] == f"{release[0]}.{release[1]}"
    assert python in RUNTIME_PYTHONS[runtime.split("-")[0]], f"no python-{python} distribution"


def test_the_astro_requirements_leave_the_runtime_packages_alone():
    path = ROOT / "requirements.txt"
    pins = _requirements(path)
    assert pins, "requirements.txt installs the providers the DAGs use"
    assert not pins.keys() & RUNTIME_AIRFLOW_DISTS, "the runtime ships and pins Airflow"
    assert not pins.keys() & RUNTIME_BUNDLED, "the runtime bundles these providers"
    # The CLI appends and later strips lines (pkg/fileutil AddLineToFile): end with a newline.
    assert path.read_text().endswith("\n")
    lock = _lock()
    assert {name: lock.get(name) for name in pins} == pins, "the same providers as the local venv"


def test_no_astro_requirement_asks_for_another_airflow():
    """What each provider requires of Airflow (its metadata, as installed from the same pins)
    must hold for the runtime's Airflow, or pip would try to replace it in the image."""
    _, airflow, python = _runtime()
    shipped = {
        "apache-airflow": airflow,
        "apache-airflow-core": airflow,
        "apache-airflow-task-sdk": _lock()["apache-airflow-task-sdk"],
    }
    environment = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    checked = []
    for name, pin in _requirements(ROOT / "requirements.txt").items():
        try:
            assert version(name) == pin, f"{name}: the venv does not have the pinned version"
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: run make setup")
        for line in requires(name) or []:
            req = Requirement(line)
            dist = canonicalize_name(req.name)
            if dist in shipped and (req.marker is None or req.marker.evaluate(environment)):
                assert req.specifier.contains(shipped[dist]), f"{name} requires {line}"
                checked.append(dist)
    assert "apache-airflow" in checked


def test_packages_txt_is_present_and_installs_nothing():
    """The runtime's build copies packages.txt (so it must exist) and hands its lines to apt:
    no comment, no JDK (Spark runs on the workspace container and on Databricks)."""
    assert (ROOT / "packages.txt").read_text().strip() == ""


# --- airflow_settings.yaml -------------------------------------------------------------------


def _schema_problems(settings: object) -> list[str]:
    if not isinstance(settings, dict) or set(settings) != {"airflow"}:
        return ["top level: exactly one key, airflow"]
    problems = []
    for section, items in settings["airflow"].items():
        if section not in SETTINGS_SCHEMA:
            problems.append(f"airflow.{section}: unknown section")
            continue
        for i, item in enumerate(items or []):
            where = f"airflow.{section}[{i}]"
            for key, value in item.items():
                expected = SETTINGS_SCHEMA[section].get(key)
                if expected is None:
                    problems.append(f"{where}.{key}: unknown key (the CLI drops it)")
                elif not isinstance(value, expected) or isinstance(value, bool) != (
                    expected is bool
                ):
                    problems.append(f"{where}.{key}: {type(value).__name__}")
            # settings.go skips these objects with a message, or creates them empty.
            if section == "connections" and not (item.get("conn_type") or item.get("conn_uri")):
                problems.append(f"{where}: conn_type or conn_uri is required")
            if section == "pools" and not item.get("pool_slot"):
                problems.append(f"{where}: pool_slot must be set")
            if section == "variables" and not (
                item.get("variable_name") and item.get("variable_value")
            ):
                problems.append(f"{where}: variable_name and variable_value are required")
    return problems


def _settings() -> dict:
    return yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())


def test_airflow_settings_match_the_cli_schema():
    assert _schema_problems(_settings()) == []


def test_the_schema_check_finds_what_the_cli_would_drop():
    bad = {
        "airflow": {
            "connections": [
                {"conn_id": "a", "conn_pasword": "x"},
                {"conn_id": "b", "conn_port": "1"},
            ],
            "pools": [{"pool_name": "p", "pool_slot": 0}],
        }
    }
    assert _schema_problems(bad) == [
        "airflow.connections[0].conn_pasword: unknown key (the CLI drops it)",
        "airflow.connections[0]: conn_type or conn_uri is required",
        "airflow.connections[1].conn_port: str",
        "airflow.connections[1]: conn_type or conn_uri is required",
        "airflow.pools[0]: pool_slot must be set",
    ]


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def _secret_findings(settings: dict, known_values: set[str]) -> list[str]:
    """Literal credentials in the settings: the CLI passes every value on as it is."""
    found = []

    def walk(where: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if CREDENTIAL_KEY.search(str(key)) and item:
                    found.append(f"{where}.{key}: a credential")
                walk(f"{where}.{key}", item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(f"{where}[{i}]", item)
        elif isinstance(value, str):
            found.extend(f"{where}: {f.rule}" for f in scan_text(value, where))
            found.extend(f"{where}: a value of .env.example" for v in known_values if v in value)
            if re.search(r"://[^/@\s]*:[^/@\s]+@", value):
                found.append(f"{where}: a password in a URI")

    walk("airflow", settings["airflow"])
    return found


def test_airflow_settings_hold_no_secret():
    settings = _settings()
    assert _secret_findings(settings, set(_env_example().values())) == []
    # The one key it holds is Azurite's published development key, the repository's allowed one.
    text = (ROOT / "airflow_settings.yaml").read_text()
    keys = re.findall(r"AccountKey=([^;\"]+)", text)
    assert set(keys) <= {AZURITE_PUBLIC_KEY}


def test_the_secret_check_finds_a_token():
    token = "local-dev-" + "9f" * 8  # built at run time: no token is a literal of the repository
    leaked = {
        "airflow": {
            "connections": [
                {"conn_id": "a", "conn_type": "databricks", "conn_password": token},
                {"conn_id": "b", "conn_uri": "postgresql://user:" + "hunter2" + "@db/x"},
                {"conn_id": "c", "conn_type": "http", "conn_extra": {"token": "abc"}},
            ]
        }
    }
    assert _secret_findings(leaked, {token}) == [
        "airflow.connections[0].conn_password: a credential",
        "airflow.connections[0].conn_password: a value of .env.example",
        "airflow.connections[1].conn_uri: password in a URL",
        "airflow.connections[1].conn_uri: a password in a URI",
        "airflow.connections[2].conn_extra.token: a credential",
    ]


def test_the_workspace_token_reaches_airflow_from_the_environment():
    """No token in the settings: the override hands the connection to the Astro CLI's Airflow
    containers with the token interpolated from LOCAL_WORKSPACE_TOKEN (docs/astro.md)."""
    services = yaml.safe_load((ROOT / "docker-compose.override.yml").read_text())["services"]
    connection = services["scheduler"]["environment"]["AIRFLOW_CONN_DATABRICKS_DEFAULT"]
    assert "${LOCAL_WORKSPACE_TOKEN" in connection
    settings = {c["conn_id"]: c for c in _settings()["airflow"]["connections"]}
    assert not settings["databricks_default"].get("conn_password")


# --- the local environment -------------------------------------------------------------------


def _pip_files(command: str) -> list[str]:
    return re.findall(r"-r\s+(\S+)", command)


def test_the_local_environment_installs_airflow_and_the_image_does_not():
    setup = (ROOT / "setup" / "setup.sh").read_text()
    installed = _pip_files(setup.split("pip install", 1)[1].split("stamp python", 1)[0])
    inputs = re.search(r"py_inputs=\(([^)]*)\)", setup)[1].split()
    lock_rule = (ROOT / "Makefile").read_text().split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "requirements-local.txt" in installed
    # `make lock` resolves what `make setup` installs; the stamp hashes every file it installs.
    assert sorted(_pip_files(lock_rule)) == sorted(installed)
    assert set(installed) | {"constraints.txt"} == set(inputs)
    assert "named_fingerprint" in re.search(r"py_hash=\$\((\S+)", setup)[1]
    # Airflow: pinned once, for the local environment only, and locked at that version.
    holders = [f for f in installed if "apache-airflow" in _requirements(ROOT / f)]
    assert holders == ["requirements-local.txt"]
    lock = _lock()
    for f in installed:
        for name, pin in _requirements(ROOT / f).items():
            assert lock.get(name) == pin, f"{f}: {name}=={pin}, locked {lock.get(name)}"


def test_the_setup_stamp_follows_a_requirement_moved_between_files(tmp_path):
    """The hash setup.sh stamps the Python step with is stable from run to run (a second
    `make setup` installs nothing) and changes when a line moves to another file, as the Airflow
    pin did, where a hash of the concatenated files alone would not."""
    setup = (ROOT / "setup" / "setup.sh").read_text()
    helper = re.search(r"^named_fingerprint\(\) \{\n.*?^\}\n", setup, re.M | re.S)[0]
    script = helper + 'named_fingerprint "$@"; cat "$@" | sha256sum | cut -d" " -f1\n'

    def hashes(first: str, second: str) -> tuple[str, str]:
        (tmp_path / "a.txt").write_text(first)
        (tmp_path / "b.txt").write_text(second)
        out = subprocess.run(
            ["bash", "-c", script, "hash", "a.txt", "b.txt"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return out[0], out[1]

    before = hashes("providers==1\nairflow==3\n", "dev==1\n")
    assert hashes("providers==1\nairflow==3\n", "dev==1\n") == before
    named, concatenated = hashes("providers==1\n", "airflow==3\ndev==1\n")
    assert concatenated == before[1], "the files' concatenation did not change"
    assert named != before[0]


# --- the DAG integrity hook (`astro dev parse`) ----------------------------------------------


def _run_hook(tmp_path: Path, dags_folder: Path) -> subprocess.CompletedProcess[str]:
    """The hook as `astro dev parse` runs it: pytest on the file from the project folder, with the
    image's environment (the Dockerfile's ENV, its paths mapped onto this checkout) and no
    setting of this test session."""
    image_env = {
        key: value.replace(IMAGE_HOME, str(ROOT))
        for key, value in _env((ROOT / "Dockerfile").read_text()).items()
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "ECOM_", "PYTHONPATH", "PYTEST_"))
    }
    env |= image_env | {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", ".astro/test_dag_integrity_default.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_dag_integrity_hook_passes_in_the_image_layout(tmp_path):
    result = _run_hook(tmp_path, ROOT / "dags")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Its own settings (.astro/pytest.ini), not pyproject.toml's: those need plugins the image
    # does not have.
    assert "configfile: pytest.ini" in output
    dag_files = [p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")]
    assert f"{len(dag_files) + 1} passed" in output, output
    assert [
        line
        for line in (ROOT / ".astro/dag_integrity_exceptions.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ] == [], "no DAG is exempt"


def test_the_dag_integrity_hook_fails_on_a_dag_that_does_not_import(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "model_serving.py").write_text((ROOT / "dags" / "model_serving.py").read_text())
    (dags / "broken.py").write_text("from airflow.sdk import DAG\nimport not_a_module_here\n")
    result = _run_hook(tmp_path, dags)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (
        "FAILED .astro/test_dag_integrity_default.py::test_file_imports[dags/broken.py]" in output
    )
    assert "1 failed, 2 passed" in output, output


def test_the_image_build_leaves_the_env_file_out():
    """The runtime image copies the project folder: ``.env`` (the stack's secrets) must be in
    ``.dockerignore``, or ``astro deploy`` would ship the token inside the image."""
    import fnmatch

    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(fnmatch.fnmatch(".env", p) for p in patterns)
    assert not any(fnmatch.fnmatch(".env.example", p) for p in patterns)  # documented template

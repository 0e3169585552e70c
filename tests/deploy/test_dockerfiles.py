"""The Dockerfiles through a real Dockerfile parser (PyPI ``dockerfile-parse``,
requirements-dev.txt): pinned base images, installs from the lock file, no secret, nothing
copied that the build context lacks, and everything the compose services run is in the image."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile", "docker/workspace.Dockerfile", "docker/airflow.Dockerfile"]
OURS = ["docker/workspace.Dockerfile", "docker/airflow.Dockerfile"]
WORKDIR = "/opt/ecom"


def locked(package: str) -> str:
    match = re.search(
        rf"^{re.escape(package)}==(\S+)", (ROOT / "constraints.txt").read_text(), re.M
    )
    assert match, f"{package} not pinned in constraints.txt"
    return match.group(1)


def instructions(path: str) -> list[tuple[str, str]]:
    parser = DockerfileParser(str(ROOT / path), cache_content=False)
    return [
        (i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"
    ]


def parent_images(path: str) -> list[str]:
    return DockerfileParser(str(ROOT / path), cache_content=False).parent_images


def copies(path: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, the destination made absolute."""
    workdir, found = "/", []
    for instruction, value in instructions(path):
        if instruction == "WORKDIR":
            workdir = value if value.startswith("/") else f"{workdir.rstrip('/')}/{value}"
        elif instruction == "COPY":
            *sources, dest = shlex.split(value)
            assert not any(s.startswith("--from") for s in sources), value
            found.append((sources, dest if dest.startswith("/") else f"{workdir}/{dest}"))
    return found


@pytest.mark.parametrize("path", DOCKERFILES)
def test_every_base_image_is_pinned(path):
    images = parent_images(path)
    assert images
    for image in images:
        tag = image.partition(":")[2]
        assert tag and "$" not in image, image
        assert tag != "latest" and re.match(r"\d+\.\d+", tag), image


def test_the_base_images_are_the_locked_versions():
    assert parent_images("docker/airflow.Dockerfile") == [
        f"apache/airflow:{locked('apache-airflow')}-python3.11"
    ]
    # Python 3.11 at an exact patch release, as the local environment.
    [python] = parent_images("docker/workspace.Dockerfile")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", python), python


@pytest.mark.parametrize("path", OURS)
def test_packages_install_from_the_lock_file_only(path):
    runs = [value for instruction, value in instructions(path) if instruction == "RUN"]
    pip = [run for run in runs if "pip install" in run]
    assert pip
    for run in pip:
        args = shlex.split(run.split("pip install", 1)[1].split("&&")[0])
        assert "--no-cache-dir" in args, run
        options = {a for a in args if a.startswith("-")}
        assert options <= {"--no-cache-dir", "-r", "-c"}, run
        files = [args[i + 1] for i, a in enumerate(args) if a in ("-r", "-c")]
        # Requirement files and the lock only, never a bare (unpinned) package name.
        assert len(files) == len([a for a in args if not a.startswith("-")]), run
        assert any(f.endswith("constraints.txt") for f in files), run
    for run in runs:
        if "apt-get install" in run:
            assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run


@pytest.mark.parametrize("path", OURS)
def test_no_secret_and_no_download_in_the_build(path):
    secret = re.compile(r"(?i)(token|passw|secret|_key\b|apikey)")
    for instruction, value in instructions(path):
        assert instruction != "ADD", value  # COPY only: no remote URL, no archive unpacking
        if instruction in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", value) or [value.split()[0]]
            assert not [n for n in names if secret.search(n)], value
        assert "curl " not in value and "wget " not in value, value


@pytest.mark.parametrize("path", OURS)
def test_every_copied_file_is_in_the_build_context(path):
    ignored = (ROOT / ".dockerignore").read_text().split()
    for sources, _ in copies(path):
        for source in sources:
            assert source not in (".", "./", ".env") and "*" not in source, source
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def _project_packages() -> dict[str, str]:
    """Importable packages of the repository: their name and their folder."""
    packages = {p.name: p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    packages.update({p.name: f"include/{p.name}" for p in (ROOT / "include").iterdir()})
    return packages


def test_the_workspace_image_holds_what_its_services_import():
    """The workspace server, the story and their imports (deploy/, include/, ...) are copied:
    a package missing from the image stops the container at its first import."""
    copied = {
        source.rstrip("/")
        for sources, _ in copies("docker/workspace.Dockerfile")
        for source in sources
    }
    packages = _project_packages()
    todo = [ROOT / "docker/story.py", *sorted((ROOT / "local").rglob("*.py"))]
    needed: set[str] = set()
    for path in todo:
        needed |= {packages[n] for n in _top_level_imports(path) if n in packages}
    assert {"local", "deploy", "include/ecom_airflow"} <= needed
    for folder in sorted(needed):
        assert folder in copied or folder.split("/")[0] in copied, folder
    # spark_jobs is the job scripts' folder (mounted over in the compose files).
    assert "spark_jobs" in copied


def test_the_workspace_image_runs_what_the_compose_files_name():
    """Every file a service runs from /opt/ecom is copied there; the image ends unprivileged."""
    copied = {
        f"{dest.rstrip('/')}/{Path(s).name}" if dest.endswith("/") else dest
        for sources, dest in copies("docker/workspace.Dockerfile")
        for s in sources
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    run = [
        word
        for service in compose.values()
        for word in [*(service.get("entrypoint") or []), *(service.get("command") or [])]
        if isinstance(word, str) and word.startswith(f"{WORKDIR}/")
    ]
    assert f"{WORKDIR}/docker/check-secrets.sh" in run and f"{WORKDIR}/docker/story.py" in run
    assert set(run) <= copied, set(run) - copied
    users = [
        value
        for instruction, value in instructions("docker/workspace.Dockerfile")
        if instruction == "USER"
    ]
    assert users and users[-1] not in ("root", "0")
    # The state folders the services write exist in the image (a new volume copies them).
    runs = " ".join(v for i, v in instructions("docker/workspace.Dockerfile") if i == "RUN")
    assert "mkdir -p /data/mlflow/artifacts" in runs and f"chown -R {users[-1]} /data" in runs

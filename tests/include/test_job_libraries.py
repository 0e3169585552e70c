"""Each job script installs exactly the job libraries it imports (``SCRIPT_LIBRARIES``).

The imports are read from the code, nothing is imported: an AST walk of the script and, through
its ``clickstream`` imports, of every library module it reaches (imports inside functions too).
Each third-party module is mapped to the distribution that installs it; a distribution is either
a pinned job library (``JOB_LIBRARIES``), which the script must list, or part of the Databricks
Runtime, which no script installs. Anything else fails, naming the module that imports it.
"""

from __future__ import annotations

import ast
import re
import sys
from datetime import timedelta
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from ecom_airflow.config import JOB_LIBRARIES, SCRIPT_LIBRARIES, Environment, script_libraries
from ecom_airflow.tasks import job_task, submit_run_payload

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "spark_jobs"
SCRIPTS = sorted(p.name for p in JOBS.glob("*.py"))
LIBRARY = "clickstream"
# Shipped with the Databricks Runtime (17.3 LTS), at versions the jobs work with: never
# installed over it (pyspark and delta-spark must not be).
RUNTIME_PROVIDED = {"pyspark", "delta-spark", "numpy", "matplotlib"}
# An MLflow flavour loads its model with the flavour's library, which the code need not import.
FLAVOURS = {"mlflow.sklearn": "sklearn"}
# A library imported only inside a function, in a module many scripts reach for its other
# parts, is installed only for the scripts that call that function: (module, import) -> the
# scripts, with why.
LAZY_ONLY_FOR = {
    # compare() is the only user of Evidently; only detect_drift calls it. The other scripts
    # reach the module through clickstream.core.catalog (the drift metrics' contract).
    ("clickstream/monitoring/drift_report.py", "evidently"): {"detect_drift.py"},
    # score() loads the champion with mlflow.sklearn; only score_users scores
    # (recommend_products takes active_users and lineage from the module).
    ("clickstream/models/propensity/serving.py", "sklearn"): {"score_users.py"},
}
JOB_PACKAGES = {pin.split("==")[0] for pin in JOB_LIBRARIES}


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_file(name: str) -> Path | None:
    path = JOBS.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(path: Path) -> tuple[tuple[str, bool], ...]:
    """(imported module, imported inside a function or class) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        lazy = id(node) not in top
        if isinstance(node, ast.Import):
            found += [(alias.name, lazy) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}: relative import; the jobs import absolutely")
            found.append((node.module, lazy))
            # ``from package import module`` imports the module too.
            found += [(f"{node.module}.{alias.name}", lazy) for alias in node.names]
    return tuple(found)


def _provided(module: str) -> set[str]:
    """The top-level modules an import of ``module`` needs: its own, and a flavour's."""
    return {module.split(".")[0]} | {
        library
        for flavour, library in FLAVOURS.items()
        if module == flavour or module.startswith(flavour + ".")
    }


def third_party_imports(script: str) -> dict[str, set[str]]:
    """{top-level module: the files that import it} for ``script`` and the library modules it
    reaches, with the flavours' libraries and :data:`LAZY_ONLY_FOR` applied."""
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = [JOBS / script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        where = path.relative_to(JOBS).as_posix()
        for module, lazy in _imports(path):
            top = module.split(".")[0]
            if top == LIBRARY:
                parts = module.split(".")
                todo += [
                    f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))
                ]
                continue
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            for name in _provided(module):
                if not lazy or script in LAZY_ONLY_FOR.get((where, name), {script}):
                    found.setdefault(name, set()).add(where)
    return found


@cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distribution(module: str) -> str:
    """The distribution that installs ``module``: the job library among those that ship it,
    else the runtime's, else the first."""
    names = [_normalised(d) for d in _distributions().get(module, [])]
    assert names, f"no installed distribution provides {module!r}"
    return next(
        (n for n in names if n in JOB_PACKAGES),
        next((n for n in names if n in RUNTIME_PROVIDED), names[0]),
    )


def needed_libraries(script: str) -> tuple[set[str], list[str]]:
    """(job libraries ``script`` needs, problems: modules neither a job library nor runtime)."""
    needed, problems = set(), []
    for module, files in sorted(third_party_imports(script).items()):
        package = distribution(module)
        if package in JOB_PACKAGES:
            needed.add(package)
        elif package not in RUNTIME_PROVIDED:
            problems.append(
                f"{script}: {module} (distribution {package}, imported by {sorted(files)}) is "
                "neither a job library (JOB_LIBRARIES) nor shipped with the Databricks Runtime"
            )
    return needed, problems


def test_every_script_has_an_entry_and_every_entry_a_script():
    assert sorted(SCRIPT_LIBRARIES) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_installs_exactly_the_libraries_it_imports(script):
    needed, problems = needed_libraries(script)
    assert problems == []
    listed = set(SCRIPT_LIBRARIES[script])
    assert listed <= JOB_PACKAGES, (
        f"{script}: {sorted(listed - JOB_PACKAGES)} are not job libraries"
    )
    assert listed == needed, (
        f"{script}: SCRIPT_LIBRARIES lists {sorted(listed)}, its imports need {sorted(needed)} "
        f"(missing {sorted(needed - listed)}, unneeded {sorted(listed - needed)})"
    )


def test_the_walk_follows_the_library_and_its_lazy_imports():
    """The analysis itself, on scripts whose needs are known: a library reached only through
    clickstream, one imported inside a function, and the flavour rule."""
    assert "great_expectations" in third_party_imports("validate_data.py")  # lazy, in quality/
    assert third_party_imports("score_users.py")["sklearn"] == {
        "clickstream/models/propensity/serving.py"  # import mlflow.sklearn, to load the model
    }
    assert "evidently" in third_party_imports("detect_drift.py")
    assert "evidently" not in third_party_imports("train_models.py")
    assert "sklearn" not in third_party_imports("recommend_products.py")
    assert distribution("sklearn") == "scikit-learn"
    assert distribution("mlflow") == "mlflow"
    assert distribution("delta") == "delta-spark"


def test_every_lazy_exception_is_still_a_lazy_import_of_its_module():
    for (module, name), scripts in LAZY_ONLY_FOR.items():
        imports = _imports(JOBS / module)
        assert any(name in _provided(m) and lazy for m, lazy in imports), (module, name)
        assert not any(name in _provided(m) and not lazy for m, lazy in imports), (module, name)
        assert scripts <= set(SCRIPTS)


def test_an_unknown_script_is_refused_naming_the_map():
    with pytest.raises(ValueError, match="no entry in SCRIPT_LIBRARIES"):
        script_libraries("not_a_job.py")


def _environment(**changes) -> Environment:
    return Environment(
        name="prod",
        catalog="c",
        volume_root="/Volumes/c/raw",
        new_cluster={"spark_version": "17.3.x-scala2.13", "num_workers": 1},
        libraries=JOB_LIBRARIES,
        **changes,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_both_computes_carry_the_scripts_libraries_and_a_policy_none(script):
    pins = list(script_libraries(script))
    assert [p.split("==")[0] for p in pins] == [
        p.split("==")[0] for p in JOB_LIBRARIES if p.split("==")[0] in SCRIPT_LIBRARIES[script]
    ]
    hour = timedelta(hours=1)
    cluster = job_task(submit_run_payload(_environment(), script, {}, timeout=hour))
    assert cluster.get("libraries", []) == [{"pypi": {"package": pin}} for pin in pins]
    serverless = submit_run_payload(_environment(compute="serverless"), script, {}, timeout=hour)
    [environment] = serverless["environments"]
    assert environment["spec"].get("dependencies", []) == pins
    policy = job_task(
        submit_run_payload(_environment(policy_libraries=True), script, {}, timeout=hour)
    )
    assert "libraries" not in policy


def test_the_daily_chain_installs_a_quarter_of_what_it_did():
    """docs/cost.md: every job task of the daily DAGs installed all the job libraries; each
    now installs what its script imports."""
    daily = [
        "ingest_events.py",
        "validate_data.py",  # bronze
        "build_silver_events.py",
        "build_user_features.py",
        "validate_data.py",  # features
        "publish_online_features.py",
        "publish_online_features.py",  # skew check
        "train_models.py",
        "train_recommender.py",
        "score_users.py",
        "recommend_products.py",
        "monitor_performance.py",
    ]
    before = len(daily) * len(JOB_LIBRARIES)
    after = sum(len(script_libraries(s)) for s in daily)
    assert (before, after) == (60, 15)

"""The job side's versions locally and on the Databricks Runtime the config names.

Locally the jobs run on the project's Python and the pyspark of ``spark_jobs/requirements.txt``;
on Databricks on the runtime of ``DEV_RUNTIME_VERSION`` / ``PROD_RUNTIME_VERSION`` (or, with
``ECOM_COMPUTE=serverless``, serverless environment ``SERVERLESS_ENVIRONMENT_VERSION``). They are
not the same versions; this test pins the difference the README states, so a runtime or pin
change has to update both."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ecom_airflow.config import (
    DEV_RUNTIME_VERSION,
    PROD_RUNTIME_VERSION,
    SERVERLESS_ENVIRONMENT_VERSION,
)

ROOT = Path(__file__).resolve().parents[2]
# Databricks' release notes: runtime -> (Apache Spark, Python); serverless environment version
# -> Python (environment 4: Databricks Connect 17, the Spark 4.0 API).
RUNTIMES = {"17.3.x-scala2.13": ("4.0", "3.12")}
SERVERLESS = {"4": "3.12"}
LOCAL_PYTHON = "3.11"


def _pyspark() -> str:
    text = (ROOT / "spark_jobs" / "requirements.txt").read_text()
    return re.search(r"^pyspark==(\d+\.\d+)", text, re.M).group(1)


def test_the_runtimes_are_known_and_share_spark_major_with_local():
    for runtime in (DEV_RUNTIME_VERSION, PROD_RUNTIME_VERSION):
        spark, _ = RUNTIMES[runtime]
        assert spark.split(".")[0] == _pyspark().split(".")[0], runtime
    assert SERVERLESS_ENVIRONMENT_VERSION in SERVERLESS


def test_the_readme_states_the_difference():
    spark, python = RUNTIMES[PROD_RUNTIME_VERSION]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"Python {LOCAL_PYTHON} and Spark {_pyspark()}" in readme
    assert f"17.3 LTS runs Python {python} and Spark {spark}" in readme
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == LOCAL_PYTHON

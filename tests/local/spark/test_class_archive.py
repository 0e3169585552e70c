"""The class-data-sharing archive of the Spark JVM: rebuilt when what it depends on changes,
and really mapped by a Spark driver started with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local.spark import class_archive
from local.spark.runtime import PROJECT_ROOT, LocalLayout, spark_conf


def test_an_archive_counts_as_current_only_with_the_fingerprint_of_this_jdk_and_these_jars(
    tmp_path,
):
    archive = tmp_path / "spark.jsa"
    assert not class_archive.current(archive)  # none yet
    archive.write_bytes(b"archive")
    assert not class_archive.current(archive)  # no stamp: its build did not finish
    stamp = archive.with_suffix(".json")
    stamp.write_text(json.dumps({"fingerprint": "another jdk"}))
    assert not class_archive.current(archive)
    stamp.write_text(json.dumps({"fingerprint": class_archive.fingerprint()}))
    assert class_archive.current(archive)
    stamp.write_text("{not json")
    assert not class_archive.current(archive)


def test_the_fingerprint_changes_with_a_jar(monkeypatch, tmp_path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "delta-spark_2.13-4.0.0.jar").write_bytes(b"one")
    layout = LocalLayout(state=tmp_path)
    monkeypatch.setenv("ECOM_JARS_DIR", str(jars))
    before = class_archive.fingerprint(layout)
    assert class_archive.fingerprint(layout) == before
    (jars / "delta-spark_2.13-4.0.0.jar").write_bytes(b"other")
    assert class_archive.fingerprint(layout) != before


def test_the_driver_options_map_the_archive_named_in_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(class_archive.ARCHIVE_ENV, "/archives/spark.jsa")
    options = spark_conf(LocalLayout(state=tmp_path))["spark.driver.extraJavaOptions"]
    assert "-XX:SharedArchiveFile=/archives/spark.jsa" in options.split()
    monkeypatch.delenv(class_archive.ARCHIVE_ENV)
    options = spark_conf(LocalLayout(state=tmp_path))["spark.driver.extraJavaOptions"]
    assert "SharedArchiveFile" not in options


@pytest.mark.spark
def test_a_driver_started_with_the_archive_loads_spark_and_delta_from_it(tmp_path):
    """A new Spark driver (as a warm driver or a job process starts one) runs a Delta write
    with the archive ``make test`` built; the JVM's class-loading log shows Spark's and
    Delta's classes coming from the archive, not from their jars."""
    if not class_archive.current():
        pytest.fail("no current class archive: `make test` (or `make class-archive`) builds it")
    load_log = tmp_path / "class-load.log"
    script = (
        "from local.spark.runtime import LocalLayout, build_session\n"
        f"spark = build_session(LocalLayout(state=__import__('pathlib').Path({str(tmp_path)!r})))\n"
        "spark.range(3).write.format('delta').saveAsTable('default.t')\n"
        "assert spark.table('default.t').count() == 3\n"
        "spark.stop()\n"
    )
    env = {
        **os.environ,
        class_archive.ARCHIVE_ENV: str(class_archive.ARCHIVE),
        "LOCAL_SPARK_JAVA_OPTIONS": f"-Xlog:class+load=info:file={load_log}",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = load_log.read_text().splitlines()

    def source(cls: str) -> str:
        [line] = [x for x in lines if f" {cls} source: " in x]
        return line.split(" source: ", 1)[1]

    assert source("org.apache.spark.sql.SparkSession") == "shared objects file (top)"
    assert source("org.apache.spark.sql.delta.DeltaLog") == "shared objects file (top)"
    # Beside the JDK's own archive and the classes made at run time (lambdas, proxies), the
    # classes come from the archive, not from jars (the few the workload did not load do).
    archived = sum(x.endswith("source: shared objects file (top)") for x in lines)
    from_jars = sum(" source: file:" in x or " source: jar:file:" in x for x in lines)
    assert archived > 10 * from_jars, f"{archived} classes from the archive, {from_jars} from jars"

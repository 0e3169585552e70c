"""A class-data-sharing archive of the local Spark JVM (JDK AppCDS), built once per machine.

Every JVM of the local platform (a pytest session, a warm driver, a cold job process) loads,
parses and verifies the same twenty-odd thousand classes of Spark, Delta, Hadoop, Parquet and
Scala before its first query runs. The JDK can dump the classes a JVM loaded into an archive
(``-XX:ArchiveClassesAtExit``) that later JVMs map from disk (``-XX:SharedArchiveFile``), read-
only and shared between processes, which cuts the start of every new JVM by about a quarter
(figures in docs/performance.md).

``python -m local.spark.class_archive`` (``make test`` runs it) builds the archive in
``.local/cds/`` by running one small day of the real pipeline (ingest, silver, features,
online table, with code generation and with the interpreter the tests use) in a JVM dumping at
exit, about 80 s once; afterwards it only compares the fingerprint of what the archive
depends on (the JDK, pyspark's jars, the Delta jars), in well under a second, and rebuilds
when that changed. ``local/spark/jvm_options.py`` gives the options that use it; the JVM falls
back to loading every class itself if the archive does not match (silently: the options switch
the CDS warnings off), so a stale archive costs speed, never a failure.

The test suite uses it (``tests/conftest.py`` sets ``LOCAL_SPARK_CLASS_ARCHIVE``); the local
stack does not by default, since benchmark 1 measures the cold start it removes. The stack's
processes inherit the environment the tests' workspaces get it from, so setting
``LOCAL_SPARK_CLASS_ARCHIVE`` to the archive's absolute path before ``make up`` or ``make run``
would apply it there too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local.spark.jvm_options import CLASS_ARCHIVE_ENV as ARCHIVE_ENV
from local.spark.jvm_options import QUIET
from local.spark.runtime import PROJECT_ROOT, LocalLayout

ARCHIVE = PROJECT_ROOT / ".local" / "cds" / "spark.jsa"
# The archive's fingerprint, written next to it once the archive is complete.
STAMP = ARCHIVE.with_suffix(".json")


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else (shutil.which("java") or "java")


def fingerprint(layout: LocalLayout | None = None) -> str:
    """What the archive depends on: the JDK's build, and every jar on the driver's class path
    or in ``spark.jars`` (name, size, modification time: the JVM checks them too)."""
    import pyspark

    layout = layout or LocalLayout()
    version = subprocess.run(
        [_java(), "-version"], capture_output=True, text=True, check=True, timeout=60
    ).stderr
    jars = sorted(Path(pyspark.__file__).parent.joinpath("jars").glob("*.jar"))
    jars += sorted(layout.jars_dir.glob("*.jar"))
    digest = hashlib.sha256(version.encode())
    for jar in jars:
        stat = jar.stat()
        digest.update(f"{jar}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def current(archive: Path = ARCHIVE) -> bool:
    """The archive exists and was built for this JDK and these jars."""
    stamp = archive.with_suffix(".json")
    if not archive.exists() or not stamp.exists():
        return False
    try:
        return json.loads(stamp.read_text())["fingerprint"] == fingerprint()
    except (ValueError, KeyError, OSError, subprocess.SubprocessError):
        return False


def _workload(folder: Path) -> None:
    """One small day through the pipeline's jobs, in this process's SparkSession: the classes
    the jobs load (Delta writes, merges, window functions, the catalog), with Spark's code
    generation (the product's setting) and then with its interpreter (the tests')."""
    from build_silver_events import main as silver_main
    from build_user_features import main as features_main
    from generate_events import main as generate_main
    from ingest_events import main as ingest_main
    from publish_online_features import main as online_main

    from local.spark.runtime import build_session

    spark = build_session(LocalLayout(state=folder / "state"))
    landing = str(folder / "landing")
    days = ["2019-10-01", "2019-10-02"]
    generate_main(
        [
            "--start-date",
            days[0],
            "--days",
            "2",
            "--landing-dir",
            landing,
            "--users",
            "40",
            "--events-per-day",
            "200",
            "--seed",
            "1",
        ]
    )
    for ds, interpreted in zip(days, (False, True), strict=True):
        if interpreted:
            spark.conf.set("spark.sql.codegen.wholeStage", "false")
            spark.conf.set("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        common = ["--ds", ds, "--catalog", "spark_catalog"]
        ingest_main([*common, "--landing-dir", landing, "--bronze-schema", "bronze"])
        silver_main([*common, "--bronze-schema", "bronze", "--silver-schema", "silver"])
        features_main([*common, "--silver-schema", "silver"])
        online = [*common, "--silver-schema", "silver", "--gold-schema", "gold"]
        online_main([*online, "--run-ts", f"{ds}T23:59:59+00:00"])
        online_main([*online, "--check-skew"])
    spark.stop()


def build(archive: Path = ARCHIVE, force: bool = False, log=print) -> bool:
    """Build the archive unless it is current; True if it was built."""
    if not force and current(archive):
        log(f"[class-archive] {archive.relative_to(PROJECT_ROOT)}: up to date")
        return False
    archive.parent.mkdir(parents=True, exist_ok=True)
    log(
        f"[class-archive] building {archive.relative_to(PROJECT_ROOT)}: one small pipeline day "
        "in a JVM that dumps its classes at exit (about 80 s, once)"
    )
    started = time.monotonic()
    stamp = archive.with_suffix(".json")
    stamp.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="class-archive-") as tmp:
        dump = Path(tmp) / "spark.jsa"
        env = {
            **os.environ,
            "LOCAL_SPARK_JAVA_OPTIONS": f"-XX:ArchiveClassesAtExit={dump} {QUIET}",
            "PYTHONPATH": os.pathsep.join(
                str(PROJECT_ROOT / p) for p in ("", "spark_jobs", "include")
            ),
        }
        for name in (ARCHIVE_ENV, "LOCAL_SPARK_CONF"):
            env.pop(name, None)  # the product's settings; the workload switches itself
        result = subprocess.run(
            [sys.executable, "-m", "local.spark.class_archive", "--workload", tmp],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0 or not dump.exists():
            raise RuntimeError(
                f"the class archive was not written (exit code {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        os.replace(dump, archive)
    stamp.write_text(json.dumps({"fingerprint": fingerprint()}) + "\n")
    size = archive.stat().st_size / 2**20
    log(f"[class-archive] built in {time.monotonic() - started:.0f} s ({size:.0f} MiB)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.spark.class_archive",
        description="Build the local Spark JVM's class-data-sharing archive unless current.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if current")
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)  # the dumping JVM's
    args = parser.parse_args(argv)
    if args.workload:
        _workload(args.workload)
        return 0
    try:
        build(force=args.force)
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        # An optimisation only: the JVMs load their classes themselves without it.
        print(
            f"[class-archive] warning: not built, Spark JVMs start without it: {error}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

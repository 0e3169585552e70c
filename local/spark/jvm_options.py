"""JVM options that make the local Spark driver map the class-data-sharing archive.

The archive itself is built by ``local/spark/class_archive.py``, which needs the runtime's
layout and session to build it; the runtime needs only these options. Keeping them here lets
both import this module, so the runtime never imports the builder.
"""

from __future__ import annotations

import os
from pathlib import Path

# The archive for the driver JVM to map; none when unset.
CLASS_ARCHIVE_ENV = "LOCAL_SPARK_CLASS_ARCHIVE"
# Without these, a JVM that cannot use the archive (another JDK build, changed jars) says so on
# stderr in every job's log; it still runs, loading the classes itself.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def java_options(archive: Path | str) -> str:
    """JVM options that map ``archive`` (``runtime.spark_conf`` adds them)."""
    return f"-XX:SharedArchiveFile={archive} {QUIET}"


def class_archive_options() -> str:
    """The options for the archive named by ``LOCAL_SPARK_CLASS_ARCHIVE``; none when unset."""
    archive = os.environ.get(CLASS_ARCHIVE_ENV, "")
    return java_options(archive) if archive else ""

"""The Clusters API, as far as clients ask it: the one runtime version the local Spark is."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


@router.get("/api/{version}/clusters/spark-versions")
def spark_versions(version: str):
    return {"versions": [{"key": "local-spark-4.2", "name": "Local Spark 4.2 with Delta"}]}

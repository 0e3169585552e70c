"""Airflow-side operators of the MLOps service (reports, quality gate, drift and
performance branches).

Import from here in DAG files: ``from ecom_plugins import DataQualityGateOperator``. The
Airflow plugin that registers the "Report" extra link is ``plugins/report_link_plugin.py``; it is
not imported here, so the plugin manager finds the plugin class exactly once.
"""

from __future__ import annotations

from ecom_plugins.blob_report import HtmlReportToBlobOperator, ReportLink
from ecom_plugins.drift_branch import DriftBranchSensor
from ecom_plugins.job_runs import JobRunsToVolumeOperator
from ecom_plugins.landing_sensor import LandingFilesSensor
from ecom_plugins.performance_branch import PerformanceBranchSensor
from ecom_plugins.quality_gate import DataQualityGateOperator

__all__ = [
    "DataQualityGateOperator",
    "DriftBranchSensor",
    "HtmlReportToBlobOperator",
    "JobRunsToVolumeOperator",
    "LandingFilesSensor",
    "PerformanceBranchSensor",
    "ReportLink",
]

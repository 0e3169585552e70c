"""The project's Airflow plugin: registers the "Report" extra link of HtmlReportToBlobOperator.

Airflow's plugin manager imports every ``*.py`` file of the plugins folder as a top-level
module named after the file; ``.airflowignore`` keeps it out of the ``ecom_plugins`` package,
which is imported normally (the plugins folder is on ``sys.path``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from ecom_plugins.blob_report import ReportLink


class ReportLinkPlugin(AirflowPlugin):
    name = "ecom_plugins"
    operator_extra_links = [ReportLink()]

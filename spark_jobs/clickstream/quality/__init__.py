"""Data quality of a date with Great Expectations, one module per concern.

* ``checks``: the suites, as plain :class:`~clickstream.quality.checks.Check` data.
* ``inputs``: the day's rows and day profile a suite runs on.
* ``validation``: running the checks through GE; ``run`` is the ``validate_data.py`` job.
* ``results``: the ``dq_results`` table, the gate's JSON summary, publishing the report.
* ``report``: the self-contained HTML page.
"""

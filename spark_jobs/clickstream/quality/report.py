"""The data quality report: one self-contained HTML page rendered from the GE results.

Great Expectations' own Data Docs are a multi-file static site (an index, a page per
validation, CSS and JavaScript assets), which does not survive being uploaded as one blob and
opened on its own. This page is a single file: inline CSS, no script, no image, no link to
anything, every value ``html.escape``-d. Plain Python (no Spark or GE import).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em}
h2{font-size:1.1em;margin-top:1.6em}
.meta{color:#555;margin:.2em 0}
.status{display:inline-block;padding:.3em .8em;border-radius:4px;font-weight:bold}
.passed{background:#e3f4e6;color:#1b5e20}
.warning{background:#fff4d6;color:#7a5200}
.failed{background:#fde3e3;color:#8e1b1b}
.skipped{background:#eceff1;color:#455a64}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f5f5f5}
td.col{font-family:monospace;word-break:break-all;max-width:18em}
"""

_COLUMNS = ("expectation", "column", "severity", "status", "observed", "expected")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _status_class(row: Mapping[str, Any]) -> str:
    if row["status"] == "failed":
        return "failed" if row["severity"] == "blocking" else "warning"
    return "skipped" if row["status"] == "skipped" else "passed"


def _overall_class(status: str) -> str:
    if status.startswith("FAILED"):
        return "failed"
    return "warning" if "warning" in status else "passed"


def render(
    *,
    ds: str,
    suites: Iterable[str],
    status: str,
    counts: Mapping[str, int],
    rows: Iterable[Mapping[str, Any]],
    table: str = "",
) -> str:
    """The page: title, ds, suites, overall status, then a table of expectations per suite.

    ``rows`` are mappings with ``suite`` and the keys of ``_COLUMNS``.
    """
    suites = list(suites)
    rows = list(rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Data quality {_e(ds)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Data quality validation: {_e(ds)}</h1>",
        f'<p class="meta">Suites: {_e(", ".join(suites))}</p>',
        f'<p><span class="status {_overall_class(status)}">{_e(status)}</span></p>',
        '<p class="meta">'
        + ", ".join(f"{_e(k.replace('_', ' '))}: {_e(v)}" for k, v in counts.items())
        + "</p>",
    ]
    if table:
        parts.append(f'<p class="meta">Results table: {_e(table)}</p>')
    for suite in suites:
        parts.append(f"<h2>{_e(suite)}</h2>")
        parts.append("<table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in _COLUMNS) + "</tr>")
        for row in (r for r in rows if r["suite"] == suite):
            css = _status_class(row)
            parts.append(
                "<tr>"
                f"<td>{_e(row['expectation'])}</td>"
                f'<td class="col">{_e(row["column"])}</td>'
                f"<td>{_e(row['severity'])}</td>"
                f'<td class="{css}">{_e(row["status"])}</td>'
                f"<td>{_e(row['observed'])}</td>"
                f"<td>{_e(row['expected'])}</td>"
                "</tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

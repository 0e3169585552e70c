"""The HTML run pages ``run_page_url`` points to: every run, and one run with its log."""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from local.workspace.limits import read_tail
from local.workspace.state import Workspace
from local.workspace.validation import INT64_MAX, INT64_MIN

router = APIRouter()
MAX_PAGE_LOG_CHARS = 200_000  # the tail of a run's log its page shows


def _page(title: str, body: str) -> HTMLResponse:
    style = "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}"
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{style}</style></head><body>{body}</body></html>"
    )


@router.get("/jobs/runs", response_class=HTMLResponse)
def runs_page(workspace: Workspace):
    rows = "".join(
        f"<tr><td><a href='/jobs/runs/{r['run_id']}'>{r['run_id']}</a></td>"
        f"<td>{html.escape(r['run_name'])}</td><td>{r['life_cycle_state']}</td>"
        f"<td>{r['result_state'] or ''}</td></tr>"
        for r in workspace.store.list(200, 0)
    )
    return _page(
        "Runs",
        "<h1>Job runs (local workspace)</h1><table><tr><th>run</th><th>name</th>"
        f"<th>state</th><th>result</th></tr>{rows}</table>",
    )


@router.get("/jobs/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: int, workspace: Workspace):
    run = workspace.store.get(run_id) if INT64_MIN <= run_id <= INT64_MAX else None
    if run is None:
        return _page("Not found", f"<h1>Run {run_id} does not exist</h1>")
    tail = read_tail(Path(run["log_path"]), MAX_PAGE_LOG_CHARS) if run["log_path"] else None
    log_text = tail[0] if tail else ""
    facts = {
        "run name": run["run_name"],
        "state": f"{run['life_cycle_state']} {run['result_state'] or ''}",
        "message": run["state_message"],
        "script": run["python_file"],
        "parameters": " ".join(json.loads(run["parameters"])),
        "error": run["error"] or "",
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    payload = html.escape(json.dumps(json.loads(run["payload"]), indent=2))
    return _page(
        f"Run {run_id}",
        f"<h1>Run {run_id}</h1><p><a href='/jobs/runs'>all runs</a></p><table>{rows}</table>"
        f"<h2>Log</h2><pre>{html.escape(log_text)}</pre>"
        f"<h2>Error trace</h2><pre>{html.escape(run['error_trace'] or '')}</pre>"
        f"<h2>Payload</h2><pre>{payload}</pre>",
    )

"""HTTP side of the local workspace: the Databricks Jobs 2.2 runs API and the Files API.

Only what this project's clients use (the Airflow Databricks operator, hook and trigger, and
the official ``databricks-sdk``), answered the way Databricks answers: the same JSON shapes,
life-cycle states and ``{"error_code", "message"}`` errors.
"""

from __future__ import annotations

import hmac
import html
import json
import mimetypes
import os
import shutil
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from local.spark.runtime import LocalLayout
from local.workspace.cluster import Cluster
from local.workspace.store import TASK_RUN_OFFSET, RunStore

MAX_TOKEN_LENGTH = 64


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def _name_max(base: Path) -> int:
    try:
        return os.pathconf(base, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _resolve(base: Path, relative: str, what: str) -> Path:
    """``base / relative`` with symlinks resolved; a NUL byte or an over-long name is a 400."""
    if "\x00" in relative:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{what} contains a NUL byte")
    limit = _name_max(base)
    if any(len(part.encode()) > limit for part in relative.split("/")):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"{what} has a name longer than {limit} bytes"
        )
    try:
        path = (base / relative).resolve()
        path.exists()  # raises for a name the file system cannot hold (ENAMETOOLONG)
        return path
    except (OSError, ValueError) as error:
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"{what} {relative[:200]!r} is not a valid path: {error}",
        ) from None


_JOB_FOLDERS = "spark_jobs/ or local/jobs/"


def validate_python_file(layout: LocalLayout, python_file: object) -> str:
    """``python_file`` must name a .py file inside a job folder, relative to the project root.

    The job folders are spark_jobs/ and the local-only local/jobs/ (``LocalLayout.job_dirs``).
    Refused: absolute paths, ``..`` segments, anything but ``.py``, and a path that resolves
    outside the job folders (a symlink pointing out of them included).
    """
    if not isinstance(python_file, str) or not python_file:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "spark_python_task.python_file is required")
    relative = Path(python_file)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix != ".py":
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"python_file {python_file!r} must be a relative path to a .py file in {_JOB_FOLDERS}",
        )
    resolved = _resolve(layout.root, python_file, "python_file")
    if not any(resolved.is_relative_to(folder.resolve()) for folder in layout.job_dirs):
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"python_file {python_file!r} is outside the job folders {_JOB_FOLDERS}",
        )
    if not resolved.is_file():
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"python_file {python_file!r} not found")
    return relative.as_posix()


def volume_path(layout: LocalLayout, raw: str) -> Path:
    """Map ``Volumes/<catalog>/<schema>/<volume>/...`` to the local root, refusing escapes."""
    decoded = unquote(raw).strip("/")
    parts = decoded.split("/")
    if not parts or parts[0] != "Volumes" or len(parts) < 2:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"/{decoded} is not a /Volumes path")
    if any(part in ("..", ".", "") for part in parts) or "\\" in decoded:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"/{decoded} is not a normalised path")
    root = layout.volumes_root.resolve()
    path = _resolve(root, "/".join(parts[1:]), "the Volumes path")
    if not path.is_relative_to(root):
        raise ApiError(403, "PERMISSION_DENIED", f"/{decoded} escapes the Volumes root")
    return path


def _int(value: object, name: str, default: int = 0) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} must be an integer") from None


def create_app(layout: LocalLayout, *, token: str, mode: str, slots: int, port: int) -> FastAPI:
    store = RunStore(layout.workspace_dir / "runs.sqlite")
    lost = store.mark_in_flight_as_lost()
    cluster = Cluster(store, layout, mode=mode, slots=slots)
    base_url = f"http://127.0.0.1:{port}"
    app = FastAPI(title="Local Databricks workspace", docs_url=None, redoc_url=None)
    app.state.cluster = cluster

    @app.on_event("startup")
    def _start() -> None:
        if lost:
            print(f"[workspace] {lost} run(s) in flight at the last stop marked INTERNAL_ERROR")
        cluster.start()

    @app.on_event("shutdown")
    def _stop() -> None:
        cluster.stop()

    @app.exception_handler(ApiError)
    def _api_error(_: Request, error: ApiError):
        return _error(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    def _validation_error(_: Request, error: RequestValidationError):
        return _error(400, "MALFORMED_REQUEST", str(error.errors())[:500])

    @app.exception_handler(StarletteHTTPException)
    def _http_error(_: Request, error: StarletteHTTPException):
        code = "ENDPOINT_NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
        return _error(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    def _internal(_: Request, error: Exception):
        return _error(500, "INTERNAL_ERROR", f"{type(error).__name__}: {error}")

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if request.url.path.startswith("/api/"):
            header = request.headers.get("authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.encode(), token.encode()
            ):
                return _error(401, "UNAUTHENTICATED", "A valid bearer token is required")
        return await call_next(request)

    async def _json_body(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ApiError(400, "MALFORMED_REQUEST", f"Invalid JSON: {error}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST", "The request body must be a JSON object")
        return body

    async def _run_id(request: Request, key: str = "run_id") -> int:
        value = request.query_params.get(key)
        if value is None:
            value = (await _json_body(request)).get(key)
        if value is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{key} is required")
        return _int(value, key)

    def _load(run_id: int) -> dict:
        run = store.get(run_id)
        if run is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        return run

    def _state(run: dict) -> dict:
        state = {
            "life_cycle_state": run["life_cycle_state"],
            "state_message": run["state_message"],
            "user_cancelled_or_timedout": run["result_state"] in ("CANCELED", "TIMEDOUT"),
        }
        if run["result_state"]:
            state["result_state"] = run["result_state"]
        return state

    def _describe(run: dict) -> dict:
        payload = json.loads(run["payload"])
        end = run["end_time"]
        start = run["start_time"]
        task = {
            "run_id": run["run_id"] + TASK_RUN_OFFSET,
            "task_key": run["task_key"],
            "attempt_number": 0,
            "state": _state(run),
            "start_time": start,
            "end_time": end,
            "spark_python_task": {
                "python_file": run["python_file"],
                "parameters": json.loads(run["parameters"]),
            },
            "run_page_url": f"{base_url}/jobs/runs/{run['run_id']}",
        }
        return {
            "job_id": 0,
            "run_id": run["run_id"],
            "number_in_job": run["run_id"],
            "run_name": run["run_name"],
            "run_type": "SUBMIT_RUN",
            "run_page_url": f"{base_url}/jobs/runs/{run['run_id']}",
            "state": _state(run),
            "start_time": start or run["submit_time"],
            "end_time": end,
            "setup_duration": 0,
            "execution_duration": max(0, end - start) if end and start else 0,
            "cleanup_duration": 0,
            "creator_user_name": "local",
            "tasks": [task],
            "cluster_spec": {"new_cluster": payload.get("new_cluster", {})},
            "git_source": payload.get("git_source"),
        }

    @app.get("/health")
    def health():
        return {"status": "ok", "mode": mode}

    @app.get("/.well-known/databricks-config")
    def host_metadata():
        # databricks-sdk probes this discovery document on every client start and warns when
        # it is missing. No OAuth here (bearer tokens only), so no OIDC endpoint is announced.
        return {"oidc_endpoint": "", "workspace_id": "0"}

    @app.post("/api/{version}/jobs/runs/submit")
    async def submit(version: str, request: Request):
        body = await _json_body(request)
        tasks = body.get("tasks")
        if tasks is None:
            task = {"task_key": body.get("run_name") or "main", **body}
        elif isinstance(tasks, list) and len(tasks) == 1 and isinstance(tasks[0], dict):
            task = tasks[0]
        else:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", "The local workspace runs exactly one task per run"
            )
        spark_task = task.get("spark_python_task")
        if not isinstance(spark_task, dict):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "spark_python_task is required")
        parameters = spark_task.get("parameters") or []
        if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "parameters must be a list of strings")
        python_file = validate_python_file(layout, spark_task.get("python_file"))
        token_value = body.get("idempotency_token")
        if token_value is not None and (
            not isinstance(token_value, str) or len(token_value) > MAX_TOKEN_LENGTH
        ):
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", "idempotency_token must be at most 64 characters"
            )
        timeout = _int(body.get("timeout_seconds", task.get("timeout_seconds")), "timeout_seconds")
        run_id, created = store.create(
            run_name=str(body.get("run_name") or "Untitled"),
            task_key=str(task.get("task_key") or "main"),
            payload=body,
            python_file=python_file,
            parameters=parameters,
            token=token_value,
            timeout=timeout,
        )
        if created:
            print(f"[workspace] run {run_id} submitted: {python_file} {' '.join(parameters)}")
            cluster.wake()
        return {"run_id": run_id}

    @app.get("/api/{version}/jobs/runs/get")
    async def get_run(version: str, request: Request):
        return _describe(_load(await _run_id(request)))

    @app.get("/api/{version}/jobs/runs/get-output")
    async def get_output(version: str, request: Request):
        run = _load(await _run_id(request))
        output: dict = {"metadata": _describe(run)}
        if run["error"]:
            output["error"] = run["error"]
            output["error_trace"] = run["error_trace"] or ""
        log_path = Path(run["log_path"]) if run["log_path"] else None
        if log_path and log_path.exists():
            text = log_path.read_text(errors="replace")
            output["logs"] = text[-100_000:]
            output["logs_truncated"] = len(text) > 100_000
        return output

    @app.post("/api/{version}/jobs/runs/cancel")
    async def cancel(version: str, request: Request):
        run = _load(await _run_id(request))
        cluster.cancel(run["run_id"])
        return {}

    @app.get("/api/{version}/jobs/runs/list")
    async def list_runs(version: str, request: Request):
        limit = min(max(_int(request.query_params.get("limit"), "limit", 25), 1), 1000)
        offset = max(_int(request.query_params.get("offset"), "offset", 0), 0)
        rows = store.list(limit + 1, offset)
        return {"runs": [_describe(r) for r in rows[:limit]], "has_more": len(rows) > limit}

    @app.get("/api/{version}/clusters/spark-versions")
    def spark_versions(version: str):
        return {"versions": [{"key": "local-spark-4.2", "name": "Local Spark 4.2 with Delta"}]}

    # Files API -------------------------------------------------------------------------
    def _file_headers(path: Path) -> dict:
        stat = path.stat()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return {
            "content-length": str(stat.st_size),
            "content-type": content_type,
            "last-modified": formatdate(stat.st_mtime, usegmt=True),
        }

    @app.get("/api/2.0/fs/files/{raw:path}")
    def download(raw: str):
        path = volume_path(layout, raw)
        if not path.is_file():
            raise ApiError(404, "NOT_FOUND", f"File /{raw} does not exist")
        headers = _file_headers(path)
        return FileResponse(path, media_type=headers["content-type"])

    @app.head("/api/2.0/fs/files/{raw:path}")
    def file_metadata(raw: str):
        path = volume_path(layout, raw)
        if not path.is_file():
            return Response(status_code=404)
        return Response(status_code=200, headers=_file_headers(path))

    @app.put("/api/2.0/fs/files/{raw:path}")
    async def upload(raw: str, request: Request):
        path = volume_path(layout, raw)
        overwrite = request.query_params.get("overwrite", "false").lower() == "true"
        if path.is_dir():
            raise ApiError(409, "ALREADY_EXISTS", f"/{raw} is a directory")
        if path.exists() and not overwrite:
            raise ApiError(409, "ALREADY_EXISTS", f"File /{raw} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.uploading")
        with open(partial, "wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
        partial.replace(path)  # readers never see a half-written file
        return Response(status_code=204)

    @app.delete("/api/2.0/fs/files/{raw:path}")
    def delete_file(raw: str):
        path = volume_path(layout, raw)
        if not path.is_file():
            raise ApiError(404, "NOT_FOUND", f"File /{raw} does not exist")
        path.unlink()
        return Response(status_code=204)

    @app.get("/api/2.0/fs/directories/{raw:path}")
    def list_directory(raw: str):
        path = volume_path(layout, raw)
        if not path.is_dir():
            raise ApiError(404, "NOT_FOUND", f"Directory /{raw} does not exist")
        contents = []
        for child in sorted(path.iterdir()):
            if child.name.endswith(".uploading"):
                continue
            stat = child.stat()
            entry = {
                "path": "/" + raw.strip("/") + "/" + child.name,
                "name": child.name,
                "is_directory": child.is_dir(),
                "last_modified": int(stat.st_mtime * 1000),
            }
            if child.is_file():
                entry["file_size"] = stat.st_size
            contents.append(entry)
        return {"contents": contents}

    @app.head("/api/2.0/fs/directories/{raw:path}")
    def directory_metadata(raw: str):
        return Response(status_code=200 if volume_path(layout, raw).is_dir() else 404)

    @app.put("/api/2.0/fs/directories/{raw:path}")
    def create_directory(raw: str):
        path = volume_path(layout, raw)
        if path.is_file():
            raise ApiError(409, "ALREADY_EXISTS", f"/{raw} is a file")
        path.mkdir(parents=True, exist_ok=True)
        return Response(status_code=204)

    @app.delete("/api/2.0/fs/directories/{raw:path}")
    def delete_directory(raw: str):
        path = volume_path(layout, raw)
        if not path.is_dir():
            raise ApiError(404, "NOT_FOUND", f"Directory /{raw} does not exist")
        if any(path.iterdir()):
            raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"Directory /{raw} is not empty")
        shutil.rmtree(path)
        return Response(status_code=204)

    # Run pages ---------------------------------------------------------------------------
    def _page(title: str, body: str) -> HTMLResponse:
        style = "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}"
        return HTMLResponse(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{body}</body></html>"
        )

    @app.get("/jobs/runs", response_class=HTMLResponse)
    def runs_page():
        rows = "".join(
            f"<tr><td><a href='/jobs/runs/{r['run_id']}'>{r['run_id']}</a></td>"
            f"<td>{html.escape(r['run_name'])}</td><td>{r['life_cycle_state']}</td>"
            f"<td>{r['result_state'] or ''}</td></tr>"
            for r in store.list(200, 0)
        )
        return _page(
            "Runs",
            "<h1>Job runs (local workspace)</h1><table><tr><th>run</th><th>name</th>"
            f"<th>state</th><th>result</th></tr>{rows}</table>",
        )

    @app.get("/jobs/runs/{run_id}", response_class=HTMLResponse)
    def run_page(run_id: int):
        run = store.get(run_id)
        if run is None:
            return _page("Not found", f"<h1>Run {run_id} does not exist</h1>")
        log_text = ""
        if run["log_path"] and Path(run["log_path"]).exists():
            log_text = Path(run["log_path"]).read_text(errors="replace")[-200_000:]
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

    return app

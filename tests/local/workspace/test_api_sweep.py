"""No malformed request reaches a 500: a property-based sweep of every ``/api/`` route.

The application is built in process (``create_app`` on a temporary layout) and called through
FastAPI's ``TestClient`` with the application's lifespan replaced by one that does nothing: the
cluster's dispatcher and drivers are never started, and a submitted run that happens to be
valid stays QUEUED and never executes (no Spark, no job process: each route's test checks that
the dispatcher thread never ran and no child process was started). Routes are enumerated from ``app.routes``, so a new route is swept
without editing this file.

For every route and method Hypothesis generates odd path segments (``{version}``, the Volumes
path), query parameters of every name the API reads with odd values (huge and negative numbers,
non-ASCII digits, NUL, unpaired surrogates, very long strings) and bodies (arbitrary JSON, raw
bytes, deeply nested arrays, numbers of thousands of digits, near-valid ``runs/submit`` bodies
with one field of a wrong type). Every answer must be a 2xx or a 4xx, every 4xx a Databricks
error ``{"error_code", "message"}``, and a 400 caused by a single wrong field must name it;
and every route refuses a body declared over its size limit (413 ``REQUEST_LIMIT_EXCEEDED``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.jobs_api_schema import run_fields
from local.spark.runtime import LocalLayout
from local.workspace.server import create_app
from tests.support.workspace_app import app_without_cluster, finished_run

TOKEN = "sweep-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VOLUME = "Volumes/cat/sch/vol"
INT64_MAX = 2**63 - 1
JSON_LIMIT = 10 * 1024 * 1024  # local.workspace.limits: Databricks' 10 MB Jobs API request
UPLOAD_LIMIT = 512 * 1024 * 1024  # the default of serve --max-upload-bytes

SWEEP = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# The query parameters each route reads (the rest of the API ignores unknown parameters).
ROUTE_PARAMETERS = {
    "/jobs/runs/get": ("run_id",),
    "/jobs/runs/get-output": ("run_id",),
    "/jobs/runs/cancel": ("run_id",),
    "/jobs/runs/list": (
        "limit",
        "offset",
        "page_token",
        "start_time_from",
        "start_time_to",
        "active_only",
        "completed_only",
        "expand_tasks",
        "run_type",
    ),
}
QUERY_NAMES = sorted({n for names in ROUTE_PARAMETERS.values() for n in names} | {"overwrite"})
ODD_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "true",
    "false",
    "TRUE",
    "null",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "1.5",
    "0x10",
    "1_000",
    " 7 ",
    "\u00b2",  # superscript two: str.isdigit() is True, int() refuses it
    "\u0661\u0662",  # Arabic-Indic digits: int() accepts them
    "9" * 30,
    str(INT64_MAX),
    str(INT64_MAX + 1),
    str(-(2**63) - 1),
    "1" * 5000,  # over Python's 4300-digit int conversion limit
    "a\x00b",
    "\ud800",
    "../../etc/passwd",
    "x" * 10_000,
    "SUBMIT_RUN",
    "JOB_RUN",
]
odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40))
huge_int = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, -(2**63), -(2**63) - 1, 10**30, -(10**30)]),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    huge_int,
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
)
json_value = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(odd_text, st.sampled_from(sorted(run_fields()))), children, max_size=4
        ),
    ),
    max_leaves=12,
)
PYTHON_FILES = [
    "local/jobs/trivial_spark.py",
    "spark_jobs/ingest_events.py",
    "local/jobs/missing.py",
    "../../etc/passwd.py",
    "spark_jobs/a\x00.py",
    "spark_jobs/\ud800.py",
    "/etc/passwd.py",
]


@st.composite
def submit_bodies(draw) -> tuple[dict, str | None]:
    """A ``runs/submit`` body that is valid but for (at most) one field, and that field's name."""
    task = {
        "task_key": draw(st.one_of(st.just("main"), odd_text)),
        "spark_python_task": {
            "python_file": draw(st.one_of(st.sampled_from(PYTHON_FILES), odd_text)),
            "parameters": draw(st.lists(odd_text, max_size=3)),
        },
    }
    body: dict = {"run_name": draw(st.one_of(st.just("sweep"), odd_text)), "tasks": [task]}
    if draw(st.booleans()):
        body["idempotency_token"] = draw(st.one_of(odd_text, json_scalar))
    if draw(st.booleans()):
        body["timeout_seconds"] = draw(st.one_of(huge_int, odd_text))
    wrong = draw(st.one_of(st.none(), st.sampled_from(sorted(run_fields()))))
    if wrong is not None:
        body[wrong] = draw(json_value)
    return body, wrong


def _raw_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"[" * 100_000,  # nested deeper than any parser's recursion
                b'{"run_id": ' + b"1" * 5000 + b"}",  # a number of 5000 digits
                b'{"run_id": 1e400}',
                b'{"run_id": NaN}',
                b'{"run_id": Infinity}',
                b'{"run_id": "\\ud800"}',
                b'{"run_name": "\\ud800", "tasks": []}',
                b"\xff\xfe\x00{",
                b'{"a": 1',
                b"null",
                b"[]",
                b'"run_id"',
            ]
        ),
    )


@st.composite
def requests_for(draw, method: str, template: str) -> tuple:
    """(url, body, the one query parameter given if only it was, the one wrong body field)."""
    path = template.replace(
        "{version}",
        draw(st.one_of(st.sampled_from(["2.0", "2.1", "2.2"]), odd_text.filter(bool))),
    )
    if "{raw:path}" in template:
        segments = draw(
            st.lists(
                st.one_of(
                    st.sampled_from(["file.txt", "dir", "new.txt", "..", ".", "", "%00", "a\\b"]),
                    odd_text,
                ),
                max_size=4,
            )
        )
        prefix = draw(st.sampled_from([VOLUME, "Volumes", "", "etc", VOLUME + "/file.txt"]))
        parts = [quote(s.encode("utf-8", "surrogatepass"), safe="") for s in segments]
        path = path.replace("{raw:path}", "/".join([prefix, *parts]))
    else:
        path = "/".join(quote(p.encode("utf-8", "surrogatepass"), safe="") for p in path.split("/"))
    names = draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=3, unique=True))
    query = {n: draw(st.one_of(odd_text, huge_int.map(str))) for n in names}
    url = path
    if query:
        url += "?" + "&".join(
            f"{n}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for n, v in query.items()
        )
    kind = draw(st.sampled_from(["none", "json", "submit", "raw"]))
    body = None
    wrong = None
    if kind == "json":
        body = json.dumps(draw(json_value)).encode()
    elif kind == "submit":
        value, wrong = draw(submit_bodies())
        body = json.dumps(value).encode()
    elif kind == "raw":
        body = draw(_raw_bodies())
    single = names[0] if len(names) == 1 and body is None else None
    return url, body, single, wrong


def _api_routes() -> list[tuple[str, str]]:
    """Every (method, path template) of the API, read from the application itself."""
    state = Path(tempfile.mkdtemp(prefix="sweep-routes-"))
    app = create_app(LocalLayout(state=state), token=TOKEN, mode="cold", slots=1, port=0)
    routes = [
        (method, route.path)
        for route in app.routes
        if route.path.startswith("/api/")
        for method in sorted(route.methods)
    ]
    assert len(routes) >= 14, routes
    return routes


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    layout = LocalLayout(state=tmp_path_factory.mktemp("sweep"))
    app = app_without_cluster(layout, TOKEN)
    volume = layout.volumes_root / "cat" / "sch" / "vol"
    (volume / "dir").mkdir(parents=True)
    (volume / "file.txt").write_text("a file\n")
    app.state.children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    log = layout.workspace_dir / "run.log"
    log.write_text("a log line\n")
    for _ in range(3):
        finished_run(app, log, "seed")
    return app


@pytest.fixture(scope="module")
def client(app):
    # The app's lifespan starts no cluster (app_without_cluster): the client keeps one event
    # loop for every request, and no run is ever dispatched.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _check(method: str, response, single: str | None, wrong: str | None, template: str) -> None:
    status = response.status_code
    context = (method, str(response.request.url)[:300], status, response.text[:300])
    assert status < 500, context
    assert 200 <= status < 300 or 400 <= status < 500, context
    if 400 <= status < 500 and method != "HEAD":
        body = response.json()
        assert isinstance(body, dict) and set(body) >= {"error_code", "message"}, context
        assert isinstance(body["error_code"], str) and isinstance(body["message"], str), context
        if status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE":
            route = template.removeprefix("/api/{version}")
            if single is not None and single in ROUTE_PARAMETERS.get(route, ()):
                assert single in body["message"], context
            if wrong is not None and route == "/jobs/runs/submit":
                # the wrong field, or the field that was refused first
                assert any(
                    name in body["message"]
                    for name in (
                        wrong,
                        "python_file",
                        "parameters",
                        "idempotency_token",
                        "timeout_seconds",
                        "task_key",
                        "run_name",
                        "tasks",
                    )
                ), context


@pytest.mark.parametrize(("method", "template"), _api_routes())
def test_every_api_route_answers_malformed_and_oversized_requests_with_a_4xx(
    app, client, method, template
):
    @SWEEP
    @given(request=requests_for(method, template))
    def sweep(request):
        url, body, single, wrong = request
        headers = {**AUTH, "Content-Type": "application/json"}
        response = client.request(method, url, content=body, headers=headers)
        _check(method, response, single, wrong, template)

    sweep()
    # A body declared over the route's limit is refused, whatever the route.
    upload = method == "PUT" and template.startswith("/api/2.0/fs/files/")
    limit = UPLOAD_LIMIT if upload else JSON_LIMIT
    url = template.replace("{version}", "2.2").replace("{raw:path}", f"{VOLUME}/over.bin")
    headers = {**AUTH, "Content-Length": str(limit + 1)}  # the body itself is never read
    response = client.request(method, url, content=b"{}", headers=headers)
    assert response.status_code == 413, (method, url, response.status_code)
    if method != "HEAD":
        assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    # Valid runs the sweep submitted stayed QUEUED: no dispatcher ran, nothing was started.
    assert not app.state.workspace.cluster._dispatcher.is_alive()
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= app.state.children_before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_id", str(INT64_MAX + 1)),
        ("offset", str(2**64)),
        ("start_time_from", str(2**64)),
        ("start_time_to", "-" + "9" * 25),
        ("page_token", "\u00b2"),
        ("page_token", "9" * 30),
    ],
)
def test_an_out_of_range_query_parameter_is_a_400_naming_it(client, field, value):
    route = "runs/list" if field not in ("run_id",) else "runs/get"
    response = client.get(f"/api/2.2/jobs/{route}", params={field: value}, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert field in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"run_id": 2**64}, "run_id"),
        ({"run_id": 1e300}, "run_id"),
        ({"run_id": 1.5}, "run_id"),
        ({"run_id": True}, "run_id"),
    ],
)
def test_an_odd_run_id_in_a_body_is_a_400_naming_it(client, body, field):
    response = client.post("/api/2.2/jobs/runs/cancel", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"]


def _submit_body(**extra) -> dict:
    task = {"task_key": "main", "spark_python_task": {"python_file": "local/jobs/trivial_spark.py"}}
    return {"run_name": "sweep", "tasks": [task], **extra}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"idempotency_token": "\ud800"}, "idempotency_token"),
        ({"idempotency_token": "a\x00b"}, "idempotency_token"),
        ({"idempotency_token": "line\nbreak"}, "idempotency_token"),
        ({"run_name": "\udfff"}, "run_name"),
        ({"timeout_seconds": 2**64}, "timeout_seconds"),
        ({"timeout_seconds": str(2**64)}, "timeout_seconds"),
    ],
)
def test_an_odd_submit_field_is_a_400_naming_it(client, extra, field):
    listed = client.get("/api/2.2/jobs/runs/list", headers=AUTH).json()
    response = client.post(
        "/api/2.2/jobs/runs/submit",
        content=json.dumps(_submit_body(**extra)).encode(),  # a lone surrogate as \\udXXX
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert field in response.json()["message"]
    assert client.get("/api/2.2/jobs/runs/list", headers=AUTH).json() == listed  # no run


def test_an_empty_idempotency_token_twice_is_not_a_conflict(client):
    """An empty token means no token (it used to hit the store's UNIQUE index on a retry)."""
    first = client.post(
        "/api/2.2/jobs/runs/submit", json=_submit_body(idempotency_token=""), headers=AUTH
    )
    again = client.post(
        "/api/2.2/jobs/runs/submit", json=_submit_body(idempotency_token=""), headers=AUTH
    )
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["run_id"] != again.json()["run_id"]


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b'{"run_id": ' + b"1" * 5000 + b"}", b'{"run_id": NaN}'],
    ids=["deep", "long-number", "nan"],
)
def test_an_unparseable_body_is_a_400(client, raw):
    response = client.post(
        "/api/2.2/jobs/runs/cancel",
        content=raw,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize("api", ["files", "directories"])
def test_creating_below_a_file_is_a_client_error(app, client, api):
    blocker = app.state.workspace.layout.volumes_root / "cat" / "sch" / "vol" / "blocker.txt"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where a folder would go\n")
    url = f"/api/2.0/fs/{api}/{VOLUME}/blocker.txt/below/x.txt"
    response = client.put(url, content=b"x", headers=AUTH)
    assert response.status_code == 409, response.text
    assert response.json()["error_code"] == "ALREADY_EXISTS"
    assert blocker.read_text() == "a file where a folder would go\n"


def test_an_out_of_range_run_page_is_not_a_500(client):
    assert client.get(f"/jobs/runs/{2**64}").status_code < 500


def test_the_500_handler_does_not_echo_the_exception(app, client, monkeypatch, caplog):
    def broken(run_id):
        raise RuntimeError("secret-detail /home/someone/.databrickscfg")

    monkeypatch.setattr(app.state.workspace.store, "get", broken)
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/2.2/jobs/runs/get", params={"run_id": 1}, headers=AUTH)
    assert response.status_code == 500
    body = response.json()
    assert body["error_code"] == "INTERNAL_ERROR"
    assert "secret-detail" not in response.text and "RuntimeError" not in response.text
    assert "log" in body["message"]
    # ... and the detail is in the server's log, under the id the client was given
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "secret-detail" in logged or any(
        r.exc_info and "secret-detail" in str(r.exc_info[1]) for r in caplog.records
    )

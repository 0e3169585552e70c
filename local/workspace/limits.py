"""Request limits of the local workspace: how big a request body may be, and reading a log's tail.

Databricks refuses an over-large request before any API sees it; so does this middleware,
for every ``/api/`` request:

* a Files API upload (``PUT /api/2.0/fs/files/...``) may carry up to ``max_upload_bytes``
  (:data:`MAX_UPLOAD_BYTES` by default, ``python -m local.workspace serve --max-upload-bytes``;
  Databricks' own limit is 5 GiB, a local disk and a laptop's patience are smaller);
* every other request (the JSON bodies of the Jobs API) up to :data:`MAX_JSON_BODY_BYTES`,
  the 10 MB Databricks documents as the largest Jobs API request.

A larger body is answered ``413 {"error_code": "REQUEST_LIMIT_EXCEEDED", ...}`` (the code
``databricks-sdk`` maps to ``RequestLimitExceeded``; neither the SDK nor the Airflow hook
retries a 413). A ``Content-Length`` over the limit is refused before a byte is read; a body
without one (chunked) is counted while the route reads it and stopped at the first chunk past
the limit (:class:`BodyTooLarge`, an :class:`ApiError`, is raised into the route: the upload
route removes its partial file on any exception).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local.workspace.errors import ApiError

MIB = 1024 * 1024
MAX_JSON_BODY_BYTES = 10 * MIB
MAX_UPLOAD_BYTES = 512 * MIB
UPLOAD_PREFIX = "/api/2.0/fs/files/"
CODE = "REQUEST_LIMIT_EXCEEDED"


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, what: str):
        super().__init__(
            413, CODE, f"The {what} is larger than the local workspace's limit of {limit} bytes"
        )


def _limit_of(scope: Scope, max_upload_bytes: int) -> tuple[int, str]:
    if scope["method"] == "PUT" and scope["path"].startswith(UPLOAD_PREFIX):
        return max_upload_bytes, "upload"
    return MAX_JSON_BODY_BYTES, "request body"


def _content_length(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.decode("latin-1")
    return None


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    # The rest of the body is never read: the connection is not reused.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Pure ASGI middleware: the body size limits of every ``/api/`` request."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int = MAX_UPLOAD_BYTES):
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        limit, what = _limit_of(scope, self.max_upload_bytes)
        declared = _content_length(scope)
        if declared is not None:
            if not declared.strip().isascii() or not declared.strip().isdigit():
                await _answer(send, 400, "MALFORMED_REQUEST", "Invalid Content-Length header")
                return
            if int(declared) > limit:
                await _answer(send, 413, CODE, BodyTooLarge(limit, what).message)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, what)
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as error:  # raised where no route's error handler caught it
            if started:
                raise
            await _answer(send, error.status, error.code, error.message)


def read_tail(path: Path, max_chars: int) -> tuple[str, bool] | None:
    """The last ``max_chars`` characters of the UTF-8 text file ``path`` (undecodable bytes
    replaced) and whether the file holds more; None when there is no such file. Only the
    tail is read: at most 4 bytes a character, from the last character boundary before it."""
    try:
        handle = open(path, "rb")  # closed by the with below
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - 4 * max_chars - 3)
        if start:
            handle.seek(start)
        data = handle.read()
    if start:  # skip the continuation bytes of a character cut by the seek
        skip = 0
        while skip < 3 and skip < len(data) and 0x80 <= data[skip] < 0xC0:
            skip += 1
        data = data[skip:]
    # Universal newlines, as the whole file read as text had them.
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    # A file of more than 4 * max_chars bytes holds more than max_chars characters.
    return text[-max_chars:], bool(start) or len(text) > max_chars


MAX_JSON_DEPTH = 64  # far deeper than any Jobs API request; keeps every walker off the stack


def parse_json_body(raw: bytes) -> object:
    """``raw`` parsed as JSON the way a strict JSON parser reads it: UTF-8, no ``NaN`` or
    ``Infinity``, integers of at most 4300 digits (Python's conversion limit), nesting of at
    most :data:`MAX_JSON_DEPTH` levels, and no unpaired surrogate (``"\\ud800"``) in any key or
    string, which neither SQLite nor a log line can hold. Otherwise a 400 that says where."""

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not a JSON value")

    try:
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=refuse_constant)
    except UnicodeDecodeError as error:
        raise ApiError(400, "MALFORMED_REQUEST", f"The body is not UTF-8: {error}") from None
    except RecursionError:
        raise ApiError(
            400, "MALFORMED_REQUEST", f"Invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except ValueError as error:  # json.JSONDecodeError, or a number of too many digits
        raise ApiError(400, "MALFORMED_REQUEST", f"Invalid JSON: {str(error)[:200]}") from None
    _check_json_tree(body)
    return body


def _check_json_tree(body: object) -> None:
    """Depth and text of every value of ``body``, without recursion."""
    stack: list[tuple[object, str, int]] = [(body, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(
                400,
                "MALFORMED_REQUEST",
                f"Invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels",
            )
        if isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"
                _check_text(key, child)
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = path.encode("ascii", "backslashreplace").decode()
        raise ApiError(
            400,
            "INVALID_PARAMETER_VALUE",
            f"{shown} holds an unpaired surrogate: not valid Unicode text",
        ) from None

"""Errors the way Databricks reports them: a status code and ``{"error_code", "message"}``.

Every failure of the local workspace, including FastAPI's own (malformed requests, unknown
endpoints) and an unexpected exception, reaches the client in this shape, because the
Databricks clients (the Airflow hook, ``databricks-sdk``) parse it to decide what to raise.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("local.workspace")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


def _api_error(_: Request, error: ApiError):
    return error_response(error.status, error.code, error.message)


def _validation_error(_: Request, error: RequestValidationError):
    return error_response(400, "MALFORMED_REQUEST", str(error.errors())[:500])


def _http_error(_: Request, error: StarletteHTTPException):
    code = "ENDPOINT_NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
    return error_response(error.status_code, code, str(error.detail))


def _internal(request: Request, error: Exception):
    """An unexpected exception: logged here with its traceback under a fresh error id; the
    client gets the id, never the exception's text (paths, SQL, values of other requests)."""
    error_id = uuid.uuid4().hex[:12]
    log.error(
        "internal error %s on %s %s",
        error_id,
        request.method,
        request.url.path,
        exc_info=(type(error), error, error.__traceback__),
    )
    return error_response(
        500,
        "INTERNAL_ERROR",
        f"Internal error in the local workspace; see its log (error id {error_id})",
    )


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in the Databricks shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal)

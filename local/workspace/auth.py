"""The bearer token every ``/api/`` request must carry, checked before any route runs.

The run pages and ``/health`` need no token, which is why the workspace binds a loopback
address unless told otherwise (``python -m local.workspace serve --allow-remote``).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from local.workspace.errors import error_response


async def require_token(request: Request, call_next):
    if request.url.path.startswith("/api/"):
        token = request.app.state.workspace.token
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(401, "UNAUTHENTICATED", "A valid bearer token is required")
    return await call_next(request)

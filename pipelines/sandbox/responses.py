"""JSON answers of the sandbox, shared by the /v1 API (app.py) and the admin endpoints (admin.py).

Errors take the vendor's shape, `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class BadParam(ValueError):
    """A request parameter or body field the endpoint cannot take: answered 400."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)

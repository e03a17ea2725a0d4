"""The host's own error answers: a JSON problem body (RFC 9457 field names), as the app itself answers errors."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from aos_core.errors import problem_body


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(problem_body(status, title, detail, **extra), status_code=status,
                        media_type="application/problem+json")

"""OpenAI-shaped API errors raised by request handling and rendered by the server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["APIError", "error_body", "invalid"]


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "code", "param"}}``, the body of every error."""
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


class APIError(Exception):
    """A request the API refuses: rendered as ``status`` plus ``error_body``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type=type, code=code, param=param)
        self.headers = dict(headers or {})


def invalid(
    message: str, *, param: str | None = None, code: str | None = "invalid_value"
) -> APIError:
    """A 400 ``invalid_request_error``."""
    return APIError(400, message, code=code, param=param)

"""The API's errors: every failure answers JSON ``{"error": {"code": ..., "message": ...}}`` with a
4xx (the client's input) or 5xx (the server's side) status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success: HTTP ``status``, a stable machine ``code`` and a sentence."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")

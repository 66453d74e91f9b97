"""The error answer: a status, a one-line message naming the field, and a machine-readable type."""

from __future__ import annotations

# status -> error_type, the values clients can switch on
ERROR_TYPES = {
    400: "malformed_json",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_input",
    429: "queue_full",
    499: "client_closed",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """A request the server answers with ``status`` and ``{"error": message, "error_type": ..., "field": ...}``."""

    def __init__(self, status: int, message: str, field: str | None = None, error_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.error_type = error_type or ERROR_TYPES.get(status, "error")
        self.headers = headers or {}

    def body(self) -> dict:
        body = {"error": self.message, "error_type": self.error_type}
        if self.field is not None:
            body["field"] = self.field
        return body

"""Errors the engine answers with, in OpenAI's shape ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ApiError(Exception):
    """An HTTP error response in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI sends for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class StorageError(ApiError):
    """The engine could not make a write durable: a 500 ``server_error`` (see ``store``)."""

    def __init__(self, message: str):
        super().__init__(500, message, type="server_error")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, param=param, code=code)


def not_found(kind: str, object_id: str, param: str | None = None) -> ApiError:
    """A 404 worded as OpenAI words it, e.g. "No assistant found with id 'asst_x'."."""
    return ApiError(404, f"No {kind} found with id '{object_id}'.", param=param)


def missing_parameter(param: str) -> ApiError:
    """A 400 for a required field that is absent."""
    return bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def invalid_type(param: str, expected: str = "an object") -> ApiError:
    """A 400 for a field of the wrong JSON type (``expected``: "an object", "an array", ...)."""
    return bad_request(f"Invalid type for '{param}': expected {expected}.", param, "invalid_type")


def invalid_choice(value: object, choices: Iterable[str], param: str) -> ApiError:
    """A 400 for a value outside a closed set, listing the set as OpenAI does."""
    listed = ", ".join(f"'{c}'" for c in choices)
    return bad_request(
        f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value"
    )


def unknown_parameter(name: str) -> ApiError:
    """A 400 for a body field the endpoint does not know; ``name`` is its full path.

    OpenAI names nested fields by path: ``Unknown parameter: 'thread.messages[0].file_ids'.``
    """
    return ApiError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


class EngineSetupError(ValueError):
    """The engine cannot start as asked: a bad option, script, bind address or port.

    Raised by :func:`orch.engine.server.start_engine` and ``serve_forever`` before anything
    is served (or when the server does not come up); the message is meant for the user as is.
    """

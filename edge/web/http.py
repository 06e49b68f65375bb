"""Request and response plumbing shared by every blueprint: JSON bodies, JSON errors under /api, HTML elsewhere."""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, render_template, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from edge.errors import ConflictError, ImageTooLargeError, NotFoundError, ShelfwatchError

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
M = TypeVar("M", bound=BaseModel)
# Row ids live in SQLite INTEGER columns; a larger number cannot name a row (and sqlite3 raises OverflowError on it).
ROW_ID_MIN = -(2**63)
ROW_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """`<int:...>` in routes, at most 18 digits (within SQLite's INTEGER range): a longer id matches no route (404).

    A regex rather than `max=`: werkzeug answers a converter's refusal with 405 when the path also matches a route
    of another method.
    """

    regex = r"\d{1,18}"


class ApiError(Exception):
    """An error answered with a status code and a message ({"error": message} under /api)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def is_api_request() -> bool:
    """True for /api/... paths, which always answer JSON."""
    return request.path.startswith(API_PREFIX)


def validation_message(err: ValidationError) -> str:
    """A one-line, human-readable summary of a pydantic error."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def read_json() -> Any:
    """The request body parsed as JSON; 400 when it is missing or malformed."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "the request body must be JSON (it is empty)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"malformed JSON: {err}") from err


def read_model(model: type[M]) -> M:
    """The JSON body validated against a pydantic model; 400 naming the bad fields otherwise."""
    data = read_json()
    if not isinstance(data, dict):
        raise ApiError(400, "the JSON body must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ApiError(400, validation_message(err)) from err


def int_arg(name: str, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
    """An integer query argument within [low, high]; 400 otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise ApiError(400, f"query argument {name!r} must be an integer, got {raw!r}") from err
    if not low <= value <= high:
        raise ApiError(400, f"query argument {name!r} must be between {low} and {high}, got {value}")
    return value


def status_for(err: ShelfwatchError) -> int:
    """The HTTP status that a domain error maps to."""
    explicit = getattr(err, "http_status", None)
    if isinstance(explicit, int):
        return explicit
    if isinstance(err, ImageTooLargeError):
        return 413
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ConflictError):
        return 409
    return 400


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response | tuple[Any, ...]:
    if is_api_request():
        resp = jsonify({"error": message})
        resp.status_code = status
    else:
        resp = Response(render_template("error.html", status=status, message=message), status=status)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def register_error_handlers(app: Flask) -> None:
    """JSON errors everywhere under /api, an HTML error page elsewhere."""

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Any:
        return _error_response(err.status, err.message, err.headers)

    @app.errorhandler(ShelfwatchError)
    def _domain_error(err: ShelfwatchError) -> Any:
        status = status_for(err)
        log.info("%s %s -> %s: %s", request.method, request.path, status, err)
        return _error_response(status, str(err))

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError) -> Any:
        return _error_response(400, validation_message(err))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Any:
        if err.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH") or 0
            message = f"the upload is larger than the limit of {limit / 1048576:.0f} MiB"
        else:
            message = err.description or err.name
        headers = {}
        if err.code == 405 and err.response is None:
            allowed = getattr(err, "valid_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return _error_response(err.code or 500, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500, f"internal error: {type(err).__name__}")

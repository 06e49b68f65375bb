"""Request and response plumbing shared by every blueprint: JSON bodies, JSON errors under /api, HTML elsewhere.

Errors are answered with `edge.errors.status_for` (the status each domain error carries; 507 for a full disk;
anything unexpected is 500 with its traceback logged). JSON bodies go through `BoundedJSONProvider`, which refuses
documents nested deeper than MAX_JSON_DEPTH before parsing them (the stdlib parser recurses and a 100k-deep
document raised RecursionError); the trainer service installs the same provider.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from flask import Flask, Response, current_app, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from edge.errors import ShelfwatchError, is_disk_full, public_message, status_for, validation_message

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
M = TypeVar("M", bound=BaseModel)
_Default = TypeVar("_Default", float, None)
_N = TypeVar("_N", int, float)
# Row ids live in SQLite INTEGER columns; a larger number cannot name a row (and sqlite3 raises OverflowError on it).
ROW_ID_MIN = -(2**63)
ROW_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """`<int:...>` in routes, at most 18 digits (within SQLite's INTEGER range): a longer id matches no route (404).

    A regex rather than `max=`: werkzeug answers a converter's refusal with 405 when the path also matches a route
    of another method.
    """

    regex = r"\d{1,18}"


class ApiError(ShelfwatchError):
    """An error of the web layer itself answered with its status and message ({"error": message} under /api)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = status
        self.message = message
        self.headers = headers or {}


# Deeper than any body the API defines (a zone list with polygons is 5 levels); far below the parser's recursion.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class JSONTooDeepError(ShelfwatchError):
    """A JSON document nests arrays/objects deeper than MAX_JSON_DEPTH (400).

    Not a ValueError on purpose: request.get_json() turns those into a bare "bad request" without the reason.
    """


def json_depth(raw: bytes | str) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count); linear time."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if b"[" not in data and b"{" not in data:
        return 0
    if b'"' in data:
        data = _JSON_STRING.sub(b'""', data)
    steps = _OPEN[np.frombuffer(data, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def loads_bounded(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing documents deeper than `max_depth` before parsing (JSONTooDeepError naming the problem)."""
    depth = json_depth(raw)
    if depth > max_depth:
        raise JSONTooDeepError(f"JSON nested {depth} levels deep; at most {max_depth} levels are accepted")
    try:
        return json.loads(raw)
    except RecursionError as err:  # defence in depth: never a traceback for a shape
        raise JSONTooDeepError(f"JSON nested too deeply; at most {max_depth} levels are accepted") from err


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` bounded in depth: request.get_json() answers 400 for a too-deep body."""

    sort_keys = False  # keep the documented field order

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return loads_bounded(s)


def is_api_request() -> bool:
    """True for /api/... paths, which always answer JSON."""
    return request.path.startswith(API_PREFIX)


def read_json() -> Any:
    """The request body parsed as JSON; 400 when it is missing or malformed."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "the request body must be JSON (it is empty)")
    try:
        return current_app.json.loads(raw)
    except JSONTooDeepError as err:
        raise ApiError(400, f"malformed JSON: {err}") from err
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


def _number_arg(name: str, convert: Callable[[str], _N], wrong_type: str) -> _N | None:
    """The query argument converted; None when absent or empty; 400 saying `wrong_type` when it does not convert."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except ValueError as err:
        raise ApiError(400, f"{wrong_type}, got {raw!r}") from err


def int_arg(name: str, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
    """An integer query argument within [low, high]; 400 otherwise."""
    value = _number_arg(name, int, f"query argument {name!r} must be an integer")
    if value is None:
        return default
    if not low <= value <= high:
        raise ApiError(400, f"query argument {name!r} must be between {low} and {high}, got {value}")
    return value


def fraction_arg(name: str, default: _Default) -> float | _Default:
    """A number query argument within [0, 1] (a score or threshold); `default` when absent, 400 otherwise."""
    value = _number_arg(name, float, f"{name} must be a number between 0 and 1")
    if value is None:
        return default
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"{name} must be between 0 and 1, got {value:g}")
    return value


def bool_arg(name: str) -> bool | None:
    """A yes/no query argument: None when absent or 'all'/'any' (no filter); 400 for anything else."""
    raw = (request.args.get(name) or "").strip().lower()
    if raw in ("", "all", "any"):
        return None
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ApiError(400, f"query argument {name!r} must be true or false, got {raw!r}")


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
        if status >= 500 and status != 507:
            log.error("%s %s -> %s: %s", request.method, request.path, status, err, exc_info=err)
        else:
            log.info("%s %s -> %s: %s", request.method, request.path, status, err)
        return _error_response(status, public_message(err))

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
        if is_disk_full(err):  # a write on a full disk: say so (507), no traceback per request
            log.warning("%s %s -> 507: %s", request.method, request.path, err)
            return _error_response(507, public_message(err))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500, public_message(err))

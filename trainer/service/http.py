"""Request and response plumbing of the trainer API: bearer-token authentication and the JSON error shape.

Every route but `GET /v1/health` needs `Authorization: Bearer <token>` with one of `server.tokens`; the comparison
is constant-time (hmac.compare_digest against every configured token). With no token configured every request is
refused with 401 and a message saying so. Errors are JSON `{"error": "..."}` with the status each error class
carries (`edge.errors.status_for`, shared with the device): 400 bad input (naming the file), 401 auth, 404 unknown
id, 409 wrong state (bundle of an unfinished job, dataset in use), 413 size limits, 507 a full disk, and 500 for
anything unexpected, with its traceback logged.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from edge.errors import ShelfwatchError, is_disk_full, public_message, validation_message
from edge.errors import status_for as status_for

log = logging.getLogger(__name__)

HEALTH_PATH = "/v1/health"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's error answer: JSON {"error": message} with `status`."""
    resp = jsonify({"error": message})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def token_matches(given: str, tokens: list[str]) -> bool:
    """Whether `given` equals one of `tokens`, compared in constant time against every one of them."""
    matched = False
    for token in tokens:
        # No short-circuit: every configured token is compared, so timing says nothing about which one is close.
        matched |= hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
    return matched


def install_auth(app: Flask, tokens: list[str]) -> None:
    """Refuse every request but the health check without a valid bearer token."""

    @app.before_request
    def _authenticate() -> Response | None:
        if request.path == HEALTH_PATH:
            return None
        challenge = {"WWW-Authenticate": 'Bearer realm="shelfwatch-trainer"'}
        if not tokens:
            return error_response(
                401,
                "this trainer has no API token configured (server.tokens in trainer.yaml): every request is refused",
                challenge,
            )
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return error_response(401, "send Authorization: Bearer <token>", challenge)
        if not token_matches(value.strip(), tokens):
            return error_response(401, "the bearer token is not valid", challenge)
        return None


def install_error_handlers(app: Flask, max_archive_mb: float) -> None:
    """Answer domain, validation and HTTP errors as JSON with the right status."""

    @app.errorhandler(ShelfwatchError)
    def _domain_error(err: ShelfwatchError) -> Response:
        status = status_for(err)
        if status >= 500 and status != 507:
            log.error("%s %s -> %s: %s", request.method, request.path, status, err, exc_info=err)
        return error_response(status, public_message(err))

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError) -> Response:
        return error_response(400, "invalid request: " + validation_message(err, limit=3))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        return error_response(413, f"the upload is over the limit of {max_archive_mb:g} MiB")

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return error_response(err.code or 500, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        if is_disk_full(err):
            log.warning("%s %s -> 507: %s", request.method, request.path, err)
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(status_for(err), public_message(err))

"""Request and response plumbing of the trainer API: bearer-token authentication and the JSON error shape.

Every route but `GET /v1/health` needs `Authorization: Bearer <token>` with one of `server.tokens`; the comparison
is constant-time (hmac.compare_digest against every configured token). With no token configured every request is
refused with 401 and a message saying so. Errors are JSON `{"error": "..."}`: 400 bad input (naming the file),
401 auth, 404 unknown id, 409 wrong state (bundle of an unfinished job, dataset in use), 413 size limits.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from edge.errors import ConflictError, ImageTooLargeError, NotFoundError, ShelfwatchError
from trainer.service.datasets import ArchiveTooLarge

HEALTH_PATH = "/v1/health"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's error answer: JSON {"error": message} with `status`."""
    resp = jsonify({"error": message})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def status_for(err: ShelfwatchError) -> int:
    """The HTTP status a domain error is answered with."""
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, ConflictError):
        return 409
    if isinstance(err, ArchiveTooLarge | ImageTooLargeError):
        return 413
    return 400


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
        return error_response(status_for(err), str(err))

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError) -> Response:
        parts = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()[:3]]
        return error_response(400, "invalid request: " + "; ".join(parts))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        return error_response(413, f"the upload is over the limit of {max_archive_mb:g} MiB")

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return error_response(err.code or 500, err.description or err.name)

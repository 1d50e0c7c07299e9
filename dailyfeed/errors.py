"""Errors with a meaning, and the one place that maps them to HTTP responses.

Error body (SPEC section 3): {"statusCode", "resultCode": "FAIL", "message", "path"}, with the real HTTP status.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DailyfeedError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(DailyfeedError):
    status = 400


class Unauthenticated(DailyfeedError):
    status = 401


class Forbidden(DailyfeedError):
    status = 403


class NotFound(DailyfeedError):
    status = 404


class Conflict(DailyfeedError):
    status = 409


class DuplicateLike(Conflict):
    pass


class AlreadyFollowing(Conflict):
    pass


class ActivityNotRecorded(DailyfeedError):
    """The event could neither be delivered nor kept as a dead letter; the content change was undone."""

    status = 503


class StoreUnavailable(DailyfeedError):
    status = 503


def error_response(status: int, message: str):
    body = {"statusCode": status, "resultCode": "FAIL", "message": message, "path": request.path}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DailyfeedError)
    def _domain(error: DailyfeedError):
        return error_response(error.status, error.message)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        if error.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            return error_response(413, f"request body is too large (at most {limit} bytes)")
        return error_response(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        from pymongo.errors import PyMongoError

        if isinstance(error, PyMongoError):
            log.exception("store failure on %s %s", request.method, request.path)
            return error_response(503, "the document store is unavailable; nothing was changed, try again")
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error")

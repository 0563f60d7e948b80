"""The two kinds of failure the server knows: it cannot start, or a request is wrong."""

from __future__ import annotations


class StartupError(Exception):
    """The server cannot start: the message is printed as one line and the process exits non-zero."""


class RequestError(Exception):
    """A request the server answers with a JSON error body and this HTTP status; the server keeps serving."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    status = 400


class NotFound(RequestError):
    status = 404


class MethodNotAllowed(RequestError):
    status = 405


class PayloadTooLarge(RequestError):
    status = 413


class Unavailable(RequestError):
    status = 503

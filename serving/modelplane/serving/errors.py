"""Errors a request can meet, each carrying its HTTP status; mapped to a response once, in app.py."""

from __future__ import annotations


class ServingError(Exception):
    status_code = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    status_code = 400


class ModelNotFound(ServingError):
    status_code = 404


class PayloadTooLarge(ServingError):
    status_code = 413


class UnsupportedMediaType(ServingError):
    status_code = 415


class ModelNotReady(ServingError):
    status_code = 503


class ModelFailed(ServingError):
    """The model raised while predicting: its message, never a traceback."""

    status_code = 500


class ModelLoadError(Exception):
    """The model cannot be served; start-up stops with this one-line message."""


class UnsafeModel(Exception):
    """The model is not one Modelplane reads without --allow-pickle; the message says why."""


class BatchError(Exception):
    """A batch run cannot go on; it stops with this one-line message and no partial output."""

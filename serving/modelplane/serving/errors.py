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


class ClientGone(ServingError):
    """The client closed the connection, or was too slow, before the whole body arrived."""

    status_code = 408


class ModelNotReady(ServingError):
    status_code = 503


class ModelFailed(ServingError):
    """The model raised while predicting: its message, never a traceback."""

    status_code = 500


class ModelUnusable(ServingError):
    """MLflow could not build its model for input the server does not score itself, from a
    model file the server read without it: the server's fault, never the request's."""

    status_code = 500


class InputRejected(ModelFailed):
    """Well-formed input the model refused (NaN where it takes none, say): the model's
    message, answered as the client's to fix."""

    status_code = 422


def model_failure(error: Exception) -> ServingError:
    """What a predict call's exception means for the request scored alone. A value, type
    or param the model or MLflow's checks refuse is the input's fault, a 422 (MLflow's own
    server answers 400 to any failure of predict); anything else is the model's, a 500."""
    if isinstance(error, ModelUnusable):
        return error
    if getattr(error, "error_code", None) in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):  # an MlflowException
        return InputRejected(getattr(error, "message", str(error)))
    if isinstance(error, (ValueError, TypeError)):
        return InputRejected(f"the model cannot score this input: {error}")
    return ModelFailed(f"the model failed to predict: {error}")


class ModelLoadError(Exception):
    """The model cannot be served; start-up stops with this one-line message."""


class UnsafeModel(Exception):
    """The model is not one Modelplane reads without --allow-pickle; the message says why."""


class BatchError(Exception):
    """A batch run cannot go on; it stops with this one-line message and no partial output."""

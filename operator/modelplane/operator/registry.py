"""Asking the MLflow model registry which version a ModelDeployment means.

The operator speaks the registry's REST API directly rather than through the MLflow
client: importing MLflow alone would more than double the operator's memory. The
credentials are MLflow's own variables (MLFLOW_TRACKING_TOKEN, or _USERNAME and
_PASSWORD), read from the operator's environment.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import cache

import requests

from modelplane.operator.render.common import ResolvedModel
from modelplane.operator.spec import ModelReference

TIMEOUT_SECONDS = 10


class RegistryError(Exception):
    """The registry could not say; `reason` is the CamelCase word status reports."""

    reason = "RegistryError"


class RegistryUnreachable(RegistryError):
    reason = "RegistryUnreachable"


class ModelNotFound(RegistryError):
    reason = "ModelNotFound"


@cache
def _session() -> requests.Session:
    session = requests.Session()
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        session.headers["Authorization"] = f"Bearer {token}"
    elif username := os.environ.get("MLFLOW_TRACKING_USERNAME"):
        session.auth = (username, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    return session


class _Answers:
    """Recent answers of the registry, one lookup at a time per question, and at most one
    every `spacing` seconds: a thousand ModelDeployments of one model created together
    cost some dozens of registry calls, not a thousand (a lookup takes about 20 ms of a
    registry that answers one at a time)."""

    def __init__(self, spacing: float):
        self._spacing = spacing
        self._guard = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}
        self._answers: dict[tuple, tuple[float, ResolvedModel]] = {}

    def get(self, question: tuple, ask: Callable[[], ResolvedModel], asked_after: float) -> ResolvedModel:
        """An answer asked after the instant `asked_after` (of `time.monotonic`), which
        callers queued behind one lookup share."""
        with self._guard:
            lock = self._locks.setdefault(question, threading.Lock())
        with lock:
            asked, answer = self._answers.get(question, (float("-inf"), None))
            if asked >= asked_after:
                return answer
            # Callers that come meanwhile wait for this lookup, and share it.
            time.sleep(max(0.0, asked + self._spacing - time.monotonic()))
            asked = time.monotonic()
            answer = ask()  # failures are not remembered: the next pass asks again
            self._answers[question] = (asked, answer)
            return answer

    def forget(self, matches: Callable[[tuple], bool]) -> None:
        with self._guard:
            for question in [question for question in self._answers if matches(question)]:
                del self._answers[question]


# Under a burst of creations, each waits up to this long for a lookup it shares with
# those that came meanwhile. The passes held back by one lookup then go on to the API
# server together: at 0.2 s, in batches of about 40 at a burst's pace, which made each
# wait longer for its workload than the lookups saved (measured on the test bed).
LOOKUP_SPACING_SECONDS = 0.05
_answers = _Answers(LOOKUP_SPACING_SECONDS)


def resolve(reference: ModelReference, default_uri: str | None, asked_after: float | None = None) -> ResolvedModel:
    """The version `reference` names (its alias resolved), with its run and source: an
    answer asked after the instant `asked_after` (of `time.monotonic`; by default, now).

    A new or edited ModelDeployment takes an answer asked after its change was seen: an
    older one, even a second old, could deploy the version the alias just left. Resources
    polling one model on the same interval share one registry call per interval."""
    uri = (reference.registry.uri or default_uri or "").rstrip("/")
    question = (uri, reference.name, reference.alias, reference.version)
    return _answers.get(question, lambda: _ask(reference, uri),
                        time.monotonic() if asked_after is None else asked_after)


def forget_alias(name: str, alias: str) -> None:
    """Drops what is known of where an alias points (in any registry): it just moved."""
    _answers.forget(lambda question: question[1:3] == (name, alias))


def _ask(reference: ModelReference, uri: str) -> ResolvedModel:
    if not uri.startswith(("http://", "https://")):
        raise RegistryUnreachable(
            f"no MLflow tracking server to ask ({uri or 'none set'}): set spec.model.registry.uri, "
            "or the operator's default registry, to its http(s):// address"
        )
    if reference.alias:
        wanted = f"models:/{reference.name}@{reference.alias}"
        path, query = "registered-models/alias", {"name": reference.name, "alias": reference.alias}
    else:
        wanted = f"models:/{reference.name}/{reference.version}"
        path, query = "model-versions/get", {"name": reference.name, "version": reference.version}
    try:
        response = _session().get(f"{uri}/api/2.0/mlflow/{path}", params=query, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise RegistryUnreachable(f"cannot reach the registry at {uri} to resolve {wanted}: {error}") from None
    if response.status_code == 404 or (response.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in response.text):
        raise ModelNotFound(f"{wanted} is not in the registry at {uri}: {_message(response)}")
    if response.status_code != 200:
        raise RegistryUnreachable(f"the registry at {uri} failed to resolve {wanted}: "
                                  f"HTTP {response.status_code} {_message(response)}")
    found = response.json()["model_version"]
    return ResolvedModel(name=found["name"], version=str(found["version"]),
                         run_id=found.get("run_id") or None, source=found.get("source"))


def _message(response: requests.Response) -> str:
    try:
        return response.json().get("message", response.text)
    except ValueError:
        return response.text[:200]

"""Asking the MLflow model registry which version a ModelDeployment means.

The operator speaks the registry's REST API directly rather than through the MLflow
client: importing MLflow alone would more than double the operator's memory.

Credentials stay with their registry. The operator's own (MLflow's variables
MLFLOW_TRACKING_TOKEN, or _USERNAME and _PASSWORD, in its environment) go only to its
default registry; a ModelDeployment's `secretRef`, read from its own namespace, goes
only to the registry that ModelDeployment names; any other registry is asked
anonymously. The registry's answer is read for the version and nothing of its body is
repeated in status or Events, so a URI pointed at another server reads nothing back.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from modelplane.operator.kube import ForbiddenError, Kube, NotFoundError
from modelplane.operator.spec import ModelReference, ResolvedModel

TIMEOUT_SECONDS = 10
# More than any model version's description; a longer answer is not a registry's.
LONGEST_ANSWER_BYTES = 1024 * 1024


class RegistryError(Exception):
    """The registry could not say; `reason` is the CamelCase word status reports."""

    reason = "RegistryError"


class RegistryUnreachable(RegistryError):
    reason = "RegistryUnreachable"


class ModelNotFound(RegistryError):
    reason = "ModelNotFound"


class RegistryNotAllowed(RegistryError):
    reason = "RegistryNotAllowed"


class RegistryAccessDenied(RegistryError):
    reason = "RegistryAccessDenied"


class CredentialsUnavailable(RegistryError):
    reason = "CredentialsUnavailable"


@dataclass(frozen=True)
class Registries:
    """Which registry a ModelDeployment without one uses, and which it may name."""

    default_uri: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    """`host` or `host:port` entries (MODELPLANE_ALLOWED_REGISTRIES, comma-separated);
    empty: any. The default registry is always allowed."""

    def uri_of(self, reference: ModelReference) -> str:
        """The registry `reference` names, or the default one, once checked (see `check`)."""
        uri = (reference.registry.uri or self.default_uri or "").rstrip("/")
        if not uri:
            raise RegistryUnreachable(
                "no MLflow tracking server to ask (none set): set spec.model.registry.uri, "
                "or the operator's default registry, to its http(s):// address"
            )
        self.check(uri)
        return uri

    def check(self, uri: str) -> None:
        """Raises RegistryNotAllowed for a URI a ModelDeployment may not name."""
        if not _WELL_FORMED.fullmatch(uri):
            raise RegistryNotAllowed(
                f"the registry URI {uri!r} is not an http:// or https:// address without user name, password, "
                "query or fragment"
            )
        if not self.allowed_hosts or _same_registry(uri, self.default_uri):
            return
        host, port = _host_and_port(uri)
        for entry in self.allowed_hosts:
            allowed_host, allowed_port = _host_and_port("//" + entry.strip())
            if allowed_host == host and (allowed_port is None or allowed_port == port):
                return
        raise RegistryNotAllowed(
            f"the registry {host}:{port} is not one this operator may use; allowed are "
            f"{', '.join(self.allowed_hosts)} (the operator's registries.allowed)"
        )


_WELL_FORMED = re.compile(r"(?i:https?)://[^/?#@\s]+(/[^?#@\s]*)?")


def _host_and_port(uri: str) -> tuple[str, int | None]:
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        raise RegistryNotAllowed(f"the registry address {uri!r} has an invalid port") from None
    if port is None and parts.scheme:
        port = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "").rstrip("."), port


def _same_registry(uri: str, other: str | None) -> bool:
    return other is not None and uri.rstrip("/") == other.rstrip("/")


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def fingerprint(self) -> str:
        """Tells credentials apart in the answers' cache without holding them as a key."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username:
            basic = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}


ANONYMOUS = Credentials()


def own_credentials() -> Credentials:
    """The operator's own, from MLflow's variables in its environment."""
    return Credentials(
        os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
        os.environ.get("MLFLOW_TRACKING_USERNAME") or None,
        os.environ.get("MLFLOW_TRACKING_PASSWORD") or None,
    )


# What a lookup asks: (registry URI, model, alias, version, credentials' fingerprint).
_Question = tuple[str, str, str | None, str | None, str]


class _Answers:
    """Recent answers of the registry, one lookup at a time per question, and at most one
    every `spacing` seconds: a thousand ModelDeployments of one model created together
    cost some dozens of registry calls, not a thousand (a lookup takes about 20 ms of a
    registry that answers one at a time)."""

    def __init__(self, spacing: float):
        self._spacing = spacing
        self._guard = threading.Lock()
        self._locks: dict[_Question, threading.Lock] = {}
        self._answers: dict[_Question, tuple[float, ResolvedModel]] = {}

    def get(self, question: _Question, ask: Callable[[], ResolvedModel], asked_after: float) -> ResolvedModel:
        """An answer asked after the instant `asked_after` (of `time.monotonic`), which
        callers queued behind one lookup share."""
        with self._guard:
            lock = self._locks.setdefault(question, threading.Lock())
        with lock:
            asked, answer = self._answers.get(question, (float("-inf"), None))
            if answer is not None and asked >= asked_after:
                return answer
            # Callers that come meanwhile wait for this lookup, and share it.
            time.sleep(max(0.0, asked + self._spacing - time.monotonic()))
            asked = time.monotonic()
            answer = ask()  # failures are not remembered: the next pass asks again
            self._answers[question] = (asked, answer)
            return answer

    def forget(self, matches: Callable[[_Question], bool]) -> None:
        with self._guard:
            for question in [question for question in self._answers if matches(question)]:
                del self._answers[question]


# Under a burst of creations, each waits up to this long for a lookup it shares with
# those that came meanwhile. The passes held back by one lookup then go on to the API
# server together: at 0.2 s, in batches of about 40 at a burst's pace, which made each
# wait longer for its workload than the lookups saved (measured on the test bed).
LOOKUP_SPACING_SECONDS = 0.05


class RegistryClient:
    """Asks the registries a ModelDeployment may name, with the credentials that belong to
    each, and keeps their recent answers. Safe to share between threads."""

    def __init__(
        self,
        registries: Registries,
        kube: Kube | None = None,
        credentials: Credentials = ANONYMOUS,
        spacing: float = LOOKUP_SPACING_SECONDS,
    ) -> None:
        """`kube` reads the Secrets of `secretRef`s (None: there is no cluster to read them
        from, and such a reference is asked anonymously); `credentials` are the operator's
        own, for its default registry only."""
        self.registries = registries
        self._kube, self._own_credentials = kube, credentials
        self._answers = _Answers(spacing)
        # Connections are pooled; credentials travel per request, never on the session.
        self._session = requests.Session()

    def resolve(
        self, reference: ModelReference, namespace: str | None = None, asked_after: float | None = None
    ) -> ResolvedModel:
        """The version `reference` names (its alias resolved), with its run and source: an
        answer asked after the instant `asked_after` (of `time.monotonic`; by default, now).
        `namespace` is the ModelDeployment's, where its secretRef is read.

        A new or edited ModelDeployment takes an answer asked after its change was seen: an
        older one, even a second old, could deploy the version the alias just left. Resources
        polling one model on the same interval, with the same credentials, share one registry
        call per interval."""
        uri = self.registries.uri_of(reference)
        credentials = self._credentials(reference, uri, namespace)
        question = (uri, reference.name, reference.alias, reference.version, credentials.fingerprint)
        return self._answers.get(
            question,
            lambda: _ask(self._session, reference, uri, credentials),
            time.monotonic() if asked_after is None else asked_after,
        )

    def forget_alias(self, name: str, alias: str) -> None:
        """Drops what is known of where an alias points (in any registry): it just moved."""
        self._answers.forget(lambda question: question[1:3] == (name, alias))

    def _credentials(self, reference: ModelReference, uri: str, namespace: str | None) -> Credentials:
        secret = reference.registry.secret_ref
        if secret is not None:
            # Without a cluster to read it from (`modelplane render`), anonymously.
            return _read_secret(self._kube, secret.name, namespace) if namespace and self._kube else ANONYMOUS
        return self._own_credentials if _same_registry(uri, self.registries.default_uri) else ANONYMOUS


def _read_secret(kube: Kube, name: str, namespace: str) -> Credentials:
    try:
        data = kube.resource("v1", "Secret").get(name=name, namespace=namespace).to_dict().get("data") or {}
    except NotFoundError:
        raise CredentialsUnavailable(
            f"spec.model.registry.secretRef names the Secret {name}, which does not exist in the namespace {namespace}"
        ) from None
    except ForbiddenError:
        raise CredentialsUnavailable(
            f"the operator may not read the Secret {name} of spec.model.registry.secretRef in the namespace {namespace}"
        ) from None

    def value(key: str) -> str | None:
        try:
            return base64.b64decode(data[key]).decode() if data.get(key) else None
        except ValueError:
            raise CredentialsUnavailable(f"the key {key} of the Secret {name} is not text") from None

    return Credentials(
        value("MLFLOW_TRACKING_TOKEN"), value("MLFLOW_TRACKING_USERNAME"), value("MLFLOW_TRACKING_PASSWORD")
    )


def _ask(session: requests.Session, reference: ModelReference, uri: str, credentials: Credentials) -> ResolvedModel:
    query: dict[str, str | None]
    if reference.alias:
        wanted = f"models:/{reference.name}@{reference.alias}"
        path, query = "registered-models/alias", {"name": reference.name, "alias": reference.alias}
    else:
        wanted = f"models:/{reference.name}/{reference.version}"
        path, query = "model-versions/get", {"name": reference.name, "version": reference.version}
    try:
        # Not redirected: the address asked is the one that was allowed.
        with session.get(
            f"{uri}/api/2.0/mlflow/{path}",
            params=query,
            headers=credentials.headers(),
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        ) as response:
            body = response.raw.read(LONGEST_ANSWER_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise RegistryUnreachable(
            f"cannot reach the registry at {uri} to resolve {wanted}: {type(error).__name__}"
        ) from None
    status = response.status_code
    if status == 404 or (status == 400 and b"RESOURCE_DOES_NOT_EXIST" in body):
        raise ModelNotFound(f"{wanted} is not in the registry at {uri} (HTTP {status})")
    if status in (401, 403):
        raise RegistryAccessDenied(
            f"the registry at {uri} refused to resolve {wanted} (HTTP {status}): give it "
            "credentials in spec.model.registry.secretRef"
        )
    if status != 200:
        raise RegistryUnreachable(f"the registry at {uri} failed to resolve {wanted} (HTTP {status})")
    return _model_version(body, reference, uri, wanted)


_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,19}$")


def _model_version(body: bytes, reference: ModelReference, uri: str, wanted: str) -> ResolvedModel:
    """The version in a registry's answer, checked: it is written into status, labels and
    the pods' environment, so an answer that does not look like one is refused."""
    import json

    try:
        # Any: the registry's answer, checked field by field below.
        found: Any = json.loads(body)["model_version"] if len(body) <= LONGEST_ANSWER_BYTES else None
        name, version = found["name"], str(found["version"])
        run_id, source = found.get("run_id") or None, found.get("source")
    except (ValueError, TypeError, KeyError):
        found = None
    if (
        found is None
        or name != reference.name
        or not _VERSION.match(version)
        or not (run_id is None or (isinstance(run_id, str) and _RUN_ID.match(run_id)))
        or not (source is None or (isinstance(source, str) and len(source) <= 2048))
    ):
        raise RegistryUnreachable(
            f"the registry at {uri} answered the lookup of {wanted} with something that "
            "is not an MLflow model version of it"
        )
    return ResolvedModel(name=name, version=version, run_id=run_id, source=source)

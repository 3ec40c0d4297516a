"""What the operator makes of a registry: which URIs a ModelDeployment may name, how each
answer of a registry on loopback is read (a version, a missing model, a refusal, a
redirect not followed, an answer that is not a model version), which credentials go
where, and when an answer is shared rather than asked again. No test bed
(tests/operator/test_registry.py runs the operator against registries)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from modelplane.operator import registry
from modelplane.operator.registry import (
    ModelNotFound,
    Registries,
    RegistryAccessDenied,
    RegistryClient,
    RegistryNotAllowed,
    RegistryUnreachable,
    own_credentials,
)
from modelplane.operator.spec import ModelReference, ResolvedModel
from tests.testbed.process import free_port

RUN_ID = "0123456789abcdef0123456789abcdef"
UNREPEATABLE = "internal-only: db password is hunter2"


def _version(
    name: str = "iris", version: object = "3", run_id: object = RUN_ID, source: object = "models:/m-1"
) -> bytes:
    return json.dumps(
        {"model_version": {"name": name, "version": version, "run_id": run_id, "source": source}}
    ).encode()


class ScriptedRegistry:
    """An HTTP server on loopback that answers every request with `answer` (status, body,
    headers) and records each request's path, query and Authorization header."""

    def __init__(self):
        self.answer: tuple[int, bytes, dict[str, str]] = (200, _version(), {})
        self.asked: list[tuple[str, dict[str, list[str]], str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                server.asked.append((parts.path, parse_qs(parts.query), self.headers.get("Authorization")))
                status, body, headers = server.answer
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server():
    running = ScriptedRegistry()
    yield running
    running.stop()


@pytest.fixture
def elsewhere():
    running = ScriptedRegistry()
    yield running
    running.stop()


def _reference(uri: str | None = None, **model) -> ModelReference:
    model = model or {"name": "iris", "alias": "champion"}
    return ModelReference.model_validate({**model, "registry": {"uri": uri} if uri else {}})


# Which registries a ModelDeployment may name


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://mlflow.example",
        "http://user:secret@mlflow.example",
        "http://mlflow.example/?next=/admin",
        "http://mlflow.example/#fragment",
        "http://mlflow.example/a path",
        "mlflow.example:5000",
        "http://",
    ],
)
def test_a_uri_that_is_not_a_plain_http_address_is_refused(uri: str):
    with pytest.raises(RegistryNotAllowed, match="is not an http:// or https:// address"):
        Registries().check(uri)


@pytest.mark.parametrize(
    "uri", ["http://mlflow.example", "HTTPS://mlflow.example:8443/prefix", "http://10.0.0.7:5000/"]
)
def test_any_plain_address_is_allowed_when_no_hosts_are_listed(uri: str):
    Registries().check(uri)


ALLOWED = Registries(
    default_uri="http://mlflow.platform:5000",
    allowed_hosts=("tenant.example:8080", "open.example", "secure.example:443"),
)


@pytest.mark.parametrize(
    "uri",
    [
        "http://tenant.example:8080",
        "https://tenant.example:8080/mlflow",
        "http://TENANT.example.:8080",
        "http://open.example",
        "https://open.example:9999",
        "http://mlflow.platform:5000/",
        "https://secure.example",
    ],
    ids=[
        "host-and-port",
        "path",
        "case-and-trailing-dot",
        "any-port-default",
        "any-port-other",
        "the-default",
        "https-default-port",
    ],
)
def test_listed_hosts_and_the_default_registry_are_allowed(uri: str):
    ALLOWED.check(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "http://tenant.example:8081",
        "http://tenant.example",
        "https://tenant.example",
        "http://tenant.example.evil.example:8080",
        "http://mlflow.platform:5001",
        "http://127.0.0.1:8080",
        "http://secure.example",
    ],
    ids=[
        "other-port",
        "port-80",
        "port-443",
        "longer-host",
        "default-host-other-port",
        "loopback",
        "http-default-port",
    ],
)
def test_hosts_not_listed_are_refused_naming_the_allowed_ones(uri: str):
    with pytest.raises(RegistryNotAllowed, match=re.escape("tenant.example:8080, open.example")):
        ALLOWED.check(uri)


def test_an_invalid_port_is_refused():
    with pytest.raises(RegistryNotAllowed, match="has an invalid port"):
        ALLOWED.check("http://tenant.example:99999")


def test_the_registry_is_the_references_else_the_default_and_none_is_an_error():
    registries = Registries(default_uri="http://mlflow.platform:5000/")

    assert registries.uri_of(_reference()) == "http://mlflow.platform:5000"
    assert registries.uri_of(_reference("http://other.example/mlflow/")) == "http://other.example/mlflow"
    with pytest.raises(RegistryUnreachable, match=r"no MLflow tracking server to ask \(none set\)"):
        Registries().uri_of(_reference())


def test_a_registry_not_allowed_is_never_asked(server: ScriptedRegistry):
    with pytest.raises(RegistryNotAllowed):
        RegistryClient(Registries(allowed_hosts=("tenant.example",))).resolve(_reference(server.uri))

    assert server.asked == []


# Reading the registry's answers


def test_an_alias_is_resolved_to_the_version_the_registry_names(server: ScriptedRegistry):
    found = RegistryClient(Registries()).resolve(_reference(server.uri))

    assert found == ResolvedModel("iris", "3", RUN_ID, "models:/m-1")
    assert [(path, query) for path, query, _ in server.asked] == [
        ("/api/2.0/mlflow/registered-models/alias", {"name": ["iris"], "alias": ["champion"]})
    ]


def test_a_fixed_version_is_looked_up_by_its_number(server: ScriptedRegistry):
    server.answer = (200, _version(version=7, run_id=None, source=None), {})

    found = RegistryClient(Registries()).resolve(_reference(server.uri, name="iris", version="7"))

    assert found == ResolvedModel("iris", "7", None, None)
    assert [(path, query) for path, query, _ in server.asked] == [
        ("/api/2.0/mlflow/model-versions/get", {"name": ["iris"], "version": ["7"]})
    ]


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (404, b"", ModelNotFound, "models:/iris@champion is not in the registry at {uri} (HTTP 404)"),
        (400, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}', ModelNotFound, "(HTTP 400)"),
        (400, b'{"error_code": "INVALID_PARAMETER_VALUE"}', RegistryUnreachable, "failed to resolve"),
        (401, b"", RegistryAccessDenied, "refused to resolve models:/iris@champion (HTTP 401)"),
        (403, b"", RegistryAccessDenied, "spec.model.registry.secretRef"),
        (500, UNREPEATABLE.encode(), RegistryUnreachable, "failed to resolve models:/iris@champion (HTTP 500)"),
        (503, b"", RegistryUnreachable, "(HTTP 503)"),
    ],
)
def test_each_refusal_of_the_registry_has_its_reason_and_never_its_body(
    server: ScriptedRegistry, status: int, body: bytes, error: type, says: str
):
    server.answer = (status, body, {})

    with pytest.raises(error) as raised:
        RegistryClient(Registries()).resolve(_reference(server.uri))

    assert says.format(uri=server.uri) in str(raised.value)
    assert UNREPEATABLE not in str(raised.value) and "error_code" not in str(raised.value)


def test_a_redirect_is_not_followed(server: ScriptedRegistry, elsewhere: ScriptedRegistry):
    server.answer = (302, b"", {"Location": f"{elsewhere.uri}/api/2.0/mlflow/registered-models/alias"})

    with pytest.raises(RegistryUnreachable, match=r"\(HTTP 302\)"):
        RegistryClient(Registries()).resolve(_reference(server.uri))

    assert len(server.asked) == 1 and elsewhere.asked == []


@pytest.mark.parametrize(
    "body",
    [
        UNREPEATABLE.encode(),
        b'{"registered_model": {"name": "iris"}}',
        b'{"model_version": "3"}',
        _version(name="other-model"),
        _version(version="0"),
        _version(version="3; rm -rf /"),
        _version(version=None),
        _version(run_id="not-a-run-id"),
        _version(run_id=12),
        _version(source=["models:/m-1"]),
        _version(source="s3://bucket/" + "a" * 2048),
    ],
    ids=[
        "not-json",
        "no-version",
        "version-not-an-object",
        "another-model",
        "version-zero",
        "version-not-a-number",
        "version-null",
        "run-id-not-hex",
        "run-id-not-text",
        "source-not-text",
        "source-too-long",
    ],
)
def test_an_answer_that_is_not_a_model_version_of_it_is_refused_unrepeated(server: ScriptedRegistry, body: bytes):
    server.answer = (200, body, {})

    with pytest.raises(RegistryUnreachable, match="with something that is not an MLflow model version of it") as raised:
        RegistryClient(Registries()).resolve(_reference(server.uri))

    assert UNREPEATABLE not in str(raised.value) and "rm -rf" not in str(raised.value)


def test_an_answer_longer_than_any_model_version_is_refused(server: ScriptedRegistry):
    """Even one whose first megabyte reads as a model version (padded with blanks)."""
    server.answer = (200, _version() + b" " * registry.LONGEST_ANSWER_BYTES, {})

    with pytest.raises(RegistryUnreachable, match="not an MLflow model version"):
        RegistryClient(Registries()).resolve(_reference(server.uri))


def test_an_answer_just_under_the_limit_is_read(server: ScriptedRegistry):
    padded = json.loads(_version())
    padded["model_version"]["description"] = ""
    room = registry.LONGEST_ANSWER_BYTES - len(json.dumps(padded))
    padded["model_version"]["description"] = "x" * room
    server.answer = (200, json.dumps(padded).encode(), {})

    assert RegistryClient(Registries()).resolve(_reference(server.uri)).version == "3"


def test_a_registry_that_does_not_listen_is_unreachable():
    closed = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(RegistryUnreachable, match=f"cannot reach the registry at {closed} .*: ConnectionError"):
        RegistryClient(Registries()).resolve(_reference(closed))


# Credentials


@pytest.fixture
def operator_token(monkeypatch: pytest.MonkeyPatch):
    """The operator's own registry token, as its environment gives it."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "operator-own-token")
    return "operator-own-token"


def test_the_operators_token_goes_to_its_default_registry_alone(
    server: ScriptedRegistry, elsewhere: ScriptedRegistry, operator_token: str
):
    client = RegistryClient(Registries(default_uri=server.uri), None, own_credentials())

    client.resolve(_reference())
    client.resolve(_reference(elsewhere.uri))

    assert [authorization for _, _, authorization in server.asked] == [f"Bearer {operator_token}"]
    assert [authorization for _, _, authorization in elsewhere.asked] == [None]


def test_a_secret_ref_without_a_namespace_to_read_it_from_sends_nothing(server: ScriptedRegistry, operator_token: str):
    reference = ModelReference.model_validate(
        {"name": "iris", "alias": "champion", "registry": {"uri": server.uri, "secretRef": {"name": "creds"}}}
    )

    RegistryClient(Registries(default_uri=server.uri), None, own_credentials()).resolve(reference, namespace=None)

    assert [authorization for _, _, authorization in server.asked] == [None]


# Sharing answers


def test_an_answer_asked_after_the_instant_wanted_is_shared(server: ScriptedRegistry):
    client = RegistryClient(Registries())
    reference = _reference(server.uri)
    since = time.monotonic()

    first = client.resolve(reference, asked_after=since)
    server.answer = (200, _version(version="4"), {})
    shared = client.resolve(reference, asked_after=since)

    assert first == shared and shared.version == "3"
    assert len(server.asked) == 1


def test_an_answer_from_before_the_instant_wanted_is_asked_again(server: ScriptedRegistry):
    client = RegistryClient(Registries())
    reference = _reference(server.uri)

    client.resolve(reference)
    server.answer = (200, _version(version="4"), {})

    assert client.resolve(reference).version == "4"
    assert len(server.asked) == 2


def test_a_moved_alias_is_asked_again_whatever_the_instant(server: ScriptedRegistry):
    client = RegistryClient(Registries())
    reference = _reference(server.uri)
    since = time.monotonic()
    client.resolve(reference, asked_after=since)
    server.answer = (200, _version(version="4"), {})

    client.forget_alias("iris", "champion")

    assert client.resolve(reference, asked_after=since).version == "4"
    assert len(server.asked) == 2


def test_a_failed_lookup_is_not_remembered(server: ScriptedRegistry):
    client = RegistryClient(Registries())
    reference = _reference(server.uri)
    since = time.monotonic()
    server.answer = (503, b"", {})
    with pytest.raises(RegistryUnreachable):
        client.resolve(reference, asked_after=since)
    server.answer = (200, _version(), {})

    assert client.resolve(reference, asked_after=since).version == "3"
    assert len(server.asked) == 2


def test_callers_queued_behind_one_lookup_share_it(server: ScriptedRegistry):
    client = RegistryClient(Registries())
    reference = _reference(server.uri)
    since = time.monotonic()
    found: list[ResolvedModel] = []
    callers = [
        threading.Thread(target=lambda: found.append(client.resolve(reference, asked_after=since))) for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)

    assert len(found) == 8 and set(found) == {ResolvedModel("iris", "3", RUN_ID, "models:/m-1")}
    assert len(server.asked) == 1

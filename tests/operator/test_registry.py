"""Registry credentials stay with their registry: the operator, holding a token for its
default registry, resolves ModelDeployments that name other servers, and those servers
see only what each ModelDeployment brought, and the operator repeats nothing they say."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Registry, show_logs_on_failure
from tests.operator.process import Operator
from tests.operator.resources import apply, children, condition, manifest, status_of
from tests.testbed.cluster import ControlPlane
from tests.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.registry]

OPERATOR_TOKEN = "operator-own-token"
SECRET_REPLY = "internal-only: db password is hunter2"


class CapturingServer:
    """An HTTP server on loopback that records each request's path and Authorization
    header and answers 500 with a body nobody outside should read."""

    def __init__(self):
        self.requests: list[tuple[str, str | None]] = []
        captured = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                captured.append((self.path, self.headers.get("Authorization")))
                body = SECRET_REPLY.encode()
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def allowed_server() -> CapturingServer:
    server = CapturingServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def other_server() -> CapturingServer:
    server = CapturingServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def operator(
    request: pytest.FixtureRequest,
    crd: ControlPlane,
    registry: Registry,
    testbed_dir: Path,
    allowed_server: CapturingServer,
) -> Operator:
    """The operator with a token for its default registry, allowed to use that registry
    and `allowed_server` alone."""
    running = Operator(
        crd.kubeconfig, registry.tracking_uri, testbed_dir / "logs", name="modelplane-operator-registries"
    )
    running.env["MLFLOW_TRACKING_TOKEN"] = OPERATOR_TOKEN
    running.env["MODELPLANE_ALLOWED_REGISTRIES"] = allowed_server.uri.removeprefix("http://")
    running.start()
    show_logs_on_failure(request.config, [running.component])
    yield running
    running.stop()


def _unresolved(cluster: ControlPlane, namespace: str, name: str) -> dict:
    return eventually(
        lambda: (
            (found := condition(status_of(cluster, namespace, name), "ModelResolved")).get("status") == "False"
            and found
        ),
        what="ModelResolved=False",
    )


def test_another_registry_is_asked_without_the_operators_credentials(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    allowed_server: CapturingServer,
):
    apply(
        cluster,
        namespace,
        manifest("elsewhere", model={"name": "iris", "alias": "champion", "registry": {"uri": allowed_server.uri}}),
    )

    resolved = _unresolved(cluster, namespace, "elsewhere")

    asked = [authorization for path, authorization in allowed_server.requests if "name=iris" in path]
    assert asked, "the server was never asked"
    assert asked == [None] * len(asked)
    assert resolved["reason"] == "RegistryUnreachable" and "HTTP 500" in resolved["message"]
    assert "hunter2" not in str(status_of(cluster, namespace, "elsewhere"))
    assert children(cluster, namespace) == []


def test_a_secret_ref_is_sent_to_the_registry_it_names(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    allowed_server: CapturingServer,
):
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "tenant-registry",
        "-n",
        namespace,
        "--from-literal=MLFLOW_TRACKING_USERNAME=tenant",
        "--from-literal=MLFLOW_TRACKING_PASSWORD=s3cret",
    )
    model = {
        "name": "iris-of-the-tenant",
        "alias": "champion",
        "registry": {"uri": allowed_server.uri, "secretRef": {"name": "tenant-registry"}},
    }

    apply(cluster, namespace, manifest("tenant", model=model))

    _unresolved(cluster, namespace, "tenant")
    asked = [authorization for path, authorization in allowed_server.requests if "iris-of-the-tenant" in path]
    assert asked and set(asked) == {"Basic " + base64.b64encode(b"tenant:s3cret").decode()}


def test_a_registry_outside_the_allowed_ones_is_never_asked(
    operator: Operator,
    cluster: ControlPlane,
    namespace: str,
    other_server: CapturingServer,
):
    apply(
        cluster,
        namespace,
        manifest("outside", model={"name": "iris", "alias": "champion", "registry": {"uri": other_server.uri}}),
    )

    resolved = _unresolved(cluster, namespace, "outside")

    assert (
        resolved["reason"] == "RegistryNotAllowed" and other_server.uri.removeprefix("http://") in resolved["message"]
    )
    assert other_server.requests == []
    assert children(cluster, namespace) == []

"""A registry model is resolved and downloaded over MLflow's REST API, without MLflow's
client: the same version and the same files, MLflow's variables for credentials and
retries, and a registry's answers treated as untrusted. Requests go to the real MLflow
server, through a proxy on loopback that records them and, where a test says so,
answers as a broken or hostile registry would."""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from modelplane.serving.errors import ModelLoadError
from modelplane.serving.model import load
from modelplane.serving.registry import Registry as RegistryApi
from modelplane.serving.registry import RegistryError
from tests.conftest import Registry

pytestmark = pytest.mark.registry

LOAD = """
import json, sys
from pathlib import Path
from modelplane.serving.model import load
from modelplane.serving.registry import Registry as RegistryApi
from modelplane.serving.registry import RegistryError

model = load(sys.argv[1], Path(sys.argv[2]), allow_pickle=False)
print(json.dumps({
    "version": model.version,
    "path": str(model.path),
    "mlflow_imported": any(name.split(".")[0] == "mlflow" for name in sys.modules),
}))
"""


@dataclass
class Proxy:
    """Forwards GETs to the registry; `answer` may replace an answer by (status, body), and
    an answer to a path holding `drip` is sent a byte at a time, for ever."""

    upstream: str
    answer: Callable[[str, int, bytes], tuple[int, bytes]] = lambda path, status, body: (status, body)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    headers: list[dict[str, str]] = field(default_factory=list)
    drip: str | None = None
    dripped: threading.Event = field(default_factory=threading.Event)
    uri: str = ""


@contextlib.contextmanager
def _proxy_of(upstream: str, tls: ssl.SSLContext | None = None) -> Iterator[Proxy]:
    proxied = Proxy(upstream)

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            proxied.seen.append((self.path, self.headers.get("Authorization")))
            proxied.headers.append(dict(self.headers))
            if proxied.drip is not None and proxied.drip in self.path:
                self._drip()
                return
            upstream = requests.get(proxied.upstream + self.path, timeout=30)
            status, body = proxied.answer(self.path, upstream.status_code, upstream.content)
            self.send_response(status)
            self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drip(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1024 * 1024))
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    proxied.dripped.set()
                    time.sleep(0.2)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    proxied.uri = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield proxied
    server.shutdown()
    thread.join()


@pytest.fixture
def proxy(registry: Registry) -> Iterator[Proxy]:
    with _proxy_of(registry.tracking_uri) as proxied:
        yield proxied


@pytest.fixture
def registry_env(monkeypatch: pytest.MonkeyPatch, proxy: Proxy) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # loading sets it
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    for variable in (
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_WORKSPACE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(variable, raising=False)


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_a_registry_model_loads_without_mlflow_with_the_files_mlflow_downloads(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path
):
    import mlflow.artifacts

    uri = f"models:/{registry.models.iris}@champion"
    finished = subprocess.run(
        [sys.executable, "-c", LOAD, uri, str(tmp_path / "cache")], capture_output=True, text=True, check=False
    )
    assert finished.returncode == 0, finished.stderr
    loaded = json.loads(finished.stdout.splitlines()[-1])

    assert loaded["mlflow_imported"] is False
    assert loaded["version"] == registry.models.champion_version
    mlflows = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{registry.models.iris}/{registry.models.champion_version}", dst_path=str(tmp_path / "mlflow")
        )
    )
    ours = Path(loaded["path"])
    # MLflow's client adds a file naming the registered model; ours marks a complete download.
    assert [f for f in _files(ours) if f != ".modelplane-complete"] == [
        f for f in _files(mlflows) if f != "registered_model_meta"
    ]
    assert all(filecmp.cmp(ours / f, mlflows / f, shallow=False) for f in _files(mlflows) if (ours / f).exists())


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"MLFLOW_TRACKING_TOKEN": "t0ken"}, "Bearer t0ken"),
        # As MLflow's client: a user name with a password wins over a token.
        (
            {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw", "MLFLOW_TRACKING_TOKEN": "t0ken"},
            "Basic YW5uOnB3",
        ),
    ],
    ids=["token", "basic"],
)
def test_mlflows_credentials_go_with_every_request(
    registry: Registry,
    proxy: Proxy,
    registry_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    expected: str,
):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    calls = {path.split("?")[0] for path, _ in proxy.seen}
    assert {"/api/2.0/mlflow/registered-models/alias", "/api/2.0/mlflow-artifacts/artifacts"} <= calls
    assert any(path.startswith("/api/2.0/mlflow-artifacts/artifacts/") for path, _ in proxy.seen)  # a file
    assert {authorization for _, authorization in proxy.seen} == {expected}


def test_a_registry_that_fails_for_a_while_is_asked_again(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path
):
    failed = []

    def unavailable_twice(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if "registered-models/alias" in path and len(failed) < 2:
            failed.append(path)
            return 503, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}'
        return status, body

    proxy.answer = unavailable_twice

    model = load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert len(failed) == 2
    assert model.version == registry.models.champion_version


@pytest.mark.parametrize("name", ["../../outside", "/etc/cron.d/job", "..", "a\\..\\..\\b"])
def test_a_listing_naming_a_file_outside_the_download_is_refused(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, name: str
):
    def hostile(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.startswith("/api/2.0/mlflow-artifacts/artifacts?"):
            listing = json.loads(body)
            listing["files"].append({"path": name, "is_dir": False, "file_size": 4})
            return status, json.dumps(listing).encode()
        return status, body

    proxy.answer = hostile

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert "which is not a file name" in str(refused.value)
    assert _files(tmp_path) == []  # nothing written, and the cut-short download is gone


def test_a_registry_message_names_what_went_wrong(registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path):
    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@no-such-alias", tmp_path / "cache", allow_pickle=False)

    message = str(refused.value)
    assert message.startswith(f"models:/{registry.models.iris}@no-such-alias cannot be resolved in the registry at")
    assert "no-such-alias" in message.split(": ", 1)[1]


def test_files_the_registry_does_not_serve_are_downloaded_by_mlflows_client(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, testbed_dir: Path
):
    # The registry names a location in a store it does not proxy (here a folder, as a
    # server without --serve-artifacts would): MLflow's client reads it, as before.
    artifacts = testbed_dir / "registry" / "artifacts"

    def in_a_store(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if "get-download-uri" in path:
            location = json.loads(body)["artifact_uri"]
            return status, json.dumps(
                {"artifact_uri": (artifacts / location.split(":", 1)[1].lstrip("/")).as_uri()}
            ).encode()
        return status, body

    proxy.answer = in_a_store

    model = load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert (model.path / "MLmodel").is_file()
    assert not any(path.startswith("/api/2.0/mlflow-artifacts/artifacts") for path, _ in proxy.seen)


def test_a_listing_naming_one_file_twice_is_refused(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path
):
    def repeated(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.startswith("/api/2.0/mlflow-artifacts/artifacts?"):
            listing = json.loads(body)
            listing["files"] = listing["files"] * 2
            return status, json.dumps(listing).encode()
        return status, body

    proxy.answer = repeated

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert "more than once" in str(refused.value)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        # Nested past what Python's parser follows: one line, not a RecursionError's traceback.
        (b"[" * 100_000 + b"]" * 100_000, "is not a JSON object of MLflow's"),
        # Digits of other scripts are not a version number.
        (json.dumps({"model_version": {"name": "iris", "version": "\u00b2"}}).encode(), "names no model version"),
    ],
    ids=["nested-too-deep", "non-ascii-version"],
)
def test_a_malformed_answer_stops_start_up_with_one_line(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, answer: bytes, words: str
):
    proxy.answer = lambda path, status, body: (200, answer) if "registered-models/alias" in path else (status, body)

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert words in str(refused.value)


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder.mkdir(parents=True)
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return certificate, key


@pytest.mark.parametrize("trust", ["server-certificate", "insecure"])
def test_mlflows_tls_variables_win_over_requests_own(
    registry: Registry, registry_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: str
):
    certificate, key = _certificate(tmp_path / "server")
    other_authority, _ = _certificate(tmp_path / "other")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    # requests reads this for every request that does not name its own verification.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_authority))
    if trust == "insecure":
        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certificate))

    with _proxy_of(registry.tracking_uri, tls) as proxied:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxied.uri)
        model = load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert model.version == registry.models.champion_version
    assert any(path.startswith("/api/2.0/mlflow-artifacts/artifacts/") for path, _ in proxied.seen)


def test_the_workspace_goes_with_every_request(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_WORKSPACE", " team-a ")

    load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert proxy.headers
    assert {headers.get("X-MLFLOW-WORKSPACE") for headers in proxy.headers} == {"team-a"}


def test_the_files_come_from_the_tracking_server_when_the_registry_is_elsewhere(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # As MLflow's client: the registry answers which version, the tracking server has its files.
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", proxy.uri)
    with _proxy_of(registry.tracking_uri) as tracking:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.uri)
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert {path.split("?")[0] for path, _ in proxy.seen} == {
        "/api/2.0/mlflow/registered-models/alias",
        "/api/2.0/mlflow/model-versions/get-download-uri",
    }
    assert any(path.startswith("/api/2.0/mlflow-artifacts/artifacts/") for path, _ in tracking.seen)
    assert not any("/mlflow/registered-models" in path for path, _ in tracking.seen)


def test_a_listing_is_bounded_by_its_entries(registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path):
    api = RegistryApi.from_environment()
    name, version = api.version_of(registry.models.iris, "champion", "")
    whole = api.download(name, version, tmp_path / "whole")
    entries = len(list(whole.rglob("*")))  # files and folders

    assert dataclasses.replace(api, most_entries=entries).download(name, version, tmp_path / "at-the-bound")
    with pytest.raises(RegistryError, match=f"more than {entries - 1} files and folders"):
        dataclasses.replace(api, most_entries=entries - 1).download(name, version, tmp_path / "over")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "many"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "nan"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "inf"),
        ("MLFLOW_ALLOW_HTTP_REDIRECTS", "sometimes"),
    ],
)
def test_a_malformed_mlflow_variable_is_named(
    registry: Registry,
    proxy: Proxy,
    registry_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert f"{variable} must be" in str(refused.value)
    assert repr(value) in str(refused.value)


def test_a_registry_message_of_only_blanks_is_told_by_its_status(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path
):
    proxy.answer = lambda path, status, body: (
        (404, b'{"message": " \\n "}') if "registered-models/alias" in path else (status, body)
    )

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert str(refused.value).endswith("the registry answered HTTP 404")


def test_a_file_name_the_disk_cannot_hold_is_refused(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path
):
    long_name = "m" * 300  # longer than any file system's 255 bytes

    def too_long(path: str, status: int, body: bytes) -> tuple[int, bytes]:
        if path.startswith("/api/2.0/mlflow-artifacts/artifacts?"):
            listing = json.loads(body)
            listing["files"].append({"path": long_name, "is_dir": False, "file_size": 4})
            return status, json.dumps(listing).encode()
        if path.endswith(long_name):
            return 200, b"data"
        return status, body

    proxy.answer = too_long

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert f"the model's file {long_name} cannot be written" in str(refused.value)
    assert _files(tmp_path) == []


def test_an_answer_sent_a_byte_at_a_time_ends_within_the_timeout(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Each byte comes well within the timeout of one read, so only a deadline on the
    # whole answer ends the wait.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    proxy.drip = "registered-models/alias"

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@champion", tmp_path / "cache", allow_pickle=False)

    assert proxy.dripped.is_set()
    assert "the registry's answer took longer than 1 s" in str(refused.value)


def test_credentials_in_the_registry_address_are_not_shown(
    registry: Registry, proxy: Proxy, registry_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.uri.replace("://", "://ann:s3cret@"))

    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{registry.models.iris}@no-such-alias", tmp_path / "cache", allow_pickle=False)

    assert "s3cret" not in str(refused.value)
    assert f"the registry at {proxy.uri.replace('://', '://***@')}" in str(refused.value)
    assert {authorization for _, authorization in proxy.seen} == {"Basic YW5uOnMzY3JldA=="}


@pytest.mark.parametrize("reference", ["iris/\u00b2", "iris/1.5", "iris/", "/3"])
def test_a_registry_uri_without_a_version_number_is_refused_before_any_request(
    proxy: Proxy, registry_env: None, tmp_path: Path, reference: str
):
    with pytest.raises(ModelLoadError) as refused:
        load(f"models:/{reference}", tmp_path / "cache", allow_pickle=False)

    assert "is not a registry model URI: use models:/NAME/VERSION or models:/NAME@ALIAS" in str(refused.value)
    assert proxy.seen == []

"""A registry model's version and files, fetched over MLflow's REST API without its client.

Importing MLflow's client takes a serving pod longer than loading most models, and every
pod, Job shard and restarted consumer pays it. This module speaks the few calls a server
needs: which version an alias or number means, where its files are, and the files from a
tracking server that serves them (`mlflow server --serve-artifacts`, its default).

It acts as MLflow's client would, from MLflow's own variables: the registry at
MLFLOW_REGISTRY_URI or MLFLOW_TRACKING_URI and the files on the tracking server;
MLFLOW_TRACKING_USERNAME and _PASSWORD, or MLFLOW_TRACKING_TOKEN; MLFLOW_WORKSPACE;
MLFLOW_TRACKING_INSECURE_TLS, _SERVER_CERT_PATH and _CLIENT_CERT_PATH;
MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _BACKOFF_JITTER and _TIMEOUT,
MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER and MLFLOW_ALLOW_HTTP_REDIRECTS. What it does not
speak (a registry that is not an http(s) server, authentication by a plugin or by
MLflow's credentials file, files in a store the server does not serve) raises NotSpoken,
and is left to MLflow's client.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    import requests

# A registry's answer about one version or one folder is far smaller than this.
_LONGEST_ANSWER_BYTES = 16 * 1024 * 1024
# No model's folder is deeper, or holds more files; a listing that goes on is not a model's.
_DEEPEST_FOLDER = 32
_MOST_ENTRIES = 100_000
_CHUNK_BYTES = 1024 * 1024
# The statuses MLflow's client takes for a passing failure and asks again after.
_RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)
_WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"


class NotSpoken(Exception):
    """The registry or its files are reached in a way only MLflow's client speaks."""


class RegistryError(Exception):
    """The registry refused or could not answer; the message says why, in one line."""


_VERSION = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit also takes "²"
_HTTP = re.compile(r"(?i:https?)://[^/?#\s]+(/[^?#\s]*)?")


@dataclass(frozen=True)
class Registry:
    uri: str
    # Where `mlflow-artifacts:` locations are: the tracking server, as MLflow's client
    # takes them, which need not be the registry. None when it is not an http(s) server.
    tracking_uri: str | None
    session: requests.Session
    timeout: float
    # Given with each request, not set on the session: requests lets REQUESTS_CA_BUNDLE
    # override a session's own `verify`, where MLflow's client gives it per request.
    verify: bool | str
    cert: str | None
    allow_redirects: bool
    most_entries: int = _MOST_ENTRIES

    @classmethod
    def from_environment(cls) -> Registry:
        tracking = (os.environ.get("MLFLOW_TRACKING_URI") or "").rstrip("/")
        uri = (os.environ.get("MLFLOW_REGISTRY_URI") or "").rstrip("/") or tracking
        if not _HTTP.fullmatch(uri):
            raise NotSpoken("the registry is not at an http(s) address")
        if os.environ.get("MLFLOW_TRACKING_AUTH") or _flag("MLFLOW_TRACKING_AWS_SIGV4", False):
            raise NotSpoken("the registry is reached with an authentication plugin")
        username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if not (username and password) and _has_mlflow_credentials_file():
            raise NotSpoken("the registry's credentials may be in MLflow's credentials file")
        server_certificates = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
        verify: bool | str = server_certificates or True
        if _flag("MLFLOW_TRACKING_INSECURE_TLS", False):
            if server_certificates:
                raise RegistryError(
                    "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH cannot both be set: "
                    "verify the registry with the given certificates, or not at all"
                )
            verify = False
        return cls(
            uri=uri,
            tracking_uri=tracking if _HTTP.fullmatch(tracking) else None,
            session=_session(username, password),
            timeout=_number("MLFLOW_HTTP_REQUEST_TIMEOUT", 120, smallest=1),
            verify=verify,
            cert=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
            allow_redirects=_flag("MLFLOW_ALLOW_HTTP_REDIRECTS", True),
        )

    @property
    def address(self) -> str:
        """The registry's URI as it may be shown: without a user name or password in it."""
        return without_credentials(self.uri)

    def version_of(self, name: str, alias: str | None, version: str) -> tuple[str, str]:
        """The registered model's name as the registry spells it, and the version number
        `alias` (or `version`) of the model `name` means."""
        if alias is not None:
            answer = self._ask("registered-models/alias", {"name": name, "alias": alias})
        else:
            answer = self._ask("model-versions/get", {"name": name, "version": version})
        found = answer.get("model_version")
        if not isinstance(found, dict) or not is_version_number(str(found.get("version", ""))):
            raise RegistryError("the registry's answer names no model version")
        spelled = found.get("name")
        return spelled if isinstance(spelled, str) and spelled else name, str(found["version"])

    def download(self, name: str, version: str, into: Path) -> Path:
        """The files of version `version` of `name`, downloaded into the empty folder `into`."""
        location = self._ask("model-versions/get-download-uri", {"name": name, "version": version}).get("artifact_uri")
        if not isinstance(location, str):
            raise RegistryError("the registry's answer names no location for the model's files")
        parts = urlsplit(location)
        if parts.scheme != "mlflow-artifacts":
            raise NotSpoken(f"the model's files are at {parts.scheme}:, which the registry does not serve")
        if self.tracking_uri is None:
            raise NotSpoken("the model's files are on the tracking server, which is not at an http(s) address")
        if parts.netloc not in ("", urlsplit(self.tracking_uri).netloc):
            raise NotSpoken("the model's files are on another server than the tracking server")
        root = parts.path.strip("/")
        counted = _Count(self.most_entries)
        for path in self._files(root, "", 0, counted):
            self._fetch(root, path, into)
        return into

    def _files(self, root: str, folder: str, depth: int, counted: _Count) -> Iterator[str]:
        """The files under `folder` of the folder `root`, as paths relative to `root`."""
        if depth > _DEEPEST_FOLDER:
            raise RegistryError(f"the model's folder {folder} is nested deeper than {_DEEPEST_FOLDER} folders")
        listed = self._artifacts_answer({"path": f"{root}/{folder}".rstrip("/")}).get("files") or []
        if not isinstance(listed, list):
            raise RegistryError("the registry's listing of the model's files is not a list")
        seen = set()
        for entry in listed:
            name = entry.get("path") if isinstance(entry, dict) else None
            # The server names each entry by its base name; anything else could write
            # outside the download's folder.
            if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
                raise RegistryError(f"the registry lists a file of the model named {name!r}, which is not a file name")
            if name in seen:
                raise RegistryError(f"the registry lists the model's file {name!r} more than once")
            seen.add(name)
            # Folders count as entries too: each is one more listing to ask for.
            counted.one_more()
            path = f"{folder}/{name}" if folder else name
            if entry.get("is_dir"):
                yield from self._files(root, path, depth + 1, counted)
                continue
            yield path

    def _ask(self, call: str, query: dict[str, str | None]) -> dict[str, Any]:
        return self._answer(self._get(f"{self.uri}/api/2.0/mlflow/{call}", query))

    def _artifacts_answer(self, query: dict[str, str | None]) -> dict[str, Any]:
        return self._answer(self._get(f"{self.tracking_uri}/api/2.0/mlflow-artifacts/artifacts", query))

    def _fetch(self, root: str, path: str, into: Path) -> None:
        """The file `path` of the folder `root`, written to the same path under `into`."""
        import requests

        url = f"{self.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{path}', safe='/')}"
        with self._get(url, None) as response:
            if response.status_code != 200:
                self._answer(response)
            local = into / path
            try:
                local.parent.mkdir(parents=True, exist_ok=True)
                with local.open("wb") as file:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        file.write(chunk)
            except requests.RequestException as error:
                raise RegistryError(f"the model's file {path} was cut short: {type(error).__name__}") from None
            except OSError as error:
                # A name too long for the file system, or listed as both a file and a folder.
                raise RegistryError(f"the model's file {path} cannot be written: {error.strerror or error}") from None

    def _get(self, url: str, query: dict[str, str | None] | None) -> requests.Response:
        import requests

        # Streamed, so that no answer is read whole before its size is known.
        try:
            return self.session.get(
                url,
                params=query,
                timeout=self.timeout,
                stream=True,
                verify=self.verify,
                cert=self.cert,
                allow_redirects=self.allow_redirects,
            )
        except requests.RequestException as error:
            raise RegistryError(f"cannot reach the registry at {self.address}: {type(error).__name__}") from None

    def _answer(self, response: requests.Response) -> dict[str, Any]:
        """The JSON object of a successful answer; RegistryError with the registry's own
        message (MLflow's `message`) for any other."""
        body = self._body(response)
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past what a parser follows
            answer = None
        if response.status_code != 200:
            message = answer.get("message") if isinstance(answer, dict) else None
            lines = str(message).strip().splitlines() if message else []
            raise RegistryError(lines[0] if lines else f"the registry answered HTTP {response.status_code}")
        if len(body) > _LONGEST_ANSWER_BYTES or not isinstance(answer, dict):
            raise RegistryError("the registry's answer is not a JSON object of MLflow's")
        return answer

    def _body(self, response: requests.Response) -> bytes:
        """At most one byte past the longest answer, read within the request's timeout as a
        whole: a server that sends a byte now and then cannot hold start-up for ever."""
        import urllib3

        deadline = time.monotonic() + self.timeout
        body = bytearray()
        try:
            with response:
                while len(body) <= _LONGEST_ANSWER_BYTES:
                    if time.monotonic() > deadline:
                        raise RegistryError(f"the registry's answer took longer than {self.timeout:g} s")
                    chunk = response.raw.read1(_LONGEST_ANSWER_BYTES + 1 - len(body), decode_content=True)
                    if not chunk:
                        break
                    body += chunk
        except urllib3.exceptions.HTTPError as error:
            raise RegistryError(f"the registry's answer was cut short: {type(error).__name__}") from None
        return bytes(body)


class _Count:
    """The entries a model's listings have named so far, up to a bound."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.entries = 0

    def one_more(self) -> None:
        self.entries += 1
        if self.entries > self.most:
            raise RegistryError(f"the registry lists more than {self.most} files and folders for one model")


def _session(username: str | None, password: str | None) -> requests.Session:
    # Imported here: a server of a model folder never asks a registry.
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    # The same precedence as MLflow's client: a user name with a password, else a token.
    if username and password:
        session.headers["Authorization"] = (
            "Basic " + base64.standard_b64encode(f"{username}:{password}".encode()).decode()
        )
    elif token:
        session.headers["Authorization"] = f"Bearer {token}"
    if workspace := (os.environ.get("MLFLOW_WORKSPACE") or "").strip():
        session.headers[_WORKSPACE_HEADER] = workspace
    retries = Retry(
        total=int(_number("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 7, smallest=0, whole=True)),
        backoff_factor=_number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 2, smallest=0),
        backoff_jitter=_number("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", 1.0, smallest=0),
        respect_retry_after_header=_flag("MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER", True),
        status_forcelist=_RETRIED_STATUSES,
        allowed_methods=("GET",),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_version_number(text: str) -> bool:
    """Whether `text` is a registry's version number: ASCII digits only."""
    return _VERSION.fullmatch(text) is not None


def _has_mlflow_credentials_file() -> bool:
    try:
        return (Path.home() / ".mlflow" / "credentials").exists()
    except (RuntimeError, OSError):  # no home folder to look in
        return False


def without_credentials(uri: str) -> str:
    """`uri` as it may be shown in a message: a user name or password in it masked."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _number(variable: str, default: float, smallest: float, whole: bool = False) -> float:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < smallest:
        kind = "a whole number" if whole else "a number"
        raise RegistryError(f"{variable} must be {kind} of at least {smallest:g}, not {value!r}")
    return number


def _flag(variable: str, default: bool) -> bool:
    value = os.environ.get(variable, "").strip().lower()
    if value == "":
        return default
    if value in ("false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise RegistryError(f"{variable} must be true or false, not {value!r}")

"""A registry model's version and files, fetched over MLflow's REST API without its client.

Importing MLflow's client takes a serving pod longer than loading most models, and every
pod, Job shard and restarted consumer pays it. This module speaks the few calls a server
needs: which version an alias or number means, where its files are, and the files from a
tracking server that serves them (`mlflow server --serve-artifacts`, its default).

It acts as MLflow's client would, from MLflow's own variables: the registry at
MLFLOW_REGISTRY_URI or MLFLOW_TRACKING_URI; MLFLOW_TRACKING_USERNAME and _PASSWORD, or
MLFLOW_TRACKING_TOKEN; MLFLOW_TRACKING_INSECURE_TLS, _SERVER_CERT_PATH and
_CLIENT_CERT_PATH; MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR and _TIMEOUT. What it
does not speak (a registry that is not an http(s) server, authentication by a plugin or
by MLflow's credentials file, files in a store the server does not serve) raises
NotSpoken, and is left to MLflow's client.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import requests

# A registry's answer about one version or one folder is far smaller than this.
_LONGEST_ANSWER_BYTES = 16 * 1024 * 1024
# No model's folder is deeper, or holds more files; a listing that goes on is not a model's.
_DEEPEST_FOLDER = 32
_MOST_FILES = 100_000
_CHUNK_BYTES = 1024 * 1024
_RETRIED_STATUSES = (429, 500, 502, 503, 504)


class NotSpoken(Exception):
    """The registry or its files are reached in a way only MLflow's client speaks."""


class RegistryError(Exception):
    """The registry refused or could not answer; the message says why, in one line."""


_VERSION = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit also takes "²"
_HTTP = re.compile(r"(?i:https?)://[^/?#\s]+(/[^?#\s]*)?")


@dataclass(frozen=True)
class Registry:
    uri: str
    session: requests.Session
    timeout: float

    @classmethod
    def from_environment(cls) -> Registry:
        uri = (os.environ.get("MLFLOW_REGISTRY_URI") or os.environ.get("MLFLOW_TRACKING_URI") or "").rstrip("/")
        if not _HTTP.fullmatch(uri):
            raise NotSpoken("the registry is not at an http(s) address")
        if os.environ.get("MLFLOW_TRACKING_AUTH") or _flag("MLFLOW_TRACKING_AWS_SIGV4"):
            raise NotSpoken("the registry is reached with an authentication plugin")
        username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if not (username and password) and (Path.home() / ".mlflow" / "credentials").exists():
            raise NotSpoken("the registry's credentials may be in MLflow's credentials file")
        return cls(uri, _session(username, password), float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120))

    def version_of(self, name: str, alias: str | None, version: str) -> str:
        """The version number `alias` (or `version`) of the registered model `name` means."""
        if alias is not None:
            answer = self._ask("registered-models/alias", {"name": name, "alias": alias})
        else:
            answer = self._ask("model-versions/get", {"name": name, "version": version})
        found = answer.get("model_version")
        if not isinstance(found, dict) or not _VERSION.fullmatch(str(found.get("version", ""))):
            raise RegistryError("the registry's answer names no model version")
        return str(found["version"])

    def download(self, name: str, version: str, into: Path) -> Path:
        """The files of version `version` of `name`, downloaded into the empty folder `into`."""
        location = self._ask("model-versions/get-download-uri", {"name": name, "version": version}).get("artifact_uri")
        if not isinstance(location, str):
            raise RegistryError("the registry's answer names no location for the model's files")
        parts = urlsplit(location)
        if parts.scheme != "mlflow-artifacts" or parts.netloc not in ("", urlsplit(self.uri).netloc):
            raise NotSpoken(f"the model's files are at {parts.scheme}:, which the registry does not serve")
        root = parts.path.strip("/")
        for path in self._files(root, "", 0, [0]):
            self._fetch(f"{root}/{path}", into / path)
        return into

    def _files(self, root: str, folder: str, depth: int, counted: list[int]) -> Iterator[str]:
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
            counted[0] += 1
            if counted[0] > _MOST_FILES:
                raise RegistryError(f"the registry lists more than {_MOST_FILES} files and folders for one model")
            path = f"{folder}/{name}" if folder else name
            if entry.get("is_dir"):
                yield from self._files(root, path, depth + 1, counted)
                continue
            yield path

    def _ask(self, call: str, query: dict[str, str | None]) -> dict[str, Any]:
        return self._answer(self._get(f"{self.uri}/api/2.0/mlflow/{call}", query))

    def _artifacts_answer(self, query: dict[str, str | None]) -> dict[str, Any]:
        return self._answer(self._get(f"{self.uri}/api/2.0/mlflow-artifacts/artifacts", query))

    def _fetch(self, remote: str, local: Path) -> None:
        import requests

        url = f"{self.uri}/api/2.0/mlflow-artifacts/artifacts/{quote(remote, safe='/')}"
        local.parent.mkdir(parents=True, exist_ok=True)
        with self._get(url, None) as response:
            if response.status_code != 200:
                self._answer(response)
            try:
                with local.open("wb") as file:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        file.write(chunk)
            except requests.RequestException as error:
                raise RegistryError(f"the model's file {remote} was cut short: {type(error).__name__}") from None

    def _get(self, url: str, query: dict[str, str | None] | None) -> requests.Response:
        import requests

        # Streamed, so that no answer is read whole before its size is known.
        try:
            return self.session.get(url, params=query, timeout=self.timeout, stream=True)
        except requests.RequestException as error:
            raise RegistryError(f"cannot reach the registry at {self.uri}: {type(error).__name__}") from None

    def _answer(self, response: requests.Response) -> dict[str, Any]:
        """The JSON object of a successful answer; RegistryError with the registry's own
        message (MLflow's `message`) for any other."""
        import urllib3

        try:
            with response:
                body = response.raw.read(_LONGEST_ANSWER_BYTES + 1, decode_content=True)
        except urllib3.exceptions.HTTPError as error:
            raise RegistryError(f"the registry's answer was cut short: {type(error).__name__}") from None
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past what a parser follows
            answer = None
        if response.status_code != 200:
            message = answer.get("message") if isinstance(answer, dict) else None
            raise RegistryError(
                str(message).strip().splitlines()[0]
                if message
                else f"the registry answered HTTP {response.status_code}"
            )
        if len(body) > _LONGEST_ANSWER_BYTES or not isinstance(answer, dict):
            raise RegistryError("the registry's answer is not a JSON object of MLflow's")
        return answer


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
    server_certificates = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if _flag("MLFLOW_TRACKING_INSECURE_TLS"):
        if server_certificates:
            raise RegistryError(
                "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH cannot both be set: "
                "verify the registry with the given certificates, or not at all"
            )
        session.verify = False
    elif server_certificates:
        session.verify = server_certificates
    if client_certificate := os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        session.cert = client_certificate
    retries = Retry(
        total=int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 7),
        backoff_factor=float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR") or 2),
        backoff_jitter=1.0,
        status_forcelist=_RETRIED_STATUSES,
        allowed_methods=("GET",),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _flag(variable: str) -> bool:
    value = os.environ.get(variable, "").strip().lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise RegistryError(f"{variable} must be true or false, not {value!r}")

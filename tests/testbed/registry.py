"""A real MLflow tracking server with the model registry, and the models tests use.

The server keeps its metadata in SQLite and proxies artifacts (`--serve-artifacts`), the
set-up a team runs in production, so clients download models through the server as a
serving pod does.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tests.testbed.process import Component, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class RegistryModels:
    """What the registry holds after `register_test_models`."""

    iris: str = "iris"  # version 1: logistic regression @champion; version 2: random forest @challenger
    champion_version: str = "1"
    challenger_version: str = "2"
    custom: str = "add-offset"  # a cloudpickled custom pyfunc that adds `offset` to its input
    custom_version: str = "1"
    custom_offset: float = 10.0
    digits: str = "digits"  # 8x8 digit images as (-1, 64) float tensors; logistic regression, skops
    digit_scans: str = "digit-scans"  # PNG scans of digits in a binary column; a cloudpickled custom pyfunc
    scans: str = "scans"  # examples/digit_scans.py: PNG in, class and probability out; skops, no pickle
    missing_requirement: str = "modelplane-missing-package==1.0"  # recorded by digit-scans, installed nowhere
    credit: str = "credit"  # integer, float and boolean columns (age, income, employed); skops
    picky: str = "refuses-negative"  # a cloudpickled custom pyfunc doubling `x`; predict fails on any x < 0


def start_registry(
    root: Path, logs: Path, die_with_parent: bool = True, host: str = "127.0.0.1", name: str = "mlflow"
) -> tuple[Component, str]:
    """Starts `mlflow server` on `host` (loopback unless pods must reach it); returns it and
    its tracking URI once it answers. Servers started on the same `root` share one registry."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://{host}:{port}"
    server = Component(
        name,
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
            # Its webhooks call the operator on loopback over plain HTTP, which MLflow refuses
            # by default (a cluster puts TLS in front of the operator's endpoint); and a test's
            # new webhook is called at once, not after MLflow's 60 s cache of webhooks expires.
        ],
        logs,
        env={
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_CACHE_TTL": "0",
        },
    ).start(die_with_parent=die_with_parent)
    server.wait_until(lambda: urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200, timeout=90)
    return server, uri


def _custom_pyfunc(offset: float):
    import mlflow.pyfunc

    # Defined inside a function so cloudpickle stores the class by value: the model then
    # loads in any process, not only where this test module can be imported.
    class AddOffset(mlflow.pyfunc.PythonModel):
        def __init__(self, offset: float):
            self.offset = offset

        def predict(self, context, model_input, params=None):
            return model_input + self.offset

    return AddOffset(offset)


def _picky_pyfunc():
    import mlflow.pyfunc

    class RefusesNegative(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            if (model_input["x"] < 0).any():
                raise ValueError("x must not be negative")
            return model_input["x"] * 2

    return RefusesNegative()


def _scan_reader(classifier):
    import mlflow.pyfunc

    class ReadScans(mlflow.pyfunc.PythonModel):
        """Decodes each PNG scan to 8x8 grey levels of 0-16, as the digits data has them."""

        def __init__(self, classifier):
            self.classifier = classifier

        def predict(self, context, model_input, params=None):
            import io

            import numpy as np
            from PIL import Image

            pixels = [
                np.asarray(Image.open(io.BytesIO(scan)).convert("L").resize((8, 8)), dtype=float).reshape(64) * 16 / 255
                for scan in model_input["image"]
            ]
            return self.classifier.predict(np.stack(pixels))

    return ReadScans(classifier)


def digit_scan(pixels) -> bytes:
    """One digits image (64 grey levels of 0-16) as the PNG a scanner would send."""
    import io

    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray((np.asarray(pixels).reshape(8, 8) * 255 / 16).round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _register_digit_models(experiment_id: str, models: RegistryModels) -> None:
    import cloudpickle
    import mlflow
    import numpy as np
    import PIL
    import sklearn
    import skops
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    images, labels = load_digits(return_X_y=True)
    classifier = LogisticRegression(max_iter=2000).fit(images, labels)
    requirements = [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"]
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.sklearn.log_model(
            classifier,
            name="model",
            serialization_format="skops",
            registered_model_name=models.digits,
            signature=ModelSignature(
                Schema([TensorSpec(np.dtype("float64"), (-1, 64))]), Schema([TensorSpec(np.dtype("int64"), (-1,))])
            ),
            pip_requirements=[*requirements, f"skops=={skops.__version__}"],
        )
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=_scan_reader(classifier),
            registered_model_name=models.digit_scans,
            signature=ModelSignature(Schema([ColSpec("binary", "image")]), Schema([ColSpec("long")])),
            pip_requirements=[
                *requirements,
                f"pillow=={PIL.__version__}",
                f"cloudpickle=={cloudpickle.__version__}",
                models.missing_requirement,
            ],
        )


def _register_credit_model(experiment_id: str, models: RegistryModels) -> None:
    import mlflow
    import numpy as np
    import pandas as pd
    import sklearn
    import skops
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rows = np.random.default_rng(0)
    applicants = pd.DataFrame(
        {
            "age": rows.integers(18, 80, 200),
            "income": rows.normal(50_000, 15_000, 200),
            "employed": rows.random(200) > 0.3,
        }
    )
    approved = (applicants.income > 45_000) & applicants.employed
    classifier = LogisticRegression(max_iter=1000).fit(applicants, approved)
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.sklearn.log_model(
            classifier,
            name="model",
            serialization_format="skops",
            registered_model_name=models.credit,
            signature=infer_signature(applicants, classifier.predict(applicants)),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
        )


def register_test_models(tracking_uri: str) -> RegistryModels:
    """Trains and registers the test models; the same code path as `modelplane demo`."""
    import cloudpickle
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from modelplane.demo import register_iris_model

    models = RegistryModels()
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("testbed")
    assert (
        register_iris_model(experiment_id, LogisticRegression(max_iter=500), models.iris, "champion")
        == models.champion_version
    )
    assert (
        register_iris_model(
            experiment_id,
            RandomForestClassifier(n_estimators=10, random_state=0),
            models.iris,
            "challenger",
        )
        == models.challenger_version
    )

    example = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.pyfunc.log_model(
            name="model",
            python_model=_custom_pyfunc(models.custom_offset),
            signature=infer_signature(example, example + models.custom_offset),
            input_example=example,
            registered_model_name=models.custom,
            pip_requirements=[f"cloudpickle=={cloudpickle.__version__}", f"pandas=={pd.__version__}"],
        )
        picky_example = pd.DataFrame({"x": [1.0, 2.0]})
        mlflow.pyfunc.log_model(
            name="picky",
            python_model=_picky_pyfunc(),
            signature=infer_signature(picky_example, picky_example["x"] * 2),
            registered_model_name=models.picky,
            pip_requirements=[f"cloudpickle=={cloudpickle.__version__}", f"pandas=={pd.__version__}"],
        )
    _register_digit_models(experiment_id, models)
    _register_credit_model(experiment_id, models)
    example_script("digit_scans").register(models.scans, "champion", experiment_id)
    return models


def example_script(name: str) -> ModuleType:
    """A script of examples/, as a module: the tests run the code users are shown."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"examples.{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Trains a classifier of scanned images and registers it: a PNG in, the class the model
sees in it and that class's probability out.

scikit-learn's 8 x 8 images of hand-written digits stand in for the scans a clinic would
send (they ship with scikit-learn, so nothing is downloaded). The model is a Pipeline of
scikit-learn's own estimators and Modelplane's image steps, saved with skops, so it is
served without --allow-pickle:

    .venv/bin/python examples/digit_scans.py [--registry URI] [--name digit-scans] [--scans FOLDER]
    .venv/bin/modelplane run -f examples/digit-scans-online.yaml    # then open http://127.0.0.1:8080/

--scans also writes a few of the images as PNG files, to upload on the page or score in batch.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

NAME = "digit-scans"


def scan(pixels) -> bytes:
    """One digits image (64 grey levels of 0-16) as the PNG file a scanner would send."""
    import numpy as np
    from PIL import Image

    grey = (np.asarray(pixels).reshape(8, 8) * 255 / 16).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    return out.getvalue()


def train():
    """The pipeline, trained on the PNG files of the digits images, and the files with their labels."""
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from modelplane.serving.steps import ImagePixels, TopClass

    images, labels = load_digits(return_X_y=True)
    scans = pd.DataFrame({"image": [scan(image) for image in images]})
    model = Pipeline(
        [("pixels", ImagePixels(width=8, height=8, mode="L")), ("top", TopClass(LogisticRegression(max_iter=3000)))]
    )
    return model.fit(scans, labels), scans, labels


def register(name: str = NAME, alias: str | None = "champion", experiment_id: str | None = None) -> str:
    """Trains the model, registers it in the current registry, points `alias` at it and
    returns the new version."""
    import mlflow
    import PIL
    import sklearn
    import skops
    import skops.io
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    model, scans, _ = train()
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            # For MLflow's own loader; Modelplane trusts only its fixed list, whatever this says.
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            signature=ModelSignature(
                Schema([ColSpec("binary", "image")]),
                Schema([ColSpec("long", "class"), ColSpec("double", "probability")]),
            ),
            input_example=scans.head(1),
            registered_model_name=name,
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
                f"pillow=={PIL.__version__}",
                "modelplane",
            ],
        )
    version = str(info.registered_model_version)
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def main() -> None:
    import mlflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--registry", help="MLflow tracking URI; default: MLFLOW_TRACKING_URI, else the demo's, in .modelplane/"
    )
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--scans", type=Path, help="folder to write ten of the images to, as PNG files")
    args = parser.parse_args()
    experiment_id = None
    if args.registry:
        mlflow.set_tracking_uri(args.registry)
    elif not mlflow.is_tracking_uri_set():
        from modelplane.demo import local_registry

        experiment_id = local_registry(Path(".modelplane"))  # where `modelplane run` looks
    version = register(args.name, experiment_id=experiment_id)
    print(f"registered {args.name} version {version} as @champion in {mlflow.get_tracking_uri()}")
    if args.scans:
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        args.scans.mkdir(parents=True, exist_ok=True)
        for index in range(10):
            (args.scans / f"scan-{index:02d}-labelled-{labels[index]}.png").write_bytes(scan(images[index]))
        print(f"wrote 10 scans to {args.scans}")


if __name__ == "__main__":
    main()

"""The anchor model server of KServe: its Python ModelServer around the same scikit-learn
model, predicting as KServe's sklearn server does (no signature check). Run in its own
environment by bench.serving_online."""

import argparse

import kserve
import mlflow.sklearn
import numpy as np


class Iris(kserve.Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.model = mlflow.sklearn.load_model(path)
        self.ready = True

    def predict(self, payload, headers=None):
        return {"predictions": self.model.predict(np.asarray(payload["instances"])).tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    kserve.ModelServer(http_port=args.port, workers=args.workers, enable_grpc=False).start(
        [Iris("iris", args.model_dir)]
    )

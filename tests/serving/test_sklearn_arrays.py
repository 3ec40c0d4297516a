"""Plain scikit-learn estimators scored on one array: the same predictions as on the
DataFrame, and the DataFrame kept wherever handing over the array could differ."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelplane.demo import iris_features
from modelplane.serving.sklearn_arrays import columns_predict


class SeenLogisticRegression(LogisticRegression):
    """A logistic regression that records the type of each input it scores."""

    def predict(self, X):
        self.seen.append(type(X))
        return super().predict(X)


def _fitted(frame: pd.DataFrame, labels: pd.Series) -> SeenLogisticRegression:
    model = SeenLogisticRegression(max_iter=500).fit(frame, labels)
    model.seen = []
    return model


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {str(name): frame[name].to_numpy() for name in frame.columns}


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_columns_of_the_fitted_names_and_one_dtype_are_scored_as_one_array_with_the_same_predictions(dtype):
    features, labels = iris_features()
    frame = (features * 10).astype(dtype)
    model = _fitted(frame, labels)

    with warnings.catch_warnings(record=True) as shown:
        # Whatever filters came before, the ones columns_predict installs are in force.
        warnings.simplefilter("default")
        predict = columns_predict(model, "predict")
        assert predict is not None
        predictions = predict(_columns(frame))

    assert model.seen == [np.ndarray]
    np.testing.assert_array_equal(predictions, model.predict(frame))
    assert [str(warning.message) for warning in shown] == []


def test_columns_in_another_order_or_of_mixed_dtypes_keep_the_data_frame():
    features, labels = iris_features()
    model = _fitted(features, labels)
    predict = columns_predict(model, "predict")
    assert predict is not None
    mixed = features.astype({"petal width (cm)": np.float32})
    reordered = features[list(reversed(features.columns))]

    mixed_predictions = predict(_columns(mixed))
    with pytest.raises(ValueError, match="feature names should match those that were passed during fit"):
        predict(_columns(reordered))

    assert model.seen == [pd.DataFrame, pd.DataFrame]
    np.testing.assert_array_equal(mixed_predictions, model.predict(mixed))


def test_a_model_fitted_on_an_array_reads_the_columns_in_the_signatures_order():
    features, _ = iris_features()
    values = features.to_numpy()
    model = LinearRegression().fit(values, values @ np.array([1.0, 10.0, 100.0, 1000.0]))
    predict = columns_predict(model, "predict")
    assert predict is not None

    np.testing.assert_allclose(predict(_columns(features)), model.predict(values))


def test_estimators_that_hand_their_input_to_others_are_not_plain():
    features, labels = iris_features()

    assert (
        columns_predict(make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels), "predict") is None
    )
    assert columns_predict(RandomForestClassifier(n_estimators=3).fit(features, labels), "predict") is None
    # Its trees sit in a numpy array of objects.
    assert (
        columns_predict(GradientBoostingClassifier(n_estimators=3, init="zero").fit(features, labels), "predict")
        is None
    )
    assert columns_predict(object(), "predict") is None

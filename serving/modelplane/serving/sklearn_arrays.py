"""A plain scikit-learn estimator scored on one numpy array instead of a DataFrame.

scikit-learn's checks of a DataFrame (its dtypes, feature names, sparse columns) cost
about three times what predicting a small batch does. An estimator that holds no other
estimator reads a frame by position once it has checked the names, so a frame whose
columns are the fitted feature names, in order, and share one numeric dtype gives the
same predictions as the array of its values. Any other input, and any estimator that
passes its input on to others (pipelines, ensembles, column transformers), keeps the
DataFrame.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

# The columns of a batch by name; an array per column.
ColumnsPredict = Callable[[Mapping[str, Any]], Any]


def columns_predict(estimator: object, method: str) -> ColumnsPredict | None:
    """`estimator.method` over columns by name, handing it one array where that is the
    same as handing it the DataFrame; None for an estimator that is not plain."""
    if not _plain(estimator):
        return None
    names = getattr(estimator, "feature_names_in_", None)
    fitted_names = None if names is None else tuple(str(name) for name in names)
    if fitted_names is not None:
        # Given an array, scikit-learn warns that it has no feature names; they were
        # just checked against the fitted ones.
        warnings.filterwarnings(
            "ignore", message="X does not have valid feature names", category=UserWarning, module=r"sklearn\."
        )
    predict: Callable[[Any], Any] = getattr(estimator, method)

    def predict_columns(columns: Mapping[str, Any]) -> Any:
        arrays = list(columns.values())
        if (fitted_names is None or tuple(columns) == fitted_names) and _one_numeric_dtype(arrays):
            return predict(np.column_stack(arrays))
        return predict(pd.DataFrame(columns, copy=False))

    return predict_columns


def _one_numeric_dtype(arrays: list[Any]) -> bool:
    if not all(type(array) is np.ndarray and array.ndim == 1 for array in arrays):
        return False  # a nullable column, or none
    dtypes = {array.dtype for array in arrays}
    return len(dtypes) == 1 and dtypes.pop().kind in "iuf"


def _plain(estimator: object) -> bool:
    """An estimator none of whose parameters or fitted attributes holds another estimator."""
    from sklearn.base import BaseEstimator

    def holds_estimator(value: object) -> bool:
        if isinstance(value, BaseEstimator):
            return True
        if isinstance(value, np.ndarray):  # an ensemble's grid of trees, say
            return value.dtype == object and any(holds_estimator(item) for item in value.flat)
        if isinstance(value, (list, tuple)):
            return any(holds_estimator(item) for item in value)
        if isinstance(value, dict):
            return any(holds_estimator(item) for item in value.values())
        return False

    return isinstance(estimator, BaseEstimator) and not any(
        holds_estimator(value) for value in vars(estimator).values()
    )

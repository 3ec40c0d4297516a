"""Checks of the trees in a scikit-learn model read from a skops file.

scikit-learn's compiled tree code follows a tree's node indices without bounds checks, so
a crafted file could make a prediction read outside its arrays (or loop forever). skops
therefore leaves `Tree` and `TreePredictor` out of its trusted types; Modelplane trusts
them only once every split is checked: its children come after it and within the tree,
and its feature is a column the model is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from modelplane.serving.errors import UnsafeModel

if TYPE_CHECKING:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree


def check_trees(model: object) -> None:
    """Raises UnsafeModel unless every tree in `model` is well formed."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    seen: set[int] = set()
    # (object, where it is, the fewest columns any estimator on the way to it is given)
    pending: list[tuple[object, str, float]] = [(model, "the model", float("inf"))]
    while pending:
        value, where, columns = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Tree):
            _check_tree(value, where, columns)
        elif isinstance(value, TreePredictor):
            _check_predictor(value, where, columns)
        elif isinstance(value, dict):
            pending.extend((item, f"{where}[{key!r}]", columns) for key, item in value.items())
        elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
            pending.extend(
                (item, f"{where}[{index}]", columns)
                for index, item in enumerate(np.ravel(value, "K") if isinstance(value, np.ndarray) else value)
            )
        elif hasattr(value, "__dict__") and type(value).__module__.startswith("sklearn."):
            attributes = vars(value)
            given = attributes.get("n_features_in_")
            if isinstance(given, (int, np.integer)):
                columns = min(columns, int(given))
            pending.extend((item, f"{where}.{name}", columns) for name, item in attributes.items())


def _check_tree(tree: Tree, where: str, columns: float) -> None:
    nodes = tree.node_count
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    split = left != -1
    index = np.arange(nodes)
    if (len(left), len(right), len(feature)) != (nodes, nodes, nodes) or not np.array_equal(split, right != -1):
        raise UnsafeModel(f"{where} has inconsistent node arrays")
    width = min(tree.n_features, columns)
    if (
        (left[split] <= index[split])
        | (left[split] >= nodes)
        | (right[split] <= index[split])
        | (right[split] >= nodes)
        | (feature[split] < 0)
        | (feature[split] >= width)
    ).any():
        raise UnsafeModel(f"{where} has a split pointing outside the tree or past the model's {width} columns")


def _check_predictor(predictor: TreePredictor, where: str, columns: float) -> None:
    nodes = predictor.nodes
    split = nodes["is_leaf"] == 0
    index = np.arange(len(nodes))
    categorical = split & (nodes["is_categorical"] != 0)
    bitsets = min(len(predictor.binned_left_cat_bitsets), len(predictor.raw_left_cat_bitsets))
    if (
        (nodes["left"][split] <= index[split])
        | (nodes["left"][split] >= len(nodes))
        | (nodes["right"][split] <= index[split])
        | (nodes["right"][split] >= len(nodes))
        | (nodes["feature_idx"][split] >= columns)
    ).any() or (nodes["bitset_idx"][categorical] >= bitsets).any():
        raise UnsafeModel(f"{where} has a split pointing outside the tree or past the model's columns")

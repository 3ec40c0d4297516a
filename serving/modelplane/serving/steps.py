"""scikit-learn steps Modelplane ships for models to be built with, which load without
--allow-pickle: a model's skops file may name these classes and no other code of ours.

A model that takes encoded images and answers a class with its probability is then a
Pipeline of scikit-learn's own estimators and these, saved with skops:

    Pipeline([("pixels", ImagePixels(width=8, height=8)), ("top", TopClass(LogisticRegression()))])

Their state comes from the model's file, which its author wrote: every setting is
checked when the step runs, and images are decoded within fixed bounds.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone

# Largest image decoded, in pixels (a 4096 x 4096 scan): beyond that an image is refused
# before it is decoded, whatever its file's size.
MAX_PIXELS = 4096 * 4096
_MODES = {"L": 1, "RGB": 3}
_FORMATS = ("PNG", "JPEG")


class ImagePixels(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no types
    """Encoded images (PNG or JPEG bytes, one per row of a single column) to rows of
    pixel values 0-255: converted to `mode` ("L" grey or "RGB") and resized to
    `width` x `height`, flattened row by row."""

    def __init__(self, width: int = 8, height: int = 8, mode: str = "L") -> None:
        self.width = width
        self.height = height
        self.mode = mode

    def fit(self, images: Any, labels: Any = None) -> ImagePixels:
        self._check()
        return self

    def transform(self, images: Any) -> np.ndarray:
        self._check()
        values = _column(images)
        pixels = np.empty((len(values), self.width * self.height * _MODES[self.mode]), dtype=np.float64)
        for row, value in enumerate(values):
            pixels[row] = self._decode(row, value)
        return pixels

    def _check(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"ImagePixels: mode must be one of {', '.join(_MODES)}, not {self.mode!r}")
        for name in ("width", "height"):
            size = getattr(self, name)
            if type(size) is not int or not 1 <= size <= 4096:
                raise ValueError(f"ImagePixels: {name} must be a whole number from 1 to 4096, not {size!r}")

    def _decode(self, row: int, value: object) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        if not isinstance(value, bytes | bytearray | memoryview):
            raise ValueError(f"row {row}: an image must be the bytes of a PNG or JPEG file")
        try:
            with Image.open(io.BytesIO(value), formats=_FORMATS) as image:
                # The header gives the size: a huge image is refused before it is decoded.
                if image.width * image.height > MAX_PIXELS:
                    raise ValueError(
                        f"row {row}: the image is {image.width} x {image.height} pixels; at most {MAX_PIXELS} are decoded"
                    )
                converted = image.convert(self.mode).resize((self.width, self.height))
                return np.asarray(converted, dtype=np.float64).reshape(-1)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"row {row}: not a PNG or JPEG image ({error})") from None


class TopClass(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no types
    """A classifier whose predictions are its most likely class and that class's
    probability, as the columns `class` and `probability`."""

    def __init__(self, classifier: Any = None) -> None:
        self.classifier = classifier

    def fit(self, features: Any, labels: Any) -> TopClass:
        self.classifier_ = clone(self.classifier).fit(features, labels)
        self.classes_ = self.classifier_.classes_
        return self

    def predict(self, features: Any) -> pd.DataFrame:
        probabilities = self.classifier_.predict_proba(features)
        best = probabilities.argmax(axis=1)
        return pd.DataFrame({"class": self.classes_[best], "probability": probabilities[np.arange(len(best)), best]})

    def predict_proba(self, features: Any) -> np.ndarray:
        return np.asarray(self.classifier_.predict_proba(features))


def _column(images: Any) -> list[object]:
    """The one column of images, from a DataFrame, an array or a list."""
    if isinstance(images, pd.DataFrame):
        if images.shape[1] != 1:
            raise ValueError(f"ImagePixels takes one column of images, not {images.shape[1]}")
        return list(images.iloc[:, 0])
    array = np.asarray(images, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError("ImagePixels takes one column of images")
    return list(array)


# The classes a skops file may build besides scikit-learn's own (model_formats).
TRUSTED = tuple(f"{__name__}.{cls.__name__}" for cls in (ImagePixels, TopClass))

"""Modelplane's scikit-learn steps for models: images decoded within bounds, a
classifier's top class, and a skops file that may name these classes and no others."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelplane.serving import steps
from modelplane.serving.model_formats import load_safely, skops_type_allowed
from modelplane.serving.steps import ImagePixels, TopClass


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_images_become_their_pixels_resized_and_converted():
    rng = np.random.default_rng(0)
    colour = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB")
    encoded = _png(colour)

    pixels = ImagePixels(width=8, height=4, mode="L").transform(pd.DataFrame({"image": [encoded, encoded]}))

    expected = np.asarray(colour.convert("L").resize((8, 4)), dtype=np.float64).reshape(-1)
    assert pixels.shape == (2, 32)
    assert (pixels[0] == expected).all() and (pixels[1] == expected).all()


def test_what_is_not_a_bounded_png_or_jpeg_is_refused_by_row():
    decoder = ImagePixels()
    huge = _png(Image.new("L", (4097, 4097)))  # a few kilobytes that decode to 16 M pixels
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")

    for value, message in (
        (b"not an image", "row 1: not a PNG or JPEG image"),
        (huge, "row 1: the image is 4097 x 4097 pixels"),
        (gif.getvalue(), "row 1: not a PNG or JPEG image"),
        ("text", "row 1: an image must be the bytes"),
    ):
        with pytest.raises(ValueError, match=message):
            decoder.transform(pd.DataFrame({"image": [_png(Image.new("L", (8, 8))), value]}))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "CMYK"}, "mode must be one of"),
        ({"width": 10**9}, "width must be"),
        ({"height": 2.5}, "height must be"),
    ],
)
def test_settings_read_from_a_model_file_are_checked_before_use(settings, message):
    decoder = ImagePixels()
    decoder.__dict__.update(settings)  # as skops restores them, without __init__

    with pytest.raises(ValueError, match=message):
        decoder.transform([_png(Image.new("L", (8, 8)))])


def test_the_top_class_comes_with_its_probability():
    from sklearn.linear_model import LogisticRegression

    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    labels = np.array([7, 7, 9, 9])
    top = TopClass(LogisticRegression()).fit(features, labels)

    answer = top.predict(np.array([[0.0], [3.0]]))

    probabilities = top.classifier_.predict_proba(np.array([[0.0], [3.0]]))
    assert list(answer.columns) == ["class", "probability"]
    assert answer["class"].tolist() == [7, 9]
    assert answer["probability"].tolist() == [probabilities[0, 0], probabilities[1, 1]]


def test_a_pipeline_of_these_steps_loads_without_pickle_and_predicts_as_in_process(tmp_path: Path):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(1)
    images = [_png(Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L")) for _ in range(40)]
    frame = pd.DataFrame({"image": images})
    labels = np.arange(40) % 2
    model = Pipeline([("pixels", ImagePixels()), ("top", TopClass(LogisticRegression(max_iter=500)))]).fit(
        frame, labels
    )
    mlflow.sklearn.save_model(
        model,
        tmp_path / "model",
        serialization_format="skops",
        skops_trusted_types=[
            *steps.TRUSTED,
            "sklearn.pipeline.Pipeline",
            "sklearn.linear_model._logistic.LogisticRegression",
        ],
    )

    loaded = load_safely(tmp_path / "model")

    pd.testing.assert_frame_equal(loaded.make_pyfunc().predict(frame), model.predict(frame))


def test_only_these_classes_of_modelplane_may_be_built():
    assert all(skops_type_allowed(name) for name in steps.TRUSTED)
    for name in (
        "modelplane.serving.steps.Image",
        "modelplane.serving.steps.np",
        "modelplane.serving.model_formats.ModelLoadError",
        "modelplane.serving.steps.ImagePixels.transform",
    ):
        assert not skops_type_allowed(name), name

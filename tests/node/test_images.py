"""The images as built: what the serving image carries and how both run."""

from __future__ import annotations

import pytest

from tests.node.conftest import NodeImages
from tests.testbed import images

pytestmark = pytest.mark.node


def test_the_serving_image_carries_every_model_flavour_it_names(node_images: NodeImages):
    imported = images.run_in(
        node_images.serving,
        "python",
        "-c",
        "import lightgbm, pandas, pyarrow.dataset, pyarrow.parquet, sklearn, skops, xgboost",
    )

    assert imported.returncode == 0, imported.stderr


@pytest.mark.parametrize("image", ["serving", "operator"])
def test_each_image_runs_modelplane_as_a_non_root_user(node_images: NodeImages, image: str):
    config = images.config_of(getattr(node_images, image))

    assert config["User"] == "10001"
    assert config["Entrypoint"] == ["modelplane"]
    assert images.run_in(getattr(node_images, image), "modelplane", "--version").returncode == 0

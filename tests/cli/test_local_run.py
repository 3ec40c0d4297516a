"""`modelplane run -f`: each example manifest as local processes, against the test bed's
registry, with no cluster."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from tests.conftest import REPO, Registry
from tests.testbed.process import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.registry
MODELPLANE = str(Path(sys.executable).parent / "modelplane")
EXAMPLES = REPO / "examples"


def _run(registry: Registry, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MODELPLANE, "run", "--registry", registry.tracking_uri, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _start(registry: Registry, manifest: Path, port: int, cwd: Path, **options) -> subprocess.Popen:
    """`modelplane run -f manifest` in the background, its announcements readable on stdout."""
    return subprocess.Popen(
        [MODELPLANE, "run", "-f", str(manifest), "--registry", registry.tracking_uri, "--port", str(port)],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        **options,
    )


def test_the_online_example_serves_until_interrupted(registry: Registry, tmp_path: Path):
    port = free_port()
    # Started with SIGINT ignored, as a shell without job control starts a background command.
    run = _start(
        registry,
        EXAMPLES / "iris-online.yaml",
        port,
        tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        announced = run.stdout.readline()
        assert (
            f"serving models:/{registry.models.iris}/{registry.models.champion_version} at "
            f"http://127.0.0.1:{port}" in announced
        )
        hints = run.stdout.readline() + run.stdout.readline()
        assert f"open its prediction page: http://127.0.0.1:{port}/" in hints
        metadata = requests.get(f"http://127.0.0.1:{port}/v2/models/{registry.models.iris}", timeout=5).json()
        assert metadata["versions"] == [registry.models.champion_version]
    finally:
        run.send_signal(signal.SIGINT)
        remaining, _ = run.communicate(timeout=60)
    assert run.returncode == 0
    assert "iris: stopped" in remaining
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)


def test_the_image_example_classifies_an_uploaded_scan(registry: Registry, tmp_path: Path):
    """examples/digit-scans-online.yaml, without --allow-pickle: the scan goes as base64,
    as MLflow's JSON carries a binary column."""
    import base64

    manifest = _scan_example("digit-scans-online.yaml", registry)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    [scan], predicted = _scans(registry, 1)
    expected = predicted.iloc[0]
    port = free_port()
    run = _start(registry, tmp_path / "manifest.yaml", port, tmp_path)
    try:
        assert f"serving models:/{registry.models.scans}/" in run.stdout.readline()
        split = {"columns": ["image"], "data": [[base64.b64encode(scan).decode()]]}
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_split": split}, timeout=30)
        assert answer.status_code == 200, answer.text
        [prediction] = answer.json()["predictions"]
        assert prediction["class"] == expected["class"]
        assert prediction["probability"] == pytest.approx(expected["probability"])
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    assert run.returncode == 0


def _scan_example(name: str, registry: Registry) -> dict:
    manifest = yaml.safe_load((EXAMPLES / name).read_text())
    # The test bed registers the example's model under its own name.
    manifest["spec"]["model"]["name"] = registry.models.scans
    return manifest


def _scans(registry: Registry, count: int) -> tuple[list[bytes], pd.DataFrame]:
    """PNG scans of digits and what the example's model predicts for each, in-process."""
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    from tests.testbed.registry import digit_scan

    images, _ = load_digits(return_X_y=True)
    pngs = [digit_scan(images[index]) for index in range(count)]
    return pngs, mlflow.pyfunc.load_model(f"models:/{registry.models.scans}@champion").predict(
        pd.DataFrame({"image": pngs})
    )


def test_the_image_batch_example_scores_a_folder_of_scans(registry: Registry, tmp_path: Path):
    pngs, expected = _scans(registry, 6)
    manifest = _scan_example("digit-scans-batch.yaml", registry)
    manifest["spec"]["batch"].update(input=str(tmp_path / "scans"), output=str(tmp_path / "diagnoses"))
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (tmp_path / "scans").mkdir()
    for index, png in enumerate(pngs):
        (tmp_path / "scans" / f"scan-{index}.png").write_bytes(png)

    result = _run(registry, "-f", str(tmp_path / "manifest.yaml"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    scored = pd.concat([pd.read_csv(path) for path in (tmp_path / "diagnoses").glob("*.csv")]).set_index("file")
    assert sorted(scored.index) == [f"scan-{index}.png" for index in range(6)]
    for index, (_, wanted) in enumerate(expected.iterrows()):
        assert scored.loc[f"scan-{index}.png", "class"] == wanted["class"]


@pytest.mark.brokers
def test_the_image_streaming_example_classifies_scans_sent_as_bytes(registry: Registry, kafka_broker, tmp_path: Path):
    from tests.serving.streams import StreamClient

    pngs, expected = _scans(registry, 5)
    streams = StreamClient(kafka_broker, "local-run-scans")
    streams.create("in", "out", "dead")
    manifest = _scan_example("digit-scans-streaming.yaml", registry)
    manifest["spec"]["streaming"].update(
        source=streams.url("in"), sink=streams.url("out"), deadLetter=streams.url("dead")
    )
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    streams.produce("in", [(f"scan-{index}.png", png) for index, png in enumerate(pngs)], content_type="image/png")
    run = _start(registry, tmp_path / "manifest.yaml", free_port(), tmp_path)
    try:
        assert "digit-scans-events: consuming kafka://" in run.stdout.readline()
        outputs = eventually(
            lambda: (found := streams.read("out")) and len(found) == 5 and found, timeout=120, what="5 predictions"
        )
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=60)
    assert run.returncode == 0
    predictions = {value["id"]: value["prediction"] for _, value, _ in outputs}
    for index, (_, wanted) in enumerate(expected.iterrows()):
        assert predictions[f"scan-{index}.png"]["class"] == wanted["class"]


def test_the_batch_example_runs_each_shard_once(registry: Registry, tmp_path: Path):
    from modelplane.demo import iris_features

    features, _ = iris_features()
    manifest = yaml.safe_load((EXAMPLES / "iris-batch.yaml").read_text())
    # The example's paths are the pod's volumes; here they are folders of the test.
    manifest["spec"]["batch"].update(input=str(tmp_path / "incoming" / "*.csv"), output=str(tmp_path / "scored"))
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    for day, rows in (("monday", features.iloc[:80]), ("tuesday", features.iloc[80:])):
        (tmp_path / "incoming").mkdir(exist_ok=True)
        rows.assign(sample_id=[f"{day}-{n}" for n in range(len(rows))]).to_csv(
            tmp_path / "incoming" / f"{day}.csv", index=False
        )

    result = _run(registry, "-f", str(tmp_path / "manifest.yaml"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "iris-nightly: 2 shard(s) done" in result.stdout
    scored = pd.concat([pd.read_parquet(path) for path in (tmp_path / "scored").glob("*.parquet")])
    assert sorted(scored.sample_id) == sorted([f"monday-{n}" for n in range(80)] + [f"tuesday-{n}" for n in range(70)])
    assert (tmp_path / "scored" / "_SUCCESS").exists()


@pytest.mark.brokers
def test_the_streaming_example_consumes_until_interrupted(registry: Registry, kafka_broker, tmp_path: Path):
    from modelplane.demo import iris_features
    from tests.serving.streams import StreamClient

    streams = StreamClient(kafka_broker, "local-run")
    streams.create("in", "out", "dead")
    manifest = yaml.safe_load((EXAMPLES / "iris-streaming.yaml").read_text())
    # The example's broker is a cluster Service; here it is the test bed's Kafka.
    manifest["spec"]["streaming"].update(
        source=streams.url("in"), sink=streams.url("out"), deadLetter=streams.url("dead")
    )
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    features, _ = iris_features()
    streams.produce("in", [(str(n), row.to_json().encode()) for n, (_, row) in enumerate(features.head(20).iterrows())])
    run = _start(registry, tmp_path / "manifest.yaml", free_port(), tmp_path)
    try:
        assert "iris-events: consuming kafka://" in run.stdout.readline()
        eventually(lambda: len(streams.read("out")) == 20, timeout=120, what="20 predictions")
    finally:
        run.send_signal(signal.SIGINT)
        remaining, _ = run.communicate(timeout=60)
    assert run.returncode == 0
    assert "iris-events: stopped" in remaining


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda spec: spec.update(mode="batch"), "spec.batch is required when spec.mode is batch"),
        (lambda spec: spec["model"].update(alias="no-such-alias"), "spec.model.alias"),
        (lambda spec: spec["model"].update(version="1"), "exactly one of"),
    ],
)
def test_a_bad_manifest_stops_with_one_line_naming_the_field(registry: Registry, tmp_path: Path, change, words):
    manifest = yaml.safe_load((EXAMPLES / "iris-online.yaml").read_text())
    change(manifest["spec"])
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))

    result = _run(registry, "-f", str(tmp_path / "manifest.yaml"), cwd=tmp_path)

    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert words in line and "Traceback" not in result.stderr


def _batch_manifest_running_code(tmp_path: Path) -> Path:
    """The batch example, with variables that make any Python started with them import a
    module of the manifest's choosing, which leaves a file behind."""
    from modelplane.demo import iris_features

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "hook.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')\nclass Hook(Warning): ...\n")
    manifest = yaml.safe_load((EXAMPLES / "iris-batch.yaml").read_text())
    manifest["spec"]["batch"].update(
        input=str(tmp_path / "incoming" / "*.csv"), output=str(tmp_path / "scored"), parallelism=1
    )
    manifest["spec"]["env"] = [
        {"name": "PYTHONPATH", "value": str(hooks)},
        {"name": "PYTHONWARNINGS", "value": "ignore::hook.Hook"},
    ]
    (tmp_path / "incoming").mkdir()
    features, _ = iris_features()
    features.head(10).assign(sample_id=range(10)).to_csv(tmp_path / "incoming" / "day.csv", index=False)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path / "manifest.yaml"


def test_variables_that_would_run_code_here_are_refused(registry: Registry, tmp_path: Path):
    manifest = _batch_manifest_running_code(tmp_path)

    result = _run(registry, "-f", str(manifest), cwd=tmp_path)

    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "spec.env[0] (PYTHONPATH)" in line and "--drop-unsafe-env" in line
    assert not (tmp_path / "ran").exists()


def test_variables_that_would_run_code_here_can_be_left_out(registry: Registry, tmp_path: Path):
    manifest = _batch_manifest_running_code(tmp_path)

    result = _run(registry, "-f", str(manifest), "--drop-unsafe-env", cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: left out spec.env[1] (PYTHONWARNINGS)" in result.stderr
    assert (tmp_path / "scored" / "_SUCCESS").exists()
    assert not (tmp_path / "ran").exists()

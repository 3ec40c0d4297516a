"""`modelplane batch` against the test bed's registry, on real files."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import Registry
from tests.serving.server import MODELPLANE, run_to_exit

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def iris(registry: Registry) -> pd.DataFrame:
    """The iris features with an id column and what the champion predicts for each row."""
    import mlflow.pyfunc

    from modelplane.demo import iris_features

    features, _ = iris_features()
    model = mlflow.pyfunc.load_model(f"models:/{registry.models.iris}@champion")
    return features.assign(id=[f"flower-{n}" for n in range(len(features))], expected=model.predict(features))


@pytest.fixture
def env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MODELPLANE_MODEL": f"models:/{registry.models.iris}@champion",
        "MODELPLANE_MODEL_CACHE": str(tmp_path_factory.getbasetemp() / "batch-model-cache"),
    }


def _write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    features = frame.drop(columns=["expected"])
    {
        ".csv": lambda: features.to_csv(path, index=False),
        ".parquet": lambda: features.to_parquet(path),
        ".jsonl": lambda: features.to_json(path, orient="records", lines=True),
    }[path.suffix]()
    return path


def _outputs(folder: Path) -> list[str]:
    """The output files under `folder`, relative to it, without the run's own `_` files."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith("_") for part in path.relative_to(folder).parts)
    )


def _read_outputs(folder: Path) -> pd.DataFrame:
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True)}
    parts = [readers[Path(name).suffix](folder / name) for name in _outputs(folder)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _batch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = run_to_exit(env, "batch", *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("output_format", ["parquet", "csv", "jsonl"])
def test_every_input_format_is_scored_beside_its_id(env, iris, tmp_path: Path, output_format: str):
    inputs = tmp_path / "in"
    _write(iris.iloc[:50], inputs / "a.csv")
    _write(iris.iloc[50:100], inputs / "b.parquet")
    _write(iris.iloc[100:], inputs / "nested" / "c.jsonl")

    result = _batch(
        env,
        "--input",
        str(inputs),
        "--output",
        str(tmp_path / "out"),
        "--format",
        output_format,
        "--id-column",
        "id",
        "--chunk-rows",
        "16",
    )

    scored = _read_outputs(tmp_path / "out")
    assert sorted(scored.columns) == ["id", "prediction"]
    assert scored.sort_values("id").prediction.tolist() == iris.sort_values("id").expected.tolist()
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert not any((tmp_path / "out" / "_temporary").rglob("*.*")), "a staged file was left behind"
    assert f"scored {len(iris)} rows" in result.stderr


def test_without_an_id_column_each_row_keeps_its_number(env, iris, tmp_path: Path):
    _write(iris, tmp_path / "in.csv")

    _batch(env, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out"), "--chunk-rows", "40")

    scored = _read_outputs(tmp_path / "out")
    assert scored.row.tolist() == list(range(len(iris)))
    assert scored.prediction.tolist() == iris.expected.tolist()


@pytest.mark.parametrize("files", [1, 5])
def test_shards_split_the_input_without_overlap(env, iris, tmp_path: Path, files: int):
    # One file is split by chunks, five files by file: either way every row once.
    for number, rows in enumerate(range(0, len(iris), -(-len(iris) // files))):
        _write(iris.iloc[rows : rows + -(-len(iris) // files)], tmp_path / "in" / f"part-{number}.parquet")

    for index in range(3):
        _batch(
            {**env, "JOB_COMPLETION_INDEX": str(index)},
            "--input",
            str(tmp_path / "in" / "*.parquet"),
            "--output",
            str(tmp_path / "out"),
            "--shard-count",
            "3",
            "--id-column",
            "id",
            "--chunk-rows",
            "10",
        )
        assert (tmp_path / "out" / "_SUCCESS").exists() == (index == 2), "_SUCCESS before every shard finished"

    scored = _read_outputs(tmp_path / "out")
    assert scored.id.is_unique
    assert sorted(scored.id) == sorted(iris.id)


def test_a_killed_run_leaves_no_output_and_the_next_run_completes(env, iris, tmp_path: Path):
    big = pd.concat([iris] * 400, ignore_index=True)
    _write(big, tmp_path / "in" / "big.csv")
    output = tmp_path / "out"
    import os

    run = subprocess.Popen(
        [MODELPLANE, "batch", "--input", str(tmp_path / "in"), "--output", str(output), "--chunk-rows", "500"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staged = output / "_temporary" / "0" / "big.csv.parquet"
    deadline = time.monotonic() + 120
    while not (staged.exists() and staged.stat().st_size > 0):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()

    assert [path.name for path in output.iterdir() if not path.name.startswith("_")] == []
    assert not (output / "_SUCCESS").exists()

    _batch(env, "--input", str(tmp_path / "in"), "--output", str(output))
    assert len(_read_outputs(output)) == len(big)
    assert (output / "_SUCCESS").exists()


def test_only_new_scores_only_files_no_earlier_run_scored(env, iris, tmp_path: Path):
    _write(iris.iloc[:75], tmp_path / "in" / "monday.csv")
    args = ("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--only-new", "--id-column", "id")
    _batch(env, *args)

    _write(iris.iloc[75:], tmp_path / "in" / "tuesday.csv")
    second = _batch(env, *args)

    assert "skipping" in second.stderr and "monday.csv" in second.stderr
    assert f"scored {len(iris) - 75} rows" in second.stderr
    assert sorted(_read_outputs(tmp_path / "out").id) == sorted(iris.id)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda frame, path: None, "--input"),
        (lambda frame, path: _write(frame, path), "--id-column 'key'"),
        (lambda frame, path: _write(frame.assign(**{"petal width (cm)": "wide"}), path), "rows 0-"),
    ],
)
def test_bad_input_stops_with_one_line_and_no_output(env, iris, tmp_path: Path, change, words):
    change(iris, tmp_path / "in" / "flowers.csv")

    result = run_to_exit(
        env,
        "batch",
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--id-column",
        "key" if "id-column" in words else "id",
    )

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert words in line and "Traceback" not in result.stderr
    assert (
        not (tmp_path / "out").exists() or [p for p in (tmp_path / "out").iterdir() if not p.name.startswith("_")] == []
    )


def test_each_input_has_its_own_output_under_its_own_folders(env, iris, tmp_path: Path):
    inputs = tmp_path / "in"
    _write(iris.iloc[:50], inputs / "a" / "b.csv")
    _write(iris.iloc[50:100], inputs / "a--b.csv")  # what a/b.csv was once flattened to
    _write(iris.iloc[100:], inputs / "a" / "b.parquet")

    _batch(env, "--input", str(inputs), "--output", str(tmp_path / "out"), "--id-column", "id")

    assert _outputs(tmp_path / "out") == ["a--b.csv.parquet", "a/b.csv.parquet", "a/b.parquet.parquet"]
    assert sorted(_read_outputs(tmp_path / "out").id) == sorted(iris.id)


@pytest.mark.parametrize("pattern", ["*/x.csv", "?/x.csv", "[ab]/x.csv"])
def test_a_glob_keeps_the_folders_from_its_first_wildcard_on(env, iris, tmp_path: Path, pattern: str):
    _write(iris.iloc[:75], tmp_path / "in" / "a" / "x.csv")
    _write(iris.iloc[75:], tmp_path / "in" / "b" / "x.csv")

    _batch(env, "--input", f"{tmp_path}/in/{pattern}", "--output", str(tmp_path / "out"), "--id-column", "id")

    assert _outputs(tmp_path / "out") == ["a/x.csv.parquet", "b/x.csv.parquet"]
    assert sorted(_read_outputs(tmp_path / "out").id) == sorted(iris.id)


def test_success_waits_for_every_shard_of_this_run_not_of_an_earlier_one(env, iris, tmp_path: Path):
    for number in range(4):
        _write(iris.iloc[number * 30 : (number + 1) * 30], tmp_path / "in" / f"part-{number}.csv")
    output = tmp_path / "out"
    args = ("--input", str(tmp_path / "in"), "--output", str(output), "--shard-count", "2", "--id-column", "id")
    for index in range(2):
        _batch({**env, "JOB_COMPLETION_INDEX": str(index)}, *args)
    assert (output / "_SUCCESS").exists()

    _write(iris.iloc[120:], tmp_path / "in" / "part-4.csv")  # the next run has more input
    _batch({**env, "JOB_COMPLETION_INDEX": "0"}, *args)
    assert not (output / "_SUCCESS").exists(), "_SUCCESS trusted the marker of an earlier run's shard 1"

    _batch({**env, "JOB_COMPLETION_INDEX": "1"}, *args)
    success = json.loads((output / "_SUCCESS").read_text())
    manifest = json.loads((output / "_runs" / success["run"] / "manifest.json").read_text())
    assert (manifest["run"], manifest["shards"]) == (success["run"], 2)
    assert [entry["name"] for entry in manifest["inputs"]] == [f"part-{number}.csv" for number in range(5)]
    assert sorted(_read_outputs(output).id) == sorted(iris.id)


def test_only_new_scores_a_file_rewritten_with_the_same_size_again(env, iris, tmp_path: Path):
    monday = tmp_path / "in" / "monday.csv"
    _write(iris.iloc[:75], monday)
    args = ("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--only-new", "--id-column", "id")
    _batch(env, *args)
    size = monday.stat().st_size

    rewritten = iris.iloc[:75].iloc[::-1]  # the same rows in another order: new content, the same size
    _write(rewritten, monday)
    assert monday.stat().st_size == size
    second = _batch(env, *args)

    assert "skipping" not in second.stderr
    assert _read_outputs(tmp_path / "out").id.tolist() == rewritten.id.tolist()


def _with_line(replace):
    """A writer of `frame` whose line 61 (data row 59 of a CSV) is `replace(line)`."""

    def write(frame: pd.DataFrame, path: Path) -> None:
        _write(frame, path)
        lines = path.read_bytes().split(b"\n")
        lines[60] = replace(lines[60])
        path.write_bytes(b"\n".join(lines))

    return write


def _bad_row_group(frame: pd.DataFrame, path: Path) -> None:
    """Parquet in row groups of 40 rows, the first page of row group 1 overwritten."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    frame.drop(columns=["expected"]).to_parquet(path, row_group_size=40)
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    offset = column.dictionary_page_offset or column.data_page_offset
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xff" * 16)


@pytest.mark.parametrize(
    ("name", "corrupt", "where"),
    [
        pytest.param("flowers.csv", _with_line(lambda line: line + b",7"), "line 61", id="csv-extra-field"),
        pytest.param(
            "flowers.csv", _with_line(lambda line: line.replace(b"flower", b"fl\xffwer")), "line 61", id="csv-not-utf8"
        ),
        pytest.param("flowers.jsonl", _with_line(lambda line: line.rstrip(b"}")), "line 61", id="jsonl-unclosed"),
        pytest.param("flowers.parquet", _bad_row_group, "row group 1", id="parquet-bad-row-group"),
        pytest.param(
            "flowers.parquet",
            lambda frame, path: path.write_bytes(b"PAR1 but no more"),
            "footer",
            id="parquet-no-footer",
        ),
    ],
)
def test_a_malformed_file_stops_the_run_saying_where_and_leaves_nothing_of_it(
    env, iris, tmp_path: Path, name, corrupt, where
):
    inputs, output = tmp_path / "in", tmp_path / "out"
    _write(iris.iloc[:50], inputs / "a-good.csv")  # scored first, and kept
    corrupt(iris, inputs / name)

    result = run_to_exit(
        env, "batch", "--input", str(inputs), "--output", str(output), "--id-column", "id", "--chunk-rows", "16"
    )

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(inputs / name) in line and where in line and "Traceback" not in result.stderr, result.stderr
    assert _outputs(output) == ["a-good.csv.parquet"]
    assert [json.loads(entry.read_text())["input"] for entry in (output / "_ledger").glob("*.json")] == [
        str(inputs / "a-good.csv")
    ]
    assert not any(path.is_file() for path in (output / "_temporary").rglob("*")), "a staged file was left behind"


@pytest.fixture(scope="module")
def scans(registry: Registry) -> tuple[str, list[bytes], pd.DataFrame]:
    """The scan classifier, PNG scans of digits, and what it predicts for each in-process."""
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    from tests.testbed.registry import digit_scan

    model_uri = f"models:/{registry.models.scans}@champion"
    images, _ = load_digits(return_X_y=True)
    pngs = [digit_scan(images[index]) for index in range(8)]
    return model_uri, pngs, mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"image": pngs}))


def test_a_folder_of_scans_is_scored_one_row_per_file_named_by_it(env, scans, tmp_path: Path):
    model_uri, pngs, expected = scans
    names = [f"scan-{index}.png" if index < 4 else f"ward-b/scan-{index}.png" for index in range(len(pngs))]
    for name, png in zip(names[:6], pngs[:6], strict=True):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(png)
    env = {**env, "MODELPLANE_MODEL": model_uri}
    args = ("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--only-new")

    _batch(env, *args)
    # Scans arriving later are scored by the next run, and only they.
    for name, png in zip(names[6:], pngs[6:], strict=True):
        (tmp_path / "in" / name).write_bytes(png)
    second = _batch(env, *args)

    assert "scored 2 rows" in second.stderr
    assert _outputs(tmp_path / "out") == sorted(f"{name}.parquet" for name in names)
    scored = _read_outputs(tmp_path / "out").set_index("file")
    assert sorted(scored.columns) == ["class", "probability"]
    for name, (_, wanted) in zip(names, expected.iterrows(), strict=True):
        assert scored.loc[name, "class"] == wanted["class"]
        assert scored.loc[name, "probability"] == pytest.approx(wanted["probability"])


def test_an_image_is_no_input_for_a_model_that_takes_none(env, iris, scans, tmp_path: Path):
    _write(iris, tmp_path / "in" / "flowers.csv")
    (tmp_path / "in" / "flowers.png").write_bytes(scans[1][0])  # a picture beside the data

    _batch(env, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"))

    assert _outputs(tmp_path / "out") == ["flowers.csv.parquet"]


def test_a_file_that_is_no_image_stops_the_run_naming_it(env, scans, tmp_path: Path):
    model_uri, pngs, _ = scans
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(pngs[0])
    (tmp_path / "in" / "b.png").write_bytes(b"GIF89a, named .png")

    result = run_to_exit(
        {**env, "MODELPLANE_MODEL": model_uri},
        "batch",
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
    )

    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "b.png could not be scored" in line and "not a PNG or JPEG" in line, line
    assert "Traceback" not in result.stderr
    assert _outputs(tmp_path / "out") == ["a.png.parquet"]

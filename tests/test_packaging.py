"""The package layout: one `modelplane` namespace over three source roots, kept apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _modules_loaded_by(statement: str) -> set[str]:
    """Every module a fresh interpreter has loaded after running `statement`."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_standard_library_operator_module_is_not_shadowed_at_the_repository_root():
    result = subprocess.run(
        [sys.executable, "-c", "import operator; operator.itemgetter; print(operator.__file__)"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert not Path(result.stdout.strip()).is_relative_to(REPO)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("modelplane.cli", {"mlflow", "sklearn", "fastapi", "kopf", "kubernetes"}),
        (
            "modelplane.operator.handlers",
            {"fastapi", "uvicorn", "sklearn", "pandas", "mlflow", "celpy", "modelplane.serving"},
        ),
        ("modelplane.serving.http.app", {"kopf", "kubernetes", "modelplane.operator"}),
    ],
)
def test_each_part_loads_only_what_it_needs(package: str, forbidden: set[str]):
    loaded = _modules_loaded_by(f"import {package}")
    offending = {name for name in loaded for f in forbidden if name == f or name.startswith(f"{f}.")}
    assert not offending


def test_the_console_script_lists_its_commands():
    script = Path(sys.executable).parent / "modelplane"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "demo" in result.stdout


def test_the_contract_loads_the_standard_library_alone():
    """Both sides import it: it must bring neither side's dependencies nor its own."""
    before = _modules_loaded_by("pass")
    loaded = _modules_loaded_by("import modelplane.contract") - before
    stdlib = set(sys.stdlib_module_names)
    foreign = {name for name in loaded if name.split(".")[0] not in stdlib and name.split(".")[0] != "modelplane"}
    assert not foreign
    assert {name for name in loaded if name.startswith("modelplane.")} == {"modelplane.contract"}

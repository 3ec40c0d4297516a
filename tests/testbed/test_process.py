"""A component that fails to start fails loudly, with the end of its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.process import Component, ComponentFailed


def test_an_early_exit_fails_with_the_log_tail(tmp_path: Path):
    broken = Component("broken", ["sh", "-c", "echo 'flag provided but not defined: --nope'; exit 3"], tmp_path).start()

    with pytest.raises(ComponentFailed) as failure:
        broken.wait_until(lambda: False, timeout=30)

    assert "broken exited with code 3" in str(failure.value)
    assert "flag provided but not defined: --nope" in str(failure.value)


def test_a_component_that_never_gets_ready_times_out_and_can_be_stopped(tmp_path: Path):
    stuck = Component("stuck", ["sh", "-c", "echo waiting; exec sleep 60"], tmp_path).start()
    try:
        with pytest.raises(ComponentFailed, match=r"stuck was not ready within 1 s(.|\n)*waiting"):
            stuck.wait_until(lambda: False, timeout=1)
    finally:
        stuck.stop(grace=1)
    assert stuck.process.returncode is not None

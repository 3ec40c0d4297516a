"""The data plane on its own, over a model whose predict is a plain function and whose
signature is a real MLflow schema: which model a request may name, which requests share
a predict call, what a request with params or a failing one gets, and where a body is
decoded."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema

from modelplane.serving.dataplane.columns import Columns
from modelplane.serving.dataplane.offload import LARGE_BODY_BYTES
from modelplane.serving.dataplane.plane import DataPlane
from modelplane.serving.errors import InputRejected, InvalidInput, ModelNotFound
from modelplane.serving.model import LoadedModel
from modelplane.serving.model_file import Specs
from tests.serving import offload_work

HOUR = 3600.0  # a batch window no test waits out
OWED = 60.0  # how long a test waits for what it is owed; reached only when the plane is broken
SCHEMA = Schema([ColSpec("double", "x")])


class Doubler:
    """Doubles column x; refuses a negative x as a model refuses bad input. Each call
    is recorded with its params, and can be held until the test lets it go."""

    def __init__(self, schema: Schema = SCHEMA) -> None:
        self.calls: list[tuple[list[float], dict | None]] = []
        self.checked_calls: list[list[float]] = []
        self.inputs = Specs(schema.to_json())
        self.started = threading.Semaphore(0)
        self._free = threading.Event()
        self._free.set()

    def predict(self, frame: pd.DataFrame, params: dict | None = None) -> pd.Series:
        self.calls.append((frame["x"].tolist(), params))
        self.started.release()
        self._free.wait(OWED)
        if (frame["x"] < 0).any():
            raise ValueError("x must not be negative")
        return frame["x"] * 2 * (params or {}).get("scale", 1)

    def predict_checked(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Its own predict, as a model Modelplane reads itself offers it."""
        self.checked_calls.append(columns["x"].tolist())
        return columns["x"] * 2


def _plane(model: Doubler, checked: bool = False) -> tuple[DataPlane, list[int], list[None]]:
    sizes: list[int] = []
    offloaded: list[None] = []
    loaded = LoadedModel(
        "models:/doubler/3",
        "doubler",
        "3",
        path=None,  # type: ignore[arg-type]
        make_pyfunc=lambda: model,  # type: ignore[arg-type, return-value]
        inputs=model.inputs,
        predict_checked=model.predict_checked if checked else None,
    )
    plane = DataPlane(loaded, 32, HOUR, on_batch=sizes.append, on_offload=lambda: offloaded.append(None))
    return plane, sizes, offloaded


def _run(test) -> None:
    asyncio.run(asyncio.wait_for(test(), OWED))


def _rows(plane: DataPlane, *values: object) -> Columns:
    assert plane.columns is not None
    return plane.columns.from_records([{"x": value} for value in values])


@pytest.mark.parametrize(
    ("name", "version", "words"),
    [
        ("other", None, "model other is not served here; this server serves doubler version 3"),
        ("doubler", "2", "model doubler version 2 is not served here; this server serves doubler version 3"),
    ],
)
def test_a_request_naming_another_model_or_version_is_not_found(name, version, words):
    plane, _, _ = _plane(Doubler())

    with pytest.raises(ModelNotFound) as refused:
        plane.require_model(name, version)

    assert refused.value.message == words
    plane.require_model("doubler", "3")
    plane.require_model("doubler")


def test_requests_that_queue_while_the_model_is_busy_share_one_predict_call_and_get_their_own_rows():
    async def test():
        model = Doubler()
        plane, sizes, _ = _plane(model)
        await plane.start()
        model._free.clear()
        try:
            first = asyncio.create_task(plane.predict(_rows(plane, 1.0)))
            assert await asyncio.get_running_loop().run_in_executor(None, model.started.acquire, True, OWED)
            queued = [asyncio.create_task(plane.predict(_rows(plane, *values))) for values in ([2.0, 3.0], [4.0])]
            await asyncio.sleep(0)  # they reach the queue before the model frees up
            model._free.set()
            answers = [(await task).tolist() for task in (first, *queued)]
        finally:
            await plane.stop()
        assert sizes == [1, 2]
        assert model.calls == [([1.0], None), ([2.0, 3.0, 4.0], None)]
        assert answers == [[2.0], [4.0, 6.0], [8.0]]

    _run(test)


def test_a_request_with_params_is_scored_alone_with_them():
    async def test():
        model = Doubler()
        plane, sizes, _ = _plane(model)
        await plane.start()
        try:
            answer = await plane.predict(_rows(plane, 1.0, 2.0), {"scale": 10})
        finally:
            await plane.stop()
        assert answer.tolist() == [20.0, 40.0]
        assert model.calls == [([1.0, 2.0], {"scale": 10})]
        assert sizes == []  # no batch was formed for it

    _run(test)


def test_a_value_the_model_refuses_is_the_clients_to_fix_with_the_models_message():
    async def test():
        plane, _, _ = _plane(Doubler())
        await plane.start()
        try:
            with pytest.raises(InputRejected) as alone:
                await plane.predict(_rows(plane, -1.0), {"scale": 2})
            with pytest.raises(InputRejected) as batched:
                await plane.predict(_rows(plane, -1.0))
        finally:
            await plane.stop()
        assert alone.value.message == "the model cannot score this input: x must not be negative"
        assert batched.value.message == alone.value.message

    _run(test)


def test_a_request_being_received_holds_its_batch_until_it_is_decoded():
    async def test():
        model = Doubler()
        plane, sizes, _ = _plane(model)
        await plane.start()
        body_sent = asyncio.Event()

        async def slow_body() -> bytes:
            await body_sent.wait()
            return b"2.0"

        try:
            arriving = asyncio.create_task(
                plane.receive(slow_body, True, lambda body: _rows(plane, float(body.decode())))
            )
            early = asyncio.create_task(plane.predict(_rows(plane, 1.0)))
            for _ in range(20):  # turns of the event loop in which a batch that did not wait would leave
                await asyncio.sleep(0)
            assert sizes == []
            body_sent.set()
            late = asyncio.create_task(plane.predict(await arriving))
            answers = [(await early).tolist(), (await late).tolist()]
        finally:
            await plane.stop()
        assert sizes == [2]
        assert model.calls == [([1.0, 2.0], None)]
        assert answers == [[2.0], [4.0]]

    _run(test)


def test_a_small_body_is_decoded_in_place_and_a_large_or_costly_one_in_the_helper_process():
    async def test():
        plane, _, offloaded = _plane(Doubler())
        await plane.start()

        def body_of(size: int):
            return lambda: asyncio.sleep(0, b"x" * size)

        try:
            just_small = await plane.receive(body_of(LARGE_BODY_BYTES - 1), True, offload_work.decoder_pid)
            large = await plane.receive(body_of(LARGE_BODY_BYTES), True, offload_work.decoder_pid)
            # A decoder whose cost can grow faster than the body goes aside, however small.
            costly = await plane.receive(body_of(10), False, offload_work.decoder_pid)
        finally:
            await plane.stop()
        assert just_small == os.getpid()
        assert large == costly != os.getpid()
        assert len(offloaded) == 2

    _run(test)


@pytest.mark.parametrize(
    ("columns", "record", "checked"),
    [
        ([ColSpec("double", "x"), ColSpec("long", "n"), ColSpec("boolean", "b")], {"n": 1, "b": True}, True),
        ([ColSpec("double", "x"), ColSpec("datetime", "t")], {"t": "2026-12-06T10:00:00"}, True),
        # MLflow's enforcement turns strings into pandas' string type, and refuses a null in
        # an integer column: such batches get it.
        ([ColSpec("double", "x"), ColSpec("string", "s")], {"s": "a"}, False),
        ([ColSpec("double", "x"), ColSpec("long", "n", required=False)], {"n": None}, False),
    ],
)
def test_a_batch_of_checked_columns_skips_mlflows_enforcement_only_where_it_would_change_nothing(
    columns, record, checked
):
    async def test():
        model = Doubler(Schema(columns))
        plane, sizes, _ = _plane(model, checked=True)
        await plane.start()
        try:
            assert plane.columns is not None
            answer = await plane.predict(plane.columns.from_records([{"x": 1.5, **record}]))
        finally:
            await plane.stop()
        assert list(answer) == [3.0]
        assert sizes == [1]
        if checked:
            assert model.checked_calls == [[1.5]] and model.calls == []
        else:
            assert model.calls == [([1.5], None)] and model.checked_calls == []

    _run(test)


def test_a_value_refused_by_the_signature_never_reaches_the_checked_predict():
    async def test():
        model = Doubler()
        plane, _, _ = _plane(model, checked=True)
        await plane.start()
        try:
            with pytest.raises(InvalidInput) as refused:
                await plane.receive(lambda: asyncio.sleep(0, b"1.5"), True, lambda body: _rows(plane, body.decode()))
            answer = await plane.predict(_rows(plane, 2.0))
        finally:
            await plane.stop()
        assert refused.value.message == "column 'x' expects a number (double); row 0 is \"1.5\""
        assert list(answer) == [4.0]
        assert model.checked_calls == [[2.0]]  # only the request that passed

    _run(test)

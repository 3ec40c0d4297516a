"""What every transport does with a request once it holds its bytes: decode them (in a
helper process when they are large), join other requests in one predict call, and hand
back the request's own predictions. The HTTP routes and the stream scorer are adapters
over one DataPlane; the protocols' codecs turn bytes into model input and predictions
back into bytes, and know nothing of either transport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, TypeVarTuple, cast

import pandas as pd

from modelplane.serving.dataplane.batcher import AdaptiveBatcher, Batchable, batchable, join
from modelplane.serving.dataplane.columns import Columns, ColumnSchema, enforced_as_is
from modelplane.serving.dataplane.json_codec import JSON
from modelplane.serving.dataplane.offload import Offload
from modelplane.serving.errors import ModelNotFound, model_failure

if TYPE_CHECKING:
    from mlflow.models.utils import PyFuncOutput

    from modelplane.serving.model import LoadedModel

Decoded = TypeVar("Decoded")
Arguments = TypeVarTuple("Arguments")


class DataPlane:
    def __init__(
        self,
        model: LoadedModel,
        max_batch_size: int,
        max_batch_wait_seconds: float,
        on_batch: Callable[[int], None] = lambda size: None,
        on_offload: Callable[[], None] = lambda: None,
    ) -> None:
        self.model = model
        # The model's columns, when its signature names typed ones: requests are then
        # checked value by value and kept as arrays until their batch is scored.
        self.columns = ColumnSchema.of(model.inputs)
        self._batcher = AdaptiveBatcher(self._predict_batch, max_batch_size, max_batch_wait_seconds, on_batch)
        self._offload = Offload(on_offload)

    async def start(self, preload: Callable[[], None] | None = None) -> None:
        """Starts batching; `preload`, when given, runs in the decoding helper first, so
        the first request sent there does not wait for the helper to start."""
        self._batcher.start()
        if preload is not None:
            await self._offload.in_helper(preload)

    async def stop(self) -> None:
        self._offload.close()
        await self._batcher.stop()

    def require_model(self, name: str, version: str | None = None) -> None:
        """Refuses a request that names a model (or version) other than the one served."""
        model = self.model
        if name != model.name or (version is not None and version != model.version):
            wanted = f"{name} version {version}" if version else name
            raise ModelNotFound(
                f"model {wanted} is not served here; this server serves {model.name} version {model.version}"
            )

    async def receive(
        self,
        read_body: Callable[[], Awaitable[bytes]],
        linear: bool,
        decode: Callable[[bytes, *Arguments], Decoded],
        *arguments: *Arguments,
    ) -> Decoded:
        """Reads one request's body and decodes it with `decode(body, *arguments)`: in place
        when the decoder's cost is `linear` in the body and the body is small, else in the
        helper process. Until it is decoded, a forming batch waits for it."""
        with self._batcher.arriving():
            body = await read_body()
            return await self._offload.decode(linear, decode, body, *arguments)

    def _predict_batch(self, parts: list[Batchable]) -> PyFuncOutput:
        """Scores a batch on the predict thread. Columns were checked against the
        signature as they were decoded, so they skip MLflow's enforcement of it where the
        model allows and where it would change nothing; any other input goes through
        MLflow's predict."""
        predict_checked = self.model.predict_checked
        if predict_checked is None or not isinstance(parts[0], Columns):
            return self.model.pyfunc.predict(join(parts))
        columns = Columns.concat(cast("list[Columns]", parts))
        if enforced_as_is(columns):
            return predict_checked(columns)
        return self.model.pyfunc.predict(pd.DataFrame(columns, copy=False))

    async def predict(self, data: object, params: dict[str, JSON] | None = None) -> PyFuncOutput:
        """The predictions for one request's input, scored with others' where it can be.
        Raises ModelFailed (or InputRejected) with the model's own message."""
        if params is None and batchable(data):
            return await self._batcher.predict(data)
        # Params apply to a whole predict call, and input without rows cannot join
        # others: such a request is scored on its own.
        if isinstance(data, Columns):  # a batch of one: MLflow's predict takes a DataFrame
            data = Columns.join([data])
        model = self.model
        try:
            # The PyFuncModel is read on the predict thread: the first read may build it.
            return await self._batcher.alone(lambda: model.pyfunc.predict(data, params=params))
        except Exception as error:  # noqa: BLE001 - the model's own failure, with its message
            raise model_failure(error) from None

"""The endpoint MLflow's registry webhooks call when an alias moves, so a promotion
reaches the workloads at once instead of at the next poll.

MLflow signs each delivery with HMAC-SHA256 over "<delivery id>.<timestamp>.<body>"
with the webhook's secret, sent as "v1,<base64>" in X-MLflow-Signature. A delivery with
a bad or missing signature, a timestamp that is not one, or older than the replay window,
gets 401 and changes nothing; one whose id was seen within the window is answered and
ignored, so a captured delivery sent again does nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from aiohttp import web

PATH = "/mlflow/webhook"
REPLAY_WINDOW_SECONDS = 300
ALIAS_CREATED = ("model_version_alias", "created")

logger = logging.getLogger(__name__)


# Seconds since the epoch: twelve digits reach the year 33658.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def signature_valid(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    delivery, stamp = headers.get("X-MLflow-Delivery-Id", ""), headers.get("X-MLflow-Timestamp", "")
    version, _, sent = headers.get("X-MLflow-Signature", "").partition(",")
    if (
        version != "v1"
        or not delivery
        or not _TIMESTAMP.fullmatch(stamp)
        or abs(now - int(stamp)) > REPLAY_WINDOW_SECONDS
    ):
        return False
    signed = f"{delivery}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, sent)


class _SeenDeliveries:
    """The ids of the deliveries accepted within the replay window, oldest first: only
    signed ones are kept, so only the registry's own traffic fills it."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, delivery: str, now: float) -> bool:
        while self._seen and next(iter(self._seen.values())) < now - REPLAY_WINDOW_SECONDS:
            self._seen.popitem(last=False)
        if delivery in self._seen:
            return False
        self._seen[delivery] = now
        return True


def application(secret: str, alias_moved: Callable[[str, str], int]) -> web.Application:
    """`alias_moved(model, alias)` wakes the resources that follow it and says how many."""
    seen = _SeenDeliveries()

    async def deliver(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if not signature_valid(secret, request.headers, body, now):
            logger.warning("refused a registry webhook delivery from %s: bad or missing signature", request.remote)
            return web.json_response({"error": "bad or missing X-MLflow-Signature"}, status=401)
        if not seen.first_time(request.headers["X-MLflow-Delivery-Id"], now):
            logger.warning(
                "ignored a registry webhook delivery sent again: %s", request.headers["X-MLflow-Delivery-Id"]
            )
            return web.json_response({"ignored": "this delivery was received before"})
        try:
            event = json.loads(body)
            kind = (event["entity"], event["action"])
            data = event["data"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "not an MLflow webhook delivery"}, status=400)
        if kind != ALIAS_CREATED:
            return web.json_response({"ignored": f"{kind[0]}.{kind[1]}"})
        if not (isinstance(data, dict) and isinstance(data.get("name"), str) and isinstance(data.get("alias"), str)):
            return web.json_response({"error": "an alias event names a model and an alias"}, status=400)
        woken = alias_moved(data["name"], data["alias"])
        logger.info(
            "alias %r of %s moved to version %s: %d ModelDeployments look now",
            data["alias"],
            data["name"],
            data.get("version"),
            woken,
        )
        return web.json_response({"woken": woken})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post(PATH, deliver)
    return app
